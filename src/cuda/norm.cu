/* Batch normalisation on the GPU over (N,C) or (N,C,d2,...) viewed as (N, C, S): training
 * forward (batch statistics, running averages), evaluation forward, backward. Own kernels:
 *   1. partial sums per (plane c, slice j) in double (grid C x J blocks);
 *   2. one thread per plane combines its J partials in order (deterministic), writes the
 *      statistics / parameter gradients and the per-plane affine coefficients;
 *   3. an elementwise pass y = a[c] x + b[c] (+ d[c] go for the backward).
 * The coefficients are computed in double and rounded to T exactly as the CPU kernel does.
 * Scratch: nd_cuda_workspace (partials and coefficients), valid for the call. */
#include "nn_common.cuh"

#define ND_CN_BN_THREADS 256

/* A per-plane vector (pointer, stride); p NULL when absent. */
typedef nd_bn_vec nd_cn_vec; /* nd_cpu_nn.h, filled by the shared checks (nn_check.c) */

template <typename T> __device__ __forceinline__ double nd_cn_vget(nd_cn_vec v, int64_t c, double def)
{
    return v.p ? (double)((const T *)v.p)[c * v.stride] : def;
}
template <typename T> __device__ __forceinline__ void nd_cn_vset(nd_cn_vec v, int64_t c, double x)
{
    if (v.p) ((T *)v.p)[c * v.stride] = (T)x;
}

/* Pass 1. Block (c, j) sums its share of the m = N*S values of plane c:
 * MODE 0: sum x, sum x^2;  MODE 1: sum go, sum go * x.
 * part[(c * J + j) * 2 + {0,1}]. */
template <typename T, int MODE>
__global__ void nd_cn_bn_partial(double *part, const T *x, const T *go, int64_t N, int64_t C, int64_t S)
{
    __shared__ double sh[32];
    const int64_t c = blockIdx.x, J = gridDim.y, m = N * S;
    const int64_t chunk = (m + J - 1) / J, lo = blockIdx.y * chunk, hi = lo + chunk < m ? lo + chunk : m;
    double s1 = 0, s2 = 0;
    for (int64_t k = lo + threadIdx.x; k < hi; k += blockDim.x) {
        const int64_t n = k / S, i = (n * C + c) * S + (k - n * S);
        const double xv = (double)x[i];
        if (MODE == 0) {
            s1 += xv;
            s2 += xv * xv;
        } else {
            const double g = (double)go[i];
            s1 += g;
            s2 += g * xv;
        }
    }
    s1 = nd_cn_block_sum(s1, sh);
    s2 = nd_cn_block_sum(s2, sh);
    if (threadIdx.x == 0) {
        part[(c * J + blockIdx.y) * 2] = s1;
        part[(c * J + blockIdx.y) * 2 + 1] = s2;
    }
}

/* Sums of plane c's J partials, in order. */
__device__ __forceinline__ void nd_cn_bn_combine(const double *part, int64_t c, int64_t J, double *s1, double *s2)
{
    double a = 0, b = 0;
    for (int64_t j = 0; j < J; j++) {
        a += part[(c * J + j) * 2];
        b += part[(c * J + j) * 2 + 1];
    }
    *s1 = a, *s2 = b;
}

/* Pass 2 of the training forward: statistics, running averages, coef[c] = (scale, shift). */
template <typename T>
__global__ void nd_cn_bn_train_stats(T *coef, const double *part, int64_t J, int64_t C, int64_t m, nd_cn_vec w,
                                     nd_cn_vec b, nd_cn_vec smean, nd_cn_vec sinv, nd_cn_vec rmean, nd_cn_vec rvar,
                                     double momentum, double eps)
{
    for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < C; c += (int64_t)gridDim.x * blockDim.x) {
        double sum, sq;
        nd_cn_bn_combine(part, c, J, &sum, &sq);
        const double mean = sum / (double)m;
        double var = sq / (double)m - mean * mean;
        if (var < 0) var = 0;
        const double invstd = 1.0 / sqrt(var + eps);
        const double scale = invstd * nd_cn_vget<T>(w, c, 1.0), shift = nd_cn_vget<T>(b, c, 0.0) - mean * scale;
        coef[2 * c] = (T)scale;
        coef[2 * c + 1] = (T)shift;
        nd_cn_vset<T>(smean, c, mean);
        nd_cn_vset<T>(sinv, c, invstd);
        if (rmean.p) nd_cn_vset<T>(rmean, c, (1 - momentum) * nd_cn_vget<T>(rmean, c, 0) + momentum * mean);
        if (rvar.p)
            nd_cn_vset<T>(rvar, c,
                          (1 - momentum) * nd_cn_vget<T>(rvar, c, 0) + momentum * var * (double)m / (double)(m - 1));
    }
}

/* Evaluation coefficients from the running statistics. */
template <typename T>
__global__ void nd_cn_bn_eval_coef(T *coef, int64_t C, nd_cn_vec w, nd_cn_vec b, nd_cn_vec rmean, nd_cn_vec rvar,
                                   double eps)
{
    for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < C; c += (int64_t)gridDim.x * blockDim.x) {
        const double invstd = 1.0 / sqrt(nd_cn_vget<T>(rvar, c, 1) + eps);
        const double scale = invstd * nd_cn_vget<T>(w, c, 1.0);
        coef[2 * c] = (T)scale;
        coef[2 * c + 1] = (T)(nd_cn_vget<T>(b, c, 0.0) - nd_cn_vget<T>(rmean, c, 0) * scale);
    }
}

/* y = x * coef[c].0 + coef[c].1 over (N, C, S) contiguous (in place allowed). */
template <typename T> __global__ void nd_cn_bn_apply(T *y, const T *x, const T *coef, int64_t n, int64_t C, int64_t S)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t c = (i / S) % C;
        y[i] = x[i] * coef[2 * c] + coef[2 * c + 1];
    }
}

/* Pass 2 of the backward: parameter gradients and coef[c] = (A, B, C0) with
 * gi = A go + B x + C0 (training) or gi = A go (evaluation: B = C0 = 0). */
template <typename T>
__global__ void nd_cn_bn_bwd_coef(T *coef, const double *part, int64_t J, int64_t C, int64_t m, nd_cn_vec gw,
                                  nd_cn_vec gb, nd_cn_vec w, nd_cn_vec mean_v, nd_cn_vec inv_v, int training,
                                  double scale, double eps)
{
    for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < C; c += (int64_t)gridDim.x * blockDim.x) {
        const double mean = nd_cn_vget<T>(mean_v, c, 0);
        const double invstd = training ? nd_cn_vget<T>(inv_v, c, 1) : 1.0 / sqrt(nd_cn_vget<T>(inv_v, c, 1) + eps);
        double sg, sgx_raw;
        nd_cn_bn_combine(part, c, J, &sg, &sgx_raw);
        const double sgx = sgx_raw - mean * sg; /* sum go (x - mean) */
        if (gw.p) nd_cn_vset<T>(gw, c, nd_cn_vget<T>(gw, c, 0) + scale * sgx * invstd);
        if (gb.p) nd_cn_vset<T>(gb, c, nd_cn_vget<T>(gb, c, 0) + scale * sg);
        const double k = invstd * nd_cn_vget<T>(w, c, 1.0);
        if (training) {
            const double bx = -k * invstd * invstd * sgx / (double)m;
            coef[3 * c] = (T)k;
            coef[3 * c + 1] = (T)bx;
            coef[3 * c + 2] = (T)(-k * sg / (double)m - bx * mean);
        } else {
            coef[3 * c] = (T)k;
            coef[3 * c + 1] = 0;
            coef[3 * c + 2] = 0;
        }
    }
}

template <typename T>
__global__ void nd_cn_bn_bwd_apply(T *gi, const T *go, const T *x, const T *coef, int64_t n, int64_t C, int64_t S,
                                   int training)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t c = (i / S) % C;
        gi[i] = training ? coef[3 * c] * go[i] + coef[3 * c + 1] * x[i] + coef[3 * c + 2] : coef[3 * c] * go[i];
    }
}

/* ---- host side ---- */

typedef nd_bn_geom nd_cn_bn; /* input viewed as (N, C, S) */

/* Slices per plane: enough blocks to fill the GPU (about 4 per SM), each with >= 4096 values. */
static int64_t nd_cn_bn_slices(const nd_cn_bn *g)
{
    static int sms;
    if (!sms) {
        int d = nd_cuda_current_device();
        if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, d) != cudaSuccess || sms < 1) sms = 100;
    }
    int64_t m = g->N * g->S, want = (4 * (int64_t)sms + g->C - 1) / g->C, most = (m + 4095) / 4096;
    if (want > most) want = most;
    if (want > 1024) want = 1024;
    return want < 1 ? 1 : want;
}

/* Workspace: partials (C*J*2 doubles) then coefficients (C*3 doubles, enough for either T). */
static nd_status nd_cn_bn_scratch(const nd_cn_bn *g, int64_t J, double **part, void **coef)
{
    void *ws;
    size_t np = (size_t)(g->C * J * 2), nc = (size_t)(g->C * 3);
    ND_TRY(nd_cuda_workspace(&ws, (np + nc) * sizeof(double)));
    *part = (double *)ws;
    *coef = (double *)ws + np;
    return ND_OK;
}

extern "C" nd_status nd_batchnorm_forward_train_cuda(nd_tensor *out, nd_tensor *save_mean, nd_tensor *save_invstd,
                                                     const nd_tensor *input, const nd_tensor *weight,
                                                     const nd_tensor *bias, nd_tensor *running_mean,
                                                     nd_tensor *running_var, double momentum, double eps)
{
    const char *op = "batchnorm";
    nd_cn_bn g;
    nd_cn_vec w, b, sm, si, rm, rv;
    ND_TRY(nd_bn_check_forward_train(ND_DEVICE_CUDA, op, &g, out, save_mean, save_invstd, input, weight, bias, running_mean,
                                     running_var, eps, &w, &b, &sm, &si, &rm, &rv));
    nd_dtype dt = input->dtype;
    const int64_t J = nd_cn_bn_slices(&g), n = g.N * g.C * g.S;
    double *part;
    void *coef;
    ND_TRY(nd_cn_bn_scratch(&g, J, &part, &coef));
    nd_tensor x;
    ND_TRY(nd_cn_contiguous(&x, input));
    cudaStream_t st = nd_cuda_stream();
    dim3 grid((unsigned)g.C, (unsigned)J);
    ND_CN_DISPATCH(dt, {
        const T *xp = (const T *)nd_tensor_data(&x);
        nd_cn_bn_partial<T, 0><<<grid, ND_CN_BN_THREADS, 0, st>>>(part, xp, (const T *)NULL, g.N, g.C, g.S);
        nd_cn_bn_train_stats<T><<<nd_cuda_blocks(g.C), 256, 0, st>>>((T *)coef, part, J, g.C, g.N * g.S, w, b, sm, si,
                                                                     rm, rv, momentum, eps);
        nd_cn_bn_apply<T>
            <<<nd_cuda_blocks(n), 256, 0, st>>>((T *)nd_tensor_data(out), xp, (const T *)coef, n, g.C, g.S);
    });
    nd_tensor_release(&x);
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}

extern "C" nd_status nd_batchnorm_forward_eval_cuda(nd_tensor *out, const nd_tensor *input, const nd_tensor *weight,
                                                    const nd_tensor *bias, const nd_tensor *running_mean,
                                                    const nd_tensor *running_var, double eps)
{
    const char *op = "batchnorm";
    nd_cn_bn g;
    nd_cn_vec w, b, rm, rv;
    ND_TRY(nd_bn_check_forward_eval(ND_DEVICE_CUDA, op, &g, out, input, weight, bias, running_mean, running_var, &w, &b, &rm,
                                    &rv));
    nd_dtype dt = input->dtype;
    const int64_t n = g.N * g.C * g.S;
    double *part;
    void *coef;
    ND_TRY(nd_cn_bn_scratch(&g, 0, &part, &coef));
    nd_tensor x;
    ND_TRY(nd_cn_contiguous(&x, input));
    cudaStream_t st = nd_cuda_stream();
    ND_CN_DISPATCH(dt, {
        nd_cn_bn_eval_coef<T><<<nd_cuda_blocks(g.C), 256, 0, st>>>((T *)coef, g.C, w, b, rm, rv, eps);
        nd_cn_bn_apply<T><<<nd_cuda_blocks(n), 256, 0, st>>>((T *)nd_tensor_data(out), (const T *)nd_tensor_data(&x),
                                                             (const T *)coef, n, g.C, g.S);
    });
    nd_tensor_release(&x);
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}

extern "C" nd_status nd_batchnorm_backward_cuda(nd_tensor *grad_input, nd_tensor *grad_weight, nd_tensor *grad_bias,
                                                const nd_tensor *input, const nd_tensor *grad_output,
                                                const nd_tensor *weight, const nd_tensor *save_mean,
                                                const nd_tensor *save_invstd, const nd_tensor *running_mean,
                                                const nd_tensor *running_var, int training, double scale, double eps)
{
    const char *op = "batchnorm backward";
    nd_cn_bn g;
    nd_cn_vec gw, gb, w, mean, inv;
    ND_TRY(nd_bn_check_backward(ND_DEVICE_CUDA, op, &g, grad_input, grad_weight, grad_bias, input, grad_output, weight, save_mean,
                                save_invstd, running_mean, running_var, training, &gw, &gb, &w, &mean, &inv));
    nd_dtype dt = input->dtype;
    const int64_t J = nd_cn_bn_slices(&g), n = g.N * g.C * g.S;
    double *part;
    void *coef;
    ND_TRY(nd_cn_bn_scratch(&g, J, &part, &coef));
    nd_tensor x, go;
    ND_TRY(nd_cn_contiguous(&x, input));
    nd_status stt = nd_cn_contiguous(&go, grad_output);
    if (stt == ND_OK) {
        cudaStream_t st = nd_cuda_stream();
        dim3 grid((unsigned)g.C, (unsigned)J);
        ND_CN_DISPATCH(dt, {
            const T *xp = (const T *)nd_tensor_data(&x), *gp = (const T *)nd_tensor_data(&go);
            nd_cn_bn_partial<T, 1><<<grid, ND_CN_BN_THREADS, 0, st>>>(part, xp, gp, g.N, g.C, g.S);
            nd_cn_bn_bwd_coef<T><<<nd_cuda_blocks(g.C), 256, 0, st>>>((T *)coef, part, J, g.C, g.N * g.S, gw, gb, w,
                                                                      mean, inv, training, scale, eps);
            if (grad_input)
                nd_cn_bn_bwd_apply<T><<<nd_cuda_blocks(n), 256, 0, st>>>((T *)nd_tensor_data(grad_input), gp, xp,
                                                                         (const T *)coef, n, g.C, g.S, training);
        });
        nd_tensor_release(&go);
    }
    nd_tensor_release(&x);
    ND_TRY(stt);
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}
