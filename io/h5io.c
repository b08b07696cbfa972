#include "io/h5io.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct H5Writer {
    hid_t file;
    char *path, *tmp_path;
    char *err;
    size_t err_size;
    int failed;
};

struct H5Reader {
    hid_t file;
    char *path;
    char *err;
    size_t err_size;
};

/* ---- shared helpers ------------------------------------------------------- */

#define REASON_SIZE 256 /* HDF5's own error description, appended to ours */

/* Our messages replace HDF5's error stack, which would otherwise be printed. */
static void silence_hdf5(void) {
    static int done;
    if (!done) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        done = 1;
    }
}

static void vformat(char *err, size_t err_size, const char *prefix, const char *fmt, va_list ap) {
    if (!err || !err_size) return;
    int n = snprintf(err, err_size, "%s: ", prefix);
    if (n >= 0 && (size_t)n < err_size) vsnprintf(err + n, err_size - (size_t)n, fmt, ap);
}

static void format_error(char *err, size_t err_size, const char *prefix, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void format_error(char *err, size_t err_size, const char *prefix, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vformat(err, err_size, prefix, fmt, ap);
    va_end(ap);
}

static herr_t innermost_error(unsigned n, const H5E_error2_t *e, void *data) {
    char *reason = data;
    if (n == 0) {
        const char *text = e->desc && *e->desc ? e->desc : e->func_name;
        snprintf(reason, REASON_SIZE, "%s", text ? text : "unknown error");
    }
    return 0;
}

/* The most specific message of HDF5's current error stack (e.g. "truncated
 * file: eof = ..."), to append to ours; must be called right after the failure. */
static const char *hdf5_reason(char reason[REASON_SIZE]) {
    snprintf(reason, REASON_SIZE, "unknown error");
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_error, reason);
    H5Eclear2(H5E_DEFAULT);
    return reason;
}

static hid_t file_type(H5ioType type) {
    switch (type) {
    case H5IO_FLOAT32: return H5T_IEEE_F32LE;
    case H5IO_INT64: return H5T_STD_I64LE;
    case H5IO_UINT64: return H5T_STD_U64LE;
    case H5IO_UINT8: return H5T_STD_U8LE;
    }
    return -1;
}

static hid_t memory_type(H5ioType type) {
    switch (type) {
    case H5IO_FLOAT32: return H5T_NATIVE_FLOAT;
    case H5IO_INT64: return H5T_NATIVE_INT64;
    case H5IO_UINT64: return H5T_NATIVE_UINT64;
    case H5IO_UINT8: return H5T_NATIVE_UINT8;
    }
    return -1;
}

static const char *type_class_name(H5T_class_t c) {
    switch (c) {
    case H5T_INTEGER: return "integers";
    case H5T_FLOAT: return "floating-point numbers";
    case H5T_STRING: return "strings";
    case H5T_COMPOUND: return "compound records";
    case H5T_ENUM: return "enum values";
    case H5T_ARRAY: return "arrays";
    case H5T_VLEN: return "variable-length sequences";
    default: return "an unsupported type";
    }
}

char *h5io_format_shape(char *buf, size_t size, int ndim, const int *shape) {
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ",%d" : "%d", shape[i]);
    if (used < size) snprintf(buf + used, size - used, "]");
    return buf;
}

/* ---- writing -------------------------------------------------------------- */

int h5w_fail(H5Writer *w, const char *fmt, ...) {
    if (!w->failed) {
        va_list ap;
        va_start(ap, fmt);
        vformat(w->err, w->err_size, w->path, fmt, ap);
        va_end(ap);
        w->failed = 1;
    }
    return -1;
}

static void writer_free(H5Writer *w) {
    free(w->path);
    free(w->tmp_path);
    free(w);
}

/* A clear message for the usual reasons a file cannot be created. */
static int check_destination(const char *path, char *err, size_t err_size) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        format_error(err, err_size, path, "is a folder; give a file name to write");
        return -1;
    }
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    if (stat(dir, &st) != 0) {
        format_error(err, err_size, path, "cannot write: folder '%s' %s", dir,
                     errno == ENOENT ? "does not exist; create it first" : strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        format_error(err, err_size, path, "cannot write: '%s' is not a folder", dir);
        return -1;
    }
    return 0;
}

H5Writer *h5w_open(const char *path, char *err, size_t err_size) {
    silence_hdf5();
    if (check_destination(path, err, err_size)) return NULL;
    H5Writer *w = calloc(1, sizeof *w);
    size_t tmp_size = strlen(path) + 32;
    if (w) {
        w->path = strdup(path);
        w->tmp_path = malloc(tmp_size);
    }
    if (!w || !w->path || !w->tmp_path) {
        format_error(err, err_size, path, "out of memory");
        if (w) writer_free(w);
        return NULL;
    }
    snprintf(w->tmp_path, tmp_size, "%s.tmp-%ld", path, (long)getpid());
    w->err = err;
    w->err_size = err_size;

    /* STRONG: closing the file really closes it, so the fsync below sees all data. */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    w->file = H5Fcreate(w->tmp_path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    char reason[REASON_SIZE];
    if (w->file < 0) hdf5_reason(reason); /* before the next HDF5 call clears it */
    H5Pclose(fapl);
    if (w->file < 0) {
        format_error(err, err_size, path,
                     "cannot create the temporary file %s (HDF5: %s); check that the folder is "
                     "writable and has free space",
                     w->tmp_path, reason);
        unlink(w->tmp_path);
        writer_free(w);
        return NULL;
    }
    return w;
}

int h5w_dataset(H5Writer *w, const char *path, H5ioType type, int ndim, const int *shape,
                const void *data) {
    if (w->failed) return -1;
    if (ndim < 0 || ndim > H5IO_MAX_DIMS)
        return h5w_fail(w, "cannot write dataset %s: %d dimensions (at most %d)", path, ndim,
                        H5IO_MAX_DIMS);
    hsize_t dims[H5IO_MAX_DIMS];
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return h5w_fail(w, "cannot write dataset %s: negative size", path);
        dims[i] = (hsize_t)shape[i];
    }
    hid_t space = ndim ? H5Screate_simple(ndim, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t ds = H5Dcreate2(w->file, path, file_type(type), space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    herr_t status =
        ds < 0 ? -1 : H5Dwrite(ds, memory_type(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    char reason[REASON_SIZE];
    if (status < 0) hdf5_reason(reason);
    if (ds >= 0) H5Dclose(ds);
    H5Pclose(lcpl);
    H5Sclose(space);
    if (status < 0) return h5w_fail(w, "cannot write dataset %s (HDF5: %s)", path, reason);
    return 0;
}

/* Opens object for a new attribute `name`, deleting an existing one. */
static hid_t open_for_attr(H5Writer *w, const char *object, const char *name) {
    hid_t obj = H5Oopen(w->file, object, H5P_DEFAULT);
    if (obj < 0) {
        H5Eclear2(H5E_DEFAULT);
        h5w_fail(w, "cannot write attribute '%s': no group or dataset %s", name, object);
        return -1;
    }
    if (H5Aexists(obj, name) > 0 && H5Adelete(obj, name) < 0) {
        char reason[REASON_SIZE];
        h5w_fail(w, "cannot replace attribute '%s' of %s (HDF5: %s)", name, object,
                 hdf5_reason(reason));
        H5Oclose(obj);
        return -1;
    }
    return obj;
}

static int write_attr(H5Writer *w, const char *object, const char *name, hid_t file_type,
                      hid_t mem_type, const void *value) {
    if (w->failed) return -1;
    hid_t obj = open_for_attr(w, object, name);
    if (obj < 0) return -1;
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(obj, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t status = attr < 0 ? -1 : H5Awrite(attr, mem_type, value);
    char reason[REASON_SIZE];
    if (status < 0) hdf5_reason(reason);
    if (attr >= 0) H5Aclose(attr);
    H5Sclose(space);
    H5Oclose(obj);
    if (status < 0)
        return h5w_fail(w, "cannot write attribute '%s' of %s (HDF5: %s)", name, object, reason);
    return 0;
}

int h5w_attr_string(H5Writer *w, const char *object, const char *name, const char *value) {
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    int rc = write_attr(w, object, name, type, type, &value);
    H5Tclose(type);
    return rc;
}

int h5w_attr_int(H5Writer *w, const char *object, const char *name, long long value) {
    return write_attr(w, object, name, H5T_STD_I64LE, H5T_NATIVE_LLONG, &value);
}

void h5w_abort(H5Writer *w) {
    if (!w) return;
    if (w->file >= 0) H5Fclose(w->file);
    H5Eclear2(H5E_DEFAULT);
    unlink(w->tmp_path);
    writer_free(w);
}

static int fsync_path(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int h5w_commit(H5Writer *w) {
    if (!w->failed && H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0) {
        char reason[REASON_SIZE];
        h5w_fail(w, "cannot write %s (HDF5: %s); check the free space", w->tmp_path,
                 hdf5_reason(reason));
    }
    if (w->failed) {
        h5w_abort(w);
        return -1;
    }
    herr_t closed = H5Fclose(w->file);
    w->file = -1;
    if (closed < 0) {
        char reason[REASON_SIZE];
        h5w_fail(w, "cannot finish %s (HDF5: %s); check the free space", w->tmp_path,
                 hdf5_reason(reason));
    } else if (fsync_path(w->tmp_path) != 0) {
        h5w_fail(w, "cannot sync %s to disk: %s", w->tmp_path, strerror(errno));
    } else if (rename(w->tmp_path, w->path) != 0) {
        h5w_fail(w, "cannot rename %s to its final name: %s", w->tmp_path, strerror(errno));
    }
    if (w->failed) {
        h5w_abort(w);
        return -1;
    }
    /* Make the rename itself durable; the file is complete either way. */
    const char *slash = strrchr(w->path, '/');
    char dir[PATH_MAX];
    if (slash)
        snprintf(dir, sizeof dir, "%.*s", slash == w->path ? 1 : (int)(slash - w->path), w->path);
    else
        snprintf(dir, sizeof dir, ".");
    fsync_path(dir);
    writer_free(w);
    return 0;
}

/* ---- reading -------------------------------------------------------------- */

int h5r_fail(H5Reader *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vformat(r->err, r->err_size, r->path, fmt, ap);
    va_end(ap);
    return -1;
}

/* HDF5 looks for its signature at offset 0, 512, 1024, 2048, ... (after a user block). */
static int has_hdf5_signature(FILE *f, long long size) {
    static const unsigned char signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    unsigned char buf[8];
    for (long long offset = 0; offset + 8 <= size; offset = offset ? offset * 2 : 512) {
        if (fseek(f, (long)offset, SEEK_SET) != 0 || fread(buf, 1, 8, f) != 8) return 0;
        if (!memcmp(buf, signature, 8)) return 1;
    }
    return 0;
}

static int looks_like_tiff(FILE *f) {
    unsigned char b[4];
    if (fseek(f, 0, SEEK_SET) != 0 || fread(b, 1, 4, f) != 4) return 0;
    return (b[0] == 'I' && b[1] == 'I' && (b[2] == 42 || b[2] == 43) && b[3] == 0) ||
           (b[0] == 'M' && b[1] == 'M' && b[2] == 0 && (b[3] == 42 || b[3] == 43));
}

/* Explains why H5Fopen failed, by looking at the file's bytes. */
static void explain_open_failure(const char *path, const char *reason, char *err, size_t err_size) {
    struct stat st;
    FILE *f = NULL;
    if (stat(path, &st) != 0) {
        format_error(err, err_size, path, "%s", errno == ENOENT ? "no such file" : strerror(errno));
    } else if (S_ISDIR(st.st_mode)) {
        format_error(err, err_size, path, "is a folder, not a checkpoint file");
    } else if (!(f = fopen(path, "rb"))) {
        format_error(err, err_size, path, "cannot read: %s", strerror(errno));
    } else if (st.st_size == 0) {
        format_error(err, err_size, path, "empty file (0 bytes), not an HDF5 checkpoint");
    } else if (has_hdf5_signature(f, (long long)st.st_size)) {
        format_error(err, err_size, path,
                     "damaged or truncated HDF5 file (HDF5: %s); copy it again or use another "
                     "checkpoint",
                     reason);
    } else if (looks_like_tiff(f)) {
        format_error(err, err_size, path,
                     "not an HDF5 file: it looks like a TIFF image; expected a Spynco checkpoint "
                     "(.h5)");
    } else {
        format_error(err, err_size, path, "not an HDF5 file; expected a Spynco checkpoint (.h5)");
    }
    if (f) fclose(f);
}

H5Reader *h5r_open(const char *path, char *err, size_t err_size) {
    silence_hdf5();
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    char reason[REASON_SIZE];
    if (file < 0) hdf5_reason(reason); /* before the next HDF5 call clears it */
    H5Pclose(fapl);
    if (file < 0) {
        explain_open_failure(path, reason, err, err_size);
        return NULL;
    }
    H5Reader *r = calloc(1, sizeof *r);
    if (r) r->path = strdup(path);
    if (!r || !r->path) {
        format_error(err, err_size, path, "out of memory");
        free(r);
        H5Fclose(file);
        return NULL;
    }
    r->file = file;
    r->err = err;
    r->err_size = err_size;
    return r;
}

void h5r_close(H5Reader *r) {
    if (!r) return;
    H5Fclose(r->file);
    free(r->path);
    free(r);
}

int h5r_exists(H5Reader *r, const char *path) {
    if (!strcmp(path, "/")) return 1;
    /* H5Lexists needs every intermediate group to exist, so test each prefix. */
    char buf[1024];
    if (path[0] != '/' || strlen(path) >= sizeof buf) return 0;
    strcpy(buf, path);
    for (char *p = strchr(buf + 1, '/');; p = strchr(p + 1, '/')) {
        if (p) *p = '\0';
        htri_t exists = H5Lexists(r->file, buf, H5P_DEFAULT);
        if (exists <= 0) {
            H5Eclear2(H5E_DEFAULT);
            return 0;
        }
        if (!p) return 1;
        *p = '/';
    }
}

static hid_t open_dataset(H5Reader *r, const char *path) {
    if (!h5r_exists(r, path)) {
        h5r_fail(r, "missing dataset %s", path);
        return -1;
    }
    hid_t ds = H5Dopen2(r->file, path, H5P_DEFAULT);
    if (ds < 0) {
        H5Eclear2(H5E_DEFAULT);
        h5r_fail(r, "%s is not a dataset", path);
    }
    return ds;
}

static int dataset_shape(H5Reader *r, hid_t ds, const char *path, int *ndim,
                         int shape[H5IO_MAX_DIMS]) {
    hid_t space = H5Dget_space(ds);
    H5S_class_t kind = space < 0 ? H5S_NO_CLASS : H5Sget_simple_extent_type(space);
    int rank = kind == H5S_SIMPLE ? H5Sget_simple_extent_ndims(space) : 0;
    hsize_t dims[H5IO_MAX_DIMS];
    int rc = 0;
    if (kind != H5S_SIMPLE && kind != H5S_SCALAR) {
        rc = h5r_fail(r, "dataset %s has no data (empty dataspace)", path);
    } else if (rank < 0 || rank > H5IO_MAX_DIMS) {
        rc = h5r_fail(r, "dataset %s has %d dimensions (at most %d supported)", path, rank,
                      H5IO_MAX_DIMS);
    } else if (rank > 0) {
        H5Sget_simple_extent_dims(space, dims, NULL);
        for (int i = 0; i < rank; i++) {
            if (dims[i] > INT_MAX) {
                rc = h5r_fail(r, "dataset %s is too large", path);
                break;
            }
            shape[i] = (int)dims[i];
        }
    }
    *ndim = rank;
    if (space >= 0) H5Sclose(space);
    H5Eclear2(H5E_DEFAULT);
    return rc;
}

int h5r_shape(H5Reader *r, const char *path, int *ndim, int shape[H5IO_MAX_DIMS]) {
    hid_t ds = open_dataset(r, path);
    if (ds < 0) return -1;
    int rc = dataset_shape(r, ds, path, ndim, shape);
    H5Dclose(ds);
    return rc;
}

int h5r_read(H5Reader *r, const char *path, H5ioType type, int ndim, const int *shape, void *data) {
    hid_t ds = open_dataset(r, path);
    if (ds < 0) return -1;
    int rc = -1, found_ndim;
    int found[H5IO_MAX_DIMS];
    hid_t ftype = H5Dget_type(ds);
    H5T_class_t cls = ftype < 0 ? H5T_NO_CLASS : H5Tget_class(ftype);
    H5T_class_t wanted = type == H5IO_FLOAT32 ? H5T_FLOAT : H5T_INTEGER;
    if (cls != wanted) {
        h5r_fail(r, "dataset %s holds %s, expected %s", path, type_class_name(cls),
                 type_class_name(wanted));
    } else if (dataset_shape(r, ds, path, &found_ndim, found) == 0) {
        int same = found_ndim == ndim;
        for (int i = 0; same && i < ndim; i++) same = found[i] == shape[i];
        char a[128], b[128];
        if (!same) {
            h5r_fail(r, "dataset %s has shape %s, expected %s", path,
                     h5io_format_shape(a, sizeof a, found_ndim, found),
                     h5io_format_shape(b, sizeof b, ndim, shape));
        } else if (H5Dread(ds, memory_type(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
            char reason[REASON_SIZE];
            h5r_fail(r, "cannot read dataset %s (HDF5: %s); the file may be damaged", path,
                     hdf5_reason(reason));
        } else {
            rc = 0;
        }
    }
    if (ftype >= 0) H5Tclose(ftype);
    H5Dclose(ds);
    return rc;
}

int h5r_has_attr(H5Reader *r, const char *object, const char *name) {
    htri_t exists =
        h5r_exists(r, object) ? H5Aexists_by_name(r->file, object, name, H5P_DEFAULT) : 0;
    H5Eclear2(H5E_DEFAULT);
    return exists > 0;
}

/* Opens a scalar attribute (or a one-element array, as some tools store scalars). */
static hid_t open_attr(H5Reader *r, const char *object, const char *name, hid_t *type) {
    if (!h5r_has_attr(r, object, name)) {
        h5r_fail(r, "missing attribute '%s' on %s", name, object);
        return -1;
    }
    hid_t attr = H5Aopen_by_name(r->file, object, name, H5P_DEFAULT, H5P_DEFAULT);
    if (attr < 0) {
        char reason[REASON_SIZE];
        h5r_fail(r, "cannot read attribute '%s' on %s (HDF5: %s)", name, object,
                 hdf5_reason(reason));
        return -1;
    }
    hid_t space = H5Aget_space(attr);
    hssize_t count = H5Sget_simple_extent_npoints(space);
    H5Sclose(space);
    if (count != 1) {
        h5r_fail(r, "attribute '%s' on %s holds %lld values, expected one", name, object,
                 (long long)count);
        H5Aclose(attr);
        return -1;
    }
    *type = H5Aget_type(attr);
    return attr;
}

int h5r_attr_string(H5Reader *r, const char *object, const char *name, char **value) {
    hid_t ftype;
    hid_t attr = open_attr(r, object, name, &ftype);
    if (attr < 0) return -1;
    *value = NULL;
    int rc = -1;
    char reason[REASON_SIZE];
    if (H5Tget_class(ftype) != H5T_STRING) {
        h5r_fail(r, "attribute '%s' on %s holds %s, expected a string", name, object,
                 type_class_name(H5Tget_class(ftype)));
    } else if (H5Tis_variable_str(ftype) > 0) {
        hid_t mtype = H5Tcopy(H5T_C_S1);
        H5Tset_size(mtype, H5T_VARIABLE);
        H5Tset_cset(mtype, H5Tget_cset(ftype));
        char *text = NULL;
        if (H5Aread(attr, mtype, &text) < 0) {
            h5r_fail(r, "cannot read attribute '%s' on %s (HDF5: %s)", name, object,
                     hdf5_reason(reason));
        } else {
            *value = strdup(text ? text : "");
            H5free_memory(text);
            rc = *value ? 0 : h5r_fail(r, "out of memory");
        }
        H5Tclose(mtype);
    } else {
        size_t size = H5Tget_size(ftype);
        char *text = malloc(size + 1);
        if (!text) {
            h5r_fail(r, "out of memory");
        } else if (H5Aread(attr, ftype, text) < 0) {
            h5r_fail(r, "cannot read attribute '%s' on %s (HDF5: %s)", name, object,
                     hdf5_reason(reason));
            free(text);
        } else {
            text[size] = '\0';
            if (H5Tget_strpad(ftype) == H5T_STR_SPACEPAD)
                for (size_t n = strlen(text); n > 0 && text[n - 1] == ' '; n--) text[n - 1] = '\0';
            *value = text;
            rc = 0;
        }
    }
    H5Tclose(ftype);
    H5Aclose(attr);
    return rc;
}

int h5r_attr_int(H5Reader *r, const char *object, const char *name, long long *value) {
    hid_t ftype;
    hid_t attr = open_attr(r, object, name, &ftype);
    if (attr < 0) return -1;
    int rc = 0;
    char reason[REASON_SIZE];
    if (H5Tget_class(ftype) != H5T_INTEGER)
        rc = h5r_fail(r, "attribute '%s' on %s holds %s, expected an integer", name, object,
                      type_class_name(H5Tget_class(ftype)));
    else if (H5Aread(attr, H5T_NATIVE_LLONG, value) < 0)
        rc = h5r_fail(r, "cannot read attribute '%s' on %s (HDF5: %s)", name, object,
                      hdf5_reason(reason));
    H5Tclose(ftype);
    H5Aclose(attr);
    return rc;
}

typedef struct {
    const char *group;
    H5rVisit visit;
    void *ctx;
    int result;
} VisitState;

static herr_t visit_link(hid_t group, const char *name, const H5L_info_t *info, void *data) {
    (void)info;
    VisitState *s = data;
    hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
    if (obj < 0) return 0; /* a dangling link: nothing to visit */
    int is_dataset = H5Iget_type(obj) == H5I_DATASET;
    H5Oclose(obj);
    if (!is_dataset) return 0;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", strcmp(s->group, "/") ? s->group : "", name);
    s->result = s->visit(path, s->ctx);
    return s->result != 0; /* positive: stop iterating */
}

int h5r_visit_datasets(H5Reader *r, const char *group, H5rVisit visit, void *ctx) {
    hid_t g = h5r_exists(r, group) ? H5Gopen2(r->file, group, H5P_DEFAULT) : -1;
    if (g < 0) {
        H5Eclear2(H5E_DEFAULT);
        return h5r_fail(r, "missing group %s", group);
    }
    VisitState state = {group, visit, ctx, 0};
    herr_t status = H5Lvisit(g, H5_INDEX_NAME, H5_ITER_INC, visit_link, &state);
    char reason[REASON_SIZE];
    if (status < 0) hdf5_reason(reason);
    H5Gclose(g);
    if (status < 0) return h5r_fail(r, "cannot list group %s (HDF5: %s)", group, reason);
    return state.result;
}
