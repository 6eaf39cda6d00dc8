/* 2-d pooling on the CPU: max (with saved indices), average (count_include_pad, ceil mode) and
 * adaptive average; forward and backward. Every plane (n, c) is independent: the loops run in
 * parallel over planes. Shapes and conventions: nd_cpu_nn.h.
 *
 * The typed kernels (float, double) sit between #ifdef ND_T and #else: this file includes
 * itself once per element type. */
#ifdef ND_T

/* One output of max pooling over the clipped window [h0,h1) x [w0,w1): the first maximum in
 * row-major order; a NaN wins (the first one). */
static inline void ND_F(max_window)(const ND_T *xp, int64_t W, int64_t h0, int64_t h1, int64_t w0, int64_t w1, ND_T *o,
                                    int64_t *ix)
{
    int64_t best = h0 * W + w0;
    ND_T bv = xp[best];
    for (int64_t h = h0; h < h1; h++)
        for (int64_t w = w0; w < w1; w++) {
            const ND_T v = xp[h * W + w];
            if (v > bv || (v != v && bv == bv)) {
                bv = v;
                best = h * W + w;
            }
        }
    *o = bv;
    *ix = best;
}

/* Rows of outputs at a time: the columns whose windows lie inside the image are updated tap by
 * tap with vectorised selects (same order, same ties as max_window); the border columns, whose
 * windows are clipped, go through max_window. */
static void ND_F(maxpool_fwd)(ND_T *out, int64_t *ind, const ND_T *x, const nd_pool_geom *g)
{
    const int64_t HW = g->H * g->W, OHW = g->OH * g->OW, W = g->W, OW = g->OW, sw = g->sw, pw = g->pw;
    /* interior columns: ow*sw - pw >= 0 and ow*sw - pw + kw <= W */
    int64_t lo = (pw + sw - 1) / sw, hi = W + pw - g->kw < 0 ? 0 : (W + pw - g->kw) / sw + 1;
    if (hi > OW) hi = OW;
    if (lo > hi) lo = hi;
#pragma omp parallel for schedule(static) if (nd_nn_parallel() && (g->planes * OHW * g->kh * g->kw > 32768))
    for (int64_t pl = 0; pl < g->planes; pl++) {
        const ND_T *xp = x + pl * HW;
        for (int64_t oh = 0; oh < g->OH; oh++) {
            int64_t h0 = oh * g->sh - g->ph, h1 = h0 + g->kh;
            if (h0 < 0) h0 = 0;
            if (h1 > g->H) h1 = g->H;
            ND_T *orow = out + pl * OHW + oh * OW;
            int64_t *irow = ind + pl * OHW + oh * OW;
            for (int64_t ow = 0; ow < OW; ow++) {
                if (ow == lo) ow = hi;
                if (ow >= OW) break;
                int64_t w0 = ow * sw - pw, w1 = w0 + g->kw;
                ND_F(max_window)(xp, W, h0, h1, w0 < 0 ? 0 : w0, w1 > W ? W : w1, orow + ow, irow + ow);
            }
            if (lo >= hi) continue;
            for (int64_t h = h0; h < h1; h++)
                for (int64_t kj = 0; kj < g->kw; kj++) {
                    const int64_t base = h * W - pw + kj;
                    const ND_T *r = xp + base;
                    if (h == h0 && kj == 0) {
#pragma omp simd
                        for (int64_t ow = lo; ow < hi; ow++) {
                            orow[ow] = r[ow * sw];
                            irow[ow] = base + ow * sw;
                        }
                        continue;
                    }
#pragma omp simd
                    for (int64_t ow = lo; ow < hi; ow++) {
                        const ND_T v = r[ow * sw], m = orow[ow];
                        const int take = (v > m) | ((v != v) & (m == m));
                        orow[ow] = take ? v : m;
                        irow[ow] = take ? base + ow * sw : irow[ow];
                    }
                }
        }
    }
}

static void ND_F(maxpool_bwd)(ND_T *gi, const ND_T *go, const int64_t *ind, const nd_pool_geom *g)
{
    const int64_t HW = g->H * g->W, OHW = g->OH * g->OW;
#pragma omp parallel for schedule(static) if (nd_nn_parallel() && (g->planes * (HW + OHW) > 32768))
    for (int64_t pl = 0; pl < g->planes; pl++) {
        ND_T *gp = gi + pl * HW;
        memset(gp, 0, sizeof(ND_T) * (size_t)HW);
        for (int64_t i = 0; i < OHW; i++)
            gp[ind[pl * OHW + i]] += go[pl * OHW + i];
    }
}

/* The window of output (oh, ow) clipped to the image, and its divisor. */
static inline void ND_F(avg_window)(const nd_pool_geom *g, int64_t oh, int64_t ow, int64_t *h0, int64_t *h1,
                                    int64_t *w0, int64_t *w1, ND_T *div)
{
    int64_t a = oh * g->sh - g->ph, b = a + g->kh, c = ow * g->sw - g->pw, d = c + g->kw;
    if (b > g->H + g->ph) b = g->H + g->ph;
    if (d > g->W + g->pw) d = g->W + g->pw;
    int64_t padded = (b - a) * (d - c);
    if (a < 0) a = 0;
    if (c < 0) c = 0;
    if (b > g->H) b = g->H;
    if (d > g->W) d = g->W;
    *h0 = a, *h1 = b, *w0 = c, *w1 = d;
    *div = (ND_T)(g->count_include_pad ? padded : (b - a) * (d - c));
}

static void ND_F(avgpool_fwd)(ND_T *out, const ND_T *x, const nd_pool_geom *g)
{
    const int64_t HW = g->H * g->W, OHW = g->OH * g->OW;
#pragma omp parallel for schedule(static) if (nd_nn_parallel() && (g->planes * OHW * g->kh * g->kw > 32768))
    for (int64_t pl = 0; pl < g->planes; pl++) {
        const ND_T *xp = x + pl * HW;
        for (int64_t oh = 0; oh < g->OH; oh++)
            for (int64_t ow = 0; ow < g->OW; ow++) {
                int64_t h0, h1, w0, w1;
                ND_T div, s = 0;
                ND_F(avg_window)(g, oh, ow, &h0, &h1, &w0, &w1, &div);
                for (int64_t h = h0; h < h1; h++)
                    for (int64_t w = w0; w < w1; w++)
                        s += xp[h * g->W + w];
                out[pl * OHW + oh * g->OW + ow] = div > 0 ? s / div : (ND_T)0;
            }
    }
}

static void ND_F(avgpool_bwd)(ND_T *gi, const ND_T *go, const nd_pool_geom *g)
{
    const int64_t HW = g->H * g->W, OHW = g->OH * g->OW;
#pragma omp parallel for schedule(static) if (nd_nn_parallel() && (g->planes * OHW * g->kh * g->kw > 32768))
    for (int64_t pl = 0; pl < g->planes; pl++) {
        ND_T *gp = gi + pl * HW;
        memset(gp, 0, sizeof(ND_T) * (size_t)HW);
        for (int64_t oh = 0; oh < g->OH; oh++)
            for (int64_t ow = 0; ow < g->OW; ow++) {
                int64_t h0, h1, w0, w1;
                ND_T div;
                ND_F(avg_window)(g, oh, ow, &h0, &h1, &w0, &w1, &div);
                if (div <= 0) continue;
                ND_T v = go[pl * OHW + oh * g->OW + ow] / div;
                for (int64_t h = h0; h < h1; h++)
                    for (int64_t w = w0; w < w1; w++)
                        gp[h * g->W + w] += v;
            }
    }
}

/* Adaptive bins: [floor(i*H/OH), ceil((i+1)*H/OH)). backward != 0 spreads go instead. */
static void ND_F(adaptive_avg)(ND_T *out, const ND_T *x, const nd_pool_geom *g, int backward)
{
    const int64_t HW = g->H * g->W, OHW = g->OH * g->OW;
#pragma omp parallel for schedule(static) if (nd_nn_parallel() && (g->planes * HW > 32768))
    for (int64_t pl = 0; pl < g->planes; pl++) {
        if (backward) memset(out + pl * HW, 0, sizeof(ND_T) * (size_t)HW);
        for (int64_t oh = 0; oh < g->OH; oh++) {
            int64_t h0 = oh * g->H / g->OH, h1 = ((oh + 1) * g->H + g->OH - 1) / g->OH;
            for (int64_t ow = 0; ow < g->OW; ow++) {
                int64_t w0 = ow * g->W / g->OW, w1 = ((ow + 1) * g->W + g->OW - 1) / g->OW;
                ND_T div = (ND_T)((h1 - h0) * (w1 - w0));
                if (backward) {
                    ND_T v = x[pl * OHW + oh * g->OW + ow] / div;
                    for (int64_t h = h0; h < h1; h++)
                        for (int64_t w = w0; w < w1; w++)
                            out[pl * HW + h * g->W + w] += v;
                } else {
                    ND_T s = 0;
                    for (int64_t h = h0; h < h1; h++)
                        for (int64_t w = w0; w < w1; w++)
                            s += x[pl * HW + h * g->W + w];
                    out[pl * OHW + oh * g->OW + ow] = s / div;
                }
            }
        }
    }
}

#else /* ---------------------------------------------------------------------------------- */

#include <string.h>

#include "nd_cpu_nn.h"


#define ND_T float
#define ND_F(name) nd_pool_##name##_f32
#include "pool.c"
#undef ND_T
#undef ND_F
#define ND_T double
#define ND_F(name) nd_pool_##name##_f64
#include "pool.c"
#undef ND_T
#undef ND_F

/* Calls the float or double kernel `name` by dtype. */
#define ND_POOL_CALL(dt, name, args) ((dt) == ND_DTYPE_F32 ? nd_pool_##name##_f32 args : nd_pool_##name##_f64 args)

int64_t nd_pool_out_size(int64_t in, int64_t k, int64_t s, int64_t p, int ceil_mode)
{
    int64_t span = in + 2 * p - k;
    if (span < 0 || s < 1) return 0;
    int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (out - 1) * s >= in + p) out--;
    return out;
}

/* Validation: nd_pool_check_* (nn_check.c, shared with pool.cu). */

nd_status nd_maxpool2d_forward_cpu(nd_tensor *out, nd_tensor *indices, const nd_tensor *input,
                                   const nd_pool2d_params *p)
{
    const char *op = "maxpool2d";
    nd_pool_geom g;
    int64_t size[4];
    ND_TRY(nd_pool_check_fwd(ND_DEVICE_CPU, op, &g, out, indices, input, p, size));
    nd_tensor x;
    ND_TRY(nd_tensor_contiguous(&x, input));
    ND_POOL_CALL(x.dtype, maxpool_fwd, (nd_tensor_data(out), nd_tensor_data(indices), nd_tensor_data(&x), &g));
    nd_tensor_release(&x);
    return ND_OK;
}

nd_status nd_maxpool2d_backward_cpu(nd_tensor *grad_input, const nd_tensor *grad_output, const nd_tensor *indices,
                                    const nd_pool2d_params *p)
{
    const char *op = "maxpool2d backward";
    nd_pool_geom g;
    int64_t size[4];
    ND_TRY(nd_pool_check_bwd(ND_DEVICE_CPU, op, &g, grad_input, grad_output, indices, p, size));
    nd_tensor go, ind;
    ND_TRY(nd_tensor_contiguous(&go, grad_output));
    nd_status st = nd_tensor_contiguous(&ind, indices);
    if (st == ND_OK) {
        const int64_t *ip = nd_tensor_data(&ind), n = nd_tensor_numel(&ind), HW = g.H * g.W;
        for (int64_t i = 0; i < n && st == ND_OK; i++)
            if (ip[i] < 0 || ip[i] >= HW)
                st = ND_ERROR(ND_ERR_INDEX, "%s: index %lld out of range for %lldx%lld planes", op, (long long)ip[i],
                              (long long)g.H, (long long)g.W);
        if (st == ND_OK) ND_POOL_CALL(go.dtype, maxpool_bwd, (nd_tensor_data(grad_input), nd_tensor_data(&go), ip, &g));
        nd_tensor_release(&ind);
    }
    nd_tensor_release(&go);
    return st;
}

nd_status nd_avgpool2d_forward_cpu(nd_tensor *out, const nd_tensor *input, const nd_pool2d_params *p)
{
    const char *op = "avgpool2d";
    nd_pool_geom g;
    int64_t size[4];
    ND_TRY(nd_pool_check_fwd(ND_DEVICE_CPU, op, &g, out, NULL, input, p, size));
    nd_tensor x;
    ND_TRY(nd_tensor_contiguous(&x, input));
    ND_POOL_CALL(x.dtype, avgpool_fwd, (nd_tensor_data(out), nd_tensor_data(&x), &g));
    nd_tensor_release(&x);
    return ND_OK;
}

nd_status nd_avgpool2d_backward_cpu(nd_tensor *grad_input, const nd_tensor *grad_output, const nd_pool2d_params *p)
{
    const char *op = "avgpool2d backward";
    nd_pool_geom g;
    int64_t size[4];
    ND_TRY(nd_pool_check_bwd(ND_DEVICE_CPU, op, &g, grad_input, grad_output, NULL, p, size));
    nd_tensor go;
    ND_TRY(nd_tensor_contiguous(&go, grad_output));
    ND_POOL_CALL(go.dtype, avgpool_bwd, (nd_tensor_data(grad_input), nd_tensor_data(&go), &g));
    nd_tensor_release(&go);
    return ND_OK;
}

nd_status nd_adaptive_avgpool2d_forward_cpu(nd_tensor *out, const nd_tensor *input)
{
    const char *op = "adaptive_avgpool2d";
    nd_pool_geom g;
    ND_TRY(nd_pool_check_adaptive_fwd(ND_DEVICE_CPU, op, &g, out, input));
    nd_tensor x;
    ND_TRY(nd_tensor_contiguous(&x, input));
    ND_POOL_CALL(x.dtype, adaptive_avg, (nd_tensor_data(out), nd_tensor_data(&x), &g, 0));
    nd_tensor_release(&x);
    return ND_OK;
}

nd_status nd_adaptive_avgpool2d_backward_cpu(nd_tensor *grad_input, const nd_tensor *grad_output)
{
    const char *op = "adaptive_avgpool2d backward";
    nd_pool_geom g;
    ND_TRY(nd_pool_check_adaptive_bwd(ND_DEVICE_CPU, op, &g, grad_input, grad_output));
    nd_tensor go;
    ND_TRY(nd_tensor_contiguous(&go, grad_output));
    ND_POOL_CALL(go.dtype, adaptive_avg, (nd_tensor_data(grad_input), nd_tensor_data(&go), &g, 1));
    nd_tensor_release(&go);
    return ND_OK;
}

#endif
