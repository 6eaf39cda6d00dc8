/* ChannelDeconv (spec section 4): whitening of the channels with a shared B x B matrix, the
 * uncentred second moment of the sampled columns, and a scalar standardisation of the leftover
 * channels. Shapes and semantics: nd_cpu_deconv.h.
 *
 * Internally the spec's B x Ncol matrix is kept transposed, Xt (Ncol x B), row t = column t:
 *   Xt[t][r] = x[n][r*cb + j][pix], t = (j*N + n)*HW + pix, cb = c/B, Ncol = cb*N*HW,
 * so the sampled columns are the rows 0, ss, 2 ss, ... (row stride ss*B, ss = s^2 or 1), the
 * second moment is a SYRK on that strided view, and the output is Yt = (Xt - 1 mean1^T) D^T.
 *
 * The typed kernels (float, double) are written once below, between #ifdef ND_T and #else:
 * this file includes itself once per element type. */
#ifdef ND_T

/* Xt <- x (back == 0) or y <- Yt (back != 0), first c channels; x / y contiguous (N,C,HW). */
static void ND_F(permute)(ND_T *Xt, ND_T *x, const nd_cd_dims *d, int back)
{
    const int64_t N = d->N, C = d->C, HW = d->HW, B = d->B, cb = d->cb;
#pragma omp parallel for schedule(static) if (N * d->c * HW > 65536)
    for (int64_t nc = 0; nc < N * d->c; nc++) {
        const int64_t n = nc / d->c, ch = nc % d->c, r = ch / cb, j = ch % cb;
        ND_T *img = x + (n * C + ch) * HW, *row = Xt + ((j * N + n) * HW) * B + r;
        if (back)
            for (int64_t p = 0; p < HW; p++)
                img[p] = row[p * B];
        else
            for (int64_t p = 0; p < HW; p++)
                row[p * B] = img[p];
    }
}

/* mean1 and cov (B x B, + eps I) of the ns sampled rows of Xt (uncentred second moment). */
static void ND_F(moments)(ND_T *mean1, ND_T *cov, const ND_T *Xt, const nd_cd_dims *d, double eps, double *acc,
                          ND_T *tmp)
{
    const int64_t B = d->B, ld = d->ss * B, chunk = ND_DECONV_CHUNK;
    double *sum = acc + B * B;
    memset(acc, 0, sizeof(double) * (size_t)(B * B + B));
    for (int64_t r = 0; r < d->ns; r++)
        for (int64_t a = 0; a < B; a++)
            sum[a] += Xt[r * ld + a];
    for (int64_t r0 = 0; r0 < d->ns; r0 += chunk) {
        const int64_t R = d->ns - r0 < chunk ? d->ns - r0 : chunk;
        if (sizeof(ND_T) == sizeof(double)) {
            cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)B, (int)R, 1.0, (const double *)(Xt + r0 * ld),
                        (int)ld, 1.0, acc, (int)B);
        } else {
            ND_SYRK(CblasRowMajor, CblasUpper, CblasTrans, (int)B, (int)R, 1, Xt + r0 * ld, (int)ld, 0, tmp, (int)B);
            for (int64_t a = 0; a < B; a++)
                for (int64_t b = a; b < B; b++)
                    acc[a * B + b] += tmp[a * B + b];
        }
    }
    for (int64_t a = 0; a < B; a++) {
        mean1[a] = (ND_T)(sum[a] / (double)d->ns);
        for (int64_t b = 0; b < B; b++)
            cov[a * B + b] = (ND_T)((a <= b ? acc[a * B + b] : acc[b * B + a]) / (double)d->ns + (a == b ? eps : 0.0));
    }
}

/* Xt -= mean1 (every row). */
static void ND_F(center)(ND_T *Xt, const ND_T *mean1, const nd_cd_dims *d)
{
    const int64_t B = d->B, rows = d->ncol;
#pragma omp parallel for schedule(static) if (rows * B > 65536)
    for (int64_t t = 0; t < rows; t++)
        for (int64_t a = 0; a < B; a++)
            Xt[t * B + a] -= mean1[a];
}

/* Xt -= mean1, then Yt = Xt D^T. */
static void ND_F(whiten)(ND_T *Yt, ND_T *Xt, const ND_T *mean1, const ND_T *D, const nd_cd_dims *d)
{
    const int64_t B = d->B, rows = d->ncol;
    ND_F(center)(Xt, mean1, d);
    ND_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)B, (int)B, 1, Xt, (int)B, D, (int)B, 0, Yt,
            (int)B);
}

/* Leftover channels of one contiguous (N,C,HW) tensor: sampled entries of each sample's run of
 * L = (C-c)*HW values: positions 0, ss2, 2 ss2, ... (ss2 = d->ss). Mean and unbiased variance. */
static void ND_F(left_stats)(double *mean2, double *var2, const ND_T *x, const nd_cd_dims *d)
{
    const int64_t L = (d->C - d->c) * d->HW;
    double sum = 0, sq = 0;
    for (int64_t n = 0; n < d->N; n++) {
        const ND_T *p = x + (n * d->C + d->c) * d->HW;
        for (int64_t t = 0; t < L; t += d->ss)
            sum += p[t];
    }
    const double m = sum / (double)d->ns2;
    for (int64_t n = 0; n < d->N; n++) {
        const ND_T *p = x + (n * d->C + d->c) * d->HW;
        for (int64_t t = 0; t < L; t += d->ss)
            sq += ((double)p[t] - m) * ((double)p[t] - m);
    }
    *mean2 = m;
    *var2 = sq / (double)(d->ns2 - 1);
}

static void ND_F(left_apply)(ND_T *y, const ND_T *x, double mean2, double var2, double eps, const nd_cd_dims *d)
{
    const int64_t L = (d->C - d->c) * d->HW;
    const double inv = 1.0 / sqrt(var2 + eps);
    for (int64_t n = 0; n < d->N; n++) {
        const int64_t o = (n * d->C + d->c) * d->HW;
        for (int64_t t = 0; t < L; t++)
            y[o + t] = (ND_T)(((double)x[o + t] - mean2) * inv);
    }
}

static void ND_F(left_backward)(ND_T *gx, const ND_T *gy, const ND_T *x, double mean2, double var2, double eps,
                                const nd_cd_dims *d)
{
    const int64_t L = (d->C - d->c) * d->HW;
    const double inv = 1.0 / sqrt(var2 + eps);
    double sg = 0, sgx = 0;
    for (int64_t n = 0; n < d->N; n++) {
        const int64_t o = (n * d->C + d->c) * d->HW;
        for (int64_t t = 0; t < L; t++) {
            sg += gy[o + t];
            sgx += (double)gy[o + t] * ((double)x[o + t] - mean2);
            gx[o + t] = (ND_T)(gy[o + t] * inv);
        }
    }
    const double gm = -inv * sg, gv = -0.5 * inv * inv * inv * sgx;
    const double cm = gm / (double)d->ns2, cv = 2.0 * gv / (double)(d->ns2 - 1);
    for (int64_t n = 0; n < d->N; n++) {
        const int64_t o = (n * d->C + d->c) * d->HW;
        for (int64_t t = 0; t < L; t += d->ss)
            gx[o + t] = (ND_T)(gx[o + t] + cm + cv * ((double)x[o + t] - mean2));
    }
}

/* The whitened part of the backward, first half: GD = GYt^T Xc (B x B), then GXt = GYt D (the
 * gradient of the centred columns). GXt may be the buffer of Xc (written after Xc is read). */
static void ND_F(back_gd)(ND_T *GD, ND_T *GXt, const ND_T *GYt, const ND_T *Xc, const ND_T *D, const nd_cd_dims *d)
{
    const int64_t B = d->B, rows = d->ncol;
    ND_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)B, (int)B, (int)rows, 1, GYt, (int)B, Xc, (int)B, 0, GD,
            (int)B);
    ND_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)B, (int)B, 1, GYt, (int)B, D, (int)B, 0, GXt,
            (int)B);
}

/* Second half, after the isqrt backward gave GA = dL/dcov: Gmean1 = -sum of GXt over all
 * columns; GXt[sampled] += Xs S + Gmean1/ns with S = (GA + GA^T)/ns, Xs (ns x B) uncentred. */
static void ND_F(back_cov)(ND_T *GXt, const ND_T *Xs, const ND_T *GA, ND_T *S, ND_T *GXs, double *gm,
                           const nd_cd_dims *d)
{
    const int64_t B = d->B, ns = d->ns, ld = d->ss * B;
    memset(gm, 0, sizeof(double) * (size_t)B);
    for (int64_t t = 0; t < d->ncol; t++) /* Gmean1 = -sum of GXc over all columns */
        for (int64_t a = 0; a < B; a++)
            gm[a] -= GXt[t * B + a];
    for (int64_t a = 0; a < B; a++)
        for (int64_t b = 0; b < B; b++)
            S[a * B + b] = (ND_T)(((double)GA[a * B + b] + GA[b * B + a]) / (double)ns);
    ND_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)ns, (int)B, (int)B, 1, Xs, (int)B, S, (int)B, 0, GXs,
            (int)B);
    for (int64_t r = 0; r < ns; r++)
        for (int64_t a = 0; a < B; a++)
            GXt[r * ld + a] += (ND_T)(GXs[r * B + a] + gm[a] / (double)ns);
}

/* Xs (ns x B) = the sampled rows of Xt. */
static void ND_F(sampled)(ND_T *Xs, const ND_T *Xt, const nd_cd_dims *d)
{
    for (int64_t r = 0; r < d->ns; r++)
        memcpy(Xs + r * d->B, Xt + r * d->ss * d->B, sizeof(ND_T) * (size_t)d->B);
}

#else /* ---- untyped part ---- */

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nd_cpu_deconv.h"

/* nd_cd_dims: nd_cpu_deconv.h, filled by nd_cd_check_dims (src/cpu/deconv_check.c). */

#define ND_T float
#define ND_F(name) nd_cd_##name##_f32
#define ND_GEMM cblas_sgemm
#define ND_SYRK cblas_ssyrk
#include "channel_deconv.c"
#undef ND_T
#undef ND_F
#undef ND_GEMM
#undef ND_SYRK
#define ND_T double
#define ND_F(name) nd_cd_##name##_f64
#define ND_GEMM cblas_dgemm
#define ND_SYRK cblas_dsyrk
#include "channel_deconv.c"
#undef ND_T
#undef ND_F
#undef ND_GEMM
#undef ND_SYRK

#define ND_CD_CALL(dt, name, args) ((dt) == ND_DTYPE_F32 ? nd_cd_##name##_f32 args : nd_cd_##name##_f64 args)

static nd_status nd_cd_dims_of(const char *op, nd_cd_dims *d, const nd_tensor *x, int64_t B, int64_t s)
{
    return nd_cd_check_dims(ND_DEVICE_CPU, op, d, x, B, s);
}

/* Scratch for one call: Xt and Yt (ncol x B each) plus B-sized extras. */
typedef struct nd_cd_work {
    void *Xt, *Yt, *small; /* small: doubles for acc (B*B + B) then ND_T tmp (B*B) */
} nd_cd_work;

static int nd_cd_work_alloc(nd_cd_work *w, const nd_cd_dims *d, size_t es)
{
    w->Xt = malloc(es * (size_t)(d->ncol * d->B));
    w->Yt = malloc(es * (size_t)(d->ncol * d->B));
    w->small = malloc(sizeof(double) * (size_t)(d->B * d->B + d->B) + es * (size_t)(d->B * d->B));
    return w->Xt && w->Yt && w->small;
}

static void nd_cd_work_free(nd_cd_work *w)
{
    free(w->Xt);
    free(w->Yt);
    free(w->small);
}

/* y = whitened x with given statistics; Xt holds the permuted x on entry (it gets centred). */
static void nd_cd_apply_(void *y, const void *x, void *Xt, void *Yt, const nd_tensor *mean1, const nd_tensor *D,
                         double mean2, double var2, double eps, const nd_cd_dims *d, nd_dtype dt)
{
    ND_CD_CALL(dt, whiten, (Yt, Xt, nd_tensor_data(mean1), nd_tensor_data(D), d));
    ND_CD_CALL(dt, permute, (Yt, y, d, 1));
    if (d->c < d->C) ND_CD_CALL(dt, left_apply, (y, x, mean2, var2, eps, d));
}

nd_status nd_channel_deconv_forward_cpu(nd_tensor *y, nd_tensor *mean1, nd_tensor *D, nd_tensor *cov, nd_tensor *saved,
                                        double *mean2, double *var2, const nd_tensor *x, int64_t B, double eps,
                                        int iters, int64_t s)
{
    const char *op = "channel_deconv";
    nd_cd_dims d;
    char sh[ND_SHAPE_STR_MAX];
    ND_TRY(nd_cd_check_forward(ND_DEVICE_CPU, op, &d, x, B, s));
    const nd_dtype dt = x->dtype;
    int64_t bs[1] = {B}, bb[2] = {B, B};
    ND_TRY(nd_deconv_prepare_out_(op, "y", y, dt, x->ndim, x->size));
    ND_TRY(nd_deconv_prepare_out_(op, "mean1", mean1, dt, 1, bs));
    ND_TRY(nd_deconv_prepare_out_(op, "cov", cov, dt, 2, bb));
    nd_tensor xc;
    ND_TRY(nd_tensor_contiguous(&xc, x));
    nd_cd_work w;
    const size_t es = nd_dtype_size(dt);
    if (!nd_cd_work_alloc(&w, &d, es)) {
        nd_cd_work_free(&w);
        nd_tensor_release(&xc);
        return ND_ERROR(ND_ERR_MEMORY, "%s: out of memory (input %s)", op, nd_tensor_shape_str(x, sh, sizeof sh));
    }
    double *acc = (double *)w.small;
    void *tmp = acc + B * B + B;
    ND_CD_CALL(dt, permute, (w.Xt, nd_tensor_data(&xc), &d, 0));
    ND_CD_CALL(dt, moments, (nd_tensor_data(mean1), nd_tensor_data(cov), w.Xt, &d, eps, acc, tmp));
    nd_status st = nd_isqrt_forward_cpu(D, saved, cov, iters);
    *mean2 = 0;
    *var2 = 1;
    if (st == ND_OK) {
        if (d.c < d.C) ND_CD_CALL(dt, left_stats, (mean2, var2, nd_tensor_data(&xc), &d));
        nd_cd_apply_(nd_tensor_data(y), nd_tensor_data(&xc), w.Xt, w.Yt, mean1, D, *mean2, *var2, eps, &d, dt);
    }
    nd_cd_work_free(&w);
    nd_tensor_release(&xc);
    return st;
}

nd_status nd_channel_deconv_apply_cpu(nd_tensor *y, const nd_tensor *x, const nd_tensor *mean1, const nd_tensor *D,
                                      double mean2, double var2, double eps)
{
    const char *op = "channel_deconv_apply";
    nd_cd_dims d;
    char sh[ND_SHAPE_STR_MAX];
    ND_TRY(nd_cd_check_apply(ND_DEVICE_CPU, op, &d, x, mean1, D));
    ND_TRY(nd_deconv_prepare_out_(op, "y", y, x->dtype, x->ndim, x->size));
    const nd_tensor *src[3] = {x, mean1, D};
    nd_tensor t[3];
    int n = 0;
    nd_status st = ND_OK;
    for (; n < 3 && st == ND_OK; n++)
        st = nd_tensor_contiguous(&t[n], src[n]);
    if (st != ND_OK) n--;
    nd_cd_work w = {0};
    if (st == ND_OK && !nd_cd_work_alloc(&w, &d, nd_dtype_size(x->dtype)))
        st = ND_ERROR(ND_ERR_MEMORY, "%s: out of memory (input %s)", op, nd_tensor_shape_str(x, sh, sizeof sh));
    if (st == ND_OK) {
        ND_CD_CALL(x->dtype, permute, (w.Xt, nd_tensor_data(&t[0]), &d, 0));
        nd_cd_apply_(nd_tensor_data(y), nd_tensor_data(&t[0]), w.Xt, w.Yt, &t[1], &t[2], mean2, var2, eps, &d,
                     x->dtype);
    }
    nd_cd_work_free(&w);
    for (int i = 0; i < n; i++)
        nd_tensor_release(&t[i]);
    return st;
}

nd_status nd_channel_deconv_backward_cpu(nd_tensor *gx, const nd_tensor *gy, const nd_tensor *x, const nd_tensor *mean1,
                                         const nd_tensor *D, const nd_tensor *cov, const nd_tensor *saved, double mean2,
                                         double var2, int64_t B, double eps, int iters, int64_t s)
{
    const char *op = "channel_deconv_backward";
    nd_cd_dims d;
    char sh[ND_SHAPE_STR_MAX];
    ND_TRY(nd_cd_dims_of(op, &d, x, B, s));
    const nd_dtype dt = x->dtype;
    int64_t bs[1] = {B}, bb[2] = {B, B};
    ND_TRY(nd_deconv_check_float_(op, "gy", gy, (int)dt));
    ND_TRY(nd_deconv_check_shape_(op, "gy", gy, x->ndim, x->size));
    ND_TRY(nd_deconv_check_float_(op, "mean1", mean1, (int)dt));
    ND_TRY(nd_deconv_check_shape_(op, "mean1", mean1, 1, bs));
    ND_TRY(nd_deconv_check_float_(op, "D", D, (int)dt));
    ND_TRY(nd_deconv_check_shape_(op, "D", D, 2, bb));
    ND_TRY(nd_deconv_check_float_(op, "cov", cov, (int)dt));
    ND_TRY(nd_deconv_check_shape_(op, "cov", cov, 2, bb));
    ND_TRY(nd_deconv_prepare_out_(op, "gx", gx, dt, x->ndim, x->size));
    const nd_tensor *src[4] = {x, gy, mean1, D};
    nd_tensor t[4], GD, GA;
    nd_tensor_init_empty(&GD, dt);
    nd_tensor_init_empty(&GA, dt);
    int n = 0;
    nd_status st = ND_OK;
    for (; n < 4 && st == ND_OK; n++)
        st = nd_tensor_contiguous(&t[n], src[n]);
    if (st != ND_OK) n--;
    const size_t es = nd_dtype_size(dt);
    nd_cd_work w = {0};
    void *Xs = NULL, *GXs = NULL;
    if (st == ND_OK) {
        int ok = nd_cd_work_alloc(&w, &d, es);
        Xs = malloc(es * (size_t)(d.ns * B));
        GXs = malloc(es * (size_t)(d.ns * B));
        if (!ok || !Xs || !GXs)
            st = ND_ERROR(ND_ERR_MEMORY, "%s: out of memory (input %s)", op, nd_tensor_shape_str(x, sh, sizeof sh));
    }
    if (st == ND_OK) st = nd_tensor_new(&GD, dt, 2, bb, nd_cpu_device(), 0);
    if (st == ND_OK) {
        double *gm = (double *)w.small;
        void *S = gm + B * B + B, *Xt = w.Xt, *GYt = w.Yt;
        ND_CD_CALL(dt, permute, (Xt, nd_tensor_data(&t[0]), &d, 0));
        ND_CD_CALL(dt, sampled, (Xs, Xt, &d));
        ND_CD_CALL(dt, center, (Xt, nd_tensor_data(&t[2]), &d));
        ND_CD_CALL(dt, permute, (GYt, nd_tensor_data(&t[1]), &d, 0));
        ND_CD_CALL(dt, back_gd, (nd_tensor_data(&GD), Xt, GYt, Xt, nd_tensor_data(&t[3]), &d)); /* Xt <- GXt */
        st = nd_isqrt_backward_cpu(&GA, &GD, saved, cov, iters);
        if (st == ND_OK) {
            ND_CD_CALL(dt, back_cov, (Xt, Xs, nd_tensor_data(&GA), S, GXs, gm, &d));
            ND_CD_CALL(dt, permute, (Xt, nd_tensor_data(gx), &d, 1));
            if (d.c < d.C)
                ND_CD_CALL(dt, left_backward,
                           (nd_tensor_data(gx), nd_tensor_data(&t[1]), nd_tensor_data(&t[0]), mean2, var2, eps, &d));
        }
    }
    free(Xs);
    free(GXs);
    nd_cd_work_free(&w);
    nd_tensor_release(&GD);
    nd_tensor_release(&GA);
    for (int i = 0; i < n; i++)
        nd_tensor_release(&t[i]);
    return st;
}

#endif
