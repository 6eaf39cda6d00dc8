/* FastDeconv / Delinear kernels: sampled and block-regrouped im2col and its adjoint, the mean and
 * covariance statistics with their backward, and the weight folding with its backward.
 * Shapes and semantics: nd_cpu_deconv.h (spec sections 2, 3 and 5).
 *
 * Regrouping. A patch row P (length K = Cin*k*k) becomes Gs rows of Fs = K/Gs features in X:
 * feature f goes to row f % Gs, column f / Gs (strided blocks, Gs = Cin/B) when groups == 1, and
 * stays in place (Gs = 1: X = P, the groups are contiguous column ranges) when groups > 1.
 * So a patch's Gs rows are one contiguous block of K entries of X, and entry f of the patch sits
 * at offset (f % Gs) * Fs + f / Gs of that block.
 *
 * The typed kernels (float, double) are written once below, between #ifdef ND_T and #else:
 * this file includes itself once per element type. */
#ifdef ND_T

/* ---- sampled im2col and its adjoint; x / Gx contiguous (N,C,H,W); X (R0*Gs, K/Gs) ---- */

static void ND_F(im2col)(ND_T *X, const ND_T *x, const nd_deconv_dims *d, const int64_t *off)
{
    const int64_t C = d->C, H = d->H, W = d->W, k = d->k, kk = k * k, K = C * kk, HW = H * W, s = d->s;
    if (k == 1) {
        const int64_t ss = s * s;
#pragma omp parallel for schedule(static) if (d->R0 * K > 32768)
        for (int64_t r = 0; r < d->R0; r++) {
            const int64_t t = r * ss, n = t / HW, pix = t % HW;
            ND_T *dst = X + r * K;
            const ND_T *src = x + n * C * HW + pix;
            for (int64_t c = 0; c < C; c++)
                dst[off[c]] = src[c * HW];
        }
        return;
    }
    const int64_t Lh = d->Lh, Lw = d->Lw, pad = d->pad, dil = d->dil;
#pragma omp parallel for schedule(static) if (d->R0 * K > 32768)
    for (int64_t r = 0; r < d->R0; r++) {
        const int64_t n = r / (Lh * Lw), i = (r / Lw) % Lh, j = r % Lw;
        ND_T *dst = X + r * K;
        for (int64_t c = 0; c < C; c++) {
            const ND_T *plane = x + (n * C + c) * HW;
            const int64_t *o = off + c * kk;
            for (int64_t ki = 0; ki < k; ki++) {
                const int64_t h = i * s - pad + ki * dil;
                const int hin = h >= 0 && h < H;
                for (int64_t kj = 0; kj < k; kj++) {
                    const int64_t w = j * s - pad + kj * dil;
                    dst[o[ki * k + kj]] = (hin && w >= 0 && w < W) ? plane[h * W + w] : 0;
                }
            }
        }
    }
}

static void ND_F(col2im_add)(ND_T *Gx, const ND_T *GX, const nd_deconv_dims *d, const int64_t *off)
{
    const int64_t C = d->C, H = d->H, W = d->W, k = d->k, kk = k * k, K = C * kk, HW = H * W, s = d->s;
    if (k == 1) { /* distinct pixels: no write conflicts */
        const int64_t ss = s * s;
#pragma omp parallel for schedule(static) if (d->R0 * K > 32768)
        for (int64_t r = 0; r < d->R0; r++) {
            const int64_t t = r * ss, n = t / HW, pix = t % HW;
            const ND_T *src = GX + r * K;
            ND_T *dst = Gx + n * C * HW + pix;
            for (int64_t c = 0; c < C; c++)
                dst[c * HW] += src[off[c]];
        }
        return;
    }
    /* one (image, channel) plane per iteration: the overlapping patches write only to it */
    const int64_t Lh = d->Lh, Lw = d->Lw, pad = d->pad, dil = d->dil, L = Lh * Lw;
#pragma omp parallel for schedule(static) if (d->R0 * K > 32768)
    for (int64_t nc = 0; nc < d->N * C; nc++) {
        const int64_t n = nc / C, c = nc % C;
        const int64_t *o = off + c * kk;
        ND_T *plane = Gx + nc * HW;
        for (int64_t ij = 0; ij < L; ij++) {
            const int64_t i = ij / Lw, j = ij % Lw;
            const ND_T *src = GX + (n * L + ij) * K;
            for (int64_t ki = 0; ki < k; ki++) {
                const int64_t h = i * s - pad + ki * dil;
                if (h < 0 || h >= H) continue;
                for (int64_t kj = 0; kj < k; kj++) {
                    const int64_t w = j * s - pad + kj * dil;
                    if (w >= 0 && w < W) plane[h * W + w] += src[o[ki * k + kj]];
                }
            }
        }
    }
}

/* ---- statistics; X contiguous (M, cols = ng*F) ---- */

/* Column sums of rows [0, M) with stride ld (in elements) between rows, into sum (double, cols):
 * one partial sum per thread over a static split of the rows, added in thread order, so the
 * result does not change from run to run. Returns 0, or -1 when out of memory. */
static int ND_F(colsum)(double *sum, const ND_T *X, int64_t M, int64_t ld, int64_t cols)
{
    const int nt = M * cols > 65536 ? omp_get_max_threads() : 1;
    double *part = (double *)calloc((size_t)(nt * cols), sizeof(double));
    if (!part) return -1;
#pragma omp parallel num_threads(nt)
    {
        double *loc = part + (int64_t)omp_get_thread_num() * cols;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < M; r++) {
            const ND_T *row = X + r * ld;
            for (int64_t c = 0; c < cols; c++)
                loc[c] += row[c];
        }
    }
    memset(sum, 0, sizeof(double) * (size_t)cols);
    for (int t = 0; t < nt; t++)
        for (int64_t c = 0; c < cols; c++)
            sum[c] += part[t * cols + c];
    free(part);
    return 0;
}

/* acc (F x F, double, upper triangle) += A^T A for A (R x F, row stride lda); tmp: F*F scratch. */
static void ND_F(gram_acc)(double *acc, const ND_T *A, int64_t R, int64_t lda, int64_t F, ND_T *tmp)
{
    if (sizeof(ND_T) == sizeof(double)) {
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)F, (int)R, 1.0, (const double *)A, (int)lda, 1.0, acc,
                    (int)F);
        return;
    }
    ND_SYRK(CblasRowMajor, CblasUpper, CblasTrans, (int)F, (int)R, 1, A, (int)lda, 0, tmp, (int)F);
    for (int64_t a = 0; a < F; a++)
        for (int64_t b = a; b < F; b++)
            acc[a * F + b] += tmp[a * F + b];
}

/* tmp (R x cols) = X[r0 .. r0+R) - mu. */
static void ND_F(center)(ND_T *tmp, const ND_T *X, const ND_T *mu, int64_t r0, int64_t R, int64_t cols)
{
#pragma omp parallel for schedule(static) if (R * cols > 65536)
    for (int64_t r = 0; r < R; r++) {
        const ND_T *src = X + (r0 + r) * cols;
        ND_T *dst = tmp + r * cols;
        for (int64_t c = 0; c < cols; c++)
            dst[c] = src[c] - mu[c];
    }
}

/* Small F (many tiny groups, e.g. depthwise): acc (ng x F x F, upper triangles) += Xc^T Xc
 * with plain loops; one partial sum per thread (static split of the rows, added in order). */
static int ND_F(gram_small)(double *acc, const ND_T *X, const ND_T *mu, int64_t M, int64_t ng, int64_t F)
{
    const int64_t cols = ng * F, FF = F * F, per = ng * FF + F;
    const int nt = M * cols * F > (1 << 18) ? omp_get_max_threads() : 1;
    double *part = (double *)calloc((size_t)(nt * per), sizeof(double));
    if (!part) return -1;
#pragma omp parallel num_threads(nt)
    {
        double *loc = part + (int64_t)omp_get_thread_num() * per, *v = loc + ng * FF;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < M; r++)
            for (int64_t j = 0; j < ng; j++) {
                const ND_T *row = X + r * cols + j * F, *m = mu + j * F;
                double *aj = loc + j * FF;
                for (int64_t a = 0; a < F; a++)
                    v[a] = (double)row[a] - (double)m[a];
                for (int64_t a = 0; a < F; a++)
                    for (int64_t b = a; b < F; b++)
                        aj[a * F + b] += v[a] * v[b];
            }
    }
    for (int t = 0; t < nt; t++)
        for (int64_t i = 0; i < ng * FF; i++)
            acc[i] += part[t * per + i];
    free(part);
    return 0;
}

/* Returns 0, or -1 when out of memory. */
static int ND_F(cov_forward)(ND_T *mu, ND_T *C, const ND_T *X, int64_t M, int64_t ng, int64_t F, double eps)
{
    const int64_t cols = ng * F, chunk = F <= ND_DECONV_SMALL_F ? 0 : nd_deconv_chunk_rows(cols);
    double *sum = (double *)malloc(sizeof(double) * (size_t)(cols + ng * F * F));
    ND_T *tmp = (ND_T *)malloc(sizeof(ND_T) * (size_t)(chunk * cols + F * F));
    if (!sum || !tmp) {
        free(sum);
        free(tmp);
        return -1;
    }
    double *acc = sum + cols;
    if (ND_F(colsum)(sum, X, M, cols, cols)) {
        free(sum);
        free(tmp);
        return -1;
    }
    for (int64_t c = 0; c < cols; c++)
        mu[c] = (ND_T)(sum[c] / (double)M);
    memset(acc, 0, sizeof(double) * (size_t)(ng * F * F));
    if (!chunk && ND_F(gram_small)(acc, X, mu, M, ng, F)) {
        free(sum);
        free(tmp);
        return -1;
    }
    for (int64_t r0 = 0; chunk && r0 < M; r0 += chunk) {
        const int64_t R = M - r0 < chunk ? M - r0 : chunk;
        ND_F(center)(tmp, X, mu, r0, R, cols);
        for (int64_t j = 0; j < ng; j++)
            ND_F(gram_acc)(acc + j * F * F, tmp + j * F, R, cols, F, tmp + chunk * cols);
    }
    for (int64_t j = 0; j < ng; j++) {
        const double *aj = acc + j * F * F;
        ND_T *Cj = C + j * F * F;
        for (int64_t a = 0; a < F; a++)
            for (int64_t b = 0; b < F; b++)
                Cj[a * F + b] = (ND_T)((a <= b ? aj[a * F + b] : aj[b * F + a]) / (double)M + (a == b ? eps : 0.0));
    }
    free(sum);
    free(tmp);
    return 0;
}

static int ND_F(cov_backward)(ND_T *GX, const ND_T *GC, const ND_T *Gmu, const ND_T *X, const ND_T *mu, int64_t M,
                              int64_t ng, int64_t F)
{
    const int64_t cols = ng * F, chunk = F <= ND_DECONV_SMALL_F ? 0 : nd_deconv_chunk_rows(cols);
    ND_T *S = (ND_T *)malloc(sizeof(ND_T) * (size_t)(ng * F * F + chunk * cols));
    if (!S) return -1;
    ND_T *tmp = S + ng * F * F;
    for (int64_t j = 0; j < ng; j++)
        for (int64_t a = 0; a < F; a++)
            for (int64_t b = 0; b < F; b++)
                S[(j * F + a) * F + b] =
                    (ND_T)(((double)GC[(j * F + a) * F + b] + GC[(j * F + b) * F + a]) / (double)M);
    if (!chunk) { /* small F: GX row = (x row - mu) S, group by group, with plain loops */
#pragma omp parallel for schedule(static) if (M * cols * F > (1 << 18))
        for (int64_t r = 0; r < M; r++)
            for (int64_t j = 0; j < ng; j++) {
                const ND_T *row = X + r * cols + j * F, *m = mu + j * F, *Sj = S + j * F * F;
                ND_T *out = GX + r * cols + j * F;
                double v[ND_DECONV_SMALL_F];
                for (int64_t a = 0; a < F; a++)
                    v[a] = (double)row[a] - (double)m[a];
                for (int64_t b = 0; b < F; b++) {
                    double acc = 0;
                    for (int64_t a = 0; a < F; a++)
                        acc += v[a] * Sj[a * F + b];
                    out[b] = (ND_T)acc;
                }
            }
    }
    for (int64_t r0 = 0; chunk && r0 < M; r0 += chunk) {
        const int64_t R = M - r0 < chunk ? M - r0 : chunk;
        ND_F(center)(tmp, X, mu, r0, R, cols);
        for (int64_t j = 0; j < ng; j++)
            ND_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)R, (int)F, (int)F, 1, tmp + j * F, (int)cols,
                    S + j * F * F, (int)F, 0, GX + r0 * cols + j * F, (int)cols);
    }
    if (Gmu) {
        ND_T *g = S; /* S is no longer needed: Gmu / M */
        for (int64_t c = 0; c < cols; c++)
            g[c] = (ND_T)(Gmu[c] / (double)M);
#pragma omp parallel for schedule(static) if (M * cols > 65536)
        for (int64_t r = 0; r < M; r++)
            for (int64_t c = 0; c < cols; c++)
                GX[r * cols + c] += g[c];
    }
    free(S);
    return 0;
}

/* ---- folding; W contiguous (Cout, K); Wr (Cout*G, F) the regrouped weights ---- */

/* dst (Cout*G x F) = regroup(src (Cout x K)), or the inverse when back != 0. */
static void ND_F(regroup)(ND_T *dst, const ND_T *src, int64_t Cout, int64_t G, int64_t F, int back)
{
    const int64_t K = G * F;
#pragma omp parallel for schedule(static) if (Cout * K > 65536)
    for (int64_t o = 0; o < Cout; o++)
        for (int64_t g = 0; g < G; g++)
            for (int64_t a = 0; a < F; a++) {
                if (back)
                    dst[o * K + a * G + g] = src[(o * G + g) * F + a];
                else
                    dst[(o * G + g) * F + a] = src[o * K + a * G + g];
            }
}

/* V (rows x F) = Wr (rows x F) @ D, then b[o] -= sum over o's rows of V . mu (o = row / G).
 * dots: rows scalars of scratch. */
static void ND_F(fold)(ND_T *V, ND_T *b, const ND_T *Wr, const ND_T *D, const ND_T *mu, int64_t rows, int64_t G,
                       int64_t F, ND_T *dots)
{
    ND_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)F, (int)F, 1, Wr, (int)F, D, (int)F, 0, V,
            (int)F);
    ND_GEMV(CblasRowMajor, CblasNoTrans, (int)rows, (int)F, 1, V, (int)F, mu, 1, 0, dots, 1);
    for (int64_t o = 0; o < rows / G; o++) {
        double dot = 0;
        for (int64_t g = 0; g < G; g++)
            dot += dots[o * G + g];
        b[o] = (ND_T)(b[o] - dot);
    }
}

/* The backward of ND_F(fold) for one D: GV (rows x F) holds regroup(GWf) on entry and is
 * turned into GV - Gb[o] mu^T; then GWr = GV D^T, GD = Wr^T GV, Gmu = -(sum_r Gb[r/G] Wr[r]) D. */
static void ND_F(unfold)(ND_T *GWr, ND_T *GD, ND_T *Gmu, ND_T *GV, const ND_T *Gb, const ND_T *Wr, const ND_T *D,
                         const ND_T *mu, int64_t rows, int64_t G, int64_t F, ND_T *scratch)
{
    if (Gb) {
#pragma omp parallel for schedule(static) if (rows * F > 65536)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t a = 0; a < F; a++)
                GV[r * F + a] -= Gb[r / G] * mu[a];
    }
    if (GWr)
        ND_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)F, (int)F, 1, GV, (int)F, D, (int)F, 0, GWr,
                (int)F);
    if (GD)
        ND_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)F, (int)F, (int)rows, 1, Wr, (int)F, GV, (int)F, 0, GD,
                (int)F);
    if (Gmu) { /* u = Wr^T (Gb[r/G])_r, Gmu = -D^T u; scratch: rows + F scalars */
        if (!Gb) {
            memset(Gmu, 0, sizeof(ND_T) * (size_t)F);
            return;
        }
        ND_T *gbr = scratch, *u = scratch + rows;
        for (int64_t r = 0; r < rows; r++)
            gbr[r] = Gb[r / G];
        ND_GEMV(CblasRowMajor, CblasTrans, (int)rows, (int)F, 1, Wr, (int)F, gbr, 1, 0, u, 1);
        ND_GEMV(CblasRowMajor, CblasTrans, (int)F, (int)F, -1, D, (int)F, u, 1, 0, Gmu, 1);
    }
}

#else /* ---- untyped part ---- */

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nd_cpu_deconv.h"

/* nd_deconv_dims (sizes of one im2col call): nd_cpu_deconv.h, filled by deconv_check.c. */

/* Groups of at most this many features use plain loops instead of BLAS for the statistics. */
#define ND_DECONV_SMALL_F 16

/* Rows per chunk for a matrix of `cols` columns: ND_DECONV_CHUNK, fewer for wide rows. */
static int64_t nd_deconv_chunk_rows(int64_t cols)
{
    int64_t r = ((int64_t)1 << 20) / (cols > 0 ? cols : 1);
    if (r > ND_DECONV_CHUNK) r = ND_DECONV_CHUNK;
    return r < 64 ? 64 : r;
}

#define ND_T float
#define ND_F(name) nd_deconv_##name##_f32
#define ND_GEMM cblas_sgemm
#define ND_SYRK cblas_ssyrk
#define ND_GEMV cblas_sgemv
#include "deconv.c"
#undef ND_GEMV
#undef ND_T
#undef ND_F
#undef ND_GEMM
#undef ND_SYRK
#define ND_T double
#define ND_F(name) nd_deconv_##name##_f64
#define ND_GEMM cblas_dgemm
#define ND_SYRK cblas_dsyrk
#define ND_GEMV cblas_dgemv
#include "deconv.c"
#undef ND_GEMV
#undef ND_T
#undef ND_F
#undef ND_GEMM
#undef ND_SYRK

/* off[f] = position of patch feature f in its block of K = Gs*Fs entries of X. NULL when out of memory. */
static int64_t *nd_deconv_offsets(const nd_deconv_dims *d)
{
    const int64_t K = d->C * d->k * d->k, Gs = d->Gs, Fs = K / Gs;
    int64_t *off = (int64_t *)malloc(sizeof(int64_t) * (size_t)K);
    if (off)
        for (int64_t f = 0; f < K; f++)
            off[f] = (f % Gs) * Fs + f / Gs;
    return off;
}

/* Calls the typed kernel `name` for dtype dt with the arguments in parentheses. */
#define ND_DECONV_CALL(dt, name, args)                                                                                 \
    ((dt) == ND_DTYPE_F32 ? nd_deconv_##name##_f32 args : nd_deconv_##name##_f64 args)

/* ---- im2col ---- */

int64_t nd_deconv_sample_rows(int64_t N, int64_t H, int64_t W, const nd_deconv_geom *g)
{
    if (g->k == 1) return (N * H * W + g->s * g->s - 1) / (g->s * g->s);
    int64_t eh = H + 2 * g->pad - g->dil * (g->k - 1) - 1, ew = W + 2 * g->pad - g->dil * (g->k - 1) - 1;
    if (eh < 0 || ew < 0) return -1;
    return N * (eh / g->s + 1) * (ew / g->s + 1);
}

nd_status nd_deconv_im2col_cpu(nd_tensor *X, const nd_tensor *x, const nd_deconv_geom *g)
{
    const char *op = "deconv_im2col";
    nd_deconv_dims d;
    ND_TRY(nd_deconv_check_dims(ND_DEVICE_CPU, op, &d, x, "input", g));
    const int64_t K = d.C * d.k * d.k;
    int64_t size[2] = {d.R0 * d.Gs, K / d.Gs};
    ND_TRY(nd_deconv_prepare_out_(op, "X", X, x->dtype, 2, size));
    int64_t *off = nd_deconv_offsets(&d);
    if (!off) return ND_ERROR(ND_ERR_MEMORY, "%s: out of memory", op);
    nd_tensor xc;
    nd_status st = nd_tensor_contiguous(&xc, x);
    if (st == ND_OK) ND_DECONV_CALL(x->dtype, im2col, (nd_tensor_data(X), nd_tensor_data(&xc), &d, off));
    nd_tensor_release(&xc);
    free(off);
    return st;
}

nd_status nd_deconv_col2im_cpu(nd_tensor *Gx, const nd_tensor *GX, const nd_deconv_geom *g)
{
    const char *op = "deconv_col2im";
    nd_deconv_dims d;
    ND_TRY(nd_deconv_check_dims(ND_DEVICE_CPU, op, &d, Gx, "Gx", g));
    const int64_t K = d.C * d.k * d.k;
    int64_t size[2] = {d.R0 * d.Gs, K / d.Gs};
    ND_TRY(nd_deconv_check_float_(op, "GX", GX, (int)Gx->dtype));
    ND_TRY(nd_deconv_check_shape_(op, "GX", GX, 2, size));
    int64_t *off = nd_deconv_offsets(&d);
    if (!off) return ND_ERROR(ND_ERR_MEMORY, "%s: out of memory", op);
    nd_tensor gc, gxc;
    nd_tensor_init_empty(&gxc, Gx->dtype);
    nd_status st = nd_tensor_contiguous(&gc, GX);
    if (st == ND_OK) st = nd_tensor_contiguous(&gxc, Gx);
    if (st == ND_OK) {
        ND_DECONV_CALL(Gx->dtype, col2im_add, (nd_tensor_data(&gxc), nd_tensor_data(&gc), &d, off));
        if (gxc.storage != Gx->storage) st = nd_tensor_copy(Gx, &gxc); /* Gx was not contiguous */
    }
    nd_tensor_release(&gc);
    nd_tensor_release(&gxc);
    free(off);
    return st;
}

/* ---- statistics ---- */

nd_status nd_deconv_cov_forward_cpu(nd_tensor *mu, nd_tensor *C, const nd_tensor *X, int64_t groups, double eps)
{
    const char *op = "deconv_cov";
    int64_t M, F, csize[3], msize[1];
    char s[ND_SHAPE_STR_MAX];
    ND_TRY(nd_deconv_check_X(ND_DEVICE_CPU, op, X, groups, &M, &F));
    msize[0] = groups * F;
    int cdim = nd_deconv_cov_shape(groups, F, csize);
    ND_TRY(nd_deconv_prepare_out_(op, "mu", mu, X->dtype, 1, msize));
    ND_TRY(nd_deconv_prepare_out_(op, "C", C, X->dtype, cdim, csize));
    nd_tensor xc;
    ND_TRY(nd_tensor_contiguous(&xc, X));
    int r = ND_DECONV_CALL(X->dtype, cov_forward,
                           (nd_tensor_data(mu), nd_tensor_data(C), nd_tensor_data(&xc), M, groups, F, eps));
    nd_tensor_release(&xc);
    if (r) return ND_ERROR(ND_ERR_MEMORY, "%s: out of memory (X %s)", op, nd_tensor_shape_str(X, s, sizeof s));
    return ND_OK;
}

nd_status nd_deconv_cov_backward_cpu(nd_tensor *GX, const nd_tensor *GC, const nd_tensor *Gmu, const nd_tensor *X,
                                     const nd_tensor *mu, int64_t groups)
{
    const char *op = "deconv_cov_backward";
    int64_t M, F, csize[3], msize[1];
    char s[ND_SHAPE_STR_MAX];
    ND_TRY(nd_deconv_check_X(ND_DEVICE_CPU, op, X, groups, &M, &F));
    msize[0] = groups * F;
    int cdim = nd_deconv_cov_shape(groups, F, csize);
    ND_TRY(nd_deconv_check_float_(op, "GC", GC, (int)X->dtype));
    ND_TRY(nd_deconv_check_shape_(op, "GC", GC, cdim, csize));
    ND_TRY(nd_deconv_check_float_(op, "mu", mu, (int)X->dtype));
    ND_TRY(nd_deconv_check_shape_(op, "mu", mu, 1, msize));
    if (Gmu && Gmu->storage) {
        ND_TRY(nd_deconv_check_float_(op, "Gmu", Gmu, (int)X->dtype));
        ND_TRY(nd_deconv_check_shape_(op, "Gmu", Gmu, 1, msize));
    }
    ND_TRY(nd_deconv_prepare_out_(op, "GX", GX, X->dtype, 2, X->size));
    nd_tensor t[4];
    const nd_tensor *src[4] = {X, mu, GC, (Gmu && Gmu->storage) ? Gmu : NULL};
    int n = 0;
    nd_status st = ND_OK;
    for (; n < 4 && st == ND_OK; n++) {
        if (src[n])
            st = nd_tensor_contiguous(&t[n], src[n]);
        else
            nd_tensor_init_empty(&t[n], X->dtype);
    }
    int r = 0;
    if (st == ND_OK)
        r = ND_DECONV_CALL(X->dtype, cov_backward,
                           (nd_tensor_data(GX), nd_tensor_data(&t[2]), src[3] ? nd_tensor_data(&t[3]) : NULL,
                            nd_tensor_data(&t[0]), nd_tensor_data(&t[1]), M, groups, F));
    for (int i = 0; i < n; i++)
        nd_tensor_release(&t[i]);
    if (st == ND_OK && r)
        st = ND_ERROR(ND_ERR_MEMORY, "%s: out of memory (X %s)", op, nd_tensor_shape_str(X, s, sizeof s));
    return st;
}

/* ---- folding ---- */

/* nd_fold_dims: nd_cpu_deconv.h, filled by nd_deconv_check_fold (deconv_check.c, shared with deconv.cu). */
static nd_status nd_deconv_fold_check(const char *op, nd_fold_dims *f, const nd_tensor *W, const nd_tensor *D,
                                      const nd_tensor *mu, int64_t groups, nd_deconv_layout layout)
{
    return nd_deconv_check_fold(ND_DEVICE_CPU, op, f, W, D, mu, groups, layout);
}

static nd_status nd_deconv_check_bias(const char *op, const char *what, const nd_tensor *b, const nd_fold_dims *f,
                                      nd_dtype dt)
{
    if (!b || !b->storage) return ND_OK;
    int64_t size[1] = {f->Cout};
    ND_TRY(nd_deconv_check_float_(op, what, b, (int)dt));
    return nd_deconv_check_shape_(op, what, b, 1, size);
}

/* Contiguous copies (or views) of n tensors; NULL entries give empty tensors. Releases on failure. */
static nd_status nd_deconv_contig_all(nd_tensor *out, const nd_tensor *const *src, int n, nd_dtype dt)
{
    for (int i = 0; i < n; i++) {
        nd_status st = ND_OK;
        if (src[i] && src[i]->storage)
            st = nd_tensor_contiguous(&out[i], src[i]);
        else
            nd_tensor_init_empty(&out[i], dt);
        if (st != ND_OK) {
            for (int j = 0; j < i; j++)
                nd_tensor_release(&out[j]);
            return st;
        }
    }
    return ND_OK;
}

/* Address of element i of a buffer of es-byte elements. */
static inline void *nd_at(const void *p, size_t es, int64_t i)
{
    return (char *)p + es * (size_t)i;
}

static void nd_deconv_release_all(nd_tensor *t, int n)
{
    for (int i = 0; i < n; i++)
        nd_tensor_release(&t[i]);
}

nd_status nd_deconv_fold_forward_cpu(nd_tensor *Wf, nd_tensor *b, const nd_tensor *W, const nd_tensor *b0,
                                     const nd_tensor *D, const nd_tensor *mu, int64_t groups, nd_deconv_layout layout)
{
    const char *op = "deconv_fold";
    nd_fold_dims f;
    char s[ND_SHAPE_STR_MAX];
    ND_TRY(nd_deconv_fold_check(op, &f, W, D, mu, groups, layout));
    ND_TRY(nd_deconv_check_bias(op, "b0", b0, &f, W->dtype));
    int64_t bsize[1] = {f.Cout};
    ND_TRY(nd_deconv_prepare_out_(op, "Wf", Wf, W->dtype, W->ndim, W->size));
    ND_TRY(nd_deconv_prepare_out_(op, "b", b, W->dtype, 1, bsize));
    const nd_tensor *src[4] = {W, b0, D, mu};
    nd_tensor t[4];
    ND_TRY(nd_deconv_contig_all(t, src, 4, W->dtype));
    const size_t es = nd_dtype_size(W->dtype);
    char *bp = nd_tensor_data(b), *wf = nd_tensor_data(Wf);
    if (t[1].storage)
        memcpy(bp, nd_tensor_data(&t[1]), es * (size_t)f.Cout);
    else
        memset(bp, 0, es * (size_t)f.Cout);
    const int strided = layout == ND_DECONV_STRIDED && f.G > 1;
    const int64_t rows_g = f.Cout / f.ng * f.G, FF = f.F * f.F;
    /* scratch: the bias dots (rows_g), then Wr and V (Cout x K each) when strided */
    char *tmp = malloc(es * (size_t)(rows_g + (strided ? 2 * f.Cout * f.K : 0)));
    if (!tmp) {
        nd_deconv_release_all(t, 4);
        return ND_ERROR(ND_ERR_MEMORY, "%s: out of memory (W %s)", op, nd_tensor_shape_str(W, s, sizeof s));
    }
    char *dots = tmp, *wr_tmp = tmp + es * (size_t)rows_g;
    const char *wr = strided ? wr_tmp : (const char *)nd_tensor_data(&t[0]);
    char *v = strided ? wr_tmp + es * (size_t)(f.Cout * f.K) : wf;
    if (strided) ND_DECONV_CALL(W->dtype, regroup, ((void *)wr_tmp, nd_tensor_data(&t[0]), f.Cout, f.G, f.F, 0));
    for (int64_t j = 0; j < f.ng; j++) /* group j: rows j*rows_g .. of Wr, outputs j*Cout/ng .. */
        ND_DECONV_CALL(W->dtype, fold,
                       (nd_at(v, es, j * rows_g * f.F), nd_at(bp, es, j * (f.Cout / f.ng)),
                        nd_at(wr, es, j * rows_g * f.F), nd_at(nd_tensor_data(&t[2]), es, j * FF),
                        nd_at(nd_tensor_data(&t[3]), es, j * f.F), rows_g, f.G, f.F, (void *)dots));
    if (strided) ND_DECONV_CALL(W->dtype, regroup, ((void *)wf, (const void *)v, f.Cout, f.G, f.F, 1));
    free(tmp);
    nd_deconv_release_all(t, 4);
    return ND_OK;
}

nd_status nd_deconv_fold_backward_cpu(nd_tensor *GW, nd_tensor *Gb0, nd_tensor *GD, nd_tensor *Gmu,
                                      const nd_tensor *GWf, const nd_tensor *Gb, const nd_tensor *W, const nd_tensor *D,
                                      const nd_tensor *mu, int64_t groups, nd_deconv_layout layout)
{
    const char *op = "deconv_fold_backward";
    nd_fold_dims f;
    char s[ND_SHAPE_STR_MAX];
    ND_TRY(nd_deconv_fold_check(op, &f, W, D, mu, groups, layout));
    ND_TRY(nd_deconv_check_bias(op, "Gb", Gb, &f, W->dtype));
    ND_TRY(nd_deconv_check_float_(op, "GWf", GWf, (int)W->dtype));
    ND_TRY(nd_deconv_check_shape_(op, "GWf", GWf, W->ndim, W->size));
    int64_t bsize[1] = {f.Cout};
    if (GW) ND_TRY(nd_deconv_prepare_out_(op, "GW", GW, W->dtype, W->ndim, W->size));
    if (Gb0) ND_TRY(nd_deconv_prepare_out_(op, "Gb0", Gb0, W->dtype, 1, bsize));
    if (GD) ND_TRY(nd_deconv_prepare_out_(op, "GD", GD, W->dtype, D->ndim, D->size));
    if (Gmu) ND_TRY(nd_deconv_prepare_out_(op, "Gmu", Gmu, W->dtype, 1, mu->size));
    const nd_tensor *src[5] = {W, Gb, D, mu, GWf};
    nd_tensor t[5];
    ND_TRY(nd_deconv_contig_all(t, src, 5, W->dtype));
    const size_t es = nd_dtype_size(W->dtype);
    const void *gb = t[1].storage ? nd_tensor_data(&t[1]) : NULL;
    if (Gb0) {
        if (gb)
            memcpy(nd_tensor_data(Gb0), gb, es * (size_t)f.Cout);
        else
            memset(nd_tensor_data(Gb0), 0, es * (size_t)f.Cout);
    }
    const int strided = layout == ND_DECONV_STRIDED && f.G > 1;
    const size_t n = (size_t)(f.Cout * f.K);
    const int64_t rows_g = f.Cout / f.ng * f.G, FF = f.F * f.F, co = f.Cout / f.ng;
    /* scratch: GV (always: it is modified), then Wr, GWr when strided, then rows_g + F for Gmu */
    char *tmp = malloc(es * (n * (strided ? 3 : 1) + (size_t)(rows_g + f.F)));
    if (!tmp) {
        nd_deconv_release_all(t, 5);
        return ND_ERROR(ND_ERR_MEMORY, "%s: out of memory (W %s)", op, nd_tensor_shape_str(W, s, sizeof s));
    }
    char *gv = tmp, *wr = strided ? tmp + es * n : (char *)nd_tensor_data(&t[0]);
    char *gwr = !GW ? NULL : strided ? tmp + 2 * es * n : (char *)nd_tensor_data(GW);
    if (strided) {
        ND_DECONV_CALL(W->dtype, regroup, ((void *)gv, nd_tensor_data(&t[4]), f.Cout, f.G, f.F, 0));
        ND_DECONV_CALL(W->dtype, regroup, ((void *)wr, nd_tensor_data(&t[0]), f.Cout, f.G, f.F, 0));
    } else {
        memcpy(gv, nd_tensor_data(&t[4]), es * n);
    }
    char *vec = tmp + es * n * (strided ? 3 : 1);
    for (int64_t j = 0; j < f.ng; j++) {
        const int64_t ro = j * rows_g * f.F;
        ND_DECONV_CALL(W->dtype, unfold,
                       (gwr ? nd_at(gwr, es, ro) : NULL, GD ? nd_at(nd_tensor_data(GD), es, j * FF) : NULL,
                        Gmu ? nd_at(nd_tensor_data(Gmu), es, j * f.F) : NULL, nd_at(gv, es, ro),
                        gb ? nd_at(gb, es, j * co) : NULL, nd_at(wr, es, ro), nd_at(nd_tensor_data(&t[2]), es, j * FF),
                        nd_at(nd_tensor_data(&t[3]), es, j * f.F), rows_g, f.G, f.F, (void *)vec));
    }
    if (GW && strided) ND_DECONV_CALL(W->dtype, regroup, (nd_tensor_data(GW), (const void *)gwr, f.Cout, f.G, f.F, 1));
    free(tmp);
    nd_deconv_release_all(t, 5);
    return ND_OK;
}

#endif
