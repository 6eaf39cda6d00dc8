/* Copies between the host and the GPUs and on a GPU (the core's device-copy hook), with dtype
 * conversion and any strides; fill with a scalar.
 *
 * One kernel does every on-device copy: element i (row-major over each tensor's own shape) of src
 * goes to element i of dst, converted. Host<->device transfers move contiguous bytes of one dtype
 * (cudaMemcpyAsync); strides and conversions are done on the GPU around them, except that a
 * strided host source is first packed on the host (into pinned staging memory when available;
 * contiguous sources of 64 KiB or more are staged there too, so batches upload asynchronously)
 * and a strided host destination is unpacked on the host after the transfer. */
#include <math.h>
#include <string.h>

#include "common.cuh"

/* ---- kernels ---- */

template <typename D, typename S>
__global__ void nd_copy_kernel(D *__restrict__ dst, nd_cuda_layout dl, const S *__restrict__ src, nd_cuda_layout sl,
                               int64_t n)
{
    int64_t step = (int64_t)blockDim.x * gridDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step)
        dst[nd_cuda_offset(dl, i)] = nd_cuda_cast<D>(src[nd_cuda_offset(sl, i)]);
}

/* Both dense: the common case (dtype conversion of contiguous tensors). */
template <typename D, typename S>
__global__ void nd_convert_kernel(D *__restrict__ dst, const S *__restrict__ src, int64_t n)
{
    int64_t step = (int64_t)blockDim.x * gridDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) dst[i] = nd_cuda_cast<D>(src[i]);
}

template <typename D>
__global__ void nd_fill_kernel(D *__restrict__ dst, nd_cuda_layout dl, D v, int64_t n)
{
    int64_t step = (int64_t)blockDim.x * gridDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) dst[nd_cuda_offset(dl, i)] = v;
}

template <typename D, typename S>
static void nd_launch_copy(void *dst, const nd_cuda_layout &dl, const void *src, const nd_cuda_layout &sl, int64_t n)
{
    cudaStream_t s = nd_cuda_stream();
    if (nd_cuda_layout_dense(dl) && nd_cuda_layout_dense(sl))
        nd_convert_kernel<D, S><<<nd_cuda_blocks(n), 256, 0, s>>>((D *)dst, (const S *)src, n);
    else
        nd_copy_kernel<D, S><<<nd_cuda_blocks(n), 256, 0, s>>>((D *)dst, dl, (const S *)src, sl, n);
}

template <typename D>
static nd_status nd_launch_copy_from(nd_dtype st, void *dst, const nd_cuda_layout &dl, const void *src,
                                     const nd_cuda_layout &sl, int64_t n)
{
    switch (st) {
    case ND_DTYPE_F32: nd_launch_copy<D, float>(dst, dl, src, sl, n); break;
    case ND_DTYPE_F64: nd_launch_copy<D, double>(dst, dl, src, sl, n); break;
    case ND_DTYPE_I64: nd_launch_copy<D, int64_t>(dst, dl, src, sl, n); break;
    case ND_DTYPE_U8: nd_launch_copy<D, uint8_t>(dst, dl, src, sl, n); break;
    default: return ND_ERROR(ND_ERR_DTYPE, "copy: unknown source dtype %d", (int)st);
    }
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}

/* dst = src (converted) for two layouts on the current device; pointers to element 0. */
static nd_status nd_copy_raw(void *dst, nd_dtype dt, const nd_cuda_layout &dl, const void *src, nd_dtype st,
                             const nd_cuda_layout &sl, int64_t n)
{
    if (dt == st && nd_cuda_layout_dense(dl) && nd_cuda_layout_dense(sl)) {
        ND_CUDA_TRY(cudaMemcpyAsync(dst, src, (size_t)n * nd_dtype_size(dt), cudaMemcpyDeviceToDevice, nd_cuda_stream()));
        return ND_OK;
    }
    switch (dt) {
    case ND_DTYPE_F32: return nd_launch_copy_from<float>(st, dst, dl, src, sl, n);
    case ND_DTYPE_F64: return nd_launch_copy_from<double>(st, dst, dl, src, sl, n);
    case ND_DTYPE_I64: return nd_launch_copy_from<int64_t>(st, dst, dl, src, sl, n);
    case ND_DTYPE_U8: return nd_launch_copy_from<uint8_t>(st, dst, dl, src, sl, n);
    default: return ND_ERROR(ND_ERR_DTYPE, "copy: unknown destination dtype %d", (int)dt);
    }
}

/* A dense layout of n elements. */
static nd_cuda_layout nd_dense_layout(int64_t n)
{
    nd_cuda_layout l;
    l.ndim = 1;
    l.size[0] = n;
    l.stride[0] = 1;
    return l;
}

/* Element range [lo, hi] (storage offsets) that t may touch; strides are >= 0 in nd. */
static void nd_span(const nd_tensor *t, int64_t *lo, int64_t *hi)
{
    int64_t last = t->offset;
    for (int d = 0; d < t->ndim; d++)
        if (t->size[d] > 0) last += (t->size[d] - 1) * t->stride[d];
    *lo = t->offset;
    *hi = last;
}

static int nd_same_view(const nd_tensor *a, const nd_tensor *b)
{
    if (a->storage != b->storage || a->offset != b->offset || a->dtype != b->dtype || a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->size[d] != b->size[d] || a->stride[d] != b->stride[d]) return 0;
    return 1;
}

/* Both on the current device. */
static nd_status nd_copy_on_device(nd_tensor *dst, const nd_tensor *src, int64_t n)
{
    if (dst->storage == src->storage) {
        if (nd_same_view(dst, src)) return ND_OK;
        int64_t dlo, dhi, slo, shi;
        nd_span(dst, &dlo, &dhi);
        nd_span(src, &slo, &shi);
        int64_t des = (int64_t)nd_dtype_size(dst->dtype), ses = (int64_t)nd_dtype_size(src->dtype);
        if (dlo * des <= shi * ses + ses - 1 && slo * ses <= dhi * des + des - 1) { /* overlap: via a copy */
            nd_tensor tmp;
            ND_TRY(nd_tensor_new(&tmp, src->dtype, src->ndim, src->size, nd_tensor_device(src), 0));
            nd_cuda_layout tl = nd_dense_layout(n), sl = nd_cuda_layout_of(src), dl = nd_cuda_layout_of(dst);
            nd_status st = nd_copy_raw(nd_tensor_data(&tmp), tmp.dtype, tl, nd_tensor_data(src), src->dtype, sl, n);
            if (st == ND_OK) st = nd_copy_raw(nd_tensor_data(dst), dst->dtype, dl, nd_tensor_data(&tmp), tmp.dtype, tl, n);
            nd_tensor_release(&tmp); /* stream-ordered: safe right after queuing */
            return st;
        }
    }
    nd_cuda_layout dl = nd_cuda_layout_of(dst), sl = nd_cuda_layout_of(src);
    return nd_copy_raw(nd_tensor_data(dst), dst->dtype, dl, nd_tensor_data(src), src->dtype, sl, n);
}

/* Contiguous host sources of at least this many bytes go through pinned staging. */
#define ND_H2D_PIN_MIN ((int64_t)1 << 16)

/* Host -> device (current device = dst's). */
static nd_status nd_copy_h2d(nd_tensor *dst, const nd_tensor *src, int64_t n)
{
    int64_t bytes = n * (int64_t)nd_dtype_size(src->dtype);
    const void *host = nd_tensor_data(src);
    void *pin = NULL;
    int slot = -1;
    nd_tensor packed;
    nd_tensor_init_empty(&packed, src->dtype);
    const int contig = nd_tensor_is_contiguous(src);
    /* Strided sources are packed on the host; large contiguous ones (training batches) are staged
     * too: a copy from pinned memory is a true asynchronous DMA, the host does not wait for it. */
    if (!contig || bytes >= ND_H2D_PIN_MIN) { /* into pinned memory when possible */
        ND_TRY(nd_cuda_pinned_take(&pin, bytes, &slot));
        nd_status st = ND_OK;
        if (pin) {
            nd_storage holder;
            nd_tensor view;
            nd_tensor_borrow(&view, &holder, pin, bytes, src->dtype, src->ndim, src->size);
            st = nd_tensor_copy(&view, src); /* CPU to CPU; view borrows the pinned buffer */
            host = pin;
        } else if (!contig) {
            st = nd_tensor_clone(&packed, src, src->dtype);
            host = nd_tensor_data(&packed);
        }
        if (st != ND_OK) {
            nd_cuda_pinned_give(slot, 0);
            nd_tensor_release(&packed);
            return st;
        }
    }
    nd_status st = ND_OK;
    cudaStream_t s = nd_cuda_stream();
    if (dst->dtype == src->dtype && nd_tensor_is_contiguous(dst)) {
        cudaError_t e = cudaMemcpyAsync(nd_tensor_data(dst), host, (size_t)bytes, cudaMemcpyHostToDevice, s);
        if (e != cudaSuccess) st = ND_ERROR(ND_ERR_DEVICE, "copy to the GPU (%lld bytes): %s", (long long)bytes, cudaGetErrorString(e));
    } else {
        void *tmp = NULL;
        st = nd_cuda_buffer_alloc(&tmp, bytes);
        if (st == ND_OK) {
            cudaError_t e = cudaMemcpyAsync(tmp, host, (size_t)bytes, cudaMemcpyHostToDevice, s);
            if (e != cudaSuccess)
                st = ND_ERROR(ND_ERR_DEVICE, "copy to the GPU (%lld bytes): %s", (long long)bytes, cudaGetErrorString(e));
            else
                st = nd_copy_raw(nd_tensor_data(dst), dst->dtype, nd_cuda_layout_of(dst), tmp, src->dtype,
                                 nd_dense_layout(n), n);
            nd_cuda_buffer_free(tmp, bytes);
        }
    }
    /* A pageable source is consumed when cudaMemcpyAsync returns; a pinned one when the copy ran. */
    nd_status gs = nd_cuda_pinned_give(slot, 1);
    nd_tensor_release(&packed);
    return st != ND_OK ? st : gs;
}

/* Device (current, = src's) -> host; returns after the data arrived. */
static nd_status nd_copy_d2h(nd_tensor *dst, const nd_tensor *src, int64_t n)
{
    int64_t bytes = n * (int64_t)nd_dtype_size(dst->dtype);
    cudaStream_t s = nd_cuda_stream();
    const void *dev = nd_tensor_data(src);
    void *tmp = NULL;
    nd_status st = ND_OK;
    if (src->dtype != dst->dtype || !nd_tensor_is_contiguous(src)) { /* pack and convert on the GPU */
        ND_TRY(nd_cuda_buffer_alloc(&tmp, bytes));
        st = nd_copy_raw(tmp, dst->dtype, nd_dense_layout(n), nd_tensor_data(src), src->dtype, nd_cuda_layout_of(src), n);
        if (st != ND_OK) {
            nd_cuda_buffer_free(tmp, bytes);
            return st;
        }
        dev = tmp;
    }
    if (nd_tensor_is_contiguous(dst)) {
        cudaError_t e = cudaMemcpyAsync(nd_tensor_data(dst), dev, (size_t)bytes, cudaMemcpyDeviceToHost, s);
        if (e == cudaSuccess) e = cudaStreamSynchronize(s);
        if (e != cudaSuccess)
            st = ND_ERROR(ND_ERR_DEVICE, "copy from the GPU (%lld bytes): %s", (long long)bytes, cudaGetErrorString(e));
    } else { /* a strided host destination: land contiguous, then unpack on the host */
        void *pin = NULL;
        int slot = -1;
        nd_tensor land;
        nd_tensor_init_empty(&land, dst->dtype);
        st = nd_cuda_pinned_take(&pin, bytes, &slot);
        nd_storage holder;
        const int64_t size[1] = {n};
        if (st == ND_OK && pin)
            nd_tensor_borrow(&land, &holder, pin, bytes, dst->dtype, 1, size); /* never released */
        else if (st == ND_OK)
            st = nd_tensor_new(&land, dst->dtype, 1, size, nd_cpu_device(), 0);
        if (st == ND_OK) {
            cudaError_t e = cudaMemcpyAsync(nd_tensor_data(&land), dev, (size_t)bytes, cudaMemcpyDeviceToHost, s);
            if (e == cudaSuccess) e = cudaStreamSynchronize(s);
            if (e != cudaSuccess)
                st = ND_ERROR(ND_ERR_DEVICE, "copy from the GPU (%lld bytes): %s", (long long)bytes, cudaGetErrorString(e));
            else
                st = nd_tensor_copy(dst, &land); /* CPU to CPU, row-major order */
        }
        if (pin) nd_cuda_pinned_give(slot, 0);
        else nd_tensor_release(&land);
    }
    if (tmp) nd_cuda_buffer_free(tmp, bytes);
    return st;
}

/* Between two GPUs: src packed (converted) on its device, peer copy, unpacked on dst's device. */
static nd_status nd_copy_peer(nd_tensor *dst, const nd_tensor *src, int64_t n)
{
    nd_device dd = nd_tensor_device(dst), sd = nd_tensor_device(src);
    nd_tensor a, b;
    nd_tensor_init_empty(&a, dst->dtype);
    nd_tensor_init_empty(&b, dst->dtype);
    int64_t size[1] = {n};
    int64_t bytes = n * (int64_t)nd_dtype_size(dst->dtype);
    int prev = nd_cuda_device_enter(sd.index);
    nd_status st = nd_tensor_new(&a, dst->dtype, 1, size, sd, 0);
    if (st == ND_OK) st = nd_copy_raw(nd_tensor_data(&a), a.dtype, nd_dense_layout(n), nd_tensor_data(src), src->dtype,
                                      nd_cuda_layout_of(src), n);
    cudaError_t se = st == ND_OK ? cudaStreamSynchronize(nd_cuda_stream()) : cudaSuccess;
    if (se != cudaSuccess)
        st = ND_ERROR(ND_ERR_DEVICE, "copy cuda:%d -> cuda:%d: %s", sd.index, dd.index, cudaGetErrorString(se));
    nd_cuda_device_enter(dd.index);
    if (st == ND_OK) st = nd_tensor_new(&b, dst->dtype, 1, size, dd, 0);
    if (st == ND_OK) {
        cudaError_t e = cudaMemcpyPeerAsync(nd_tensor_data(&b), dd.index, nd_tensor_data(&a), sd.index, (size_t)bytes,
                                            nd_cuda_stream());
        if (e == cudaSuccess) e = cudaStreamSynchronize(nd_cuda_stream()); /* before a's block is reused */
        if (e != cudaSuccess)
            st = ND_ERROR(ND_ERR_DEVICE, "copy cuda:%d -> cuda:%d: %s", sd.index, dd.index, cudaGetErrorString(e));
    }
    if (st == ND_OK)
        st = nd_copy_raw(nd_tensor_data(dst), dst->dtype, nd_cuda_layout_of(dst), nd_tensor_data(&b), b.dtype,
                         nd_dense_layout(n), n);
    nd_tensor_release(&b);
    nd_tensor_release(&a);
    nd_cuda_device_restore(prev);
    return st;
}

extern "C" nd_status nd_cuda_copy(nd_tensor *dst, const nd_tensor *src)
{
    int64_t n = nd_tensor_numel(dst);
    if (n != nd_tensor_numel(src)) {
        char a[ND_SHAPE_STR_MAX], b[ND_SHAPE_STR_MAX];
        return ND_ERROR(ND_ERR_SHAPE, "copy: destination %s and source %s differ in element count",
                        nd_tensor_shape_str(dst, a, sizeof a), nd_tensor_shape_str(src, b, sizeof b));
    }
    if (n == 0) return ND_OK;
    if ((unsigned)dst->dtype >= ND_DTYPE_COUNT || (unsigned)src->dtype >= ND_DTYPE_COUNT)
        return ND_ERROR(ND_ERR_DTYPE, "copy: unknown dtype");
    nd_device dd = nd_tensor_device(dst), sd = nd_tensor_device(src);
    if (dd.type == ND_DEVICE_CPU && sd.type == ND_DEVICE_CPU) return nd_tensor_copy(dst, src);
    if (dd.type == ND_DEVICE_CUDA && sd.type == ND_DEVICE_CUDA && dd.index != sd.index) return nd_copy_peer(dst, src, n);
    int prev = nd_cuda_device_enter(dd.type == ND_DEVICE_CUDA ? dd.index : sd.index);
    nd_status st;
    if (dd.type == ND_DEVICE_CUDA && sd.type == ND_DEVICE_CUDA)
        st = nd_copy_on_device(dst, src, n);
    else if (dd.type == ND_DEVICE_CUDA)
        st = nd_copy_h2d(dst, src, n);
    else
        st = nd_copy_d2h(dst, src, n);
    nd_cuda_device_restore(prev);
    return st;
}

/* ---- fill ---- */

template <typename D>
static nd_status nd_fill_typed(nd_tensor *t, D v, int64_t n)
{
    nd_fill_kernel<D><<<nd_cuda_blocks(n), 256, 0, nd_cuda_stream()>>>((D *)nd_tensor_data(t), nd_cuda_layout_of(t), v, n);
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}

extern "C" nd_status nd_fill_cuda(nd_tensor *t, double value)
{
    int64_t n = nd_tensor_numel(t);
    if (n == 0) return ND_OK;
    nd_device dv = nd_tensor_device(t);
    if (dv.type != ND_DEVICE_CUDA) return ND_ERROR(ND_ERR_DEVICE, "fill: expected a CUDA tensor, got a CPU one");
    int prev = nd_cuda_device_enter(dv.index);
    nd_status st;
    if (value == 0.0 && !signbit(value) && nd_tensor_is_contiguous(t)) { /* -0.0 keeps its sign */
        cudaError_t e = cudaMemsetAsync(nd_tensor_data(t), 0, (size_t)n * nd_dtype_size(t->dtype), nd_cuda_stream());
        st = e == cudaSuccess ? ND_OK : ND_ERROR(ND_ERR_DEVICE, "fill: %s", cudaGetErrorString(e));
    } else {
        switch (t->dtype) {
        case ND_DTYPE_F32: st = nd_fill_typed<float>(t, (float)value, n); break;
        case ND_DTYPE_F64: st = nd_fill_typed<double>(t, value, n); break;
        case ND_DTYPE_I64: st = nd_fill_typed<int64_t>(t, nd_cuda_cast<int64_t>(value), n); break; /* as nd_fill_cpu */
        case ND_DTYPE_U8: st = nd_fill_typed<uint8_t>(t, nd_cuda_cast<uint8_t>(value), n); break;
        default: st = ND_ERROR(ND_ERR_DTYPE, "fill: unknown dtype %d", (int)t->dtype);
        }
    }
    nd_cuda_device_restore(prev);
    return st;
}
