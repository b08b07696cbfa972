#include "io/sources.h"

#include "io/raster.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* The folders and lists being read, innermost first: a symlink or a list
 * entry that leads back to one of them would be read forever. */
typedef struct Visit {
    dev_t dev;
    ino_t ino;
    const struct Visit *outer;
} Visit;

typedef struct {
    SourceVisitor visit;
    void *ctx;
} Walk;

static int is_list(const char *path) {
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) return 0;
    return !strcasecmp(dot, ".txt") || !strcasecmp(dot, ".lst") || !strcasecmp(dot, ".list");
}

static char *join(const char *dir, const char *name) {
    size_t len = strlen(dir) + strlen(name) + 2;
    char *p = malloc(len);
    if (p) snprintf(p, len, "%s/%s", dir, name);
    return p;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_source(const Walk *w, const char *path, const Visit *outer, char *err, size_t n);

char **sources_folder_names(const char *dir, char *err, size_t n) {
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, n, "%s: cannot read the folder: %s", dir, strerror(errno));
        return NULL;
    }
    char **names = NULL;
    size_t count = 0, cap = 0;
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue; /* ., .., hidden and partly written files */
        if (count + 1 >= cap) { /* and the NULL at the end */
            cap = cap ? 2 * cap : 64;
            char **p = realloc(names, cap * sizeof *p);
            if (!p) rc = -1;
            else names = p;
        }
        if (rc == 0 && !(names[count++] = strdup(e->d_name))) rc = -1;
    }
    closedir(d);
    if (rc == 0 && !names && !(names = malloc(sizeof *names))) rc = -1;
    if (rc) {
        snprintf(err, n, "%s: out of memory listing the folder", dir);
        for (size_t i = 0; i < count; i++) free(names[i]);
        free(names);
        return NULL;
    }
    names[count] = NULL;
    /* name order, so what is found does not depend on the file system */
    qsort(names, count, sizeof *names, cmp_str);
    return names;
}

void sources_free_names(char **names) {
    for (size_t i = 0; names && names[i]; i++) free(names[i]);
    free(names);
}

static int add_folder(const Walk *w, const char *path, const Visit *visit, char *err, size_t n) {
    char **names = sources_folder_names(path, err, n);
    int rc = names ? 0 : -1;
    for (size_t i = 0; rc == 0 && names[i]; i++) {
        char *full = join(path, names[i]);
        struct stat st;
        if (!full) {
            snprintf(err, n, "out of memory");
            rc = -1;
        } else if (stat(full, &st) == 0 && S_ISDIR(st.st_mode)) {
            rc = add_source(w, full, visit, err, n);
        } else if (!raster_unlikely_name(names[i])) {
            rc = w->visit(w->ctx, full, 0, err, n);
        }
        free(full);
    }
    sources_free_names(names);
    return rc;
}

static int add_list(const Walk *w, const char *path, const Visit *visit, char *err, size_t n) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, n, "%s: cannot read the list: %s", path, strerror(errno));
        return -1;
    }
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash - path + (slash == path)) : strdup(".");
    char *line = NULL;
    size_t cap = 0;
    int rc = dir ? 0 : -1, lineno = 0;
    if (!dir) snprintf(err, n, "out of memory");
    while (rc == 0 && getline(&line, &cap, f) >= 0) {
        lineno++;
        char *p = line, *end = line + strlen(line);
        while (*p == ' ' || *p == '\t') p++;
        while (end > p && strchr(" \t\r\n", end[-1])) *--end = '\0';
        if (!*p || *p == '#') continue;
        char *entry = *p == '/' ? strdup(p) : join(dir, p);
        if (!entry) {
            snprintf(err, n, "out of memory");
            rc = -1;
        } else if (add_source(w, entry, visit, err, n)) {
            char *why = strdup(err);
            snprintf(err, n, "%s:%d: %s", path, lineno, why ? why : "out of memory");
            free(why);
            rc = -1;
        }
        free(entry);
    }
    free(line);
    free(dir);
    fclose(f);
    return rc;
}

static int add_source(const Walk *w, const char *path, const Visit *outer, char *err, size_t n) {
    if (!strncmp(path, "/vsi", 4)) return w->visit(w->ctx, path, 1, err, n);
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, n, "%s: no such file or folder", path);
        return -1;
    }
    int folder = S_ISDIR(st.st_mode);
    if (!folder && !is_list(path)) return w->visit(w->ctx, path, 1, err, n);
    for (const Visit *v = outer; v; v = v->outer)
        if (v->dev == st.st_dev && v->ino == st.st_ino) {
            snprintf(err, n, "%s: a %s that contains itself", path, folder ? "folder" : "list");
            return -1;
        }
    Visit visit = {st.st_dev, st.st_ino, outer};
    return folder ? add_folder(w, path, &visit, err, n) : add_list(w, path, &visit, err, n);
}

int sources_walk(const char *const *sources, int num_sources, SourceVisitor visit, void *ctx,
                 char *err, size_t n) {
    Walk w = {visit, ctx};
    for (int i = 0; i < num_sources; i++)
        if (add_source(&w, sources[i], NULL, err, n)) return -1;
    return 0;
}
