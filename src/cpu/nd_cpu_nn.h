/* CPU kernels of the neural-network layers: convolution (im2col + batched GEMM), pooling,
 * activations, batch normalisation and losses. Layout NCHW.
 *
 * Conventions shared by every function here:
 * - Stateless: module state (weights, running statistics) lives in Lua and comes in as tensors.
 *   Argument order: outputs, inputs, weights, buffers, params. Every function returns an nd_status;
 *   on failure the message names the op and the shapes.
 * - dtypes: float32 and float64 (all tensors of one call share the dtype; indices and targets
 *   are int64). CPU tensors only.
 * - Inputs may have any strides: kernels that need contiguous data call nd_tensor_contiguous at
 *   entry (a copy only when needed). Each comment says which.
 * - Outputs are written, never allocated: they must already have the exact shape (the Lua
 *   binding resizes them) and, unless the comment says "any strides", be contiguous.
 * - Outputs must not share memory with the inputs, except where a comment allows in place
 *   (exactly the same view): the kernels check and fail with ND_ERR_ARG.
 * - Gradient accumulators of parameters (grad_weight, grad_bias) are ADDED to, scaled by `scale`
 *   (Torch7's accGradParameters(input, gradOutput, scale)); grad inputs are overwritten.
 * - Threads: OpenMP loops for the memory-bound parts (gated by nd_nn_set_parallel below);
 *   OpenBLAS is never called inside an OpenMP parallel region. */
#ifndef ND_CPU_NN_H
#define ND_CPU_NN_H

#include "nd.h"

/* ------------------------------------------------------------------------------------------
 * Convolution (conv.c)
 * ------------------------------------------------------------------------------------------ */

typedef struct nd_conv2d_params {
    int64_t kh, kw; /* kernel height, width */
    int64_t sh, sw; /* stride */
    int64_t ph, pw; /* zero padding on each side */
    int64_t dh, dw; /* dilation (1 = dense) */
    int64_t groups; /* input and output planes split into `groups` independent groups */
} nd_conv2d_params;

/* Output length of a convolution along one dimension: (in + 2p - d(k-1) - 1) / s + 1 (floor);
 * <= 0 when the input is too small. */
int64_t nd_conv_out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d);

/* Unfolds the patches of input into columns (the Torch7 unfold layout):
 *   input (C,H,W) or (N,C,H,W), any strides (contiguous copy at entry when needed);
 *   cols  (C*kh*kw, N*OH*OW) contiguous ((C*kh*kw, OH*OW) for a 3-d input);
 *   cols[f][n*OH*OW + oh*OW + ow] = input[n][c][oh*sh - ph + ki*dh][ow*sw - pw + kj*dw]
 *   with f = c*kh*kw + ki*kw + kj, zero outside the image. `groups` is ignored. */
nd_status nd_im2col_cpu(nd_tensor *cols, const nd_tensor *input, const nd_conv2d_params *p);
/* The adjoint of im2col: image (C,H,W) or (N,C,H,W) contiguous, OVERWRITTEN with the sum of
 * every column entry that im2col would have read from each pixel. cols any strides. */
nd_status nd_col2im_cpu(nd_tensor *image, const nd_tensor *cols, const nd_conv2d_params *p);

/* Shapes of the convolution functions:
 *   input  (N,Cin,H,W) or (Cin,H,W);   output (N,Cout,OH,OW) or (Cout,OH,OW) (same rank)
 *   weight (Cout, Cin/groups, kh, kw) or the same numbers viewed 2-d (Cout, Cin/groups*kh*kw)
 *   bias   (Cout) or NULL.
 * out = W * x + b (cross-correlation, as every framework). */

/* Reference: direct nested loops, accumulating in double; any strides everywhere (outputs too).
 * Slow: for tests. The backward computes whichever of grad_input (overwritten), grad_weight,
 * grad_bias (both += scale * ...) is not NULL. */
nd_status nd_conv2d_forward_ref_cpu(nd_tensor *out, const nd_tensor *input, const nd_tensor *weight,
                                    const nd_tensor *bias, const nd_conv2d_params *p);
nd_status nd_conv2d_backward_ref_cpu(nd_tensor *grad_input, nd_tensor *grad_weight, nd_tensor *grad_bias,
                                     const nd_tensor *input, const nd_tensor *grad_output, const nd_tensor *weight,
                                     double scale, const nd_conv2d_params *p);

/* Fast convolution: im2col of a chunk of images (the whole batch, or as many images as fit in
 * the chunk budget, see nd_conv_set_chunk_bytes) then ONE GEMM per chunk and group.
 * 1x1 stride-1 unpadded convolutions over images of >= 256 pixels skip im2col (one GEMM per
 * image straight on the input). input, weight and grad_output: contiguous copy at entry when
 * needed; bias and grad_bias any strides; out, grad_input, grad_weight contiguous.
 * Buffers: a per-thread scratch (see nd_conv_scratch_free), grown on demand and kept. */
nd_status nd_conv2d_forward_cpu(nd_tensor *out, const nd_tensor *input, const nd_tensor *weight, const nd_tensor *bias,
                                const nd_conv2d_params *p);
/* grad_input (shape of input) = the adjoint of the convolution applied to grad_output. */
nd_status nd_conv2d_backward_input_cpu(nd_tensor *grad_input, const nd_tensor *grad_output, const nd_tensor *weight,
                                       const nd_conv2d_params *p);
/* grad_weight += scale * dL/dW, grad_bias += scale * dL/db (grad_bias may be NULL). */
nd_status nd_conv2d_backward_params_cpu(nd_tensor *grad_weight, nd_tensor *grad_bias, const nd_tensor *input,
                                        const nd_tensor *grad_output, double scale, const nd_conv2d_params *p);
/* Both at once, sharing the rearranged grad_output: any of the three outputs may be NULL. */
nd_status nd_conv2d_backward_cpu(nd_tensor *grad_input, nd_tensor *grad_weight, nd_tensor *grad_bias,
                                 const nd_tensor *input, const nd_tensor *grad_output, const nd_tensor *weight,
                                 double scale, const nd_conv2d_params *p);

/* Budget of the column buffers of one chunk in bytes (default 64 MiB; process-wide setting,
 * read at each call). Returns the previous value; bytes <= 0 only queries. */
int64_t nd_conv_set_chunk_bytes(int64_t bytes);
/* Whether the memory-bound loops of these kernels (im2col, col2im, pooling, batch norm, ...)
 * run on OpenMP threads. Default (-1 = decide at first use): yes when idle OpenMP workers
 * sleep (OMP_WAIT_POLICY=passive, or GOMP_SPINCOUNT <= 100000 in the environment), no
 * otherwise: spinning workers keep a core busy for milliseconds after each parallel region and
 * slow the next OpenBLAS GEMM by more than the parallel copy saves (2 cores: conv forward
 * -20%). on = 0 / 1 forces it; returns the setting in force before the call (on < 0: query). */
int nd_nn_set_parallel(int on);
/* 1 when the loops may run in parallel (the setting above, resolved). */
int nd_nn_parallel(void);

/* The scratch is thread-local (each thread that runs convolutions has its own, so concurrent
 * calls from different threads are safe); this frees the calling thread's scratch. */
void nd_conv_scratch_free(void);
/* Bytes held by the calling thread's scratch. */
int64_t nd_conv_scratch_bytes(void);

/* Winograd F(2x2,3x3) inside nd_conv2d_forward_cpu and the backward functions above (all three
 * passes, float32 and float64): used for 3x3, stride 1, dilation 1, one group, padding 0 or 1,
 * in mode
 *   ND_CONV_WINOGRAD_AUTO  (default) when it pays: at least 32 input and 32 output planes;
 *   ND_CONV_WINOGRAD_FORCE whenever the shape qualifies (tests);
 *   ND_CONV_WINOGRAD_OFF   never (im2col + GEMM for everything).
 * The environment variable ND_CONV_WINOGRAD=off|auto|force (or 0|1|2) sets the initial mode.
 * Returns the mode in force before the call; mode < 0 only queries. Process-wide. */
enum { ND_CONV_WINOGRAD_OFF = 0, ND_CONV_WINOGRAD_AUTO = 1, ND_CONV_WINOGRAD_FORCE = 2 };
int nd_conv_set_winograd(int mode);

/* ------------------------------------------------------------------------------------------
 * Winograd F(2x2,3x3) kernels (winograd.c), called by conv.c on validated, contiguous data.
 * x (N,C,H,W), weight (Cout,C,3,3), out / grad_output (N,Cout,OH,OW) with OH = H + 2ph - 2,
 * OW = W + 2pw - 2. Tiles of 2x2 outputs, processed in chunks of `rows` tile rows (of tw tiles
 * each) whose transformed data (16 x (C + Cout) per tile) fits the chunk budget.
 * ------------------------------------------------------------------------------------------ */

typedef struct nd_winograd_geom {
    int64_t N, C, H, W, Cout, ph, pw; /* set by the caller (ph, pw in {0, 1}) */
    int64_t OH, OW, th, tw, rows;     /* set by nd_winograd_plan: output size, tiles down and
                                         across one image, tile rows per chunk */
} nd_winograd_geom;

/* Whether the kernels handle this convolution (3x3, stride 1, dilation 1, 1 group, pad 0/1). */
int nd_winograd_applies(const nd_conv2d_params *p);
/* Fills the derived fields of g for chunks of about `budget` bytes of `elem`-byte elements and
 * returns the scratch bytes that the forward (need_u = 1, need_du = 0) or the backward
 * (need_u = grad_input wanted, need_du = grad_weight wanted) needs with these fields. */
int64_t nd_winograd_plan(nd_winograd_geom *g, int64_t budget, int64_t elem, int need_u, int need_du);
/* out = conv(x, w) + bias[co * bstride] (bias may be NULL). scratch: the planned bytes,
 * caller-owned. OpenMP for the transforms (nd_nn_parallel), GEMMs outside parallel regions. */
nd_status nd_winograd_forward_f32(float *out, const float *x, const float *w, const float *bias, int64_t bstride,
                                  const nd_winograd_geom *g, void *scratch);
nd_status nd_winograd_forward_f64(double *out, const double *x, const double *w, const double *bias,
                                  int64_t bstride, const nd_winograd_geom *g, void *scratch);
/* gin (or NULL) overwritten with dL/dx; gw (or NULL) += scale * dL/dw. x is read only for gw,
 * w only for gin. */
nd_status nd_winograd_backward_f32(float *gin, float *gw, const float *x, const float *gout, const float *w,
                                   double scale, const nd_winograd_geom *g, void *scratch);
nd_status nd_winograd_backward_f64(double *gin, double *gw, const double *x, const double *gout, const double *w,
                                   double scale, const nd_winograd_geom *g, void *scratch);

/* ------------------------------------------------------------------------------------------
 * Pooling (pool.c). input (N,C,H,W) or (C,H,W), any strides (contiguous copy at entry);
 * outputs and grad_input contiguous with the exact shape.
 * ------------------------------------------------------------------------------------------ */

typedef struct nd_pool2d_params {
    int64_t kh, kw, sh, sw, ph, pw;
    int ceil_mode;         /* ceil instead of floor for the output size (last window must start inside) */
    int count_include_pad; /* average pooling: divide by the window clipped to the padded image
                              (1, the Torch7/PyTorch default) or by the valid pixels only (0) */
} nd_pool2d_params;

/* PyTorch's rule: floor or ceil((in + 2p - k) / s) + 1, minus one when ceil mode would start
 * the last window in the right padding. */
int64_t nd_pool_out_size(int64_t in, int64_t k, int64_t s, int64_t p, int ceil_mode);

/* indices: int64, shape of out, 0-based flat position ih*W + iw of the max in its input plane
 * (ties: the first in row-major order; NaN wins). Padding never wins. */
nd_status nd_maxpool2d_forward_cpu(nd_tensor *out, nd_tensor *indices, const nd_tensor *input,
                                   const nd_pool2d_params *p);
/* grad_input (shape of input) overwritten: zero, plus grad_output scattered to the indices.
 * grad_output and indices any strides (contiguous copy at entry). */
nd_status nd_maxpool2d_backward_cpu(nd_tensor *grad_input, const nd_tensor *grad_output, const nd_tensor *indices,
                                    const nd_pool2d_params *p);
nd_status nd_avgpool2d_forward_cpu(nd_tensor *out, const nd_tensor *input, const nd_pool2d_params *p);
/* grad_input's shape gives the input size. grad_output any strides. */
nd_status nd_avgpool2d_backward_cpu(nd_tensor *grad_input, const nd_tensor *grad_output, const nd_pool2d_params *p);
/* Adaptive average pooling to out's OH x OW: bin i covers [floor(i*H/OH), ceil((i+1)*H/OH)). */
nd_status nd_adaptive_avgpool2d_forward_cpu(nd_tensor *out, const nd_tensor *input);
nd_status nd_adaptive_avgpool2d_backward_cpu(nd_tensor *grad_input, const nd_tensor *grad_output);

/* ------------------------------------------------------------------------------------------
 * Activations (act.c)
 * Elementwise ones: any strides for every operand; out may be the input itself (in place) and
 * grad_input may be grad_output. Their backward takes the forward OUTPUT y.
 * ------------------------------------------------------------------------------------------ */

nd_status nd_relu_forward_cpu(nd_tensor *out, const nd_tensor *input);
/* grad_input = grad_output where y > 0, else 0 (y = output, or the input: same sign). */
nd_status nd_relu_backward_cpu(nd_tensor *grad_input, const nd_tensor *grad_output, const nd_tensor *output);
nd_status nd_sigmoid_forward_cpu(nd_tensor *out, const nd_tensor *input);
nd_status nd_sigmoid_backward_cpu(nd_tensor *grad_input, const nd_tensor *grad_output, const nd_tensor *output);
nd_status nd_tanh_forward_cpu(nd_tensor *out, const nd_tensor *input);
nd_status nd_tanh_backward_cpu(nd_tensor *grad_input, const nd_tensor *grad_output, const nd_tensor *output);

/* Softmax / log-softmax over dim 1 of (N,C) or (N,C,d2,...) (over dim 0 of a 1-d (C) input),
 * max subtracted, sums in double. Inputs any strides (contiguous copy at entry), outputs
 * contiguous; in place allowed (out = input, grad_input = grad_output or output).
 * Backward: softmax gi = y * (go - sum_c go*y); logsoftmax gi = go - exp(y) * sum_c go. */
nd_status nd_softmax_forward_cpu(nd_tensor *out, const nd_tensor *input);
nd_status nd_softmax_backward_cpu(nd_tensor *grad_input, const nd_tensor *grad_output, const nd_tensor *output);
nd_status nd_logsoftmax_forward_cpu(nd_tensor *out, const nd_tensor *input);
nd_status nd_logsoftmax_backward_cpu(nd_tensor *grad_input, const nd_tensor *grad_output, const nd_tensor *output);

/* ------------------------------------------------------------------------------------------
 * Batch normalisation (norm.c) over (N,C) or (N,C,d2,...): statistics per plane c over N and
 * every trailing position (m = N * d2 * ... values). Sums in double. input and grad_output any
 * strides (contiguous copy at entry); out and grad_input contiguous (in place allowed: out = input,
 * grad_input = grad_output or input); the 1-d (C) tensors
 * (weight, bias, running and saved statistics, grad_weight, grad_bias) any stride.
 * ------------------------------------------------------------------------------------------ */

/* Training: y = (x - mean) * invstd * w + b with the batch mean and invstd = 1/sqrt(var + eps),
 * var biased (/m). save_mean, save_invstd (C) receive them for the backward. When running_mean
 * and running_var are given: running = (1 - momentum) * running + momentum * batch statistic,
 * with the UNBIASED variance (/(m-1)) for running_var (PyTorch). weight, bias may be NULL
 * (no affine: w = 1, b = 0). */
nd_status nd_batchnorm_forward_train_cpu(nd_tensor *out, nd_tensor *save_mean, nd_tensor *save_invstd,
                                         const nd_tensor *input, const nd_tensor *weight, const nd_tensor *bias,
                                         nd_tensor *running_mean, nd_tensor *running_var, double momentum, double eps);
/* Evaluation: y = (x - running_mean) / sqrt(running_var + eps) * w + b. */
nd_status nd_batchnorm_forward_eval_cpu(nd_tensor *out, const nd_tensor *input, const nd_tensor *weight,
                                        const nd_tensor *bias, const nd_tensor *running_mean,
                                        const nd_tensor *running_var, double eps);
/* training != 0: the statistics are the batch's (save_mean, save_invstd from the forward), and
 *   gi = w * invstd * (go - mean(go) - xhat * mean(go * xhat));
 * training == 0: running statistics are constants: gi = go * w / sqrt(running_var + eps).
 * grad_weight += scale * sum(go * xhat), grad_bias += scale * sum(go). Any of grad_input,
 * grad_weight, grad_bias may be NULL; weight NULL means w = 1. The unused pair of statistics may
 * be NULL. */
nd_status nd_batchnorm_backward_cpu(nd_tensor *grad_input, nd_tensor *grad_weight, nd_tensor *grad_bias,
                                    const nd_tensor *input, const nd_tensor *grad_output, const nd_tensor *weight,
                                    const nd_tensor *save_mean, const nd_tensor *save_invstd,
                                    const nd_tensor *running_mean, const nd_tensor *running_var, int training,
                                    double scale, double eps);

/* ------------------------------------------------------------------------------------------
 * Losses (loss.c). Forward results are doubles; backward takes grad_scale = dL_total/dloss
 * (1 when the loss is the end of the graph). Inputs any strides; grad_input contiguous for NLL,
 * any strides for MSE and BCE (and may then be the input itself).
 * ------------------------------------------------------------------------------------------ */

/* Class NLL: input (N,C) log-probabilities or (C) for one sample; target int64 (N) (or one
 * element), 0-based classes; class_weight (C) or NULL; targets equal to ignore_index contribute
 * nothing. loss = -sum_n w[t_n] input[n][t_n], divided by total_weight = sum_n w[t_n] when
 * size_average (0 / 0 = NaN when every target is ignored, as PyTorch). */
nd_status nd_nll_loss_forward_cpu(double *loss, double *total_weight, const nd_tensor *input, const nd_tensor *target,
                                  const nd_tensor *class_weight, int size_average, int64_t ignore_index);
/* grad_input (shape of input) overwritten: -w[t_n] * grad_scale (/ total_weight) at [n][t_n]. */
nd_status nd_nll_loss_backward_cpu(nd_tensor *grad_input, const nd_tensor *target, const nd_tensor *class_weight,
                                   double total_weight, int size_average, int64_t ignore_index, double grad_scale);
/* MSE: sum (x - y)^2, / numel when size_average. input and target: same element count. */
nd_status nd_mse_loss_forward_cpu(double *loss, const nd_tensor *input, const nd_tensor *target, int size_average);
nd_status nd_mse_loss_backward_cpu(nd_tensor *grad_input, const nd_tensor *input, const nd_tensor *target,
                                   int size_average, double grad_scale);
/* BCE: -sum w (y log x + (1 - y) log(1 - x)), logs clamped at -100 (PyTorch); weight (same
 * element count) or NULL. Backward: w (x - y) / max(x (1 - x), 1e-12). */
nd_status nd_bce_loss_forward_cpu(double *loss, const nd_tensor *input, const nd_tensor *target,
                                  const nd_tensor *weight, int size_average);
nd_status nd_bce_loss_backward_cpu(nd_tensor *grad_input, const nd_tensor *input, const nd_tensor *target,
                                   const nd_tensor *weight, int size_average, double grad_scale);

/* ------------------------------------------------------------------------------------------
 * Internal helpers shared by the nn kernel files (not part of the API).
 * ------------------------------------------------------------------------------------------ */

#include <string.h>

/* The checks below take the device the tensors must be on (ND_DEVICE_CPU for the kernels here,
 * ND_DEVICE_CUDA for their twins in src/cuda), named in the message. */
static inline const char *nd_nn_device_name(nd_device_type dev) { return dev == ND_DEVICE_CUDA ? "CUDA" : "CPU"; }

/* Checks that t is a float32/float64 tensor on dev, of dtype dt (dt < 0: either float dtype). */
static inline nd_status nd_nn_check_float_on(nd_device_type dev, const char *op, const char *what, const nd_tensor *t,
                                             int dt)
{
    if (nd_tensor_device(t).type != dev)
        return ND_ERROR(ND_ERR_DEVICE, "%s: %s is not a %s tensor", op, what, nd_nn_device_name(dev));
    if (!nd_dtype_is_float(t->dtype))
        return ND_ERROR(ND_ERR_DTYPE, "%s: %s must be float32 or float64, got %s", op, what, nd_dtype_name(t->dtype));
    if (dt >= 0 && (int)t->dtype != dt)
        return ND_ERROR(ND_ERR_DTYPE, "%s: %s is %s but the input is %s", op, what, nd_dtype_name(t->dtype),
                        nd_dtype_name((nd_dtype)dt));
    return ND_OK;
}

/* Checks an output: on dev, dtype dt, exactly the given shape and (when contig) contiguous. */
static inline nd_status nd_nn_check_out_on(nd_device_type dev, const char *op, const char *what, const nd_tensor *t,
                                           nd_dtype dt, int ndim, const int64_t *size, int contig)
{
    char a[ND_SHAPE_STR_MAX], b[ND_SHAPE_STR_MAX];
    if (nd_tensor_device(t).type != dev)
        return ND_ERROR(ND_ERR_DEVICE, "%s: %s is not a %s tensor", op, what, nd_nn_device_name(dev));
    if (t->dtype != dt)
        return ND_ERROR(ND_ERR_DTYPE, "%s: %s is %s, expected %s", op, what, nd_dtype_name(t->dtype),
                        nd_dtype_name(dt));
    int same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++)
        same = t->size[d] == size[d];
    if (!same) {
        nd_tensor want;
        nd_tensor_init_empty(&want, dt);
        want.ndim = ndim;
        for (int d = 0; d < ndim; d++)
            want.size[d] = size[d];
        return ND_ERROR(ND_ERR_SHAPE, "%s: %s has shape %s, expected %s", op, what, nd_tensor_shape_str(t, a, sizeof a),
                        nd_tensor_shape_str(&want, b, sizeof b));
    }
    if (contig && !nd_tensor_is_contiguous(t))
        return ND_ERROR(ND_ERR_ARG, "%s: %s (%s) must be contiguous", op, what, nd_tensor_shape_str(t, a, sizeof a));
    return ND_OK;
}

/* A vector-like tensor of n elements (at most one dim of size > 1, any stride) on dev: checks
 * it and returns the element stride. */
static inline nd_status nd_nn_check_vec_on(nd_device_type dev, const char *op, const char *what, const nd_tensor *t,
                                           nd_dtype dt, int64_t n, int64_t *stride)
{
    char a[ND_SHAPE_STR_MAX];
    ND_TRY(nd_nn_check_float_on(dev, op, what, t, (int)dt));
    int ok = nd_tensor_numel(t) == n;
    int64_t st = 1;
    int seen = 0;
    for (int d = 0; ok && d < t->ndim; d++)
        if (t->size[d] != 1) {
            ok = !seen;
            seen = 1;
            st = t->stride[d];
        }
    if (!ok)
        return ND_ERROR(ND_ERR_SHAPE, "%s: expected %s of %lld elements, got %s", op, what, (long long)n,
                        nd_tensor_shape_str(t, a, sizeof a));
    *stride = st;
    return ND_OK;
}

/* The same checks for CPU tensors (the kernels of this header). */
static inline nd_status nd_nn_check_float(const char *op, const char *what, const nd_tensor *t, int dt)
{
    return nd_nn_check_float_on(ND_DEVICE_CPU, op, what, t, dt);
}
static inline nd_status nd_nn_check_out(const char *op, const char *what, const nd_tensor *t, nd_dtype dt, int ndim,
                                        const int64_t *size, int contig)
{
    return nd_nn_check_out_on(ND_DEVICE_CPU, op, what, t, dt, ndim, size, contig);
}
static inline nd_status nd_nn_check_vec(const char *op, const char *what, const nd_tensor *t, nd_dtype dt, int64_t n,
                                        int64_t *stride)
{
    return nd_nn_check_vec_on(ND_DEVICE_CPU, op, what, t, dt, n, stride);
}

/* Fails when out shares storage with any of the n tensors (NULL entries skipped), except, when
 * allow_same != 0, with the very same view (in place, for kernels that read each element before
 * writing it). */
static inline nd_status nd_nn_check_alias(const char *op, const char *what, const nd_tensor *out, int allow_same, int n,
                                          const nd_tensor *const *others)
{
    for (int k = 0; out && k < n; k++) {
        const nd_tensor *o = others[k];
        if (!o || !out->storage || o->storage != out->storage) continue;
        /* disjoint element ranges of one storage (e.g. the flat parameter and gradient
         * tensors of getParameters) do not alias */
        int64_t o_hi = o->offset, out_hi = out->offset;
        for (int d = 0; d < o->ndim; d++)
            o_hi += (o->size[d] - 1) * o->stride[d];
        for (int d = 0; d < out->ndim; d++)
            out_hi += (out->size[d] - 1) * out->stride[d];
        if (o_hi < out->offset || out_hi < o->offset) continue;
        int same = allow_same && o->offset == out->offset && o->ndim == out->ndim;
        for (int d = 0; same && d < o->ndim; d++)
            same = o->size[d] == out->size[d] && o->stride[d] == out->stride[d];
        if (!same)
            return ND_ERROR(ND_ERR_ARG, "%s: %s shares memory with an input (not supported%s)", op, what,
                            allow_same ? " except exactly in place" : "");
    }
    return ND_OK;
}

/* ---- shared argument checks (nn_check.c): used by the kernels here with dev = ND_DEVICE_CPU and
 * by their CUDA twins with ND_DEVICE_CUDA; same rules, same messages. ---- */

/* Everything the convolution kernels need about one call, validated. A 3-d input counts as N = 1. */
typedef struct nd_conv_geom {
    int64_t N, C, H, W, Cout, OH, OW;
    int64_t kh, kw, sh, sw, ph, pw, dh, dw, groups;
} nd_conv_geom;

/* The parameters and an image-shaped tensor (input, grad_input or image): fills g but Cout. */
nd_status nd_conv_check_image(nd_device_type dev, const char *op, nd_conv_geom *g, const nd_tensor *image,
                              const char *what, const nd_conv2d_params *p);
/* Shape of the output (or grad_output) for g and an image of rank ndim; returns ndim. */
int nd_conv_out_shape(const nd_conv_geom *g, int ndim, int64_t *size);
/* A forward call (contiguous: out must be); *bst = the bias stride (0 without bias). */
nd_status nd_conv_check_forward(nd_device_type dev, const char *op, nd_conv_geom *g, const nd_tensor *out,
                                const nd_tensor *input, const nd_tensor *weight, const nd_tensor *bias,
                                const nd_conv2d_params *p, int contiguous, int64_t *bst);
/* A backward call (image: input, or grad_input without one; weight or grad_weight gives the
 * kernel shape; contiguous: the gradients must be); *gbst = the grad_bias stride. */
nd_status nd_conv_check_backward(nd_device_type dev, const char *op, nd_conv_geom *g, const nd_tensor *grad_input,
                                 const nd_tensor *grad_weight, const nd_tensor *grad_bias, const nd_tensor *input,
                                 const nd_tensor *grad_output, const nd_tensor *weight, const nd_conv2d_params *p,
                                 int contiguous, int64_t *gbst);
/* im2col / col2im (groups ignored); size (2) gets the shape of cols. */
nd_status nd_conv_check_im2col(nd_device_type dev, const char *op, nd_conv_geom *g, const nd_tensor *cols,
                               const nd_tensor *input, const nd_conv2d_params *p, int64_t *size);
nd_status nd_conv_check_col2im(nd_device_type dev, const char *op, nd_conv_geom *g, const nd_tensor *image,
                               const nd_tensor *cols, const nd_conv2d_params *p, int64_t *size);

/* Pooling geometry; planes = N * C. */
typedef struct nd_pool_geom {
    int64_t planes, H, W, OH, OW;
    int64_t kh, kw, sh, sw, ph, pw;
    int count_include_pad;
} nd_pool_geom;

/* A forward call: geometry, output (size gets the pooled shape), aliasing, and the max-pooling
 * indices when not NULL. */
nd_status nd_pool_check_fwd(nd_device_type dev, const char *op, nd_pool_geom *g, const nd_tensor *out,
                            const nd_tensor *indices, const nd_tensor *input, const nd_pool2d_params *p, int64_t *size);
/* A backward call: geometry, grad_input, aliasing, grad_output of the pooled shape (in size),
 * and the max-pooling indices (any strides) when not NULL. */
nd_status nd_pool_check_bwd(nd_device_type dev, const char *op, nd_pool_geom *g, const nd_tensor *grad_input,
                            const nd_tensor *grad_output, const nd_tensor *indices, const nd_pool2d_params *p,
                            int64_t *size);
/* Adaptive pooling: the output size comes from out (or grad_output). */
nd_status nd_pool_check_adaptive_fwd(nd_device_type dev, const char *op, nd_pool_geom *g, const nd_tensor *out,
                                     const nd_tensor *input);
nd_status nd_pool_check_adaptive_bwd(nd_device_type dev, const char *op, nd_pool_geom *g, const nd_tensor *grad_input,
                                     const nd_tensor *grad_output);

/* Batch normalisation: input viewed as (N, C, S); per-plane vectors as (pointer, stride), p NULL
 * when absent. The checks fill the vectors of the tensors they validate. */
typedef struct nd_bn_geom {
    int64_t N, C, S;
} nd_bn_geom;
typedef struct nd_bn_vec {
    void *p;
    int64_t stride;
} nd_bn_vec;

nd_status nd_bn_check_forward_train(nd_device_type dev, const char *op, nd_bn_geom *g, const nd_tensor *out,
                                    const nd_tensor *save_mean, const nd_tensor *save_invstd, const nd_tensor *input,
                                    const nd_tensor *weight, const nd_tensor *bias, const nd_tensor *running_mean,
                                    const nd_tensor *running_var, double eps, nd_bn_vec *w, nd_bn_vec *b,
                                    nd_bn_vec *sm, nd_bn_vec *si, nd_bn_vec *rm, nd_bn_vec *rv);
nd_status nd_bn_check_forward_eval(nd_device_type dev, const char *op, nd_bn_geom *g, const nd_tensor *out,
                                   const nd_tensor *input, const nd_tensor *weight, const nd_tensor *bias,
                                   const nd_tensor *running_mean, const nd_tensor *running_var, nd_bn_vec *w,
                                   nd_bn_vec *b, nd_bn_vec *rm, nd_bn_vec *rv);
/* mean, inv: save_mean / save_invstd when training, else running_mean / running_var. */
nd_status nd_bn_check_backward(nd_device_type dev, const char *op, nd_bn_geom *g, const nd_tensor *grad_input,
                               const nd_tensor *grad_weight, const nd_tensor *grad_bias, const nd_tensor *input,
                               const nd_tensor *grad_output, const nd_tensor *weight, const nd_tensor *save_mean,
                               const nd_tensor *save_invstd, const nd_tensor *running_mean,
                               const nd_tensor *running_var, int training, nd_bn_vec *gw, nd_bn_vec *gb, nd_bn_vec *w,
                               nd_bn_vec *mean, nd_bn_vec *inv);

/* Softmax: the (N, C, S) view of an operand (dim 1 is the class dim; dim 0 for a 1-d tensor). */
nd_status nd_softmax_check_dims(nd_device_type dev, const char *op, const nd_tensor *t, int64_t *N, int64_t *C,
                                int64_t *S);
/* Losses: t (named what) is a float tensor of like's dtype with like's element count. */
nd_status nd_loss_check_like(nd_device_type dev, const char *op, const char *what, const nd_tensor *t,
                             const nd_tensor *like);
/* nll_loss: input shape_of (N,C) or (C) (sets N, C and its element strides sn, sc), N int64
 * targets on dev, optional class weights (C) of the input's dtype (sets their stride wst). */
nd_status nd_nll_check_dims(nd_device_type dev, const char *op, const nd_tensor *shape_of, const nd_tensor *target,
                            const nd_tensor *class_weight, int64_t *N, int64_t *C, int64_t *sn, int64_t *sc,
                            int64_t *wst);

/* Element `off` (in elements from the view's start) of a float tensor, as double, and back. */
static inline double nd_nn_get(const nd_tensor *t, int64_t off)
{
    return t->dtype == ND_DTYPE_F64 ? ((const double *)nd_tensor_data(t))[off]
                                    : ((const float *)nd_tensor_data(t))[off];
}
static inline void nd_nn_set(nd_tensor *t, int64_t off, double v)
{
    if (t->dtype == ND_DTYPE_F64)
        ((double *)nd_tensor_data(t))[off] = v;
    else
        ((float *)nd_tensor_data(t))[off] = (float)v;
}

#endif
