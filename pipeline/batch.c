/* GDAL's VSIStatBufL is a struct stat64 */
#define _LARGEFILE64_SOURCE
#include "pipeline/batch.h"

#include <cpl_conv.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <gdal_utils.h>
#include <glob.h>
#include <limits.h>
#include <math.h>
#include <ogr_srs_api.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io/sources.h"
#include "pipeline/colorize.h"
#include "pipeline/journal.h"

#define MAX_LIST_DEPTH 8 /* list files naming list files */

static const char *gdal_reason(void) {
    const char *msg = CPLGetLastErrorMsg();
    return msg && *msg ? msg : "no details from GDAL";
}

static char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *str_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (s) {
        va_start(ap, fmt);
        vsnprintf(s, (size_t)len + 1, fmt, ap);
        va_end(ap);
    }
    return s;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcasecmp(s + a - b, suffix);
}

/* "/vsizip/" or "/vsitar/" for an archive's file name; NULL for other files. */
static const char *archive_prefix(const char *path) {
    if (ends_with(path, ".zip")) return "/vsizip/";
    if (ends_with(path, ".tar") || ends_with(path, ".tar.gz") || ends_with(path, ".tgz"))
        return "/vsitar/";
    return NULL;
}

static int is_list(const char *path) {
    return ends_with(path, ".txt") || ends_with(path, ".lst") || ends_with(path, ".list");
}

/* ---- inputs: expanding the recipe's entries ---------------------------------------- */

typedef struct {
    BatchPlan *plan;
    int cap;
    const RecipePath *entry; /* the inputs entry being expanded */
    int entry_index;
    char context[4200];      /* "LIST:LINE: " while reading a list file */
    struct stat output_dir;  /* never an input folder */
    int have_output_dir;
    char *err;
    size_t n;
} Expand;

static int expand_error(Expand *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int expand_error(Expand *x, const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    recipe_error(x->plan->recipe, x->entry->at, x->err, x->n, "colorize.inputs[%d]: %s%s",
                 x->entry_index, x->context, msg);
    return -1;
}

/* Adds an input once; returns the number added (0 or 1), -1 when out of memory. */
static int add_input(Expand *x, const char *path) {
    BatchPlan *p = x->plan;
    for (int i = 0; i < p->count; i++)
        if (!strcmp(p->items[i].input, path)) return 0;
    if (p->count == x->cap) {
        int cap = x->cap ? 2 * x->cap : 64;
        BatchItem *items = realloc(p->items, cap * sizeof *items);
        if (!items) return expand_error(x, "out of memory");
        p->items = items, x->cap = cap;
    }
    BatchItem *it = &p->items[p->count];
    memset(it, 0, sizeof *it);
    if (!(it->input = strdup(path))) return expand_error(x, "out of memory");
    it->from = x->entry->at;
    p->count++;
    return 1;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Hidden entries and the macOS resource forks zip tools add. */
static int hidden_member(const char *name) {
    for (const char *c = name; c; c = strchr(c, '/')) {
        if (*c == '/') c++;
        if (*c == '.' || !strncmp(c, "__MACOSX", 8)) return 1;
    }
    return 0;
}

/* The rasters inside an archive (root: "/vsizip/PATH" or a folder inside
 * one), all or those matching pattern; returns how many were added. */
static int expand_archive(Expand *x, const char *root, const char *pattern) {
    char **names = VSIReadDirRecursive(root);
    int count = CSLCount(names), added = 0;
    if (count) qsort(names, count, sizeof *names, cmp_str);
    for (int i = 0; i < count && added >= 0; i++) {
        const char *name = names[i];
        size_t len = strlen(name);
        if (!len || name[len - 1] == '/' || hidden_member(name)) continue;
        if (pattern ? fnmatch(pattern, name, FNM_PATHNAME) != 0 : raster_unlikely_name(name))
            continue;
        char *path = str_printf("%s/%s", root, name);
        int rc = path ? add_input(x, path) : expand_error(x, "out of memory");
        free(path);
        added = rc < 0 ? -1 : added + rc;
    }
    CSLDestroy(names);
    return added;
}

static int expand(Expand *x, const char *path, int depth, int allow_glob);

/* Every raster in a folder and its subfolders, in name order; returns how many. */
/* The folders being walked, innermost first: a link back to one of them
 * would otherwise be walked again and again. */
typedef struct FolderVisit {
    dev_t dev;
    ino_t ino;
    const struct FolderVisit *outer;
} FolderVisit;

static int expand_folder(Expand *x, const char *dir, const FolderVisit *outer) {
    struct stat here;
    if (stat(dir, &here) != 0) return expand_error(x, "%s: %s", dir, strerror(errno));
    for (const FolderVisit *v = outer; v; v = v->outer)
        if (v->dev == here.st_dev && v->ino == here.st_ino)
            return expand_error(x, "%s: a folder that contains itself (a link loop?)", dir);
    FolderVisit visit = {here.st_dev, here.st_ino, outer};
    char msg[2048];
    char **names = sources_folder_names(dir, msg, sizeof msg);
    if (!names) return expand_error(x, "%s", msg);
    int added = 0;
    for (int i = 0; names[i] && added >= 0; i++) {
        char *full = str_printf("%s/%s", dir, names[i]);
        struct stat st;
        int rc = 0;
        if (!full) {
            rc = expand_error(x, "out of memory");
        } else if (stat(full, &st) != 0) {
            rc = 0; /* a dangling link */
        } else if (S_ISDIR(st.st_mode)) {
            int is_output = x->have_output_dir && st.st_dev == x->output_dir.st_dev &&
                            st.st_ino == x->output_dir.st_ino;
            rc = is_output ? 0 : expand_folder(x, full, &visit);
        } else if (archive_prefix(full)) {
            char *root = str_printf("%s%s", archive_prefix(full), full);
            rc = root ? expand_archive(x, root, NULL) : expand_error(x, "out of memory");
            free(root);
        } else if (!raster_unlikely_name(names[i])) {
            rc = add_input(x, full);
        }
        free(full);
        added = rc < 0 ? -1 : added + rc;
    }
    sources_free_names(names);
    return added;
}

/* One entry per line, relative to the list's folder; '#' starts a comment line. */
static int expand_list(Expand *x, const char *path, int depth) {
    FILE *f = fopen(path, "r");
    if (!f) return expand_error(x, "%s: cannot read the list: %s", path, strerror(errno));
    char saved[sizeof x->context];
    memcpy(saved, x->context, sizeof saved);
    const char *slash = strrchr(path, '/');
    int dir_len = slash ? (int)(slash - path) : 1;
    const char *dir = slash ? path : ".";
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, added = 0;
    while (added >= 0 && getline(&line, &cap, f) >= 0) {
        lineno++;
        char *p = line, *end = line + strlen(line);
        while (*p == ' ' || *p == '\t') p++;
        while (end > p && strchr(" \t\r\n", end[-1])) *--end = '\0';
        if (!*p || *p == '#') continue;
        snprintf(x->context, sizeof x->context, "%s%s:%d: ", saved, path, lineno);
        char *entry = *p == '/' ? strdup(p) : str_printf("%.*s/%s", dir_len, dir, p);
        int rc = entry ? expand(x, entry, depth + 1, 1) : expand_error(x, "out of memory");
        free(entry);
        added = rc < 0 ? -1 : added + rc;
    }
    free(line);
    fclose(f);
    memcpy(x->context, saved, sizeof saved);
    if (added == 0) return expand_error(x, "%s: the list names no input", path);
    return added;
}

/* A glob inside an archive: "/vsizip/A.zip/PATTERN". */
static const char *find_nocase(const char *s, const char *part) {
    size_t len = strlen(part);
    for (; *s; s++)
        if (!strncasecmp(s, part, len)) return s;
    return NULL;
}

static int expand_archive_glob(Expand *x, const char *path) {
    static const char *const ext[] = {".zip/", ".tar.gz/", ".tgz/", ".tar/"};
    const char *magic = strpbrk(path, "*?[");
    for (int i = 0; i < 4; i++) {
        const char *at = find_nocase(path, ext[i]);
        if (!at || at + strlen(ext[i]) > magic) continue;
        size_t root_len = at + strlen(ext[i]) - 1 - path;
        char *root = strndup(path, root_len);
        int added = root ? expand_archive(x, root, path + root_len + 1)
                         : expand_error(x, "out of memory");
        free(root);
        if (added == 0) return expand_error(x, "'%s' matches nothing in the archive", path);
        return added;
    }
    return expand_error(x, "'%s': a pattern in a /vsi path must come after the archive's name",
                        path);
}

static int expand(Expand *x, const char *path, int depth, int allow_glob) {
    if (depth > MAX_LIST_DEPTH)
        return expand_error(x, "list files nested more than %d deep (a list naming itself?)",
                            MAX_LIST_DEPTH);
    if (allow_glob && strpbrk(path, "*?[")) {
        if (!strncmp(path, "/vsizip/", 8) || !strncmp(path, "/vsitar/", 8))
            return expand_archive_glob(x, path);
        glob_t g;
        int rc = glob(path, 0, NULL, &g);
        if (rc == GLOB_NOMATCH) return expand_error(x, "'%s' matches no file", path);
        if (rc) return expand_error(x, "'%s': cannot expand the pattern", path);
        int added = 0;
        for (size_t i = 0; i < g.gl_pathc && added >= 0; i++) {
            int r = expand(x, g.gl_pathv[i], depth, 0);
            added = r < 0 ? -1 : added + r;
        }
        globfree(&g);
        return added;
    }
    if (!strncmp(path, "/vsi", 4)) {
        VSIStatBufL st;
        if (VSIStatL(path, &st) != 0) return expand_error(x, "'%s' does not exist", path);
        if (!VSI_ISDIR(st.st_mode)) return add_input(x, path);
        int added = expand_archive(x, path, NULL);
        if (added == 0) return expand_error(x, "'%s' holds no raster", path);
        return added;
    }
    struct stat st;
    if (stat(path, &st) != 0)
        return expand_error(x, "'%s' does not exist (%s)", path, strerror(errno));
    int added;
    if (S_ISDIR(st.st_mode) && x->have_output_dir && st.st_dev == x->output_dir.st_dev &&
        st.st_ino == x->output_dir.st_ino) {
        return expand_error(x, "'%s' is the output folder", path);
    } else if (S_ISDIR(st.st_mode)) {
        if ((added = expand_folder(x, path, NULL)) == 0)
            return expand_error(x, "the folder '%s' holds no raster", path);
    } else if (archive_prefix(path)) {
        char *root = str_printf("%s%s", archive_prefix(path), path);
        added = root ? expand_archive(x, root, NULL) : expand_error(x, "out of memory");
        free(root);
        if (added == 0) return expand_error(x, "the archive '%s' holds no raster", path);
    } else if (is_list(path)) {
        added = expand_list(x, path, depth);
    } else {
        added = add_input(x, path);
    }
    return added;
}

/* ---- planning ------------------------------------------------------------------------- */

/* The input as tables show it: without the recipe's folder and the /vsi prefix. */
static char *display_path(const char *input, const char *dir) {
    const char *p = input;
    if (!strncmp(p, "/vsizip/", 8) || !strncmp(p, "/vsitar/", 8)) p += 8;
    size_t len = strlen(dir);
    if (!strncmp(p, dir, len) && p[len] == '/') p += len + 1;
    return strdup(p);
}

static void set_note(BatchItem *it, ItemStatus status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_note(BatchItem *it, ItemStatus status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->note, sizeof it->note, fmt, ap);
    va_end(ap);
    it->status = status;
}

static OGRSpatialReferenceH srs_from_wkt(const char *wkt) {
    OGRSpatialReferenceH srs = OSRNewSpatialReference(NULL);
    char *p = (char *)wkt;
    if (OSRImportFromWkt(srs, &p) != OGRERR_NONE) {
        OSRDestroySpatialReference(srs);
        return NULL;
    }
    /* x = easting / longitude, whatever the CRS's official axis order */
    OSRSetAxisMappingStrategy(srs, OAMS_TRADITIONAL_GIS_ORDER);
    return srs;
}

/* The window of the raster that covers the area of interest: 1 (window set;
 * width 0 when that is the whole raster), 0 (outside: note set), -1 (cannot
 * tell: note set). */
static int aoi_window(BatchItem *it, const double aoi[4], int width, int height,
                      const double gt[6], int has_gt, const char *wkt) {
    if (!has_gt || !*wkt) {
        snprintf(it->note, sizeof it->note, "not georeferenced: cannot place it against the aoi");
        return -1;
    }
    OGRSpatialReferenceH srs = srs_from_wkt(wkt), wgs84 = OSRNewSpatialReference(NULL);
    OSRImportFromEPSG(wgs84, 4326);
    OSRSetAxisMappingStrategy(wgs84, OAMS_TRADITIONAL_GIS_ORDER);
    OGRCoordinateTransformationH to_lonlat = srs ? OCTNewCoordinateTransformation(srs, wgs84) : NULL;
    OGRCoordinateTransformationH from_lonlat = srs ? OCTNewCoordinateTransformation(wgs84, srs) : NULL;
    /* the raster's footprint in its CRS */
    double xs[4], ys[4], fx0 = INFINITY, fy0 = INFINITY, fx1 = -INFINITY, fy1 = -INFINITY;
    for (int c = 0; c < 4; c++) {
        double px = (c & 1) ? width : 0, py = (c & 2) ? height : 0;
        xs[c] = gt[0] + px * gt[1] + py * gt[2], ys[c] = gt[3] + px * gt[4] + py * gt[5];
        fx0 = fmin(fx0, xs[c]), fx1 = fmax(fx1, xs[c]), fy0 = fmin(fy0, ys[c]), fy1 = fmax(fy1, ys[c]);
    }
    double lon0, lat0, lon1, lat1, x0, y0, x1, y1;
    int rc = -1;
    if (!to_lonlat || !from_lonlat ||
        !OCTTransformBounds(to_lonlat, fx0, fy0, fx1, fy1, &lon0, &lat0, &lon1, &lat1, 21)) {
        snprintf(it->note, sizeof it->note, "cannot express its footprint in longitude/latitude");
        goto done;
    }
    if (lon0 > lon1) lon0 = -180, lon1 = 180; /* across the antimeridian */
    /* the part of the aoi over the raster, then in the raster's CRS */
    lon0 = fmax(lon0, aoi[0]), lat0 = fmax(lat0, aoi[1]);
    lon1 = fmin(lon1, aoi[2]), lat1 = fmin(lat1, aoi[3]);
    if (!(lon0 < lon1 && lat0 < lat1)) {
        snprintf(it->note, sizeof it->note, "outside the aoi");
        rc = 0;
        goto done;
    }
    if (!OCTTransformBounds(from_lonlat, lon0, lat0, lon1, lat1, &x0, &y0, &x1, &y1, 21)) {
        snprintf(it->note, sizeof it->note, "cannot express the aoi in its CRS");
        goto done;
    }
    double inv[6], px0 = INFINITY, py0 = INFINITY, px1 = -INFINITY, py1 = -INFINITY;
    if (!GDALInvGeoTransform((double *)gt, inv)) {
        snprintf(it->note, sizeof it->note, "its geotransform cannot be inverted");
        goto done;
    }
    for (int c = 0; c < 4; c++) {
        double x = (c & 1) ? x1 : x0, y = (c & 2) ? y1 : y0;
        double px = inv[0] + x * inv[1] + y * inv[2], py = inv[3] + x * inv[4] + y * inv[5];
        px0 = fmin(px0, px), px1 = fmax(px1, px), py0 = fmin(py0, py), py1 = fmax(py1, py);
    }
    int wx0 = (int)floor(fmax(px0, 0)), wy0 = (int)floor(fmax(py0, 0));
    int wx1 = (int)ceil(fmin(px1, width)), wy1 = (int)ceil(fmin(py1, height));
    if (wx1 <= wx0 || wy1 <= wy0) {
        snprintf(it->note, sizeof it->note, "outside the aoi");
        rc = 0;
        goto done;
    }
    /* on the network's stride grid, so the pixels equal the whole raster's output */
    wx0 -= wx0 % 4, wy0 -= wy0 % 4;
    if (wx0 == 0 && wy0 == 0 && wx1 == width && wy1 == height) {
        it->window[2] = 0;
    } else {
        it->window[0] = wx0, it->window[1] = wy0, it->window[2] = wx1 - wx0, it->window[3] = wy1 - wy0;
        snprintf(it->note, sizeof it->note, "clipped to the aoi: %dx%d of %dx%d at %d,%d",
                 it->window[2], it->window[3], width, height, wx0, wy0);
    }
    rc = 1;
done:
    if (to_lonlat) OCTDestroyCoordinateTransformation(to_lonlat);
    if (from_lonlat) OCTDestroyCoordinateTransformation(from_lonlat);
    if (srs) OSRDestroySpatialReference(srs);
    OSRDestroySpatialReference(wgs84);
    return rc;
}

/* Opens the input and plans its output grid. */
static void plan_item(BatchPlan *plan, BatchItem *it) {
    const RecipeColorize *job = plan->job;
    CPLErrorReset();
    GDALDatasetH ds = GDALOpenEx(it->input, GDAL_OF_RASTER | GDAL_OF_READONLY, NULL, NULL, NULL);
    if (!ds) {
        set_note(it, ITEM_FAILED, "not a raster GDAL can read: %s", gdal_reason());
        it->wkt = strdup("");
        return;
    }
    int width = GDALGetRasterXSize(ds), height = GDALGetRasterYSize(ds);
    double gt[6];
    int has_gt = GDALGetGeoTransform(ds, gt) == CE_None;
    const char *wkt = GDALGetProjectionRef(ds);
    it->wkt = strdup(wkt ? wkt : "");
    GDALClose(ds);
    it->status = ITEM_TODO;
    if (job->has_aoi && aoi_window(it, job->aoi, width, height, gt, has_gt, it->wkt) != 1) {
        it->status = ITEM_SKIPPED;
        return;
    }
    int w = it->window[2] ? it->window[2] : width, h = it->window[2] ? it->window[3] : height;
    if (has_gt && it->window[2]) {
        gt[0] += it->window[0] * gt[1] + it->window[1] * gt[2];
        gt[3] += it->window[0] * gt[4] + it->window[1] * gt[5];
    }
    if (job->t_srs) {
        char err[512], *dst_wkt = NULL;
        it->warp.t_srs = job->t_srs;
        it->warp.resampling = job->resampling;
        if (!has_gt) {
            set_note(it, ITEM_FAILED, "not georeferenced: cannot reproject it to %s", job->t_srs);
            return;
        }
        if (warp_spec_suggest(&it->warp, w, h, gt, it->wkt, &dst_wkt, err, sizeof err)) {
            set_note(it, ITEM_FAILED, "%s", err);
            return;
        }
        it->has_warp = 1;
        free(it->wkt);
        it->wkt = strdup(dst_wkt);
        CPLFree(dst_wkt);
        const double *e = it->warp.extent;
        w = it->warp.width, h = it->warp.height;
        /* the geotransform gdalwarp derives from -te and -ts */
        double warped[6] = {e[0], (e[2] - e[0]) / w, 0, e[3], 0, -(e[3] - e[1]) / h};
        memcpy(gt, warped, sizeof gt);
        has_gt = 1;
    }
    it->width = w, it->height = h, it->has_geotransform = has_gt;
    if (has_gt) memcpy(it->geotransform, gt, sizeof gt);
}

static const char *crs_name(const char *wkt, char *buf, size_t n) {
    OGRSpatialReferenceH srs = *wkt ? srs_from_wkt(wkt) : NULL;
    const char *auth = srs ? OSRGetAuthorityName(srs, NULL) : NULL;
    const char *code = srs ? OSRGetAuthorityCode(srs, NULL) : NULL;
    if (auth && code) snprintf(buf, n, "%s:%s", auth, code);
    else snprintf(buf, n, "%s", srs && OSRGetName(srs) ? OSRGetName(srs) : "no CRS");
    if (srs) OSRDestroySpatialReference(srs);
    return buf;
}

static int same_crs(const char *a, const char *b) {
    if (!strcmp(a, b)) return 1;
    if (!*a || !*b) return 0;
    OGRSpatialReferenceH sa = srs_from_wkt(a), sb = srs_from_wkt(b);
    int same = sa && sb && OSRIsSame(sa, sb);
    if (sa) OSRDestroySpatialReference(sa);
    if (sb) OSRDestroySpatialReference(sb);
    return same;
}

/* The recipe's settings that GDAL checks: t_srs, format, model. */
static int check_settings(BatchPlan *plan, int model_optional, char *err, size_t n) {
    const RecipeColorize *job = plan->job;
    const Recipe *r = plan->recipe;
    if (job->t_srs) {
        OGRSpatialReferenceH srs = OSRNewSpatialReference(NULL);
        CPLErrorReset();
        int bad = OSRSetFromUserInput(srs, job->t_srs) != OGRERR_NONE;
        OSRDestroySpatialReference(srs);
        if (bad) {
            recipe_error(r, job->t_srs_at, err, n, "colorize.t_srs: '%s' is not a CRS GDAL knows "
                         "(%s); e.g. EPSG:3857", job->t_srs, gdal_reason());
            return -1;
        }
    }
    if (job->format) {
        GDALDriverH d = GDALGetDriverByName(job->format);
        if (!d || !GDALGetMetadataItem(d, GDAL_DCAP_RASTER, NULL) ||
            (!GDALGetMetadataItem(d, GDAL_DCAP_CREATE, NULL) &&
             !GDALGetMetadataItem(d, GDAL_DCAP_CREATECOPY, NULL))) {
            recipe_error(r, job->format_at, err, n, "colorize.format: '%s' is not a raster format "
                         "GDAL can write (see gdalinfo --formats)", job->format);
            return -1;
        }
    }
    if (job->model.path) {
        if (!model_optional && access(job->model.path, R_OK) != 0) {
            recipe_error(r, job->model.at, err, n, "colorize.model: cannot read '%s': %s",
                         job->model.path, strerror(errno));
            return -1;
        }
        plan->model_path = strdup(job->model.path);
    } else {
        const char *path = default_model_path();
        if (!path) {
            recipe_error(r, job->at, err, n, "colorize: no model given and the default "
                         "models/spynco-default.h5 was not found; add 'model: FILE'");
            return -1;
        }
        plan->model_path = strdup(path);
    }
    return 0;
}

static int cmp_item_names(const void *a, const void *b) {
    const BatchItem *x = *(const BatchItem *const *)a, *y = *(const BatchItem *const *)b;
    return strcmp(x->output_name, y->output_name);
}

/* Output names: from the pattern, unique, none overwriting an input. */
static int name_outputs(BatchPlan *plan, char *err, size_t n) {
    const RecipeColorize *job = plan->job;
    char pattern[256];
    if (job->name) {
        snprintf(pattern, sizeof pattern, "%s", job->name);
    } else { /* {stem}_color with the format's extension */
        GDALDriverH d = GDALGetDriverByName(job->format ? job->format : "GTiff");
        const char *ext = d ? GDALGetMetadataItem(d, GDAL_DMD_EXTENSION, NULL) : NULL;
        snprintf(pattern, sizeof pattern, "{stem}_color.%s", ext && *ext ? ext : "tif");
    }
    RecipeMark name_at = job->name ? job->name_at : job->at;
    for (int i = 0; i < plan->count; i++) {
        BatchItem *it = &plan->items[i];
        char name[1024];
        if (recipe_output_name(name, sizeof name, pattern, it->input, i + 1, plan->count)) {
            recipe_error(plan->recipe, name_at, err, n, "colorize.name: no file name for "
                         "'%s' from '%s'", it->input, pattern);
            return -1;
        }
        it->output_name = strdup(name);
        it->output = str_printf("%s/%s", plan->output_dir, name);
        it->display = display_path(it->input, plan->recipe->dir);
        if (!it->output_name || !it->output || !it->display) {
            snprintf(err, n, "out of memory");
            return -1;
        }
        if (!strcmp(it->output, it->input)) {
            recipe_error(plan->recipe, name_at, err, n, "colorize.name: the output of '%s' "
                         "would overwrite it", it->display);
            return -1;
        }
    }
    BatchItem **sorted = malloc(plan->count * sizeof *sorted);
    if (!sorted) {
        snprintf(err, n, "out of memory");
        return -1;
    }
    for (int i = 0; i < plan->count; i++) sorted[i] = &plan->items[i];
    qsort(sorted, plan->count, sizeof *sorted, cmp_item_names);
    int rc = 0;
    for (int i = 1; i < plan->count && rc == 0; i++)
        if (!strcmp(sorted[i - 1]->output_name, sorted[i]->output_name)) {
            recipe_error(plan->recipe, name_at, err, n, "colorize.name: '%s' and '%s' would "
                         "both be written to '%s'; use {parent} or {index} in the pattern",
                         sorted[i - 1]->display, sorted[i]->display, sorted[i]->output_name);
            rc = -1;
        }
    free(sorted);
    return rc;
}

/* A mosaic needs one CRS. */
static int check_mosaic(const BatchPlan *plan, char *err, size_t n) {
    const BatchItem *first = NULL;
    for (int i = 0; i < plan->count; i++) {
        const BatchItem *it = &plan->items[i];
        if (it->status != ITEM_TODO) continue;
        if (!first) {
            first = it;
        } else if (!same_crs(first->wkt, it->wkt)) {
            char a[128], b[128];
            recipe_error(plan->recipe, plan->job->mosaic_at, err, n, "colorize.mosaic: the "
                         "outputs would be in different CRSs (%s for %s, %s for %s); add t_srs to "
                         "reproject them into one", crs_name(first->wkt, a, sizeof a),
                         first->display, crs_name(it->wkt, b, sizeof b), it->display);
            return -1;
        }
    }
    return 0;
}

int batch_plan(BatchPlan *plan, const Recipe *r, int model_optional, char *err, size_t n) {
    memset(plan, 0, sizeof *plan);
    GDALAllRegister();
    plan->recipe = r;
    plan->job = &r->colorize;
    const RecipeColorize *job = plan->job;
    plan->output_dir = strdup(job->output.path);
    plan->journal_dir = str_printf("%s/%s", job->output.path, JOURNAL_DIR);
    if (job->mosaic) plan->mosaic_path = str_printf("%s/%s", job->output.path, job->mosaic);
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    snprintf(plan->run_id, sizeof plan->run_id, "%.40s-%ld-%lld", host, (long)getpid(),
             (long long)time(NULL));
    if (!plan->output_dir || !plan->journal_dir || (job->mosaic && !plan->mosaic_path)) {
        snprintf(err, n, "out of memory");
        return -1;
    }
    if (check_settings(plan, model_optional, err, n)) return -1;
    Expand x = {.plan = plan, .err = err, .n = n};
    x.have_output_dir = stat(job->output.path, &x.output_dir) == 0;
    for (int i = 0; i < job->inputs.count; i++) {
        x.entry = &job->inputs.items[i], x.entry_index = i;
        if (expand(&x, x.entry->path, 0, 1) < 0) return -1;
    }
    if (name_outputs(plan, err, n)) return -1;
    CPLPushErrorHandler(CPLQuietErrorHandler);
    for (int i = 0; i < plan->count; i++) plan_item(plan, &plan->items[i]);
    CPLPopErrorHandler();
    for (int i = 0; i < plan->count; i++)
        if (!plan->items[i].wkt) {
            snprintf(err, n, "out of memory");
            return -1;
        }
    return plan->mosaic_path ? check_mosaic(plan, err, n) : 0;
}

/* ---- the journal: what is complete --------------------------------------------------- */

static unsigned long long fnv1a(unsigned long long h, const char *s) {
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

int batch_keep_luminance(const RecipeColorize *job) {
    return job->keep_luminance < 0 ? KEEP_LUMINANCE_DEFAULT : job->keep_luminance;
}

int batch_fingerprint(BatchPlan *plan, char *err, size_t n) {
    const RecipeColorize *job = plan->job;
    long long bytes;
    unsigned long crc;
    if (file_checksum(plan->model_path, &bytes, &crc)) {
        snprintf(err, n, "%s: cannot read the model: %s", plan->model_path, strerror(errno));
        return -1;
    }
    char buf[256];
    snprintf(buf, sizeof buf, "model=%08lx/%lld;band=%d;scale=%d,%.17g,%.17g;ovr=%d;lum=%d;", crc,
             bytes, job->band, job->has_scale, job->scale[0], job->scale[1], job->overviews,
             batch_keep_luminance(job));
    unsigned long long h = fnv1a(1469598103934665603ull, buf);
    /* the resampling matters only when reprojecting */
    if (job->t_srs) h = fnv1a(fnv1a(fnv1a(fnv1a(h, "t_srs="), job->t_srs), ";r="), job->resampling);
    h = fnv1a(fnv1a(h, ";of="), job->format ? job->format : "GTiff");
    for (int i = 0; job->creation_options && job->creation_options[i]; i++)
        h = fnv1a(fnv1a(h, ";co="), job->creation_options[i]);
    snprintf(plan->fingerprint, sizeof plan->fingerprint, "%016llx", h);
    return 0;
}

static int close_enough(const double a[6], const double b[6]) {
    double tol = 1e-6 * (fabs(b[1]) + fabs(b[5])); /* a millionth of a pixel */
    for (int i = 0; i < 6; i++)
        if (!(fabs(a[i] - b[i]) <= tol)) return 0;
    return 1;
}

/* Opens the output and compares it with the plan: 0 if as planned, else -1
 * with the difference in why. bands: what it has. */
static int output_as_planned(const BatchItem *it, int *bands, char *why, size_t n) {
    CPLErrorReset();
    GDALDatasetH ds = GDALOpenEx(it->output, GDAL_OF_RASTER | GDAL_OF_READONLY, NULL, NULL, NULL);
    if (!ds) {
        snprintf(why, n, "the output is not readable by GDAL (%s)", gdal_reason());
        return -1;
    }
    int w = GDALGetRasterXSize(ds), h = GDALGetRasterYSize(ds);
    double gt[6];
    int has_gt = GDALGetGeoTransform(ds, gt) == CE_None;
    const char *wkt = GDALGetProjectionRef(ds);
    *bands = GDALGetRasterCount(ds);
    int rc = -1;
    char a[128], b[128];
    if (w != it->width || h != it->height)
        snprintf(why, n, "the output is %dx%d, not %dx%d", w, h, it->width, it->height);
    else if (*bands != 3 && *bands != 4)
        snprintf(why, n, "the output has %d bands, not 3 (RGB) or 4 (RGBA)", *bands);
    else if (has_gt != it->has_geotransform || (has_gt && !close_enough(gt, it->geotransform)))
        snprintf(why, n, "the output's geotransform differs from the planned one");
    else if (!same_crs(wkt ? wkt : "", it->wkt))
        snprintf(why, n, "the output's CRS is %s, not %s", crs_name(wkt ? wkt : "", a, sizeof a),
                 crs_name(it->wkt, b, sizeof b));
    else
        rc = 0;
    GDALClose(ds);
    return rc;
}

/* 1 if the journal shows the output complete and valid; else 0 with the reason in the note. */
static int output_complete(const BatchPlan *plan, BatchItem *it) {
    JournalEntry e;
    char err[512];
    struct stat st;
    int found = journal_read(plan->journal_dir, it->output_name, &e, err, sizeof err);
    int exists = stat(it->output, &st) == 0;
    if (found == 1) {
        if (exists) snprintf(it->note, sizeof it->note, "output without a journal entry: redo");
        return 0;
    }
    if (found < 0) {
        snprintf(it->note, sizeof it->note, "%.480s: redo", err);
        return 0;
    }
    if (e.state == JOURNAL_FAILED) {
        snprintf(it->note, sizeof it->note, "failed before: %.480s", e.message);
        return 0;
    }
    if (e.state != JOURNAL_DONE) {
        snprintf(it->note, sizeof it->note, "%s before (%s, process %ld): redo",
                 e.state == JOURNAL_RUNNING ? "stopped while running" : "interrupted", e.host,
                 e.pid);
        return 0;
    }
    long long bytes;
    unsigned long crc;
    int bands;
    if (strcmp(e.fingerprint, plan->fingerprint))
        snprintf(it->note, sizeof it->note, "the model or the settings changed: redo");
    else if (!exists)
        snprintf(it->note, sizeof it->note, "the output is missing: redo");
    else if (st.st_size != e.bytes)
        snprintf(it->note, sizeof it->note, "the output has %lld bytes, the journal says %lld: redo",
                 (long long)st.st_size, e.bytes);
    else if (output_as_planned(it, &bands, it->note, sizeof it->note))
        ;
    else if (bands != e.bands)
        snprintf(it->note, sizeof it->note, "the output has %d bands, the journal says %d: redo",
                 bands, e.bands);
    else if (file_checksum(it->output, &bytes, &crc) || crc != e.crc32)
        snprintf(it->note, sizeof it->note, "the output's checksum differs from the journal's: redo");
    else {
        it->bands = bands;
        it->note[0] = 0;
        return 1;
    }
    return 0;
}

void batch_check_journal(BatchPlan *plan) {
    CPLPushErrorHandler(CPLQuietErrorHandler);
    for (int i = 0; i < plan->count; i++) {
        BatchItem *it = &plan->items[i];
        if (it->status != ITEM_TODO) continue;
        char clip[512];
        snprintf(clip, sizeof clip, "%s", it->note); /* the aoi note, if any */
        if (output_complete(plan, it)) it->status = ITEM_KEPT;
        else if (!it->note[0]) snprintf(it->note, sizeof it->note, "%s", clip);
    }
    CPLPopErrorHandler();
}

/* ---- running ---------------------------------------------------------------------------- */

int batch_make_folders(const char *path) {
    char buf[4200];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p) continue;
        char c = *p;
        *p = 0;
        struct stat st;
        if (mkdir(buf, 0777) != 0 && (errno != EEXIST || stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)))
            return -1;
        if (!c) return 0;
        *p = c;
    }
}

int batch_prepare(const BatchPlan *plan, char *err, size_t n) {
    if (batch_make_folders(plan->journal_dir)) {
        snprintf(err, n, "%s: cannot create the folder: %s", plan->journal_dir, strerror(errno));
        return -1;
    }
    return 0;
}

int batch_lock(const BatchPlan *plan, char *err, size_t n) {
    char path[4200];
    snprintf(path, sizeof path, "%s/.spynco-lock", plan->output_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) {
        snprintf(err, n, "%s: cannot create the lock file: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int busy = errno == EWOULDBLOCK;
        char reason[256], holder[256];
        snprintf(reason, sizeof reason, "%s", strerror(errno));
        ssize_t got = pread(fd, holder, sizeof holder - 1, 0);
        holder[got > 0 ? got : 0] = 0;
        close(fd);
        if (busy)
            snprintf(err, n, "%s: another spynco run is writing into this folder (%s); wait for "
                     "it to end or stop it, or give this recipe another output folder",
                     plan->output_dir, *holder ? holder : "it has not said which process yet");
        else
            snprintf(err, n, "%s: cannot lock the output folder: %s", path, reason);
        return -1;
    }
    char host[64] = "?", me[160];
    gethostname(host, sizeof host - 1);
    int len = snprintf(me, sizeof me, "process %ld on %s", (long)getpid(), host);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, me, len, 0) != len) {
        snprintf(err, n, "%s: cannot write the lock file: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

void batch_unlock(int lock) {
    if (lock >= 0) close(lock); /* releases the flock */
}

/* Files ".NAME.tmp-*" that the writer of a killed process left in dir. */
static void remove_stale_temporaries(const char *dir, const char *name) {
    char prefix[1100];
    snprintf(prefix, sizeof prefix, ".%s.tmp-", name);
    remove_files_with_prefix(dir, prefix);
}

static void remove_output(const char *path) {
    char aux[4200];
    unlink(path);
    snprintf(aux, sizeof aux, "%s.aux.xml", path);
    unlink(aux);
}

ItemStatus batch_run_input(const BatchPlan *plan, int i, const BatchOptions *opt, char *err,
                           size_t n) {
    const BatchItem *it = &plan->items[i];
    const RecipeColorize *job = plan->job;
    JournalEntry e;
    memset(&e, 0, sizeof e);
    e.state = JOURNAL_RUNNING;
    snprintf(e.run, sizeof e.run, "%s", plan->run_id);
    snprintf(e.input, sizeof e.input, "%s", it->input);
    snprintf(e.fingerprint, sizeof e.fingerprint, "%s", plan->fingerprint);
    gethostname(e.host, sizeof e.host - 1);
    e.pid = (long)getpid();
    journal_remove_stale(plan->journal_dir, it->output_name);
    remove_stale_temporaries(plan->output_dir, it->output_name);
    /* an old output is stale or invalid, or the item would not run: it goes first */
    remove_output(it->output);
    if (journal_write(plan->journal_dir, it->output_name, &e, err, n)) return ITEM_FAILED;

    ColorizeOptions co = {.model_path = plan->model_path, .tile = job->tile,
                          .threads = opt->threads ? opt->threads : job->threads,
                          .quiet = opt->quiet, .band = job->band, .has_scale = job->has_scale,
                          .scale_min = job->scale[0], .scale_max = job->scale[1],
                          .format = job->format, .create_options = job->creation_options,
                          .overviews = job->overviews,
                          .keep_luminance = batch_keep_luminance(job), .cancel = opt->cancel,
                          .warp = it->has_warp ? &it->warp : NULL,
                          .poll = opt->poll, .poll_arg = opt->poll_arg};
    memcpy(co.window, it->window, sizeof co.window);
    double t0 = now();
    CPLPushErrorHandler(CPLQuietErrorHandler);
    int rc = colorize_file(it->input, it->output, &co, err, n);
    ItemStatus status = ITEM_FAILED;
    if (rc == 0 && output_as_planned(it, &e.bands, err, n) == 0 &&
        file_checksum(it->output, &e.bytes, &e.crc32) == 0) {
        status = ITEM_DONE;
        e.state = JOURNAL_DONE;
        e.width = it->width, e.height = it->height;
        e.has_geotransform = it->has_geotransform;
        memcpy(e.geotransform, it->geotransform, sizeof e.geotransform);
    } else if (rc == 0) {
        remove_output(it->output); /* not what was planned: nothing invalid stays */
    }
    CPLPopErrorHandler();
    if (status != ITEM_DONE && opt->cancel && *opt->cancel) {
        status = ITEM_INTERRUPTED;
        e.state = JOURNAL_INTERRUPTED;
        snprintf(err, n, "interrupted");
    } else if (status != ITEM_DONE) {
        e.state = JOURNAL_FAILED;
        snprintf(e.message, sizeof e.message, "%s", err);
    }
    e.seconds = now() - t0;
    char jerr[512];
    if (journal_write(plan->journal_dir, it->output_name, &e, jerr, sizeof jerr)) {
        snprintf(err, n, "%s", jerr);
        return ITEM_FAILED;
    }
    return status;
}

void batch_collect(BatchPlan *plan) {
    for (int i = 0; i < plan->count; i++) {
        BatchItem *it = &plan->items[i];
        JournalEntry e;
        char err[512];
        if (it->status != ITEM_TODO ||
            journal_read(plan->journal_dir, it->output_name, &e, err, sizeof err) != 0 ||
            strcmp(e.run, plan->run_id))
            continue; /* not reached by this run */
        it->seconds = e.seconds;
        if (e.state == JOURNAL_DONE) {
            it->status = ITEM_DONE;
            it->bands = e.bands;
        } else if (e.state == JOURNAL_FAILED) {
            set_note(it, ITEM_FAILED, "%s", e.message);
        } else {
            set_note(it, ITEM_INTERRUPTED, "interrupted");
        }
    }
}

int batch_mosaic(BatchPlan *plan, const BatchOptions *opt, char *err, size_t n) {
    if (!plan->mosaic_path) return 0;
    const char **paths = malloc((plan->count + 1) * sizeof *paths);
    if (!paths) {
        snprintf(err, n, "out of memory");
        return -1;
    }
    int count = 0, rgb = 0, rgba = 0;
    for (int i = 0; i < plan->count; i++) {
        const BatchItem *it = &plan->items[i];
        if (it->status != ITEM_DONE && it->status != ITEM_KEPT) continue;
        paths[count++] = it->output;
        rgb += it->bands == 3, rgba += it->bands == 4;
    }
    if (count == 0) {
        free(paths);
        return 1;
    }
    /* RGB and RGBA outputs together: the RGB ones get an opaque alpha */
    char *args[] = {"-addalpha", NULL};
    GDALBuildVRTOptions *vo = GDALBuildVRTOptionsNew(rgb && rgba ? args : NULL, NULL);
    char *dir = strdup(plan->mosaic_path), *slash = strrchr(dir, '/');
    char *tmp = str_printf("%.*s/.%s.tmp-%ld", (int)(slash - dir), dir, slash + 1, (long)getpid());
    if (!opt->quiet) fprintf(stderr, "mosaic of %d outputs: %s\n", count, plan->mosaic_path);
    CPLErrorReset();
    int usage_error = 0;
    GDALDatasetH vrt = vo && tmp ? GDALBuildVRT(tmp, count, NULL, paths, vo, &usage_error) : NULL;
    int ok = vrt && GDALGetRasterCount(vrt) >= 3;
    if (vrt) GDALClose(vrt); /* writes the file */
    ok = ok && CPLGetLastErrorType() != CE_Failure && rename(tmp, plan->mosaic_path) == 0;
    if (!ok) {
        snprintf(err, n, "%s: cannot build the mosaic: %s", plan->mosaic_path, gdal_reason());
        if (tmp) unlink(tmp);
    }
    GDALBuildVRTOptionsFree(vo);
    free(tmp), free(dir), free(paths);
    return ok ? 0 : -1;
}

/* ---- reports ------------------------------------------------------------------------------ */

static const char *status_name(ItemStatus s) {
    static const char *const names[] = {"todo", "kept", "skipped", "failed", "done",
                                        "interrupted"};
    return names[s];
}

static int display_width(const BatchPlan *plan) {
    int w = 5;
    for (int i = 0; i < plan->count; i++) {
        int len = (int)strlen(plan->items[i].display);
        if (len > w) w = len;
    }
    return w < 60 ? w : 60;
}

/* The end of s if longer than width, marked with "...". */
static const char *fit(const char *s, int width) {
    int len = (int)strlen(s);
    return len <= width ? s : s + len - width + 3;
}

void batch_print_plan(const BatchPlan *plan, FILE *out) {
    int w = display_width(plan), name_w = 6;
    for (int i = 0; i < plan->count; i++)
        if ((int)strlen(plan->items[i].output_name) > name_w)
            name_w = (int)strlen(plan->items[i].output_name);
    fprintf(out, "colorize: %d input%s into %s\n", plan->count, plan->count == 1 ? "" : "s",
            plan->output_dir);
    for (int i = 0; i < plan->count; i++) {
        const BatchItem *it = &plan->items[i];
        const char *action = it->status == ITEM_TODO      ? "colorize"
                           : it->status == ITEM_KEPT      ? "keep (complete and valid)"
                           : it->status == ITEM_SKIPPED   ? "skip"
                                                          : "fail";
        const char *shown = fit(it->display, w);
        int show_output = it->status == ITEM_TODO || it->status == ITEM_KEPT;
        fprintf(out, "  %s%-*s  %-2s %-*s  %s%s%s\n", shown == it->display ? "" : "...",
                shown == it->display ? w : w - 3, shown, show_output ? "->" : "", name_w,
                show_output ? it->output_name : "", action, it->note[0] ? ": " : "", it->note);
    }
    if (plan->mosaic_path) fprintf(out, "mosaic: %s\n", plan->mosaic_path);
}

void batch_print_summary(const BatchPlan *plan, FILE *out) {
    int w = display_width(plan), counts[6] = {0};
    fprintf(out, "%-*s  %-11s %8s  %s\n", w, "input", "status", "seconds", "output");
    for (int i = 0; i < plan->count; i++) {
        const BatchItem *it = &plan->items[i];
        counts[it->status]++;
        char secs[32] = "-";
        if (it->seconds > 0) snprintf(secs, sizeof secs, "%.1f", it->seconds); /* it ran */
        int has_output = it->status == ITEM_DONE || it->status == ITEM_KEPT;
        const char *shown = fit(it->display, w);
        fprintf(out, "%s%-*s  %-11s %8s  %s%s%s\n", shown == it->display ? "" : "...",
                shown == it->display ? w : w - 3, shown,
                it->status == ITEM_TODO ? "not reached" : status_name(it->status), secs,
                has_output ? it->output_name : "-", it->note[0] && !has_output ? "  " : "",
                has_output ? "" : it->note);
    }
    fprintf(out, "%d input%s: %d done, %d kept, %d skipped, %d failed", plan->count,
            plan->count == 1 ? "" : "s", counts[ITEM_DONE], counts[ITEM_KEPT],
            counts[ITEM_SKIPPED], counts[ITEM_FAILED]);
    if (counts[ITEM_INTERRUPTED] || counts[ITEM_TODO])
        fprintf(out, ", %d interrupted, %d not reached", counts[ITEM_INTERRUPTED],
                counts[ITEM_TODO]);
    fprintf(out, "\n");
}

int batch_failures(const BatchPlan *plan) {
    int failed = 0;
    for (int i = 0; i < plan->count; i++)
        failed += plan->items[i].status == ITEM_FAILED || plan->items[i].status == ITEM_INTERRUPTED;
    return failed;
}

void batch_free(BatchPlan *plan) {
    for (int i = 0; i < plan->count; i++) {
        BatchItem *it = &plan->items[i];
        free(it->input), free(it->display), free(it->output_name), free(it->output), free(it->wkt);
    }
    free(plan->items);
    free(plan->output_dir), free(plan->journal_dir), free(plan->model_path), free(plan->mosaic_path);
    memset(plan, 0, sizeof *plan);
}
