/* Internal header of the CUDA backend (.cu files only): error checking, the per-device stream
 * and library handles, launch helpers. */
#ifndef ND_CUDA_COMMON_CUH
#define ND_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stdint.h>

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

#endif
