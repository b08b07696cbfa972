/* testmodel.h: small generator checkpoints for tests that look at pixels.
 *
 * An untrained model gives a nearly constant colour, which no pixel check can
 * tell from another; a "vivid" one (test_save_model with vivid) is made to
 * vary strongly across the tests' images (about 85 DN per channel on the
 * fixtures), so that a misplaced or wrong pixel shows. */
#ifndef SPYNCO_TESTMODEL_H
#define SPYNCO_TESTMODEL_H

#include "nn/networks.h"

/* The cogeo fixture's size (tests/data/cogeo_rgb_384x320.tif). */
enum { COGEO_H = 320, COGEO_W = 384 };

/* F=8, K=16, R=2, nd=8 with the default H_t and scales, named name. */
ModelConfig test_small_config(const char *name);
/* Writes a model checkpoint (G, plus D if with_d) with seeded weights; vivid
 * as described above. 0 or -1 (a CHECK has failed). */
int test_save_model(const char *path, const ModelConfig *cfg, int vivid, int with_d,
                    unsigned long long seed);

#endif
