#include "pipeline/train_report.h"

#include <cpl_conv.h>
#include <gdal.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/ops.h"
#include "nn/rng.h"

#define CSV_HEADER "step,epoch,lr,total_g,cons_a,cons_b,gan,contours,total_d,seconds\n"
#define CSV_HEADER_LEARNED_F \
    "step,epoch,lr,total_g,cons_a,cons_b,gan,contours,total_d,seconds,gan_f,total_da\n"

int train_report_open(FILE **csv, const char *out_dir, long step, int learned_f, char *err,
                      size_t n) {
    char path[4200], tmp[4300], line[1024];
    snprintf(path, sizeof path, "%s/losses.csv", out_dir);
    snprintf(tmp, sizeof tmp, "%s/.losses.csv.tmp-%ld", out_dir, (long)getpid());
    FILE *out = fopen(tmp, "w");
    if (!out) {
        snprintf(err, n, "%s: cannot write", tmp);
        return -1;
    }
    fputs(learned_f ? CSV_HEADER_LEARNED_F : CSV_HEADER, out);
    /* keep the rows up to the checkpoint's step: a killed run may have logged more */
    FILE *in = step > 0 ? fopen(path, "r") : NULL;
    while (in && fgets(line, sizeof line, in))
        if (line[0] >= '0' && line[0] <= '9' && atol(line) <= step) fputs(line, out);
    if (in) fclose(in);
    if (fclose(out) || rename(tmp, path)) {
        unlink(tmp);
        snprintf(err, n, "%s: cannot write", path);
        return -1;
    }
    *csv = fopen(path, "a");
    if (!*csv) {
        snprintf(err, n, "%s: cannot append", path);
        return -1;
    }
    return 0;
}

void train_report_losses(FILE *csv, long step, long epoch, float lr, const GanLosses *L,
                         double seconds) {
    double a = 0, b = 0, g = 0;
    for (int s = 0; s < 3; s++) a += L->cons_a[s], b += L->cons_b[s], g += L->gan[s];
    fprintf(csv, "%ld,%ld,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.1f", step, epoch, lr, L->total_g, a, b,
            g, L->contours, L->total_d, seconds);
    if (L->learned_f) fprintf(csv, ",%.6g,%.6g", L->gan_f, L->total_da);
    fputc('\n', csv);
}

/* ---- the SVG plot ------------------------------------------------------------- */

#define PLOT_COLUMNS 6 /* total_g, cons_a, cons_b, gan, contours, total_d */
#define PLOT_POINTS 800

int train_report_plot(const char *out_dir, char *err, size_t n) {
    char path[4200], tmp[4300], line[1024];
    snprintf(path, sizeof path, "%s/losses.csv", out_dir);
    FILE *in = fopen(path, "r");
    if (!in) {
        snprintf(err, n, "%s: cannot read", path);
        return -1;
    }
    size_t cap = 1024, rows = 0;
    double *data = malloc(cap * (PLOT_COLUMNS + 1) * sizeof(double));
    while (data && fgets(line, sizeof line, in)) {
        double v[10];
        if (sscanf(line, "%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf", &v[0], &v[1], &v[2], &v[3], &v[4],
                   &v[5], &v[6], &v[7], &v[8], &v[9]) != 10)
            continue;
        if (rows == cap) {
            double *more = realloc(data, 2 * cap * (PLOT_COLUMNS + 1) * sizeof(double));
            if (!more) break;
            data = more, cap *= 2;
        }
        double *row = data + rows++ * (PLOT_COLUMNS + 1);
        row[0] = v[0];
        for (int c = 0; c < PLOT_COLUMNS; c++) row[c + 1] = v[3 + c];
    }
    fclose(in);
    snprintf(path, sizeof path, "%s/losses.svg", out_dir);
    snprintf(tmp, sizeof tmp, "%s/.losses.svg.tmp-%ld", out_dir, (long)getpid());
    FILE *out = data ? fopen(tmp, "w") : NULL;
    if (!out) {
        free(data);
        snprintf(err, n, "%s: cannot write", tmp);
        return -1;
    }
    /* Two panels: the generator's terms (log scale), the discriminator's loss. */
    static const char *names[PLOT_COLUMNS] = {"G total", "consistency A", "consistency B",
                                              "G realism", "contours", "D"};
    static const char *colors[PLOT_COLUMNS] = {"#000000", "#1f77b4", "#2ca02c", "#d62728",
                                               "#9467bd", "#ff7f0e"};
    const int W = 900, PH = 260, left = 60, top = 30, gap = 50, pw = W - left - 20;
    fprintf(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                 "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, top + 2 * PH + gap + 40);
    double max_step = rows ? data[(rows - 1) * (PLOT_COLUMNS + 1)] : 1;
    size_t stride = rows > PLOT_POINTS ? rows / PLOT_POINTS : 1;
    for (int panel = 0; panel < 2; panel++) {
        int y0 = top + panel * (PH + gap);
        int first = panel == 0 ? 0 : 5, last = panel == 0 ? 4 : 5;
        double lo = INFINITY, hi = -INFINITY;
        for (size_t r = 0; r < rows; r++)
            for (int c = first; c <= last; c++) {
                double v = data[r * (PLOT_COLUMNS + 1) + 1 + c];
                if (v > 0) lo = fmin(lo, log10(v)), hi = fmax(hi, log10(v));
            }
        if (!(hi > lo)) lo = -1, hi = 1;
        fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#888\"/>\n",
                left, y0, pw, PH);
        fprintf(out, "<text x=\"%d\" y=\"%d\">%s (log scale, %.3g .. %.3g) vs step (0 .. %.0f)</text>\n",
                left, y0 - 8, panel == 0 ? "generator losses" : "discriminator loss", pow(10, lo),
                pow(10, hi), max_step);
        for (int c = first; c <= last; c++) {
            fprintf(out, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1\" points=\"", colors[c]);
            for (size_t r = 0; r < rows; r += stride) {
                double *row = data + r * (PLOT_COLUMNS + 1);
                if (row[1 + c] <= 0) continue;
                double x = left + pw * row[0] / (max_step > 0 ? max_step : 1);
                double y = y0 + PH - PH * (log10(row[1 + c]) - lo) / (hi - lo);
                fprintf(out, "%.1f,%.1f ", x, y);
            }
            fprintf(out, "\"/>\n<text x=\"%d\" y=\"%d\" fill=\"%s\">%s</text>\n",
                    left + 10 + 130 * (c - first), y0 + PH + 16, colors[c], names[c]);
        }
    }
    fprintf(out, "</svg>\n");
    free(data);
    if (fclose(out) || rename(tmp, path)) {
        unlink(tmp);
        snprintf(err, n, "%s: cannot write", path);
        return -1;
    }
    return 0;
}

/* ---- the sample grid ---------------------------------------------------------- */

int train_preview_init(TrainPreview *p, SampleSet *color_set, int crop, const float ht[3],
                       unsigned long long seed, char *err, size_t n) {
    memset(p, 0, sizeof *p);
    p->crop = crop;
    memcpy(p->ht, ht, sizeof p->ht);
    size_t px = (size_t)crop * crop;
    p->color = malloc(PREVIEW_ROWS * 3 * px * sizeof(float));
    p->gray = malloc(px * sizeof(float));
    p->rgb = malloc(3 * px * sizeof(float));
    if (!p->color || !p->gray || !p->rgb) {
        snprintf(err, n, "out of memory for the preview");
        train_preview_free(p);
        return -1;
    }
    Rng rng;
    rng_seed(&rng, seed ^ 0x5052455649455721ull);
    return sample_batch(color_set, &rng, PREVIEW_ROWS, p->color, err, n);
}

static unsigned char to_byte(float v) {
    long x = lrintf((v + 1.0f) * 127.5f);
    return (unsigned char)(x < 0 ? 0 : x > 255 ? 255 : x);
}

int train_preview_write(TrainPreview *p, const Network *g, const char *out_dir, long epoch,
                        char *err, size_t n) {
    int c = p->crop, W = 3 * c, H = PREVIEW_ROWS * c;
    size_t px = (size_t)c * c;
    InferModel m;
    InferWork work;
    if (infer_model_init(&m, g, err, n)) return -1;
    if (infer_work_init(&work, &m, c, c, err, n)) {
        infer_model_free(&m);
        return -1;
    }
    unsigned char *img = calloc((size_t)3 * W * H, 1);
    int rc = img ? 0 : -1;
    for (int r = 0; r < PREVIEW_ROWS && img; r++) {
        const float *color = p->color + (size_t)r * 3 * px;
        ht_forward(p->gray, color, p->ht, 1, c * c);
        generator_infer(&m, &work, p->gray, p->rgb, 0, 0, NULL);
        for (int band = 0; band < 3; band++)
            for (int y = 0; y < c; y++)
                for (int x = 0; x < c; x++) {
                    size_t o = (size_t)band * W * H + (size_t)(r * c + y) * W + x, i = (size_t)y * c + x;
                    img[o] = to_byte(p->gray[i]);
                    img[o + c] = to_byte(p->rgb[band * px + i]);
                    img[o + 2 * c] = to_byte(color[band * px + i]);
                }
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/samples_epoch_%04ld.png", out_dir, epoch);
    if (rc == 0) {
        GDALAllRegister();
        GDALDatasetH mem = GDALCreate(GDALGetDriverByName("MEM"), "", W, H, 3, GDT_Byte, NULL);
        CPLErrorReset();
        int bad = !mem || GDALDatasetRasterIO(mem, GF_Write, 0, 0, W, H, img, W, H, GDT_Byte, 3,
                                              NULL, 0, 0, 0) != CE_None;
        GDALDatasetH png = bad ? NULL : GDALCreateCopy(GDALGetDriverByName("PNG"), path, mem, FALSE,
                                                       NULL, NULL, NULL);
        if (!png) bad = 1;
        else GDALClose(png);
        if (mem) GDALClose(mem);
        if (bad || CPLGetLastErrorType() == CE_Failure) {
            snprintf(err, n, "%s: cannot write the sample grid: %s", path, CPLGetLastErrorMsg());
            rc = -1;
        }
        char aux[4300];
        snprintf(aux, sizeof aux, "%s.aux.xml", path);
        unlink(aux);
    } else {
        snprintf(err, n, "out of memory for the sample grid");
    }
    free(img);
    infer_work_free(&work);
    infer_model_free(&m);
    return rc;
}

void train_preview_free(TrainPreview *p) {
    free(p->color), free(p->gray), free(p->rgb);
    memset(p, 0, sizeof *p);
}
