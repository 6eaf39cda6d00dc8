/* Activations on the GPU: relu, sigmoid, tanh (elementwise, any strides, in place allowed) and
 * softmax / log-softmax over dim 1 (max subtracted, sums in double), forward and backward.
 * Also the strided helpers of nn_common.cuh (iteration, contiguous copies). Shapes and rules:
 * nd_cuda_nn.h / nd_cpu_nn.h. */
#include "nn_common.cuh"

/* ---- strided helpers (nn_common.cuh) ---- */

void nd_cn_iter_init(nd_cn_iter *it, int nops, const nd_tensor *const *ts)
{
    const nd_tensor *t0 = ts[0];
    it->nops = nops;
    it->n = nd_tensor_numel(t0);
    it->contig = 1;
    for (int k = 0; k < nops; k++)
        it->contig &= nd_tensor_is_contiguous(ts[k]) && ts[k]->ndim == t0->ndim;
    /* merge dim d into d-1 (outer) when every operand has stride[d-1] == stride[d] * size[d] */
    int nd = 0;
    for (int d = 0; d < t0->ndim; d++) {
        int merge = nd > 0;
        for (int k = 0; merge && k < nops; k++)
            merge = it->stride[k][nd - 1] == ts[k]->stride[d] * t0->size[d];
        if (merge) {
            it->size[nd - 1] *= t0->size[d];
            for (int k = 0; k < nops; k++)
                it->stride[k][nd - 1] = ts[k]->stride[d];
        } else {
            it->size[nd] = t0->size[d];
            for (int k = 0; k < nops; k++)
                it->stride[k][nd] = ts[k]->stride[d];
            nd++;
        }
    }
    it->ndim = nd;
}

nd_status nd_cn_new(nd_tensor *t, nd_dtype dt, int ndim, const int64_t *size)
{
    nd_device dev = {ND_DEVICE_CUDA, nd_cuda_current_device()};
    return nd_tensor_new(t, dt, ndim, size, dev, 0);
}

template <typename E> __global__ void nd_cn_copy_kernel(E *dst, const E *src, nd_cn_iter it)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < it.n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t off[2];
        nd_cn_offsets(it, i, off);
        dst[off[0]] = src[off[1]];
    }
}

nd_status nd_cn_copy(nd_tensor *dst, const nd_tensor *src)
{
    const nd_tensor *ts[2] = {dst, src};
    nd_cn_iter it;
    nd_cn_iter_init(&it, 2, ts);
    if (it.n == 0) return ND_OK;
    cudaStream_t s = nd_cuda_stream();
    if (it.contig) {
        ND_CUDA_TRY(cudaMemcpyAsync(nd_tensor_data(dst), nd_tensor_data(src), (size_t)it.n * nd_dtype_size(src->dtype),
                                    cudaMemcpyDeviceToDevice, s));
        return ND_OK;
    }
    unsigned g = nd_cuda_blocks(it.n);
    switch (nd_dtype_size(src->dtype)) {
    case 8:
        nd_cn_copy_kernel<int64_t>
            <<<g, 256, 0, s>>>((int64_t *)nd_tensor_data(dst), (const int64_t *)nd_tensor_data(src), it);
        break;
    case 4:
        nd_cn_copy_kernel<float>
            <<<g, 256, 0, s>>>((float *)nd_tensor_data(dst), (const float *)nd_tensor_data(src), it);
        break;
    default:
        nd_cn_copy_kernel<uint8_t>
            <<<g, 256, 0, s>>>((uint8_t *)nd_tensor_data(dst), (const uint8_t *)nd_tensor_data(src), it);
        break;
    }
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}

nd_status nd_cn_contiguous(nd_tensor *out, const nd_tensor *src)
{
    if (nd_tensor_is_contiguous(src) || nd_tensor_numel(src) == 0) {
        nd_tensor_view_of(out, src);
        return ND_OK;
    }
    ND_TRY(nd_cn_new(out, src->dtype, src->ndim, src->size));
    nd_status st = nd_cn_copy(out, src);
    if (st != ND_OK) nd_tensor_release(out);
    return st;
}

/* ---- elementwise activations ---- */

enum { ND_CN_RELU, ND_CN_SIGMOID, ND_CN_TANH };

__device__ __forceinline__ float nd_cn_exp(float x)
{
    return expf(x);
}
__device__ __forceinline__ double nd_cn_exp(double x)
{
    return exp(x);
}
__device__ __forceinline__ float nd_cn_tanh(float x)
{
    return tanhf(x);
}
__device__ __forceinline__ double nd_cn_tanh(double x)
{
    return tanh(x);
}

template <typename T, int OP> __device__ __forceinline__ T nd_cn_act_f(T x)
{
    if (OP == ND_CN_RELU) return x > 0 ? x : (T)0;
    if (OP == ND_CN_SIGMOID) return (T)1 / ((T)1 + nd_cn_exp(-x));
    return nd_cn_tanh(x);
}

template <typename T, int OP> __device__ __forceinline__ T nd_cn_act_b(T g, T y)
{
    if (OP == ND_CN_RELU) return y > 0 ? g : (T)0;
    if (OP == ND_CN_SIGMOID) return g * y * ((T)1 - y);
    return g * ((T)1 - y * y);
}

/* out = f(x) (nops 2) or gi = f'(go, y) (nops 3); each element read before it is written. */
template <typename T, int OP, int BWD> __global__ void nd_cn_act_kernel(T *o, const T *a, const T *b, nd_cn_iter it)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < it.n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t off[3];
        nd_cn_offsets(it, i, off);
        if (BWD)
            o[off[0]] = nd_cn_act_b<T, OP>(a[off[1]], b[off[2]]);
        else
            o[off[0]] = nd_cn_act_f<T, OP>(a[off[1]]);
    }
}

/* Checks the n operands (shape and dtype of t[1]) and launches the kernel. */
template <int OP, int BWD>
static nd_status nd_cn_act_run(const char *op, const nd_tensor *const *t, const char *const *names)
{
    char a[ND_SHAPE_STR_MAX], b[ND_SHAPE_STR_MAX];
    const int n = BWD ? 3 : 2;
    ND_TRY(nd_cn_check_float(op, names[1], t[1], -1));
    for (int k = 0; k < n; k++) {
        if (k == 1) continue;
        ND_TRY(nd_cn_check_float(op, names[k], t[k], (int)t[1]->dtype));
        if (!nd_tensor_same_shape(t[k], t[1]))
            return ND_ERROR(ND_ERR_SHAPE, "%s: %s %s and %s %s differ in shape", op, names[k],
                            nd_tensor_shape_str(t[k], a, sizeof a), names[1], nd_tensor_shape_str(t[1], b, sizeof b));
    }
    ND_TRY(nd_cuda_check_device(op, n, t));
    ND_TRY(nd_nn_check_alias(op, names[0], t[0], 1, n - 1, t + 1));
    nd_cn_iter it;
    nd_cn_iter_init(&it, n, t);
    if (it.n == 0) return ND_OK;
    cudaStream_t s = nd_cuda_stream();
    ND_CN_DISPATCH(t[1]->dtype, nd_cn_act_kernel<T, OP, BWD>
                   <<<nd_cuda_blocks(it.n), 256, 0, s>>>((T *)nd_tensor_data(t[0]), (const T *)nd_tensor_data(t[1]),
                                                         BWD ? (const T *)nd_tensor_data(t[2]) : (const T *)NULL, it));
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}

#define ND_CN_ACT(NAME, OP, OPNAME)                                                                                    \
    extern "C" nd_status nd_##NAME##_forward_cuda(nd_tensor *out, const nd_tensor *input)                              \
    {                                                                                                                  \
        const nd_tensor *t[2] = {out, input};                                                                          \
        const char *names[2] = {"output", "input"};                                                                    \
        return nd_cn_act_run<OP, 0>(OPNAME, t, names);                                                                 \
    }                                                                                                                  \
    extern "C" nd_status nd_##NAME##_backward_cuda(nd_tensor *grad_input, const nd_tensor *grad_output,                \
                                                   const nd_tensor *output)                                            \
    {                                                                                                                  \
        const nd_tensor *t[3] = {grad_input, grad_output, output};                                                     \
        const char *names[3] = {"grad_input", "grad_output", "output"};                                                \
        return nd_cn_act_run<OP, 1>(OPNAME " backward", t, names);                                                     \
    }

ND_CN_ACT(relu, ND_CN_RELU, "relu")
ND_CN_ACT(sigmoid, ND_CN_SIGMOID, "sigmoid")
ND_CN_ACT(tanh, ND_CN_TANH, "tanh")

/* ---- softmax / log-softmax over c of (N, C, S), contiguous ---- */

/* S == 1: one warp per row n (8 rows per 256-thread block); lanes stride over c. */
template <typename T, int LOG> __global__ void nd_cn_softmax_rows(T *y, const T *x, int64_t N, int64_t C)
{
    const int64_t row = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= N) return;
    const T *xp = x + row * C;
    T *yp = y + row * C;
    T m = xp[0];
    for (int64_t c = lane; c < C; c += 32) {
        T v = xp[c];
        if (v > m || v != v) m = v;
    }
    for (int o = 16; o > 0; o >>= 1) {
        T v = __shfl_xor_sync(0xffffffffu, m, o);
        if (v > m || v != v) m = v;
    }
    double sum = 0;
    for (int64_t c = lane; c < C; c += 32)
        sum += exp((double)(xp[c] - m));
    sum = nd_cn_warp_sum(sum);
    if (LOG) {
        const T shift = m + (T)log(sum);
        for (int64_t c = lane; c < C; c += 32)
            yp[c] = xp[c] - shift;
    } else {
        for (int64_t c = lane; c < C; c += 32)
            yp[c] = (T)(exp((double)(xp[c] - m)) / sum);
    }
}

/* S > 1: one thread per (n, s), looping over c (consecutive threads read consecutive s). */
template <typename T, int LOG> __global__ void nd_cn_softmax_cols(T *y, const T *x, int64_t N, int64_t C, int64_t S)
{
    for (int64_t ns = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; ns < N * S;
         ns += (int64_t)gridDim.x * blockDim.x) {
        const int64_t base = (ns / S) * C * S + ns % S;
        const T *xp = x + base;
        T *yp = y + base;
        T m = xp[0];
        for (int64_t c = 1; c < C; c++)
            if (xp[c * S] > m || xp[c * S] != xp[c * S]) m = xp[c * S];
        double sum = 0;
        for (int64_t c = 0; c < C; c++)
            sum += exp((double)(xp[c * S] - m));
        if (LOG) {
            const T shift = m + (T)log(sum);
            for (int64_t c = 0; c < C; c++)
                yp[c * S] = xp[c * S] - shift;
        } else {
            for (int64_t c = 0; c < C; c++)
                yp[c * S] = (T)(exp((double)(xp[c * S] - m)) / sum);
        }
    }
}

/* Backward, same two layouts: softmax gi = y (go - sum go y); log-softmax gi = go - exp(y) sum go.
 * Every element is read by the thread that writes it (in place safe). */
template <typename T, int LOG>
__global__ void nd_cn_softmax_bwd_rows(T *gi, const T *go, const T *y, int64_t N, int64_t C)
{
    const int64_t row = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= N) return;
    const int64_t b = row * C;
    double sum = 0;
    for (int64_t c = lane; c < C; c += 32)
        sum += LOG ? (double)go[b + c] : (double)go[b + c] * y[b + c];
    sum = nd_cn_warp_sum(sum);
    for (int64_t c = lane; c < C; c += 32)
        gi[b + c] = LOG ? (T)(go[b + c] - exp((double)y[b + c]) * sum) : (T)(y[b + c] * (go[b + c] - sum));
}

template <typename T, int LOG>
__global__ void nd_cn_softmax_bwd_cols(T *gi, const T *go, const T *y, int64_t N, int64_t C, int64_t S)
{
    for (int64_t ns = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; ns < N * S;
         ns += (int64_t)gridDim.x * blockDim.x) {
        const int64_t b = (ns / S) * C * S + ns % S;
        double sum = 0;
        for (int64_t c = 0; c < C; c++)
            sum += LOG ? (double)go[b + c * S] : (double)go[b + c * S] * y[b + c * S];
        for (int64_t c = 0; c < C; c++) {
            const int64_t i = b + c * S;
            gi[i] = LOG ? (T)(go[i] - exp((double)y[i]) * sum) : (T)(y[i] * (go[i] - sum));
        }
    }
}

/* (N, C, S) view of a softmax operand: dim 1 is the class dim (dim 0 for a 1-d tensor). */
static nd_status nd_cn_softmax_dims(const char *op, const nd_tensor *t, int64_t *N, int64_t *C, int64_t *S)
{
    return nd_softmax_check_dims(ND_DEVICE_CUDA, op, t, N, C, S); /* src/cpu/nn_check.c */
}

static unsigned nd_cn_row_blocks(int64_t N)
{
    int64_t b = (N + 7) / 8;
    return (unsigned)(b < 1 ? 1 : b > 0x7fffffff ? 0x7fffffff : b);
}

template <int LOG> static nd_status nd_cn_softmax_forward(const char *op, nd_tensor *out, const nd_tensor *input)
{
    int64_t N, C, S;
    ND_TRY(nd_cn_softmax_dims(op, input, &N, &C, &S));
    ND_TRY(nd_cn_check_out(op, "output", out, input->dtype, input->ndim, input->size, 1));
    ND_TRY(nd_cn_check_alias(op, "output", out, 1, input));
    nd_tensor x;
    ND_TRY(nd_cn_contiguous(&x, input));
    cudaStream_t s = nd_cuda_stream();
    ND_CN_DISPATCH(x.dtype, {
        T *y = (T *)nd_tensor_data(out);
        const T *xp = (const T *)nd_tensor_data(&x);
        if (S == 1)
            nd_cn_softmax_rows<T, LOG><<<nd_cn_row_blocks(N), 256, 0, s>>>(y, xp, N, C);
        else
            nd_cn_softmax_cols<T, LOG><<<nd_cuda_blocks(N * S), 256, 0, s>>>(y, xp, N, C, S);
    });
    nd_tensor_release(&x);
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}

template <int LOG>
static nd_status nd_cn_softmax_backward(const char *op, nd_tensor *grad_input, const nd_tensor *grad_output,
                                        const nd_tensor *output)
{
    int64_t N, C, S;
    ND_TRY(nd_cn_softmax_dims(op, output, &N, &C, &S));
    ND_TRY(nd_cn_check_float(op, "grad_output", grad_output, (int)output->dtype));
    ND_TRY(nd_cn_check_out(op, "grad_output", grad_output, output->dtype, output->ndim, output->size, 0));
    ND_TRY(nd_cn_check_out(op, "grad_input", grad_input, output->dtype, output->ndim, output->size, 1));
    ND_TRY(nd_cn_check_alias(op, "grad_input", grad_input, 1, grad_output, output));
    nd_tensor go, y;
    ND_TRY(nd_cn_contiguous(&go, grad_output));
    nd_status st = nd_cn_contiguous(&y, output);
    if (st == ND_OK) {
        cudaStream_t s = nd_cuda_stream();
        ND_CN_DISPATCH(y.dtype, {
            T *gi = (T *)nd_tensor_data(grad_input);
            const T *g = (const T *)nd_tensor_data(&go), *yp = (const T *)nd_tensor_data(&y);
            if (S == 1)
                nd_cn_softmax_bwd_rows<T, LOG><<<nd_cn_row_blocks(N), 256, 0, s>>>(gi, g, yp, N, C);
            else
                nd_cn_softmax_bwd_cols<T, LOG><<<nd_cuda_blocks(N * S), 256, 0, s>>>(gi, g, yp, N, C, S);
        });
        nd_tensor_release(&y);
    }
    nd_tensor_release(&go);
    ND_TRY(st);
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}

extern "C" nd_status nd_softmax_forward_cuda(nd_tensor *out, const nd_tensor *input)
{
    return nd_cn_softmax_forward<0>("softmax", out, input);
}
extern "C" nd_status nd_logsoftmax_forward_cuda(nd_tensor *out, const nd_tensor *input)
{
    return nd_cn_softmax_forward<1>("logsoftmax", out, input);
}
extern "C" nd_status nd_softmax_backward_cuda(nd_tensor *grad_input, const nd_tensor *grad_output,
                                              const nd_tensor *output)
{
    return nd_cn_softmax_backward<0>("softmax backward", grad_input, grad_output, output);
}
extern "C" nd_status nd_logsoftmax_backward_cuda(nd_tensor *grad_input, const nd_tensor *grad_output,
                                                 const nd_tensor *output)
{
    return nd_cn_softmax_backward<1>("logsoftmax backward", grad_input, grad_output, output);
}
