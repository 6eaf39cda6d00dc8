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

/* ||A||_F over n entries, accumulated in double. */
static double ND_F(frobenius)(const ND_T *A, int64_t n)
{
    double ss = 0;
    for (int64_t i = 0; i < n; i++)
        ss += (double)A[i] * A[i];
    return sqrt(ss);
}

/* One matrix. sv: the 3n+2 saved slots, or NULL (then work holds 5 d x d scratch matrices).
 * Returns 0, or -1 when ||A||_F is 0 or not finite. */
static int ND_F(ns_forward_one)(ND_T *Dout, ND_T *sv, ND_T *work, const ND_T *A, int64_t d, int n, int small)
{
    const int64_t dd = d * d;
    const double s = ND_F(frobenius)(A, dd);
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

static int ND_F(symmetric)(const ND_T *A, int64_t d)
{
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = 0; j < i; j++)
            if (A[i * d + j] != A[j * d + i]) return 0;
    return 1;
}

/* Eigen-decomposition in place (LAPACK ?syevd, divide and conquer): a (d x d, symmetric) becomes
 * the eigenvectors as rows (column-major columns), w the ascending eigenvalues. Returns info. */
static int ND_F(syevd)(ND_T *a, ND_T *w, int64_t d)
{
    int nn = (int)d, lwork = -1, liwork = -1, info = 0, iw = 0;
    ND_T wq = 0;
    ND_LAPACK_SYEVD("V", "L", &nn, a, &nn, w, &wq, &lwork, &iw, &liwork, &info);
    if (info != 0) return info;
    lwork = (int)wq + 1;
    liwork = iw + 1;
    ND_T *work = (ND_T *)malloc(sizeof(ND_T) * (size_t)lwork);
    int *iwork = (int *)malloc(sizeof(int) * (size_t)liwork);
    if (!work || !iwork) {
        free(work);
        free(iwork);
        return -1000;
    }
    /* syevd is hundreds of small BLAS calls: with the short OpenBLAS thread timeout nd runs with,
     * waking the second worker for each costs more than it gains (38 -> 31 ms at d = 576). */
    const int threads = openblas_get_num_threads();
    if (threads > 1) openblas_set_num_threads(1);
    ND_LAPACK_SYEVD("V", "L", &nn, a, &nn, w, work, &lwork, iwork, &liwork, &info);
    if (threads > 1) openblas_set_num_threads(threads);
    free(work);
    free(iwork);
    return info;
}

/* ---- eigen-basis evaluation of the same Newton-Schulz polynomial (large d) ----
 * Every iterate is a polynomial in An = A/s, so for symmetric A = Q^T diag(lam) Q (rows of Q are
 * eigenvectors; An has eigenvalues lam) the n steps give Z_n = Q^T diag(p(lam)) Q with p the
 * scalar recursion y0 = lam, z0 = 1, t = (3 - z y)/2, y <- y t, z <- t z. Its derivative (in any,
 * not only symmetric, direction) is Q^T (Lw o (Q E Q^T)) Q with the Loewner matrix of divided
 * differences Lw_ij = p[lam_i, lam_j], computed by the same recursion on pairs (no cancellation),
 * so forward and backward equal the iterate-by-iterate versions up to rounding, at the cost of
 * one eigendecomposition and 5 products instead of ~40. `saved` layout on this path: slot 0 = Q,
 * slot 1 row 0 = lam, slot 3n+1 = [s, ND_ISQRT_EIG_TAG, 0...]. */
static void ND_F(eig_poly)(double lam, int n, double *z)
{
    double y = lam, zz = 1;
    for (int k = 0; k < n; k++) {
        double t = 0.5 * (3 - zz * y);
        y *= t;
        zz *= t;
    }
    *z = zz;
}

/* Lw (d x d, symmetric) = divided differences of p at the pairs of lam. */
static void ND_F(eig_loewner)(double *Lw, const double *lam, int64_t d, int n)
{
#pragma omp parallel for schedule(dynamic, 16) if (d >= 128)
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = i; j < d; j++) {
            double ya = lam[i], yb = lam[j], za = 1, zb = 1, dy = 1, dz = 0;
            for (int k = 0; k < n; k++) {
                double ta = 0.5 * (3 - za * ya), tb = 0.5 * (3 - zb * yb);
                double dt = -0.5 * (dz * yb + za * dy); /* (z y)[a,b] = z[a,b] y(b) + z(a) y[a,b] */
                double dyn = dy * tb + ya * dt, dzn = dt * zb + ta * dz;
                ya *= ta;
                yb *= tb;
                za *= ta;
                zb *= tb;
                dy = dyn;
                dz = dzn;
            }
            Lw[i * d + j] = Lw[j * d + i] = dz;
        }
}

/* One symmetric matrix by eigendecomposition. sv: the saved slots or NULL; work: 2 d x d + 3 d
 * scalars of ND_T plus LAPACK space (allocated here). Returns 0, -1 (bad norm), -2 (LAPACK or
 * memory failure). */
static int ND_F(eig_forward_one)(ND_T *Dout, ND_T *sv, const ND_T *A, int64_t d, int n)
{
    const int64_t dd = d * d;
    const double s = ND_F(frobenius)(A, dd);
    if (!(s > 0) || !isfinite(s)) return -1;
    ND_T *Q = sv ? sv : (ND_T *)malloc(sizeof(ND_T) * (size_t)dd);
    ND_T *W = (ND_T *)malloc(sizeof(ND_T) * (size_t)(dd + 2 * d));
    if (!Q || !W) {
        if (!sv) free(Q);
        free(W);
        return -2;
    }
    ND_T *lam = W + dd, *pr = lam + d;
    for (int64_t i = 0; i < dd; i++)
        Q[i] = (ND_T)(A[i] / s);
    int info = ND_F(syevd)(Q, lam, d);
    if (info != 0) {
        if (!sv) free(Q);
        free(W);
        return -2;
    }
    /* LAPACK wrote eigenvectors as columns of a column-major array: rows of Q here. */
    /* D = Q^T diag(p / sqrt s) Q. p > 0 on the whole spectrum (lam <= 1: every factor
     * t = (3 - z y)/2 >= 1 there), so D = B^T B with B = diag(sqrt(p / sqrt s)) Q: a rank-k update
     * (half the products, exactly symmetric). The general product is kept for a p <= 0 or NaN. */
    const double r = 1.0 / sqrt(s);
    int positive = 1;
    for (int64_t i = 0; i < d; i++) { /* pr = p(lam) / sqrt s */
        double z;
        ND_F(eig_poly)((double)lam[i], n, &z);
        positive = positive && z > 0 && isfinite(z);
        pr[i] = (ND_T)(z * r);
    }
    for (int64_t i = 0; i < d; i++) {
        const ND_T f = positive ? (ND_T)sqrt((double)pr[i]) : pr[i];
        for (int64_t j = 0; j < d; j++)
            W[i * d + j] = f * Q[i * d + j];
    }
    if (positive) {
        ND_SYRK(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)d, 1, W, (int)d, 0, Dout, (int)d);
        for (int64_t i = 0; i < d; i++)
            for (int64_t j = 0; j < i; j++)
                Dout[i * d + j] = Dout[j * d + i];
    } else {
        ND_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d, (int)d, (int)d, 1, Q, (int)d, W, (int)d, 0, Dout,
                (int)d);
    }
    if (sv) {
        memcpy(sv + dd, lam, sizeof(ND_T) * (size_t)d);
        ND_T *slot = sv + (int64_t)(3 * n + 1) * dd;
        memset(slot, 0, sizeof(ND_T) * (size_t)dd);
        slot[0] = (ND_T)s;
        slot[1] = (ND_T)ND_ISQRT_EIG_TAG;
    } else {
        free(Q);
    }
    free(W);
    return 0;
}

/* The backward of eig_forward_one (GA not symmetrised, as the iterate backward). */
static int ND_F(eig_backward_one)(ND_T *GA, const ND_T *GD, const ND_T *sv, const ND_T *A, int64_t d, int n)
{
    const int64_t dd = d * d;
    const ND_T *Q = sv, *lamT = sv + dd;
    const double s = (double)sv[(int64_t)(3 * n + 1) * dd], rs = 1.0 / sqrt(s);
    double *lam = (double *)malloc(sizeof(double) * (size_t)(dd + d));
    ND_T *T1 = (ND_T *)malloc(sizeof(ND_T) * (size_t)(2 * dd));
    if (!lam || !T1) {
        free(lam);
        free(T1);
        return -1;
    }
    double *Lw = lam + d;
    ND_T *M = T1 + dd;
    for (int64_t i = 0; i < d; i++)
        lam[i] = (double)lamT[i];
    ND_F(eig_loewner)(Lw, lam, d, n);
    /* M = Q (GD / sqrt s) Q^T */
    ND_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)d, (int)d, (int)d, (ND_T)rs, GD, (int)d, Q, (int)d, 0, T1,
            (int)d);
    ND_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)d, (int)d, (int)d, 1, Q, (int)d, T1, (int)d, 0, M, (int)d);
    double gdd = 0; /* <GD, D> = sum_i (p_i / sqrt s) (Q GD Q^T)_ii = sum_i p_i M_ii */
    for (int64_t i = 0; i < d; i++) {
        double z;
        ND_F(eig_poly)(lam[i], n, &z);
        gdd += z * (double)M[i * d + i];
    }
    for (int64_t i = 0; i < dd; i++)
        M[i] = (ND_T)(M[i] * Lw[i]);
    /* G_An = Q^T M Q */
    ND_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)d, (int)d, (int)d, 1, M, (int)d, Q, (int)d, 0, T1, (int)d);
    ND_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d, (int)d, (int)d, 1, Q, (int)d, T1, (int)d, 0, M, (int)d);
    /* gs = dL/ds = -0.5 <GD, D>/s - <G_An, A>/s^2 */
    double gya = 0;
    for (int64_t i = 0; i < dd; i++)
        gya += (double)M[i] * A[i];
    const double gs = -0.5 * gdd / s - gya / (s * s);
    for (int64_t i = 0; i < dd; i++)
        GA[i] = (ND_T)(M[i] / s + (gs / s) * A[i]);
    free(lam);
    free(T1);
    return 0;
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
        for (int64_t i = 0; i < g && !bad; i++) {
            ND_T *svi = sv ? sv + i * slots * dd : NULL;
            const ND_T *Ai = A + i * dd;
            int r = nd_isqrt_use_eig(d, n) && ND_F(symmetric)(Ai, d) ? ND_F(eig_forward_one)(D + i * dd, svi, Ai, d, n)
                                                                   : ND_F(ns_forward_one)(D + i * dd, svi, work, Ai, d, n, 0);
            if (r == -2) bad = -1;
            else if (r) bad = i + 1;
        }
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
        for (int64_t i = 0; i < g; i++) {
            const ND_T *svi = sv + i * slots * dd;
            if (n >= 1 && svi[(int64_t)(3 * n + 1) * dd + 1] == (ND_T)ND_ISQRT_EIG_TAG) {
                if (ND_F(eig_backward_one)(GA + i * dd, GD + i * dd, svi, A + i * dd, d, n)) {
                    free(work);
                    return -1;
                }
            } else {
                ND_F(ns_backward_one)(GA + i * dd, GD + i * dd, svi, A + i * dd, work, d, n, 0);
            }
        }
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
/* Matrices of at least this size (and symmetric) take the eigen-basis path; ND_ISQRT_METHOD=ns
 * in the environment forces the iterate-by-iterate products (the reference), =eig forces the
 * eigen path from d = ND_ISQRT_SMALL + 1. */
#define ND_ISQRT_EIG_MIN 64
#define ND_ISQRT_EIG_TAG 7.25 /* marks a `saved` filled by the eigen path (exact in float) */

/* LAPACK (OpenBLAS ships it): divide-and-conquer symmetric eigensolver. */
void ssyevd_(const char *jobz, const char *uplo, const int *n, float *a, const int *lda, float *w, float *work,
             const int *lwork, int *iwork, const int *liwork, int *info);
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w, double *work,
             const int *lwork, int *iwork, const int *liwork, int *info);

static int nd_isqrt_mode = -1; /* ND_ISQRT_AUTO / _NS / _EIG; -1: not read from the environment yet */

int nd_isqrt_set_method(int method)
{
    if (nd_isqrt_mode < 0) {
        const char *e = getenv("ND_ISQRT_METHOD");
        nd_isqrt_mode = e && strcmp(e, "ns") == 0 ? ND_ISQRT_NS : e && strcmp(e, "eig") == 0 ? ND_ISQRT_EIG : ND_ISQRT_AUTO;
    }
    int old = nd_isqrt_mode;
    if (method >= 0) nd_isqrt_mode = method;
    return old;
}

static int nd_isqrt_use_eig(int64_t d, int n)
{
    int mode = nd_isqrt_set_method(-1);
    if (n < 1 || mode == ND_ISQRT_NS) return 0;
    return d >= (mode == ND_ISQRT_EIG ? ND_ISQRT_SMALL + 1 : ND_ISQRT_EIG_MIN);
}

#define ND_T float
#define ND_F(name) nd_isqrt_##name##_f32
#define ND_GEMM cblas_sgemm
#define ND_SYRK cblas_ssyrk
#define ND_LAPACK_SYEVD ssyevd_
#include "isqrt.c"
#undef ND_LAPACK_SYEVD
#undef ND_T
#undef ND_F
#undef ND_GEMM
#undef ND_SYRK
#define ND_T double
#define ND_F(name) nd_isqrt_##name##_f64
#define ND_GEMM cblas_dgemm
#define ND_SYRK cblas_dsyrk
#define ND_LAPACK_SYEVD dsyevd_
#include "isqrt.c"
#undef ND_LAPACK_SYEVD
#undef ND_T
#undef ND_F
#undef ND_GEMM

int64_t nd_isqrt_saved_slots(int iters)
{
    return 3 * (int64_t)iters + 2;
}

nd_status nd_deconv_check_float_(const char *op, const char *what, const nd_tensor *t, int dtype)
{
    return nd_deconv_check_float_on(ND_DEVICE_CPU, op, what, t, dtype);
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
