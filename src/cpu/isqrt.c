/* Newton-Schulz inverse square root with a stored-iterate backward (spec sections 1 and 3.4).
 * Shapes and the `saved` layout: nd_cpu_deconv.h.
 *
 * Batches of small matrices (d <= ND_ISQRT_SMALL) use plain loops, one OpenMP thread per matrix;
 * larger ones go to BLAS one matrix after the other (BLAS threads inside each product).
 *
 * The typed kernels (float, double) are written once below, between #ifdef ND_T and #else:
 * this file includes itself once per element type. */
#ifdef ND_T

/* C (d x d) = alpha * op(A) op(B) + beta * C, op = transpose when ta / tb. */
static void ND_F(mm)(int ta, int tb, int64_t d, ND_T alpha, const ND_T *A, const ND_T *B, ND_T beta, ND_T *C, int small)
{
    if (!small) {
        ND_GEMM(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)d, (int)d, (int)d,
                alpha, A, (int)d, B, (int)d, beta, C, (int)d);
        return;
    }
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = 0; j < d; j++) {
            double acc = 0;
            for (int64_t l = 0; l < d; l++)
                acc += (double)(ta ? A[l * d + i] : A[i * d + l]) * (double)(tb ? B[j * d + l] : B[l * d + j]);
            C[i * d + j] = (ND_T)(alpha * acc + (beta == 0 ? 0.0 : (double)beta * C[i * d + j]));
        }
}

/* One matrix. sv: the 3n+2 saved slots, or NULL (then work holds 5 d x d scratch matrices).
 * Returns 0, or -1 when ||A||_F is 0 or not finite. */
static int ND_F(ns_forward_one)(ND_T *Dout, ND_T *sv, ND_T *work, const ND_T *A, int64_t d, int n, int small)
{
    const int64_t dd = d * d;
    double ss = 0;
    for (int64_t i = 0; i < dd; i++)
        ss += (double)A[i] * A[i];
    const double s = sqrt(ss);
    if (!(s > 0) || !isfinite(s)) return -1;
    ND_T *Y = sv ? sv : work, *Z = sv ? sv + (int64_t)n * dd : work + 2 * dd;
    for (int64_t i = 0; i < dd; i++)
        Y[i] = (ND_T)(A[i] / s);
    memset(Z, 0, sizeof(ND_T) * (size_t)dd);
    for (int64_t i = 0; i < d; i++)
        Z[i * d + i] = 1;
    for (int k = 0; k < n; k++) {
        ND_T *T = sv ? sv + (int64_t)(2 * n + 1 + k) * dd : work + 4 * dd;
        ND_T *Yn = sv ? sv + (int64_t)(k + 1) * dd : work + ((k + 1) % 2) * dd;
        ND_T *Zn = sv ? sv + (int64_t)(n + k + 1) * dd : work + (2 + (k + 1) % 2) * dd;
        if (k == 0) /* Z_0 = I: T_0 = (3I - Y_0)/2 and Z_1 = T_0 without products */
            for (int64_t i = 0; i < dd; i++)
                T[i] = (ND_T)(-0.5 * Y[i]);
        else
            ND_F(mm)(0, 0, d, (ND_T)-0.5, Z, Y, 0, T, small);
        for (int64_t i = 0; i < d; i++)
            T[i * d + i] += (ND_T)1.5;
        if (k + 1 < n) ND_F(mm)(0, 0, d, 1, Y, T, 0, Yn, small); /* Y_n itself is never used */
        if (k == 0)
            memcpy(Zn, T, sizeof(ND_T) * (size_t)dd);
        else
            ND_F(mm)(0, 0, d, 1, T, Z, 0, Zn, small);
        Y = Yn;
        Z = Zn;
    }
    const double r = 1.0 / sqrt(s);
    for (int64_t i = 0; i < dd; i++)
        Dout[i] = (ND_T)(Z[i] * r);
    if (sv) {
        ND_T *slot = sv + (int64_t)(3 * n + 1) * dd;
        memset(slot, 0, sizeof(ND_T) * (size_t)dd);
        slot[0] = (ND_T)s;
    }
    return 0;
}

/* One matrix of the backward; work holds 5 d x d scratch matrices. */
static void ND_F(ns_backward_one)(ND_T *GA, const ND_T *GD, const ND_T *sv, const ND_T *A, ND_T *work, int64_t d, int n,
                                  int small)
{
    const int64_t dd = d * d;
    const double s = (double)sv[(int64_t)(3 * n + 1) * dd], rs = 1.0 / sqrt(s);
    const ND_T *Zn = sv + (int64_t)(2 * n) * dd;
    ND_T *GY = work, *GZ = work + dd, *GT = work + 2 * dd, *GYn = work + 3 * dd, *GZn = work + 4 * dd;
    double gdz = 0;
    for (int64_t i = 0; i < dd; i++) {
        gdz += (double)GD[i] * Zn[i];
        GZ[i] = (ND_T)(GD[i] * rs);
        GY[i] = 0;
    }
    double gs = -0.5 * gdz * rs / s; /* -0.5 <GD, D> / s with D = Z_n / sqrt(s) */
    for (int k = n - 1; k >= 0; k--) {
        const ND_T *Yk = sv + (int64_t)k * dd, *Zk = sv + (int64_t)(n + k) * dd,
                   *Tk = sv + (int64_t)(2 * n + 1 + k) * dd;
        /* GT = Y_k^T GY + GZ Z_k^T (GY = 0 on the first step; Z_0 = I) */
        if (k == 0)
            memcpy(GT, GZ, sizeof(ND_T) * (size_t)dd);
        else
            ND_F(mm)(0, 1, d, 1, GZ, Zk, 0, GT, small);
        if (k < n - 1) ND_F(mm)(1, 0, d, 1, Yk, GY, 1, GT, small);
        /* GY' = GY T_k^T - 0.5 Z_k^T GT */
        if (k == 0)
            for (int64_t i = 0; i < dd; i++)
                GYn[i] = (ND_T)(-0.5 * GT[i]);
        else
            ND_F(mm)(1, 0, d, (ND_T)-0.5, Zk, GT, 0, GYn, small);
        if (k < n - 1) ND_F(mm)(0, 1, d, 1, GY, Tk, 1, GYn, small);
        /* GZ' = T_k^T GZ - 0.5 GT Y_k^T (not needed for k = 0: Z_0 = I is constant) */
        if (k > 0) {
            ND_F(mm)(1, 0, d, 1, Tk, GZ, 0, GZn, small);
            ND_F(mm)(0, 1, d, (ND_T)-0.5, GT, Yk, 1, GZn, small);
        }
        ND_T *t = GY;
        GY = GYn;
        GYn = t;
        t = GZ;
        GZ = GZn;
        GZn = t;
    }
    double gya = 0;
    for (int64_t i = 0; i < dd; i++)
        gya += (double)GY[i] * A[i];
    gs -= gya / (s * s);
    for (int64_t i = 0; i < dd; i++)
        GA[i] = (ND_T)(GY[i] / s + (gs / s) * A[i]);
}

/* Batch drivers over g matrices. Return 0, -1 when out of memory, or 1 + the index of a matrix
 * whose Frobenius norm is zero or not finite. */
static int64_t ND_F(ns_forward)(ND_T *D, ND_T *sv, const ND_T *A, int64_t g, int64_t d, int n)
{
    const int64_t dd = d * d, slots = 3 * (int64_t)n + 2;
    const int small = d <= ND_ISQRT_SMALL;
    ND_T *work = (ND_T *)malloc(sizeof(ND_T) * (size_t)(5 * dd * (small ? g : 1)));
    if (!work) return -1;
    int64_t bad = 0;
    if (small) {
#pragma omp parallel for schedule(static) if (g > 1)
        for (int64_t i = 0; i < g; i++) {
            if (ND_F(ns_forward_one)(D + i * dd, sv ? sv + i * slots * dd : NULL, work + i * 5 * dd, A + i * dd, d, n,
                                     1)) {
#pragma omp critical(nd_isqrt_bad)
                {
                    if (!bad || i + 1 < bad) bad = i + 1;
                }
            }
        }
    } else {
        for (int64_t i = 0; i < g && !bad; i++)
            if (ND_F(ns_forward_one)(D + i * dd, sv ? sv + i * slots * dd : NULL, work, A + i * dd, d, n, 0))
                bad = i + 1;
    }
    free(work);
    return bad;
}

static int ND_F(ns_backward)(ND_T *GA, const ND_T *GD, const ND_T *sv, const ND_T *A, int64_t g, int64_t d, int n)
{
    const int64_t dd = d * d, slots = 3 * (int64_t)n + 2;
    const int small = d <= ND_ISQRT_SMALL;
    ND_T *work = (ND_T *)malloc(sizeof(ND_T) * (size_t)(5 * dd * (small ? g : 1)));
    if (!work) return -1;
    if (small) {
#pragma omp parallel for schedule(static) if (g > 1)
        for (int64_t i = 0; i < g; i++)
            ND_F(ns_backward_one)
            (GA + i * dd, GD + i * dd, sv + i * slots * dd, A + i * dd, work + i * 5 * dd, d, n, 1);
    } else {
        for (int64_t i = 0; i < g; i++)
            ND_F(ns_backward_one)(GA + i * dd, GD + i * dd, sv + i * slots * dd, A + i * dd, work, d, n, 0);
    }
    free(work);
    return 0;
}

#else /* ---- untyped part ---- */

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nd_cpu_deconv.h"

#define ND_ISQRT_SMALL 24

#define ND_T float
#define ND_F(name) nd_isqrt_##name##_f32
#define ND_GEMM cblas_sgemm
#include "isqrt.c"
#undef ND_T
#undef ND_F
#undef ND_GEMM
#define ND_T double
#define ND_F(name) nd_isqrt_##name##_f64
#define ND_GEMM cblas_dgemm
#include "isqrt.c"
#undef ND_T
#undef ND_F
#undef ND_GEMM

int64_t nd_isqrt_saved_slots(int iters)
{
    return 3 * (int64_t)iters + 2;
}

nd_status nd_deconv_check_float_(const char *op, const char *what, const nd_tensor *t, int dtype)
{
    char s[ND_SHAPE_STR_MAX];
    if (!t || !t->storage || t->ndim == 0) return ND_ERROR(ND_ERR_ARG, "%s: %s is missing or empty", op, what);
    if (nd_tensor_device(t).type != ND_DEVICE_CPU)
        return ND_ERROR(ND_ERR_DEVICE, "%s: %s must be a CPU tensor (%s)", op, what,
                        nd_tensor_shape_str(t, s, sizeof s));
    if (!nd_dtype_is_float(t->dtype))
        return ND_ERROR(ND_ERR_DTYPE, "%s: %s must be float32 or float64, got %s (%s)", op, what,
                        nd_dtype_name(t->dtype), nd_tensor_shape_str(t, s, sizeof s));
    if (dtype >= 0 && (int)t->dtype != dtype)
        return ND_ERROR(ND_ERR_DTYPE, "%s: %s is %s but the other operands are %s (%s)", op, what,
                        nd_dtype_name(t->dtype), nd_dtype_name((nd_dtype)dtype), nd_tensor_shape_str(t, s, sizeof s));
    return ND_OK;
}

nd_status nd_deconv_check_shape_(const char *op, const char *what, const nd_tensor *t, int ndim, const int64_t *size)
{
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = t->size[i] == size[i];
    if (ok) return ND_OK;
    char s[ND_SHAPE_STR_MAX], e[ND_SHAPE_STR_MAX];
    int p = 0;
    e[0] = 0;
    for (int i = 0; i < ndim && p < (int)sizeof e - 24; i++)
        p += snprintf(e + p, sizeof e - (size_t)p, i ? "x%lld" : "%lld", (long long)size[i]);
    return ND_ERROR(ND_ERR_SHAPE, "%s: expected %s of shape %s, got %s", op, what, e,
                    nd_tensor_shape_str(t, s, sizeof s));
}

nd_status nd_deconv_prepare_out_(const char *op, const char *what, nd_tensor *out, nd_dtype dt, int ndim,
                                 const int64_t *size)
{
    if (!out->storage) {
        nd_tensor_release(out);
        return nd_tensor_new(out, dt, ndim, size, nd_cpu_device(), 0);
    }
    char s[ND_SHAPE_STR_MAX];
    ND_TRY(nd_deconv_check_float_(op, what, out, (int)dt));
    ND_TRY(nd_deconv_check_shape_(op, what, out, ndim, size));
    if (!nd_tensor_is_contiguous(out))
        return ND_ERROR(ND_ERR_ARG, "%s: output %s must be contiguous (%s)", op, what,
                        nd_tensor_shape_str(out, s, sizeof s));
    return ND_OK;
}

/* Checks A and returns the batch g and size d. */
static nd_status nd_isqrt_check(const char *op, const nd_tensor *A, int iters, int64_t *g, int64_t *d)
{
    char s[ND_SHAPE_STR_MAX];
    ND_TRY(nd_deconv_check_float_(op, "A", A, -1));
    if ((A->ndim != 2 && A->ndim != 3) || A->size[A->ndim - 1] != A->size[A->ndim - 2] || A->size[A->ndim - 1] < 1)
        return ND_ERROR(ND_ERR_SHAPE, "%s: expected square matrices A of shape (d,d) or (g,d,d), got %s", op,
                        nd_tensor_shape_str(A, s, sizeof s));
    if (iters < 0 || iters > 1000) return ND_ERROR(ND_ERR_ARG, "%s: iterations must be in 0..1000, got %d", op, iters);
    *g = A->ndim == 3 ? A->size[0] : 1;
    *d = A->size[A->ndim - 1];
    return ND_OK;
}

static void nd_isqrt_saved_shape(const nd_tensor *A, int iters, int *ndim, int64_t *size)
{
    int b = A->ndim == 3;
    if (b) size[0] = A->size[0];
    size[b] = nd_isqrt_saved_slots(iters);
    size[b + 1] = size[b + 2] = A->size[A->ndim - 1];
    *ndim = 3 + b;
}

nd_status nd_isqrt_forward_cpu(nd_tensor *D, nd_tensor *saved, const nd_tensor *A, int iters)
{
    const char *op = "isqrt";
    int64_t g, d, ssize[4];
    int sdim;
    char s[ND_SHAPE_STR_MAX];
    ND_TRY(nd_isqrt_check(op, A, iters, &g, &d));
    ND_TRY(nd_deconv_prepare_out_(op, "D", D, A->dtype, A->ndim, A->size));
    if (saved) {
        nd_isqrt_saved_shape(A, iters, &sdim, ssize);
        ND_TRY(nd_deconv_prepare_out_(op, "saved", saved, A->dtype, sdim, ssize));
    }
    nd_tensor a;
    ND_TRY(nd_tensor_contiguous(&a, A));
    int64_t bad;
    void *sv = saved ? nd_tensor_data(saved) : NULL;
    if (a.dtype == ND_DTYPE_F32)
        bad = nd_isqrt_ns_forward_f32(nd_tensor_data(D), sv, nd_tensor_data(&a), g, d, iters);
    else
        bad = nd_isqrt_ns_forward_f64(nd_tensor_data(D), sv, nd_tensor_data(&a), g, d, iters);
    nd_tensor_release(&a);
    if (bad < 0) return ND_ERROR(ND_ERR_MEMORY, "%s: out of memory (A %s)", op, nd_tensor_shape_str(A, s, sizeof s));
    if (bad > 0)
        return ND_ERROR(ND_ERR_NUMERIC, "%s: matrix %lld of A %s has a zero or non-finite Frobenius norm", op,
                        (long long)bad, nd_tensor_shape_str(A, s, sizeof s));
    return ND_OK;
}

nd_status nd_isqrt_backward_cpu(nd_tensor *GA, const nd_tensor *GD, const nd_tensor *saved, const nd_tensor *A,
                                int iters)
{
    const char *op = "isqrt_backward";
    int64_t g, d, ssize[4];
    int sdim;
    char s[ND_SHAPE_STR_MAX];
    ND_TRY(nd_isqrt_check(op, A, iters, &g, &d));
    ND_TRY(nd_deconv_check_float_(op, "GD", GD, (int)A->dtype));
    ND_TRY(nd_deconv_check_shape_(op, "GD", GD, A->ndim, A->size));
    ND_TRY(nd_deconv_check_float_(op, "saved", saved, (int)A->dtype));
    nd_isqrt_saved_shape(A, iters, &sdim, ssize);
    ND_TRY(nd_deconv_check_shape_(op, "saved (for this A and iteration count)", saved, sdim, ssize));
    ND_TRY(nd_deconv_prepare_out_(op, "GA", GA, A->dtype, A->ndim, A->size));
    nd_tensor a, gd, sv;
    ND_TRY(nd_tensor_contiguous(&a, A));
    nd_status st = nd_tensor_contiguous(&gd, GD);
    if (st != ND_OK) {
        nd_tensor_release(&a);
        return st;
    }
    st = nd_tensor_contiguous(&sv, saved);
    if (st != ND_OK) {
        nd_tensor_release(&a);
        nd_tensor_release(&gd);
        return st;
    }
    int r;
    if (a.dtype == ND_DTYPE_F32)
        r = nd_isqrt_ns_backward_f32(nd_tensor_data(GA), nd_tensor_data(&gd), nd_tensor_data(&sv), nd_tensor_data(&a),
                                     g, d, iters);
    else
        r = nd_isqrt_ns_backward_f64(nd_tensor_data(GA), nd_tensor_data(&gd), nd_tensor_data(&sv), nd_tensor_data(&a),
                                     g, d, iters);
    nd_tensor_release(&a);
    nd_tensor_release(&gd);
    nd_tensor_release(&sv);
    if (r) return ND_ERROR(ND_ERR_MEMORY, "%s: out of memory (A %s)", op, nd_tensor_shape_str(A, s, sizeof s));
    return ND_OK;
}

#endif
