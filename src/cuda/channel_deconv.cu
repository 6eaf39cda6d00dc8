/* ChannelDeconv on the GPU (spec section 4): channel whitening with a shared B x B matrix from
 * the UNCENTRED second moment of the sampled columns (the HEAD quirk), and a scalar
 * standardisation of the leftover channels. Semantics: nd_cpu_deconv.h; GPU rules:
 * nd_cuda_deconv.h.
 *
 * As channel_deconv.c, the spec's B x Ncol matrix is kept transposed, Xt (Ncol x B):
 *   Xt[t][r] = x[n][r*cb + j][pix], t = (j*N + n)*HW + pix, cb = c/B, Ncol = cb*N*HW,
 * so the sampled columns are the rows 0, ss, 2 ss, ... (row stride ss*B) and the output is
 * Yt = (Xt - 1 mean1^T) D^T. The leftover statistics are single-block reductions in double
 * (fixed order). Host synchronisation: only nd_channel_deconv_forward_cuda with leftover
 * channels, to return mean2 / var2 as host doubles (the CPU API); see nd_cuda_deconv.h. */
#include <math.h>

#include "deconv_common.cuh"

#define ND_CD_T 256
#define ND_CD_RED 1024 /* threads of the single-block reductions */

/* nd_cd_dims: nd_cpu_deconv.h, filled by nd_cd_check_dims (src/cpu/deconv_check.c). */

/* Xt <- x (back == 0; one thread per Xt entry) or y <- Yt (back != 0; one per y entry of the
 * first c channels); x / y contiguous (N, C, HW). */
template <typename T> __global__ void nd_cd_permute_k(T *Xt, T *x, nd_cd_dims d, int back)
{
    const int64_t n_all = d.ncol * d.B;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n_all; i += (int64_t)gridDim.x * blockDim.x) {
        if (!back) {
            const int64_t t = i / d.B, r = i % d.B, j = t / (d.N * d.HW), n = (t / d.HW) % d.N, pix = t % d.HW;
            Xt[i] = x[(n * d.C + r * d.cb + j) * d.HW + pix];
        } else {
            const int64_t n = i / (d.c * d.HW), ch = (i / d.HW) % d.c, pix = i % d.HW;
            const int64_t r = ch / d.cb, j = ch % d.cb, t = (j * d.N + n) * d.HW + pix;
            x[(n * d.C + ch) * d.HW + pix] = Xt[t * d.B + r];
        }
    }
}

/* out[i] = v[i] / div (rounded to T once). */
template <typename T> __global__ void nd_cd_div_k(T *out, const double *v, int64_t n, double div)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = (T)(v[i] / div);
}

/* Xt (rows x B) -= mean1. */
template <typename T> __global__ void nd_cd_center_k(T *Xt, const T *mean1, int64_t rows, int64_t B)
{
    const int64_t n = rows * B;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        Xt[i] -= mean1[i % B];
}

/* Xs (ns x B) = the sampled rows of Xt. */
template <typename T> __global__ void nd_cd_sampled_k(T *Xs, const T *Xt, nd_cd_dims d)
{
    const int64_t n = d.ns * d.B;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        Xs[i] = Xt[(i / d.B) * d.ss * d.B + i % d.B];
}

/* S = (GA + GA^T) / ns. */
template <typename T> __global__ void nd_cd_sym_k(T *S, const T *GA, int64_t B, double ns)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < B * B; i += (int64_t)gridDim.x * blockDim.x)
        S[i] = (T)(((double)GA[i] + (double)GA[(i % B) * B + i / B]) / ns);
}

/* GXt[sampled row r] += GXs[r] + gm / ns (gm = -the column sums of GXt, double). */
template <typename T> __global__ void nd_cd_addsampled_k(T *GXt, const T *GXs, const double *gm, nd_cd_dims d)
{
    const int64_t n = d.ns * d.B;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / d.B, a = i % d.B;
        T *o = GXt + r * d.ss * d.B + a;
        *o = *o + (T)((double)GXs[i] + gm[a] / (double)d.ns);
    }
}

/* Sum over the threads of one block of ND_CD_RED threads (all of them call it). */
__device__ double nd_cd_block_sum(double v, double *sh)
{
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int w = ND_CD_RED / 2; w > 0; w /= 2) {
        if ((int)threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
        __syncthreads();
    }
    const double r = sh[0];
    __syncthreads();
    return r;
}

/* One block: stat[0] = mean2, stat[1] = unbiased var2 of the sampled leftover entries (entries
 * 0, ss, 2 ss, ... of each sample's run of L = (C-c)*HW values), two passes as the CPU. */
template <typename T> __global__ void nd_cd_left_stats_k(double *stat, const T *x, nd_cd_dims d)
{
    __shared__ double sh[ND_CD_RED];
    const int64_t L = (d.C - d.c) * d.HW, per = (L + d.ss - 1) / d.ss, n_all = d.N * per;
    double acc = 0;
    for (int64_t i = threadIdx.x; i < n_all; i += blockDim.x)
        acc += (double)x[((i / per) * d.C + d.c) * d.HW + (i % per) * d.ss];
    const double m = nd_cd_block_sum(acc, sh) / (double)d.ns2;
    acc = 0;
    for (int64_t i = threadIdx.x; i < n_all; i += blockDim.x) {
        const double v = (double)x[((i / per) * d.C + d.c) * d.HW + (i % per) * d.ss] - m;
        acc += v * v;
    }
    const double sq = nd_cd_block_sum(acc, sh);
    if (threadIdx.x == 0) {
        stat[0] = m;
        stat[1] = sq / (double)(d.ns2 - 1);
    }
}

/* y = (x - mean2) / sqrt(var2 + eps) on the leftover channels; (mean2, var2) = stat[0..1] when
 * stat is given, else m2, v2. */
template <typename T>
__global__ void nd_cd_left_apply_k(T *y, const T *x, const double *stat, double m2, double v2, double eps, nd_cd_dims d)
{
    const int64_t L = (d.C - d.c) * d.HW, n_all = d.N * L;
    const double m = stat ? stat[0] : m2, inv = 1.0 / sqrt((stat ? stat[1] : v2) + eps);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n_all; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t o = ((i / L) * d.C + d.c) * d.HW + i % L;
        y[o] = (T)(((double)x[o] - m) * inv);
    }
}

/* One block: sums[0] = sum of gy, sums[1] = sum of gy (x - mean2) over all leftover entries. */
template <typename T>
__global__ void nd_cd_left_sums_k(double *sums, const T *gy, const T *x, double mean2, nd_cd_dims d)
{
    __shared__ double sh[ND_CD_RED];
    const int64_t L = (d.C - d.c) * d.HW, n_all = d.N * L;
    double sg = 0, sgx = 0;
    for (int64_t i = threadIdx.x; i < n_all; i += blockDim.x) {
        const int64_t o = ((i / L) * d.C + d.c) * d.HW + i % L;
        sg += (double)gy[o];
        sgx += (double)gy[o] * ((double)x[o] - mean2);
    }
    sg = nd_cd_block_sum(sg, sh);
    sgx = nd_cd_block_sum(sgx, sh);
    if (threadIdx.x == 0) {
        sums[0] = sg;
        sums[1] = sgx;
    }
}

/* gx = gy / sqrt(var2 + eps) on the leftover entries, plus the mean / variance terms on the
 * sampled ones. */
template <typename T>
__global__ void nd_cd_left_back_k(T *gx, const T *gy, const T *x, const double *sums, double mean2, double var2,
                                  double eps, nd_cd_dims d)
{
    const int64_t L = (d.C - d.c) * d.HW, n_all = d.N * L;
    const double inv = 1.0 / sqrt(var2 + eps);
    const double gm = -inv * sums[0], gv = -0.5 * inv * inv * inv * sums[1];
    const double cm = gm / (double)d.ns2, cv = 2.0 * gv / (double)(d.ns2 - 1);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n_all; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t t = i % L, o = ((i / L) * d.C + d.c) * d.HW + t;
        double v = (double)gy[o] * inv;
        if (t % d.ss == 0) v += cm + cv * ((double)x[o] - mean2);
        gx[o] = (T)v;
    }
}

static nd_status nd_cd_dims_of(const char *op, nd_cd_dims *d, const nd_tensor *x, int64_t B, int64_t s)
{
    return nd_cd_check_dims(ND_DEVICE_CUDA, op, d, x, B, s);
}

/* Launch helpers: the kernel for T with the grid-stride shape of n elements. */
#define ND_CD_GRID(n) nd_cuda_blocks(n), ND_CD_T, 0, nd_cuda_stream()

/* y = whitened x: Xt (permuted x, centred here), Yt scratch; the leftover channels from stat
 * (device) or m2 / v2. */
template <typename T>
static nd_status nd_cd_apply_run(T *y, const T *x, T *Xt, T *Yt, const T *mean1, const T *D, const double *stat,
                                 double m2, double v2, double eps, const nd_cd_dims &d)
{
    const nd_dtype dt = sizeof(T) == 4 ? ND_DTYPE_F32 : ND_DTYPE_F64;
    nd_cd_center_k<T><<<ND_CD_GRID(d.ncol * d.B)>>>(Xt, mean1, d.ncol, d.B);
    ND_TRY(nd_dc_gemm_(dt, 0, 1, d.ncol, d.B, d.B, 1.0, Xt, d.B, 0, D, d.B, 0, 0.0, Yt, d.B, 0, 1));
    nd_cd_permute_k<T><<<ND_CD_GRID(d.ncol * d.B)>>>(Yt, y, d, 1);
    if (d.c < d.C) nd_cd_left_apply_k<T><<<ND_CD_GRID(d.N * (d.C - d.c) * d.HW)>>>(y, x, stat, m2, v2, eps, d);
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}

/* Statistics of the forward: mean1, cov (uncentred), the leftover stat (device, when any). */
template <typename T>
static nd_status nd_cd_moments_run(T *mean1, T *cov, double *stat, double *sum, const T *x, T *Xt, double eps,
                                   const nd_cd_dims &d)
{
    const nd_dtype dt = sizeof(T) == 4 ? ND_DTYPE_F32 : ND_DTYPE_F64;
    nd_cd_permute_k<T><<<ND_CD_GRID(d.ncol * d.B)>>>(Xt, (T *)x, d, 0);
    ND_TRY(nd_dc_colsum_(dt, sum, Xt, d.ns, d.ss * d.B, d.B, 1.0));
    nd_cd_div_k<T><<<ND_CD_GRID(d.B)>>>(mean1, sum, d.B, (double)d.ns);
    ND_TRY(nd_dc_gram_(dt, cov, Xt, d.ns, d.ss * d.B, 1, d.B, (double)d.ns, eps));
    if (d.c < d.C) nd_cd_left_stats_k<T><<<1, ND_CD_RED, 0, nd_cuda_stream()>>>(stat, x, d);
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}

static nd_status nd_cd_forward_impl(nd_tensor *y, nd_tensor *mean1, nd_tensor *D, nd_tensor *cov, nd_tensor *saved,
                                    double *mean2, double *var2, const nd_tensor *x, int64_t B, double eps, int iters,
                                    int64_t s)
{
    const char *op = "channel_deconv";
    nd_cd_dims d;
    ND_TRY(nd_cd_check_forward(ND_DEVICE_CUDA, op, &d, x, B, s));
    const nd_dtype dt = x->dtype;
    const nd_device dev = nd_tensor_device(x);
    const int64_t bs[1] = {B}, bb[2] = {B, B}, es = (int64_t)nd_dtype_size(dt);
    ND_TRY(nd_dc_prepare_out_(op, "y", y, dt, x->ndim, x->size, dev));
    ND_TRY(nd_dc_prepare_out_(op, "mean1", mean1, dt, 1, bs, dev));
    ND_TRY(nd_dc_prepare_out_(op, "cov", cov, dt, 2, bb, dev));
    nd_dc_scratch sc = {};
    const nd_tensor *xc;
    void *Xt = NULL, *Yt = NULL;
    double *sm = NULL; /* B column sums, then the 2 leftover statistics */
    nd_status st = nd_dc_contig(&sc, x, &xc);
    if (st == ND_OK) st = nd_dc_buffer(&sc, &Xt, es * d.ncol * B);
    if (st == ND_OK) st = nd_dc_buffer(&sc, &Yt, es * d.ncol * B);
    if (st == ND_OK) st = nd_dc_buffer(&sc, (void **)&sm, (int64_t)sizeof(double) * (B + 2));
    if (st == ND_OK) {
        if (dt == ND_DTYPE_F32)
            st = nd_cd_moments_run<float>((float *)nd_tensor_data(mean1), (float *)nd_tensor_data(cov), sm + B, sm,
                                          (const float *)nd_tensor_data(xc), (float *)Xt, eps, d);
        else
            st = nd_cd_moments_run<double>((double *)nd_tensor_data(mean1), (double *)nd_tensor_data(cov), sm + B, sm,
                                           (const double *)nd_tensor_data(xc), (double *)Xt, eps, d);
    }
    if (st == ND_OK) st = nd_isqrt_forward_cuda(D, saved, cov, iters);
    if (st == ND_OK) {
        if (dt == ND_DTYPE_F32)
            st = nd_cd_apply_run<float>((float *)nd_tensor_data(y), (const float *)nd_tensor_data(xc), (float *)Xt,
                                        (float *)Yt, (const float *)nd_tensor_data(mean1),
                                        (const float *)nd_tensor_data(D), sm + B, 0, 1, eps, d);
        else
            st = nd_cd_apply_run<double>((double *)nd_tensor_data(y), (const double *)nd_tensor_data(xc), (double *)Xt,
                                         (double *)Yt, (const double *)nd_tensor_data(mean1),
                                         (const double *)nd_tensor_data(D), sm + B, 0, 1, eps, d);
    }
    *mean2 = 0;
    *var2 = 1;
    if (st == ND_OK && d.c < d.C) { /* the one host synchronisation: two doubles for the host API */
        double h[2];
        cudaError_t e = cudaMemcpyAsync(h, sm + B, sizeof h, cudaMemcpyDeviceToHost, nd_cuda_stream());
        if (e == cudaSuccess) e = cudaStreamSynchronize(nd_cuda_stream());
        if (e != cudaSuccess)
            st = ND_ERROR(ND_ERR_DEVICE, "%s: reading the leftover statistics back: %s", op, cudaGetErrorString(e));
        else
            *mean2 = h[0], *var2 = h[1];
    }
    nd_dc_scratch_release(&sc);
    return st;
}

static nd_status nd_cd_apply_impl(nd_tensor *y, const nd_tensor *x, const nd_tensor *mean1, const nd_tensor *D,
                                  double mean2, double var2, double eps)
{
    const char *op = "channel_deconv_apply";
    nd_cd_dims d;
    ND_TRY(nd_cd_check_apply(ND_DEVICE_CUDA, op, &d, x, mean1, D));
    const int64_t B = d.B;
    const nd_tensor *ts[3] = {x, mean1, D};
    ND_TRY(nd_cuda_check_device(op, 3, ts));
    ND_TRY(nd_dc_prepare_out_(op, "y", y, x->dtype, x->ndim, x->size, nd_tensor_device(x)));
    const int64_t es = (int64_t)nd_dtype_size(x->dtype);
    nd_dc_scratch sc = {};
    const nd_tensor *xc, *mc, *dc;
    void *Xt = NULL, *Yt = NULL;
    nd_status st = nd_dc_contig(&sc, x, &xc);
    if (st == ND_OK) st = nd_dc_contig(&sc, mean1, &mc);
    if (st == ND_OK) st = nd_dc_contig(&sc, D, &dc);
    if (st == ND_OK) st = nd_dc_buffer(&sc, &Xt, es * d.ncol * B);
    if (st == ND_OK) st = nd_dc_buffer(&sc, &Yt, es * d.ncol * B);
    if (st == ND_OK) {
        if (x->dtype == ND_DTYPE_F32) {
            nd_cd_permute_k<float><<<ND_CD_GRID(d.ncol * B)>>>((float *)Xt, (float *)nd_tensor_data(xc), d, 0);
            st = nd_cd_apply_run<float>((float *)nd_tensor_data(y), (const float *)nd_tensor_data(xc), (float *)Xt,
                                        (float *)Yt, (const float *)nd_tensor_data(mc),
                                        (const float *)nd_tensor_data(dc), NULL, mean2, var2, eps, d);
        } else {
            nd_cd_permute_k<double><<<ND_CD_GRID(d.ncol * B)>>>((double *)Xt, (double *)nd_tensor_data(xc), d, 0);
            st = nd_cd_apply_run<double>((double *)nd_tensor_data(y), (const double *)nd_tensor_data(xc), (double *)Xt,
                                         (double *)Yt, (const double *)nd_tensor_data(mc),
                                         (const double *)nd_tensor_data(dc), NULL, mean2, var2, eps, d);
        }
    }
    nd_dc_scratch_release(&sc);
    return st;
}

/* Backward, first half: Xs (sampled, uncentred), Xt centred, GYt, GD = GYt^T Xc, GXt = GYt D
 * (into Xt's buffer). */
template <typename T>
static nd_status nd_cd_back_gd_run(T *GD, T *Xt, T *GYt, T *Xs, const T *x, const T *gy, const T *mean1, const T *D,
                                   const nd_cd_dims &d)
{
    const nd_dtype dt = sizeof(T) == 4 ? ND_DTYPE_F32 : ND_DTYPE_F64;
    nd_cd_permute_k<T><<<ND_CD_GRID(d.ncol * d.B)>>>(Xt, (T *)x, d, 0);
    nd_cd_sampled_k<T><<<ND_CD_GRID(d.ns * d.B)>>>(Xs, Xt, d);
    nd_cd_center_k<T><<<ND_CD_GRID(d.ncol * d.B)>>>(Xt, mean1, d.ncol, d.B);
    nd_cd_permute_k<T><<<ND_CD_GRID(d.ncol * d.B)>>>(GYt, (T *)gy, d, 0);
    ND_TRY(nd_dc_gemm_(dt, 1, 0, d.B, d.B, d.ncol, 1.0, GYt, d.B, 0, Xt, d.B, 0, 0.0, GD, d.B, 0, 1));
    ND_TRY(nd_dc_gemm_(dt, 0, 0, d.ncol, d.B, d.B, 1.0, GYt, d.B, 0, D, d.B, 0, 0.0, Xt, d.B, 0, 1));
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}

/* Second half, after GA = dL/dcov: GXt[sampled] += Xs S + Gmean1/ns, back to gx, leftovers. */
template <typename T>
static nd_status nd_cd_back_cov_run(T *gx, T *GXt, const T *Xs, const T *GA, T *S, T *GXs, double *gm, double *sums,
                                    const T *x, const T *gy, double mean2, double var2, double eps, const nd_cd_dims &d)
{
    const nd_dtype dt = sizeof(T) == 4 ? ND_DTYPE_F32 : ND_DTYPE_F64;
    ND_TRY(nd_dc_colsum_(dt, gm, GXt, d.ncol, d.B, d.B, -1.0)); /* Gmean1 = -sum of GXc */
    nd_cd_sym_k<T><<<ND_CD_GRID(d.B * d.B)>>>(S, GA, d.B, (double)d.ns);
    ND_TRY(nd_dc_gemm_(dt, 0, 0, d.ns, d.B, d.B, 1.0, Xs, d.B, 0, S, d.B, 0, 0.0, GXs, d.B, 0, 1));
    nd_cd_addsampled_k<T><<<ND_CD_GRID(d.ns * d.B)>>>(GXt, GXs, gm, d);
    nd_cd_permute_k<T><<<ND_CD_GRID(d.ncol * d.B)>>>(GXt, gx, d, 1);
    if (d.c < d.C) {
        nd_cd_left_sums_k<T><<<1, ND_CD_RED, 0, nd_cuda_stream()>>>(sums, gy, x, mean2, d);
        nd_cd_left_back_k<T><<<ND_CD_GRID(d.N * (d.C - d.c) * d.HW)>>>(gx, gy, x, sums, mean2, var2, eps, d);
    }
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}

static nd_status nd_cd_backward_impl(nd_tensor *gx, const nd_tensor *gy, const nd_tensor *x, const nd_tensor *mean1,
                                     const nd_tensor *D, const nd_tensor *cov, const nd_tensor *saved, double mean2,
                                     double var2, int64_t B, double eps, int iters, int64_t s)
{
    const char *op = "channel_deconv_backward";
    nd_cd_dims d;
    ND_TRY(nd_cd_dims_of(op, &d, x, B, s));
    const nd_dtype dt = x->dtype;
    const int64_t bs[1] = {B}, bb[2] = {B, B}, es = (int64_t)nd_dtype_size(dt);
    ND_TRY(nd_dc_check_float_(op, "gy", gy, (int)dt));
    ND_TRY(nd_deconv_check_shape_(op, "gy", gy, x->ndim, x->size));
    ND_TRY(nd_dc_check_float_(op, "mean1", mean1, (int)dt));
    ND_TRY(nd_deconv_check_shape_(op, "mean1", mean1, 1, bs));
    ND_TRY(nd_dc_check_float_(op, "D", D, (int)dt));
    ND_TRY(nd_deconv_check_shape_(op, "D", D, 2, bb));
    ND_TRY(nd_dc_check_float_(op, "cov", cov, (int)dt));
    ND_TRY(nd_deconv_check_shape_(op, "cov", cov, 2, bb));
    const nd_tensor *ts[6] = {x, gy, mean1, D, cov, saved};
    ND_TRY(nd_cuda_check_device(op, 6, ts));
    const nd_device dev = nd_tensor_device(x);
    ND_TRY(nd_dc_prepare_out_(op, "gx", gx, dt, x->ndim, x->size, dev));
    nd_dc_scratch sc = {};
    const nd_tensor *xc, *gyc, *mc, *dc;
    void *Xt = NULL, *GYt = NULL, *Xs = NULL, *GXs = NULL, *S = NULL;
    double *dbl = NULL; /* gm (B) and the 2 leftover sums */
    nd_tensor GD, GA;
    nd_tensor_init_empty(&GD, dt);
    nd_tensor_init_empty(&GA, dt);
    nd_status st = nd_dc_contig(&sc, x, &xc);
    if (st == ND_OK) st = nd_dc_contig(&sc, gy, &gyc);
    if (st == ND_OK) st = nd_dc_contig(&sc, mean1, &mc);
    if (st == ND_OK) st = nd_dc_contig(&sc, D, &dc);
    if (st == ND_OK) st = nd_dc_buffer(&sc, &Xt, es * d.ncol * B);
    if (st == ND_OK) st = nd_dc_buffer(&sc, &GYt, es * d.ncol * B);
    if (st == ND_OK) st = nd_dc_buffer(&sc, &Xs, es * d.ns * B);
    if (st == ND_OK) st = nd_dc_buffer(&sc, &GXs, es * d.ns * B);
    if (st == ND_OK) st = nd_dc_buffer(&sc, &S, es * B * B);
    if (st == ND_OK) st = nd_dc_buffer(&sc, (void **)&dbl, (int64_t)sizeof(double) * (B + 2));
    if (st == ND_OK) st = nd_tensor_new(&GD, dt, 2, bb, dev, 0);
#define ND_CD_D(T, t) ((const T *)nd_tensor_data(t))
    if (st == ND_OK) {
        if (dt == ND_DTYPE_F32)
            st = nd_cd_back_gd_run<float>((float *)nd_tensor_data(&GD), (float *)Xt, (float *)GYt, (float *)Xs,
                                          ND_CD_D(float, xc), ND_CD_D(float, gyc), ND_CD_D(float, mc),
                                          ND_CD_D(float, dc), d);
        else
            st = nd_cd_back_gd_run<double>((double *)nd_tensor_data(&GD), (double *)Xt, (double *)GYt, (double *)Xs,
                                           ND_CD_D(double, xc), ND_CD_D(double, gyc), ND_CD_D(double, mc),
                                           ND_CD_D(double, dc), d);
    }
    if (st == ND_OK) st = nd_isqrt_backward_cuda(&GA, &GD, saved, cov, iters);
    if (st == ND_OK) {
        if (dt == ND_DTYPE_F32)
            st = nd_cd_back_cov_run<float>((float *)nd_tensor_data(gx), (float *)Xt, (const float *)Xs,
                                           ND_CD_D(float, &GA), (float *)S, (float *)GXs, dbl, dbl + B,
                                           ND_CD_D(float, xc), ND_CD_D(float, gyc), mean2, var2, eps, d);
        else
            st = nd_cd_back_cov_run<double>((double *)nd_tensor_data(gx), (double *)Xt, (const double *)Xs,
                                            ND_CD_D(double, &GA), (double *)S, (double *)GXs, dbl, dbl + B,
                                            ND_CD_D(double, xc), ND_CD_D(double, gyc), mean2, var2, eps, d);
    }
#undef ND_CD_D
    nd_tensor_release(&GD);
    nd_tensor_release(&GA);
    nd_dc_scratch_release(&sc);
    return st;
}

extern "C" nd_status nd_channel_deconv_forward_cuda(nd_tensor *y, nd_tensor *mean1, nd_tensor *D, nd_tensor *cov,
                                                    nd_tensor *saved, double *mean2, double *var2, const nd_tensor *x,
                                                    int64_t B, double eps, int iters, int64_t s)
{
    ND_DC_ON_DEVICE(x, nd_cd_forward_impl(y, mean1, D, cov, saved, mean2, var2, x, B, eps, iters, s));
}

extern "C" nd_status nd_channel_deconv_apply_cuda(nd_tensor *y, const nd_tensor *x, const nd_tensor *mean1,
                                                  const nd_tensor *D, double mean2, double var2, double eps)
{
    ND_DC_ON_DEVICE(x, nd_cd_apply_impl(y, x, mean1, D, mean2, var2, eps));
}

extern "C" nd_status nd_channel_deconv_backward_cuda(nd_tensor *gx, const nd_tensor *gy, const nd_tensor *x,
                                                     const nd_tensor *mean1, const nd_tensor *D, const nd_tensor *cov,
                                                     const nd_tensor *saved, double mean2, double var2, int64_t B,
                                                     double eps, int iters, int64_t s)
{
    ND_DC_ON_DEVICE(x, nd_cd_backward_impl(gx, gy, x, mean1, D, cov, saved, mean2, var2, B, eps, iters, s));
}
