/* FastDeconv / Delinear on the GPU: sampled and block-regrouped im2col and its adjoint, the mean
 * and covariance statistics with their backward, the weight folding with its backward, and the
 * helpers shared with isqrt.cu and channel_deconv.cu. Semantics: nd_cpu_deconv.h; GPU rules:
 * nd_cuda_deconv.h.
 *
 * Regrouping (as deconv.c): a patch row P (K = Cin*k*k features) becomes Gs rows of Fs = K/Gs
 * entries of X, entry f at offset (f % Gs)*Fs + f/Gs of the patch's block of K entries
 * (Gs = Cin/B when groups == 1, else 1: X = P). Kernels walk the destination in order (one
 * thread per element, coalesced writes); col2im gathers per input pixel (no atomics, so the
 * result does not depend on the launch). Shared helpers (products, sums, Gram matrices):
 * deconv_common.cu. */
#include <math.h>

#include "deconv_common.cuh"

#define ND_DC_LAUNCHED(op)                                                                                             \
    do {                                                                                                               \
        cudaError_t e_ = cudaGetLastError();                                                                           \
        if (e_ != cudaSuccess)                                                                                         \
            st = ND_ERROR(ND_ERR_DEVICE, "%s: kernel launch failed: %s", op, cudaGetErrorString(e_));                  \
    } while (0)

/* ---- sampled im2col and its adjoint ---- */

/* Sizes of one im2col call (deconv.c's nd_deconv_dims) plus the input strides. */
typedef struct nd_dc_dims {
    int64_t N, C, H, W, k, pad, dil, s, Gs, Lh, Lw, R0, K, Fs;
    int64_t sn, sc, sh, sw; /* element strides of x / Gx */
} nd_dc_dims;

/* The shared checks (src/cpu/deconv_check.c), plus the strides and derived sizes. */
static nd_status nd_dc_dims_of(const char *op, nd_dc_dims *d, const nd_tensor *x, const char *what,
                               const nd_deconv_geom *g)
{
    nd_deconv_dims c;
    ND_TRY(nd_deconv_check_dims(ND_DEVICE_CUDA, op, &c, x, what, g));
    d->N = c.N, d->C = c.C, d->H = c.H, d->W = c.W;
    d->k = c.k, d->pad = c.pad, d->dil = c.dil, d->s = c.s;
    d->Gs = c.Gs, d->Lh = c.Lh, d->Lw = c.Lw, d->R0 = c.R0;
    d->sn = x->stride[0], d->sc = x->stride[1], d->sh = x->stride[2], d->sw = x->stride[3];
    d->K = d->C * d->k * d->k;
    d->Fs = d->K / d->Gs;
    return ND_OK;
}

/* X (R0*Gs, Fs) contiguous, element p of patch r's block <- feature f = (p % Fs)*Gs + p / Fs. */
template <typename T> __global__ void nd_dc_im2col_k(T *X, const T *x, nd_dc_dims d)
{
    const int64_t n_all = d.R0 * d.K, kk = d.k * d.k, HW = d.H * d.W;
    for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < n_all;
         idx += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = idx / d.K, p = idx % d.K, f = (p % d.Fs) * d.Gs + p / d.Fs;
        T v = 0;
        if (d.k == 1) {
            const int64_t t = r * d.s * d.s, n = t / HW, pix = t % HW;
            v = x[n * d.sn + f * d.sc + (pix / d.W) * d.sh + (pix % d.W) * d.sw];
        } else {
            const int64_t n = r / (d.Lh * d.Lw), i = (r / d.Lw) % d.Lh, j = r % d.Lw;
            const int64_t c = f / kk, ki = (f % kk) / d.k, kj = f % d.k;
            const int64_t h = i * d.s - d.pad + ki * d.dil, w = j * d.s - d.pad + kj * d.dil;
            if (h >= 0 && h < d.H && w >= 0 && w < d.W) v = x[n * d.sn + c * d.sc + h * d.sh + w * d.sw];
        }
        X[idx] = v;
    }
}

/* Gx[n,c,h,w] += every GX entry that im2col read from that pixel (gathered: no write conflicts). */
template <typename T> __global__ void nd_dc_col2im_k(T *Gx, const T *GX, nd_dc_dims d)
{
    const int64_t HW = d.H * d.W, n_all = d.N * d.C * HW, kk = d.k * d.k;
    for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < n_all;
         idx += (int64_t)gridDim.x * blockDim.x) {
        const int64_t n = idx / (d.C * HW), c = (idx / HW) % d.C, h = (idx % HW) / d.W, w = idx % d.W;
        double acc = 0;
        int hit = 0;
        if (d.k == 1) {
            const int64_t t = n * HW + h * d.W + w, ss = d.s * d.s;
            if (t % ss == 0) {
                acc = (double)GX[(t / ss) * d.K + (c % d.Gs) * d.Fs + c / d.Gs];
                hit = 1;
            }
        } else {
            for (int64_t ki = 0; ki < d.k; ki++) {
                const int64_t th = h + d.pad - ki * d.dil;
                if (th < 0 || th % d.s != 0 || th / d.s >= d.Lh) continue;
                for (int64_t kj = 0; kj < d.k; kj++) {
                    const int64_t tw = w + d.pad - kj * d.dil;
                    if (tw < 0 || tw % d.s != 0 || tw / d.s >= d.Lw) continue;
                    const int64_t r = (n * d.Lh + th / d.s) * d.Lw + tw / d.s, f = c * kk + ki * d.k + kj;
                    acc += (double)GX[r * d.K + (f % d.Gs) * d.Fs + f / d.Gs];
                    hit = 1;
                }
            }
        }
        if (hit) {
            T *o = Gx + n * d.sn + c * d.sc + h * d.sh + w * d.sw;
            *o = (T)((double)*o + acc);
        }
    }
}

static nd_status nd_dc_im2col_impl(nd_tensor *X, const nd_tensor *x, const nd_deconv_geom *g)
{
    const char *op = "deconv_im2col";
    nd_dc_dims d;
    ND_TRY(nd_dc_dims_of(op, &d, x, "input", g));
    int64_t size[2] = {d.R0 * d.Gs, d.Fs};
    ND_TRY(nd_dc_prepare_out_(op, "X", X, x->dtype, 2, size, nd_tensor_device(x)));
    cudaStream_t s = nd_cuda_stream();
    const unsigned nb = nd_cuda_blocks(d.R0 * d.K);
    if (x->dtype == ND_DTYPE_F32)
        nd_dc_im2col_k<float>
            <<<nb, ND_DC_THREADS, 0, s>>>((float *)nd_tensor_data(X), (const float *)nd_tensor_data(x), d);
    else
        nd_dc_im2col_k<double>
            <<<nb, ND_DC_THREADS, 0, s>>>((double *)nd_tensor_data(X), (const double *)nd_tensor_data(x), d);
    nd_status st = ND_OK;
    ND_DC_LAUNCHED(op);
    return st;
}

static nd_status nd_dc_col2im_impl(nd_tensor *Gx, const nd_tensor *GX, const nd_deconv_geom *g)
{
    const char *op = "deconv_col2im";
    nd_dc_dims d;
    ND_TRY(nd_dc_dims_of(op, &d, Gx, "Gx", g));
    int64_t size[2] = {d.R0 * d.Gs, d.Fs};
    ND_TRY(nd_dc_check_float_(op, "GX", GX, (int)Gx->dtype));
    ND_TRY(nd_deconv_check_shape_(op, "GX", GX, 2, size));
    const nd_tensor *ts[2] = {Gx, GX};
    ND_TRY(nd_cuda_check_device(op, 2, ts));
    nd_dc_scratch sc = {};
    const nd_tensor *gc;
    nd_status st = nd_dc_contig(&sc, GX, &gc);
    if (st == ND_OK) {
        cudaStream_t s = nd_cuda_stream();
        const unsigned nb = nd_cuda_blocks(d.N * d.C * d.H * d.W);
        if (Gx->dtype == ND_DTYPE_F32)
            nd_dc_col2im_k<float>
                <<<nb, ND_DC_THREADS, 0, s>>>((float *)nd_tensor_data(Gx), (const float *)nd_tensor_data(gc), d);
        else
            nd_dc_col2im_k<double>
                <<<nb, ND_DC_THREADS, 0, s>>>((double *)nd_tensor_data(Gx), (const double *)nd_tensor_data(gc), d);
        ND_DC_LAUNCHED(op);
    }
    nd_dc_scratch_release(&sc);
    return st;
}

extern "C" nd_status nd_deconv_im2col_cuda(nd_tensor *X, const nd_tensor *x, const nd_deconv_geom *g)
{
    ND_DC_ON_DEVICE(x, nd_dc_im2col_impl(X, x, g));
}

extern "C" nd_status nd_deconv_col2im_cuda(nd_tensor *Gx, const nd_tensor *GX, const nd_deconv_geom *g)
{
    ND_DC_ON_DEVICE(Gx, nd_dc_col2im_impl(Gx, GX, g));
}

/* ---- statistics ---- */

/* mu[c] = sum[c] / M (rounded to T once, as the CPU). */
template <typename T> __global__ void nd_dc_mean_k(T *mu, const double *sum, int64_t cols, double M)
{
    for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < cols; c += (int64_t)gridDim.x * blockDim.x)
        mu[c] = (T)(sum[c] / M);
}

/* Xc (M x cols) = X - 1 mu^T, both contiguous. */
template <typename T> __global__ void nd_dc_center_k(T *Xc, const T *X, const T *mu, int64_t M, int64_t cols)
{
    const int64_t n = M * cols;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        Xc[i] = X[i] - mu[i % cols];
}

/* S_j = (GC_j + GC_j^T) / M. */
template <typename T> __global__ void nd_dc_sym_k(T *S, const T *GC, int64_t ng, int64_t F, double M)
{
    const int64_t FF = F * F, n = ng * FF;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t j = i / FF, a = (i % FF) / F, b = i % F;
        S[i] = (T)(((double)GC[i] + (double)GC[j * FF + b * F + a]) / M);
    }
}

/* GX (M x cols) = Gmu / M on every row (the gemm then adds Xc S). */
template <typename T> __global__ void nd_dc_rowfill_k(T *GX, const T *Gmu, int64_t M, int64_t cols, double div)
{
    const int64_t n = M * cols;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        GX[i] = (T)((double)Gmu[i % cols] / div);
}

static nd_status nd_dc_cov_forward_impl(nd_tensor *mu, nd_tensor *C, const nd_tensor *X, int64_t groups, double eps)
{
    const char *op = "deconv_cov";
    int64_t M, F, csize[3], msize[1];
    ND_TRY(nd_deconv_check_X(ND_DEVICE_CUDA, op, X, groups, &M, &F));
    const int64_t cols = groups * F;
    msize[0] = cols;
    const int cdim = nd_deconv_cov_shape(groups, F, csize);
    const nd_device dev = nd_tensor_device(X);
    const nd_dtype dt = X->dtype;
    ND_TRY(nd_dc_prepare_out_(op, "mu", mu, dt, 1, msize, dev));
    ND_TRY(nd_dc_prepare_out_(op, "C", C, dt, cdim, csize, dev));
    nd_dc_scratch sc = {};
    const nd_tensor *xc;
    double *sum = NULL;
    void *cen = NULL;
    nd_status st = nd_dc_contig(&sc, X, &xc);
    if (st == ND_OK) st = nd_dc_buffer(&sc, (void **)&sum, (int64_t)sizeof(double) * cols);
    if (st == ND_OK) st = nd_dc_buffer(&sc, &cen, (int64_t)nd_dtype_size(dt) * M * cols);
    if (st == ND_OK) st = nd_dc_colsum_(dt, sum, nd_tensor_data(xc), M, cols, cols, 1.0);
    if (st == ND_OK) {
        cudaStream_t s = nd_cuda_stream();
        if (dt == ND_DTYPE_F32) {
            nd_dc_mean_k<float>
                <<<nd_cuda_blocks(cols), ND_DC_THREADS, 0, s>>>((float *)nd_tensor_data(mu), sum, cols, (double)M);
            nd_dc_center_k<float><<<nd_cuda_blocks(M * cols), ND_DC_THREADS, 0, s>>>(
                (float *)cen, (const float *)nd_tensor_data(xc), (const float *)nd_tensor_data(mu), M, cols);
        } else {
            nd_dc_mean_k<double>
                <<<nd_cuda_blocks(cols), ND_DC_THREADS, 0, s>>>((double *)nd_tensor_data(mu), sum, cols, (double)M);
            nd_dc_center_k<double><<<nd_cuda_blocks(M * cols), ND_DC_THREADS, 0, s>>>(
                (double *)cen, (const double *)nd_tensor_data(xc), (const double *)nd_tensor_data(mu), M, cols);
        }
        ND_DC_LAUNCHED(op);
    }
    if (st == ND_OK) st = nd_dc_gram_(dt, nd_tensor_data(C), cen, M, cols, groups, F, (double)M, eps);
    nd_dc_scratch_release(&sc);
    return st;
}

static nd_status nd_dc_cov_backward_impl(nd_tensor *GX, const nd_tensor *GC, const nd_tensor *Gmu, const nd_tensor *X,
                                         const nd_tensor *mu, int64_t groups)
{
    const char *op = "deconv_cov_backward";
    int64_t M, F, csize[3], msize[1];
    ND_TRY(nd_deconv_check_X(ND_DEVICE_CUDA, op, X, groups, &M, &F));
    const int64_t cols = groups * F, FF = F * F;
    msize[0] = cols;
    const int cdim = nd_deconv_cov_shape(groups, F, csize);
    const nd_dtype dt = X->dtype;
    if (!(Gmu && Gmu->storage)) Gmu = NULL;
    ND_TRY(nd_dc_check_float_(op, "GC", GC, (int)dt));
    ND_TRY(nd_deconv_check_shape_(op, "GC", GC, cdim, csize));
    ND_TRY(nd_dc_check_float_(op, "mu", mu, (int)dt));
    ND_TRY(nd_deconv_check_shape_(op, "mu", mu, 1, msize));
    if (Gmu) {
        ND_TRY(nd_dc_check_float_(op, "Gmu", Gmu, (int)dt));
        ND_TRY(nd_deconv_check_shape_(op, "Gmu", Gmu, 1, msize));
    }
    const nd_tensor *ts[4] = {X, GC, mu, Gmu};
    ND_TRY(nd_cuda_check_device(op, 4, ts));
    ND_TRY(nd_dc_prepare_out_(op, "GX", GX, dt, 2, X->size, nd_tensor_device(X)));
    nd_dc_scratch sc = {};
    const nd_tensor *xc, *gc, *mc, *gmc = NULL;
    void *S = NULL, *cen = NULL;
    const size_t es = nd_dtype_size(dt);
    nd_status st = nd_dc_contig(&sc, X, &xc);
    if (st == ND_OK) st = nd_dc_contig(&sc, GC, &gc);
    if (st == ND_OK) st = nd_dc_contig(&sc, mu, &mc);
    if (st == ND_OK && Gmu) st = nd_dc_contig(&sc, Gmu, &gmc);
    if (st == ND_OK) st = nd_dc_buffer(&sc, &S, (int64_t)es * groups * FF);
    if (st == ND_OK) st = nd_dc_buffer(&sc, &cen, (int64_t)es * M * cols);
    if (st == ND_OK) {
        cudaStream_t s = nd_cuda_stream();
        if (dt == ND_DTYPE_F32) {
            nd_dc_sym_k<float><<<nd_cuda_blocks(groups * FF), ND_DC_THREADS, 0, s>>>(
                (float *)S, (const float *)nd_tensor_data(gc), groups, F, (double)M);
            nd_dc_center_k<float><<<nd_cuda_blocks(M * cols), ND_DC_THREADS, 0, s>>>(
                (float *)cen, (const float *)nd_tensor_data(xc), (const float *)nd_tensor_data(mc), M, cols);
            if (gmc)
                nd_dc_rowfill_k<float><<<nd_cuda_blocks(M * cols), ND_DC_THREADS, 0, s>>>(
                    (float *)nd_tensor_data(GX), (const float *)nd_tensor_data(gmc), M, cols, (double)M);
        } else {
            nd_dc_sym_k<double><<<nd_cuda_blocks(groups * FF), ND_DC_THREADS, 0, s>>>(
                (double *)S, (const double *)nd_tensor_data(gc), groups, F, (double)M);
            nd_dc_center_k<double><<<nd_cuda_blocks(M * cols), ND_DC_THREADS, 0, s>>>(
                (double *)cen, (const double *)nd_tensor_data(xc), (const double *)nd_tensor_data(mc), M, cols);
            if (gmc)
                nd_dc_rowfill_k<double><<<nd_cuda_blocks(M * cols), ND_DC_THREADS, 0, s>>>(
                    (double *)nd_tensor_data(GX), (const double *)nd_tensor_data(gmc), M, cols, (double)M);
        }
        ND_DC_LAUNCHED(op);
    }
    /* GX_j = Xc_j S_j (+ the Gmu rows already there), all groups in one batched product */
    if (st == ND_OK)
        st = nd_dc_gemm_(dt, 0, 0, M, F, F, 1.0, cen, cols, F, S, F, FF, gmc ? 1.0 : 0.0, nd_tensor_data(GX), cols, F,
                         groups);
    nd_dc_scratch_release(&sc);
    return st;
}

extern "C" nd_status nd_deconv_cov_forward_cuda(nd_tensor *mu, nd_tensor *C, const nd_tensor *X, int64_t groups,
                                                double eps)
{
    ND_DC_ON_DEVICE(X, nd_dc_cov_forward_impl(mu, C, X, groups, eps));
}

extern "C" nd_status nd_deconv_cov_backward_cuda(nd_tensor *GX, const nd_tensor *GC, const nd_tensor *Gmu,
                                                 const nd_tensor *X, const nd_tensor *mu, int64_t groups)
{
    ND_DC_ON_DEVICE(X, nd_dc_cov_backward_impl(GX, GC, Gmu, X, mu, groups));
}

/* ---- folding; W (Cout, K) contiguous; Wr (Cout*G, F) the regrouped rows ---- */

typedef struct nd_dc_fold {
    int64_t Cout, K, F, G, ng;
    int strided; /* ND_DECONV_STRIDED with G > 1: the rows must be regrouped */
} nd_dc_fold;

/* dst (Cout*G x F) = regroup(src (Cout x K)) with feature a*G + g (back == 0), or the inverse.
 * With sub (fold backward): dst = regroup(src) - Gb[o] mu_j^T, j = o / (Cout/ng). */
template <typename T>
__global__ void nd_dc_regroup_k(T *dst, const T *src, nd_dc_fold f, int back, int strided, const T *Gb, const T *mu)
{
    const int64_t n = f.Cout * f.K, per = f.Cout / f.ng;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t o = i / f.K, q = i % f.K, g = q / f.F, a = q % f.F; /* i = (o*G + g)*F + a */
        const int64_t w = o * f.K + (strided ? a * f.G + g : q);
        if (back) {
            dst[w] = src[i];
        } else {
            T v = src[w];
            if (Gb) v -= Gb[o] * mu[(o / per) * f.F + a];
            dst[i] = v;
        }
    }
}

/* b[o] -= sum over o's G rows of V . mu_j (double); one warp per output. */
template <typename T> __global__ void nd_dc_fold_bias_k(T *b, const T *V, const T *mu, nd_dc_fold f)
{
    const int64_t per = f.Cout / f.ng, lane = threadIdx.x % 32;
    const int64_t warps = ((int64_t)gridDim.x * blockDim.x) / 32;
    for (int64_t o = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32; o < f.Cout; o += warps) {
        const T *v = V + o * f.K, *m = mu + (o / per) * f.F;
        double acc = 0;
        for (int64_t q = lane; q < f.K; q += 32)
            acc += (double)v[q] * (double)m[q % f.F];
        for (int off = 16; off > 0; off /= 2)
            acc += __shfl_down_sync(0xffffffffu, acc, off);
        if (lane == 0) b[o] = (T)((double)b[o] - acc);
    }
}

/* u[j][a] = sum over group j's rows r of Gb[r/G] Wr[r][a] (double). */
template <typename T> __global__ void nd_dc_gmu_u_k(double *u, const T *Gb, const T *Wr, nd_dc_fold f)
{
    const int64_t rows_g = f.Cout / f.ng * f.G, n = f.ng * f.F;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t j = i / f.F, a = i % f.F;
        double acc = 0;
        for (int64_t r = j * rows_g; r < (j + 1) * rows_g; r++)
            acc += (double)Gb[r / f.G] * (double)Wr[r * f.F + a];
        u[i] = acc;
    }
}

/* Gmu[j][b] = -sum_a u[j][a] D_j[a][b]. */
template <typename T> __global__ void nd_dc_gmu_k(T *Gmu, const double *u, const T *D, nd_dc_fold f)
{
    const int64_t n = f.ng * f.F, FF = f.F * f.F;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t j = i / f.F, b = i % f.F;
        double acc = 0;
        for (int64_t a = 0; a < f.F; a++)
            acc += u[j * f.F + a] * (double)D[j * FF + a * f.F + b];
        Gmu[i] = (T)-acc;
    }
}

static nd_status nd_dc_fold_check(const char *op, nd_dc_fold *f, const nd_tensor *W, const nd_tensor *D,
                                  const nd_tensor *mu, int64_t groups, nd_deconv_layout layout)
{
    nd_fold_dims c; /* the shared checks (src/cpu/deconv_check.c) */
    ND_TRY(nd_deconv_check_fold(ND_DEVICE_CUDA, op, &c, W, D, mu, groups, layout));
    f->Cout = c.Cout, f->K = c.K, f->F = c.F, f->G = c.G, f->ng = c.ng;
    f->strided = layout == ND_DECONV_STRIDED && f->G > 1;
    const nd_tensor *ts[3] = {W, D, mu};
    return nd_cuda_check_device(op, 3, ts);
}

static nd_status nd_dc_check_bias(const char *op, const char *what, const nd_tensor *b, const nd_dc_fold *f,
                                  const nd_tensor *W)
{
    if (!b || !b->storage) return ND_OK;
    int64_t size[1] = {f->Cout};
    ND_TRY(nd_dc_check_float_(op, what, b, (int)W->dtype));
    ND_TRY(nd_deconv_check_shape_(op, what, b, 1, size));
    const nd_tensor *ts[2] = {W, b};
    return nd_cuda_check_device(op, 2, ts);
}

template <typename T>
static void nd_dc_regroup(T *dst, const T *src, const nd_dc_fold &f, int back, const T *Gb = NULL, const T *mu = NULL)
{
    nd_dc_regroup_k<T>
        <<<nd_cuda_blocks(f.Cout * f.K), ND_DC_THREADS, 0, nd_cuda_stream()>>>(dst, src, f, back, f.strided, Gb, mu);
}

/* V_j = Wr_j D_j (all groups in one batched product), b -= V . mu; Wr / V are W / Wf when the
 * layout needs no regrouping. */
template <typename T>
static nd_status nd_dc_fold_run(T *Wf, T *b, const T *W, const T *D, const T *mu, const nd_dc_fold &f, T *tmp)
{
    const nd_dtype dt = sizeof(T) == 4 ? ND_DTYPE_F32 : ND_DTYPE_F64;
    const int64_t rows_g = f.Cout / f.ng * f.G, FF = f.F * f.F;
    const T *Wr = f.strided ? tmp : W;
    T *V = f.strided ? tmp + f.Cout * f.K : Wf;
    if (f.strided) nd_dc_regroup<T>(tmp, W, f, 0);
    ND_TRY(nd_dc_gemm_(dt, 0, 0, rows_g, f.F, f.F, 1.0, Wr, f.F, rows_g * f.F, D, f.F, FF, 0.0, V, f.F, rows_g * f.F,
                       f.ng));
    unsigned nb = (unsigned)((f.Cout * 32 + ND_DC_THREADS - 1) / ND_DC_THREADS);
    if (nb > 65535u * 8) nb = 65535u * 8;
    nd_dc_fold_bias_k<T><<<nb, ND_DC_THREADS, 0, nd_cuda_stream()>>>(b, V, mu, f);
    if (f.strided) nd_dc_regroup<T>(Wf, V, f, 1);
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}

static nd_status nd_dc_fold_forward_impl(nd_tensor *Wf, nd_tensor *b, const nd_tensor *W, const nd_tensor *b0,
                                         const nd_tensor *D, const nd_tensor *mu, int64_t groups,
                                         nd_deconv_layout layout)
{
    const char *op = "deconv_fold";
    nd_dc_fold f;
    ND_TRY(nd_dc_fold_check(op, &f, W, D, mu, groups, layout));
    ND_TRY(nd_dc_check_bias(op, "b0", b0, &f, W));
    const int64_t bsize[1] = {f.Cout};
    const nd_device dev = nd_tensor_device(W);
    const nd_dtype dt = W->dtype;
    const size_t es = nd_dtype_size(dt);
    ND_TRY(nd_dc_prepare_out_(op, "Wf", Wf, dt, W->ndim, W->size, dev));
    ND_TRY(nd_dc_prepare_out_(op, "b", b, dt, 1, bsize, dev));
    nd_dc_scratch sc = {};
    const nd_tensor *w, *bc = NULL, *dc, *mc;
    void *tmp = NULL;
    nd_status st = nd_dc_contig(&sc, W, &w);
    if (st == ND_OK) st = nd_dc_contig(&sc, b0, &bc);
    if (st == ND_OK) st = nd_dc_contig(&sc, D, &dc);
    if (st == ND_OK) st = nd_dc_contig(&sc, mu, &mc);
    if (st == ND_OK && f.strided) st = nd_dc_buffer(&sc, &tmp, (int64_t)es * 2 * f.Cout * f.K);
    if (st == ND_OK) {
        cudaStream_t s = nd_cuda_stream();
        if (bc)
            st = cudaMemcpyAsync(nd_tensor_data(b), nd_tensor_data(bc), es * (size_t)f.Cout, cudaMemcpyDeviceToDevice,
                                 s) == cudaSuccess
                     ? ND_OK
                     : ND_ERROR(ND_ERR_DEVICE, "%s: bias copy failed", op);
        else
            st = cudaMemsetAsync(nd_tensor_data(b), 0, es * (size_t)f.Cout, s) == cudaSuccess
                     ? ND_OK
                     : ND_ERROR(ND_ERR_DEVICE, "%s: bias fill failed", op);
    }
    if (st == ND_OK) {
        if (dt == ND_DTYPE_F32)
            st = nd_dc_fold_run<float>((float *)nd_tensor_data(Wf), (float *)nd_tensor_data(b),
                                       (const float *)nd_tensor_data(w), (const float *)nd_tensor_data(dc),
                                       (const float *)nd_tensor_data(mc), f, (float *)tmp);
        else
            st = nd_dc_fold_run<double>((double *)nd_tensor_data(Wf), (double *)nd_tensor_data(b),
                                        (const double *)nd_tensor_data(w), (const double *)nd_tensor_data(dc),
                                        (const double *)nd_tensor_data(mc), f, (double *)tmp);
    }
    nd_dc_scratch_release(&sc);
    return st;
}

/* GV = regroup(GWf) - Gb mu^T; GWr = GV D^T; GD = Wr^T GV; Gmu = -(sum Gb Wr) D; per group.
 * work: GV, then Wr and GWr when strided (Cout*K each); u: ng*F doubles. */
template <typename T>
static nd_status nd_dc_unfold_run(T *GW, T *GD, T *Gmu, const T *GWf, const T *Gb, const T *W, const T *D, const T *mu,
                                  const nd_dc_fold &f, T *work, double *u)
{
    const nd_dtype dt = sizeof(T) == 4 ? ND_DTYPE_F32 : ND_DTYPE_F64;
    const int64_t n = f.Cout * f.K, rows_g = f.Cout / f.ng * f.G, FF = f.F * f.F, RF = rows_g * f.F;
    cudaStream_t s = nd_cuda_stream();
    T *GV = work;
    const T *Wr = f.strided ? work + n : W;
    T *GWr = !GW ? NULL : f.strided ? work + 2 * n : GW;
    nd_dc_regroup<T>(GV, GWf, f, 0, Gb, mu);
    if (f.strided) nd_dc_regroup<T>(work + n, W, f, 0);
    if (GWr) ND_TRY(nd_dc_gemm_(dt, 0, 1, rows_g, f.F, f.F, 1.0, GV, f.F, RF, D, f.F, FF, 0.0, GWr, f.F, RF, f.ng));
    if (GD) ND_TRY(nd_dc_gemm_(dt, 1, 0, f.F, f.F, rows_g, 1.0, Wr, f.F, RF, GV, f.F, RF, 0.0, GD, f.F, FF, f.ng));
    if (Gmu && Gb) {
        nd_dc_gmu_u_k<T><<<nd_cuda_blocks(f.ng * f.F), ND_DC_THREADS, 0, s>>>(u, Gb, Wr, f);
        nd_dc_gmu_k<T><<<nd_cuda_blocks(f.ng * f.F), ND_DC_THREADS, 0, s>>>(Gmu, u, D, f);
    } else if (Gmu) {
        ND_CUDA_TRY(cudaMemsetAsync(Gmu, 0, sizeof(T) * (size_t)(f.ng * f.F), s));
    }
    if (GW && f.strided) nd_dc_regroup<T>(GW, GWr, f, 1);
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}

static nd_status nd_dc_fold_backward_impl(nd_tensor *GW, nd_tensor *Gb0, nd_tensor *GD, nd_tensor *Gmu,
                                          const nd_tensor *GWf, const nd_tensor *Gb, const nd_tensor *W,
                                          const nd_tensor *D, const nd_tensor *mu, int64_t groups,
                                          nd_deconv_layout layout)
{
    const char *op = "deconv_fold_backward";
    nd_dc_fold f;
    ND_TRY(nd_dc_fold_check(op, &f, W, D, mu, groups, layout));
    ND_TRY(nd_dc_check_bias(op, "Gb", Gb, &f, W));
    ND_TRY(nd_dc_check_float_(op, "GWf", GWf, (int)W->dtype));
    ND_TRY(nd_deconv_check_shape_(op, "GWf", GWf, W->ndim, W->size));
    const nd_tensor *ts[2] = {W, GWf};
    ND_TRY(nd_cuda_check_device(op, 2, ts));
    const int64_t bsize[1] = {f.Cout};
    const nd_device dev = nd_tensor_device(W);
    const nd_dtype dt = W->dtype;
    const size_t es = nd_dtype_size(dt);
    if (GW) ND_TRY(nd_dc_prepare_out_(op, "GW", GW, dt, W->ndim, W->size, dev));
    if (Gb0) ND_TRY(nd_dc_prepare_out_(op, "Gb0", Gb0, dt, 1, bsize, dev));
    if (GD) ND_TRY(nd_dc_prepare_out_(op, "GD", GD, dt, D->ndim, D->size, dev));
    if (Gmu) ND_TRY(nd_dc_prepare_out_(op, "Gmu", Gmu, dt, 1, mu->size, dev));
    nd_dc_scratch sc = {};
    const nd_tensor *w, *gb = NULL, *dc, *mc, *gwf;
    void *work = NULL;
    double *u = NULL;
    const int64_t n = f.Cout * f.K;
    nd_status st = nd_dc_contig(&sc, W, &w);
    if (st == ND_OK) st = nd_dc_contig(&sc, Gb, &gb);
    if (st == ND_OK) st = nd_dc_contig(&sc, D, &dc);
    if (st == ND_OK) st = nd_dc_contig(&sc, mu, &mc);
    if (st == ND_OK) st = nd_dc_contig(&sc, GWf, &gwf);
    if (st == ND_OK) st = nd_dc_buffer(&sc, &work, (int64_t)es * n * (f.strided ? 3 : 1));
    if (st == ND_OK) st = nd_dc_buffer(&sc, (void **)&u, (int64_t)sizeof(double) * f.ng * f.F);
    if (st == ND_OK && Gb0) {
        cudaError_t e = gb ? cudaMemcpyAsync(nd_tensor_data(Gb0), nd_tensor_data(gb), es * (size_t)f.Cout,
                                             cudaMemcpyDeviceToDevice, nd_cuda_stream())
                           : cudaMemsetAsync(nd_tensor_data(Gb0), 0, es * (size_t)f.Cout, nd_cuda_stream());
        if (e != cudaSuccess) st = ND_ERROR(ND_ERR_DEVICE, "%s: Gb0: %s", op, cudaGetErrorString(e));
    }
    if (st == ND_OK) {
#define ND_DC_P(T, t) ((t) ? (T *)nd_tensor_data(t) : (T *)NULL)
        if (dt == ND_DTYPE_F32)
            st = nd_dc_unfold_run<float>(ND_DC_P(float, GW), ND_DC_P(float, GD), ND_DC_P(float, Gmu),
                                         ND_DC_P(const float, gwf), ND_DC_P(const float, gb), ND_DC_P(const float, w),
                                         ND_DC_P(const float, dc), ND_DC_P(const float, mc), f, (float *)work, u);
        else
            st = nd_dc_unfold_run<double>(ND_DC_P(double, GW), ND_DC_P(double, GD), ND_DC_P(double, Gmu),
                                          ND_DC_P(const double, gwf), ND_DC_P(const double, gb),
                                          ND_DC_P(const double, w), ND_DC_P(const double, dc),
                                          ND_DC_P(const double, mc), f, (double *)work, u);
#undef ND_DC_P
    }
    nd_dc_scratch_release(&sc);
    return st;
}

extern "C" nd_status nd_deconv_fold_forward_cuda(nd_tensor *Wf, nd_tensor *b, const nd_tensor *W, const nd_tensor *b0,
                                                 const nd_tensor *D, const nd_tensor *mu, int64_t groups,
                                                 nd_deconv_layout layout)
{
    ND_DC_ON_DEVICE(W, nd_dc_fold_forward_impl(Wf, b, W, b0, D, mu, groups, layout));
}

extern "C" nd_status nd_deconv_fold_backward_cuda(nd_tensor *GW, nd_tensor *Gb0, nd_tensor *GD, nd_tensor *Gmu,
                                                  const nd_tensor *GWf, const nd_tensor *Gb, const nd_tensor *W,
                                                  const nd_tensor *D, const nd_tensor *mu, int64_t groups,
                                                  nd_deconv_layout layout)
{
    ND_DC_ON_DEVICE(W, nd_dc_fold_backward_impl(GW, Gb0, GD, Gmu, GWf, Gb, W, D, mu, groups, layout));
}
