/* rng.h: xoshiro256**, the one random generator of training.
 *
 * Small, fast, and its whole state is four 64-bit words, saved in training
 * checkpoints so a resumed run draws exactly the numbers it would have drawn. */
#ifndef SPYNCO_RNG_H
#define SPYNCO_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} Rng;

/* Seeds through splitmix64, so nearby seeds give unrelated streams. */
void rng_seed(Rng *r, uint64_t seed);
uint64_t rng_next(Rng *r);
/* Uniform in [0, 1). */
double rng_uniform(Rng *r);
/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint64_t rng_below(Rng *r, uint64_t n);

#endif
