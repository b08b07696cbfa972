/* train_report.h: what people watch while a model trains.
 *  - losses.csv: one row per step (step, epoch, lr, every loss term, seconds
 *    since the session started; a --learned-f run adds gan_f, total_da);
 *    on resume, rows after the checkpoint's step are dropped first, so the
 *    file always describes the run that the checkpoint continues.
 *  - losses.svg: the loss curves, redrawn from losses.csv.
 *  - samples_epoch_NNNN.png: a fixed set of color crops as rows of
 *    gray (H_t) | colorized (G in inference mode) | real color. */
#ifndef SPYNCO_TRAIN_REPORT_H
#define SPYNCO_TRAIN_REPORT_H

#include <stdio.h>

#include "io/samples.h"
#include "nn/gan.h"
#include "nn/infer.h"


/* learned_f: the header also names the columns gan_f and total_da (after seconds). */
int train_report_open(FILE **csv, const char *out_dir, long step, int learned_f, char *err,
                      size_t err_size);
void train_report_losses(FILE *csv, long step, long epoch, float lr, const GanLosses *L,
                         double seconds);
int train_report_plot(const char *out_dir, char *err, size_t err_size);

#define PREVIEW_ROWS 4

typedef struct {
    int crop;
    float ht[3];
    float *color;     /* PREVIEW_ROWS crops [3, crop, crop] */
    float *gray, *rgb;
} TrainPreview;

/* Draws the preview crops from the color set with their own generator, so
 * the training's random stream is untouched. */
int train_preview_init(TrainPreview *p, SampleSet *color_set, int crop, const float ht[3],
                       unsigned long long seed, char *err, size_t err_size);
int train_preview_write(TrainPreview *p, const Network *g, const char *out_dir, long epoch,
                        char *err, size_t err_size);
void train_preview_free(TrainPreview *p);

#endif
