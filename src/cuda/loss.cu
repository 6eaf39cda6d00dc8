/* Losses on the GPU: class NLL (class weights, ignored index), MSE, BCE; forward and backward.
 * The forwards reduce in double on the device (block partials combined in a fixed order by one
 * block: deterministic), then copy the few result numbers to a pinned host buffer and wait for
 * the stream: the API returns host doubles (nd_cpu_nn.h). Cross entropy is logsoftmax + NLL,
 * composed in Lua, as on the CPU. Rules: nd_cuda_nn.h / nd_cpu_nn.h. */
#include "nn_common.cuh"

#define ND_CN_LOSS_BLOCKS 256 /* partial sums of the reductions */
#define ND_CN_BAD_TARGET (-((int64_t)1 << 62))

/* Result slots on the device and their pinned host mirror: [0] loss sum, [1] total weight,
 * [2] first invalid sample (as double; -1 none). One per process: calls are serialised by the
 * stream wait at the end of each forward. */
static double *nd_cn_loss_host;

static nd_status nd_cn_loss_fetch(const double *dev_res, double *out3)
{
    cudaStream_t s = nd_cuda_stream();
    if (!nd_cn_loss_host) ND_CUDA_TRY(cudaMallocHost((void **)&nd_cn_loss_host, 4 * sizeof(double)));
    ND_CUDA_TRY(cudaMemcpyAsync(nd_cn_loss_host, dev_res, 3 * sizeof(double), cudaMemcpyDeviceToHost, s));
    ND_CUDA_TRY(cudaStreamSynchronize(s));
    for (int k = 0; k < 3; k++)
        out3[k] = nd_cn_loss_host[k];
    return ND_OK;
}

/* Final pass: res[k] = sum over the partials (nparts x 3), in order; one block of 32 threads. */
__global__ void nd_cn_loss_final(double *res, const double *part, int nparts)
{
    if (threadIdx.x >= 3) return;
    double s = threadIdx.x == 2 ? -1 : 0;
    for (int j = 0; j < nparts; j++) {
        double v = part[j * 3 + threadIdx.x];
        if (threadIdx.x < 2)
            s += v;
        else if (v >= 0 && (s < 0 || v < s))
            s = v; /* smallest invalid sample */
    }
    res[threadIdx.x] = s;
}

/* ---- class NLL ---- */

/* part[b] = (-sum w[t] x[n][t], sum w[t], first invalid n or -1) over this block's samples. */
template <typename T>
__global__ void nd_cn_nll_fwd(double *part, const T *x, int64_t sn, int64_t sc, const int64_t *t, const T *w,
                              int64_t ws, int64_t N, int64_t C, int64_t ignore)
{
    __shared__ double sh[32];
    __shared__ unsigned long long bad;
    if (threadIdx.x == 0) bad = ~0ull;
    __syncthreads();
    double s = 0, tw = 0;
    for (int64_t n = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; n < N; n += (int64_t)gridDim.x * blockDim.x) {
        const int64_t c = t[n];
        if (c == ignore) continue;
        if (c < 0 || c >= C) {
            atomicMin(&bad, (unsigned long long)n);
            continue;
        }
        const double wv = w ? (double)w[c * ws] : 1.0;
        s -= wv * (double)x[n * sn + c * sc];
        tw += wv;
    }
    s = nd_cn_block_sum(s, sh);
    tw = nd_cn_block_sum(tw, sh);
    if (threadIdx.x == 0) {
        part[blockIdx.x * 3] = s;
        part[blockIdx.x * 3 + 1] = tw;
        part[blockIdx.x * 3 + 2] = bad == ~0ull ? -1.0 : (double)bad;
    }
}

/* grad_input (N, C) contiguous, zeroed before: [n][t_n] = -w[t_n] * k. */
template <typename T>
__global__ void nd_cn_nll_bwd(T *gi, const int64_t *t, const T *w, int64_t ws, int64_t N, int64_t C, int64_t ignore,
                              double k)
{
    for (int64_t n = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; n < N; n += (int64_t)gridDim.x * blockDim.x) {
        const int64_t c = t[n];
        if (c == ignore || c < 0 || c >= C) continue;
        const double wv = w ? (double)w[c * ws] : 1.0;
        gi[n * C + c] = (T)(-wv * k);
    }
}

/* input (N,C) or (C) -> N, C, element strides; target: N int64 values on the GPU (contiguous). */
static nd_status nd_cn_nll_prepare(const char *op, const nd_tensor *shape_of, const nd_tensor *target,
                                   const nd_tensor *class_weight, int64_t *N, int64_t *C, int64_t *sn, int64_t *sc,
                                   int64_t *wst, nd_tensor *tgt)
{
    ND_TRY(nd_nll_check_dims(ND_DEVICE_CUDA, op, shape_of, target, class_weight, N, C, sn, sc, wst));
    return nd_cn_contiguous(tgt, target);
}

/* Partials + result slots in the workspace: ND_CN_LOSS_BLOCKS * 3 + 3 doubles. */
static nd_status nd_cn_loss_scratch(double **part, double **res)
{
    void *ws;
    ND_TRY(nd_cuda_workspace(&ws, (ND_CN_LOSS_BLOCKS * 3 + 4) * sizeof(double)));
    *part = (double *)ws;
    *res = (double *)ws + ND_CN_LOSS_BLOCKS * 3;
    return ND_OK;
}

static unsigned nd_cn_loss_blocks(int64_t n)
{
    int64_t b = (n + 255) / 256;
    return (unsigned)(b < 1 ? 1 : b > ND_CN_LOSS_BLOCKS ? ND_CN_LOSS_BLOCKS : b);
}

extern "C" nd_status nd_nll_loss_forward_cuda(double *loss, double *total_weight, const nd_tensor *input,
                                              const nd_tensor *target, const nd_tensor *class_weight, int size_average,
                                              int64_t ignore_index)
{
    const char *op = "nll_loss";
    int64_t N, C, sn, sc, wst;
    nd_tensor tgt;
    ND_TRY(nd_cn_check_float(op, "input", input, -1));
    ND_TRY(nd_cn_nll_prepare(op, input, target, class_weight, &N, &C, &sn, &sc, &wst, &tgt));
    double *part, *res, r[3];
    nd_status st = nd_cn_loss_scratch(&part, &res);
    if (st == ND_OK) {
        cudaStream_t s = nd_cuda_stream();
        unsigned nb = nd_cn_loss_blocks(N);
        ND_CN_DISPATCH(input->dtype, nd_cn_nll_fwd<T>
                       <<<nb, 256, 0, s>>>(part, (const T *)nd_tensor_data(input), sn, sc,
                                           (const int64_t *)nd_tensor_data(&tgt),
                                           class_weight ? (const T *)nd_tensor_data(class_weight) : (const T *)NULL,
                                           wst, N, C, ignore_index));
        nd_cn_loss_final<<<1, 32, 0, s>>>(res, part, (int)nb);
        st = cudaGetLastError() == cudaSuccess ? nd_cn_loss_fetch(res, r)
                                               : ND_ERROR(ND_ERR_DEVICE, "%s: kernel launch failed", op);
    }
    nd_tensor_release(&tgt);
    ND_TRY(st);
    if (r[2] >= 0)
        return ND_ERROR(ND_ERR_INDEX, "%s: target of sample %lld is not a class in [0, %lld) (0-based)", op,
                        (long long)r[2], (long long)C);
    *loss = size_average ? r[0] / r[1] : r[0];
    *total_weight = r[1];
    return ND_OK;
}

extern "C" nd_status nd_nll_loss_backward_cuda(nd_tensor *grad_input, const nd_tensor *target,
                                               const nd_tensor *class_weight, double total_weight, int size_average,
                                               int64_t ignore_index, double grad_scale)
{
    const char *op = "nll_loss backward";
    int64_t N, C, sn, sc, wst;
    nd_tensor tgt;
    ND_TRY(nd_cn_check_float(op, "grad_input", grad_input, -1));
    ND_TRY(nd_cn_check_out(op, "grad_input", grad_input, grad_input->dtype, grad_input->ndim, grad_input->size, 1));
    ND_TRY(nd_cn_nll_prepare(op, grad_input, target, class_weight, &N, &C, &sn, &sc, &wst, &tgt));
    cudaStream_t s = nd_cuda_stream();
    nd_status st = ND_OK;
    if (cudaMemsetAsync(nd_tensor_data(grad_input), 0, (size_t)(N * C) * nd_dtype_size(grad_input->dtype), s) !=
        cudaSuccess)
        st = ND_ERROR(ND_ERR_DEVICE, "%s: cudaMemsetAsync failed", op);
    if (st == ND_OK) {
        const double k = size_average ? grad_scale / total_weight : grad_scale;
        ND_CN_DISPATCH(grad_input->dtype, nd_cn_nll_bwd<T><<<nd_cuda_blocks(N), 256, 0, s>>>(
                                              (T *)nd_tensor_data(grad_input), (const int64_t *)nd_tensor_data(&tgt),
                                              class_weight ? (const T *)nd_tensor_data(class_weight) : (const T *)NULL,
                                              wst, N, C, ignore_index, k));
    }
    nd_tensor_release(&tgt);
    ND_TRY(st);
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}

/* 1-based class numbers (any float/int64 dtype and strides) -> 0-based int64. */
template <typename E>
__global__ void nd_cn_nll_targets(int64_t *out, const E *t, nd_cn_iter it, int64_t nclasses, int64_t ignore)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < it.n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t off[2];
        nd_cn_offsets(it, i, off);
        const double c = (double)t[off[1]];
        if (c == (double)ignore)
            out[i] = ignore - 1;
        else if (c >= 1 && c <= (double)nclasses && c == (double)(int64_t)c)
            out[i] = (int64_t)c - 1;
        else
            out[i] = ND_CN_BAD_TARGET;
    }
}

extern "C" nd_status nd_nll_targets_cuda(nd_tensor *out, const nd_tensor *target, int64_t nclasses, int64_t ignore)
{
    const char *op = "nll_loss";
    const int64_t n = nd_tensor_numel(target);
    if (nd_tensor_device(target).type != ND_DEVICE_CUDA || nd_tensor_device(out).type != ND_DEVICE_CUDA)
        return ND_ERROR(ND_ERR_DEVICE, "%s: target conversion needs CUDA tensors", op);
    if (target->dtype == ND_DTYPE_U8) return ND_ERROR(ND_ERR_DTYPE, "%s: target must be int64 or float, got uint8", op);
    if (out->dtype != ND_DTYPE_I64 || nd_tensor_numel(out) != n || !nd_tensor_is_contiguous(out))
        return ND_ERROR(ND_ERR_ARG, "%s: target buffer must be a contiguous int64 tensor of %lld elements", op,
                        (long long)n);
    if (n == 0) return ND_OK;
    /* iterate over target's shape; out is written by linear index */
    const nd_tensor *ts[2] = {target, target};
    nd_cn_iter it;
    nd_cn_iter_init(&it, 2, ts);
    cudaStream_t s = nd_cuda_stream();
    int64_t *o = (int64_t *)nd_tensor_data(out);
    unsigned g = nd_cuda_blocks(n);
    if (target->dtype == ND_DTYPE_I64)
        nd_cn_nll_targets<int64_t><<<g, 256, 0, s>>>(o, (const int64_t *)nd_tensor_data(target), it, nclasses, ignore);
    else if (target->dtype == ND_DTYPE_F32)
        nd_cn_nll_targets<float><<<g, 256, 0, s>>>(o, (const float *)nd_tensor_data(target), it, nclasses, ignore);
    else
        nd_cn_nll_targets<double><<<g, 256, 0, s>>>(o, (const double *)nd_tensor_data(target), it, nclasses, ignore);
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}

/* ---- MSE, BCE ---- */

enum { ND_CN_MSE, ND_CN_BCE };

/* Per-element loss (MSE: (x-y)^2; BCE: -(y log x + (1-y) log(1-x)), logs clamped at -100). */
template <typename T, int L> __device__ __forceinline__ double nd_cn_loss_elem(double x, double y)
{
    if (L == ND_CN_MSE) return (x - y) * (x - y);
    const double lx = fmax(log(x), -100.0), l1x = fmax(log(1.0 - x), -100.0);
    return -(y * lx + (1.0 - y) * l1x);
}

/* part[b] = (sum over this block's elements, 0, -1). it: (input, target[, weight]). */
template <typename T, int L>
__global__ void nd_cn_loss_sum(double *part, const T *x, const T *y, const T *w, nd_cn_iter it)
{
    __shared__ double sh[32];
    double s = 0;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < it.n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t off[3];
        nd_cn_offsets(it, i, off);
        double v = nd_cn_loss_elem<T, L>((double)x[off[0]], (double)y[off[1]]);
        if (w) v *= (double)w[off[2]];
        s += v;
    }
    s = nd_cn_block_sum(s, sh);
    if (threadIdx.x == 0) {
        part[blockIdx.x * 3] = s;
        part[blockIdx.x * 3 + 1] = 0;
        part[blockIdx.x * 3 + 2] = -1;
    }
}

/* it: (grad_input, input, target[, weight]); MSE gi = k (x - y); BCE gi = k w (x - y) / max(x(1-x), 1e-12). */
template <typename T, int L>
__global__ void nd_cn_loss_grad(T *gi, const T *x, const T *y, const T *w, nd_cn_iter it, double k)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < it.n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t off[4];
        nd_cn_offsets(it, i, off);
        const double xv = (double)x[off[1]], yv = (double)y[off[2]];
        double v;
        if (L == ND_CN_MSE) {
            v = k * (xv - yv);
        } else {
            v = k * (xv - yv) / fmax(xv * (1.0 - xv), 1e-12);
            if (w) v *= (double)w[off[3]];
        }
        gi[off[0]] = (T)v;
    }
}

/* out = a view of t with like's shape (a contiguous copy first when the shapes differ). */
static nd_status nd_cn_loss_align(const char *op, const char *what, nd_tensor *out, const nd_tensor *t,
                                  const nd_tensor *like)
{
    ND_TRY(nd_loss_check_like(ND_DEVICE_CUDA, op, what, t, like));
    if (nd_tensor_same_shape(t, like)) {
        nd_tensor_view_of(out, t);
        return ND_OK;
    }
    ND_TRY(nd_cn_contiguous(out, t));
    nd_status st = nd_tensor_view(out, like->ndim, like->size);
    if (st != ND_OK) nd_tensor_release(out);
    return st;
}

/* Forward of MSE (weight NULL) or BCE. */
template <int L>
static nd_status nd_cn_loss_forward(const char *op, double *loss, const nd_tensor *input, const nd_tensor *target,
                                    const nd_tensor *weight, int size_average)
{
    ND_TRY(nd_cn_check_float(op, "input", input, -1));
    nd_tensor y, w;
    nd_tensor_init_empty(&w, input->dtype);
    ND_TRY(nd_cn_loss_align(op, "target", &y, target, input));
    nd_status st = weight ? nd_cn_loss_align(op, "weight", &w, weight, input) : ND_OK;
    const int64_t n = nd_tensor_numel(input);
    double r[3] = {0, 0, -1}, *part, *res;
    if (st == ND_OK && n > 0) st = nd_cn_loss_scratch(&part, &res);
    if (st == ND_OK && n > 0) {
        const nd_tensor *ts[3] = {input, &y, &w};
        nd_cn_iter it;
        nd_cn_iter_init(&it, weight ? 3 : 2, ts);
        cudaStream_t s = nd_cuda_stream();
        unsigned nb = nd_cn_loss_blocks(n);
        ND_CN_DISPATCH(input->dtype, nd_cn_loss_sum<T, L>
                       <<<nb, 256, 0, s>>>(part, (const T *)nd_tensor_data(input), (const T *)nd_tensor_data(&y),
                                           weight ? (const T *)nd_tensor_data(&w) : (const T *)NULL, it));
        nd_cn_loss_final<<<1, 32, 0, s>>>(res, part, (int)nb);
        st = cudaGetLastError() == cudaSuccess ? nd_cn_loss_fetch(res, r)
                                               : ND_ERROR(ND_ERR_DEVICE, "%s: kernel launch failed", op);
    }
    nd_tensor_release(&y);
    nd_tensor_release(&w);
    ND_TRY(st);
    *loss = size_average && n > 0 ? r[0] / (double)n : r[0];
    return ND_OK;
}

template <int L>
static nd_status nd_cn_loss_backward(const char *op, nd_tensor *grad_input, const nd_tensor *input,
                                     const nd_tensor *target, const nd_tensor *weight, int size_average,
                                     double grad_scale)
{
    ND_TRY(nd_cn_check_float(op, "input", input, -1));
    ND_TRY(nd_cn_check_out(op, "grad_input", grad_input, input->dtype, input->ndim, input->size, 0));
    ND_TRY(nd_cn_check_alias(op, "grad_input", grad_input, 1, input, target));
    nd_tensor y, w;
    nd_tensor_init_empty(&w, input->dtype);
    ND_TRY(nd_cn_loss_align(op, "target", &y, target, input));
    nd_status st = weight ? nd_cn_loss_align(op, "weight", &w, weight, input) : ND_OK;
    const int64_t n = nd_tensor_numel(input);
    if (st == ND_OK && n > 0) {
        double k = (L == ND_CN_MSE ? 2.0 : 1.0) * grad_scale / (size_average && n > 0 ? (double)n : 1.0);
        const nd_tensor *ts[4] = {grad_input, input, &y, &w};
        nd_cn_iter it;
        nd_cn_iter_init(&it, weight ? 4 : 3, ts);
        cudaStream_t s = nd_cuda_stream();
        ND_CN_DISPATCH(input->dtype, nd_cn_loss_grad<T, L><<<nd_cuda_blocks(n), 256, 0, s>>>(
                                         (T *)nd_tensor_data(grad_input), (const T *)nd_tensor_data(input),
                                         (const T *)nd_tensor_data(&y),
                                         weight ? (const T *)nd_tensor_data(&w) : (const T *)NULL, it, k));
        if (cudaGetLastError() != cudaSuccess) st = ND_ERROR(ND_ERR_DEVICE, "%s: kernel launch failed", op);
    }
    nd_tensor_release(&y);
    nd_tensor_release(&w);
    return st;
}

extern "C" nd_status nd_mse_loss_forward_cuda(double *loss, const nd_tensor *input, const nd_tensor *target,
                                              int size_average)
{
    return nd_cn_loss_forward<ND_CN_MSE>("mse_loss", loss, input, target, NULL, size_average);
}
extern "C" nd_status nd_mse_loss_backward_cuda(nd_tensor *grad_input, const nd_tensor *input, const nd_tensor *target,
                                               int size_average, double grad_scale)
{
    return nd_cn_loss_backward<ND_CN_MSE>("mse_loss backward", grad_input, input, target, NULL, size_average,
                                          grad_scale);
}
extern "C" nd_status nd_bce_loss_forward_cuda(double *loss, const nd_tensor *input, const nd_tensor *target,
                                              const nd_tensor *weight, int size_average)
{
    return nd_cn_loss_forward<ND_CN_BCE>("bce_loss", loss, input, target, weight, size_average);
}
extern "C" nd_status nd_bce_loss_backward_cuda(nd_tensor *grad_input, const nd_tensor *input, const nd_tensor *target,
                                               const nd_tensor *weight, int size_average, double grad_scale)
{
    return nd_cn_loss_backward<ND_CN_BCE>("bce_loss backward", grad_input, input, target, weight, size_average,
                                          grad_scale);
}
