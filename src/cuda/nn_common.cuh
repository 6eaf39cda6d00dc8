/* Internal helpers of the CUDA nn kernels (conv.cu pool.cu act.cu norm.cu loss.cu): argument
 * checks mirroring nd_cpu_nn.h's (on the GPU), strided element access, contiguous copies and
 * block reductions. Not part of the API. */
#ifndef ND_CUDA_NN_COMMON_CUH
#define ND_CUDA_NN_COMMON_CUH

#include "common.cuh"
#include "nd_cuda_nn.h"

/* ---- argument checks (same messages as the CPU ones) ---- */

/* nd_cpu_nn.h's checks (same messages) with the tensors on the GPU. */
static inline nd_status nd_cn_check_float(const char *op, const char *what, const nd_tensor *t, int dt)
{
    return nd_nn_check_float_on(ND_DEVICE_CUDA, op, what, t, dt);
}
static inline nd_status nd_cn_check_out(const char *op, const char *what, const nd_tensor *t, nd_dtype dt, int ndim,
                                        const int64_t *size, int contig)
{
    return nd_nn_check_out_on(ND_DEVICE_CUDA, op, what, t, dt, ndim, size, contig);
}
static inline nd_status nd_cn_check_vec(const char *op, const char *what, const nd_tensor *t, nd_dtype dt, int64_t n,
                                        int64_t *stride)
{
    return nd_nn_check_vec_on(ND_DEVICE_CUDA, op, what, t, dt, n, stride);
}

/* Aliasing: nd_nn_check_alias (nd_cpu_nn.h) is device-agnostic; this takes a list. */
static inline nd_status nd_cn_check_alias(const char *op, const char *what, const nd_tensor *out, int allow_same,
                                          const nd_tensor *a, const nd_tensor *b = NULL, const nd_tensor *c = NULL,
                                          const nd_tensor *d = NULL, const nd_tensor *e = NULL)
{
    const nd_tensor *ts[5] = {a, b, c, d, e};
    return nd_nn_check_alias(op, what, out, allow_same, 5, ts);
}

/* ---- strided access ---- */

#define ND_CN_MAX_OPS 4

/* Up to 4 operands of one shape, each with its strides (in elements), dims merged where every
 * operand allows it. Passed to kernels by value. */
typedef struct nd_cn_iter {
    int ndim, nops;
    int64_t n; /* element count */
    int64_t size[ND_MAX_DIMS];
    int64_t stride[ND_CN_MAX_OPS][ND_MAX_DIMS];
    int contig; /* every operand contiguous: offset = index */
} nd_cn_iter;

/* Builds the iteration over ts[0..nops) (all of ts[0]'s shape; nd_tensor_numel equal). */
void nd_cn_iter_init(nd_cn_iter *it, int nops, const nd_tensor *const *ts);

/* Offsets of linear element i (row-major order) in every operand. */
__device__ __forceinline__ void nd_cn_offsets(const nd_cn_iter &it, int64_t i, int64_t *off)
{
    if (it.contig) {
        for (int k = 0; k < it.nops; k++)
            off[k] = i;
        return;
    }
    for (int k = 0; k < it.nops; k++)
        off[k] = 0;
    for (int d = it.ndim - 1; d >= 0; d--) {
        int64_t sz = it.size[d], idx = i % sz;
        i /= sz;
        for (int k = 0; k < it.nops; k++)
            off[k] += idx * it.stride[k][d];
    }
}

/* out = src if contiguous (a new view), else a contiguous copy on src's device (a device
 * kernel; nd_tensor_contiguous would go through the host copy hook). out must not hold a
 * reference. */
nd_status nd_cn_contiguous(nd_tensor *out, const nd_tensor *src);
/* dst (any strides) = src (any strides), same shape and dtype, both on the GPU. */
nd_status nd_cn_copy(nd_tensor *dst, const nd_tensor *src);
/* A new contiguous tensor on the current GPU. */
nd_status nd_cn_new(nd_tensor *t, nd_dtype dt, int ndim, const int64_t *size);

/* ---- reductions ---- */

/* Sum of v over the warp (every lane gets it). */
template <typename A> __device__ __forceinline__ A nd_cn_warp_sum(A v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Sum of v over the block (blockDim.x a multiple of 32, at most 1024); the result is valid in
 * thread 0. sh: 32 elements of shared memory. */
template <typename A> __device__ __forceinline__ A nd_cn_block_sum(A v, A *sh)
{
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = nd_cn_warp_sum(v);
    __syncthreads(); /* sh may be reused by a previous call */
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    v = threadIdx.x < nw ? sh[threadIdx.x] : (A)0;
    if (wid == 0) v = nd_cn_warp_sum(v);
    return v;
}

/* Typed dispatch on a float dtype: ND_CN_DISPATCH(dt, body) runs body with T = float or double. */
#define ND_CN_DISPATCH(dt, ...)                                                                                        \
    do {                                                                                                               \
        if ((dt) == ND_DTYPE_F32) {                                                                                    \
            typedef float T;                                                                                           \
            __VA_ARGS__;                                                                                               \
        } else {                                                                                                       \
            typedef double T;                                                                                          \
            __VA_ARGS__;                                                                                               \
        }                                                                                                              \
    } while (0)

#endif
