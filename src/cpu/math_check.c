/* Argument checks and helpers of the linear-algebra kernels that do not depend on the device:
 * shared by blas.c and its CUDA twin blas.cu (which calls them through the symbols the host
 * exports). Same rules, same messages on both. */
#include <limits.h>
#include <string.h>

#include "nd_cpu_linalg.h"

#define SHAPE(t, buf) nd_tensor_shape_str((t), (buf), (int)sizeof(buf))

int nd_linalg_same_view(const nd_tensor *x, const nd_tensor *y)
{
    if (x->storage != y->storage || x->offset != y->offset || x->ndim != y->ndim) return 0;
    for (int d = 0; d < x->ndim; d++)
        if (x->size[d] != y->size[d] || x->stride[d] != y->stride[d]) return 0;
    return 1;
}

int nd_linalg_shares_storage(const nd_tensor *x, const nd_tensor *y)
{
    return x->storage != NULL && x->storage == y->storage;
}

nd_status nd_linalg_check_dtypes(const char *op, const nd_tensor *a, const nd_tensor *b)
{
    if (a->dtype != b->dtype)
        return ND_ERROR(ND_ERR_DTYPE, "%s: dtype mismatch, %s and %s (convert one with :type())", op,
                        nd_dtype_name(a->dtype), nd_dtype_name(b->dtype));
    return ND_OK;
}

nd_status nd_linalg_check_out_shape(const char *op, const nd_tensor *out, nd_dtype dt, int ndim, const int64_t *size)
{
    if (out->dtype != dt)
        return ND_ERROR(ND_ERR_DTYPE, "%s: result tensor is %s, operands are %s", op, nd_dtype_name(out->dtype),
                        nd_dtype_name(dt));
    int same = out->ndim == ndim;
    for (int d = 0; same && d < ndim; d++)
        same = out->size[d] == size[d];
    if (!same) {
        char s1[ND_SHAPE_STR_MAX], s2[ND_SHAPE_STR_MAX];
        nd_tensor want;
        nd_tensor_init_empty(&want, dt);
        want.ndim = ndim;
        memcpy(want.size, size, sizeof(int64_t) * (size_t)ndim);
        return ND_ERROR(ND_ERR_SHAPE, "%s: result tensor has size %s, expected %s", op, SHAPE(out, s1),
                        SHAPE(&want, s2));
    }
    return ND_OK;
}

nd_status nd_linalg_load_c(const char *op, nd_tensor *target, const nd_tensor *c, const nd_tensor *out)
{
    const nd_tensor *src = c ? c : out;
    if (nd_linalg_same_view(src, target)) return ND_OK;
    nd_tensor v;
    nd_tensor_view_of(&v, src);
    if (nd_tensor_expand(&v, target->ndim, target->size) != ND_OK) {
        char s1[ND_SHAPE_STR_MAX], s2[ND_SHAPE_STR_MAX];
        nd_tensor_release(&v);
        return ND_ERROR(ND_ERR_SHAPE, "%s: the added tensor %s does not broadcast to the result %s", op, SHAPE(src, s1),
                        SHAPE(target, s2));
    }
    nd_status st;
    if (nd_linalg_shares_storage(&v, target)) { /* e.g. c = out:t(): read through a copy */
        nd_tensor tmp;
        st = nd_tensor_clone(&tmp, &v, v.dtype);
        if (st == ND_OK) st = nd_tensor_copy(target, &tmp);
        nd_tensor_release(&tmp);
    } else {
        st = nd_tensor_copy(target, &v);
    }
    nd_tensor_release(&v);
    return st;
}

int nd_linalg_mat_layout(const nd_tensor *t, int d, int *trans, int64_t *ld)
{
    int64_t r = t->size[d], c = t->size[d + 1], sr = t->stride[d], sc = t->stride[d + 1];
    if ((c == 1 || sc == 1) && (r == 1 || sr >= c)) {
        *trans = 0;
        *ld = r == 1 ? (c > 1 ? c : 1) : sr;
    } else if ((r == 1 || sr == 1) && (c == 1 || sc >= r)) {
        *trans = 1;
        *ld = c == 1 ? (r > 1 ? r : 1) : sc;
    } else {
        return 0;
    }
    return *ld < INT_MAX;
}

nd_status nd_linalg_check_gemm(const char *op, const nd_tensor *a, const nd_tensor *b)
{
    char s1[ND_SHAPE_STR_MAX], s2[ND_SHAPE_STR_MAX];
    if (a->ndim != 2 || b->ndim != 2)
        return ND_ERROR(ND_ERR_SHAPE, "%s: expected two matrices, got %s and %s", op, SHAPE(a, s1), SHAPE(b, s2));
    if (a->size[1] != b->size[0])
        return ND_ERROR(ND_ERR_SHAPE, "%s: size mismatch, %s and %s (inner dimensions %lld and %lld differ)", op,
                        SHAPE(a, s1), SHAPE(b, s2), (long long)a->size[1], (long long)b->size[0]);
    return nd_linalg_check_dtypes(op, a, b);
}

nd_status nd_linalg_check_bgemm(const char *op, const nd_tensor *a, const nd_tensor *b)
{
    char s1[ND_SHAPE_STR_MAX], s2[ND_SHAPE_STR_MAX];
    if (a->ndim != 3 || b->ndim != 3)
        return ND_ERROR(ND_ERR_SHAPE, "%s: expected two 3-d batches of matrices, got %s and %s", op, SHAPE(a, s1),
                        SHAPE(b, s2));
    if (a->size[0] != b->size[0])
        return ND_ERROR(ND_ERR_SHAPE, "%s: batch sizes differ, %s and %s", op, SHAPE(a, s1), SHAPE(b, s2));
    if (a->size[2] != b->size[1])
        return ND_ERROR(ND_ERR_SHAPE, "%s: size mismatch, %s and %s (inner dimensions %lld and %lld differ)", op,
                        SHAPE(a, s1), SHAPE(b, s2), (long long)a->size[2], (long long)b->size[1]);
    return nd_linalg_check_dtypes(op, a, b);
}

nd_status nd_linalg_check_gemv(const char *op, const nd_tensor *a, const nd_tensor *x)
{
    char s1[ND_SHAPE_STR_MAX], s2[ND_SHAPE_STR_MAX];
    if (a->ndim != 2 || x->ndim != 1)
        return ND_ERROR(ND_ERR_SHAPE, "%s: expected a matrix and a vector, got %s and %s", op, SHAPE(a, s1),
                        SHAPE(x, s2));
    if (a->size[1] != x->size[0])
        return ND_ERROR(ND_ERR_SHAPE, "%s: size mismatch, %s and %s (matrix columns %lld, vector length %lld)", op,
                        SHAPE(a, s1), SHAPE(x, s2), (long long)a->size[1], (long long)x->size[0]);
    return nd_linalg_check_dtypes(op, a, x);
}

nd_status nd_linalg_check_ger(const char *op, const nd_tensor *x, const nd_tensor *y)
{
    char s1[ND_SHAPE_STR_MAX], s2[ND_SHAPE_STR_MAX];
    if (x->ndim != 1 || y->ndim != 1)
        return ND_ERROR(ND_ERR_SHAPE, "%s: expected two vectors, got %s and %s", op, SHAPE(x, s1), SHAPE(y, s2));
    return nd_linalg_check_dtypes(op, x, y);
}

nd_status nd_linalg_check_dot(const nd_tensor *a, const nd_tensor *b)
{
    char s1[ND_SHAPE_STR_MAX], s2[ND_SHAPE_STR_MAX];
    int64_t n = nd_tensor_numel(a);
    if (n != nd_tensor_numel(b))
        return ND_ERROR(ND_ERR_SHAPE, "dot: size mismatch, %s and %s (%lld and %lld elements)", SHAPE(a, s1),
                        SHAPE(b, s2), (long long)n, (long long)nd_tensor_numel(b));
    return nd_linalg_check_dtypes("dot", a, b);
}

/* ---- index operations (index.c, index.cu) ---- */

/* dev == ND_DEVICE_CPU: t must be on the CPU (the CUDA twins check every operand's device
 * together, after these checks). */
static nd_status nd_index_check_device(nd_device_type dev, const char *op, const nd_tensor *t)
{
    if (dev == ND_DEVICE_CPU && t->storage && t->storage->device.type != ND_DEVICE_CPU)
        return ND_ERROR(ND_ERR_DEVICE, "%s: CPU kernel given a GPU tensor", op);
    return ND_OK;
}

nd_status nd_index_check_dim(nd_device_type dev, const char *op, const nd_tensor *x, int dim)
{
    if (x->ndim == 0) return ND_ERROR(ND_ERR_SHAPE, "%s: the tensor is empty", op);
    if (dim < 0 || dim >= x->ndim) {
        char s[ND_SHAPE_STR_MAX];
        return ND_ERROR(ND_ERR_INDEX, "%s: dimension %d out of range for a %d-d tensor (%s)", op, dim + 1, x->ndim,
                        SHAPE(x, s));
    }
    return nd_index_check_device(dev, op, x);
}

nd_status nd_index_check_same_dtype(nd_device_type dev, const char *op, const nd_tensor *x, const nd_tensor *src)
{
    ND_TRY(nd_linalg_check_dtypes(op, x, src));
    return nd_index_check_device(dev, op, src);
}

nd_status nd_index_check_slices(const char *op, const nd_tensor *x, int dim, int64_t n, const nd_tensor *src)
{
    int ok = src->ndim == x->ndim && src->size[dim] == n;
    for (int d = 0; ok && d < x->ndim; d++)
        ok = d == dim || src->size[d] == x->size[d];
    if (!ok) {
        char s1[ND_SHAPE_STR_MAX], s2[ND_SHAPE_STR_MAX];
        return ND_ERROR(ND_ERR_SHAPE, "%s: source %s does not fit tensor %s with %lld indices along dimension %d", op,
                        SHAPE(src, s1), SHAPE(x, s2), (long long)n, dim + 1);
    }
    return ND_OK;
}

nd_status nd_index_check_gather(nd_device_type dev, const char *op, const nd_tensor *x, int dim, const nd_tensor *idx,
                                const nd_tensor *other)
{
    char s1[ND_SHAPE_STR_MAX], s2[ND_SHAPE_STR_MAX];
    ND_TRY(nd_index_check_dim(dev, op, x, dim));
    if (idx->dtype != ND_DTYPE_I64)
        return ND_ERROR(ND_ERR_DTYPE, "%s: indices must be int64, got %s", op, nd_dtype_name(idx->dtype));
    ND_TRY(nd_index_check_device(dev, op, idx));
    if (idx->ndim != x->ndim)
        return ND_ERROR(ND_ERR_SHAPE, "%s: index %s and tensor %s differ in their number of dimensions", op,
                        SHAPE(idx, s1), SHAPE(x, s2));
    for (int d = 0; d < x->ndim; d++)
        if (d != dim && idx->size[d] > x->size[d])
            return ND_ERROR(ND_ERR_SHAPE, "%s: index %s larger than tensor %s in dimension %d", op, SHAPE(idx, s1),
                            SHAPE(x, s2), d + 1);
    if (other) {
        ND_TRY(nd_index_check_same_dtype(dev, op, x, other));
        int ok = other->ndim == idx->ndim;
        for (int d = 0; ok && d < idx->ndim; d++)
            ok = idx->size[d] <= other->size[d];
        if (!ok)
            return ND_ERROR(ND_ERR_SHAPE, "%s: index %s larger than source %s", op, SHAPE(idx, s1), SHAPE(other, s2));
    }
    return ND_OK;
}

/* ---- cat ---- */

nd_status nd_cat_shape(const nd_tensor *const *xs, int n, int dim, int *ref, int64_t *size)
{
    char s1[ND_SHAPE_STR_MAX], s2[ND_SHAPE_STR_MAX];
    *ref = -1;
    for (int i = 0; i < n && *ref < 0; i++)
        if (xs[i]->ndim > 0) *ref = i;
    if (*ref < 0) return ND_OK;
    const nd_tensor *r = xs[*ref];
    if (dim < 0 || dim >= r->ndim)
        return ND_ERROR(ND_ERR_INDEX, "cat: dimension %d out of range for %d-d tensors (%s)", dim + 1, r->ndim,
                        SHAPE(r, s1));
    memcpy(size, r->size, sizeof(int64_t) * (size_t)r->ndim);
    size[dim] = 0;
    for (int i = 0; i < n; i++) {
        const nd_tensor *x = xs[i];
        if (x->ndim == 0) continue;
        if (x->ndim != r->ndim)
            return ND_ERROR(ND_ERR_SHAPE, "cat: tensor %d (%s) and tensor %d (%s) differ in their number of dimensions",
                            *ref + 1, SHAPE(r, s1), i + 1, SHAPE(x, s2));
        for (int d = 0; d < r->ndim; d++)
            if (d != dim && x->size[d] != r->size[d])
                return ND_ERROR(
                    ND_ERR_SHAPE,
                    "cat: tensor %d (%s) and tensor %d (%s) differ in dimension %d (concatenating along %d)", *ref + 1,
                    SHAPE(r, s1), i + 1, SHAPE(x, s2), d + 1, dim + 1);
        size[dim] += x->size[dim];
    }
    return ND_OK;
}

nd_status nd_cat_copy(nd_tensor *out, const nd_tensor *const *xs, int n, int dim)
{
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        const nd_tensor *x = xs[i];
        if (x->ndim == 0 || x->size[dim] == 0) continue;
        nd_tensor v;
        nd_tensor_view_of(&v, out);
        nd_tensor_narrow(&v, dim, at, x->size[dim]);
        nd_status st = nd_tensor_copy(&v, x); /* the tensor's backend: strided, converting */
        nd_tensor_release(&v);
        ND_TRY(st);
        at += x->size[dim];
    }
    return ND_OK;
}
