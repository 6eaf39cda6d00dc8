/* CUDA twins of the network-deconvolution kernels (src/cpu/nd_cpu_deconv.h): Newton-Schulz
 * inverse square root (isqrt.cu), FastDeconv sampled im2col / col2im, statistics and weight
 * folding (deconv.cu), ChannelDeconv (channel_deconv.cu). Plain C API.
 *
 * Every function has exactly the arguments, shapes, dtypes (float32, float64) and output rules of
 * its _cpu counterpart (EMPTY outputs are allocated here, on the device of the first input;
 * others must be contiguous with the result's shape and are overwritten; col2im ADDS), with these
 * differences:
 * - every tensor argument lives on one GPU (ND_ERR_DEVICE otherwise); the work runs on that
 *   device's nd_cuda_stream() and the call returns before it ran;
 * - no host synchronisation, with one documented exception: nd_channel_deconv_forward_cuda
 *   returns mean2 / var2 as host doubles, so when the input has leftover channels it copies
 *   those two numbers back and waits for the stream (without leftovers it does not wait);
 * - a zero or non-finite Frobenius norm in isqrt is NOT reported (that needs the host): D and
 *   everything downstream become inf/NaN instead of ND_ERR_NUMERIC;
 * - precision: reductions (means, Frobenius norms, dot products, bias corrections, leftover
 *   statistics) accumulate in double; the Gram matrices X^T X are float32 cuBLAS products of
 *   centred row chunks of at most ND_DECONV_CHUNK rows, the chunks summed in double (the CPU
 *   scheme); every cuBLAS call runs in CUBLAS_DEFAULT_MATH (no TF32) unless TF32 products are
 *   switched on (nd_cuda_set_tf32, core.cudatf32, ND_CUDA_TF32=1: then the float32 statistics,
 *   Newton-Schulz and folding products use TF32 tensor cores, an experiment for speed);
 * - isqrt always evaluates the iterate products (the CPU may take its eigen-basis path for
 *   large d: same function up to rounding). Its `saved` has the CPU's shape and the layout of
 *   the CPU's iterate path; it is only meant to be passed back to nd_isqrt_backward_cuda.
 * Inputs of any strides are accepted (copied to contiguous device buffers where needed; im2col
 * reads strided input directly, col2im adds into a strided Gx directly).
 * Internal helpers shared by the three files: deconv_common.cuh / deconv_common.cu. */
#ifndef ND_CUDA_DECONV_H
#define ND_CUDA_DECONV_H

#include <string.h>

#include "nd.h"

#ifdef __cplusplus
extern "C" {
#endif

#include "nd_cpu_deconv.h" /* nd_deconv_geom, nd_deconv_layout, nd_isqrt_saved_slots, ... */

/* ---- Newton-Schulz (isqrt.cu) ---- */
nd_status nd_isqrt_forward_cuda(nd_tensor *D, nd_tensor *saved, const nd_tensor *A, int iters);
nd_status nd_isqrt_backward_cuda(nd_tensor *GA, const nd_tensor *GD, const nd_tensor *saved, const nd_tensor *A,
                                 int iters);

/* ---- FastDeconv (deconv.cu) ---- */
nd_status nd_deconv_im2col_cuda(nd_tensor *X, const nd_tensor *x, const nd_deconv_geom *g);
nd_status nd_deconv_col2im_cuda(nd_tensor *Gx, const nd_tensor *GX, const nd_deconv_geom *g);
nd_status nd_deconv_cov_forward_cuda(nd_tensor *mu, nd_tensor *C, const nd_tensor *X, int64_t groups, double eps);
nd_status nd_deconv_cov_backward_cuda(nd_tensor *GX, const nd_tensor *GC, const nd_tensor *Gmu, const nd_tensor *X,
                                      const nd_tensor *mu, int64_t groups);
nd_status nd_deconv_fold_forward_cuda(nd_tensor *Wf, nd_tensor *b, const nd_tensor *W, const nd_tensor *b0,
                                      const nd_tensor *D, const nd_tensor *mu, int64_t groups, nd_deconv_layout layout);
nd_status nd_deconv_fold_backward_cuda(nd_tensor *GW, nd_tensor *Gb0, nd_tensor *GD, nd_tensor *Gmu,
                                       const nd_tensor *GWf, const nd_tensor *Gb, const nd_tensor *W,
                                       const nd_tensor *D, const nd_tensor *mu, int64_t groups,
                                       nd_deconv_layout layout);

/* ---- ChannelDeconv (channel_deconv.cu) ---- */
nd_status nd_channel_deconv_forward_cuda(nd_tensor *y, nd_tensor *mean1, nd_tensor *D, nd_tensor *cov, nd_tensor *saved,
                                         double *mean2, double *var2, const nd_tensor *x, int64_t B, double eps,
                                         int iters, int64_t s);
nd_status nd_channel_deconv_apply_cuda(nd_tensor *y, const nd_tensor *x, const nd_tensor *mean1, const nd_tensor *D,
                                       double mean2, double var2, double eps);
nd_status nd_channel_deconv_backward_cuda(nd_tensor *gx, const nd_tensor *gy, const nd_tensor *x,
                                          const nd_tensor *mean1, const nd_tensor *D, const nd_tensor *cov,
                                          const nd_tensor *saved, double mean2, double var2, int64_t B, double eps,
                                          int iters, int64_t s);

#ifdef __cplusplus
}
#endif
#endif
