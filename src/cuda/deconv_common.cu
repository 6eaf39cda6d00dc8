/* Helpers shared by the CUDA deconvolution kernels (declared in deconv_common.cuh): argument
 * checks and outputs, a row-major cuBLAS product, deterministic column sums in double, and the
 * chunked Gram matrices X^T X with double accumulation across chunks. */
#include <math.h>

#include "deconv_common.cuh"
#include "nd_cuda_math.h"

extern "C" nd_status nd_dc_alloc_(void **p, int64_t nbytes)
{
    return nd_cuda_buffer_alloc(p, nbytes);
}

extern "C" void nd_dc_free_(void *p, int64_t nbytes)
{
    if (p) nd_cuda_buffer_free(p, nbytes);
}

extern "C" nd_status nd_dc_check_float_(const char *op, const char *what, const nd_tensor *t, int dtype)
{
    return nd_deconv_check_float_on(ND_DEVICE_CUDA, op, what, t, dtype);
}

extern "C" nd_status nd_dc_prepare_out_(const char *op, const char *what, nd_tensor *out, nd_dtype dt, int ndim,
                                        const int64_t *size, nd_device dev)
{
    if (!out->storage) {
        nd_tensor_release(out);
        return nd_tensor_new(out, dt, ndim, size, dev, 0);
    }
    char s[ND_SHAPE_STR_MAX];
    ND_TRY(nd_dc_check_float_(op, what, out, (int)dt));
    if (nd_tensor_device(out).index != dev.index)
        return ND_ERROR(ND_ERR_DEVICE, "%s: output %s is on cuda:%d, the inputs on cuda:%d", op, what,
                        nd_tensor_device(out).index, dev.index);
    ND_TRY(nd_deconv_check_shape_(op, what, out, ndim, size));
    if (!nd_tensor_is_contiguous(out))
        return ND_ERROR(ND_ERR_ARG, "%s: output %s must be contiguous (%s)", op, what,
                        nd_tensor_shape_str(out, s, sizeof s));
    return ND_OK;
}

extern "C" nd_status nd_dc_gemm_(nd_dtype dt, int ta, int tb, int64_t m, int64_t n, int64_t k, double alpha,
                                 const void *A, int64_t lda, int64_t sA, const void *B, int64_t ldb, int64_t sB,
                                 double beta, void *C, int64_t ldc, int64_t sC, int64_t batch)
{
    if (m <= 0 || n <= 0 || batch <= 0) return ND_OK;
    if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX || lda > INT32_MAX || ldb > INT32_MAX || ldc > INT32_MAX ||
        batch > INT32_MAX)
        return ND_ERROR(ND_ERR_SHAPE, "deconv (cuda): matrix product %lldx%lldx%lld too large for cuBLAS", (long long)m,
                        (long long)n, (long long)k);
    cublasHandle_t h;
    ND_TRY(nd_cuda_cublas(&h));
    cublasMath_t old_math;
    cublasPointerMode_t old_ptr;
    ND_CUBLAS_TRY(cublasGetMathMode(h, &old_math));
    ND_CUBLAS_TRY(cublasGetPointerMode(h, &old_ptr));
    cublasSetMathMode(h, CUBLAS_DEFAULT_MATH);
    cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST);
    /* row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands */
    const cublasOperation_t oa = tb ? CUBLAS_OP_T : CUBLAS_OP_N, ob = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    const int M = (int)n, N = (int)m, K = (int)(k > 0 ? k : 0);
    cublasStatus_t r;
    if (dt == ND_DTYPE_F32 && nd_cuda_get_tf32()) { /* core.cudatf32(true) / ND_CUDA_TF32=1: tensor cores */
        const float a = (float)alpha, b = (float)beta;
        r = cublasGemmStridedBatchedEx(h, oa, ob, M, N, K, &a, B, CUDA_R_32F, (int)ldb, batch == 1 ? 0 : sB, A,
                                       CUDA_R_32F, (int)lda, batch == 1 ? 0 : sA, &b, C, CUDA_R_32F, (int)ldc,
                                       batch == 1 ? 0 : sC, (int)batch, CUBLAS_COMPUTE_32F_FAST_TF32,
                                       CUBLAS_GEMM_DEFAULT);
    } else if (dt == ND_DTYPE_F32) {
        const float a = (float)alpha, b = (float)beta;
        if (batch == 1)
            r = cublasSgemm(h, oa, ob, M, N, K, &a, (const float *)B, (int)ldb, (const float *)A, (int)lda, &b,
                            (float *)C, (int)ldc);
        else
            r = cublasSgemmStridedBatched(h, oa, ob, M, N, K, &a, (const float *)B, (int)ldb, sB, (const float *)A,
                                          (int)lda, sA, &b, (float *)C, (int)ldc, sC, (int)batch);
    } else {
        const double a = alpha, b = beta;
        if (batch == 1)
            r = cublasDgemm(h, oa, ob, M, N, K, &a, (const double *)B, (int)ldb, (const double *)A, (int)lda, &b,
                            (double *)C, (int)ldc);
        else
            r = cublasDgemmStridedBatched(h, oa, ob, M, N, K, &a, (const double *)B, (int)ldb, sB, (const double *)A,
                                          (int)lda, sA, &b, (double *)C, (int)ldc, sC, (int)batch);
    }
    cublasSetMathMode(h, old_math);
    cublasSetPointerMode(h, old_ptr);
    if (r != CUBLAS_STATUS_SUCCESS)
        return ND_ERROR(ND_ERR_DEVICE, "deconv (cuda): cuBLAS product %lldx%lldx%lld (batch %lld) failed: %s",
                        (long long)m, (long long)n, (long long)k, (long long)batch, cublasGetStatusString(r));
    return ND_OK;
}

/* Column sums, pass 1: block (32, 8) sums 32 columns over rows [by*rpb, (by+1)*rpb). */
template <typename T>
__global__ void nd_dc_colsum_part(double *part, const T *X, int64_t rows, int64_t ld, int64_t cols, int64_t rpb)
{
    __shared__ double sh[8][33];
    const int64_t c = (int64_t)blockIdx.x * 32 + threadIdx.x;
    const int64_t r0 = (int64_t)blockIdx.y * rpb, r1 = r0 + rpb < rows ? r0 + rpb : rows;
    double acc = 0;
    if (c < cols)
        for (int64_t r = r0 + threadIdx.y; r < r1; r += 8)
            acc += (double)X[r * ld + c];
    sh[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        double t = 0;
        for (int i = 0; i < 8; i++)
            t += sh[i][threadIdx.x];
        part[(int64_t)blockIdx.y * cols + c] = t;
    }
}

/* Pass 2: sum[c] = sign * the chunk partials, in chunk order. */
__global__ void nd_dc_colsum_fin(double *sum, const double *part, int64_t nch, int64_t cols, double sign)
{
    for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < cols; c += (int64_t)gridDim.x * blockDim.x) {
        double t = 0;
        for (int64_t i = 0; i < nch; i++)
            t += part[i * cols + c];
        sum[c] = sign * t;
    }
}

extern "C" nd_status nd_dc_colsum_(nd_dtype dt, double *sum, const void *X, int64_t rows, int64_t ld, int64_t cols,
                                   double sign)
{
    if (cols <= 0) return ND_OK;
    cudaStream_t st = nd_cuda_stream();
    int64_t rpb = (rows + 1023) / 1024;
    if (rpb < 256) rpb = 256;
    const int64_t nch = rows > 0 ? (rows + rpb - 1) / rpb : 1;
    double *part;
    ND_TRY(nd_dc_alloc_((void **)&part, (int64_t)sizeof(double) * nch * cols));
    dim3 grid((unsigned)((cols + 31) / 32), (unsigned)nch), block(32, 8);
    if (rows <= 0)
        cudaMemsetAsync(part, 0, sizeof(double) * (size_t)(nch * cols), st);
    else if (dt == ND_DTYPE_F32)
        nd_dc_colsum_part<float><<<grid, block, 0, st>>>(part, (const float *)X, rows, ld, cols, rpb);
    else
        nd_dc_colsum_part<double><<<grid, block, 0, st>>>(part, (const double *)X, rows, ld, cols, rpb);
    nd_dc_colsum_fin<<<nd_cuda_blocks(cols), ND_DC_THREADS, 0, st>>>(sum, part, nch, cols, sign);
    cudaError_t e = cudaGetLastError();
    nd_dc_free_(part, (int64_t)sizeof(double) * nch * cols);
    if (e != cudaSuccess) return ND_ERROR(ND_ERR_DEVICE, "deconv (cuda): column sums: %s", cudaGetErrorString(e));
    return ND_OK;
}

/* C[j][a][b] = (sum over chunks of part[c][j][lo][hi]) / div + eps [a == b], lo/hi = min/max(a, b). */
template <typename T>
__global__ void nd_dc_gram_fin(T *C, const T *part, int64_t nch, int64_t ng, int64_t F, double div, double eps)
{
    const int64_t FF = F * F, n = ng * FF;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t j = i / FF, a = (i % FF) / F, b = i % F, lo = a < b ? a : b, hi = a < b ? b : a;
        double t = 0;
        for (int64_t c = 0; c < nch; c++)
            t += (double)part[(c * ng + j) * FF + lo * F + hi];
        C[i] = (T)(t / div + (a == b ? eps : 0.0));
    }
}

extern "C" nd_status nd_dc_gram_(nd_dtype dt, void *C, const void *A, int64_t rows, int64_t ld, int64_t ng, int64_t F,
                                 double div, double eps)
{
    const int64_t R = ND_DECONV_CHUNK, FF = F * F, nch = rows > 0 ? (rows + R - 1) / R : 1;
    const size_t es = nd_dtype_size(dt);
    const int64_t pbytes = (int64_t)es * nch * ng * FF;
    void *part;
    ND_TRY(nd_dc_alloc_(&part, pbytes));
    const char *a = (const char *)A;
    char *p = (char *)part;
    nd_status st = ND_OK;
    if (rows <= 0) {
        cudaMemsetAsync(part, 0, (size_t)pbytes, nd_cuda_stream());
    } else if (ng == 1) { /* the full chunks in one batched call, then the remainder */
        const int64_t full = rows / R, rem = rows - full * R;
        if (full > 0) st = nd_dc_gemm_(dt, 1, 0, F, F, R, 1.0, a, ld, R * ld, a, ld, R * ld, 0.0, p, F, FF, full);
        if (st == ND_OK && rem > 0)
            st = nd_dc_gemm_(dt, 1, 0, F, F, rem, 1.0, a + es * (size_t)(full * R * ld), ld, 0,
                             a + es * (size_t)(full * R * ld), ld, 0, 0.0, p + es * (size_t)(full * FF), F, FF, 1);
    } else { /* chunk by chunk, the groups batched */
        for (int64_t c = 0; c < nch && st == ND_OK; c++) {
            const int64_t rr = rows - c * R < R ? rows - c * R : R;
            const char *ac = a + es * (size_t)(c * R * ld);
            st = nd_dc_gemm_(dt, 1, 0, F, F, rr, 1.0, ac, ld, F, ac, ld, F, 0.0, p + es * (size_t)(c * ng * FF), F, FF,
                             ng);
        }
    }
    if (st == ND_OK) {
        cudaStream_t s = nd_cuda_stream();
        if (dt == ND_DTYPE_F32)
            nd_dc_gram_fin<float><<<nd_cuda_blocks(ng * FF), ND_DC_THREADS, 0, s>>>((float *)C, (const float *)part,
                                                                                    nch, ng, F, div, eps);
        else
            nd_dc_gram_fin<double><<<nd_cuda_blocks(ng * FF), ND_DC_THREADS, 0, s>>>((double *)C, (const double *)part,
                                                                                     nch, ng, F, div, eps);
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) st = ND_ERROR(ND_ERR_DEVICE, "deconv (cuda): gram: %s", cudaGetErrorString(e));
    }
    nd_dc_free_(part, pbytes);
    return st;
}
