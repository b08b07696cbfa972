/* h5io.h: a small layer over the HDF5 C API for checkpoints and training state.
 *
 * Writing is atomic. h5w_open creates `<path>.tmp-<pid>` in the destination's
 * folder; h5w_commit flushes, closes and fsyncs it, then renames it over
 * `path`. Any failure, or h5w_abort, unlinks the temporary file, so `path` is
 * either the old file or the complete new one, never something half-written.
 * Errors are sticky: after the first failed call every later write is skipped
 * and h5w_commit returns -1 with the first message, so a caller may issue a
 * series of writes and check only the commit.
 *
 *     H5Writer *w = h5w_open("model.h5", err, sizeof err);
 *     if (!w) return -1;
 *     h5w_attr_string(w, "/", "format", "spynco-checkpoint");
 *     h5w_dataset(w, "/G/enc0/conv/weight", H5IO_FLOAT32, 4, shape, weights);
 *     return h5w_commit(w);
 *
 * Datasets are plain contiguous arrays (no chunking or compression) so that any
 * tool reads them; intermediate groups are created as needed. Strings are
 * written as variable-length UTF-8, as h5py does.
 *
 * Reading opens the file read-only. Every failure, including a missing,
 * empty, truncated or non-HDF5 file, gives a message naming the file and what
 * was wrong; HDF5's own error stack is never printed. Datasets are read into a
 * caller buffer after checking their type class and exact shape (any float
 * dataset converts to float32, any integer dataset to the requested integer).
 * String attributes may be fixed- or variable-length.
 *
 * Paths are absolute ("/G/enc0/conv/weight"); "/" is the root group. Every
 * function that can fail returns 0 or -1 and writes its message into the
 * err buffer given to h5w_open / h5r_open. HDF5 calls must come from one
 * thread at a time.
 */
#ifndef SPYNCO_H5IO_H
#define SPYNCO_H5IO_H

#include <stddef.h>

#define H5IO_MAX_DIMS 8

typedef enum { H5IO_FLOAT32, H5IO_INT64, H5IO_UINT64, H5IO_UINT8 } H5ioType;

/* ---- writing -------------------------------------------------------------- */

typedef struct H5Writer H5Writer;

/* NULL on failure (message in err). err must stay valid until commit/abort. */
H5Writer *h5w_open(const char *path, char *err, size_t err_size);
/* A dataset of ndim dims (0: a scalar) holding shape[0]*...*shape[ndim-1] elements. */
int h5w_dataset(H5Writer *w, const char *path, H5ioType type, int ndim, const int *shape,
                const void *data);
/* Attributes on an existing group (or "/"); an existing attribute is replaced. */
int h5w_attr_string(H5Writer *w, const char *object, const char *name, const char *value);
int h5w_attr_int(H5Writer *w, const char *object, const char *name, long long value);
/* Records a failure of the caller's own ("<path>: " + message, unless an
 * earlier failure is already recorded); returns -1. */
int h5w_fail(H5Writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Publishes the file at its final path and frees w. On any (earlier) failure
 * removes the temporary file instead and returns -1. */
int h5w_commit(H5Writer *w);
/* Discards everything written and frees w. */
void h5w_abort(H5Writer *w);

/* ---- reading -------------------------------------------------------------- */

typedef struct H5Reader H5Reader;

/* NULL on failure (message in err). err must stay valid until h5r_close. */
H5Reader *h5r_open(const char *path, char *err, size_t err_size);
void h5r_close(H5Reader *r);
/* Writes "<file>: " + message into the reader's err buffer; returns -1. */
int h5r_fail(H5Reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* 1 if a group or dataset exists at path, else 0. */
int h5r_exists(H5Reader *r, const char *path);
/* 1 if the group or dataset at object has an attribute `name`, else 0. */
int h5r_has_attr(H5Reader *r, const char *object, const char *name);
/* The shape of the dataset at path (ndim <= H5IO_MAX_DIMS). */
int h5r_shape(H5Reader *r, const char *path, int *ndim, int shape[H5IO_MAX_DIMS]);
/* Reads a whole dataset whose shape must be exactly `shape`. */
int h5r_read(H5Reader *r, const char *path, H5ioType type, int ndim, const int *shape, void *data);
/* A scalar string attribute, as a malloc'd copy in *value (caller frees). */
int h5r_attr_string(H5Reader *r, const char *object, const char *name, char **value);
/* A scalar integer attribute. */
int h5r_attr_int(H5Reader *r, const char *object, const char *name, long long *value);

/* Calls visit(path, ctx) with the absolute path of every dataset below group,
 * in name order; stops at (and returns) the first non-zero return of visit. */
typedef int (*H5rVisit)(const char *path, void *ctx);
int h5r_visit_datasets(H5Reader *r, const char *group, H5rVisit visit, void *ctx);

/* "[32,1,7,7]" into buf (ndim 0: "[]"); returns buf. */
char *h5io_format_shape(char *buf, size_t size, int ndim, const int *shape);

#endif
