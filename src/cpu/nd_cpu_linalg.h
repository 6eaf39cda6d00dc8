/* CPU linear algebra, index operations, sorting and concatenation.
 *
 * Conventions for every function here:
 * - Stateless; returns ND_OK or an error status with a message naming the op and the shapes.
 * - Inputs may have any strides (transposed, narrowed, expanded views are fine).
 * - An `out` argument is either EMPTY (no storage: it is then allocated here, contiguous, and the
 *   caller owns the new reference) or already has exactly the result shape (any strides) and is
 *   written in place. Functions documented "out is new" always allocate: out must not hold a
 *   reference.
 * - Indices are 0-based int64 values (the Lua binding converts from 1-based); messages print
 *   indices and dimensions 1-based, as the rest of the engine does.
 * - Results must not overlap inputs, except where a function says it handles that. */
#ifndef ND_CPU_LINALG_H
#define ND_CPU_LINALG_H

#include "nd.h"

/* ---- BLAS (blas.c) ----
 * float32 / float64 go to OpenBLAS (cblas_?gemm, ?gemv, ?ger, ?dot); int64 and uint8 use plain
 * loops (uint8 wraps around). All operands of one call share a dtype.
 * `c` is optional: NULL means "the current contents of out" (Torch7's res:addmm(mat1, mat2));
 * otherwise c is copied into out first (c may be expanded to out's shape, e.g. a bias row).
 * With beta == 0 the previous contents of out (and c) are ignored, NaNs included.
 * out may share storage with a or b: the product is then formed in a temporary. */

/* out (m x n) = beta * c (m x n) + alpha * a (m x k) @ b (k x n). Matrices with stride 1 in either
 * dimension go to BLAS directly (with the matching transpose flag and leading dimension); others
 * are copied contiguous first. */
nd_status nd_gemm_cpu(nd_tensor *out, double beta, const nd_tensor *c, double alpha, const nd_tensor *a,
                      const nd_tensor *b);
/* The same contract with three plain loops (accumulating in double for floats): the reference
 * that the tests hold nd_gemm_cpu to. */
nd_status nd_gemm_ref_cpu(nd_tensor *out, double beta, const nd_tensor *c, double alpha, const nd_tensor *a,
                          const nd_tensor *b);
/* Batched: out (B x m x n) = beta * c (B x m x n) + alpha * a (B x m x k) @ b (B x k x n), one gemm
 * per batch entry (OpenBLAS threads inside each product). */
nd_status nd_bgemm_cpu(nd_tensor *out, double beta, const nd_tensor *c, double alpha, const nd_tensor *a,
                       const nd_tensor *b);
/* out (m) = beta * c (m) + alpha * a (m x n) @ x (n). */
nd_status nd_gemv_cpu(nd_tensor *out, double beta, const nd_tensor *c, double alpha, const nd_tensor *a,
                      const nd_tensor *x);
/* out (m x n) = beta * c (m x n) + alpha * x (m) y (n)^T (outer product). */
nd_status nd_ger_cpu(nd_tensor *out, double beta, const nd_tensor *c, double alpha, const nd_tensor *x,
                     const nd_tensor *y);
/* *result = sum_i a_i b_i over two tensors of equal element count (read in row-major order);
 * floats accumulate as BLAS does, integers exactly (then converted to double). */
nd_status nd_dot_cpu(const nd_tensor *a, const nd_tensor *b, double *result);

/* Threads used by OpenBLAS and by our OpenMP loops (n >= 1). Never call BLAS from inside an
 * OpenMP parallel region: the pthread OpenBLAS would start its own threads in each. */
void nd_blas_set_threads(int n);
int nd_blas_get_threads(void);
/* "OpenBLAS 0.3.21 ..." (the library's own description). */
const char *nd_blas_config(void);

/* ---- index operations (index.c); all dtypes ---- */

/* idx: 1-d int64 (n). out = x with size[dim] = n, out.select(dim, i) = x.select(dim, idx[i]). */
nd_status nd_index_select_cpu(nd_tensor *out, const nd_tensor *x, int dim, const nd_tensor *idx);
/* x.select(dim, idx[i]) = src.select(dim, i); src = x's shape with size[dim] = n. With repeated
 * indices the last write wins. */
nd_status nd_index_copy_cpu(nd_tensor *x, int dim, const nd_tensor *idx, const nd_tensor *src);
/* x.select(dim, idx[i]) += src.select(dim, i); repeated indices accumulate. */
nd_status nd_index_add_cpu(nd_tensor *x, int dim, const nd_tensor *idx, const nd_tensor *src);
/* x.select(dim, idx[i]) = value. */
nd_status nd_index_fill_cpu(nd_tensor *x, int dim, const nd_tensor *idx, double value);
/* idx: int64 with x's ndim and idx.size(d) <= x.size(d) for d != dim. out has idx's shape:
 * out[..., i, ...] = x[..., idx[..., i, ...], ...] (i at position dim). */
nd_status nd_gather_cpu(nd_tensor *out, const nd_tensor *x, int dim, const nd_tensor *idx);
/* The inverse of gather: x[..., idx[..., i, ...], ...] = src[..., i, ...]; idx.size(d) <= src.size(d)
 * for all d and <= x.size(d) for d != dim. scatter_add accumulates instead of overwriting. */
nd_status nd_scatter_cpu(nd_tensor *x, int dim, const nd_tensor *idx, const nd_tensor *src);
nd_status nd_scatter_add_cpu(nd_tensor *x, int dim, const nd_tensor *idx, const nd_tensor *src);
nd_status nd_scatter_value_cpu(nd_tensor *x, int dim, const nd_tensor *idx, double value);
/* mask: any dtype, nonzero = true, x's shape (expand it first to broadcast). */
nd_status nd_masked_fill_cpu(nd_tensor *x, const nd_tensor *mask, double value);
/* out is new: 1-d with the selected elements of x in row-major order (empty when none). */
nd_status nd_masked_select_cpu(nd_tensor *out, const nd_tensor *x, const nd_tensor *mask);
/* The k-th selected element of x (row-major) = the k-th element of src (row-major);
 * src needs at least as many elements as the mask selects. */
nd_status nd_masked_copy_cpu(nd_tensor *x, const nd_tensor *mask, const nd_tensor *src);
/* out is new: int64 (n x ndim), the 0-based coordinates of the nonzero elements of x in row-major
 * order (empty when none). */
nd_status nd_nonzero_cpu(nd_tensor *out, const nd_tensor *x);
/* Concatenates n tensors along dim. Empty inputs (ndim 0) are skipped; the others need the same
 * ndim and the same sizes except at dim. out's dtype is the first non-empty input's when out is
 * empty; inputs of another dtype are converted. */
nd_status nd_cat_cpu(nd_tensor *out, const nd_tensor *const *xs, int n, int dim);
/* Device-neutral halves of cat (math_check.c, shared with nd_cat_cuda): the result's size (ref =
 * the first non-empty input, -1 when all are empty: nothing to do), and the copies of the
 * non-empty inputs into their slices of out. */
nd_status nd_cat_shape(const nd_tensor *const *xs, int n, int dim, int *ref, int64_t *size);
nd_status nd_cat_copy(nd_tensor *out, const nd_tensor *const *xs, int n, int dim);

/* ---- sorting (sort.c); all dtypes; NaN sorts as the largest value ---- */

/* values (x's shape, x's dtype) and indices (x's shape, int64) hold each slice along dim sorted
 * ascending (or descending), stably: equal values keep their original order. */
nd_status nd_sort_cpu(nd_tensor *values, nd_tensor *indices, const nd_tensor *x, int dim, int descending);
/* The k largest (or smallest) entries of each slice along dim, in sorted order (best first; ties
 * by position). values / indices: x's shape with size[dim] = k. 1 <= k <= size[dim]. */
nd_status nd_topk_cpu(nd_tensor *values, nd_tensor *indices, const nd_tensor *x, int dim, int64_t k, int largest);

/* Shared by the files above: allocates an empty out (contiguous, on the CPU), or checks that a
 * given one is a CPU tensor of dtype dt and shape size (message names op and both shapes). */
nd_status nd_linalg_prepare_out(const char *op, nd_tensor *out, nd_dtype dt, int ndim, const int64_t *size);
/* Device-neutral helpers of the products (math_check.c), shared with their CUDA twins (blas.cu):
 * the shape and dtype checks of each product (same messages on both devices; the callers check
 * the device), the dtype and shape of a given result (nd_linalg_prepare_out's rule without the
 * device), loading the added operand c (or out's contents when c is NULL) into target, and how
 * BLAS can read the matrix in dims (d, d + 1) of t (trans 0: row-major, ld the row stride; 1:
 * column-major; returns 0 when neither fits). */
int nd_linalg_same_view(const nd_tensor *x, const nd_tensor *y);
int nd_linalg_shares_storage(const nd_tensor *x, const nd_tensor *y);
nd_status nd_linalg_check_dtypes(const char *op, const nd_tensor *a, const nd_tensor *b);
nd_status nd_linalg_check_out_shape(const char *op, const nd_tensor *out, nd_dtype dt, int ndim, const int64_t *size);
nd_status nd_linalg_load_c(const char *op, nd_tensor *target, const nd_tensor *c, const nd_tensor *out);
int nd_linalg_mat_layout(const nd_tensor *t, int d, int *trans, int64_t *ld);
nd_status nd_linalg_check_gemm(const char *op, const nd_tensor *a, const nd_tensor *b);
nd_status nd_linalg_check_bgemm(const char *op, const nd_tensor *a, const nd_tensor *b);
nd_status nd_linalg_check_gemv(const char *op, const nd_tensor *a, const nd_tensor *x);
nd_status nd_linalg_check_ger(const char *op, const nd_tensor *x, const nd_tensor *y);
nd_status nd_linalg_check_dot(const nd_tensor *a, const nd_tensor *b);
/* Checks of the index operations (math_check.c), shared with index.cu; with dev == ND_DEVICE_CPU
 * they also require the tensors they look at to be on the CPU (the CUDA twins check all
 * operands' devices together afterwards). dim is 0-based, messages 1-based. */
nd_status nd_index_check_dim(nd_device_type dev, const char *op, const nd_tensor *x, int dim);
nd_status nd_index_check_same_dtype(nd_device_type dev, const char *op, const nd_tensor *x, const nd_tensor *src);
/* src must be x's shape with size[dim] = n. */
nd_status nd_index_check_slices(const char *op, const nd_tensor *x, int dim, int64_t n, const nd_tensor *src);
/* gather / scatter: idx int64 with x's ndim, idx.size(d) <= x.size(d) for d != dim and
 * <= other.size(d) for all d (other may be NULL). */
nd_status nd_index_check_gather(nd_device_type dev, const char *op, const nd_tensor *x, int dim, const nd_tensor *idx,
                                const nd_tensor *other);
/* t without dimension dim (a single element when t is 1-d), for walking every slice along dim
 * with nd_iter. Borrows t's storage: never release the result. */
static inline nd_tensor nd_linalg_rest_view(const nd_tensor *t, int dim)
{
    nd_tensor r = *t;
    for (int d = dim; d < r.ndim - 1; d++) {
        r.size[d] = r.size[d + 1];
        r.stride[d] = r.stride[d + 1];
    }
    r.ndim--;
    if (r.ndim == 0) {
        r.ndim = 1;
        r.size[0] = 1;
        r.stride[0] = 0;
    }
    return r;
}

#endif
