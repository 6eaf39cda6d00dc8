/* Deconvolution tests (group `deconv`), double precision unless said otherwise:
 *  (a) Newton-Schulz vs a Jacobi eigendecomposition (converged with 15+ steps) and the
 *      saturation of 5 steps (spec section 1); its backward vs central finite differences;
 *  (b) the whole FastDeconv chain (sampled im2col -> statistics -> Newton-Schulz -> fold ->
 *      a naive direct convolution -> a random linear functional) vs finite differences in x, W,
 *      b0: strided blocks, stride 1 and 2, k = 1, dilation, groups > 1, depthwise, a transposed x;
 *  (c) the folded convolution equals the explicit conv of D (patch - mu) + b0 everywhere;
 *  (d) Delinear and ChannelDeconv (with leftover channels) vs finite differences, ChannelDeconv's
 *      forward vs a naive reference;
 *  plus im2col vs its definition, col2im as its adjoint, float32 vs float64, error messages. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nd.h"
#include "nd_cpu_deconv.h"
#include "nd_test.h"

/* ---- helpers ---- */

static uint64_t td_state = 0x9E3779B97F4A7C15ull;
static double td_urand(void) /* uniform [0, 1) */
{
    td_state ^= td_state << 13;
    td_state ^= td_state >> 7;
    td_state ^= td_state << 17;
    return (double)(td_state >> 11) * (1.0 / 9007199254740992.0);
}
static double td_rand(void)
{
    return 2.0 * td_urand() - 1.0;
}

static nd_tensor td_new(nd_dtype dt, int ndim, int64_t a, int64_t b, int64_t c, int64_t d)
{
    int64_t size[4] = {a, b, c, d};
    nd_tensor t;
    nd_tensor_new(&t, dt, ndim, size, nd_cpu_device(), 1);
    return t;
}
static double *td_d(const nd_tensor *t)
{
    return (double *)nd_tensor_data(t);
}
static void td_fill(nd_tensor *t, double scale)
{
    double *p = td_d(t);
    for (int64_t i = 0; i < nd_tensor_numel(t); i++)
        p[i] = scale * td_rand();
}
static nd_tensor td_empty(void)
{
    nd_tensor t;
    nd_tensor_init_empty(&t, ND_DTYPE_F64);
    return t;
}
/* Address of element (i0, i1, i2, i3) of a double tensor with any strides (unused dims 0). */
static double *td_at(const nd_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3)
{
    int64_t i[4] = {i0, i1, i2, i3}, off = 0;
    for (int d = 0; d < t->ndim; d++)
        off += i[d] * t->stride[d];
    return td_d(t) + off;
}
static double td_maxabs(const double *a, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        m = fmax(m, fabs(a[i]));
    return m;
}

static double td_worst_ns = 0, td_worst_chain = 0, td_worst_lin = 0, td_worst_cd = 0, td_worst_eq = 0;

/* Records |fd - an| / (1 + scale) into *worst and checks it against tol. */
#define TD_GRAD(fd, an, scale, tol, worst)                                                                             \
    do {                                                                                                               \
        double td_e_ = fabs((fd) - (an)) / (1.0 + (scale));                                                            \
        if (td_e_ > *(worst)) *(worst) = td_e_;                                                                        \
        ND_CHECK_NEAR((an), (fd), (tol) * (1.0 + (scale)) / (1.0 + fabs(fd)));                                         \
    } while (0)

/* Symmetric eigendecomposition by cyclic Jacobi rotations: A (n x n) is destroyed, its diagonal
 * ends up holding the eigenvalues; V (n x n) gets the eigenvectors as columns. */
static void td_jacobi(double *A, double *V, int n)
{
    for (int i = 0; i < n * n; i++)
        V[i] = (i % (n + 1)) == 0;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++)
                off += A[p * n + q] * A[p * n + q];
        if (off < 1e-30) break;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) {
                double apq = A[p * n + q];
                if (fabs(apq) < 1e-300) continue;
                double theta = (A[q * n + q] - A[p * n + p]) / (2 * apq);
                double t = (theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < n; k++) { /* A <- A J */
                    double akp = A[k * n + p], akq = A[k * n + q];
                    A[k * n + p] = c * akp - s * akq;
                    A[k * n + q] = s * akp + c * akq;
                }
                for (int k = 0; k < n; k++) { /* A <- J^T A */
                    double apk = A[p * n + k], aqk = A[q * n + k];
                    A[p * n + k] = c * apk - s * aqk;
                    A[q * n + k] = s * apk + c * aqk;
                }
                for (int k = 0; k < n; k++) {
                    double vkp = V[k * n + p], vkq = V[k * n + q];
                    V[k * n + p] = c * vkp - s * vkq;
                    V[k * n + q] = s * vkp + c * vkq;
                }
            }
    }
}

/* A = Q diag(lam) Q^T with a random orthogonal Q (eigenvectors of a random symmetric matrix). */
static void td_spd(double *A, const double *lam, int n, double *Q)
{
    double *S = malloc(sizeof(double) * (size_t)(n * n));
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++)
            S[i * n + j] = S[j * n + i] = td_rand();
    td_jacobi(S, Q, n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double a = 0;
            for (int k = 0; k < n; k++)
                a += Q[i * n + k] * lam[k] * Q[j * n + k];
            A[i * n + j] = a;
        }
    free(S);
}

/* ---- (a) Newton-Schulz ---- */

static void test_isqrt_vs_eigen(void)
{
    const int sizes[3] = {3, 6, 10};
    for (int si = 0; si < 3; si++) {
        int n = sizes[si];
        double lam[16], Q[256], V[256], E[256];
        for (int i = 0; i < n; i++)
            lam[i] = 1e-3 + (i ? td_urand() : 1.0); /* spread down to ~1e-3 */
        lam[n - 1] = 1e-3;
        nd_tensor A = td_new(ND_DTYPE_F64, 2, n, n, 0, 0), D = td_empty();
        td_spd(td_d(&A), lam, n, Q);
        memcpy(E, td_d(&A), sizeof(double) * (size_t)(n * n));
        td_jacobi(E, V, n);
        for (int iters = 15; iters <= 25; iters += 10) {
            ND_CHECK_OK(nd_isqrt_forward_cpu(&D, NULL, &A, iters));
            double err = 0, ref_max = 0;
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++) {
                    double r = 0;
                    for (int k = 0; k < n; k++)
                        r += V[i * n + k] * V[j * n + k] / sqrt(E[k * n + k]);
                    err = fmax(err, fabs(r - td_d(&D)[i * n + j]));
                    ref_max = fmax(ref_max, fabs(r));
                }
            ND_CHECK(err < 1e-8 * ref_max);
            if (err >= 1e-8 * ref_max)
                fprintf(stderr, "  isqrt vs eigen: n %d iters %d err %g (max %g)\n", n, iters, err, ref_max);
            nd_tensor_release(&D);
        }
        nd_tensor_release(&A);
    }
}

/* Per normalised eigenvalue l = lambda/||A||_F, the whitening ratio z sqrt(l) after 5 steps is
 * 1.00 (0.1), 0.66 (0.01), 0.24 (1e-3), 0.076 (1e-4); tiny ones saturate at 1.5^5 / sqrt(s). */
static void test_isqrt_saturation(void)
{
    const int n = 6;
    double l[6] = {0, 0.1, 0.01, 1e-3, 1e-4, 1e-10}, sum = 0, lam[6], Q[36];
    for (int i = 1; i < n; i++)
        sum += l[i] * l[i];
    l[0] = sqrt(1 - sum);
    const double s = 4.0; /* ||A||_F */
    for (int i = 0; i < n; i++)
        lam[i] = s * l[i];
    nd_tensor A = td_new(ND_DTYPE_F64, 2, n, n, 0, 0), D = td_empty(), sv = td_empty();
    td_spd(td_d(&A), lam, n, Q);
    ND_CHECK_OK(nd_isqrt_forward_cpu(&D, &sv, &A, 5));
    double ratio[6];
    for (int k = 0; k < n; k++) { /* q_k^T D q_k = z_k / sqrt(s) */
        double r = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                r += Q[i * n + k] * td_d(&D)[i * n + j] * Q[j * n + k];
        ratio[k] = r * sqrt(lam[k]);
    }
    ND_CHECK_NEAR(ratio[1], 0.99744, 1e-4);
    ND_CHECK_NEAR(ratio[2], 0.65872, 1e-4);
    ND_CHECK_NEAR(ratio[3], 0.23656, 1e-4);
    ND_CHECK_NEAR(ratio[4], 0.075823, 1e-4);
    ND_CHECK(fabs(ratio[1] - 1.00) < 0.005 && fabs(ratio[2] - 0.66) < 0.005 && fabs(ratio[3] - 0.24) < 0.005 &&
             fabs(ratio[4] - 0.076) < 0.0005);
    double gain = 0; /* D's eigenvalue on the tiny direction */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            gain += Q[i * n + 5] * td_d(&D)[i * n + j] * Q[j * n + 5];
    ND_CHECK_NEAR(gain * sqrt(s), pow(1.5, 5), 1e-3);
    /* the saved state: s in the last slot, Z_0 = I, Y_0 = A/s */
    const int64_t dd = n * n, it = 5;
    ND_CHECK(sv.ndim == 3 && sv.size[0] == 3 * it + 2 && sv.size[1] == n);
    ND_CHECK_NEAR(td_d(&sv)[(3 * it + 1) * dd], s, 1e-12);
    ND_CHECK_NEAR(td_d(&sv)[it * dd], 1.0, 0);
    ND_CHECK_NEAR(td_d(&sv)[7], td_d(&A)[7] / s, 1e-14);
    /* 15 steps: gain ~ 438 / sqrt(s), l >= 1e-4 converged to < 1e-6 */
    nd_tensor_release(&D);
    ND_CHECK_OK(nd_isqrt_forward_cpu(&D, NULL, &A, 15));
    for (int k = 0; k < 5; k++) {
        double r = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                r += Q[i * n + k] * td_d(&D)[i * n + j] * Q[j * n + k];
        ND_CHECK_NEAR(r * sqrt(lam[k]), 1.0, 1e-6);
    }
    gain = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            gain += Q[i * n + 5] * td_d(&D)[i * n + j] * Q[j * n + 5];
    ND_CHECK(gain * sqrt(s) > 430 && gain * sqrt(s) < 440);
    nd_tensor_release(&A);
    nd_tensor_release(&D);
    nd_tensor_release(&sv);
}

/* A batch (g,d,d) gives the same matrices as g separate calls; keeping the state or not gives
 * the same D (small path d <= 24 and BLAS path). */
static void test_isqrt_batched(void)
{
    const int64_t ds[2] = {7, 30};
    for (int di = 0; di < 2; di++) {
        const int64_t d = ds[di], g = 3;
        nd_tensor A = td_new(ND_DTYPE_F64, 3, g, d, d, 0), Db = td_empty(), svb = td_empty();
        for (int64_t b = 0; b < g; b++) {
            double lam[32], Q[1024];
            for (int64_t i = 0; i < d; i++)
                lam[i] = 0.01 + td_urand() * (double)(b + 1);
            td_spd(td_d(&A) + b * d * d, lam, (int)d, Q);
        }
        ND_CHECK_OK(nd_isqrt_forward_cpu(&Db, &svb, &A, 5));
        ND_CHECK(svb.ndim == 4 && svb.size[0] == g && svb.size[1] == 17);
        int same = 1;
        for (int64_t b = 0; b < g; b++) {
            nd_tensor Ab, D1 = td_empty();
            nd_tensor_view_of(&Ab, &A);
            nd_tensor_select(&Ab, 0, b);
            ND_CHECK_OK(nd_isqrt_forward_cpu(&D1, NULL, &Ab, 5));
            for (int64_t i = 0; i < d * d; i++)
                same &= td_d(&D1)[i] == td_d(&Db)[b * d * d + i];
            nd_tensor_release(&Ab);
            nd_tensor_release(&D1);
        }
        ND_CHECK(same);
        nd_tensor_release(&A);
        nd_tensor_release(&Db);
        nd_tensor_release(&svb);
    }
}

/* <R, isqrt(A)> */
static double td_ns_loss(const nd_tensor *A, const nd_tensor *R, int iters)
{
    nd_tensor D = td_empty();
    nd_isqrt_forward_cpu(&D, NULL, A, iters);
    double L = 0;
    for (int64_t i = 0; i < nd_tensor_numel(R); i++)
        L += td_d(R)[i] * td_d(&D)[i];
    nd_tensor_release(&D);
    return L;
}

static void td_ns_gradcheck(int64_t g, int64_t d, int iters, int deficient)
{
    nd_tensor A = g > 1 ? td_new(ND_DTYPE_F64, 3, g, d, d, 0) : td_new(ND_DTYPE_F64, 2, d, d, 0, 0);
    nd_tensor R = g > 1 ? td_new(ND_DTYPE_F64, 3, g, d, d, 0) : td_new(ND_DTYPE_F64, 2, d, d, 0, 0);
    td_fill(&R, 1.0);
    const int64_t m = deficient ? d / 2 + 1 : 2 * d; /* rows of the data behind each matrix */
    double *X = malloc(sizeof(double) * (size_t)(m * d));
    for (int64_t b = 0; b < g; b++) {
        double *a = td_d(&A) + b * d * d;
        for (int64_t i = 0; i < m * d; i++)
            X[i] = td_rand();
        for (int64_t i = 0; i < d; i++)
            for (int64_t j = 0; j < d; j++) {
                double s = 0;
                for (int64_t r = 0; r < m; r++)
                    s += X[r * d + i] * X[r * d + j];
                a[i * d + j] = s / (double)m + (i == j ? (deficient ? 1e-3 : 0.1) : 0.0);
            }
    }
    free(X);
    nd_tensor D = td_empty(), sv = td_empty(), GA = td_empty();
    ND_CHECK_OK(nd_isqrt_forward_cpu(&D, &sv, &A, iters));
    ND_CHECK_OK(nd_isqrt_backward_cpu(&GA, &R, &sv, &A, iters));
    const double scale = td_maxabs(td_d(&GA), nd_tensor_numel(&GA)), h = 1e-6;
    for (int64_t i = 0; i < nd_tensor_numel(&A); i++) {
        double v = td_d(&A)[i];
        td_d(&A)[i] = v + h;
        double lp = td_ns_loss(&A, &R, iters);
        td_d(&A)[i] = v - h;
        double lm = td_ns_loss(&A, &R, iters);
        td_d(&A)[i] = v;
        TD_GRAD((lp - lm) / (2 * h), td_d(&GA)[i], scale, 1e-6, &td_worst_ns);
    }
    nd_tensor_release(&A);
    nd_tensor_release(&R);
    nd_tensor_release(&D);
    nd_tensor_release(&sv);
    nd_tensor_release(&GA);
}

static void test_isqrt_backward(void)
{
    const int64_t ds[5] = {4, 7, 12, 25, 27};
    const int its[3] = {1, 5, 15};
    for (int a = 0; a < 5; a++)
        for (int b = 0; b < 3; b++)
            td_ns_gradcheck(1, ds[a], its[b], 0);
    td_ns_gradcheck(1, 9, 5, 1); /* rank-deficient + eps */
    td_ns_gradcheck(1, 26, 5, 1);
    td_ns_gradcheck(3, 5, 5, 0);  /* batched, small path (one thread per matrix) */
    td_ns_gradcheck(2, 26, 3, 0); /* batched, BLAS path */
    td_ns_gradcheck(1, 6, 0, 0);  /* zero iterations: D = I / sqrt(s) */
}

/* The eigen-basis path (large symmetric matrices) against the iterate products (the reference):
 * same D and same GA (random, non-symmetric GD) in float64 and float32, full-rank and
 * rank-deficient; and its own finite-difference check (perturbed matrices are not symmetric, so
 * the finite differences run through the product path: the two paths define one function). */
/* Fills D[k], GA[k] (float64 copies) for method k (0 products, 1 eigen) in dtype dt. */
static void td_isqrt_run(nd_tensor *D, nd_tensor *GA, const nd_tensor *A64, const nd_tensor *R64, nd_dtype dt,
                         int method, int iters)
{
    nd_tensor A, R, d, sv, ga;
    nd_tensor_clone(&A, A64, dt);
    nd_tensor_clone(&R, R64, dt);
    nd_tensor_init_empty(&d, dt);
    nd_tensor_init_empty(&sv, dt);
    nd_tensor_init_empty(&ga, dt);
    int old = nd_isqrt_set_method(method);
    ND_CHECK_OK(nd_isqrt_forward_cpu(&d, &sv, &A, iters));
    ND_CHECK_OK(nd_isqrt_backward_cpu(&ga, &R, &sv, &A, iters));
    nd_isqrt_set_method(old);
    nd_tensor_clone(D, &d, ND_DTYPE_F64);
    nd_tensor_clone(GA, &ga, ND_DTYPE_F64);
    nd_tensor *all[5] = {&A, &R, &d, &sv, &ga};
    for (int i = 0; i < 5; i++)
        nd_tensor_release(all[i]);
}

static double td_relerr(const nd_tensor *a, const nd_tensor *ref)
{
    double e = 0;
    for (int64_t i = 0; i < nd_tensor_numel(a); i++)
        e = fmax(e, fabs(td_d(a)[i] - td_d(ref)[i]));
    return e / td_maxabs(td_d(ref), nd_tensor_numel(ref));
}

/* err[0]: eig vs products in float64 (D and GA); err[1]: eig float32 vs the float64 reference;
 * err[2]: products float32 vs the float64 reference. */
static void td_eig_vs_ns_one(double *err, int64_t d, int iters, int deficient)
{
    const int64_t m = deficient ? d / 3 + 1 : 2 * d;
    nd_tensor A = td_new(ND_DTYPE_F64, 2, d, d, 0, 0), R = td_new(ND_DTYPE_F64, 2, d, d, 0, 0);
    td_fill(&R, 1.0);
    double *X = malloc(sizeof(double) * (size_t)(m * d));
    for (int64_t i = 0; i < m * d; i++)
        X[i] = td_rand() * (1.0 + (double)(i % d) / (double)d);
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = 0; j <= i; j++) {
            double s = 0;
            for (int64_t r = 0; r < m; r++)
                s += X[r * d + i] * X[r * d + j];
            td_d(&A)[i * d + j] = td_d(&A)[j * d + i] = s / (double)m + (i == j ? 1e-5 : 0.0);
        }
    free(X);
    nd_tensor D[4], GA[4]; /* ns64, eig64, eig32, ns32 */
    td_isqrt_run(&D[0], &GA[0], &A, &R, ND_DTYPE_F64, ND_ISQRT_NS, iters);
    td_isqrt_run(&D[1], &GA[1], &A, &R, ND_DTYPE_F64, ND_ISQRT_EIG, iters);
    td_isqrt_run(&D[2], &GA[2], &A, &R, ND_DTYPE_F32, ND_ISQRT_EIG, iters);
    td_isqrt_run(&D[3], &GA[3], &A, &R, ND_DTYPE_F32, ND_ISQRT_NS, iters);
    for (int k = 1; k < 4; k++)
        err[k - 1] = fmax(td_relerr(&D[k], &D[0]), td_relerr(&GA[k], &GA[0]));
    for (int k = 0; k < 4; k++) {
        nd_tensor_release(&D[k]);
        nd_tensor_release(&GA[k]);
    }
    nd_tensor_release(&A);
    nd_tensor_release(&R);
}

static void test_isqrt_eig(void)
{
    const int64_t ds[4] = {25, 40, 64, 150};
    const int its[3] = {1, 5, 15};
    double worst[3] = {0, 0, 0};
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 3; b++)
            for (int def = 0; def < 2; def++) {
                double e[3];
                td_eig_vs_ns_one(e, ds[a], its[b], def);
                /* float64: the same numbers; float32: the eigen path within 4x of the float64
                 * truth distance of the float32 products (rank-deficient 15-step cases amplify rounding) */
                int ok = e[0] < 1e-9 && e[1] < fmax(4 * e[2], 1e-4);
                ND_CHECK(ok);
                if (!ok || getenv("ND_TEST_VERBOSE"))
                    fprintf(stderr, "  isqrt eig vs ns: d %lld iters %d deficient %d: f64 %g, f32 eig %g, f32 ns %g\n",
                            (long long)ds[a], its[b], def, e[0], e[1], e[2]);
                for (int k = 0; k < 3; k++)
                    worst[k] = fmax(worst[k], e[k]);
            }
    int old = nd_isqrt_set_method(ND_ISQRT_EIG);
    for (int b = 0; b < 3; b++)
        td_ns_gradcheck(1, 27, its[b], 0);
    td_ns_gradcheck(1, 26, 5, 1);
    td_ns_gradcheck(2, 26, 3, 0);
    nd_isqrt_set_method(old);
}

/* ---- naive convolution (double; x any strides, W contiguous (Cout, C/groups, k, k)) ---- */

typedef struct td_conv {
    int64_t N, C, H, W, Cout, k, stride, pad, dil, groups, OH, OW;
} td_conv;

static void td_conv_forward(double *y, const nd_tensor *x, const double *Wt, const double *b, const td_conv *p)
{
    const int64_t Cg = p->C / p->groups, Og = p->Cout / p->groups, k = p->k;
    for (int64_t n = 0; n < p->N; n++)
        for (int64_t o = 0; o < p->Cout; o++)
            for (int64_t oh = 0; oh < p->OH; oh++)
                for (int64_t ow = 0; ow < p->OW; ow++) {
                    double acc = b ? b[o] : 0;
                    const int64_t gi = o / Og;
                    for (int64_t c = 0; c < Cg; c++)
                        for (int64_t ki = 0; ki < k; ki++)
                            for (int64_t kj = 0; kj < k; kj++) {
                                int64_t h = oh * p->stride - p->pad + ki * p->dil,
                                        w = ow * p->stride - p->pad + kj * p->dil;
                                if (h < 0 || h >= p->H || w < 0 || w >= p->W) continue;
                                acc += Wt[((o * Cg + c) * k + ki) * k + kj] * *td_at(x, n, gi * Cg + c, h, w);
                            }
                    y[((n * p->Cout + o) * p->OH + oh) * p->OW + ow] = acc;
                }
}

/* gx (contiguous N,C,H,W) overwritten; gW, gb overwritten. */
static void td_conv_backward(double *gx, double *gW, double *gb, const double *gy, const nd_tensor *x, const double *Wt,
                             const td_conv *p)
{
    const int64_t Cg = p->C / p->groups, Og = p->Cout / p->groups, k = p->k;
    memset(gx, 0, sizeof(double) * (size_t)(p->N * p->C * p->H * p->W));
    memset(gW, 0, sizeof(double) * (size_t)(p->Cout * Cg * k * k));
    memset(gb, 0, sizeof(double) * (size_t)p->Cout);
    for (int64_t n = 0; n < p->N; n++)
        for (int64_t o = 0; o < p->Cout; o++)
            for (int64_t oh = 0; oh < p->OH; oh++)
                for (int64_t ow = 0; ow < p->OW; ow++) {
                    const double g = gy[((n * p->Cout + o) * p->OH + oh) * p->OW + ow];
                    const int64_t gi = o / Og;
                    gb[o] += g;
                    for (int64_t c = 0; c < Cg; c++)
                        for (int64_t ki = 0; ki < k; ki++)
                            for (int64_t kj = 0; kj < k; kj++) {
                                int64_t h = oh * p->stride - p->pad + ki * p->dil,
                                        w = ow * p->stride - p->pad + kj * p->dil;
                                if (h < 0 || h >= p->H || w < 0 || w >= p->W) continue;
                                const int64_t wi = ((o * Cg + c) * k + ki) * k + kj,
                                              xi = ((n * p->C + gi * Cg + c) * p->H + h) * p->W + w;
                                gW[wi] += g * *td_at(x, n, gi * Cg + c, h, w);
                                gx[xi] += g * Wt[wi];
                            }
                }
}

/* ---- (b) the FastDeconv chain ---- */

typedef struct td_chain_cfg {
    int64_t N, C, H, W, Cout, k, pad, dil, stride, samp, B, groups;
    double eps;
    int iters, transposed;
} td_chain_cfg;

typedef struct td_chain {
    td_chain_cfg c;
    td_conv p;
    nd_deconv_geom g;
    nd_tensor xbase, x, W, b0, R;
} td_chain;

static void td_chain_init(td_chain *ch, const td_chain_cfg *c)
{
    ch->c = *c;
    td_conv *p = &ch->p;
    p->N = c->N, p->C = c->C, p->H = c->H, p->W = c->W, p->Cout = c->Cout, p->k = c->k, p->stride = c->stride;
    p->pad = c->pad, p->dil = c->dil, p->groups = c->groups;
    p->OH = (c->H + 2 * c->pad - c->dil * (c->k - 1) - 1) / c->stride + 1;
    p->OW = (c->W + 2 * c->pad - c->dil * (c->k - 1) - 1) / c->stride + 1;
    ch->g.k = c->k, ch->g.pad = c->pad, ch->g.dil = c->dil, ch->g.s = c->samp * c->stride, ch->g.block = c->B;
    ch->g.groups = c->groups;
    if (c->transposed) { /* x is the (2,3)-transpose of an (N,C,W,H) tensor: not contiguous */
        ch->xbase = td_new(ND_DTYPE_F64, 4, c->N, c->C, c->W, c->H);
        td_fill(&ch->xbase, 1.0);
        nd_tensor_view_of(&ch->x, &ch->xbase);
        nd_tensor_transpose(&ch->x, 2, 3);
    } else {
        ch->xbase = td_new(ND_DTYPE_F64, 4, c->N, c->C, c->H, c->W);
        td_fill(&ch->xbase, 1.0);
        for (int64_t i = 0; i < c->N * c->C; i++) /* a per-channel offset: the mean matters */
            for (int64_t j = 0; j < c->H * c->W; j++)
                td_d(&ch->xbase)[i * c->H * c->W + j] += 0.3 * (double)(i % c->C);
        nd_tensor_view_of(&ch->x, &ch->xbase);
    }
    ch->W = td_new(ND_DTYPE_F64, 4, c->Cout, c->C / c->groups, c->k, c->k);
    td_fill(&ch->W, 0.5);
    ch->b0 = td_new(ND_DTYPE_F64, 1, c->Cout, 0, 0, 0);
    td_fill(&ch->b0, 0.5);
    ch->R = td_new(ND_DTYPE_F64, 4, c->N, c->Cout, p->OH, p->OW);
    td_fill(&ch->R, 1.0);
}

static void td_chain_free(td_chain *ch)
{
    nd_tensor_release(&ch->xbase);
    nd_tensor_release(&ch->x);
    nd_tensor_release(&ch->W);
    nd_tensor_release(&ch->b0);
    nd_tensor_release(&ch->R);
}

/* Forward statistics and folded weights; returns the status of the first failing kernel. */
typedef struct td_fwd {
    nd_tensor X, mu, C, D, sv, Wf, b;
} td_fwd;

static nd_status td_chain_stats(td_chain *ch, td_fwd *f)
{
    f->X = td_empty(), f->mu = td_empty(), f->C = td_empty(), f->D = td_empty(), f->sv = td_empty();
    f->Wf = td_empty(), f->b = td_empty();
    ND_TRY(nd_deconv_im2col_cpu(&f->X, &ch->x, &ch->g));
    ND_TRY(nd_deconv_cov_forward_cpu(&f->mu, &f->C, &f->X, ch->c.groups, ch->c.eps));
    ND_TRY(nd_isqrt_forward_cpu(&f->D, &f->sv, &f->C, ch->c.iters));
    return nd_deconv_fold_forward_cpu(&f->Wf, &f->b, &ch->W, &ch->b0, &f->D, &f->mu, ch->c.groups, ND_DECONV_STRIDED);
}

static void td_fwd_free(td_fwd *f)
{
    nd_tensor *t[7] = {&f->X, &f->mu, &f->C, &f->D, &f->sv, &f->Wf, &f->b};
    for (int i = 0; i < 7; i++)
        nd_tensor_release(t[i]);
}

static double td_chain_loss(td_chain *ch)
{
    td_fwd f;
    nd_status st = td_chain_stats(ch, &f);
    double L = NAN;
    if (st == ND_OK) {
        int64_t ny = nd_tensor_numel(&ch->R);
        double *y = malloc(sizeof(double) * (size_t)ny);
        td_conv_forward(y, &ch->x, td_d(&f.Wf), td_d(&f.b), &ch->p);
        L = 0;
        for (int64_t i = 0; i < ny; i++)
            L += y[i] * td_d(&ch->R)[i];
        free(y);
    }
    td_fwd_free(&f);
    return L;
}

static void td_chain_check(const td_chain_cfg *cfg)
{
    td_chain ch;
    td_chain_init(&ch, cfg);
    const td_conv *p = &ch.p;
    td_fwd f;
    ND_CHECK_OK(td_chain_stats(&ch, &f));
    /* analytic: conv backward, fold backward, isqrt backward, cov backward, col2im */
    nd_tensor gx = td_new(ND_DTYPE_F64, 4, p->N, p->C, p->H, p->W), gWf = td_empty(), gb = td_empty();
    nd_tensor_new_like(&gWf, &ch.W, 1);
    nd_tensor_new_like(&gb, &ch.b0, 1);
    td_conv_backward(td_d(&gx), td_d(&gWf), td_d(&gb), td_d(&ch.R), &ch.x, td_d(&f.Wf), p);
    nd_tensor GW = td_empty(), Gb0 = td_empty(), GD = td_empty(), Gmu = td_empty(), GC = td_empty(), GX = td_empty();
    ND_CHECK_OK(nd_deconv_fold_backward_cpu(&GW, &Gb0, &GD, &Gmu, &gWf, &gb, &ch.W, &f.D, &f.mu, cfg->groups,
                                            ND_DECONV_STRIDED));
    ND_CHECK_OK(nd_isqrt_backward_cpu(&GC, &GD, &f.sv, &f.C, cfg->iters));
    ND_CHECK_OK(nd_deconv_cov_backward_cpu(&GX, &GC, &Gmu, &f.X, &f.mu, cfg->groups));
    ND_CHECK_OK(nd_deconv_col2im_cpu(&gx, &GX, &ch.g));
    const double h = 1e-6, tol = 2e-6;
    double sx = td_maxabs(td_d(&gx), nd_tensor_numel(&gx)), sw = td_maxabs(td_d(&GW), nd_tensor_numel(&GW));
    double sb = td_maxabs(td_d(&Gb0), nd_tensor_numel(&Gb0));
    int fails = nd_test_failed;
    for (int64_t n = 0; n < p->N; n++)
        for (int64_t c = 0; c < p->C; c++)
            for (int64_t i = 0; i < p->H; i++)
                for (int64_t j = 0; j < p->W; j++) {
                    double *e = td_at(&ch.x, n, c, i, j), v = *e;
                    *e = v + h;
                    double lp = td_chain_loss(&ch);
                    *e = v - h;
                    double lm = td_chain_loss(&ch);
                    *e = v;
                    TD_GRAD((lp - lm) / (2 * h), *td_at(&gx, n, c, i, j), sx, tol, &td_worst_chain);
                }
    for (int64_t i = 0; i < nd_tensor_numel(&ch.W); i++) {
        double *e = td_d(&ch.W) + i, v = *e;
        *e = v + h;
        double lp = td_chain_loss(&ch);
        *e = v - h;
        double lm = td_chain_loss(&ch);
        *e = v;
        TD_GRAD((lp - lm) / (2 * h), td_d(&GW)[i], sw, tol, &td_worst_chain);
    }
    for (int64_t i = 0; i < p->Cout; i++) {
        double *e = td_d(&ch.b0) + i, v = *e;
        *e = v + h;
        double lp = td_chain_loss(&ch);
        *e = v - h;
        double lm = td_chain_loss(&ch);
        *e = v;
        TD_GRAD((lp - lm) / (2 * h), td_d(&Gb0)[i], sb, tol, &td_worst_chain);
    }
    if (nd_test_failed != fails)
        fprintf(stderr, "  chain k %lld C %lld B %lld groups %lld stride %lld samp %lld transposed %d failed\n",
                (long long)cfg->k, (long long)cfg->C, (long long)cfg->B, (long long)cfg->groups, (long long)cfg->stride,
                (long long)cfg->samp, cfg->transposed);
    nd_tensor *t[9] = {&gx, &gWf, &gb, &GW, &Gb0, &GD, &Gmu, &GC, &GX};
    for (int i = 0; i < 9; i++)
        nd_tensor_release(t[i]);
    td_fwd_free(&f);
    td_chain_free(&ch);
}

static void test_chain_gradients(void)
{
    /*                    N  C  H  W Cout k pad dil str samp B groups eps iters transposed */
    td_chain_cfg c[] = {{2, 6, 7, 6, 4, 3, 1, 1, 1, 2, 2, 1, 1e-3, 5, 0},   /* G = 3 strided blocks */
                        {2, 6, 7, 6, 4, 3, 1, 1, 2, 2, 2, 1, 1e-3, 5, 0},   /* stride 2: s = 4 */
                        {2, 6, 7, 6, 4, 3, 1, 1, 1, 2, 2, 1, 1e-5, 5, 1},   /* transposed x, spec eps */
                        {2, 6, 5, 5, 4, 1, 0, 1, 1, 2, 2, 1, 1e-3, 5, 0},   /* k = 1: pixel rows */
                        {2, 6, 6, 5, 4, 1, 0, 1, 2, 1, 3, 1, 1e-3, 5, 1},   /* k = 1, stride 2 */
                        {2, 4, 8, 7, 3, 3, 2, 2, 1, 2, 2, 1, 1e-3, 5, 0},   /* dilation 2, padding 2 */
                        {2, 6, 6, 6, 6, 3, 1, 1, 1, 2, 2, 3, 1e-3, 5, 0},   /* groups 3 */
                        {2, 4, 6, 5, 4, 3, 1, 1, 2, 1, 1, 4, 1e-3, 1, 1},   /* depthwise, 1 step */
                        {3, 6, 4, 4, 6, 1, 0, 1, 1, 1, 2, 3, 1e-3, 5, 0},   /* grouped 1x1 */
                        {2, 5, 6, 6, 3, 3, 1, 1, 1, 3, 5, 1, 1e-3, 15, 0}}; /* one block, 15 steps */
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        td_chain_check(&c[i]);
}

/* ---- (c) forward equivalence: conv(x, Wf, b) == sum_g w_{o,g} . D (patch_g - mu) + b0 ---- */

static void td_equiv_check(const td_chain_cfg *cfg)
{
    td_chain ch;
    td_chain_init(&ch, cfg);
    const td_conv *p = &ch.p;
    td_fwd f;
    ND_CHECK_OK(td_chain_stats(&ch, &f));
    const int64_t k = p->k, kk = k * k, Cg = p->C / p->groups, K = Cg * kk, Og = p->Cout / p->groups;
    const int64_t G = cfg->groups == 1 ? p->C / cfg->B : 1, F = K / G;
    double *y = malloc(sizeof(double) * (size_t)nd_tensor_numel(&ch.R));
    double *P = malloc(sizeof(double) * (size_t)K), *u = malloc(sizeof(double) * (size_t)F);
    td_conv_forward(y, &ch.x, td_d(&f.Wf), td_d(&f.b), p);
    double err = 0, ymax = 0;
    for (int64_t n = 0; n < p->N; n++)
        for (int64_t o = 0; o < p->Cout; o++)
            for (int64_t oh = 0; oh < p->OH; oh++)
                for (int64_t ow = 0; ow < p->OW; ow++) {
                    const int64_t j = o / Og;        /* conv group */
                    for (int64_t c = 0; c < Cg; c++) /* the patch this output sees */
                        for (int64_t ki = 0; ki < k; ki++)
                            for (int64_t kj = 0; kj < k; kj++) {
                                int64_t h = oh * p->stride - p->pad + ki * p->dil,
                                        w = ow * p->stride - p->pad + kj * p->dil;
                                P[c * kk + ki * k + kj] =
                                    (h < 0 || h >= p->H || w < 0 || w >= p->W) ? 0 : *td_at(&ch.x, n, j * Cg + c, h, w);
                            }
                    const double *D = td_d(&f.D) + (cfg->groups > 1 ? j * F * F : 0);
                    const double *mu = td_d(&f.mu) + (cfg->groups > 1 ? j * F : 0);
                    double acc = td_d(&ch.b0)[o];
                    for (int64_t g = 0; g < G; g++) {
                        for (int64_t a = 0; a < F; a++) { /* u = D (p_g - mu) */
                            double s = 0;
                            for (int64_t b = 0; b < F; b++)
                                s += D[a * F + b] * (P[b * G + g] - mu[b]);
                            u[a] = s;
                        }
                        for (int64_t a = 0; a < F; a++)
                            acc += td_d(&ch.W)[o * K + a * G + g] * u[a];
                    }
                    double yv = y[((n * p->Cout + o) * p->OH + oh) * p->OW + ow];
                    err = fmax(err, fabs(yv - acc));
                    ymax = fmax(ymax, fabs(acc));
                }
    (void)Og;
    ND_CHECK(err <= 1e-12 * (1 + ymax));
    td_worst_eq = fmax(td_worst_eq, err / (1 + ymax));
    free(y);
    free(P);
    free(u);
    td_fwd_free(&f);
    td_chain_free(&ch);
}

static void test_forward_equivalence(void)
{
    td_chain_cfg c[] = {{2, 6, 7, 6, 4, 3, 1, 1, 1, 2, 2, 1, 1e-5, 5, 0},
                        {2, 6, 7, 6, 4, 3, 1, 1, 2, 3, 3, 1, 1e-5, 5, 1},
                        {2, 8, 5, 5, 4, 1, 0, 1, 1, 3, 2, 1, 1e-5, 5, 0},
                        {2, 6, 6, 6, 6, 3, 1, 1, 1, 2, 2, 3, 1e-5, 5, 0}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        td_equiv_check(&c[i]);
}

/* ---- im2col vs its definition; col2im is its adjoint ---- */

static void test_im2col(void)
{
    td_chain_cfg cfgs[] = {{2, 6, 7, 6, 4, 3, 1, 1, 1, 2, 2, 1, 0, 0, 1},
                           {2, 6, 5, 7, 4, 1, 0, 1, 1, 2, 3, 1, 0, 0, 1},
                           {2, 6, 6, 6, 6, 3, 1, 2, 2, 1, 2, 3, 0, 0, 0}};
    for (size_t ci = 0; ci < sizeof cfgs / sizeof cfgs[0]; ci++) {
        td_chain ch;
        td_chain_init(&ch, &cfgs[ci]);
        const td_chain_cfg *c = &cfgs[ci];
        const int64_t k = c->k, kk = k * k, K = c->C * kk, s = ch.g.s, G = c->groups == 1 ? c->C / c->B : 1;
        nd_tensor X = td_empty();
        ND_CHECK_OK(nd_deconv_im2col_cpu(&X, &ch.x, &ch.g));
        int64_t R0 = nd_deconv_sample_rows(c->N, c->H, c->W, &ch.g);
        ND_CHECK(X.ndim == 2 && X.size[0] == R0 * G && X.size[1] == K / G);
        int bad = 0;
        for (int64_t r = 0; r < R0; r++)
            for (int64_t f = 0; f < K; f++) {
                const int64_t ch_ = f / kk, ki = (f % kk) / k, kj = f % k;
                double want;
                if (k == 1) { /* pixel r*s^2 of the NHWC raster order */
                    int64_t t = r * s * s, n = t / (c->H * c->W), pix = t % (c->H * c->W);
                    want = *td_at(&ch.x, n, ch_, pix / c->W, pix % c->W);
                } else {
                    int64_t Lh = (c->H + 2 * c->pad - c->dil * (k - 1) - 1) / s + 1;
                    int64_t Lw = (c->W + 2 * c->pad - c->dil * (k - 1) - 1) / s + 1;
                    int64_t n = r / (Lh * Lw), i = (r / Lw) % Lh, j = r % Lw;
                    int64_t h = i * s - c->pad + ki * c->dil, w = j * s - c->pad + kj * c->dil;
                    want = (h < 0 || h >= c->H || w < 0 || w >= c->W) ? 0 : *td_at(&ch.x, n, ch_, h, w);
                }
                /* strided regrouping: row r*G + f%G, column f/G */
                double got = td_d(&X)[(r * G + f % G) * (K / G) + f / G];
                bad += got != want;
            }
        ND_CHECK(bad == 0);
        /* adjoint: <im2col(x), Y> == <x, col2im(Y)>, col2im into a transposed (non-contiguous) Gx */
        nd_tensor Y, gbase = td_new(ND_DTYPE_F64, 4, c->N, c->C, c->W, c->H), gx;
        nd_tensor_new_like(&Y, &X, 0);
        td_fill(&Y, 1.0);
        td_fill(&gbase, 1.0);
        nd_tensor_view_of(&gx, &gbase);
        nd_tensor_transpose(&gx, 2, 3);
        nd_tensor g0;
        nd_tensor_clone(&g0, &gx, ND_DTYPE_F64);
        ND_CHECK_OK(nd_deconv_col2im_cpu(&gx, &Y, &ch.g));
        double lhs = 0, rhs = 0;
        for (int64_t i = 0; i < nd_tensor_numel(&X); i++)
            lhs += td_d(&X)[i] * td_d(&Y)[i];
        for (int64_t n = 0; n < c->N; n++)
            for (int64_t cc = 0; cc < c->C; cc++)
                for (int64_t i = 0; i < c->H; i++)
                    for (int64_t j = 0; j < c->W; j++)
                        rhs += *td_at(&ch.x, n, cc, i, j) * (*td_at(&gx, n, cc, i, j) - *td_at(&g0, n, cc, i, j));
        ND_CHECK_NEAR(lhs, rhs, 1e-12);
        nd_tensor_release(&X);
        nd_tensor_release(&Y);
        nd_tensor_release(&gbase);
        nd_tensor_release(&gx);
        nd_tensor_release(&g0);
        td_chain_free(&ch);
    }
}

/* ---- (d) Delinear: contiguous blocks, folded into a linear layer ---- */

typedef struct td_lin {
    int64_t N, in, out, B;
    double eps;
    int iters;
    nd_tensor xbase, x, W, b0, R;
} td_lin;

/* y = x Wf^T + b; L = <R, y>. With grads != 0 also fills gx, GW, Gb0 (new tensors). */
static double td_lin_eval(td_lin *t, nd_tensor *gx, nd_tensor *GW, nd_tensor *Gb0)
{
    nd_tensor xc, X, mu = td_empty(), C = td_empty(), D = td_empty(), sv = td_empty(), Wf = td_empty(), b = td_empty();
    nd_tensor_contiguous(&xc, &t->x);
    nd_tensor_view_of(&X, &xc);
    int64_t xs[2] = {t->N * t->in / t->B, t->B};
    ND_CHECK_OK(nd_tensor_view(&X, 2, xs));
    ND_CHECK_OK(nd_deconv_cov_forward_cpu(&mu, &C, &X, 1, t->eps));
    ND_CHECK_OK(nd_isqrt_forward_cpu(&D, &sv, &C, t->iters));
    ND_CHECK_OK(nd_deconv_fold_forward_cpu(&Wf, &b, &t->W, &t->b0, &D, &mu, 1, ND_DECONV_CONTIGUOUS));
    double L = 0;
    const double *x = td_d(&xc), *wf = td_d(&Wf), *R = td_d(&t->R);
    for (int64_t n = 0; n < t->N; n++)
        for (int64_t o = 0; o < t->out; o++) {
            double y = td_d(&b)[o];
            for (int64_t i = 0; i < t->in; i++)
                y += x[n * t->in + i] * wf[o * t->in + i];
            L += R[n * t->out + o] * y;
        }
    if (gx) {
        nd_tensor gWf = td_new(ND_DTYPE_F64, 2, t->out, t->in, 0, 0), gb = td_new(ND_DTYPE_F64, 1, t->out, 0, 0, 0);
        *gx = td_new(ND_DTYPE_F64, 2, t->N, t->in, 0, 0);
        for (int64_t n = 0; n < t->N; n++)
            for (int64_t o = 0; o < t->out; o++) {
                const double r = R[n * t->out + o];
                td_d(&gb)[o] += r;
                for (int64_t i = 0; i < t->in; i++) {
                    td_d(&gWf)[o * t->in + i] += r * x[n * t->in + i];
                    td_d(gx)[n * t->in + i] += r * wf[o * t->in + i];
                }
            }
        nd_tensor GD = td_empty(), Gmu = td_empty(), GC = td_empty(), GX = td_empty();
        ND_CHECK_OK(
            nd_deconv_fold_backward_cpu(GW, Gb0, &GD, &Gmu, &gWf, &gb, &t->W, &D, &mu, 1, ND_DECONV_CONTIGUOUS));
        ND_CHECK_OK(nd_isqrt_backward_cpu(&GC, &GD, &sv, &C, t->iters));
        ND_CHECK_OK(nd_deconv_cov_backward_cpu(&GX, &GC, &Gmu, &X, &mu, 1));
        for (int64_t i = 0; i < t->N * t->in; i++)
            td_d(gx)[i] += td_d(&GX)[i]; /* GX viewed (N, in) */
        nd_tensor *r[6] = {&gWf, &gb, &GD, &Gmu, &GC, &GX};
        for (int i = 0; i < 6; i++)
            nd_tensor_release(r[i]);
    }
    nd_tensor *r[8] = {&xc, &X, &mu, &C, &D, &sv, &Wf, &b};
    for (int i = 0; i < 8; i++)
        nd_tensor_release(r[i]);
    return L;
}

static void td_lin_check(int64_t N, int64_t in, int64_t out, int64_t B, double eps, int iters, int transposed)
{
    td_lin t = {N, in, out, B, eps, iters, {0}, {0}, {0}, {0}, {0}};
    if (transposed) {
        t.xbase = td_new(ND_DTYPE_F64, 2, in, N, 0, 0);
        td_fill(&t.xbase, 1.0);
        nd_tensor_view_of(&t.x, &t.xbase);
        nd_tensor_transpose(&t.x, 0, 1);
    } else {
        t.xbase = td_new(ND_DTYPE_F64, 2, N, in, 0, 0);
        td_fill(&t.xbase, 1.0);
        for (int64_t i = 0; i < N * in; i++)
            td_d(&t.xbase)[i] += 0.2 * (double)(i % 5);
        nd_tensor_view_of(&t.x, &t.xbase);
    }
    t.W = td_new(ND_DTYPE_F64, 2, out, in, 0, 0);
    td_fill(&t.W, 0.5);
    t.b0 = td_new(ND_DTYPE_F64, 1, out, 0, 0, 0);
    td_fill(&t.b0, 0.5);
    t.R = td_new(ND_DTYPE_F64, 2, N, out, 0, 0);
    td_fill(&t.R, 1.0);
    nd_tensor gx, GW = td_empty(), Gb0 = td_empty();
    td_lin_eval(&t, &gx, &GW, &Gb0);
    const double h = 1e-6, tol = 2e-6, sx = td_maxabs(td_d(&gx), N * in), sw = td_maxabs(td_d(&GW), out * in);
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < in; i++) {
            double *e = td_at(&t.x, n, i, 0, 0), v = *e;
            *e = v + h;
            double lp = td_lin_eval(&t, NULL, NULL, NULL);
            *e = v - h;
            double lm = td_lin_eval(&t, NULL, NULL, NULL);
            *e = v;
            TD_GRAD((lp - lm) / (2 * h), td_d(&gx)[n * in + i], sx, tol, &td_worst_lin);
        }
    for (int64_t i = 0; i < out * in; i++) {
        double *e = td_d(&t.W) + i, v = *e;
        *e = v + h;
        double lp = td_lin_eval(&t, NULL, NULL, NULL);
        *e = v - h;
        double lm = td_lin_eval(&t, NULL, NULL, NULL);
        *e = v;
        TD_GRAD((lp - lm) / (2 * h), td_d(&GW)[i], sw, tol, &td_worst_lin);
    }
    for (int64_t i = 0; i < out; i++) {
        double *e = td_d(&t.b0) + i, v = *e;
        *e = v + h;
        double lp = td_lin_eval(&t, NULL, NULL, NULL);
        *e = v - h;
        double lm = td_lin_eval(&t, NULL, NULL, NULL);
        *e = v;
        TD_GRAD((lp - lm) / (2 * h), td_d(&Gb0)[i], 0, tol, &td_worst_lin);
    }
    nd_tensor *r[8] = {&t.xbase, &t.x, &t.W, &t.b0, &t.R, &gx, &GW, &Gb0};
    for (int i = 0; i < 8; i++)
        nd_tensor_release(r[i]);
}

static void test_delinear(void)
{
    td_lin_check(5, 12, 3, 4, 1e-3, 5, 0); /* G = 3 contiguous blocks */
    td_lin_check(5, 12, 3, 4, 1e-5, 5, 1); /* transposed input, spec eps */
    td_lin_check(5, 8, 4, 8, 1e-3, 5, 0);  /* one block of 8 from 5 samples: rank-deficient */
    td_lin_check(4, 6, 2, 3, 1e-3, 15, 0);
}

/* ---- ChannelDeconv ---- */

typedef struct td_cd {
    int64_t B, s;
    double eps;
    int iters;
    nd_tensor xbase, x, R;
} td_cd;

static double td_cd_loss(td_cd *t)
{
    nd_tensor y = td_empty(), m1 = td_empty(), D = td_empty(), cov = td_empty(), sv = td_empty();
    double m2, v2, L = 0;
    ND_CHECK_OK(nd_channel_deconv_forward_cpu(&y, &m1, &D, &cov, &sv, &m2, &v2, &t->x, t->B, t->eps, t->iters, t->s));
    for (int64_t i = 0; i < nd_tensor_numel(&y); i++)
        L += td_d(&y)[i] * td_d(&t->R)[i];
    nd_tensor *r[5] = {&y, &m1, &D, &cov, &sv};
    for (int i = 0; i < 5; i++)
        nd_tensor_release(r[i]);
    return L;
}

/* x (N,C,H,W) (H = W = 0: a 2-d (N,C) input). Checks the forward against a naive reference,
 * apply() against the training forward, and the backward against finite differences. */
static void td_cd_check(int64_t N, int64_t C, int64_t H, int64_t W, int64_t B, int64_t s, int iters, int transposed)
{
    const int two_d = H == 0;
    const int64_t Hh = two_d ? 1 : H, Ww = two_d ? 1 : W, HW = Hh * Ww;
    td_cd t = {B, s, 1e-3, iters, {0}, {0}, {0}};
    if (two_d) {
        t.xbase = transposed ? td_new(ND_DTYPE_F64, 2, C, N, 0, 0) : td_new(ND_DTYPE_F64, 2, N, C, 0, 0);
    } else {
        t.xbase = transposed ? td_new(ND_DTYPE_F64, 4, N, C, W, H) : td_new(ND_DTYPE_F64, 4, N, C, H, W);
    }
    td_fill(&t.xbase, 1.0);
    for (int64_t i = 0; i < nd_tensor_numel(&t.xbase); i++)
        td_d(&t.xbase)[i] += 0.5; /* non-zero mean */
    nd_tensor_view_of(&t.x, &t.xbase);
    if (transposed) nd_tensor_transpose(&t.x, two_d ? 0 : 2, two_d ? 1 : 3);
    t.R = two_d ? td_new(ND_DTYPE_F64, 2, N, C, 0, 0) : td_new(ND_DTYPE_F64, 4, N, C, H, W);
    td_fill(&t.R, 1.0);
#define TD_X(n, c, p) (*td_at(&t.x, n, c, two_d ? 0 : (p) / Ww, two_d ? 0 : (p) % Ww))

    nd_tensor y = td_empty(), m1 = td_empty(), D = td_empty(), cov = td_empty(), sv = td_empty(), gx = td_empty();
    double m2, v2;
    ND_CHECK_OK(nd_channel_deconv_forward_cpu(&y, &m1, &D, &cov, &sv, &m2, &v2, &t.x, B, t.eps, iters, s));
    /* naive reference of the statistics */
    const int64_t cb = C / B, c = cb * B, ncol = cb * N * HW;
    const int64_t ss = (s > 1 && Hh >= s && Ww >= s) ? s * s : 1;
    double ref_m[16] = {0}, ref_c[256] = {0};
    int64_t ns = 0;
    for (int64_t col = 0; col < ncol; col += ss, ns++) {
        const int64_t j = col / (N * HW), n = (col / HW) % N, p = col % HW;
        for (int64_t a = 0; a < B; a++) {
            ref_m[a] += TD_X(n, a * cb + j, p);
            for (int64_t b = 0; b < B; b++)
                ref_c[a * B + b] += TD_X(n, a * cb + j, p) * TD_X(n, b * cb + j, p);
        }
    }
    double em = 0, ec = 0, ey = 0;
    for (int64_t a = 0; a < B; a++) {
        em = fmax(em, fabs(ref_m[a] / (double)ns - td_d(&m1)[a]));
        for (int64_t b = 0; b < B; b++) /* uncentred second moment */
            ec = fmax(ec, fabs(ref_c[a * B + b] / (double)ns + (a == b ? t.eps : 0) - td_d(&cov)[a * B + b]));
    }
    ND_CHECK(em < 1e-13 && ec < 1e-13);
    for (int64_t col = 0; col < ncol; col++) { /* y column = D (x column - mean1) */
        const int64_t j = col / (N * HW), n = (col / HW) % N, p = col % HW;
        for (int64_t a = 0; a < B; a++) {
            double r = 0;
            for (int64_t b = 0; b < B; b++)
                r += td_d(&D)[a * B + b] * (TD_X(n, b * cb + j, p) - td_d(&m1)[b]);
            ey = fmax(ey, fabs(r - td_d(&y)[(n * C + a * cb + j) * HW + p]));
        }
    }
    if (c < C) { /* leftover: scalar mean and unbiased variance of entries 0, ss, ... of each sample */
        double sum = 0, sq = 0;
        int64_t n2 = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t q = 0; q < (C - c) * HW; q += ss, n2++)
                sum += TD_X(n, c + q / HW, q % HW);
        const double mean = sum / (double)n2;
        for (int64_t n = 0; n < N; n++)
            for (int64_t q = 0; q < (C - c) * HW; q += ss)
                sq += pow(TD_X(n, c + q / HW, q % HW) - mean, 2);
        const double var = sq / (double)(n2 - 1);
        ND_CHECK_NEAR(m2, mean, 1e-13);
        ND_CHECK_NEAR(v2, var, 1e-13);
        for (int64_t n = 0; n < N; n++)
            for (int64_t q = 0; q < (C - c) * HW; q++)
                ey = fmax(ey, fabs((TD_X(n, c + q / HW, q % HW) - mean) / sqrt(var + t.eps) -
                                   td_d(&y)[(n * C + c) * HW + q]));
    }
    ND_CHECK(ey < 1e-12);
    /* eval path with the batch statistics == training path */
    nd_tensor ya = td_empty();
    ND_CHECK_OK(nd_channel_deconv_apply_cpu(&ya, &t.x, &m1, &D, m2, v2, t.eps));
    double ea = 0;
    for (int64_t i = 0; i < nd_tensor_numel(&y); i++)
        ea = fmax(ea, fabs(td_d(&ya)[i] - td_d(&y)[i]));
    ND_CHECK(ea < 1e-13);
    nd_tensor_release(&ya);
    /* backward vs finite differences */
    ND_CHECK_OK(nd_channel_deconv_backward_cpu(&gx, &t.R, &t.x, &m1, &D, &cov, &sv, m2, v2, B, t.eps, iters, s));
    const double h = 1e-6, sx = td_maxabs(td_d(&gx), nd_tensor_numel(&gx));
    for (int64_t n = 0; n < N; n++)
        for (int64_t cc = 0; cc < C; cc++)
            for (int64_t p = 0; p < HW; p++) {
                double *e = &TD_X(n, cc, p), v = *e;
                *e = v + h;
                double lp = td_cd_loss(&t);
                *e = v - h;
                double lm = td_cd_loss(&t);
                *e = v;
                TD_GRAD((lp - lm) / (2 * h), td_d(&gx)[(n * C + cc) * HW + p], sx, 2e-6, &td_worst_cd);
            }
#undef TD_X
    nd_tensor *r[9] = {&y, &m1, &D, &cov, &sv, &gx, &t.xbase, &t.x, &t.R};
    for (int i = 0; i < 9; i++)
        nd_tensor_release(r[i]);
}

static void test_channel_deconv(void)
{
    td_cd_check(3, 7, 4, 5, 3, 2, 5, 0); /* c = 6, one leftover channel, sampled (ss = 4) */
    td_cd_check(2, 8, 3, 3, 3, 3, 5, 1); /* two leftover channels, ss = 9, transposed x */
    td_cd_check(3, 6, 4, 4, 3, 1, 5, 0); /* no leftover, no sampling */
    td_cd_check(2, 6, 2, 5, 2, 3, 5, 0); /* H < s: all columns */
    td_cd_check(6, 5, 0, 0, 2, 3, 5, 0); /* 2-d input (N,C), leftover 1 */
    td_cd_check(7, 4, 0, 0, 4, 3, 15, 1);
}

/* ---- float32 against float64 ---- */

static nd_tensor td_to(const nd_tensor *t, nd_dtype dt)
{
    nd_tensor o;
    nd_tensor_clone(&o, t, dt);
    return o;
}

static double td_rel(const nd_tensor *a32, const nd_tensor *b64)
{
    nd_tensor a = td_to(a32, ND_DTYPE_F64);
    double num = 0, den = 0;
    for (int64_t i = 0; i < nd_tensor_numel(&a); i++) {
        num = fmax(num, fabs(td_d(&a)[i] - td_d(b64)[i]));
        den = fmax(den, fabs(td_d(b64)[i]));
    }
    nd_tensor_release(&a);
    return num / (den > 0 ? den : 1);
}

static void test_float32(void)
{
    td_chain_cfg cfg = {4, 8, 9, 9, 6, 3, 1, 1, 1, 2, 4, 1, 1e-5, 5, 1};
    td_chain ch;
    td_chain_init(&ch, &cfg);
    td_fwd f;
    ND_CHECK_OK(td_chain_stats(&ch, &f));
    nd_tensor x = td_to(&ch.x, ND_DTYPE_F32), W = td_to(&ch.W, ND_DTYPE_F32), b0 = td_to(&ch.b0, ND_DTYPE_F32);
    nd_tensor X, mu, C, D, sv, Wf, b;
    nd_tensor_init_empty(&X, ND_DTYPE_F32), nd_tensor_init_empty(&mu, ND_DTYPE_F32);
    nd_tensor_init_empty(&C, ND_DTYPE_F32), nd_tensor_init_empty(&D, ND_DTYPE_F32);
    nd_tensor_init_empty(&sv, ND_DTYPE_F32), nd_tensor_init_empty(&Wf, ND_DTYPE_F32);
    nd_tensor_init_empty(&b, ND_DTYPE_F32);
    ND_CHECK_OK(nd_deconv_im2col_cpu(&X, &x, &ch.g));
    ND_CHECK_OK(nd_deconv_cov_forward_cpu(&mu, &C, &X, 1, cfg.eps));
    ND_CHECK_OK(nd_isqrt_forward_cpu(&D, &sv, &C, cfg.iters));
    ND_CHECK_OK(nd_deconv_fold_forward_cpu(&Wf, &b, &W, &b0, &D, &mu, 1, ND_DECONV_STRIDED));
    ND_CHECK(td_rel(&X, &f.X) < 1e-7);
    ND_CHECK(td_rel(&mu, &f.mu) < 1e-6);
    ND_CHECK(td_rel(&C, &f.C) < 1e-5);
    ND_CHECK(td_rel(&D, &f.D) < 1e-4);
    ND_CHECK(td_rel(&Wf, &f.Wf) < 1e-4);
    ND_CHECK(td_rel(&b, &f.b) < 1e-4);
    /* backward pieces in float32 */
    nd_tensor GD64 = td_new(ND_DTYPE_F64, 2, f.D.size[0], f.D.size[1], 0, 0);
    td_fill(&GD64, 1.0);
    nd_tensor GD = td_to(&GD64, ND_DTYPE_F32), GC, GC64 = td_empty(), GX, GX64 = td_empty();
    nd_tensor_init_empty(&GC, ND_DTYPE_F32);
    nd_tensor_init_empty(&GX, ND_DTYPE_F32);
    ND_CHECK_OK(nd_isqrt_backward_cpu(&GC64, &GD64, &f.sv, &f.C, cfg.iters));
    ND_CHECK_OK(nd_isqrt_backward_cpu(&GC, &GD, &sv, &C, cfg.iters));
    ND_CHECK(td_rel(&GC, &GC64) < 1e-3);
    ND_CHECK_OK(nd_deconv_cov_backward_cpu(&GX64, &GC64, NULL, &f.X, &f.mu, 1));
    ND_CHECK_OK(nd_deconv_cov_backward_cpu(&GX, &GC, NULL, &X, &mu, 1));
    ND_CHECK(td_rel(&GX, &GX64) < 1e-3);
    nd_tensor *r[14] = {&x, &W, &b0, &X, &mu, &C, &D, &sv, &Wf, &b, &GD64, &GD, &GC, &GC64};
    for (int i = 0; i < 14; i++)
        nd_tensor_release(r[i]);
    nd_tensor_release(&GX);
    nd_tensor_release(&GX64);
    td_fwd_free(&f);
    td_chain_free(&ch);

    /* a rank-deficient 512 x 512 covariance from 128 rows (Delinear on VGG) with a large mean,
     * float32 against float64 */
    nd_tensor X64 = td_new(ND_DTYPE_F64, 2, 128, 512, 0, 0);
    td_fill(&X64, 1.0);
    for (int64_t i = 0; i < 128 * 512; i++)
        td_d(&X64)[i] += 30.0 + (double)(i % 7);
    nd_tensor X32 = td_to(&X64, ND_DTYPE_F32), m64 = td_empty(), C64 = td_empty(), D64 = td_empty(), m32, C32, D32;
    nd_tensor_init_empty(&m32, ND_DTYPE_F32), nd_tensor_init_empty(&C32, ND_DTYPE_F32);
    nd_tensor_init_empty(&D32, ND_DTYPE_F32);
    ND_CHECK_OK(nd_deconv_cov_forward_cpu(&m64, &C64, &X64, 1, 1e-5));
    ND_CHECK_OK(nd_deconv_cov_forward_cpu(&m32, &C32, &X32, 1, 1e-5));
    ND_CHECK_OK(nd_isqrt_forward_cpu(&D64, NULL, &C64, 5));
    ND_CHECK_OK(nd_isqrt_forward_cpu(&D32, NULL, &C32, 5));
    ND_CHECK(td_rel(&C32, &C64) < 1e-5);
    ND_CHECK(td_rel(&D32, &D64) < 1e-4);
    int finite = 1;
    for (int64_t i = 0; i < 512 * 512; i++)
        finite &= isfinite(((float *)nd_tensor_data(&D32))[i]) != 0;
    ND_CHECK(finite);
    nd_tensor *q[8] = {&X64, &X32, &m64, &C64, &D64, &m32, &C32, &D32};
    for (int i = 0; i < 8; i++)
        nd_tensor_release(q[i]);
}

/* ---- errors ---- */

static void test_errors(void)
{
    nd_tensor A = td_new(ND_DTYPE_F64, 2, 3, 4, 0, 0), D = td_empty();
    ND_CHECK(nd_isqrt_forward_cpu(&D, NULL, &A, 5) == ND_ERR_SHAPE);
    ND_CHECK(strstr(nd_error_message(), "isqrt") && strstr(nd_error_message(), "3x4"));
    nd_tensor Z = td_new(ND_DTYPE_F64, 2, 3, 3, 0, 0);
    ND_CHECK(nd_isqrt_forward_cpu(&D, NULL, &Z, 5) == ND_ERR_NUMERIC);
    nd_tensor x = td_new(ND_DTYPE_F64, 4, 2, 6, 5, 5), X = td_empty();
    nd_deconv_geom g = {3, 1, 1, 2, 4, 1}; /* 6 planes do not split into blocks of 4 */
    ND_CHECK(nd_deconv_im2col_cpu(&X, &x, &g) == ND_ERR_SHAPE);
    ND_CHECK(strstr(nd_error_message(), "deconv_im2col") && strstr(nd_error_message(), "2x6x5x5"));
    nd_tensor W = td_new(ND_DTYPE_F64, 4, 4, 6, 3, 3), Df = td_new(ND_DTYPE_F64, 2, 5, 5, 0, 0);
    nd_tensor mu = td_new(ND_DTYPE_F64, 1, 5, 0, 0, 0), Wf = td_empty(), b = td_empty();
    ND_CHECK(nd_deconv_fold_forward_cpu(&Wf, &b, &W, NULL, &Df, &mu, 1, ND_DECONV_STRIDED) == ND_ERR_SHAPE);
    ND_CHECK(strstr(nd_error_message(), "deconv_fold") && strstr(nd_error_message(), "4x6x3x3"));
    nd_tensor y = td_empty(), m1 = td_empty(), cov = td_empty(), sv = td_empty();
    double m2, v2;
    nd_tensor x3 = td_new(ND_DTYPE_F64, 3, 2, 6, 5, 0);
    ND_CHECK(nd_channel_deconv_forward_cpu(&y, &m1, &D, &cov, &sv, &m2, &v2, &x3, 3, 1e-3, 5, 3) == ND_ERR_SHAPE);
    ND_CHECK(strstr(nd_error_message(), "channel_deconv") != NULL);
    nd_tensor *r[12] = {&A, &D, &Z, &x, &X, &W, &Df, &mu, &Wf, &b, &x3, &y};
    for (int i = 0; i < 12; i++)
        nd_tensor_release(r[i]);
    nd_tensor_release(&m1);
    nd_tensor_release(&cov);
    nd_tensor_release(&sv);
}

void nd_test_deconv(void)
{
    int64_t before = nd_storage_bytes_cpu();
    test_isqrt_vs_eigen();
    test_isqrt_saturation();
    test_isqrt_batched();
    test_isqrt_backward();
    test_isqrt_eig();
    test_im2col();
    test_chain_gradients();
    test_forward_equivalence();
    test_delinear();
    test_channel_deconv();
    test_float32();
    test_errors();
    ND_CHECK(nd_storage_bytes_cpu() == before); /* every tensor released */
    printf("  deconv max errors (|fd-an|/(1+max|grad|)): isqrt %.2g, fastdeconv %.2g, delinear %.2g, "
           "channeldeconv %.2g; folded-conv equivalence %.2g\n",
           td_worst_ns, td_worst_chain, td_worst_lin, td_worst_cd, td_worst_eq);
}
