#include "pipeline/metrics.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#define TAPS (2 * SSIM_RADIUS + 1)
#define FILTERED 5 /* x, y, x^2, y^2, xy */

double metric_sum_sq(const uint8_t *x, const uint8_t *y, const uint8_t *valid, size_t pixels,
                     size_t *count) {
    /* integers: the sum is exact in double up to 2^53 / 255^2 pixels */
    double sum = 0.0;
    size_t n = 0;
    for (size_t i = 0; i < pixels; i++) {
        if (valid && !valid[i]) continue;
        double d = (double)x[i] - (double)y[i];
        sum += d * d;
        n++;
    }
    *count += n;
    return sum;
}

double metric_psnr(double mse) { return mse > 0.0 ? 10.0 * log10(255.0 * 255.0 / mse) : INFINITY; }

/* scipy.ndimage's Gaussian: exp(-0.5 / sigma^2 * k^2), k = -r..r, divided by its sum. */
static void gaussian_taps(double g[SSIM_RADIUS + 1]) {
    double sigma2 = SSIM_SIGMA * SSIM_SIGMA, sum = 0.0;
    for (int k = -SSIM_RADIUS; k <= SSIM_RADIUS; k++) sum += exp(-0.5 / sigma2 * k * k);
    for (int k = 0; k <= SSIM_RADIUS; k++) g[k] = exp(-0.5 / sigma2 * k * k) / sum;
}

/* The SSIM map summed over one row y (the window's centre row), columns
 * RADIUS..w-1-RADIUS whose windows are free of no-data. col: FILTERED*w
 * doubles, bad: w ints of scratch. */
static double ssim_row(const uint8_t *x, const uint8_t *y, const uint8_t *valid, int w, int row,
                       const double g[SSIM_RADIUS + 1], double *col, int *bad, long *count) {
    const double C1 = (0.01 * 255.0) * (0.01 * 255.0), C2 = (0.03 * 255.0) * (0.03 * 255.0);
    double *cx = col, *cy = col + w, *cxx = col + 2 * w, *cyy = col + 3 * w, *cxy = col + 4 * w;
    /* along the column first (scipy filters axis 0, then axis 1), in scipy's
     * order for symmetric kernels: the centre, then the pairs from the outside in */
    for (int i = 0; i < w; i++) {
        size_t c = (size_t)row * w + i;
        double a = x[c], b = y[c];
        double sx = a * g[0], sy = b * g[0], sxx = a * a * g[0], syy = b * b * g[0],
               sxy = a * b * g[0];
        int invalid = valid ? !valid[c] : 0;
        for (int k = SSIM_RADIUS; k >= 1; k--) {
            size_t up = c - (size_t)k * w, down = c + (size_t)k * w;
            double a0 = x[up], a1 = x[down], b0 = y[up], b1 = y[down];
            sx += (a0 + a1) * g[k];
            sy += (b0 + b1) * g[k];
            sxx += (a0 * a0 + a1 * a1) * g[k];
            syy += (b0 * b0 + b1 * b1) * g[k];
            sxy += (a0 * b0 + a1 * b1) * g[k];
            if (valid) invalid += !valid[up] + !valid[down];
        }
        cx[i] = sx, cy[i] = sy, cxx[i] = sxx, cyy[i] = syy, cxy[i] = sxy;
        bad[i] = invalid;
    }
    double sum = 0.0;
    int window_bad = 0;
    if (valid)
        for (int i = 0; i < TAPS - 1; i++) window_bad += bad[i];
    for (int i = SSIM_RADIUS; i < w - SSIM_RADIUS; i++) {
        if (valid) {
            window_bad += bad[i + SSIM_RADIUS];
            int skip = window_bad > 0;
            window_bad -= bad[i - SSIM_RADIUS];
            if (skip) continue;
        }
        double f[FILTERED];
        for (int q = 0; q < FILTERED; q++) {
            const double *v = col + (size_t)q * w + i;
            double s = v[0] * g[0];
            for (int k = SSIM_RADIUS; k >= 1; k--) s += (v[-k] + v[k]) * g[k];
            f[q] = s;
        }
        double ux = f[0], uy = f[1];
        double vx = f[2] - ux * ux, vy = f[3] - uy * uy, vxy = f[4] - ux * uy;
        double a1 = 2.0 * ux * uy + C1, a2 = 2.0 * vxy + C2;
        double b1 = ux * ux + uy * uy + C1, b2 = vx + vy + C2;
        sum += (a1 * a2) / (b1 * b2);
        (*count)++;
    }
    return sum;
}

int metric_ssim(double *ssim, const uint8_t *x, const uint8_t *y, const uint8_t *valid, int w,
                int h, char *err, size_t n) {
    if (w < SSIM_MIN_SIDE || h < SSIM_MIN_SIDE) {
        snprintf(err, n, "%dx%d is smaller than SSIM's %dx%d window", w, h, SSIM_MIN_SIDE,
                 SSIM_MIN_SIDE);
        return -1;
    }
    double g[SSIM_RADIUS + 1];
    gaussian_taps(g);
    int threads = omp_get_max_threads();
    size_t per_thread = (size_t)FILTERED * w;
    double *col = malloc((size_t)threads * per_thread * sizeof(double));
    int *bad = malloc((size_t)threads * w * sizeof(int));
    double *row_sum = malloc((size_t)h * sizeof(double));
    long *row_count = malloc((size_t)h * sizeof(long));
    if (!col || !bad || !row_sum || !row_count) {
        free(col), free(bad), free(row_sum), free(row_count);
        snprintf(err, n, "out of memory for the SSIM of a %dx%d image", w, h);
        return -1;
    }
#pragma omp parallel for schedule(static)
    for (int row = SSIM_RADIUS; row < h - SSIM_RADIUS; row++) {
        int t = omp_get_thread_num();
        row_count[row] = 0;
        row_sum[row] = ssim_row(x, y, valid, w, row, g, col + t * per_thread, bad + (size_t)t * w,
                                &row_count[row]);
    }
    /* in row order, whatever the threads did */
    double sum = 0.0;
    long count = 0;
    for (int row = SSIM_RADIUS; row < h - SSIM_RADIUS; row++)
        sum += row_sum[row], count += row_count[row];
    free(col), free(bad), free(row_sum), free(row_count);
    if (count == 0) {
        snprintf(err, n, "no %dx%d window free of no-data for SSIM", SSIM_MIN_SIDE, SSIM_MIN_SIDE);
        return -1;
    }
    *ssim = sum / count;
    return 0;
}

int image_scores(ImageScores *out, const uint8_t *const real[3], const uint8_t *const test[3],
                 const uint8_t *valid, int w, int h, char *err, size_t n) {
    size_t pixels = (size_t)w * h, count = 0;
    double sum = 0.0, ssim = 0.0;
    for (int c = 0; c < 3; c++) sum += metric_sum_sq(real[c], test[c], valid, pixels, &count);
    if (count == 0) {
        snprintf(err, n, "every pixel is no-data");
        return -1;
    }
    for (int c = 0; c < 3; c++) {
        double s;
        if (metric_ssim(&s, real[c], test[c], valid, w, h, err, n)) return -1;
        ssim += s;
    }
    out->mse = sum / count;
    out->ssim = ssim / 3.0;
    out->psnr = metric_psnr(out->mse);
    return 0;
}
