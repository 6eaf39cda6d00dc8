/* 2-d convolution on the CPU: im2col / col2im, a direct reference, and the fast path
 * (im2col of a chunk of images, one GEMM per chunk and group). Shapes: see nd_cpu_nn.h.
 *
 * Column layout of a chunk of B images (P = OH*OW output pixels per image):
 *   cols (C*kh*kw, B*P), row f = c*kh*kw + ki*kw + kj, column b*P + oh*OW + ow.
 * The rows of group g are the contiguous block [g*Kg, (g+1)*Kg) with Kg = C/groups*kh*kw, so
 *   forward   Y_g (Cout_g, B*P) = W_g (Cout_g, Kg) @ cols_g            then Y -> out (NCHW)
 *   grad in   cols_g = W_g^T @ G_g, G = grad_output rearranged to (Cout, B*P), then col2im
 *   grad W    gW_g += scale * G_g @ cols_g^T
 *
 * The typed kernels (float, double) are written once below, between #ifdef ND_T and #else:
 * this file includes itself once per element type. */
#ifdef ND_T

/* ---- typed kernels: ND_T is the element type, ND_F(name) its suffixed name ---- */

/* im2col of B contiguous images starting at x into cols with row length ldc. Wide images copy
 * runs of each input row; narrow ones (short runs, where the loop overhead would dominate) use
 * a precomputed map of every output pixel to its input pixel per kernel tap (a gather). */
static nd_status ND_F(im2col)(ND_T *cols, int64_t ldc, const ND_T *x, int64_t B, const nd_conv_geom *g)
{
    const int64_t KK = g->kh * g->kw, rows = g->C * KK, P = g->OH * g->OW, HW = g->H * g->W;
    const int64_t OH = g->OH, OW = g->OW, W = g->W, sw = g->sw;
    if (nd_conv_use_maps(g)) {
        /* map: P offsets per tap (0 for padding), then the padded positions of each tap */
        int32_t *map = malloc(sizeof(int32_t) * (size_t)(2 * KK * P + KK + 1));
        if (!map) return ND_ERROR(ND_ERR_MEMORY, "conv2d: out of memory");
        int32_t *pads = map + KK * P, *pad_start = pads + KK * P;
        nd_conv_gather_map(map, pads, pad_start, g);
#pragma omp parallel for schedule(static) if (nd_nn_parallel() && (rows * B * P > 32768))
        for (int64_t r = 0; r < rows; r++) {
            const int64_t t = r % KK;
            const int32_t *m = map + t * P, *pad = pads + pad_start[t], npad = pad_start[t + 1] - pad_start[t];
            const ND_T *plane = x + (r / KK) * HW;
            ND_T *dst = cols + r * ldc;
            for (int64_t b = 0; b < B; b++, plane += g->C * HW, dst += P) {
#pragma omp simd
                for (int64_t i = 0; i < P; i++)
                    dst[i] = plane[m[i]];
                for (int32_t k = 0; k < npad; k++)
                    dst[pad[k]] = 0;
            }
        }
        free(map);
        return ND_OK;
    }
#pragma omp parallel for schedule(static) if (nd_nn_parallel() && (rows * B * P > 32768))
    for (int64_t r = 0; r < rows; r++) {
        const int64_t c = r / KK, ki = (r % KK) / g->kw, kj = r % g->kw;
        const int64_t off_w = kj * g->dw - g->pw, off_h = ki * g->dh - g->ph;
        int64_t lo, hi;
        nd_conv_valid_range(off_w, sw, W, OW, &lo, &hi);
        ND_T *dst = cols + r * ldc;
        for (int64_t b = 0; b < B; b++) {
            const ND_T *plane = x + (b * g->C + c) * HW;
            for (int64_t oh = 0; oh < OH; oh++, dst += OW) {
                const int64_t ih = oh * g->sh + off_h;
                if (ih < 0 || ih >= g->H) {
                    memset(dst, 0, sizeof(ND_T) * (size_t)OW);
                    continue;
                }
                const ND_T *src = plane + ih * W + off_w;
                for (int64_t ow = 0; ow < lo; ow++)
                    dst[ow] = 0;
                if (sw == 1) {
#pragma omp simd
                    for (int64_t ow = lo; ow < hi; ow++)
                        dst[ow] = src[ow];
                } else {
                    for (int64_t ow = lo; ow < hi; ow++)
                        dst[ow] = src[ow * sw];
                }
                for (int64_t ow = hi; ow < OW; ow++)
                    dst[ow] = 0;
            }
        }
    }
    return ND_OK;
}

/* col2im: overwrites the B images at x with the sums of their column entries. Narrow images:
 * each pixel gathers its entries through a map per kernel tap (no scattered adds). */
static nd_status ND_F(col2im)(ND_T *x, const ND_T *cols, int64_t ldc, int64_t B, const nd_conv_geom *g)
{
    const int64_t KK = g->kh * g->kw, P = g->OH * g->OW, HW = g->H * g->W, C = g->C;
    const int64_t OH = g->OH, OW = g->OW, W = g->W, sw = g->sw;
    if (nd_conv_use_maps(g)) {
        int32_t *map = malloc(sizeof(int32_t) * (size_t)(KK * HW));
        if (!map) return ND_ERROR(ND_ERR_MEMORY, "conv2d: out of memory");
        nd_conv_scatter_map(map, g);
#pragma omp parallel for collapse(2) schedule(static) if (nd_nn_parallel() && (C * KK * B * P > 32768))
        for (int64_t c = 0; c < C; c++) {
            for (int64_t b = 0; b < B; b++) {
                ND_T *plane = x + (b * C + c) * HW;
                memset(plane, 0, sizeof(ND_T) * (size_t)HW);
                for (int64_t t = 0; t < KK; t++) {
                    const ND_T *src = cols + (c * KK + t) * ldc + b * P;
                    const int32_t *m = map + t * HW;
#pragma omp simd
                    for (int64_t i = 0; i < HW; i++) {
                        const int32_t j = m[i];
                        const ND_T v = src[j < 0 ? 0 : j];
                        plane[i] += j < 0 ? (ND_T)0 : v;
                    }
                }
            }
        }
        free(map);
        return ND_OK;
    }
#pragma omp parallel for collapse(2) schedule(static) if (nd_nn_parallel() && (C * KK * B * P > 32768))
    for (int64_t c = 0; c < C; c++) {
        for (int64_t b = 0; b < B; b++) {
            ND_T *plane = x + (b * C + c) * HW;
            memset(plane, 0, sizeof(ND_T) * (size_t)HW);
            for (int64_t ki = 0; ki < g->kh; ki++) {
                for (int64_t kj = 0; kj < g->kw; kj++) {
                    const int64_t off_w = kj * g->dw - g->pw, off_h = ki * g->dh - g->ph;
                    int64_t lo, hi;
                    nd_conv_valid_range(off_w, sw, W, OW, &lo, &hi);
                    const ND_T *src = cols + (c * KK + ki * g->kw + kj) * ldc + b * P;
                    for (int64_t oh = 0; oh < OH; oh++, src += OW) {
                        const int64_t ih = oh * g->sh + off_h;
                        if (ih < 0 || ih >= g->H) continue;
                        ND_T *dst = plane + ih * W + off_w;
                        if (sw == 1) {
#pragma omp simd
                            for (int64_t ow = lo; ow < hi; ow++)
                                dst[ow] += src[ow];
                        } else
                            for (int64_t ow = lo; ow < hi; ow++)
                                dst[ow * sw] += src[ow];
                    }
                }
            }
        }
    }
    return ND_OK;
}

/* out[b][co][:] = Y[co][b*P : b*P+P] + bias[co] for B images. */
static void ND_F(scatter_out)(ND_T *out, const ND_T *Y, int64_t B, int64_t Cout, int64_t P, const ND_T *bias,
                              int64_t bstride)
{
#pragma omp parallel for collapse(2) schedule(static) if (nd_nn_parallel() && (B * Cout * P > 32768))
    for (int64_t b = 0; b < B; b++) {
        for (int64_t co = 0; co < Cout; co++) {
            ND_T *o = out + (b * Cout + co) * P;
            const ND_T *y = Y + co * B * P + b * P;
            if (bias) {
                const ND_T bv = bias[co * bstride];
                for (int64_t i = 0; i < P; i++)
                    o[i] = y[i] + bv;
            } else {
                memcpy(o, y, sizeof(ND_T) * (size_t)P);
            }
        }
    }
}

/* G[co][b*P : b*P+P] = gout[b][co][:] for B images. */
static void ND_F(gather_grad)(ND_T *G, const ND_T *gout, int64_t B, int64_t Cout, int64_t P)
{
#pragma omp parallel for collapse(2) schedule(static) if (nd_nn_parallel() && (B * Cout * P > 32768))
    for (int64_t co = 0; co < Cout; co++)
        for (int64_t b = 0; b < B; b++)
            memcpy(G + co * B * P + b * P, gout + (b * Cout + co) * P, sizeof(ND_T) * (size_t)P);
}

static nd_status ND_F(forward)(ND_T *out, const ND_T *x, const ND_T *w, const ND_T *bias, int64_t bstride,
                               const nd_conv_geom *g)
{
    const int64_t P = g->OH * g->OW, G = g->groups, Cg = g->C / G, Og = g->Cout / G;
    const int64_t Kg = Cg * g->kh * g->kw, Ktot = Kg * G, CHW = g->C * g->H * g->W;
    if (nd_conv_is_pointwise(g) && P >= ND_CONV_DIRECT_MIN_P) {
        /* 1x1: out_n,g = W_g @ x_n,g straight from the input, bias written first. */
        if (bias) {
#pragma omp parallel for collapse(2) schedule(static) if (nd_nn_parallel() && (g->N * g->Cout * P > 32768))
            for (int64_t n = 0; n < g->N; n++)
                for (int64_t co = 0; co < g->Cout; co++) {
                    ND_T *o = out + (n * g->Cout + co) * P, bv = bias[co * bstride];
                    for (int64_t i = 0; i < P; i++)
                        o[i] = bv;
                }
        }
        for (int64_t n = 0; n < g->N; n++)
            for (int64_t gi = 0; gi < G; gi++)
                ND_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Og, (int)P, (int)Cg, 1, w + gi * Og * Kg,
                        (int)Kg, x + n * CHW + gi * Cg * P, (int)P, bias ? 1 : 0, out + (n * g->Cout + gi * Og) * P,
                        (int)P);
        return ND_OK;
    }
    const int64_t B = nd_conv_chunk_images(g, (Ktot + g->Cout) * P * (int64_t)sizeof(ND_T));
    ND_T *buf;
    ND_TRY(nd_conv_scratch((void **)&buf, (Ktot + g->Cout) * B * P * (int64_t)sizeof(ND_T)));
    for (int64_t b0 = 0; b0 < g->N; b0 += B) {
        const int64_t nb = g->N - b0 < B ? g->N - b0 : B, Nc = nb * P;
        ND_T *cols = buf, *Y = buf + Ktot * Nc;
        ND_TRY(ND_F(im2col)(cols, Nc, x + b0 * CHW, nb, g));
        for (int64_t gi = 0; gi < G; gi++)
            ND_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Og, (int)Nc, (int)Kg, 1, w + gi * Og * Kg, (int)Kg,
                    cols + gi * Kg * Nc, (int)Nc, 0, Y + gi * Og * Nc, (int)Nc);
        ND_F(scatter_out)(out + b0 * g->Cout * P, Y, nb, g->Cout, P, bias, bstride);
    }
    return ND_OK;
}

/* grad_bias[co] += scale * sum over images and pixels of gout[n][co][:]. */
static void ND_F(grad_bias)(ND_T *gb, int64_t gbstride, const ND_T *gout, int64_t N, int64_t Cout, int64_t P,
                            double scale)
{
#pragma omp parallel for schedule(static) if (nd_nn_parallel() && (N * Cout * P > 32768))
    for (int64_t co = 0; co < Cout; co++) {
        double s = 0;
        for (int64_t n = 0; n < N; n++) {
            const ND_T *src = gout + (n * Cout + co) * P;
#pragma omp simd reduction(+ : s)
            for (int64_t i = 0; i < P; i++)
                s += src[i];
        }
        gb[co * gbstride] += (ND_T)(scale * s);
    }
}

/* Any of gin, gw, gb may be NULL. */
static nd_status ND_F(backward)(ND_T *gin, ND_T *gw, ND_T *gb, int64_t gbstride, const ND_T *x, const ND_T *gout,
                                const ND_T *w, double scale, const nd_conv_geom *g)
{
    const int64_t P = g->OH * g->OW, G = g->groups, Cg = g->C / G, Og = g->Cout / G;
    const int64_t Kg = Cg * g->kh * g->kw, Ktot = Kg * G, CHW = g->C * g->H * g->W, OP = g->Cout * P;
    const ND_T alpha = (ND_T)scale;
    if (gb) ND_F(grad_bias)(gb, gbstride, gout, g->N, g->Cout, P, scale);
    if (!gin && !gw) return ND_OK;
    if (nd_conv_is_pointwise(g) && P >= ND_CONV_DIRECT_MIN_P) {
        for (int64_t n = 0; n < g->N; n++)
            for (int64_t gi = 0; gi < G; gi++) {
                const ND_T *go = gout + n * OP + gi * Og * P;
                if (gin)
                    ND_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)Cg, (int)P, (int)Og, 1, w + gi * Og * Kg,
                            (int)Kg, go, (int)P, 0, gin + n * CHW + gi * Cg * P, (int)P);
                if (gw)
                    ND_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Og, (int)Cg, (int)P, alpha, go, (int)P,
                            x + n * CHW + gi * Cg * P, (int)P, 1, gw + gi * Og * Kg, (int)Kg);
            }
        return ND_OK;
    }
    const int64_t B = nd_conv_chunk_images(g, (Ktot + g->Cout) * P * (int64_t)sizeof(ND_T));
    ND_T *buf;
    ND_TRY(nd_conv_scratch((void **)&buf, (Ktot + g->Cout) * B * P * (int64_t)sizeof(ND_T)));
    for (int64_t b0 = 0; b0 < g->N; b0 += B) {
        const int64_t nb = g->N - b0 < B ? g->N - b0 : B, Nc = nb * P;
        ND_T *Gb = buf, *cols = buf + g->Cout * Nc;
        ND_F(gather_grad)(Gb, gout + b0 * OP, nb, g->Cout, P);
        if (gw) {
            ND_TRY(ND_F(im2col)(cols, Nc, x + b0 * CHW, nb, g));
            for (int64_t gi = 0; gi < G; gi++)
                ND_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Og, (int)Kg, (int)Nc, alpha, Gb + gi * Og * Nc,
                        (int)Nc, cols + gi * Kg * Nc, (int)Nc, 1, gw + gi * Og * Kg, (int)Kg);
        }
        if (gin) {
            for (int64_t gi = 0; gi < G; gi++)
                ND_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)Kg, (int)Nc, (int)Og, 1, w + gi * Og * Kg,
                        (int)Kg, Gb + gi * Og * Nc, (int)Nc, 0, cols + gi * Kg * Nc, (int)Nc);
            ND_TRY(ND_F(col2im)(gin + b0 * CHW, cols, Nc, nb, g));
        }
    }
    return ND_OK;
}

#else /* ---------------------------------------------------------------------------------- */

#include <cblas.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nd_cpu_nn.h"

/* 1x1 convolutions over at least this many pixels per image run one GEMM per image on the
 * input itself; smaller images go through the batched path (whose im2col is then a copy). */
#define ND_CONV_DIRECT_MIN_P 256

/* nd_conv_geom: everything the kernels need about one call (nd_cpu_nn.h, filled by nn_check.c). */

static int64_t nd_conv_chunk_budget = 64ll << 20;

/* -1: not decided yet (a benign race: every thread decides the same from the environment). */
static int nd_nn_parallel_setting = -1;

int nd_nn_parallel(void)
{
    int on = nd_nn_parallel_setting;
    if (on < 0) {
        const char *wp = getenv("OMP_WAIT_POLICY"), *sc = getenv("GOMP_SPINCOUNT");
        on = (wp && strcasecmp(wp, "passive") == 0) ||
             (sc && sc[0] >= '0' && sc[0] <= '9' && strtoll(sc, NULL, 10) <= 100000);
        nd_nn_parallel_setting = on;
    }
    return on;
}

int nd_nn_set_parallel(int on)
{
    int old = nd_nn_parallel();
    if (on >= 0) nd_nn_parallel_setting = on ? 1 : 0;
    return old;
}

int64_t nd_conv_set_chunk_bytes(int64_t bytes)
{
    int64_t old = nd_conv_chunk_budget;
    if (bytes > 0) nd_conv_chunk_budget = bytes;
    return old;
}

/* -1: not decided yet (read from ND_CONV_WINOGRAD at first use; a benign race as above). */
static int nd_conv_winograd_setting = -1;

int nd_conv_set_winograd(int mode)
{
    int old = nd_conv_winograd_setting;
    if (old < 0) {
        const char *e = getenv("ND_CONV_WINOGRAD");
        old = ND_CONV_WINOGRAD_AUTO;
        if (e && (strcasecmp(e, "off") == 0 || strcmp(e, "0") == 0)) old = ND_CONV_WINOGRAD_OFF;
        if (e && (strcasecmp(e, "force") == 0 || strcmp(e, "2") == 0)) old = ND_CONV_WINOGRAD_FORCE;
        nd_conv_winograd_setting = old;
    }
    if (mode >= ND_CONV_WINOGRAD_OFF && mode <= ND_CONV_WINOGRAD_FORCE) nd_conv_winograd_setting = mode;
    return old;
}

/* Winograd pays once the 16 GEMMs have enough planes on both sides (the first VGG layer, with
 * 3 input planes, is faster through im2col: bench/layers.lua compares the two per layer) and
 * enough 2x2 output tiles to amortise the per-call weight transform (512x512 planes on 2x2 images:
 * 1.2x faster at batch 128 = 128 tiles, 0.8x slower at batch 32). */
#define ND_CONV_WINOGRAD_MIN_PLANES 32
#define ND_CONV_WINOGRAD_MIN_TILES 64

static int nd_conv_use_winograd(const nd_conv_geom *g)
{
    nd_conv2d_params p = {g->kh, g->kw, g->sh, g->sw, g->ph, g->pw, g->dh, g->dw, g->groups};
    if (!nd_winograd_applies(&p)) return 0;
    int mode = nd_conv_set_winograd(-1);
    if (mode == ND_CONV_WINOGRAD_FORCE) return 1;
    const int64_t tiles = g->N * ((g->OH + 1) / 2) * ((g->OW + 1) / 2);
    return mode == ND_CONV_WINOGRAD_AUTO && g->C >= ND_CONV_WINOGRAD_MIN_PLANES &&
           g->Cout >= ND_CONV_WINOGRAD_MIN_PLANES && tiles >= ND_CONV_WINOGRAD_MIN_TILES;
}

/* The per-thread scratch: a storage (so its bytes show in the memory counters), grown on demand. */
static _Thread_local nd_storage *nd_conv_scratch_storage;

static nd_status nd_conv_scratch(void **ptr, int64_t nbytes)
{
    if (!nd_conv_scratch_storage || nd_conv_scratch_storage->nbytes < nbytes) {
        nd_storage_release(nd_conv_scratch_storage);
        nd_conv_scratch_storage = NULL;
        nd_status st = nd_storage_new(&nd_conv_scratch_storage, nbytes, nd_cpu_device(), 0);
        if (st != ND_OK)
            return ND_ERROR(ND_ERR_MEMORY, "conv2d: cannot allocate a %lld-byte column buffer", (long long)nbytes);
    }
    *ptr = nd_conv_scratch_storage->data;
    return ND_OK;
}

void nd_conv_scratch_free(void)
{
    nd_storage_release(nd_conv_scratch_storage);
    nd_conv_scratch_storage = NULL;
}

int64_t nd_conv_scratch_bytes(void)
{
    return nd_conv_scratch_storage ? nd_conv_scratch_storage->nbytes : 0;
}

/* The Winograd geometry of g, planned for the chunk budget, and the scratch it needs. */
static nd_status nd_conv_winograd_setup(nd_winograd_geom *wg, void **scratch, const nd_conv_geom *g, int64_t elem,
                                        int need_u, int need_du)
{
    *wg = (nd_winograd_geom){.N = g->N, .C = g->C, .H = g->H, .W = g->W, .Cout = g->Cout, .ph = g->ph, .pw = g->pw};
    return nd_conv_scratch(scratch, nd_winograd_plan(wg, nd_conv_chunk_budget, elem, need_u, need_du));
}

/* Images per chunk so that the buffers stay within the budget (at least one). */
static int64_t nd_conv_chunk_images(const nd_conv_geom *g, int64_t bytes_per_image)
{
    int64_t b = bytes_per_image > 0 ? nd_conv_chunk_budget / bytes_per_image : g->N;
    if (b < 1) b = 1;
    return b < g->N ? b : g->N;
}

static int nd_conv_is_pointwise(const nd_conv_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
}

int64_t nd_conv_out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d)
{
    int64_t span = in + 2 * p - d * (k - 1) - 1;
    return span < 0 ? 0 : span / s + 1;
}

/* Output columns ow in [lo, hi) read input column ow*s + off inside [0, W). */
static inline void nd_conv_valid_range(int64_t off, int64_t s, int64_t W, int64_t OW, int64_t *lo, int64_t *hi)
{
    int64_t l = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t h = W - 1 - off < 0 ? 0 : (W - 1 - off) / s + 1;
    if (l > OW) l = OW;
    if (h > OW) h = OW;
    if (h < l) h = l;
    *lo = l;
    *hi = h;
}

/* Narrow outputs (short runs per input row) go through pixel maps; so do strided ones whose
 * runs cannot be copied as blocks. Maps hold int32 offsets. */
#define ND_CONV_ROW_MIN 16
static int nd_conv_use_maps(const nd_conv_geom *g)
{
    return g->OW < ND_CONV_ROW_MIN && g->H * g->W < INT32_MAX && g->OH * g->OW < INT32_MAX;
}

/* map[t*P + oh*OW + ow] = input offset ih*W + iw read by tap t = ki*kw + kj, 0 where it reads
 * padding; those positions are listed in pads[pad_start[t] .. pad_start[t+1]). The gather then
 * needs no condition (it vectorises) and the few padded entries are zeroed afterwards. */
static void nd_conv_gather_map(int32_t *map, int32_t *pads, int32_t *pad_start, const nd_conv_geom *g)
{
    int32_t np = 0;
    for (int64_t t = 0; t < g->kh * g->kw; t++) {
        const int64_t ki = t / g->kw, kj = t % g->kw;
        pad_start[t] = np;
        for (int64_t oh = 0; oh < g->OH; oh++)
            for (int64_t ow = 0; ow < g->OW; ow++) {
                int64_t ih = oh * g->sh - g->ph + ki * g->dh, iw = ow * g->sw - g->pw + kj * g->dw;
                int64_t i = oh * g->OW + ow;
                int ok = ih >= 0 && ih < g->H && iw >= 0 && iw < g->W;
                map[t * g->OH * g->OW + i] = ok ? (int32_t)(ih * g->W + iw) : 0;
                if (!ok) pads[np++] = (int32_t)i;
            }
    }
    pad_start[g->kh * g->kw] = np;
}

/* The inverse: map[t*H*W + ih*W + iw] = output pixel oh*OW + ow whose tap t reads (ih, iw), or -1.
 * (At most one per tap: a tap reads each input pixel at most once.) */
static void nd_conv_scatter_map(int32_t *map, const nd_conv_geom *g)
{
    const int64_t HW = g->H * g->W;
    for (int64_t t = 0; t < g->kh * g->kw * HW; t++)
        map[t] = -1;
    for (int64_t ki = 0; ki < g->kh; ki++)
        for (int64_t kj = 0; kj < g->kw; kj++)
            for (int64_t oh = 0; oh < g->OH; oh++)
                for (int64_t ow = 0; ow < g->OW; ow++) {
                    int64_t ih = oh * g->sh - g->ph + ki * g->dh, iw = ow * g->sw - g->pw + kj * g->dw;
                    if (ih >= 0 && ih < g->H && iw >= 0 && iw < g->W)
                        map[(ki * g->kw + kj) * HW + ih * g->W + iw] = (int32_t)(oh * g->OW + ow);
                }
}

#define ND_T float
#define ND_F(name) nd_conv_##name##_f32
#define ND_GEMM cblas_sgemm
#include "conv.c"
#undef ND_T
#undef ND_F
#undef ND_GEMM
#define ND_T double
#define ND_F(name) nd_conv_##name##_f64
#define ND_GEMM cblas_dgemm
#include "conv.c"
#undef ND_T
#undef ND_F
#undef ND_GEMM

/* ---- validation: nd_conv_check_* (nn_check.c, shared with conv.cu) ---- */

/* ---- im2col / col2im ---- */

nd_status nd_im2col_cpu(nd_tensor *cols, const nd_tensor *input, const nd_conv2d_params *p)
{
    const char *op = "im2col";
    nd_conv_geom g;
    int64_t size[2];
    ND_TRY(nd_conv_check_im2col(ND_DEVICE_CPU, op, &g, cols, input, p, size));
    nd_tensor x;
    ND_TRY(nd_tensor_contiguous(&x, input));
    nd_status st = x.dtype == ND_DTYPE_F32
                       ? nd_conv_im2col_f32(nd_tensor_data(cols), size[1], nd_tensor_data(&x), g.N, &g)
                       : nd_conv_im2col_f64(nd_tensor_data(cols), size[1], nd_tensor_data(&x), g.N, &g);
    nd_tensor_release(&x);
    return st;
}

nd_status nd_col2im_cpu(nd_tensor *image, const nd_tensor *cols, const nd_conv2d_params *p)
{
    const char *op = "col2im";
    nd_conv_geom g;
    int64_t size[2];
    ND_TRY(nd_conv_check_col2im(ND_DEVICE_CPU, op, &g, image, cols, p, size));
    nd_tensor c;
    ND_TRY(nd_tensor_contiguous(&c, cols));
    nd_status st = c.dtype == ND_DTYPE_F32
                       ? nd_conv_col2im_f32(nd_tensor_data(image), nd_tensor_data(&c), size[1], g.N, &g)
                       : nd_conv_col2im_f64(nd_tensor_data(image), nd_tensor_data(&c), size[1], g.N, &g);
    nd_tensor_release(&c);
    return st;
}

/* ---- reference (direct loops, any strides) ---- */

/* Sizes and strides of a 3-d or 4-d image as 4-d (N = 1, stride 0 for a 3-d one). */
static void nd_conv_dims4(const nd_tensor *t, int64_t *st)
{
    int b = t->ndim == 4;
    st[0] = b ? t->stride[0] : 0;
    for (int d = 0; d < 3; d++)
        st[d + 1] = t->stride[b + d];
}

/* Weight element (co, ci, ki, kj) offset for a 4-d or 2-d weight. */
static int64_t nd_conv_woff(const nd_tensor *w, const nd_conv_geom *g, int64_t co, int64_t ci, int64_t ki, int64_t kj)
{
    if (w->ndim == 4) return co * w->stride[0] + ci * w->stride[1] + ki * w->stride[2] + kj * w->stride[3];
    return co * w->stride[0] + ((ci * g->kh + ki) * g->kw + kj) * w->stride[1];
}

nd_status nd_conv2d_forward_ref_cpu(nd_tensor *out, const nd_tensor *input, const nd_tensor *weight,
                                    const nd_tensor *bias, const nd_conv2d_params *p)
{
    const char *op = "conv2d";
    nd_conv_geom g;
    int64_t bst = 0;
    ND_TRY(nd_conv_check_forward(ND_DEVICE_CPU, op, &g, out, input, weight, bias, p, 0, &bst));
    int64_t xs[4], os[4];
    nd_conv_dims4(input, xs);
    nd_conv_dims4(out, os);
    const int64_t Cg = g.C / g.groups, Og = g.Cout / g.groups;
    for (int64_t n = 0; n < g.N; n++)
        for (int64_t co = 0; co < g.Cout; co++)
            for (int64_t oh = 0; oh < g.OH; oh++)
                for (int64_t ow = 0; ow < g.OW; ow++) {
                    double s = bias ? nd_nn_get(bias, co * bst) : 0.0;
                    for (int64_t ci = 0; ci < Cg; ci++) {
                        int64_t c = (co / Og) * Cg + ci;
                        for (int64_t ki = 0; ki < g.kh; ki++) {
                            int64_t ih = oh * g.sh - g.ph + ki * g.dh;
                            if (ih < 0 || ih >= g.H) continue;
                            for (int64_t kj = 0; kj < g.kw; kj++) {
                                int64_t iw = ow * g.sw - g.pw + kj * g.dw;
                                if (iw < 0 || iw >= g.W) continue;
                                s += nd_nn_get(weight, nd_conv_woff(weight, &g, co, ci, ki, kj)) *
                                     nd_nn_get(input, n * xs[0] + c * xs[1] + ih * xs[2] + iw * xs[3]);
                            }
                        }
                    }
                    nd_nn_set(out, n * os[0] + co * os[1] + oh * os[2] + ow * os[3], s);
                }
    return ND_OK;
}

nd_status nd_conv2d_backward_ref_cpu(nd_tensor *grad_input, nd_tensor *grad_weight, nd_tensor *grad_bias,
                                     const nd_tensor *input, const nd_tensor *grad_output, const nd_tensor *weight,
                                     double scale, const nd_conv2d_params *p)
{
    const char *op = "conv2d backward";
    nd_conv_geom g;
    int64_t gbst = 0;
    ND_TRY(nd_conv_check_backward(ND_DEVICE_CPU, op, &g, grad_input, grad_weight, grad_bias, input, grad_output, weight,
                                  p, 0, &gbst));
    int64_t xs[4], os[4], gs[4] = {0, 0, 0, 0};
    nd_conv_dims4(input, xs);
    nd_conv_dims4(grad_output, os);
    if (grad_input) {
        nd_conv_dims4(grad_input, gs);
        for (int64_t n = 0; n < g.N; n++)
            for (int64_t c = 0; c < g.C; c++)
                for (int64_t h = 0; h < g.H; h++)
                    for (int64_t w = 0; w < g.W; w++)
                        nd_nn_set(grad_input, n * gs[0] + c * gs[1] + h * gs[2] + w * gs[3], 0);
    }
    const int64_t Cg = g.C / g.groups, Og = g.Cout / g.groups;
    for (int64_t co = 0; co < g.Cout; co++) {
        double sb = 0;
        for (int64_t ci = 0; ci < Cg; ci++) {
            int64_t c = (co / Og) * Cg + ci;
            for (int64_t ki = 0; ki < g.kh; ki++)
                for (int64_t kj = 0; kj < g.kw; kj++) {
                    int64_t wo = nd_conv_woff(weight, &g, co, ci, ki, kj);
                    double wv = nd_nn_get(weight, wo), sw = 0;
                    for (int64_t n = 0; n < g.N; n++)
                        for (int64_t oh = 0; oh < g.OH; oh++) {
                            int64_t ih = oh * g.sh - g.ph + ki * g.dh;
                            if (ih < 0 || ih >= g.H) continue;
                            for (int64_t ow = 0; ow < g.OW; ow++) {
                                int64_t iw = ow * g.sw - g.pw + kj * g.dw;
                                if (iw < 0 || iw >= g.W) continue;
                                double go = nd_nn_get(grad_output, n * os[0] + co * os[1] + oh * os[2] + ow * os[3]);
                                sw += go * nd_nn_get(input, n * xs[0] + c * xs[1] + ih * xs[2] + iw * xs[3]);
                                if (grad_input) {
                                    int64_t o = n * gs[0] + c * gs[1] + ih * gs[2] + iw * gs[3];
                                    nd_nn_set(grad_input, o, nd_nn_get(grad_input, o) + go * wv);
                                }
                            }
                        }
                    if (grad_weight) {
                        int64_t o = nd_conv_woff(grad_weight, &g, co, ci, ki, kj);
                        nd_nn_set(grad_weight, o, nd_nn_get(grad_weight, o) + scale * sw);
                    }
                }
        }
        if (grad_bias) {
            for (int64_t n = 0; n < g.N; n++)
                for (int64_t oh = 0; oh < g.OH; oh++)
                    for (int64_t ow = 0; ow < g.OW; ow++)
                        sb += nd_nn_get(grad_output, n * os[0] + co * os[1] + oh * os[2] + ow * os[3]);
            nd_nn_set(grad_bias, co * gbst, nd_nn_get(grad_bias, co * gbst) + scale * sb);
        }
    }
    return ND_OK;
}

/* ---- fast path ---- */

nd_status nd_conv2d_forward_cpu(nd_tensor *out, const nd_tensor *input, const nd_tensor *weight, const nd_tensor *bias,
                                const nd_conv2d_params *p)
{
    const char *op = "conv2d";
    nd_conv_geom g;
    int64_t bst = 0;
    ND_TRY(nd_conv_check_forward(ND_DEVICE_CPU, op, &g, out, input, weight, bias, p, 1, &bst));
    nd_tensor x, w;
    ND_TRY(nd_tensor_contiguous(&x, input));
    nd_status st = nd_tensor_contiguous(&w, weight);
    if (st == ND_OK && nd_conv_use_winograd(&g)) {
        nd_winograd_geom wg;
        void *scratch;
        const int f32 = x.dtype == ND_DTYPE_F32;
        const void *b = bias ? nd_tensor_data(bias) : NULL;
        st = nd_conv_winograd_setup(&wg, &scratch, &g, f32 ? 4 : 8, 1, 0);
        if (st == ND_OK)
            st = f32 ? nd_winograd_forward_f32(nd_tensor_data(out), nd_tensor_data(&x), nd_tensor_data(&w), b, bst,
                                               &wg, scratch)
                     : nd_winograd_forward_f64(nd_tensor_data(out), nd_tensor_data(&x), nd_tensor_data(&w), b, bst,
                                               &wg, scratch);
        nd_tensor_release(&w);
    } else if (st == ND_OK) {
        if (x.dtype == ND_DTYPE_F32)
            st = nd_conv_forward_f32(nd_tensor_data(out), nd_tensor_data(&x), nd_tensor_data(&w),
                                     bias ? nd_tensor_data(bias) : NULL, bst, &g);
        else
            st = nd_conv_forward_f64(nd_tensor_data(out), nd_tensor_data(&x), nd_tensor_data(&w),
                                     bias ? nd_tensor_data(bias) : NULL, bst, &g);
        nd_tensor_release(&w);
    }
    nd_tensor_release(&x);
    return st;
}

/* Shared by the three backward entry points. image: input or, without one, grad_input. */
static nd_status nd_conv_backward_common(const char *op, nd_tensor *grad_input, nd_tensor *grad_weight,
                                         nd_tensor *grad_bias, const nd_tensor *input, const nd_tensor *grad_output,
                                         const nd_tensor *weight, double scale, const nd_conv2d_params *p)
{
    nd_conv_geom g;
    const nd_tensor *image = input ? input : grad_input;
    int64_t gbst = 0;
    ND_TRY(nd_conv_check_backward(ND_DEVICE_CPU, op, &g, grad_input, grad_weight, grad_bias, input, grad_output, weight,
                                  p, 1, &gbst));
    nd_tensor x, w, go;
    nd_tensor_init_empty(&x, image->dtype);
    nd_tensor_init_empty(&w, image->dtype);
    nd_status st = nd_tensor_contiguous(&go, grad_output);
    if (st == ND_OK && grad_weight) st = nd_tensor_contiguous(&x, input);
    if (st == ND_OK && grad_input) st = nd_tensor_contiguous(&w, weight);
    if (st == ND_OK && (grad_input || grad_weight) && nd_conv_use_winograd(&g)) {
        /* grad_bias through the im2col kernel (which returns before its GEMMs), the rest here */
        const int f32 = image->dtype == ND_DTYPE_F32;
        void *gi = grad_input ? nd_tensor_data(grad_input) : NULL, *gw = grad_weight ? nd_tensor_data(grad_weight) : NULL;
        if (grad_bias && f32)
            st = nd_conv_backward_f32(NULL, NULL, nd_tensor_data(grad_bias), gbst, NULL, nd_tensor_data(&go), NULL,
                                      scale, &g);
        else if (grad_bias)
            st = nd_conv_backward_f64(NULL, NULL, nd_tensor_data(grad_bias), gbst, NULL, nd_tensor_data(&go), NULL,
                                      scale, &g);
        nd_winograd_geom wg;
        void *scratch;
        if (st == ND_OK) st = nd_conv_winograd_setup(&wg, &scratch, &g, f32 ? 4 : 8, gi != NULL, gw != NULL);
        if (st == ND_OK)
            st = f32 ? nd_winograd_backward_f32(gi, gw, nd_tensor_data(&x), nd_tensor_data(&go), nd_tensor_data(&w),
                                                scale, &wg, scratch)
                     : nd_winograd_backward_f64(gi, gw, nd_tensor_data(&x), nd_tensor_data(&go), nd_tensor_data(&w),
                                                scale, &wg, scratch);
    } else if (st == ND_OK) {
        if (image->dtype == ND_DTYPE_F32)
            st = nd_conv_backward_f32(grad_input ? nd_tensor_data(grad_input) : NULL,
                                      grad_weight ? nd_tensor_data(grad_weight) : NULL,
                                      grad_bias ? nd_tensor_data(grad_bias) : NULL, gbst, nd_tensor_data(&x),
                                      nd_tensor_data(&go), nd_tensor_data(&w), scale, &g);
        else
            st = nd_conv_backward_f64(grad_input ? nd_tensor_data(grad_input) : NULL,
                                      grad_weight ? nd_tensor_data(grad_weight) : NULL,
                                      grad_bias ? nd_tensor_data(grad_bias) : NULL, gbst, nd_tensor_data(&x),
                                      nd_tensor_data(&go), nd_tensor_data(&w), scale, &g);
    }
    nd_tensor_release(&go);
    nd_tensor_release(&x);
    nd_tensor_release(&w);
    return st;
}

nd_status nd_conv2d_backward_input_cpu(nd_tensor *grad_input, const nd_tensor *grad_output, const nd_tensor *weight,
                                       const nd_conv2d_params *p)
{
    if (!grad_input || !weight) return ND_ERROR(ND_ERR_ARG, "conv2d backward: grad_input and weight are required");
    return nd_conv_backward_common("conv2d backward", grad_input, NULL, NULL, NULL, grad_output, weight, 1.0, p);
}

nd_status nd_conv2d_backward_params_cpu(nd_tensor *grad_weight, nd_tensor *grad_bias, const nd_tensor *input,
                                        const nd_tensor *grad_output, double scale, const nd_conv2d_params *p)
{
    if (!grad_weight || !input) return ND_ERROR(ND_ERR_ARG, "conv2d backward: grad_weight and input are required");
    return nd_conv_backward_common("conv2d backward", NULL, grad_weight, grad_bias, input, grad_output, NULL, scale, p);
}

nd_status nd_conv2d_backward_cpu(nd_tensor *grad_input, nd_tensor *grad_weight, nd_tensor *grad_bias,
                                 const nd_tensor *input, const nd_tensor *grad_output, const nd_tensor *weight,
                                 double scale, const nd_conv2d_params *p)
{
    const char *op = "conv2d backward";
    if (!input || !weight) return ND_ERROR(ND_ERR_ARG, "%s: input and weight are required", op);
    return nd_conv_backward_common(op, grad_input, grad_weight, grad_bias, input, grad_output, weight, scale, p);
}

#endif
