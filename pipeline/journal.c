#include "pipeline/journal.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define CHECKSUM_BLOCK (1 << 20)

static const char *const STATE_NAMES[] = {"running", "done", "failed", "interrupted"};

const char *journal_state_name(JournalState s) { return STATE_NAMES[s]; }

static int write_all(int fd, const char *buf, size_t len) {
    while (len) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        buf += w, len -= (size_t)w;
    }
    return 0;
}

int journal_write(const char *dir, const char *name, const JournalEntry *e, char *err, size_t n) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "state", journal_state_name(e->state));
    cJSON_AddStringToObject(j, "input", e->input);
    cJSON_AddStringToObject(j, "output", name);
    cJSON_AddStringToObject(j, "run", e->run);
    cJSON_AddStringToObject(j, "host", e->host);
    cJSON_AddNumberToObject(j, "pid", (double)e->pid);
    cJSON_AddNumberToObject(j, "seconds", e->seconds);
    cJSON_AddStringToObject(j, "fingerprint", e->fingerprint);
    if (e->state == JOURNAL_FAILED) cJSON_AddStringToObject(j, "message", e->message);
    if (e->state == JOURNAL_DONE) {
        char crc[16];
        snprintf(crc, sizeof crc, "%08lx", e->crc32);
        cJSON_AddNumberToObject(j, "bytes", (double)e->bytes);
        cJSON_AddStringToObject(j, "crc32", crc);
        cJSON_AddNumberToObject(j, "width", e->width);
        cJSON_AddNumberToObject(j, "height", e->height);
        cJSON_AddNumberToObject(j, "bands", e->bands);
        if (e->has_geotransform)
            cJSON_AddItemToObject(j, "geotransform", cJSON_CreateDoubleArray(e->geotransform, 6));
    }
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/%s.json", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    int fd = text ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644) : -1;
    int ok = fd >= 0 && write_all(fd, text, strlen(text)) == 0 && write_all(fd, "\n", 1) == 0 &&
             fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0) ok = 0;
    if (ok && rename(tmp, path) != 0) ok = 0;
    if (!ok) {
        snprintf(err, n, "%s: cannot write the journal entry: %s", path,
                 text ? strerror(errno) : "out of memory");
        if (fd >= 0) unlink(tmp);
    }
    free(text);
    return ok ? 0 : -1;
}

static const char *get_string(const cJSON *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int get_number(const cJSON *j, const char *key, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsNumber(v)) return -1;
    *out = v->valuedouble;
    return 0;
}

int journal_read(const char *dir, const char *name, JournalEntry *e, char *err, size_t n) {
    memset(e, 0, sizeof *e);
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.json", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return 1;
        snprintf(err, n, "%s: %s", path, strerror(errno));
        return -1;
    }
    char buf[16384];
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = 0;
    cJSON *j = cJSON_Parse(buf);
    const char *state = j ? get_string(j, "state") : NULL;
    int s = -1;
    for (int i = 0; state && i < 4; i++)
        if (!strcmp(state, STATE_NAMES[i])) s = i;
    double pid = 0, seconds = 0;
    int ok = s >= 0 && get_number(j, "pid", &pid) == 0 && get_number(j, "seconds", &seconds) == 0;
    const char *input = ok ? get_string(j, "input") : NULL, *run = ok ? get_string(j, "run") : NULL;
    const char *fp = ok ? get_string(j, "fingerprint") : NULL, *host = ok ? get_string(j, "host") : NULL;
    ok = ok && input && run && fp && host;
    if (ok) {
        e->state = (JournalState)s;
        e->pid = (long)pid, e->seconds = seconds;
        snprintf(e->input, sizeof e->input, "%s", input);
        snprintf(e->run, sizeof e->run, "%s", run);
        snprintf(e->fingerprint, sizeof e->fingerprint, "%s", fp);
        snprintf(e->host, sizeof e->host, "%s", host);
        const char *message = get_string(j, "message");
        snprintf(e->message, sizeof e->message, "%s", message ? message : "");
    }
    if (ok && s == JOURNAL_DONE) {
        double bytes, width, height, bands;
        const char *crc = get_string(j, "crc32");
        char *end = NULL;
        ok = get_number(j, "bytes", &bytes) == 0 && get_number(j, "width", &width) == 0 &&
             get_number(j, "height", &height) == 0 && get_number(j, "bands", &bands) == 0 && crc;
        if (ok) {
            e->crc32 = strtoul(crc, &end, 16);
            ok = *crc && !*end;
            e->bytes = (long long)bytes;
            e->width = (int)width, e->height = (int)height, e->bands = (int)bands;
        }
        const cJSON *gt = cJSON_GetObjectItemCaseSensitive(j, "geotransform");
        if (ok && gt) {
            ok = cJSON_IsArray(gt) && cJSON_GetArraySize(gt) == 6;
            for (int i = 0; ok && i < 6; i++) {
                const cJSON *v = cJSON_GetArrayItem(gt, i);
                ok = cJSON_IsNumber(v);
                if (ok) e->geotransform[i] = v->valuedouble;
            }
            e->has_geotransform = ok;
        }
    }
    cJSON_Delete(j);
    if (!ok) {
        snprintf(err, n, "%s: not a journal entry", path);
        return -1;
    }
    return 0;
}

void remove_files_with_prefix(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    char path[8400];
    size_t len = strlen(prefix);
    for (struct dirent *e; d && (e = readdir(d));)
        if (!strncmp(e->d_name, prefix, len)) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    if (d) closedir(d);
}

void journal_remove_stale(const char *dir, const char *name) {
    char prefix[4200];
    snprintf(prefix, sizeof prefix, "%s.json.tmp-", name);
    remove_files_with_prefix(dir, prefix);
}

int file_checksum(const char *path, long long *bytes, unsigned long *crc32_out) {
    int fd = open(path, O_RDONLY);
    unsigned char *buf = malloc(CHECKSUM_BLOCK);
    if (fd < 0 || !buf) {
        if (fd >= 0) close(fd);
        free(buf);
        return -1;
    }
    uLong crc = crc32(0L, Z_NULL, 0);
    long long total = 0;
    ssize_t got;
    while ((got = read(fd, buf, CHECKSUM_BLOCK)) > 0 || (got < 0 && errno == EINTR))
        if (got > 0) crc = crc32(crc, buf, (uInt)got), total += got;
    close(fd);
    free(buf);
    if (got < 0) return -1;
    *bytes = total, *crc32_out = crc;
    return 0;
}
