/* Device discovery, the per-device stream and library handles, the shared workspace. */
#include <stdio.h>
#include <string.h>

#include "common.cuh"

#define ND_CUDA_MAX_DEVICES 16

static int nd_count = -1;
static char nd_reason[256];
static cudaStream_t nd_streams[ND_CUDA_MAX_DEVICES];
static cublasHandle_t nd_cublas_h[ND_CUDA_MAX_DEVICES];
static cudnnHandle_t nd_cudnn_h[ND_CUDA_MAX_DEVICES];
static void *nd_ws[ND_CUDA_MAX_DEVICES];
static size_t nd_ws_bytes[ND_CUDA_MAX_DEVICES];

extern "C" int nd_cuda_device_count(void)
{
    if (nd_count >= 0) return nd_count;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        snprintf(nd_reason, sizeof nd_reason, "%s", cudaGetErrorString(e));
        cudaGetLastError();
        n = 0;
    } else if (n == 0) {
        snprintf(nd_reason, sizeof nd_reason, "no GPU found");
    }
    if (n > ND_CUDA_MAX_DEVICES) n = ND_CUDA_MAX_DEVICES;
    nd_count = n;
    return n;
}

extern "C" const char *nd_cuda_unavailable_reason(void)
{
    nd_cuda_device_count();
    return nd_reason;
}

extern "C" int nd_cuda_current_device(void)
{
    int d = 0;
    if (cudaGetDevice(&d) != cudaSuccess) d = 0;
    return d;
}

extern "C" nd_status nd_cuda_set_device(int index)
{
    if (index < 0 || index >= nd_cuda_device_count())
        return ND_ERROR(ND_ERR_DEVICE, "cuda: device %d does not exist (%d GPUs)", index, nd_cuda_device_count());
    ND_CUDA_TRY(cudaSetDevice(index));
    return ND_OK;
}

extern "C" nd_status nd_cuda_device_info(int index, char *name, int name_len, int *cc, int64_t *total_bytes)
{
    if (index < 0 || index >= nd_cuda_device_count())
        return ND_ERROR(ND_ERR_DEVICE, "cuda: device %d does not exist (%d GPUs)", index, nd_cuda_device_count());
    cudaDeviceProp p;
    ND_CUDA_TRY(cudaGetDeviceProperties(&p, index));
    if (name && name_len > 0) snprintf(name, (size_t)name_len, "%s", p.name);
    if (cc) *cc = p.major * 10 + p.minor;
    if (total_bytes) *total_bytes = (int64_t)p.totalGlobalMem;
    return ND_OK;
}

cudaStream_t nd_cuda_stream(void)
{
    int d = nd_cuda_current_device();
    if (!nd_streams[d]) cudaStreamCreateWithFlags(&nd_streams[d], cudaStreamNonBlocking);
    return nd_streams[d];
}

nd_status nd_cuda_cublas(cublasHandle_t *h)
{
    int d = nd_cuda_current_device();
    if (!nd_cublas_h[d]) {
        ND_CUBLAS_TRY(cublasCreate(&nd_cublas_h[d]));
        ND_CUBLAS_TRY(cublasSetStream(nd_cublas_h[d], nd_cuda_stream()));
    }
    *h = nd_cublas_h[d];
    return ND_OK;
}

nd_status nd_cuda_cudnn(cudnnHandle_t *h)
{
    int d = nd_cuda_current_device();
    if (!nd_cudnn_h[d]) {
        ND_CUDNN_TRY(cudnnCreate(&nd_cudnn_h[d]));
        ND_CUDNN_TRY(cudnnSetStream(nd_cudnn_h[d], nd_cuda_stream()));
    }
    *h = nd_cudnn_h[d];
    return ND_OK;
}

nd_status nd_cuda_workspace(void **ptr, size_t nbytes)
{
    int d = nd_cuda_current_device();
    if (nd_ws_bytes[d] < nbytes) {
        if (nd_ws[d]) {
            ND_CUDA_TRY(cudaStreamSynchronize(nd_cuda_stream()));
            cudaFree(nd_ws[d]);
            nd_ws[d] = NULL;
            nd_ws_bytes[d] = 0;
        }
        size_t want = nbytes < ((size_t)1 << 20) ? ((size_t)1 << 20) : nbytes;
        ND_CUDA_TRY(cudaMalloc(&nd_ws[d], want));
        nd_ws_bytes[d] = want;
    }
    *ptr = nd_ws[d];
    return ND_OK;
}

/* The core's hooks point into this plugin: once installed they stay (the plugin is never
 * unloaded). */
extern "C" nd_status nd_cuda_init(void)
{
    static int done;
    if (done) return ND_OK;
    if (nd_cuda_device_count() == 0)
        return ND_ERROR(ND_ERR_DEVICE, "no usable GPU (%s)", nd_cuda_unavailable_reason());
    nd_cuda_install_allocator();
    nd_tensor_set_device_copy(nd_cuda_copy);
    done = 1;
    return ND_OK;
}

extern "C" nd_status nd_cuda_synchronize(void)
{
    if (nd_cuda_device_count() == 0) return ND_OK;
    ND_CUDA_TRY(cudaStreamSynchronize(nd_cuda_stream()));
    ND_CUDA_TRY(cudaGetLastError());
    return ND_OK;
}

nd_status nd_cuda_check_device(const char *op, int n, const nd_tensor *const *ts)
{
    int seen = -1;
    for (int i = 0; i < n; i++) {
        if (!ts[i] || !ts[i]->storage) continue;
        nd_device dv = nd_tensor_device(ts[i]);
        if (dv.type != ND_DEVICE_CUDA)
            return ND_ERROR(ND_ERR_DEVICE, "%s: expected CUDA tensors, argument %d is on the CPU", op, i + 1);
        if (seen >= 0 && dv.index != seen)
            return ND_ERROR(ND_ERR_DEVICE, "%s: tensors on cuda:%d and cuda:%d", op, seen, dv.index);
        seen = dv.index;
    }
    return ND_OK;
}
