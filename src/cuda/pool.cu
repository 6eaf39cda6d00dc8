/* 2-d pooling on the GPU: max (with indices as the CPU stores them: 0-based h*W + w within the
 * plane), average (count_include_pad, ceil mode) and adaptive average; forward and backward.
 * Forward: one thread per output. Backward: one thread per input pixel gathering the outputs
 * whose windows hold it (deterministic, no atomics, no memset). Shapes and rules: nd_cpu_nn.h. */
#include "nn_common.cuh"

typedef nd_pool_geom nd_cn_pool; /* nd_cpu_nn.h, filled by the shared checks (nn_check.c) */

#define ND_CN_LOOP(i, n)                                                                                               \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

/* ---- max ---- */

/* First maximum in row-major order over the clipped window; a NaN wins (the first one). */
template <typename T> __global__ void nd_cn_maxpool_fwd(T *out, int64_t *ind, const T *x, nd_cn_pool g)
{
    const int64_t OHW = g.OH * g.OW;
    ND_CN_LOOP(i, g.planes * OHW)
    {
        const int64_t pl = i / OHW, r = i % OHW, oh = r / g.OW, ow = r % g.OW;
        int64_t h0 = oh * g.sh - g.ph, h1 = h0 + g.kh, w0 = ow * g.sw - g.pw, w1 = w0 + g.kw;
        if (h0 < 0) h0 = 0;
        if (w0 < 0) w0 = 0;
        if (h1 > g.H) h1 = g.H;
        if (w1 > g.W) w1 = g.W;
        const T *xp = x + pl * g.H * g.W;
        int64_t best = h0 * g.W + w0;
        T bv = xp[best];
        for (int64_t h = h0; h < h1; h++)
            for (int64_t w = w0; w < w1; w++) {
                const T v = xp[h * g.W + w];
                if (v > bv || (v != v && bv == bv)) {
                    bv = v;
                    best = h * g.W + w;
                }
            }
        out[i] = bv;
        ind[i] = best;
    }
}

/* Output rows (or columns) whose unclipped window [o*s - p, o*s - p + k) holds pixel h:
 * [lo, hi) clipped to [0, O). */
__device__ __forceinline__ void nd_cn_pool_range(int64_t h, int64_t k, int64_t s, int64_t p, int64_t O, int64_t *lo,
                                                 int64_t *hi)
{
    int64_t a = h + p - k + 1; /* o*s >= a */
    int64_t l = a <= 0 ? 0 : (a + s - 1) / s;
    int64_t u = (h + p) / s + 1; /* o*s <= h + p */
    *lo = l;
    *hi = u < O ? u : O;
}

template <typename T> __global__ void nd_cn_maxpool_bwd(T *gi, const T *go, const int64_t *ind, nd_cn_pool g)
{
    const int64_t HW = g.H * g.W, OHW = g.OH * g.OW;
    ND_CN_LOOP(i, g.planes * HW)
    {
        const int64_t pl = i / HW, r = i % HW, h = r / g.W, w = r % g.W;
        int64_t oh0, oh1, ow0, ow1;
        nd_cn_pool_range(h, g.kh, g.sh, g.ph, g.OH, &oh0, &oh1);
        nd_cn_pool_range(w, g.kw, g.sw, g.pw, g.OW, &ow0, &ow1);
        const int64_t *ip = ind + pl * OHW;
        const T *gp = go + pl * OHW;
        T s = 0;
        for (int64_t oh = oh0; oh < oh1; oh++)
            for (int64_t ow = ow0; ow < ow1; ow++)
                if (ip[oh * g.OW + ow] == r) s += gp[oh * g.OW + ow];
        gi[i] = s;
    }
}

/* ---- average ---- */

/* The window of output (oh, ow) clipped to the image, and its divisor (as the CPU). */
template <typename T>
__device__ __forceinline__ void nd_cn_avg_window(const nd_cn_pool &g, int64_t oh, int64_t ow, int64_t *h0, int64_t *h1,
                                                 int64_t *w0, int64_t *w1, T *div)
{
    int64_t a = oh * g.sh - g.ph, b = a + g.kh, c = ow * g.sw - g.pw, d = c + g.kw;
    if (b > g.H + g.ph) b = g.H + g.ph;
    if (d > g.W + g.pw) d = g.W + g.pw;
    int64_t padded = (b - a) * (d - c);
    if (a < 0) a = 0;
    if (c < 0) c = 0;
    if (b > g.H) b = g.H;
    if (d > g.W) d = g.W;
    *h0 = a, *h1 = b, *w0 = c, *w1 = d;
    *div = (T)(g.count_include_pad ? padded : (b - a) * (d - c));
}

template <typename T> __global__ void nd_cn_avgpool_fwd(T *out, const T *x, nd_cn_pool g)
{
    const int64_t OHW = g.OH * g.OW;
    ND_CN_LOOP(i, g.planes * OHW)
    {
        const int64_t pl = i / OHW, r = i % OHW, oh = r / g.OW, ow = r % g.OW;
        int64_t h0, h1, w0, w1;
        T div, s = 0;
        nd_cn_avg_window<T>(g, oh, ow, &h0, &h1, &w0, &w1, &div);
        const T *xp = x + pl * g.H * g.W;
        for (int64_t h = h0; h < h1; h++)
            for (int64_t w = w0; w < w1; w++)
                s += xp[h * g.W + w];
        out[i] = div > 0 ? s / div : (T)0;
    }
}

template <typename T> __global__ void nd_cn_avgpool_bwd(T *gi, const T *go, nd_cn_pool g)
{
    const int64_t HW = g.H * g.W, OHW = g.OH * g.OW;
    ND_CN_LOOP(i, g.planes * HW)
    {
        const int64_t pl = i / HW, r = i % HW, h = r / g.W, w = r % g.W;
        int64_t oh0, oh1, ow0, ow1;
        nd_cn_pool_range(h, g.kh, g.sh, g.ph, g.OH, &oh0, &oh1);
        nd_cn_pool_range(w, g.kw, g.sw, g.pw, g.OW, &ow0, &ow1);
        const T *gp = go + pl * OHW;
        T s = 0;
        for (int64_t oh = oh0; oh < oh1; oh++)
            for (int64_t ow = ow0; ow < ow1; ow++) {
                int64_t h0, h1, w0, w1;
                T div;
                nd_cn_avg_window<T>(g, oh, ow, &h0, &h1, &w0, &w1, &div);
                if (div > 0 && h >= h0 && h < h1 && w >= w0 && w < w1) s += gp[oh * g.OW + ow] / div;
            }
        gi[i] = s;
    }
}

/* ---- adaptive average: bin i covers [floor(i*H/OH), ceil((i+1)*H/OH)) ---- */

template <typename T> __global__ void nd_cn_adaptive_fwd(T *out, const T *x, nd_cn_pool g)
{
    const int64_t OHW = g.OH * g.OW;
    ND_CN_LOOP(i, g.planes * OHW)
    {
        const int64_t pl = i / OHW, r = i % OHW, oh = r / g.OW, ow = r % g.OW;
        const int64_t h0 = oh * g.H / g.OH, h1 = ((oh + 1) * g.H + g.OH - 1) / g.OH;
        const int64_t w0 = ow * g.W / g.OW, w1 = ((ow + 1) * g.W + g.OW - 1) / g.OW;
        const T *xp = x + pl * g.H * g.W;
        T s = 0;
        for (int64_t h = h0; h < h1; h++)
            for (int64_t w = w0; w < w1; w++)
                s += xp[h * g.W + w];
        out[i] = s / (T)((h1 - h0) * (w1 - w0));
    }
}

template <typename T> __global__ void nd_cn_adaptive_bwd(T *gi, const T *go, nd_cn_pool g)
{
    const int64_t HW = g.H * g.W, OHW = g.OH * g.OW;
    ND_CN_LOOP(i, g.planes * HW)
    {
        const int64_t pl = i / HW, r = i % HW, h = r / g.W, w = r % g.W;
        /* bins holding h: floor(h*OH/H) <= oh < ceil((h+1)*OH/H); membership re-checked */
        const int64_t oh0 = h * g.OH / g.H, oh1 = ((h + 1) * g.OH + g.H - 1) / g.H;
        const int64_t ow0 = w * g.OW / g.W, ow1 = ((w + 1) * g.OW + g.W - 1) / g.W;
        const T *gp = go + pl * OHW;
        T s = 0;
        for (int64_t oh = oh0; oh < oh1 && oh < g.OH; oh++) {
            const int64_t h0 = oh * g.H / g.OH, h1 = ((oh + 1) * g.H + g.OH - 1) / g.OH;
            if (h < h0 || h >= h1) continue;
            for (int64_t ow = ow0; ow < ow1 && ow < g.OW; ow++) {
                const int64_t w0 = ow * g.W / g.OW, w1 = ((ow + 1) * g.W + g.OW - 1) / g.OW;
                if (w < w0 || w >= w1) continue;
                s += gp[oh * g.OW + ow] / (T)((h1 - h0) * (w1 - w0));
            }
        }
        gi[i] = s;
    }
}

/* ---- validation: nd_pool_check_* (src/cpu/nn_check.c, shared with pool.c) ---- */

#define ND_CN_POOL_LAUNCH(kernel, n, dt, ...)                                                                          \
    do {                                                                                                               \
        cudaStream_t s_ = nd_cuda_stream();                                                                            \
        ND_CN_DISPATCH(dt, kernel<T><<<nd_cuda_blocks(n), 256, 0, s_>>>(__VA_ARGS__));                                 \
    } while (0)

extern "C" nd_status nd_maxpool2d_forward_cuda(nd_tensor *out, nd_tensor *indices, const nd_tensor *input,
                                               const nd_pool2d_params *p)
{
    const char *op = "maxpool2d";
    nd_cn_pool g;
    int64_t size[4];
    ND_TRY(nd_pool_check_fwd(ND_DEVICE_CUDA, op, &g, out, indices, input, p, size));
    nd_tensor x;
    ND_TRY(nd_cn_contiguous(&x, input));
    ND_CN_POOL_LAUNCH(nd_cn_maxpool_fwd, g.planes * g.OH * g.OW, x.dtype, (T *)nd_tensor_data(out),
                      (int64_t *)nd_tensor_data(indices), (const T *)nd_tensor_data(&x), g);
    nd_tensor_release(&x);
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}

extern "C" nd_status nd_maxpool2d_backward_cuda(nd_tensor *grad_input, const nd_tensor *grad_output,
                                                const nd_tensor *indices, const nd_pool2d_params *p)
{
    const char *op = "maxpool2d backward";
    nd_cn_pool g;
    int64_t size[4];
    ND_TRY(nd_pool_check_bwd(ND_DEVICE_CUDA, op, &g, grad_input, grad_output, indices, p, size));
    nd_tensor go, ind;
    ND_TRY(nd_cn_contiguous(&go, grad_output));
    nd_status st = nd_cn_contiguous(&ind, indices);
    if (st == ND_OK) {
        ND_CN_POOL_LAUNCH(nd_cn_maxpool_bwd, g.planes * g.H * g.W, go.dtype, (T *)nd_tensor_data(grad_input),
                          (const T *)nd_tensor_data(&go), (const int64_t *)nd_tensor_data(&ind), g);
        nd_tensor_release(&ind);
    }
    nd_tensor_release(&go);
    ND_TRY(st);
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}

extern "C" nd_status nd_avgpool2d_forward_cuda(nd_tensor *out, const nd_tensor *input, const nd_pool2d_params *p)
{
    const char *op = "avgpool2d";
    nd_cn_pool g;
    int64_t size[4];
    ND_TRY(nd_pool_check_fwd(ND_DEVICE_CUDA, op, &g, out, NULL, input, p, size));
    nd_tensor x;
    ND_TRY(nd_cn_contiguous(&x, input));
    ND_CN_POOL_LAUNCH(nd_cn_avgpool_fwd, g.planes * g.OH * g.OW, x.dtype, (T *)nd_tensor_data(out),
                      (const T *)nd_tensor_data(&x), g);
    nd_tensor_release(&x);
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}

extern "C" nd_status nd_avgpool2d_backward_cuda(nd_tensor *grad_input, const nd_tensor *grad_output,
                                                const nd_pool2d_params *p)
{
    const char *op = "avgpool2d backward";
    nd_cn_pool g;
    int64_t size[4];
    ND_TRY(nd_pool_check_bwd(ND_DEVICE_CUDA, op, &g, grad_input, grad_output, NULL, p, size));
    nd_tensor go;
    ND_TRY(nd_cn_contiguous(&go, grad_output));
    ND_CN_POOL_LAUNCH(nd_cn_avgpool_bwd, g.planes * g.H * g.W, go.dtype, (T *)nd_tensor_data(grad_input),
                      (const T *)nd_tensor_data(&go), g);
    nd_tensor_release(&go);
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}

extern "C" nd_status nd_adaptive_avgpool2d_forward_cuda(nd_tensor *out, const nd_tensor *input)
{
    const char *op = "adaptive_avgpool2d";
    nd_cn_pool g;
    ND_TRY(nd_pool_check_adaptive_fwd(ND_DEVICE_CUDA, op, &g, out, input));
    nd_tensor x;
    ND_TRY(nd_cn_contiguous(&x, input));
    ND_CN_POOL_LAUNCH(nd_cn_adaptive_fwd, g.planes * g.OH * g.OW, x.dtype, (T *)nd_tensor_data(out),
                      (const T *)nd_tensor_data(&x), g);
    nd_tensor_release(&x);
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}

extern "C" nd_status nd_adaptive_avgpool2d_backward_cuda(nd_tensor *grad_input, const nd_tensor *grad_output)
{
    const char *op = "adaptive_avgpool2d backward";
    nd_cn_pool g;
    ND_TRY(nd_pool_check_adaptive_bwd(ND_DEVICE_CUDA, op, &g, grad_input, grad_output));
    nd_tensor go;
    ND_TRY(nd_cn_contiguous(&go, grad_output));
    ND_CN_POOL_LAUNCH(nd_cn_adaptive_bwd, g.planes * g.H * g.W, go.dtype, (T *)nd_tensor_data(grad_input),
                      (const T *)nd_tensor_data(&go), g);
    nd_tensor_release(&go);
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}
