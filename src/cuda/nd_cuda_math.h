/* CUDA twins of the tensor math (elementwise.cu, reduce.cu, blas.cu, index.cu).
 *
 * Each nd_X_cuda has exactly the arguments and the contract of nd_X_cpu (src/cpu/nd_cpu_math.h,
 * src/cpu/nd_cpu_linalg.h: dtype rules, EMPTY-or-exact-shape `out`, 0-based dims and indices,
 * error messages naming the op and the shapes), with these differences:
 * - every tensor argument lives on one GPU (ND_ERR_DEVICE otherwise); an EMPTY out is allocated
 *   on that GPU; index tensors are int64 on the same GPU;
 * - work is queued on nd_cuda_stream() and the host does not wait, except where a result comes
 *   back to the host: nd_reduce_all_cuda and nd_dot_cuda (scalars), integer ops that can divide
 *   by zero (the error flag), and the index ops (their indices are range-checked on the device
 *   and the check is read back, so a bad index is an error, not a memory fault);
 * - sums accumulate in double for float32 as on the CPU, but in a different order: results agree
 *   to rounding, not bit for bit;
 * - with repeated indices, index_copy / scatter write one of the candidates (not always the last);
 *   index_add / scatter_add accumulate atomically (float32/float64/int64; uint8: ND_ERR_DTYPE);
 * - gemm/bgemm/gemv/ger/dot of float32 run in strict float32 on cuBLAS unless TF32 is switched
 *   on (nd_cuda_set_tf32), float64 in float64; integer dtypes use a plain kernel.
 * Not here (the binding raises "no CUDA kernel" errors): gemm_ref, masked_select, masked_copy,
 * nonzero, sort, topk.
 *
 * Device-to-device copies (contiguous temporaries, cat, loading c in the products) go through
 * nd_tensor_copy, i.e. the backend's copy hook (nd_cuda_copy, copy.cu).
 * Plain C header: the Lua binding (gcc) includes it for the prototypes of ND_DEVICE_CALL. */
#ifndef ND_CUDA_MATH_H
#define ND_CUDA_MATH_H

#ifdef __cplusplus
extern "C" {
#endif

#include "nd.h"
#include "nd_cpu_linalg.h"
#include "nd_cpu_math.h"

/* ---- elementwise.cu ---- */
nd_status nd_unary_cuda(nd_tensor *out, const nd_tensor *x, nd_unary_op op, double p1, double p2);
nd_status nd_binary_cuda(nd_tensor *out, const nd_tensor *a, const nd_tensor *b, nd_binary_op op, double alpha);
nd_status nd_ternary_cuda(nd_tensor *out, const nd_tensor *a, const nd_tensor *b, const nd_tensor *c, nd_ternary_op op,
                          double v);
/* nd_fill_cuda (the twin of nd_fill_cpu) lives in copy.cu, declared in nd_cuda.h. */

/* ---- reduce.cu ---- */
nd_status nd_reduce_cuda(nd_tensor *values, nd_tensor *indices, const nd_tensor *x, int dim, nd_reduce_op op, double p);
/* Synchronises: the scalar comes back to the host. */
nd_status nd_reduce_all_cuda(nd_scalar *out, const nd_tensor *x, nd_reduce_op op, double p);
nd_status nd_cumulate_cuda(nd_tensor *out, const nd_tensor *x, int dim, nd_cumulate_op op);

/* ---- blas.cu ---- */
nd_status nd_gemm_cuda(nd_tensor *out, double beta, const nd_tensor *c, double alpha, const nd_tensor *a,
                       const nd_tensor *b);
nd_status nd_bgemm_cuda(nd_tensor *out, double beta, const nd_tensor *c, double alpha, const nd_tensor *a,
                        const nd_tensor *b);
nd_status nd_gemv_cuda(nd_tensor *out, double beta, const nd_tensor *c, double alpha, const nd_tensor *a,
                       const nd_tensor *x);
nd_status nd_ger_cuda(nd_tensor *out, double beta, const nd_tensor *c, double alpha, const nd_tensor *x,
                      const nd_tensor *y);
/* Synchronises: the scalar comes back to the host. */
nd_status nd_dot_cuda(const nd_tensor *a, const nd_tensor *b, double *result);
/* TF32 tensor cores for float32 products: off by default (strict float32, parity with the CPU);
 * ND_CUDA_TF32=1 in the environment turns it on at load. Returns the previous setting. */
int nd_cuda_set_tf32(int on);
int nd_cuda_get_tf32(void);

/* ---- index.cu ---- */
nd_status nd_index_select_cuda(nd_tensor *out, const nd_tensor *x, int dim, const nd_tensor *idx);
nd_status nd_index_copy_cuda(nd_tensor *x, int dim, const nd_tensor *idx, const nd_tensor *src);
nd_status nd_index_add_cuda(nd_tensor *x, int dim, const nd_tensor *idx, const nd_tensor *src);
nd_status nd_index_fill_cuda(nd_tensor *x, int dim, const nd_tensor *idx, double value);
nd_status nd_gather_cuda(nd_tensor *out, const nd_tensor *x, int dim, const nd_tensor *idx);
nd_status nd_scatter_cuda(nd_tensor *x, int dim, const nd_tensor *idx, const nd_tensor *src);
nd_status nd_scatter_add_cuda(nd_tensor *x, int dim, const nd_tensor *idx, const nd_tensor *src);
nd_status nd_scatter_value_cuda(nd_tensor *x, int dim, const nd_tensor *idx, double value);
nd_status nd_masked_fill_cuda(nd_tensor *x, const nd_tensor *mask, double value);
nd_status nd_cat_cuda(nd_tensor *out, const nd_tensor *const *xs, int n, int dim);

/* ---- shared by the math .cu files (internal) ---- */

/* Checks that the n tensors (NULL and storage-less ones skipped) are on one GPU and makes it the
 * current device; *dev gets it (cuda:current when none has storage). */
nd_status nd_cuda_math_enter(const char *op, int n, const nd_tensor *const *ts, nd_device *dev);
/* nd_math_prepare_out on the GPU: an empty out is allocated on dev (contiguous, out's dtype);
 * a given one must be on dev, have the shape and not be an expanded view. */
nd_status nd_cuda_math_prepare_out(const char *op, nd_tensor *out, int ndim, const int64_t *size, nd_device dev);
/* nd_linalg_prepare_out on the GPU: an out with ndim 0 is allocated on dev with dtype dt; a given
 * one must be on dev, of dtype dt and of that shape (any strides). */
nd_status nd_cuda_linalg_prepare_out(const char *op, nd_tensor *out, nd_dtype dt, int ndim, const int64_t *size,
                                     nd_device dev);
/* A zeroed device status word for one op: kernels record the first failure (nd_cuda_flag_set),
 * nd_cuda_flag_read waits for the stream and returns whether one was set and its value. */
typedef struct nd_cuda_flag {
    int hit;
    int pad;
    long long value;
} nd_cuda_flag;
nd_status nd_cuda_flag_begin(nd_cuda_flag **dflag);
nd_status nd_cuda_flag_read(int *hit, int64_t *value);

#ifdef __cplusplus
}
#endif
#endif
