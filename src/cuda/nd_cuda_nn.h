/* CUDA twins of the nn kernels (src/cpu/nd_cpu_nn.h): convolution (cuDNN, plus an im2col +
 * cuBLAS reference), pooling, activations, batch normalisation, losses. Plain C API.
 *
 * Every function has exactly the arguments, shapes, dtypes, in-place and aliasing rules of its
 * _cpu counterpart, with these differences:
 * - every tensor argument lives on the current GPU (ND_ERR_DEVICE otherwise), except where a
 *   comment says so;
 * - the work is queued on nd_cuda_stream() and the call returns before it ran: nothing here
 *   synchronises the host, except the loss forwards, which return a host double (they copy
 *   three numbers back and wait for the stream: see below);
 * - inputs with arbitrary strides are copied to a contiguous device buffer first (freed
 *   when the call returns, through the caching allocator) where the CPU kernel does the same;
 * - sums are accumulated in double in the reductions (batch norm statistics, losses, bias
 *   gradients) like the CPU; convolution accumulates as cuDNN / cuBLAS do (fp32, or TF32 for
 *   float32 convolutions when enabled, see nd_conv_cuda_config). */
#ifndef ND_CUDA_NN_H
#define ND_CUDA_NN_H

#include <string.h> /* before the extern "C" block: nd_cpu_nn.h includes it */

#include "nd.h"

#ifdef __cplusplus
extern "C" {
#endif

#include "nd_cpu_nn.h" /* nd_conv2d_params, nd_pool2d_params, nd_conv_out_size, nd_pool_out_size */

/* ---- convolution (conv.cu) ---- */

/* cuDNN (algorithms found once per shape, dtype and math mode, cached). */
nd_status nd_conv2d_forward_cuda(nd_tensor *out, const nd_tensor *input, const nd_tensor *weight, const nd_tensor *bias,
                                 const nd_conv2d_params *p);
nd_status nd_conv2d_backward_input_cuda(nd_tensor *grad_input, const nd_tensor *grad_output, const nd_tensor *weight,
                                        const nd_conv2d_params *p);
nd_status nd_conv2d_backward_params_cuda(nd_tensor *grad_weight, nd_tensor *grad_bias, const nd_tensor *input,
                                         const nd_tensor *grad_output, double scale, const nd_conv2d_params *p);
nd_status nd_conv2d_backward_cuda(nd_tensor *grad_input, nd_tensor *grad_weight, nd_tensor *grad_bias,
                                  const nd_tensor *input, const nd_tensor *grad_output, const nd_tensor *weight,
                                  double scale, const nd_conv2d_params *p);
/* Reference: our im2col / col2im kernels and cuBLAS GEMMs (one per image and group), never
 * TF32; outputs any strides (a contiguous temporary then a copy). For tests of the cuDNN path. */
nd_status nd_conv2d_forward_ref_cuda(nd_tensor *out, const nd_tensor *input, const nd_tensor *weight,
                                     const nd_tensor *bias, const nd_conv2d_params *p);
nd_status nd_conv2d_backward_ref_cuda(nd_tensor *grad_input, nd_tensor *grad_weight, nd_tensor *grad_bias,
                                      const nd_tensor *input, const nd_tensor *grad_output, const nd_tensor *weight,
                                      double scale, const nd_conv2d_params *p);
nd_status nd_im2col_cuda(nd_tensor *cols, const nd_tensor *input, const nd_conv2d_params *p);
nd_status nd_col2im_cuda(nd_tensor *image, const nd_tensor *cols, const nd_conv2d_params *p);
/* Convolution settings (process-wide, read at each call); a negative argument leaves the
 * setting unchanged; returns the settings in force before the call through the pointers (may
 * be NULL).
 * tf32: float32 convolutions may use TF32 tensor cores (cuDNN's default math, as PyTorch's
 *   default torch.backends.cudnn.allow_tf32 = True): default 1, or ND_CUDNN_TF32=0 in the
 *   environment. 0 forces strict fp32 FMA math (parity tests). float64 is never affected.
 * find: 1 benchmarks the algorithms (cudnnFind*: runs each once, synchronises, once per shape),
 *   0 takes cuDNN's heuristic choice (cudnnGet*_v7, no run); default 1, or ND_CUDNN_FIND=0.
 * Changing a setting keeps the cache: the math mode is part of the key. */
void nd_conv_cuda_config(int tf32, int find, int *old_tf32, int *old_find);

/* ---- pooling (pool.cu) ----
 * Backward kernels gather (each input pixel sums the outputs that read it): deterministic, no
 * atomics. maxpool2d backward does not validate the indices (the CPU does): an index outside
 * its plane is simply never matched. */
nd_status nd_maxpool2d_forward_cuda(nd_tensor *out, nd_tensor *indices, const nd_tensor *input,
                                    const nd_pool2d_params *p);
nd_status nd_maxpool2d_backward_cuda(nd_tensor *grad_input, const nd_tensor *grad_output, const nd_tensor *indices,
                                     const nd_pool2d_params *p);
nd_status nd_avgpool2d_forward_cuda(nd_tensor *out, const nd_tensor *input, const nd_pool2d_params *p);
nd_status nd_avgpool2d_backward_cuda(nd_tensor *grad_input, const nd_tensor *grad_output, const nd_pool2d_params *p);
nd_status nd_adaptive_avgpool2d_forward_cuda(nd_tensor *out, const nd_tensor *input);
nd_status nd_adaptive_avgpool2d_backward_cuda(nd_tensor *grad_input, const nd_tensor *grad_output);

/* ---- activations (act.cu) ---- */
nd_status nd_relu_forward_cuda(nd_tensor *out, const nd_tensor *input);
nd_status nd_relu_backward_cuda(nd_tensor *grad_input, const nd_tensor *grad_output, const nd_tensor *output);
nd_status nd_sigmoid_forward_cuda(nd_tensor *out, const nd_tensor *input);
nd_status nd_sigmoid_backward_cuda(nd_tensor *grad_input, const nd_tensor *grad_output, const nd_tensor *output);
nd_status nd_tanh_forward_cuda(nd_tensor *out, const nd_tensor *input);
nd_status nd_tanh_backward_cuda(nd_tensor *grad_input, const nd_tensor *grad_output, const nd_tensor *output);
nd_status nd_softmax_forward_cuda(nd_tensor *out, const nd_tensor *input);
nd_status nd_softmax_backward_cuda(nd_tensor *grad_input, const nd_tensor *grad_output, const nd_tensor *output);
nd_status nd_logsoftmax_forward_cuda(nd_tensor *out, const nd_tensor *input);
nd_status nd_logsoftmax_backward_cuda(nd_tensor *grad_input, const nd_tensor *grad_output, const nd_tensor *output);

/* ---- batch normalisation (norm.cu) ----
 * Statistics: one pass of double sums (sum x, sum x^2) per plane, in per-block partials
 * combined in a fixed order (deterministic); var = E[x^2] - mean^2 clamped at 0. */
nd_status nd_batchnorm_forward_train_cuda(nd_tensor *out, nd_tensor *save_mean, nd_tensor *save_invstd,
                                          const nd_tensor *input, const nd_tensor *weight, const nd_tensor *bias,
                                          nd_tensor *running_mean, nd_tensor *running_var, double momentum, double eps);
nd_status nd_batchnorm_forward_eval_cuda(nd_tensor *out, const nd_tensor *input, const nd_tensor *weight,
                                         const nd_tensor *bias, const nd_tensor *running_mean,
                                         const nd_tensor *running_var, double eps);
nd_status nd_batchnorm_backward_cuda(nd_tensor *grad_input, nd_tensor *grad_weight, nd_tensor *grad_bias,
                                     const nd_tensor *input, const nd_tensor *grad_output, const nd_tensor *weight,
                                     const nd_tensor *save_mean, const nd_tensor *save_invstd,
                                     const nd_tensor *running_mean, const nd_tensor *running_var, int training,
                                     double scale, double eps);

/* ---- losses (loss.cu) ----
 * The forwards return host doubles: they synchronise the stream (one small device-to-host
 * copy). Targets of the NLL loss: int64 on the GPU, 0-based; a target outside [0, C) that is
 * not ignore_index makes the forward fail with ND_ERR_INDEX (checked on the device, reported
 * after the copy) and is skipped by the backward (which does not synchronise, so cannot report). */
nd_status nd_nll_loss_forward_cuda(double *loss, double *total_weight, const nd_tensor *input, const nd_tensor *target,
                                   const nd_tensor *class_weight, int size_average, int64_t ignore_index);
nd_status nd_nll_loss_backward_cuda(nd_tensor *grad_input, const nd_tensor *target, const nd_tensor *class_weight,
                                    double total_weight, int size_average, int64_t ignore_index, double grad_scale);
nd_status nd_mse_loss_forward_cuda(double *loss, const nd_tensor *input, const nd_tensor *target, int size_average);
nd_status nd_mse_loss_backward_cuda(nd_tensor *grad_input, const nd_tensor *input, const nd_tensor *target,
                                    int size_average, double grad_scale);
nd_status nd_bce_loss_forward_cuda(double *loss, const nd_tensor *input, const nd_tensor *target,
                                   const nd_tensor *weight, int size_average);
nd_status nd_bce_loss_backward_cuda(nd_tensor *grad_input, const nd_tensor *input, const nd_tensor *target,
                                    const nd_tensor *weight, int size_average, double grad_scale);
/* CUDA only (no CPU twin): out (contiguous int64, numel(target) elements, on the GPU) = the
 * 1-based class numbers of target (int64, float32 or float64, any shape and strides, on the
 * GPU) minus 1; targets equal to ignore (1-based, Lua's ignoreIndex) become ignore - 1.
 * Values that are not integral class numbers in [1, nclasses] become -2^62 (rejected by the
 * forward, skipped by the backward). No synchronisation. */
nd_status nd_nll_targets_cuda(nd_tensor *out, const nd_tensor *target, int64_t nclasses, int64_t ignore);

#ifdef __cplusplus
}
#endif
#endif
