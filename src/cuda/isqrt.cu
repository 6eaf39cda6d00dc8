/* Newton-Schulz inverse square root on the GPU with its stored-iterate backward (spec sections 1
 * and 3.4), batched over g matrices: every product is one cublas?gemmStridedBatched call over the
 * batch, the Frobenius norms and the dot products of the backward are block reductions in
 * double, and the per-matrix scalars (s, sqrt s, the gradient of s) stay on the device: nothing
 * here waits for the GPU.
 *
 * `saved` (3n+2 slots of d x d per matrix, (d,d) -> (3n+2,d,d), (g,d,d) -> (g,3n+2,d,d)) holds
 * the CPU's iterate-path layout (nd_cpu_deconv.h): Y_k at slot k, Z_k at n+k, T_k at 2n+1+k,
 * s = ||A||_F at element [0][0] of slot 3n+1 (the rest zero). Matrix b's slot q starts at
 * (b*(3n+2) + q)*d*d, so one slot across the batch is a strided batch of stride (3n+2)*d*d.
 * Row-major products go through nd_dc_gemm_ (deconv.cu). */
#include <math.h>

#include "deconv_common.cuh"

#define ND_IS_T 256

/* dst_b = alpha src_b + beta I for b < g (src NULL: alpha src = 0); element strides sd, ss
 * between consecutive matrices. */
template <typename T>
__global__ void nd_is_axpi_k(T *dst, int64_t sd, const T *src, int64_t ss, double alpha, double beta, int64_t g,
                             int64_t d)
{
    const int64_t dd = d * d, n = g * dd;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t b = i / dd, e = i % dd;
        T v = src ? (T)(alpha * (double)src[b * ss + e]) : (T)0;
        if (e / d == e % d) v += (T)beta;
        dst[b * sd + e] = v;
    }
}

/* out[b] = sum_e x[b*sx + e] * y[b*sy + e] (double), one block per matrix (blockDim ND_IS_T). */
template <typename T>
__global__ void nd_is_dot_k(double *out, const T *x, int64_t sx, const T *y, int64_t sy, int64_t dd)
{
    __shared__ double sh[ND_IS_T];
    const int64_t b = blockIdx.x;
    double acc = 0;
    for (int64_t e = threadIdx.x; e < dd; e += blockDim.x)
        acc += (double)x[b * sx + e] * (double)y[b * sy + e];
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w /= 2) {
        if ((int)threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[b] = sh[0];
}

/* Forward start, matrix b: s = sqrt(norm2[b]); Y_0 = A/s (when n > 0), Z_0 = I, the s slot. */
template <typename T> __global__ void nd_is_start_k(T *sv, const T *A, const double *norm2, int64_t g, int64_t d, int n)
{
    const int64_t dd = d * d, slots = 3 * (int64_t)n + 2, total = g * dd;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t b = i / dd, e = i % dd;
        const double s = sqrt(norm2[b]);
        T *m = sv + b * slots * dd;
        if (n > 0) m[e] = (T)((double)A[b * dd + e] / s);
        m[(int64_t)n * dd + e] = e / d == e % d ? (T)1 : (T)0;
        m[(3 * (int64_t)n + 1) * dd + e] = e == 0 ? (T)s : (T)0;
    }
}

/* D_b = Z_n / sqrt(s_b). */
template <typename T>
__global__ void nd_is_finish_k(T *D, const T *sv, const double *norm2, int64_t g, int64_t d, int n)
{
    const int64_t dd = d * d, slots = 3 * (int64_t)n + 2, total = g * dd;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t b = i / dd, e = i % dd;
        const double r = 1.0 / sqrt(sqrt(norm2[b]));
        D[i] = (T)((double)sv[b * slots * dd + (2 * (int64_t)n) * dd + e] * r);
    }
}

/* s of matrix b as saved (the forward rounded it to T, as the CPU). */
template <typename T> __device__ __forceinline__ double nd_is_saved_s(const T *sv, int64_t b, int64_t dd, int n)
{
    const int64_t slots = 3 * (int64_t)n + 2;
    return (double)sv[b * slots * dd + (3 * (int64_t)n + 1) * dd];
}

/* Backward start: GZ = GD / sqrt(s), GY = 0. */
template <typename T>
__global__ void nd_is_bstart_k(T *GZ, T *GY, const T *GD, const T *sv, int64_t g, int64_t d, int n)
{
    const int64_t dd = d * d, total = g * dd;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const double s = nd_is_saved_s(sv, i / dd, dd, n);
        GZ[i] = (T)((double)GD[i] / sqrt(s));
        GY[i] = 0;
    }
}

/* GA = GY/s + (gs/s) A with gs = -0.5 <GD, Z_n> / (sqrt(s) s) - <GY, A> / s^2. */
template <typename T>
__global__ void nd_is_bfinish_k(T *GA, const T *GY, const T *A, const T *sv, const double *gdz, const double *gya,
                                int64_t g, int64_t d, int n)
{
    const int64_t dd = d * d, total = g * dd;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t b = i / dd;
        const double s = nd_is_saved_s(sv, b, dd, n);
        const double gs = -0.5 * gdz[b] * (1.0 / sqrt(s)) / s - gya[b] / (s * s);
        GA[i] = (T)((double)GY[i] / s + (gs / s) * (double)A[i]);
    }
}

/* Checks A and returns the batch g and size d (isqrt.c's rules and messages). */
static nd_status nd_is_check(const char *op, const nd_tensor *A, int iters, int64_t *g, int64_t *d)
{
    char s[ND_SHAPE_STR_MAX];
    ND_TRY(nd_dc_check_float_(op, "A", A, -1));
    if ((A->ndim != 2 && A->ndim != 3) || A->size[A->ndim - 1] != A->size[A->ndim - 2] || A->size[A->ndim - 1] < 1)
        return ND_ERROR(ND_ERR_SHAPE, "%s: expected square matrices A of shape (d,d) or (g,d,d), got %s", op,
                        nd_tensor_shape_str(A, s, sizeof s));
    if (iters < 0 || iters > 1000) return ND_ERROR(ND_ERR_ARG, "%s: iterations must be in 0..1000, got %d", op, iters);
    *g = A->ndim == 3 ? A->size[0] : 1;
    *d = A->size[A->ndim - 1];
    return ND_OK;
}

static int nd_is_saved_shape(const nd_tensor *A, int iters, int64_t *size)
{
    const int b = A->ndim == 3;
    if (b) size[0] = A->size[0];
    size[b] = nd_isqrt_saved_slots(iters);
    size[b + 1] = size[b + 2] = A->size[A->ndim - 1];
    return 3 + b;
}

/* The forward iterations on sv (g matrices' slots); norm2 (g doubles) = ||A_b||_F^2. */
template <typename T>
static nd_status nd_is_forward_run(T *D, T *sv, const T *A, double *norm2, int64_t g, int64_t d, int n)
{
    const nd_dtype dt = sizeof(T) == 4 ? ND_DTYPE_F32 : ND_DTYPE_F64;
    const int64_t dd = d * d, S = (3 * (int64_t)n + 2) * dd; /* batch stride of one slot */
    cudaStream_t st = nd_cuda_stream();
    const unsigned nb = nd_cuda_blocks(g * dd);
    nd_is_dot_k<T><<<(unsigned)g, ND_IS_T, 0, st>>>(norm2, A, dd, A, dd, dd);
    nd_is_start_k<T><<<nb, ND_IS_T, 0, st>>>(sv, A, norm2, g, d, n);
#define ND_IS_SLOT(q) (sv + (int64_t)(q)*dd)
    for (int k = 0; k < n; k++) {
        T *Y = ND_IS_SLOT(k), *Z = ND_IS_SLOT(n + k), *Tk = ND_IS_SLOT(2 * n + 1 + k);
        if (k == 0) { /* Z_0 = I: T_0 = 1.5 I - 0.5 Y_0, Z_1 = T_0 */
            nd_is_axpi_k<T><<<nb, ND_IS_T, 0, st>>>(Tk, S, Y, S, -0.5, 1.5, g, d);
        } else { /* T_k = 1.5 I - 0.5 Z_k Y_k */
            nd_is_axpi_k<T><<<nb, ND_IS_T, 0, st>>>(Tk, S, NULL, 0, 0.0, 1.5, g, d);
            ND_TRY(nd_dc_gemm_(dt, 0, 0, d, d, d, -0.5, Z, d, S, Y, d, S, 1.0, Tk, d, S, g));
        }
        if (k + 1 < n) ND_TRY(nd_dc_gemm_(dt, 0, 0, d, d, d, 1.0, Y, d, S, Tk, d, S, 0.0, ND_IS_SLOT(k + 1), d, S, g));
        if (k == 0)
            nd_is_axpi_k<T><<<nb, ND_IS_T, 0, st>>>(ND_IS_SLOT(n + 1), S, Tk, S, 1.0, 0.0, g, d);
        else
            ND_TRY(nd_dc_gemm_(dt, 0, 0, d, d, d, 1.0, Tk, d, S, Z, d, S, 0.0, ND_IS_SLOT(n + k + 1), d, S, g));
    }
#undef ND_IS_SLOT
    nd_is_finish_k<T><<<nb, ND_IS_T, 0, st>>>(D, sv, norm2, g, d, n);
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}

/* The backward recursion; work holds 5 g*d*d matrices, dots 2g doubles. */
template <typename T>
static nd_status nd_is_backward_run(T *GA, const T *GD, const T *sv, const T *A, T *work, double *dots, int64_t g,
                                    int64_t d, int n)
{
    const nd_dtype dt = sizeof(T) == 4 ? ND_DTYPE_F32 : ND_DTYPE_F64;
    const int64_t dd = d * d, S = (3 * (int64_t)n + 2) * dd, W = dd, gd = g * dd;
    cudaStream_t st = nd_cuda_stream();
    const unsigned nb = nd_cuda_blocks(gd);
    T *GY = work, *GZ = work + gd, *GT = work + 2 * gd, *GYn = work + 3 * gd, *GZn = work + 4 * gd;
    nd_is_bstart_k<T><<<nb, ND_IS_T, 0, st>>>(GZ, GY, GD, sv, g, d, n);
    nd_is_dot_k<T><<<(unsigned)g, ND_IS_T, 0, st>>>(dots, GD, dd, sv + (int64_t)(2 * n) * dd, S, dd); /* <GD, Z_n> */
    for (int k = n - 1; k >= 0; k--) {
        const T *Yk = sv + (int64_t)k * dd, *Zk = sv + (int64_t)(n + k) * dd, *Tk = sv + (int64_t)(2 * n + 1 + k) * dd;
        /* GT = Y_k^T GY + GZ Z_k^T (GY = 0 on the first step; Z_0 = I) */
        if (k == 0)
            nd_is_axpi_k<T><<<nb, ND_IS_T, 0, st>>>(GT, W, GZ, W, 1.0, 0.0, g, d);
        else
            ND_TRY(nd_dc_gemm_(dt, 0, 1, d, d, d, 1.0, GZ, d, W, Zk, d, S, 0.0, GT, d, W, g));
        if (k < n - 1) ND_TRY(nd_dc_gemm_(dt, 1, 0, d, d, d, 1.0, Yk, d, S, GY, d, W, 1.0, GT, d, W, g));
        /* GY' = GY T_k^T - 0.5 Z_k^T GT */
        if (k == 0)
            nd_is_axpi_k<T><<<nb, ND_IS_T, 0, st>>>(GYn, W, GT, W, -0.5, 0.0, g, d);
        else
            ND_TRY(nd_dc_gemm_(dt, 1, 0, d, d, d, -0.5, Zk, d, S, GT, d, W, 0.0, GYn, d, W, g));
        if (k < n - 1) ND_TRY(nd_dc_gemm_(dt, 0, 1, d, d, d, 1.0, GY, d, W, Tk, d, S, 1.0, GYn, d, W, g));
        /* GZ' = T_k^T GZ - 0.5 GT Y_k^T (not needed for k = 0: Z_0 = I is constant) */
        if (k > 0) {
            ND_TRY(nd_dc_gemm_(dt, 1, 0, d, d, d, 1.0, Tk, d, S, GZ, d, W, 0.0, GZn, d, W, g));
            ND_TRY(nd_dc_gemm_(dt, 0, 1, d, d, d, -0.5, GT, d, W, Yk, d, S, 1.0, GZn, d, W, g));
        }
        T *t = GY;
        GY = GYn;
        GYn = t;
        t = GZ;
        GZ = GZn;
        GZn = t;
    }
    nd_is_dot_k<T><<<(unsigned)g, ND_IS_T, 0, st>>>(dots + g, GY, dd, A, dd, dd); /* <GY_0, A> */
    nd_is_bfinish_k<T><<<nb, ND_IS_T, 0, st>>>(GA, GY, A, sv, dots, dots + g, g, d, n);
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}

static nd_status nd_is_forward_impl(nd_tensor *D, nd_tensor *saved, const nd_tensor *A, int iters)
{
    const char *op = "isqrt";
    int64_t g, d, ssize[4];
    ND_TRY(nd_is_check(op, A, iters, &g, &d));
    const nd_device dev = nd_tensor_device(A);
    const nd_dtype dt = A->dtype;
    ND_TRY(nd_dc_prepare_out_(op, "D", D, dt, A->ndim, A->size, dev));
    const int sdim = nd_is_saved_shape(A, iters, ssize);
    if (saved) ND_TRY(nd_dc_prepare_out_(op, "saved", saved, dt, sdim, ssize, dev));
    nd_dc_scratch sc = {};
    const nd_tensor *a;
    void *sv = saved ? nd_tensor_data(saved) : NULL;
    double *norm2 = NULL;
    const int64_t dd = d * d, es = (int64_t)nd_dtype_size(dt);
    nd_status st = nd_dc_contig(&sc, A, &a);
    if (st == ND_OK && !sv) st = nd_dc_buffer(&sc, &sv, es * g * nd_isqrt_saved_slots(iters) * dd);
    if (st == ND_OK) st = nd_dc_buffer(&sc, (void **)&norm2, (int64_t)sizeof(double) * g);
    if (st == ND_OK) {
        if (dt == ND_DTYPE_F32)
            st = nd_is_forward_run<float>((float *)nd_tensor_data(D), (float *)sv, (const float *)nd_tensor_data(a),
                                          norm2, g, d, iters);
        else
            st = nd_is_forward_run<double>((double *)nd_tensor_data(D), (double *)sv, (const double *)nd_tensor_data(a),
                                           norm2, g, d, iters);
    }
    nd_dc_scratch_release(&sc);
    return st;
}

static nd_status nd_is_backward_impl(nd_tensor *GA, const nd_tensor *GD, const nd_tensor *saved, const nd_tensor *A,
                                     int iters)
{
    const char *op = "isqrt_backward";
    int64_t g, d, ssize[4];
    ND_TRY(nd_is_check(op, A, iters, &g, &d));
    const nd_dtype dt = A->dtype;
    ND_TRY(nd_dc_check_float_(op, "GD", GD, (int)dt));
    ND_TRY(nd_deconv_check_shape_(op, "GD", GD, A->ndim, A->size));
    ND_TRY(nd_dc_check_float_(op, "saved", saved, (int)dt));
    const int sdim = nd_is_saved_shape(A, iters, ssize);
    ND_TRY(nd_deconv_check_shape_(op, "saved (for this A and iteration count)", saved, sdim, ssize));
    const nd_tensor *ts[3] = {A, GD, saved};
    ND_TRY(nd_cuda_check_device(op, 3, ts));
    ND_TRY(nd_dc_prepare_out_(op, "GA", GA, dt, A->ndim, A->size, nd_tensor_device(A)));
    nd_dc_scratch sc = {};
    const nd_tensor *a, *gd, *sv;
    void *work = NULL;
    double *dots = NULL;
    const int64_t dd = d * d, es = (int64_t)nd_dtype_size(dt);
    nd_status st = nd_dc_contig(&sc, A, &a);
    if (st == ND_OK) st = nd_dc_contig(&sc, GD, &gd);
    if (st == ND_OK) st = nd_dc_contig(&sc, saved, &sv);
    if (st == ND_OK) st = nd_dc_buffer(&sc, &work, es * 5 * g * dd);
    if (st == ND_OK) st = nd_dc_buffer(&sc, (void **)&dots, (int64_t)sizeof(double) * 2 * g);
    if (st == ND_OK) {
        if (dt == ND_DTYPE_F32)
            st = nd_is_backward_run<float>((float *)nd_tensor_data(GA), (const float *)nd_tensor_data(gd),
                                           (const float *)nd_tensor_data(sv), (const float *)nd_tensor_data(a),
                                           (float *)work, dots, g, d, iters);
        else
            st = nd_is_backward_run<double>((double *)nd_tensor_data(GA), (const double *)nd_tensor_data(gd),
                                            (const double *)nd_tensor_data(sv), (const double *)nd_tensor_data(a),
                                            (double *)work, dots, g, d, iters);
    }
    nd_dc_scratch_release(&sc);
    return st;
}

extern "C" nd_status nd_isqrt_forward_cuda(nd_tensor *D, nd_tensor *saved, const nd_tensor *A, int iters)
{
    ND_DC_ON_DEVICE(A, nd_is_forward_impl(D, saved, A, iters));
}

extern "C" nd_status nd_isqrt_backward_cuda(nd_tensor *GA, const nd_tensor *GD, const nd_tensor *saved,
                                            const nd_tensor *A, int iters)
{
    ND_DC_ON_DEVICE(A, nd_is_backward_impl(GA, GD, saved, A, iters));
}
