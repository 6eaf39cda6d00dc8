/* Internal header of the CUDA backend (.cu files only): error checking, the per-device stream
 * and library handles, launch helpers. */
#ifndef ND_CUDA_COMMON_CUH
#define ND_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stdint.h>

#include <type_traits>

#include "nd.h"
#include "nd_cuda.h"

/* Turns a failing CUDA runtime / cuBLAS / cuDNN call into an nd_status with the call's text, the
 * library's message and file:line. Use inside functions returning nd_status. */
#define ND_CUDA_TRY(call)                                                                             \
    do {                                                                                              \
        cudaError_t nd_ce_ = (call);                                                                  \
        if (nd_ce_ != cudaSuccess)                                                                    \
            return nd_error_set(ND_ERR_DEVICE, __FILE__, __LINE__, "%s: %s", #call, cudaGetErrorString(nd_ce_)); \
    } while (0)
#define ND_CUBLAS_TRY(call)                                                                           \
    do {                                                                                              \
        cublasStatus_t nd_cb_ = (call);                                                               \
        if (nd_cb_ != CUBLAS_STATUS_SUCCESS)                                                          \
            return nd_error_set(ND_ERR_DEVICE, __FILE__, __LINE__, "%s: %s", #call, cublasGetStatusString(nd_cb_)); \
    } while (0)
#define ND_CUDNN_TRY(call)                                                                            \
    do {                                                                                              \
        cudnnStatus_t nd_cd_ = (call);                                                                \
        if (nd_cd_ != CUDNN_STATUS_SUCCESS)                                                           \
            return nd_error_set(ND_ERR_DEVICE, __FILE__, __LINE__, "%s: %s", #call, cudnnGetErrorString(nd_cd_)); \
    } while (0)
/* After a kernel launch: reports launch-configuration errors (not asynchronous faults). */
#define ND_CUDA_LAUNCH_CHECK() ND_CUDA_TRY(cudaGetLastError())

/* The stream all nd work of the current device is queued on; the handles are bound to it.
 * Created on first use (context.cu). */
cudaStream_t nd_cuda_stream(void);
nd_status nd_cuda_cublas(cublasHandle_t *h);
nd_status nd_cuda_cudnn(cudnnHandle_t *h);
/* A device scratch buffer of at least nbytes, owned by the backend and reused by every caller
 * on the stream (valid until the next call). */
nd_status nd_cuda_workspace(void **ptr, size_t nbytes);

/* Blocks for a grid-stride loop over n elements. */
static inline unsigned nd_cuda_blocks(int64_t n, int threads = 256)
{
    int64_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    if (b > 65535 * 8) b = 65535 * 8;
    return (unsigned)b;
}

/* All tensors on the GPU and on one device; returns ND_ERR_DEVICE naming op otherwise.
 * NULL and empty tensors are skipped. */
nd_status nd_cuda_check_device(const char *op, int n, const nd_tensor *const *ts);

/* ---- memory (allocator.cu) ---- */
/* Installs the caching allocator as the core's CUDA storage allocator (nd_cuda_init calls it). */
void nd_cuda_install_allocator(void);
/* A raw device buffer of nbytes on the current device from the caching allocator; give it back
 * with nd_cuda_buffer_free(ptr, same nbytes). Stream-ordered: free it right after queuing the
 * last kernel that uses it. (Tensors: nd_tensor_new with a CUDA device does the same.) */
nd_status nd_cuda_buffer_alloc(void **ptr, int64_t nbytes);
void nd_cuda_buffer_free(void *ptr, int64_t nbytes);
/* A cached page-locked host buffer of at least nbytes for staging, or *ptr = NULL (all slots busy,
 * too large, or pinning failed: fall back to pageable memory). Give it back with
 * nd_cuda_pinned_give(slot, record): record = 1 when copies using it are still queued on the
 * stream (an event guards reuse), 0 after the stream was synchronised. */
nd_status nd_cuda_pinned_take(void **ptr, int64_t nbytes, int *slot);
nd_status nd_cuda_pinned_give(int slot, int record);

/* ---- strided indexing for kernels (copy.cu and any elementwise kernel) ---- */
/* A tensor's sizes and element strides with size-1 dims dropped and mergeable dims merged
 * (ndim >= 1). offset(i) maps a row-major element number of the tensor's shape to its storage
 * offset relative to element 0. Two tensors of the same numel, any shapes, iterated with the same
 * i visit their elements in matching row-major order (Torch7 copy semantics). */
typedef struct nd_cuda_layout {
    int ndim;
    int64_t size[ND_MAX_DIMS];
    int64_t stride[ND_MAX_DIMS];
} nd_cuda_layout;

static inline nd_cuda_layout nd_cuda_layout_of(const nd_tensor *t)
{
    nd_cuda_layout l;
    l.ndim = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (t->size[d] == 1) continue;
        if (l.ndim > 0 && l.stride[l.ndim - 1] == t->stride[d] * t->size[d]) {
            l.size[l.ndim - 1] *= t->size[d]; /* outer dim d-1 steps over the whole of dim d */
            l.stride[l.ndim - 1] = t->stride[d];
            continue;
        }
        l.size[l.ndim] = t->size[d];
        l.stride[l.ndim] = t->stride[d];
        l.ndim++;
    }
    if (l.ndim == 0) {
        l.ndim = 1;
        l.size[0] = 1;
        l.stride[0] = 1;
    }
    return l;
}

/* True when the layout is one run of stride 1 (a contiguous tensor). */
static inline bool nd_cuda_layout_dense(const nd_cuda_layout &l) { return l.ndim == 1 && l.stride[0] == 1; }

static __host__ __device__ __forceinline__ int64_t nd_cuda_offset(const nd_cuda_layout &l, int64_t i)
{
    if (l.ndim == 1) return i * l.stride[0];
    int64_t off = 0;
    for (int d = l.ndim - 1; d > 0; d--) {
        int64_t q = i / l.size[d];
        off += (i - q * l.size[d]) * l.stride[d];
        i = q;
    }
    return off + i * l.stride[0];
}

/* Element conversion S -> D with the CPU's result where a C cast is undefined (and the GPU's cvt
 * saturates): a float to int64 truncates toward zero, NaN gives 0, out of range saturates; a float
 * to uint8 keeps the low 8 bits of that int64 (-1.0 -> 255, as nd_tensor_copy gives on x86).
 * Every other pair is a plain cast. */
template <typename D, typename S> static __host__ __device__ __forceinline__ D nd_cuda_cast(S v)
{
    if constexpr (std::is_floating_point<S>::value && !std::is_floating_point<D>::value) {
        double x = (double)v;
        int64_t i = x != x                             ? 0
                    : x >= 9223372036854775807.0      ? INT64_MAX
                    : x <= -9223372036854775808.0     ? INT64_MIN
                                                      : (int64_t)x;
        return (D)(uint64_t)i;
    } else {
        return (D)v;
    }
}

/* ---- device selection ---- */
/* Makes `index` current and returns the previous device (restore with nd_cuda_device_restore). */
static inline int nd_cuda_device_enter(int index)
{
    int prev = 0;
    cudaGetDevice(&prev);
    if (prev != index) cudaSetDevice(index);
    return prev;
}
static inline void nd_cuda_device_restore(int prev)
{
    int cur = 0;
    cudaGetDevice(&cur);
    if (cur != prev) cudaSetDevice(prev);
}

#endif
