/* 2-d convolution on the GPU.
 * - Fast path: cuDNN's legacy convolution API (forward, backward data, backward filter with
 *   alpha = scale, beta = 1 to accumulate). Descriptors and algorithms are planned once per
 *   (device, dtype, math mode, shape) and kept in a small LRU table; the algorithm is the
 *   fastest that cudnnFind* measured (or cudnnGet*_v7's first choice) whose workspace fits
 *   ND_CN_CONV_WS_MAX. Bias and its gradient use our own kernels (any bias stride).
 * - Reference: im2col / col2im kernels and cuBLAS GEMMs per image and group, in default
 *   (non-TF32) cuBLAS math.
 * Shapes, checks and messages follow conv.c (nd_cpu_nn.h). */
#include <limits.h>
#include <stdlib.h>

#include "nn_common.cuh"

#define ND_CN_CONV_PLANS 64
#define ND_CN_CONV_WS_MAX ((size_t)2 << 30) /* largest cuDNN workspace we accept */
#define ND_CN_COLS_MAX ((int64_t)256 << 20) /* column buffer budget of the reference */

typedef nd_conv_geom nd_cn_conv; /* nd_cpu_nn.h, filled by the shared checks (nn_check.c) */

/* ---- settings ---- */

static int nd_cn_tf32 = -1, nd_cn_find = -1;

static void nd_cn_conv_settings(void)
{
    if (nd_cn_tf32 < 0) {
        const char *e = getenv("ND_CUDNN_TF32");
        nd_cn_tf32 = !(e && e[0] == '0');
    }
    if (nd_cn_find < 0) {
        const char *e = getenv("ND_CUDNN_FIND");
        nd_cn_find = !(e && e[0] == '0');
    }
}

extern "C" void nd_conv_cuda_config(int tf32, int find, int *old_tf32, int *old_find)
{
    nd_cn_conv_settings();
    if (old_tf32) *old_tf32 = nd_cn_tf32;
    if (old_find) *old_find = nd_cn_find;
    if (tf32 >= 0) nd_cn_tf32 = tf32 != 0;
    if (find >= 0) nd_cn_find = find != 0;
}

/* ---- validation: nd_conv_check_* (src/cpu/nn_check.c, shared with conv.c) ---- */

/* ---- bias kernels ---- */

/* y (N, Cout, S) contiguous += b[c * bst]. */
template <typename T> __global__ void nd_cn_bias_add(T *y, const T *b, int64_t bst, int64_t n, int64_t C, int64_t S)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] += b[((i / S) % C) * bst];
}

/* gb[c * gbst] += scale * sum over n, s of go (N, Cout, S) contiguous; one block per plane c. */
template <typename T>
__global__ void nd_cn_bias_grad(T *gb, int64_t gbst, const T *go, int64_t N, int64_t C, int64_t S, double scale)
{
    __shared__ double sh[32];
    const int64_t c = blockIdx.x, m = N * S;
    double s = 0;
    for (int64_t k = threadIdx.x; k < m; k += blockDim.x) {
        const int64_t n = k / S;
        s += (double)go[(n * C + c) * S + (k - n * S)];
    }
    s = nd_cn_block_sum(s, sh);
    if (threadIdx.x == 0) gb[c * gbst] = (T)((double)gb[c * gbst] + scale * s);
}

static nd_status nd_cn_bias_grad_launch(nd_tensor *grad_bias, int64_t gbst, const nd_tensor *go, const nd_cn_conv *g,
                                        double scale)
{
    cudaStream_t s = nd_cuda_stream();
    ND_CN_DISPATCH(go->dtype, nd_cn_bias_grad<T><<<(unsigned)g->Cout, 256, 0, s>>>((T *)nd_tensor_data(grad_bias), gbst,
                                                                                   (const T *)nd_tensor_data(go), g->N,
                                                                                   g->Cout, g->OH * g->OW, scale));
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}

/* ---- cuDNN plans ---- */

typedef struct nd_cn_plan {
    int used, dev, tf32;
    nd_dtype dt;
    int64_t key[14];
    uint64_t stamp;
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    int have[3]; /* forward, backward data, backward filter chosen */
    int algo[3]; /* the cudnn*Algo_t values */
    cudnnMathType_t math[3];
    size_t ws[3];
} nd_cn_plan;

static nd_cn_plan nd_cn_plans[ND_CN_CONV_PLANS];
static uint64_t nd_cn_clock;

static void nd_cn_plan_free(nd_cn_plan *pl)
{
    if (!pl->used) return;
    cudnnDestroyTensorDescriptor(pl->x);
    cudnnDestroyTensorDescriptor(pl->y);
    cudnnDestroyFilterDescriptor(pl->w);
    cudnnDestroyConvolutionDescriptor(pl->conv);
    memset(pl, 0, sizeof *pl);
}

static void nd_cn_plan_key(const nd_cn_conv *g, int64_t *k)
{
    int64_t v[14] = {g->N,  g->C,  g->H,  g->W,  g->Cout, g->kh, g->kw,
                     g->sh, g->sw, g->ph, g->pw, g->dh,   g->dw, g->groups};
    memcpy(k, v, sizeof v);
}

/* The plan of g (created with its descriptors when missing; the least recently used one is
 * replaced when the table is full). */
static nd_status nd_cn_plan_get(const char *op, const nd_cn_conv *g, nd_dtype dt, nd_cn_plan **out)
{
    nd_cn_conv_settings();
    int64_t key[14];
    nd_cn_plan_key(g, key);
    const int dev = nd_cuda_current_device(), tf32 = dt == ND_DTYPE_F32 && nd_cn_tf32;
    nd_cn_plan *victim = &nd_cn_plans[0];
    for (int i = 0; i < ND_CN_CONV_PLANS; i++) {
        nd_cn_plan *pl = &nd_cn_plans[i];
        if (pl->used && pl->dev == dev && pl->dt == dt && pl->tf32 == tf32 && !memcmp(pl->key, key, sizeof key)) {
            pl->stamp = ++nd_cn_clock;
            *out = pl;
            return ND_OK;
        }
        if (!pl->used || (victim->used && pl->stamp < victim->stamp)) victim = pl;
    }
    for (int i = 0; i < 14; i++)
        if (key[i] > INT_MAX) return ND_ERROR(ND_ERR_SHAPE, "%s: sizes beyond 2^31 are not supported by cuDNN", op);
    if (g->N * g->C * g->H * g->W > INT_MAX || g->N * g->Cout * g->OH * g->OW > INT_MAX)
        return ND_ERROR(ND_ERR_SHAPE, "%s: tensors of 2^31 elements or more are not supported by cuDNN", op);
    nd_cn_plan_free(victim);
    nd_cn_plan *pl = victim;
    const cudnnDataType_t ct = dt == ND_DTYPE_F32 ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE;
    ND_CUDNN_TRY(cudnnCreateTensorDescriptor(&pl->x));
    pl->used = 1; /* from here nd_cn_plan_free releases what exists (Destroy accepts NULL) */
    ND_CUDNN_TRY(cudnnCreateTensorDescriptor(&pl->y));
    ND_CUDNN_TRY(cudnnCreateFilterDescriptor(&pl->w));
    ND_CUDNN_TRY(cudnnCreateConvolutionDescriptor(&pl->conv));
    pl->dev = dev, pl->tf32 = tf32, pl->dt = dt;
    memcpy(pl->key, key, sizeof key);
    pl->stamp = ++nd_cn_clock;
    nd_status st = ND_OK;
    cudnnStatus_t cs =
        cudnnSetTensor4dDescriptor(pl->x, CUDNN_TENSOR_NCHW, ct, (int)g->N, (int)g->C, (int)g->H, (int)g->W);
    if (cs == CUDNN_STATUS_SUCCESS)
        cs = cudnnSetTensor4dDescriptor(pl->y, CUDNN_TENSOR_NCHW, ct, (int)g->N, (int)g->Cout, (int)g->OH, (int)g->OW);
    if (cs == CUDNN_STATUS_SUCCESS)
        cs = cudnnSetFilter4dDescriptor(pl->w, ct, CUDNN_TENSOR_NCHW, (int)g->Cout, (int)(g->C / g->groups), (int)g->kh,
                                        (int)g->kw);
    if (cs == CUDNN_STATUS_SUCCESS)
        cs = cudnnSetConvolution2dDescriptor(pl->conv, (int)g->ph, (int)g->pw, (int)g->sh, (int)g->sw, (int)g->dh,
                                             (int)g->dw, CUDNN_CROSS_CORRELATION, ct);
    if (cs == CUDNN_STATUS_SUCCESS) cs = cudnnSetConvolutionGroupCount(pl->conv, (int)g->groups);
    if (cs != CUDNN_STATUS_SUCCESS) {
        st = ND_ERROR(ND_ERR_DEVICE, "%s: cuDNN descriptors for input %lldx%lldx%lldx%lld, %lld planes out: %s", op,
                      (long long)g->N, (long long)g->C, (long long)g->H, (long long)g->W, (long long)g->Cout,
                      cudnnGetErrorString(cs));
        nd_cn_plan_free(pl);
        return st;
    }
    *out = pl;
    return ND_OK;
}

enum { ND_CN_FWD, ND_CN_BWD_DATA, ND_CN_BWD_FILTER };

/* The math type the algorithm search runs under: float32 with TF32 allowed, or float64, use
 * cuDNN's default (TF32 / FP64 tensor cores permitted; FP64 ones are exact IEEE FMAs); strict
 * float32 restricts cuDNN to FMA kernels. */
static cudnnMathType_t nd_cn_plan_math(const nd_cn_plan *pl)
{
    return (pl->dt == ND_DTYPE_F64 || pl->tf32) ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
}

/* Picks the first usable result of a Find/Get list (sorted fastest first); strict float32
 * prefers a result measured with FMA math (the caller forces that math type in any case). */
template <typename P> static int nd_cn_pick(const P *r, int n, int strict)
{
    for (int pass = strict ? 0 : 1; pass < 2; pass++)
        for (int i = 0; i < n; i++)
            if (r[i].status == CUDNN_STATUS_SUCCESS && r[i].memory <= ND_CN_CONV_WS_MAX &&
                (pass == 1 || r[i].mathType == CUDNN_FMA_MATH))
                return i;
    return -1;
}

/* Chooses the algorithm of direction dir for plan pl (once), with its workspace size. */
static nd_status nd_cn_plan_algo(const char *op, nd_cn_plan *pl, int dir)
{
    if (pl->have[dir]) return ND_OK;
    cudnnHandle_t h;
    ND_TRY(nd_cuda_cudnn(&h));
    ND_CUDNN_TRY(cudnnSetConvolutionMathType(pl->conv, nd_cn_plan_math(pl)));
    const int find = nd_cn_find;
    /* strict fp32: Find / Get may still list tensor-op (TF32) variants; never take their math */
    const int strict = nd_cn_plan_math(pl) == CUDNN_FMA_MATH;
    int n = 0, k = -1;
    cudnnStatus_t cs;
    if (dir == ND_CN_FWD) {
        cudnnConvolutionFwdAlgoPerf_t r[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        cs = find ? cudnnFindConvolutionForwardAlgorithm(h, pl->x, pl->w, pl->conv, pl->y,
                                                         CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, r)
                  : cudnnGetConvolutionForwardAlgorithm_v7(h, pl->x, pl->w, pl->conv, pl->y,
                                                           CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, r);
        if (cs == CUDNN_STATUS_SUCCESS && (k = nd_cn_pick(r, n, strict)) >= 0) {
            pl->algo[dir] = r[k].algo;
            pl->math[dir] = strict ? CUDNN_FMA_MATH : r[k].mathType;
            ND_CUDNN_TRY(cudnnSetConvolutionMathType(pl->conv, pl->math[dir]));
            cs = cudnnGetConvolutionForwardWorkspaceSize(h, pl->x, pl->w, pl->conv, pl->y, r[k].algo, &pl->ws[dir]);
        }
    } else if (dir == ND_CN_BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t r[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
        cs = find ? cudnnFindConvolutionBackwardDataAlgorithm(h, pl->w, pl->y, pl->conv, pl->x,
                                                              CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, r)
                  : cudnnGetConvolutionBackwardDataAlgorithm_v7(h, pl->w, pl->y, pl->conv, pl->x,
                                                                CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, r);
        if (cs == CUDNN_STATUS_SUCCESS && (k = nd_cn_pick(r, n, strict)) >= 0) {
            pl->algo[dir] = r[k].algo;
            pl->math[dir] = strict ? CUDNN_FMA_MATH : r[k].mathType;
            ND_CUDNN_TRY(cudnnSetConvolutionMathType(pl->conv, pl->math[dir]));
            cs =
                cudnnGetConvolutionBackwardDataWorkspaceSize(h, pl->w, pl->y, pl->conv, pl->x, r[k].algo, &pl->ws[dir]);
        }
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t r[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
        cs = find ? cudnnFindConvolutionBackwardFilterAlgorithm(h, pl->x, pl->y, pl->conv, pl->w,
                                                                CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, r)
                  : cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, pl->x, pl->y, pl->conv, pl->w,
                                                                  CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, r);
        if (cs == CUDNN_STATUS_SUCCESS && (k = nd_cn_pick(r, n, strict)) >= 0) {
            pl->algo[dir] = r[k].algo;
            pl->math[dir] = strict ? CUDNN_FMA_MATH : r[k].mathType;
            ND_CUDNN_TRY(cudnnSetConvolutionMathType(pl->conv, pl->math[dir]));
            cs = cudnnGetConvolutionBackwardFilterWorkspaceSize(h, pl->x, pl->y, pl->conv, pl->w, r[k].algo,
                                                                &pl->ws[dir]);
        }
    }
    static const char *what[3] = {"forward", "backward data", "backward filter"};
    if (cs != CUDNN_STATUS_SUCCESS)
        return ND_ERROR(ND_ERR_DEVICE, "%s: cuDNN %s algorithm search failed: %s", op, what[dir],
                        cudnnGetErrorString(cs));
    if (k < 0)
        return ND_ERROR(ND_ERR_DEVICE, "%s: cuDNN has no %s algorithm for this shape within %lld MiB of workspace", op,
                        what[dir], (long long)(ND_CN_CONV_WS_MAX >> 20));
    pl->have[dir] = 1;
    return ND_OK;
}

/* Sets the math type of direction dir and returns its workspace. */
static nd_status nd_cn_plan_ready(const char *op, nd_cn_plan *pl, int dir, void **ws)
{
    ND_TRY(nd_cn_plan_algo(op, pl, dir));
    ND_CUDNN_TRY(cudnnSetConvolutionMathType(pl->conv, pl->math[dir]));
    *ws = NULL;
    if (pl->ws[dir] > 0) ND_TRY(nd_cuda_workspace(ws, pl->ws[dir]));
    return ND_OK;
}

/* Scalars for cuDNN: float for float data, double for double data. */
typedef union nd_cn_scalar {
    float f;
    double d;
} nd_cn_scalar;
static nd_cn_scalar nd_cn_sc(nd_dtype dt, double v)
{
    nd_cn_scalar s;
    if (dt == ND_DTYPE_F32)
        s.f = (float)v;
    else
        s.d = v;
    return s;
}

extern "C" nd_status nd_conv2d_forward_cuda(nd_tensor *out, const nd_tensor *input, const nd_tensor *weight,
                                            const nd_tensor *bias, const nd_conv2d_params *p)
{
    const char *op = "conv2d";
    nd_cn_conv g;
    int64_t bst = 0;
    ND_TRY(nd_conv_check_forward(ND_DEVICE_CUDA, op, &g, out, input, weight, bias, p, 1, &bst));
    nd_cn_plan *pl;
    void *ws;
    cudnnHandle_t h;
    ND_TRY(nd_cuda_cudnn(&h));
    ND_TRY(nd_cn_plan_get(op, &g, input->dtype, &pl));
    ND_TRY(nd_cn_plan_ready(op, pl, ND_CN_FWD, &ws));
    nd_tensor x, w;
    ND_TRY(nd_cn_contiguous(&x, input));
    nd_status st = nd_cn_contiguous(&w, weight);
    if (st == ND_OK) {
        nd_cn_scalar one = nd_cn_sc(input->dtype, 1), zero = nd_cn_sc(input->dtype, 0);
        cudnnStatus_t cs = cudnnConvolutionForward(h, &one, pl->x, nd_tensor_data(&x), pl->w, nd_tensor_data(&w),
                                                   pl->conv, (cudnnConvolutionFwdAlgo_t)pl->algo[ND_CN_FWD], ws,
                                                   pl->ws[ND_CN_FWD], &zero, pl->y, nd_tensor_data(out));
        if (cs != CUDNN_STATUS_SUCCESS)
            st = ND_ERROR(ND_ERR_DEVICE, "%s: cudnnConvolutionForward: %s", op, cudnnGetErrorString(cs));
        if (st == ND_OK && bias) {
            const int64_t n = g.N * g.Cout * g.OH * g.OW;
            ND_CN_DISPATCH(input->dtype,
                           nd_cn_bias_add<T><<<nd_cuda_blocks(n), 256, 0, nd_cuda_stream()>>>(
                               (T *)nd_tensor_data(out), (const T *)nd_tensor_data(bias), bst, n, g.Cout, g.OH * g.OW));
            if (cudaGetLastError() != cudaSuccess) st = ND_ERROR(ND_ERR_DEVICE, "%s: bias kernel launch failed", op);
        }
        nd_tensor_release(&w);
    }
    nd_tensor_release(&x);
    return st;
}

/* The cuDNN backward: any of grad_input (overwritten), grad_weight and grad_bias (+= scale *). */
static nd_status nd_cn_conv_backward(const char *op, nd_tensor *grad_input, nd_tensor *grad_weight,
                                     nd_tensor *grad_bias, const nd_tensor *input, const nd_tensor *grad_output,
                                     const nd_tensor *weight, double scale, const nd_conv2d_params *p)
{
    nd_cn_conv g;
    int64_t gbst = 0;
    ND_TRY(nd_conv_check_backward(ND_DEVICE_CUDA, op, &g, grad_input, grad_weight, grad_bias, input, grad_output,
                                  weight, p, 1, &gbst));
    const nd_dtype dt = grad_output->dtype;
    cudnnHandle_t h;
    nd_cn_plan *pl;
    ND_TRY(nd_cuda_cudnn(&h));
    ND_TRY(nd_cn_plan_get(op, &g, dt, &pl));
    nd_tensor x, w, go;
    nd_tensor_init_empty(&x, dt);
    nd_tensor_init_empty(&w, dt);
    nd_status st = nd_cn_contiguous(&go, grad_output);
    if (st == ND_OK && grad_weight) st = nd_cn_contiguous(&x, input);
    if (st == ND_OK && grad_input) st = nd_cn_contiguous(&w, weight);
    nd_cn_scalar one = nd_cn_sc(dt, 1), zero = nd_cn_sc(dt, 0), sc = nd_cn_sc(dt, scale);
    void *ws;
    if (st == ND_OK && grad_input && (st = nd_cn_plan_ready(op, pl, ND_CN_BWD_DATA, &ws)) == ND_OK) {
        cudnnStatus_t cs =
            cudnnConvolutionBackwardData(h, &one, pl->w, nd_tensor_data(&w), pl->y, nd_tensor_data(&go), pl->conv,
                                         (cudnnConvolutionBwdDataAlgo_t)pl->algo[ND_CN_BWD_DATA], ws,
                                         pl->ws[ND_CN_BWD_DATA], &zero, pl->x, nd_tensor_data(grad_input));
        if (cs != CUDNN_STATUS_SUCCESS)
            st = ND_ERROR(ND_ERR_DEVICE, "%s: cudnnConvolutionBackwardData: %s", op, cudnnGetErrorString(cs));
    }
    if (st == ND_OK && grad_weight && (st = nd_cn_plan_ready(op, pl, ND_CN_BWD_FILTER, &ws)) == ND_OK) {
        cudnnStatus_t cs =
            cudnnConvolutionBackwardFilter(h, &sc, pl->x, nd_tensor_data(&x), pl->y, nd_tensor_data(&go), pl->conv,
                                           (cudnnConvolutionBwdFilterAlgo_t)pl->algo[ND_CN_BWD_FILTER], ws,
                                           pl->ws[ND_CN_BWD_FILTER], &one, pl->w, nd_tensor_data(grad_weight));
        if (cs != CUDNN_STATUS_SUCCESS)
            st = ND_ERROR(ND_ERR_DEVICE, "%s: cudnnConvolutionBackwardFilter: %s", op, cudnnGetErrorString(cs));
    }
    if (st == ND_OK && grad_bias) st = nd_cn_bias_grad_launch(grad_bias, gbst, &go, &g, scale);
    nd_tensor_release(&go);
    nd_tensor_release(&x);
    nd_tensor_release(&w);
    return st;
}

extern "C" nd_status nd_conv2d_backward_input_cuda(nd_tensor *grad_input, const nd_tensor *grad_output,
                                                   const nd_tensor *weight, const nd_conv2d_params *p)
{
    if (!grad_input || !weight) return ND_ERROR(ND_ERR_ARG, "conv2d backward: grad_input and weight are required");
    return nd_cn_conv_backward("conv2d backward", grad_input, NULL, NULL, NULL, grad_output, weight, 1.0, p);
}

extern "C" nd_status nd_conv2d_backward_params_cuda(nd_tensor *grad_weight, nd_tensor *grad_bias,
                                                    const nd_tensor *input, const nd_tensor *grad_output, double scale,
                                                    const nd_conv2d_params *p)
{
    if (!grad_weight || !input) return ND_ERROR(ND_ERR_ARG, "conv2d backward: grad_weight and input are required");
    return nd_cn_conv_backward("conv2d backward", NULL, grad_weight, grad_bias, input, grad_output, NULL, scale, p);
}

extern "C" nd_status nd_conv2d_backward_cuda(nd_tensor *grad_input, nd_tensor *grad_weight, nd_tensor *grad_bias,
                                             const nd_tensor *input, const nd_tensor *grad_output,
                                             const nd_tensor *weight, double scale, const nd_conv2d_params *p)
{
    const char *op = "conv2d backward";
    if (!input || !weight) return ND_ERROR(ND_ERR_ARG, "%s: input and weight are required", op);
    return nd_cn_conv_backward(op, grad_input, grad_weight, grad_bias, input, grad_output, weight, scale, p);
}

/* ---- reference: im2col / col2im + cuBLAS ---- */

/* cols (C*kh*kw, ldc) for images [0, B) of x (B, C, H, W) contiguous; column b*OHW + oh*OW + ow. */
template <typename T> __global__ void nd_cn_im2col(T *cols, int64_t ldc, const T *x, int64_t B, nd_cn_conv g)
{
    const int64_t OHW = g.OH * g.OW, K = g.kh * g.kw, n = g.C * K * B * OHW;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t f = i / (B * OHW), col = i % (B * OHW);
        const int64_t c = f / K, ki = (f % K) / g.kw, kj = f % g.kw;
        const int64_t b = col / OHW, oh = (col % OHW) / g.OW, ow = col % g.OW;
        const int64_t ih = oh * g.sh - g.ph + ki * g.dh, iw = ow * g.sw - g.pw + kj * g.dw;
        cols[f * ldc + col] =
            (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W) ? x[((b * g.C + c) * g.H + ih) * g.W + iw] : (T)0;
    }
}

/* x (B, C, H, W) contiguous OVERWRITTEN with the adjoint of im2col: each pixel gathers the
 * column entries that read it. */
template <typename T> __global__ void nd_cn_col2im(T *x, const T *cols, int64_t ldc, int64_t B, nd_cn_conv g)
{
    const int64_t OHW = g.OH * g.OW, K = g.kh * g.kw, n = B * g.C * g.H * g.W;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t w = i % g.W, h = (i / g.W) % g.H, c = (i / (g.W * g.H)) % g.C, b = i / (g.W * g.H * g.C);
        T s = 0;
        for (int64_t ki = 0; ki < g.kh; ki++) {
            const int64_t th = h + g.ph - ki * g.dh;
            if (th < 0 || th % g.sh) continue;
            const int64_t oh = th / g.sh;
            if (oh >= g.OH) continue;
            for (int64_t kj = 0; kj < g.kw; kj++) {
                const int64_t tw = w + g.pw - kj * g.dw;
                if (tw < 0 || tw % g.sw) continue;
                const int64_t ow = tw / g.sw;
                if (ow >= g.OW) continue;
                s += cols[(c * K + ki * g.kw + kj) * ldc + b * OHW + oh * g.OW + ow];
            }
        }
        x[i] = s;
    }
}

static nd_status nd_cn_gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n,
                            int64_t k, double alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                            double beta, float *C, int64_t ldc)
{
    const float a = (float)alpha, b = (float)beta;
    ND_CUBLAS_TRY(cublasSgemm(h, ta, tb, (int)m, (int)n, (int)k, &a, A, (int)lda, B, (int)ldb, &b, C, (int)ldc));
    return ND_OK;
}
static nd_status nd_cn_gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n,
                            int64_t k, double alpha, const double *A, int64_t lda, const double *B, int64_t ldb,
                            double beta, double *C, int64_t ldc)
{
    ND_CUBLAS_TRY(cublasDgemm(h, ta, tb, (int)m, (int)n, (int)k, &alpha, A, (int)lda, B, (int)ldb, &beta, C, (int)ldc));
    return ND_OK;
}

/* Column-major views of the row-major matrices (see the comment of each call):
 *   W_g (Og x KK, ld KK) at w + g*Og*KK;  cols_g (KK x B*OHW) at cols + g*KK*ldc, image b at + b*OHW;
 *   out / go image b, group g (Og x OHW, ld OHW) at + (b*Cout + g*Og)*OHW. */
template <typename T>
static nd_status nd_cn_ref_run(const nd_cn_conv *g, T *out, T *gin, T *gw, const T *x, const T *w, const T *go,
                               double scale)
{
    cublasHandle_t h;
    ND_TRY(nd_cuda_cublas(&h));
    cublasMath_t old_math;
    ND_CUBLAS_TRY(cublasGetMathMode(h, &old_math));
    ND_CUBLAS_TRY(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    const int64_t OHW = g->OH * g->OW, K = g->kh * g->kw, Cg = g->C / g->groups, Og = g->Cout / g->groups, KK = Cg * K,
                  rows = g->C * K;
    int64_t B = ND_CN_COLS_MAX / (rows * OHW * (int64_t)sizeof(T));
    if (B < 1) B = 1;
    if (B > g->N) B = g->N;
    nd_tensor cols;
    int64_t csize[2] = {rows, B * OHW};
    nd_status st = nd_cn_new(&cols, sizeof(T) == 4 ? ND_DTYPE_F32 : ND_DTYPE_F64, 2, csize);
    if (st != ND_OK) {
        cublasSetMathMode(h, old_math);
        return st;
    }
    T *cp = (T *)nd_tensor_data(&cols);
    cudaStream_t s = nd_cuda_stream();
    for (int64_t n0 = 0; n0 < g->N && st == ND_OK; n0 += B) {
        const int64_t nb = g->N - n0 < B ? g->N - n0 : B, ldc = nb * OHW;
        if (out || gw) {
            nd_cn_im2col<T><<<nd_cuda_blocks(rows * ldc), 256, 0, s>>>(cp, ldc, x + n0 * g->C * g->H * g->W, nb, *g);
            if (cudaGetLastError() != cudaSuccess) st = ND_ERROR(ND_ERR_DEVICE, "conv2d: im2col launch failed");
        }
        for (int64_t gr = 0; gr < g->groups && st == ND_OK; gr++) {
            const T *wg = w ? w + gr * Og * KK : NULL;
            const T *cg = cp + gr * KK * ldc;
            for (int64_t b = 0; b < nb && st == ND_OK; b++) {
                const int64_t img = (n0 + b) * g->Cout * OHW + gr * Og * OHW;
                /* out_b,g (Og x OHW) = W_g cols_b,g: col-major out^T (OHW x Og) = cols^T (OHW x KK, ld ldc) W_g^T */
                if (out)
                    st = nd_cn_gemm(h, CUBLAS_OP_N, CUBLAS_OP_N, OHW, Og, KK, 1.0, cg + b * OHW, ldc, wg, KK, 0.0,
                                    out + img, OHW);
                /* gW_g (Og x KK) += scale go_b,g cols_b,g^T: col-major gW^T (KK x Og) = cols (KK x OHW) go^T */
                if (gw && st == ND_OK)
                    st = nd_cn_gemm(h, CUBLAS_OP_T, CUBLAS_OP_N, KK, Og, OHW, scale, cg + b * OHW, ldc, go + img, OHW,
                                    1.0, gw + gr * Og * KK, KK);
            }
        }
        if (gin && st == ND_OK) {
            for (int64_t gr = 0; gr < g->groups && st == ND_OK; gr++)
                for (int64_t b = 0; b < nb && st == ND_OK; b++) {
                    const int64_t img = (n0 + b) * g->Cout * OHW + gr * Og * OHW;
                    /* gcols_b,g (KK x OHW) = W_g^T go_b,g: col-major gcols^T (OHW x KK, ld ldc) = go^T (OHW x Og) W_g
                     */
                    st = nd_cn_gemm(h, CUBLAS_OP_N, CUBLAS_OP_T, OHW, KK, Og, 1.0, go + img, OHW, w + gr * Og * KK, KK,
                                    0.0, cp + gr * KK * ldc + b * OHW, ldc);
                }
            if (st == ND_OK) {
                const int64_t npix = nb * g->C * g->H * g->W;
                nd_cn_col2im<T><<<nd_cuda_blocks(npix), 256, 0, s>>>(gin + n0 * g->C * g->H * g->W, cp, ldc, nb, *g);
                if (cudaGetLastError() != cudaSuccess) st = ND_ERROR(ND_ERR_DEVICE, "conv2d: col2im launch failed");
            }
        }
    }
    nd_tensor_release(&cols);
    cublasSetMathMode(h, old_math);
    return st;
}

/* A contiguous stand-in for an output t (t itself when contiguous, else a new tensor, copied
 * from t first when acc). */
static nd_status nd_cn_out_buffer(nd_tensor *buf, const nd_tensor *t, int acc)
{
    if (nd_tensor_is_contiguous(t)) {
        nd_tensor_view_of(buf, t);
        return ND_OK;
    }
    ND_TRY(nd_cn_new(buf, t->dtype, t->ndim, t->size));
    nd_status st = acc ? nd_cn_copy(buf, t) : ND_OK;
    if (st != ND_OK) nd_tensor_release(buf);
    return st;
}

/* Writes buf back into t when it is a stand-in, and drops it. */
static nd_status nd_cn_out_commit(nd_tensor *buf, nd_tensor *t, nd_status st)
{
    if (st == ND_OK && buf->storage != t->storage) st = nd_cn_copy(t, buf);
    nd_tensor_release(buf);
    return st;
}

extern "C" nd_status nd_conv2d_forward_ref_cuda(nd_tensor *out, const nd_tensor *input, const nd_tensor *weight,
                                                const nd_tensor *bias, const nd_conv2d_params *p)
{
    const char *op = "conv2d";
    nd_cn_conv g;
    int64_t bst = 0;
    ND_TRY(nd_conv_check_forward(ND_DEVICE_CUDA, op, &g, out, input, weight, bias, p, 0, &bst));
    nd_tensor x, w, o;
    ND_TRY(nd_cn_contiguous(&x, input));
    nd_status st = nd_cn_contiguous(&w, weight);
    if (st == ND_OK) {
        st = nd_cn_out_buffer(&o, out, 0);
        if (st == ND_OK) {
            ND_CN_DISPATCH(x.dtype, {
                st = nd_cn_ref_run<T>(&g, (T *)nd_tensor_data(&o), NULL, NULL, (const T *)nd_tensor_data(&x),
                                      (const T *)nd_tensor_data(&w), NULL, 1.0);
                if (st == ND_OK && bias) {
                    const int64_t n = g.N * g.Cout * g.OH * g.OW;
                    nd_cn_bias_add<T><<<nd_cuda_blocks(n), 256, 0, nd_cuda_stream()>>>(
                        (T *)nd_tensor_data(&o), (const T *)nd_tensor_data(bias), bst, n, g.Cout, g.OH * g.OW);
                    if (cudaGetLastError() != cudaSuccess) st = ND_ERROR(ND_ERR_DEVICE, "%s: bias launch failed", op);
                }
            });
            st = nd_cn_out_commit(&o, out, st);
        }
        nd_tensor_release(&w);
    }
    nd_tensor_release(&x);
    return st;
}

extern "C" nd_status nd_conv2d_backward_ref_cuda(nd_tensor *grad_input, nd_tensor *grad_weight, nd_tensor *grad_bias,
                                                 const nd_tensor *input, const nd_tensor *grad_output,
                                                 const nd_tensor *weight, double scale, const nd_conv2d_params *p)
{
    const char *op = "conv2d backward";
    if (!input || !weight) return ND_ERROR(ND_ERR_ARG, "%s: input and weight are required", op);
    nd_cn_conv g;
    int64_t gbst = 0;
    ND_TRY(nd_conv_check_backward(ND_DEVICE_CUDA, op, &g, grad_input, grad_weight, grad_bias, input, grad_output,
                                  weight, p, 0, &gbst));
    nd_tensor x, w, go, gi, gw;
    nd_tensor_init_empty(&gi, input->dtype);
    nd_tensor_init_empty(&gw, input->dtype);
    ND_TRY(nd_cn_contiguous(&x, input));
    nd_status st = nd_cn_contiguous(&w, weight);
    if (st == ND_OK) {
        st = nd_cn_contiguous(&go, grad_output);
        if (st == ND_OK && grad_input) st = nd_cn_out_buffer(&gi, grad_input, 0);
        if (st == ND_OK && grad_weight) st = nd_cn_out_buffer(&gw, grad_weight, 1);
        if (st == ND_OK && (grad_input || grad_weight)) {
            ND_CN_DISPATCH(x.dtype, st = nd_cn_ref_run<T>(&g, NULL, grad_input ? (T *)nd_tensor_data(&gi) : NULL,
                                                          grad_weight ? (T *)nd_tensor_data(&gw) : NULL,
                                                          (const T *)nd_tensor_data(&x), (const T *)nd_tensor_data(&w),
                                                          (const T *)nd_tensor_data(&go), scale));
        }
        if (st == ND_OK && grad_bias) st = nd_cn_bias_grad_launch(grad_bias, gbst, &go, &g, scale);
        if (grad_input && gi.storage) st = nd_cn_out_commit(&gi, grad_input, st);
        if (grad_weight && gw.storage) st = nd_cn_out_commit(&gw, grad_weight, st);
        nd_tensor_release(&go);
        nd_tensor_release(&w);
    }
    nd_tensor_release(&x);
    return st;
}

extern "C" nd_status nd_im2col_cuda(nd_tensor *cols, const nd_tensor *input, const nd_conv2d_params *p)
{
    const char *op = "im2col";
    nd_cn_conv g;
    int64_t size[2];
    ND_TRY(nd_conv_check_im2col(ND_DEVICE_CUDA, op, &g, cols, input, p, size));
    nd_tensor x;
    ND_TRY(nd_cn_contiguous(&x, input));
    ND_CN_DISPATCH(x.dtype, nd_cn_im2col<T><<<nd_cuda_blocks(size[0] * size[1]), 256, 0, nd_cuda_stream()>>>(
                                (T *)nd_tensor_data(cols), size[1], (const T *)nd_tensor_data(&x), g.N, g));
    nd_tensor_release(&x);
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}

extern "C" nd_status nd_col2im_cuda(nd_tensor *image, const nd_tensor *cols, const nd_conv2d_params *p)
{
    const char *op = "col2im";
    nd_cn_conv g;
    int64_t size[2];
    ND_TRY(nd_conv_check_col2im(ND_DEVICE_CUDA, op, &g, image, cols, p, size));
    nd_tensor c;
    ND_TRY(nd_cn_contiguous(&c, cols));
    ND_CN_DISPATCH(c.dtype, nd_cn_col2im<T><<<nd_cuda_blocks(g.N * g.C * g.H * g.W), 256, 0, nd_cuda_stream()>>>(
                                (T *)nd_tensor_data(image), (const T *)nd_tensor_data(&c), size[1], g.N, g));
    nd_tensor_release(&c);
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}
