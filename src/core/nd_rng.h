/* Seeded pseudo-random numbers (xoshiro256**, seeded through splitmix64). Each generator is a
 * plain value, so the data loader thread can own one and checkpoints can save the state. */
#ifndef ND_RNG_H
#define ND_RNG_H

#include <stdint.h>

#include "nd_error.h"
#include "nd_tensor.h"

typedef struct nd_rng {
    uint64_t s[4];
    uint64_t seed;
} nd_rng;

void nd_rng_seed(nd_rng *r, uint64_t seed);
uint64_t nd_rng_next(nd_rng *r);
double nd_rng_uniform(nd_rng *r);                 /* [0, 1) */
double nd_rng_normal(nd_rng *r);                  /* N(0, 1), Box-Muller */
int64_t nd_rng_below(nd_rng *r, int64_t n);       /* uniform integer in [0, n) */
nd_rng *nd_rng_global(void);                      /* the interpreter's generator */

/* Fill a CPU tensor (any layout): uniform in [a, b), normal N(mean, std), integers in [a, b],
 * Bernoulli(p) (1 with probability p). */
nd_status nd_rng_fill_uniform(nd_rng *r, nd_tensor *t, double a, double b);
nd_status nd_rng_fill_normal(nd_rng *r, nd_tensor *t, double mean, double std);
nd_status nd_rng_fill_integer(nd_rng *r, nd_tensor *t, int64_t a, int64_t b);
nd_status nd_rng_fill_bernoulli(nd_rng *r, nd_tensor *t, double p);
/* out (int64, n) = a random permutation of 0..n-1 */
nd_status nd_rng_permutation(nd_rng *r, nd_tensor *out, int64_t n);

#endif
