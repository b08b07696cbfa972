/* samples.h: the training sets, random crops from unpaired gray and color images.
 *
 * A set is built from sources (io/sources.h): folders (searched recursively,
 * in name order, for every file GDAL opens as a raster), list files (.txt,
 * .lst or .list: one path per line, relative to the list's folder, '#' starts
 * a comment line) and single rasters. Bands and scaling are those of colorize (io/raster.h):
 *  - gray set: 1 band (or band 1 of gray+alpha) as is; 3+ bands only with
 *    gray_from_color, through H_t and rounded to 8 bits;
 *  - color set: 3+ bands, R, G, B by band_map or colour interpretation;
 *  - non-Byte data mapped to 0..255 by the image's 2nd-98th percentiles.
 * Images up to max_memory_pixels are decoded once, at open, and kept as 8-bit
 * planes (plus a validity mask if they have no-data); larger ones stay open
 * and each crop is a window read through GDAL when drawn. A crop with more
 * than 10% no-data is redrawn; its remaining no-data pixels read as 0 (mid
 * gray), as colorize feeds them to the network.
 *
 * Skipped with a warning: images smaller than the crop; in folders, files GDAL
 * cannot read (files that are obviously no images, .txt, .xml, .msk, ...,
 * silently). Errors: a missing source, a named file GDAL cannot read, an image
 * of the wrong kind for its set (or a palette image), a folder or list that
 * contains itself, an empty set.
 *
 * A batch depends only on the set and the Rng state: image, crop origin and
 * one of the 8 rotations/flips are drawn in this order for each crop.
 * All GDAL calls happen on the calling thread.
 */
#ifndef SPYNCO_SAMPLES_H
#define SPYNCO_SAMPLES_H

#include <stddef.h>

#include "nn/rng.h"

typedef enum { DOMAIN_GRAY, DOMAIN_COLOR } SampleDomain;

typedef struct {
    SampleDomain domain;
    int gray_from_color;        /* gray set: 3+ band images become gray through H_t */
    int band_map[3];            /* color set: 1-based R, G, B bands; all 0: automatic */
    float ht[3];                /* the model's H_t weights */
    int crop;                   /* crop side in pixels */
    long long max_memory_pixels; /* larger images are sampled from disk; 0: 16 megapixels */
    int verbose;                /* warnings and a summary on stderr */
} SampleSetOptions;

typedef struct SampleSet SampleSet;

/* NULL with a message in err on failure. */
SampleSet *sample_set_open(const char *const *sources, int num_sources, const SampleSetOptions *opt,
                           char *err, size_t err_size);
/* Number of images (a large raster counts once, like a small one). */
int sample_set_count(const SampleSet *set);
const char *sample_set_path(const SampleSet *set, int i);
/* batch crops as [batch, C, crop, crop] floats, v/127.5 - 1 on the 0..255
 * scale; C = 1 (gray set) or 3 (color set). -1 with a message on a read error
 * or when no crop with at most 10% no-data turns up. */
int sample_batch(SampleSet *set, Rng *rng, int batch, float *out, char *err, size_t err_size);
/* Crops first..first+count-1 of such a batch, into out: every crop is drawn,
 * so rng ends where sample_batch leaves it, but only these are read and
 * written (others are read only as far as their no-data decides a redraw).
 * Data-parallel training: each rank takes its slice of the same batch. */
int sample_batch_part(SampleSet *set, Rng *rng, int batch, int first, int count, float *out,
                      char *err, size_t err_size);
void sample_set_close(SampleSet *set);

#endif
