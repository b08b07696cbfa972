/* sources.h: the image sources of a command line, expanded to image files.
 *
 * A source is a folder (searched recursively, in name order; hidden entries
 * and files that are obviously no images, .txt, .xml, .msk, ..., are passed
 * over), a list file (.txt, .lst or .list: one path per line, relative to the
 * list's folder; blank lines and lines starting with '#' are skipped) or a
 * single file (also any GDAL /vsi... path). Every file found goes to the
 * visitor, in order, with named = 1 when the user or a list named it and 0
 * when it was found in a folder: callers treat an unreadable named file as
 * the user's mistake, and pass over one in a folder (a README, a sidecar).
 *
 * Errors: a missing source ("no such file or folder"), an unreadable folder
 * or list, a folder or list that contains itself (symlink or list loops);
 * an error inside a list is prefixed with "LIST:LINE: ". A visitor stops the
 * walk by returning -1 with its message in err.
 */
#ifndef SPYNCO_SOURCES_H
#define SPYNCO_SOURCES_H

#include <stddef.h>

typedef int (*SourceVisitor)(void *ctx, const char *path, int named, char *err, size_t err_size);

int sources_walk(const char *const *sources, int num_sources, SourceVisitor visit, void *ctx,
                 char *err, size_t err_size);

/* The names in folder dir as the walk reads them: in name order, hidden
 * entries (also partly written files, ".NAME.tmp-...") left out. A
 * NULL-terminated array (sources_free_names); NULL with the message in err
 * if the folder cannot be read. For walks of their own (pipeline/batch.c's
 * recipe inputs, which also open archives). */
char **sources_folder_names(const char *dir, char *err, size_t err_size);
void sources_free_names(char **names);

#endif
