/* Internal helpers of the CUDA math files (elementwise.cu reduce.cu blas.cu index.cu): a
 * multi-operand strided iteration, dtype conversions matching the CPU rules (nd_cpu_math.h) and
 * the launch-size constant. Not part of the API. */
#ifndef ND_CUDA_MATH_COMMON_CUH
#define ND_CUDA_MATH_COMMON_CUH

#include <stdint.h>
#include <string.h>

#include <type_traits>

#include "common.cuh"
#include "nd_cuda_math.h"

#define ND_CM_MAX_OPS 4
#define ND_CM_THREADS 256

/* Up to 4 operands walked together over one shape in row-major order. Dims of size 1 are dropped
 * and neighbours merged where every operand allows it. Strides count elements of each operand's
 * own dtype; base pointers are byte addresses. Passed to kernels by value (~400 bytes). */
typedef struct nd_cm_iter {
    int ndim, nops;
    int small; /* numel < 2^31: 32-bit index arithmetic */
    int64_t n; /* element count */
    int64_t size[ND_MAX_DIMS];
    int64_t stride[ND_CM_MAX_OPS][ND_MAX_DIMS];
    char *base[ND_CM_MAX_OPS];
    int dt[ND_CM_MAX_OPS];
} nd_cm_iter;

/* Builds the iteration over `ndim` dims of sizes `size`; operand k has strides st[k] (its own
 * dims' strides, or a synthetic list), base pointer base[k] and dtype dt[k]. */
static inline void nd_cm_iter_make(nd_cm_iter *it, int nops, int ndim, const int64_t *size,
                                   const int64_t (*st)[ND_MAX_DIMS], char *const *base, const int *dt)
{
    memset(it, 0, sizeof *it);
    it->nops = nops;
    it->n = 1;
    for (int d = 0; d < ndim; d++)
        it->n *= size[d];
    if (ndim == 0) it->n = 0;
    for (int k = 0; k < nops; k++) {
        it->base[k] = base[k];
        it->dt[k] = dt[k];
    }
    int nd = 0;
    for (int d = 0; d < ndim; d++) {
        if (size[d] == 1) continue;
        int merge = nd > 0;
        for (int k = 0; merge && k < nops; k++)
            merge = it->stride[k][nd - 1] == st[k][d] * size[d];
        if (merge) {
            it->size[nd - 1] *= size[d];
            for (int k = 0; k < nops; k++)
                it->stride[k][nd - 1] = st[k][d];
            continue;
        }
        it->size[nd] = size[d];
        for (int k = 0; k < nops; k++)
            it->stride[k][nd] = st[k][d];
        nd++;
    }
    if (nd == 0) {
        nd = 1;
        it->size[0] = 1;
        for (int k = 0; k < nops; k++)
            it->stride[k][0] = 0;
    }
    it->ndim = nd;
    it->small = it->n < ((int64_t)1 << 31);
}

/* The common case: n tensors of ts[0]'s shape with their own strides and data. */
static inline void nd_cm_iter_tensors(nd_cm_iter *it, int nops, const nd_tensor *const *ts)
{
    int64_t st[ND_CM_MAX_OPS][ND_MAX_DIMS];
    char *base[ND_CM_MAX_OPS];
    int dt[ND_CM_MAX_OPS];
    for (int k = 0; k < nops; k++) {
        for (int d = 0; d < ts[0]->ndim; d++)
            st[k][d] = ts[k]->stride[d];
        base[k] = (char *)nd_tensor_data(ts[k]);
        dt[k] = (int)ts[k]->dtype;
    }
    nd_cm_iter_make(it, nops, ts[0]->ndim, ts[0]->size, st, base, dt);
}

/* Element offsets (in elements) of row-major position i in the NOPS operands. */
template <int NOPS> __device__ __forceinline__ void nd_cm_offsets(const nd_cm_iter &it, int64_t i, int64_t *off)
{
#pragma unroll
    for (int k = 0; k < NOPS; k++)
        off[k] = 0;
    if (it.ndim == 1) {
#pragma unroll
        for (int k = 0; k < NOPS; k++)
            off[k] = i * it.stride[k][0];
        return;
    }
    if (it.small) {
        unsigned r = (unsigned)i;
        for (int d = it.ndim - 1; d > 0; d--) {
            unsigned sz = (unsigned)it.size[d], q = r / sz, c = r - q * sz;
#pragma unroll
            for (int k = 0; k < NOPS; k++)
                off[k] += (int64_t)c * it.stride[k][d];
            r = q;
        }
#pragma unroll
        for (int k = 0; k < NOPS; k++)
            off[k] += (int64_t)r * it.stride[k][0];
        return;
    }
    for (int d = it.ndim - 1; d > 0; d--) {
        int64_t q = i / it.size[d], c = i - q * it.size[d];
#pragma unroll
        for (int k = 0; k < NOPS; k++)
            off[k] += c * it.stride[k][d];
        i = q;
    }
#pragma unroll
    for (int k = 0; k < NOPS; k++)
        off[k] += i * it.stride[k][0];
}

/* Grid-stride loop over the iteration's elements; `off` holds the operands' offsets. */
#define ND_CM_LOOP(it, NOPS, ...)                                                                                      \
    for (int64_t i_ = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i_ < (it).n;                                     \
         i_ += (int64_t)blockDim.x * gridDim.x) {                                                                      \
        int64_t off[NOPS];                                                                                             \
        nd_cm_offsets<NOPS>((it), i_, off);                                                                            \
        __VA_ARGS__                                                                                                    \
    }

/* ---- conversions (the CPU's nd_math_* rules) ---- */

/* double -> int64 truncating toward zero; NaN -> 0; saturating. */
__device__ __forceinline__ int64_t nd_cm_f2i(double v)
{
    if (v != v) return 0;
    if (v >= 9223372036854775807.0) return INT64_MAX;
    if (v <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)v;
}

/* Element at byte base b, offset o (elements of dtype dt), as T (float, double or int64_t). */
template <typename T> __device__ __forceinline__ T nd_cm_load(const char *b, int64_t o, int dt)
{
    if constexpr (std::is_same<T, int64_t>::value) {
        switch (dt) {
        case ND_DTYPE_F32:
            return nd_cm_f2i(((const float *)b)[o]);
        case ND_DTYPE_F64:
            return nd_cm_f2i(((const double *)b)[o]);
        case ND_DTYPE_I64:
            return ((const int64_t *)b)[o];
        default:
            return ((const uint8_t *)b)[o];
        }
    } else {
        switch (dt) {
        case ND_DTYPE_F32:
            return (T)((const float *)b)[o];
        case ND_DTYPE_F64:
            return (T)((const double *)b)[o];
        case ND_DTYPE_I64:
            return (T)((const int64_t *)b)[o];
        default:
            return (T)((const uint8_t *)b)[o];
        }
    }
}

template <typename T> __device__ __forceinline__ void nd_cm_store(char *b, int64_t o, int dt, T v)
{
    if constexpr (std::is_same<T, int64_t>::value) {
        switch (dt) {
        case ND_DTYPE_F32:
            ((float *)b)[o] = (float)v;
            break;
        case ND_DTYPE_F64:
            ((double *)b)[o] = (double)v;
            break;
        case ND_DTYPE_I64:
            ((int64_t *)b)[o] = v;
            break;
        default:
            ((uint8_t *)b)[o] = (uint8_t)(uint64_t)v;
            break;
        }
    } else {
        switch (dt) {
        case ND_DTYPE_F32:
            ((float *)b)[o] = (float)v;
            break;
        case ND_DTYPE_F64:
            ((double *)b)[o] = (double)v;
            break;
        case ND_DTYPE_I64:
            ((int64_t *)b)[o] = nd_cm_f2i((double)v);
            break;
        default:
            ((uint8_t *)b)[o] = (uint8_t)(uint64_t)nd_cm_f2i((double)v);
            break;
        }
    }
}

/* Records the first failure of an op in its status word (see nd_cuda_flag_begin). */
__device__ __forceinline__ void nd_cm_flag_set(nd_cuda_flag *f, long long v)
{
    if (atomicCAS(&f->hit, 0, 1) == 0) f->value = v;
}

static inline unsigned nd_cm_blocks(int64_t n)
{
    return nd_cuda_blocks(n, ND_CM_THREADS);
}

#endif
