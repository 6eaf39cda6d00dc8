#include "nd_tensor.h"

#include <stdio.h>
#include <string.h>

#include "nd_iter.h"

static nd_device_copy_fn nd_device_copy;

void nd_tensor_set_device_copy(nd_device_copy_fn fn) { nd_device_copy = fn; }

void nd_tensor_init_empty(nd_tensor *t, nd_dtype dt)
{
    memset(t, 0, sizeof *t);
    t->dtype = dt;
}

static void nd_set_contiguous_strides(nd_tensor *t)
{
    int64_t s = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        t->stride[d] = s;
        s *= t->size[d] > 0 ? t->size[d] : 1;
    }
}

void nd_tensor_borrow(nd_tensor *t, nd_storage *holder, void *data, int64_t nbytes, nd_dtype dt, int ndim,
                      const int64_t *size)
{
    memset(holder, 0, sizeof *holder);
    holder->data = data;
    holder->nbytes = nbytes;
    holder->refcount = 1;
    holder->device = nd_cpu_device();
    nd_tensor_init_empty(t, dt);
    t->storage = holder;
    t->ndim = ndim;
    memcpy(t->size, size, sizeof(int64_t) * (size_t)ndim);
    nd_set_contiguous_strides(t);
}

nd_status nd_tensor_new(nd_tensor *t, nd_dtype dt, int ndim, const int64_t *size, nd_device dev, int zero)
{
    nd_tensor_init_empty(t, dt);
    if ((unsigned)dt >= ND_DTYPE_COUNT) return ND_ERROR(ND_ERR_DTYPE, "unknown dtype %d", (int)dt);
    if (ndim < 0 || ndim > ND_MAX_DIMS)
        return ND_ERROR(ND_ERR_ARG, "a tensor has at most %d dimensions, got %d", ND_MAX_DIMS, ndim);
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) {
        if (size[d] < 0) return ND_ERROR(ND_ERR_ARG, "negative size %lld in dimension %d", (long long)size[d], d + 1);
        if (size[d] > 0 && n > INT64_MAX / 16 / size[d]) return ND_ERROR(ND_ERR_ARG, "tensor too large");
        n *= size[d];
    }
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->size[d] = size[d];
    nd_set_contiguous_strides(t);
    if (ndim == 0) return ND_OK;
    nd_status st = nd_storage_new(&t->storage, n * (int64_t)nd_dtype_size(dt), dev, zero);
    if (st != ND_OK) nd_tensor_init_empty(t, dt);
    return st;
}

nd_status nd_tensor_new_like(nd_tensor *t, const nd_tensor *like, int zero)
{
    return nd_tensor_new(t, like->dtype, like->ndim, like->size, nd_tensor_device(like), zero);
}

void nd_tensor_release(nd_tensor *t)
{
    nd_storage_release(t->storage);
    nd_tensor_init_empty(t, t->dtype);
}

void nd_tensor_view_of(nd_tensor *dst, const nd_tensor *src)
{
    if (dst != src) *dst = *src;
    nd_storage_retain(dst->storage);
}

void nd_tensor_set(nd_tensor *dst, const nd_tensor *src)
{
    if (dst == src) return;
    nd_storage *old = dst->storage;
    *dst = *src;
    nd_storage_retain(dst->storage);
    nd_storage_release(old);
}

int64_t nd_tensor_numel(const nd_tensor *t)
{
    if (t->ndim == 0) return 0;
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->size[d];
    return n;
}

int nd_tensor_is_contiguous(const nd_tensor *t)
{
    int64_t s = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->size[d] == 1) continue;
        if (t->stride[d] != s) return 0;
        s *= t->size[d];
    }
    return 1;
}

int nd_tensor_same_shape(const nd_tensor *a, const nd_tensor *b)
{
    if (a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->size[d] != b->size[d]) return 0;
    return 1;
}

char *nd_tensor_shape_str(const nd_tensor *t, char *buf, int n)
{
    if (t->ndim == 0) {
        snprintf(buf, (size_t)n, "empty");
        return buf;
    }
    int len = 0;
    buf[0] = '\0';
    for (int d = 0; d < t->ndim && len < n; d++)
        len += snprintf(buf + len, (size_t)(n - len), d ? "x%lld" : "%lld", (long long)t->size[d]);
    return buf;
}

static nd_status nd_check_dim(const nd_tensor *t, int dim, const char *fn)
{
    if (dim < 0 || dim >= t->ndim) {
        char s[ND_SHAPE_STR_MAX];
        return ND_ERROR(ND_ERR_INDEX, "%s: dimension %d out of range for a %d-d tensor (%s)", fn, dim + 1,
                        t->ndim, nd_tensor_shape_str(t, s, sizeof s));
    }
    return ND_OK;
}

nd_status nd_tensor_narrow(nd_tensor *t, int dim, int64_t start, int64_t len)
{
    ND_TRY(nd_check_dim(t, dim, "narrow"));
    if (len < 1) { /* a size-0 dimension is not a tensor nd can hold (sizes are positive) */
        char s[ND_SHAPE_STR_MAX];
        return ND_ERROR(ND_ERR_INDEX, "narrow: length %lld must be positive (dimension %d of %s)", (long long)len,
                        dim + 1, nd_tensor_shape_str(t, s, sizeof s));
    }
    if (start < 0 || len < 0 || start + len > t->size[dim]) {
        char s[ND_SHAPE_STR_MAX];
        return ND_ERROR(ND_ERR_INDEX, "narrow: range [%lld, %lld] out of bounds for dimension %d of size %lld (%s)",
                        (long long)start + 1, (long long)(start + len), dim + 1, (long long)t->size[dim],
                        nd_tensor_shape_str(t, s, sizeof s));
    }
    t->offset += start * t->stride[dim];
    t->size[dim] = len;
    return ND_OK;
}

nd_status nd_tensor_select(nd_tensor *t, int dim, int64_t index)
{
    ND_TRY(nd_check_dim(t, dim, "select"));
    if (index < 0 || index >= t->size[dim]) {
        char s[ND_SHAPE_STR_MAX];
        return ND_ERROR(ND_ERR_INDEX, "select: index %lld out of range for dimension %d of size %lld (%s)",
                        (long long)index + 1, dim + 1, (long long)t->size[dim], nd_tensor_shape_str(t, s, sizeof s));
    }
    t->offset += index * t->stride[dim];
    for (int d = dim; d < t->ndim - 1; d++) {
        t->size[d] = t->size[d + 1];
        t->stride[d] = t->stride[d + 1];
    }
    t->ndim--;
    return ND_OK;
}

nd_status nd_tensor_transpose(nd_tensor *t, int d0, int d1)
{
    ND_TRY(nd_check_dim(t, d0, "transpose"));
    ND_TRY(nd_check_dim(t, d1, "transpose"));
    int64_t s = t->size[d0], st = t->stride[d0];
    t->size[d0] = t->size[d1];
    t->stride[d0] = t->stride[d1];
    t->size[d1] = s;
    t->stride[d1] = st;
    return ND_OK;
}

nd_status nd_tensor_permute(nd_tensor *t, const int *perm)
{
    int seen[ND_MAX_DIMS] = {0};
    int64_t size[ND_MAX_DIMS], stride[ND_MAX_DIMS];
    for (int d = 0; d < t->ndim; d++) {
        if (perm[d] < 0 || perm[d] >= t->ndim || seen[perm[d]])
            return ND_ERROR(ND_ERR_ARG, "permute: the dimensions must be a permutation of 1..%d", t->ndim);
        seen[perm[d]] = 1;
        size[d] = t->size[perm[d]];
        stride[d] = t->stride[perm[d]];
    }
    memcpy(t->size, size, sizeof(int64_t) * (size_t)t->ndim);
    memcpy(t->stride, stride, sizeof(int64_t) * (size_t)t->ndim);
    return ND_OK;
}

nd_status nd_tensor_unsqueeze(nd_tensor *t, int dim)
{
    if (dim < 0 || dim > t->ndim || t->ndim >= ND_MAX_DIMS)
        return ND_ERROR(ND_ERR_INDEX, "unsqueeze: dimension %d out of range for a %d-d tensor", dim + 1, t->ndim);
    int64_t st = dim < t->ndim ? t->stride[dim] * t->size[dim] : 1;
    for (int d = t->ndim; d > dim; d--) {
        t->size[d] = t->size[d - 1];
        t->stride[d] = t->stride[d - 1];
    }
    t->size[dim] = 1;
    t->stride[dim] = st;
    t->ndim++;
    return ND_OK;
}

nd_status nd_tensor_squeeze(nd_tensor *t, int dim)
{
    if (dim >= 0) {
        ND_TRY(nd_check_dim(t, dim, "squeeze"));
        if (t->size[dim] != 1 || t->ndim == 1) return ND_OK;
        return nd_tensor_select(t, dim, 0);
    }
    int nd = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (t->size[d] == 1) continue;
        t->size[nd] = t->size[d];
        t->stride[nd] = t->stride[d];
        nd++;
    }
    if (nd == 0 && t->ndim > 0) { /* keep one dim: there are no 0-d tensors */
        t->size[0] = 1;
        t->stride[0] = 1;
        nd = 1;
    }
    t->ndim = nd;
    return ND_OK;
}

nd_status nd_tensor_expand(nd_tensor *t, int ndim, const int64_t *size)
{
    char s[ND_SHAPE_STR_MAX];
    if (ndim < t->ndim || ndim > ND_MAX_DIMS)
        return ND_ERROR(ND_ERR_SHAPE, "expand: cannot expand %s to %d dimensions", nd_tensor_shape_str(t, s, sizeof s), ndim);
    if (t->ndim == 0 && ndim > 0) /* the empty tensor has no element to repeat */
        return ND_ERROR(ND_ERR_SHAPE, "expand: cannot expand an empty tensor to %d dimensions", ndim);
    int64_t nsize[ND_MAX_DIMS], nstride[ND_MAX_DIMS];
    int lead = ndim - t->ndim;
    for (int d = 0; d < ndim; d++) {
        int od = d - lead;
        if (size[d] < 1 && size[d] != -1)
            return ND_ERROR(ND_ERR_SHAPE, "expand: cannot expand %s to size %lld in dimension %d (sizes must be positive)",
                            nd_tensor_shape_str(t, s, sizeof s), (long long)size[d], d + 1);
        if (od < 0) {
            if (size[d] < 0) return ND_ERROR(ND_ERR_SHAPE, "expand: size -1 not allowed for a new dimension");
            nsize[d] = size[d];
            nstride[d] = 0;
        } else if (size[d] == -1 || size[d] == t->size[od]) {
            nsize[d] = t->size[od];
            nstride[d] = t->stride[od];
        } else if (t->size[od] == 1) {
            nsize[d] = size[d];
            nstride[d] = 0;
        } else {
            return ND_ERROR(ND_ERR_SHAPE, "expand: cannot expand %s: size %lld of dimension %d is not 1 and differs from %lld",
                            nd_tensor_shape_str(t, s, sizeof s), (long long)t->size[od], od + 1, (long long)size[d]);
        }
    }
    t->ndim = ndim;
    memcpy(t->size, nsize, sizeof(int64_t) * (size_t)ndim);
    memcpy(t->stride, nstride, sizeof(int64_t) * (size_t)ndim);
    return ND_OK;
}

nd_status nd_tensor_view(nd_tensor *t, int ndim, const int64_t *size_in)
{
    char s[ND_SHAPE_STR_MAX];
    if (ndim < 1 || ndim > ND_MAX_DIMS) return ND_ERROR(ND_ERR_ARG, "view: need 1 to %d sizes, got %d", ND_MAX_DIMS, ndim);
    int64_t size[ND_MAX_DIMS];
    int64_t numel = nd_tensor_numel(t), known = 1;
    int infer = -1;
    for (int d = 0; d < ndim; d++) {
        size[d] = size_in[d];
        if (size[d] == -1) {
            if (infer >= 0) return ND_ERROR(ND_ERR_ARG, "view: only one size may be -1");
            infer = d;
        } else if (size[d] < 0) {
            return ND_ERROR(ND_ERR_ARG, "view: invalid size %lld", (long long)size[d]);
        } else {
            known *= size[d];
        }
    }
    if (infer >= 0) {
        if (known == 0 || numel % known != 0)
            return ND_ERROR(ND_ERR_SHAPE, "view: cannot infer size -1 for %lld elements (%s)", (long long)numel,
                            nd_tensor_shape_str(t, s, sizeof s));
        size[infer] = numel / known;
        known *= size[infer];
    }
    if (known != numel) {
        char want[ND_SHAPE_STR_MAX];
        nd_tensor tmp;
        nd_tensor_init_empty(&tmp, t->dtype);
        tmp.ndim = ndim;
        memcpy(tmp.size, size, sizeof(int64_t) * (size_t)ndim);
        return ND_ERROR(ND_ERR_SHAPE, "view: size %s (%lld elements) does not match %s (%lld elements)",
                        nd_tensor_shape_str(&tmp, want, sizeof want), (long long)known,
                        nd_tensor_shape_str(t, s, sizeof s), (long long)numel);
    }
    /* Old dims form chunks that are contiguous among themselves; each chunk must be covered
     * exactly by a run of new dims, which then get strides within the chunk. */
    int64_t nstride[ND_MAX_DIMS];
    if (numel == 0) {
        int64_t st = 1;
        for (int d = ndim - 1; d >= 0; d--) {
            nstride[d] = st;
            st *= size[d] > 0 ? size[d] : 1;
        }
    } else {
        int vd = ndim - 1;
        int64_t base = t->stride[t->ndim - 1], old_n = 1, new_n = 1;
        for (int od = t->ndim - 1; od >= 0; od--) {
            old_n *= t->size[od];
            int chunk_end = od == 0 || (t->size[od - 1] != 1 && t->stride[od - 1] != old_n * base);
            if (!chunk_end) continue;
            while (vd >= 0 && (new_n < old_n || size[vd] == 1)) {
                nstride[vd] = new_n * base;
                new_n *= size[vd];
                vd--;
            }
            if (new_n != old_n) break;
            if (od > 0) {
                base = t->stride[od - 1];
                old_n = 1;
                new_n = 1;
            }
        }
        if (vd != -1 || new_n != old_n) {
            char want[ND_SHAPE_STR_MAX];
            nd_tensor tmp;
            nd_tensor_init_empty(&tmp, t->dtype);
            tmp.ndim = ndim;
            memcpy(tmp.size, size, sizeof(int64_t) * (size_t)ndim);
            return ND_ERROR(ND_ERR_SHAPE,
                            "view: the strides of %s cannot express size %s without a copy (use reshape or :contiguous())",
                            nd_tensor_shape_str(t, s, sizeof s), nd_tensor_shape_str(&tmp, want, sizeof want));
        }
    }
    t->ndim = ndim;
    memcpy(t->size, size, sizeof(int64_t) * (size_t)ndim);
    memcpy(t->stride, nstride, sizeof(int64_t) * (size_t)ndim);
    return ND_OK;
}

nd_status nd_tensor_unfold(nd_tensor *t, int dim, int64_t size, int64_t step)
{
    ND_TRY(nd_check_dim(t, dim, "unfold"));
    if (t->ndim >= ND_MAX_DIMS) return ND_ERROR(ND_ERR_ARG, "unfold: too many dimensions");
    if (size < 1 || step < 1 || size > t->size[dim])
        return ND_ERROR(ND_ERR_ARG, "unfold: window %lld step %lld invalid for dimension %d of size %lld",
                        (long long)size, (long long)step, dim + 1, (long long)t->size[dim]);
    t->size[t->ndim] = size;
    t->stride[t->ndim] = t->stride[dim];
    t->size[dim] = (t->size[dim] - size) / step + 1;
    t->stride[dim] *= step;
    t->ndim++;
    return ND_OK;
}

/* ---- copy ---- */

#define ND_COPY_INNER(DT, ST)                                                          \
    while (nd_iter_next(&it)) {                                                       \
        DT *o = (DT *)it.ptr[0];                                                      \
        const ST *x = (const ST *)it.ptr[1];                                          \
        int64_t so = it.istride[0], sx = it.istride[1];                               \
        if (so == 1 && sx == 1)                                                       \
            for (int64_t i = 0; i < it.inner; i++) o[i] = (DT)x[i];                   \
        else                                                                          \
            for (int64_t i = 0; i < it.inner; i++) o[i * so] = (DT)x[i * sx];         \
    }

#define ND_COPY_SRC_CASE(ST, SE) \
    case SE: ND_COPY_DST_SWITCH(ST) break;
#define ND_COPY_DST_SWITCH(ST)                                  \
    switch (dst->dtype) {                                       \
    case ND_DTYPE_F32: ND_COPY_INNER(float, ST) break;          \
    case ND_DTYPE_F64: ND_COPY_INNER(double, ST) break;         \
    case ND_DTYPE_I64: ND_COPY_INNER(int64_t, ST) break;        \
    case ND_DTYPE_U8: ND_COPY_INNER(uint8_t, ST) break;         \
    default: break;                                             \
    }

/* Same shape, CPU. */
static void nd_copy_same_shape_cpu(nd_tensor *dst, const nd_tensor *src)
{
    nd_iter it;
    const nd_tensor *ops[2] = {dst, src};
    nd_iter_init(&it, 2, ops);
    if (dst->dtype == src->dtype && it.istride[0] == 1 && it.istride[1] == 1) {
        size_t es = nd_dtype_size(dst->dtype);
        while (nd_iter_next(&it)) memmove(it.ptr[0], it.ptr[1], (size_t)it.inner * es);
        return;
    }
    switch (src->dtype) {
        ND_COPY_SRC_CASE(float, ND_DTYPE_F32)
        ND_COPY_SRC_CASE(double, ND_DTYPE_F64)
        ND_COPY_SRC_CASE(int64_t, ND_DTYPE_I64)
        ND_COPY_SRC_CASE(uint8_t, ND_DTYPE_U8)
    default: break;
    }
}

nd_status nd_tensor_copy(nd_tensor *dst, const nd_tensor *src)
{
    char a[ND_SHAPE_STR_MAX], b[ND_SHAPE_STR_MAX];
    int64_t n = nd_tensor_numel(dst);
    if (n != nd_tensor_numel(src))
        return ND_ERROR(ND_ERR_SHAPE, "copy: destination %s and source %s differ in element count",
                        nd_tensor_shape_str(dst, a, sizeof a), nd_tensor_shape_str(src, b, sizeof b));
    if (n == 0) return ND_OK;
    nd_device dd = nd_tensor_device(dst), sd = nd_tensor_device(src);
    if (dd.type != ND_DEVICE_CPU || sd.type != ND_DEVICE_CPU) {
        if (!nd_device_copy) return ND_ERROR(ND_ERR_DEVICE, "copy: no GPU backend in this build");
        return nd_device_copy(dst, src);
    }
    if (nd_tensor_same_shape(dst, src)) {
        nd_copy_same_shape_cpu(dst, src);
        return ND_OK;
    }
    /* Different shapes, same count: read both in row-major order through a common shape. */
    nd_tensor v;
    if (nd_tensor_is_contiguous(src)) {
        nd_tensor_view_of(&v, src);
        nd_status st = nd_tensor_view(&v, dst->ndim, dst->size);
        if (st == ND_OK) nd_copy_same_shape_cpu(dst, &v);
        nd_tensor_release(&v);
        return st;
    }
    if (nd_tensor_is_contiguous(dst)) {
        nd_tensor_view_of(&v, dst);
        nd_status st = nd_tensor_view(&v, src->ndim, src->size);
        if (st == ND_OK) nd_copy_same_shape_cpu(&v, src);
        nd_tensor_release(&v);
        return st;
    }
    nd_tensor tmp;
    ND_TRY(nd_tensor_clone(&tmp, src, src->dtype));
    nd_status st = nd_tensor_copy(dst, &tmp);
    nd_tensor_release(&tmp);
    return st;
}

nd_status nd_tensor_clone(nd_tensor *out, const nd_tensor *src, nd_dtype dt)
{
    ND_TRY(nd_tensor_new(out, dt, src->ndim, src->size, nd_tensor_device(src), 0));
    nd_status st = nd_tensor_copy(out, src);
    if (st != ND_OK) nd_tensor_release(out);
    return st;
}

nd_status nd_tensor_contiguous(nd_tensor *out, const nd_tensor *src)
{
    if (nd_tensor_is_contiguous(src)) {
        nd_tensor_view_of(out, src);
        return ND_OK;
    }
    return nd_tensor_clone(out, src, src->dtype);
}
