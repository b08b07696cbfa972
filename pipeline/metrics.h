/* metrics.h: how close a colorized image is to the real one (pure functions).
 *
 * Images are 8-bit planes of w x h pixels, row-major; `valid` (NULL: every
 * pixel) excludes no-data pixels. The definitions (docs/metrics.md):
 *  - MSE: mean of (x - y)^2 over the valid pixels (0..255 scale).
 *  - PSNR: 10 log10(255^2 / MSE) dB; +infinity for identical images.
 *  - SSIM (Wang et al. 2004), exactly as scikit-image's
 *    structural_similarity(x, y, gaussian_weights=True, sigma=1.5,
 *    use_sample_covariance=False, data_range=255) computes it: weighted means,
 *    variances and covariance from a Gaussian window (sigma 1.5, truncated at
 *    3.5 sigma: 11 taps, normalised), applied along columns then rows in
 *    double precision; C1 = (0.01 L)^2, C2 = (0.03 L)^2, L = 255;
 *    SSIM map = (2 ux uy + C1)(2 vxy + C2) / ((ux^2 + uy^2 + C1)(vx + vy + C2));
 *    the mean of the map over the pixels at least 5 px from every edge, whose
 *    windows lie inside the image (so no edge padding enters). With no-data,
 *    only windows of valid pixels count (without no-data: skimage's value).
 *    Images need at least 11 x 11 pixels.
 * The SSIM of one plane is computed row by row, rows in parallel (OpenMP);
 * per-row sums are added in order, so the result does not depend on the
 * thread count.
 */
#ifndef SPYNCO_METRICS_H
#define SPYNCO_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define SSIM_SIGMA 1.5
#define SSIM_RADIUS 5 /* int(3.5 * sigma + 0.5), as scipy.ndimage truncates */
#define SSIM_MIN_SIDE (2 * SSIM_RADIUS + 1)

/* Sum of (x - y)^2 over the valid pixels of one plane; *count += their number. */
double metric_sum_sq(const uint8_t *x, const uint8_t *y, const uint8_t *valid, size_t pixels,
                     size_t *count);
/* 10 log10(255^2 / mse); +infinity when mse is 0. */
double metric_psnr(double mse);
/* Mean SSIM of one plane pair into *ssim (a fraction, 1 for equal images).
 * -1 with a message in err if the image is smaller than 11 x 11, if no window
 * is free of no-data, or if memory runs out. */
int metric_ssim(double *ssim, const uint8_t *x, const uint8_t *y, const uint8_t *valid, int w,
                int h, char *err, size_t err_size);

/* The three figures of a colour image (ssim as a fraction, averaged over the
 * channels; MSE over pixels and channels). real and test: 3 planes each, given
 * as pointers so that a plane may repeat (the gray copy is {g, g, g}). */
typedef struct {
    double mse, ssim, psnr;
} ImageScores;

int image_scores(ImageScores *out, const uint8_t *const real[3], const uint8_t *const test[3],
                 const uint8_t *valid, int w, int h, char *err, size_t err_size);

#endif
