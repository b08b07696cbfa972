/* journal.h: what a batch run did to each output, one small JSON file per output.
 *
 * In the output folder, .spynco-journal/NAME.json records the output NAME:
 *   running      being made (by which host and process, which run)
 *   done         complete: its byte size and CRC-32, raster size, bands,
 *                geotransform, and the fingerprint of the settings that made it
 *   failed       with the message
 *   interrupted  stopped by a signal
 * An output without an entry is pending.
 * Every entry is written whole to NAME.json.tmp-PID, flushed and renamed over
 * NAME.json: a reader sees the old entry or the new one, never a mix, and
 * processes that write entries of different outputs (the ranks of a
 * distributed run) need no lock. Nothing else is shared between inputs.
 */
#ifndef SPYNCO_JOURNAL_H
#define SPYNCO_JOURNAL_H

#include <stddef.h>

#define JOURNAL_DIR ".spynco-journal"

typedef enum { JOURNAL_RUNNING, JOURNAL_DONE, JOURNAL_FAILED, JOURNAL_INTERRUPTED } JournalState;

typedef struct {
    JournalState state;
    char run[64];             /* id of the run that wrote the entry */
    char input[4096];
    char message[1024];       /* failed: why */
    char fingerprint[20];     /* settings and model that made the output */
    char host[64];
    long pid;
    double seconds;           /* time spent on the input */
    /* done: the output as written */
    long long bytes;
    unsigned long crc32;
    int width, height, bands;
    int has_geotransform;
    double geotransform[6];
} JournalEntry;

const char *journal_state_name(JournalState s);

/* Writes dir/NAME.json atomically (dir must exist). */
int journal_write(const char *dir, const char *name, const JournalEntry *e, char *err,
                  size_t err_size);
/* 0: read; 1: no entry; -1: unreadable or malformed (message in err). */
int journal_read(const char *dir, const char *name, JournalEntry *e, char *err, size_t err_size);
/* Removes NAME.json.tmp-* left by a process killed while writing. */
void journal_remove_stale(const char *dir, const char *name);
/* Removes the files of dir whose names start with prefix (leftovers of
 * killed writers; a missing dir is no error). */
void remove_files_with_prefix(const char *dir, const char *prefix);

/* Size and CRC-32 (zlib's) of a whole file; -1 if it cannot be read. */
int file_checksum(const char *path, long long *bytes, unsigned long *crc32);

#endif
