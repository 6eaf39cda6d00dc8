/* Tensor fixtures shared by the C test groups: random and zero tensors, and the elementwise
 * relative difference. Every returned tensor is owned by the caller (nd_tensor_release). */
#ifndef ND_TEST_FIXTURES_H
#define ND_TEST_FIXTURES_H

#include <math.h>

#include "nd.h"

/* A new contiguous tensor of uniform values in [lo, hi) drawn from rng. */
static inline nd_tensor nd_fx_uniform(nd_rng *rng, nd_dtype dt, int ndim, const int64_t *size, double lo, double hi)
{
    nd_tensor t;
    nd_tensor_new(&t, dt, ndim, size, nd_cpu_device(), 0);
    nd_rng_fill_uniform(rng, &t, lo, hi);
    return t;
}

/* A new contiguous tensor of zeros. */
static inline nd_tensor nd_fx_zeros(nd_dtype dt, int ndim, const int64_t *size)
{
    nd_tensor t;
    nd_tensor_new(&t, dt, ndim, size, nd_cpu_device(), 1);
    return t;
}

/* max over elements of |a - b| / (1 + |b|), both read in row-major order; NaN propagates, and a
 * size mismatch gives 1e30. */
static inline double nd_fx_maxdiff(const nd_tensor *a, const nd_tensor *b)
{
    if (nd_tensor_numel(a) != nd_tensor_numel(b)) return 1e30;
    nd_tensor x, y;
    nd_tensor_clone(&x, a, ND_DTYPE_F64);
    nd_tensor_clone(&y, b, ND_DTYPE_F64);
    const double *p = nd_tensor_data(&x), *q = nd_tensor_data(&y);
    double m = 0;
    for (int64_t i = 0; i < nd_tensor_numel(&x); i++) {
        double d = fabs(p[i] - q[i]) / (1 + fabs(q[i]));
        if (!(d <= m)) m = d;
    }
    nd_tensor_release(&x);
    nd_tensor_release(&y);
    return m;
}

/* The convolution backward either by its two entry points (split != 0: input gradient, then
 * parameter gradients) or by the fused one; returns the first failure. */
#ifdef ND_CPU_NN_H
static inline nd_status nd_fx_conv_backward(int split, nd_tensor *gi, nd_tensor *gw, nd_tensor *gb, const nd_tensor *x,
                                            const nd_tensor *go, const nd_tensor *w, double scale,
                                            const nd_conv2d_params *p)
{
    if (!split) return nd_conv2d_backward_cpu(gi, gw, gb, x, go, w, scale, p);
    nd_status st = nd_conv2d_backward_input_cpu(gi, go, w, p);
    return st != ND_OK ? st : nd_conv2d_backward_params_cpu(gw, gb, x, go, scale, p);
}
#endif

#endif
