/* Index operations on the CPU: index_select/copy/add/fill, gather/scatter, masked ops, nonzero,
 * cat. Any dtype, any strides. Contracts: nd_cpu_linalg.h.
 *
 * Most kernels walk the "rest" of a tensor (every dimension but `dim`) with nd_iter, and run the
 * indexed dimension in an inner loop. Pure copies move elements by size (1, 4 or 8 bytes), so one
 * loop serves every dtype; arithmetic (add, fill) switches on the dtype. */
#include <string.h>

#include "nd_cpu_linalg.h"

#define SHAPE(t, buf) nd_tensor_shape_str((t), (buf), (int)sizeof(buf))

#define rest_view nd_linalg_rest_view

/* t's rest view with the sizes of `like`'s rest (a narrower window at the same origin). */
static nd_tensor rest_view_sized(const nd_tensor *t, const nd_tensor *like, int dim)
{
    nd_tensor r = rest_view(t, dim), l = rest_view(like, dim);
    for (int d = 0; d < r.ndim; d++)
        r.size[d] = l.size[d];
    return r;
}

static nd_status check_cpu(const char *op, const nd_tensor *t)
{
    if (t->storage && t->storage->device.type != ND_DEVICE_CPU)
        return ND_ERROR(ND_ERR_DEVICE, "%s: CPU kernel given a GPU tensor", op);
    return ND_OK;
}

/* Shared with index.cu (math_check.c). */
#define check_dim(op, x, dim) nd_index_check_dim(ND_DEVICE_CPU, op, x, dim)
#define check_same_dtype(op, x, src) nd_index_check_same_dtype(ND_DEVICE_CPU, op, x, src)
#define check_slices nd_index_check_slices

/* A 1-d int64 index vector whose entries all lie in [0, size). */
static nd_status check_index_vector(const char *op, const nd_tensor *idx, const nd_tensor *x, int dim)
{
    char s1[ND_SHAPE_STR_MAX], s2[ND_SHAPE_STR_MAX];
    if (idx->dtype != ND_DTYPE_I64)
        return ND_ERROR(ND_ERR_DTYPE, "%s: indices must be int64, got %s", op, nd_dtype_name(idx->dtype));
    if (idx->ndim != 1) return ND_ERROR(ND_ERR_SHAPE, "%s: expected a 1-d index vector, got %s", op, SHAPE(idx, s1));
    ND_TRY(check_cpu(op, idx));
    const int64_t *ip = nd_tensor_data(idx);
    int64_t size = x->size[dim];
    for (int64_t i = 0; i < idx->size[0]; i++) {
        int64_t v = ip[i * idx->stride[0]];
        if (v < 0 || v >= size)
            return ND_ERROR(ND_ERR_INDEX,
                            "%s: index %lld out of range for dimension %d of size %lld (tensor %s, index %s)", op,
                            (long long)v + 1, dim + 1, (long long)size, SHAPE(x, s1), SHAPE(idx, s2));
    }
    return ND_OK;
}


/* ---- index_select / index_copy: dst.select(dim, di(i)) = src.select(dim, si(i)) ---- */

/* For i < n: dst[i*dsd or idx[i]*dsd] = src[idx[i]*ssd or i*ssd], over the rest iteration. */
#define INDEX_MOVE(T)                                                                                                  \
    while (nd_iter_next(&it)) {                                                                                        \
        for (int64_t i = 0; i < n; i++) {                                                                              \
            int64_t k = ip[i * is];                                                                                    \
            T *o = (T *)it.ptr[0] + (scatter ? k : i) * dsd;                                                           \
            const T *s = (const T *)it.ptr[1] + (scatter ? i : k) * ssd;                                               \
            for (int64_t j = 0; j < it.inner; j++)                                                                     \
                o[j * it.istride[0]] = s[j * it.istride[1]];                                                           \
        }                                                                                                              \
    }

static void index_move(nd_tensor *dst, const nd_tensor *src, int dim, const nd_tensor *idx, int scatter)
{
    nd_tensor dr = rest_view(dst, dim), sr = rest_view(src, dim);
    const nd_tensor *ops[2] = {&dr, &sr};
    nd_iter it;
    nd_iter_init(&it, 2, ops);
    const int64_t *ip = nd_tensor_data(idx);
    int64_t n = idx->size[0], is = idx->stride[0], dsd = dst->stride[dim], ssd = src->stride[dim];
    switch (nd_dtype_size(dst->dtype)) {
    case 1:
        INDEX_MOVE(uint8_t) break;
    case 4:
        INDEX_MOVE(uint32_t) break;
    case 8:
        INDEX_MOVE(uint64_t) break;
    default:
        break;
    }
}

nd_status nd_index_select_cpu(nd_tensor *out, const nd_tensor *x, int dim, const nd_tensor *idx)
{
    const char *op = "index_select";
    ND_TRY(check_dim(op, x, dim));
    ND_TRY(check_index_vector(op, idx, x, dim));
    int64_t size[ND_MAX_DIMS];
    memcpy(size, x->size, sizeof size);
    size[dim] = idx->size[0];
    ND_TRY(nd_linalg_prepare_out(op, out, x->dtype, x->ndim, size));
    index_move(out, x, dim, idx, 0);
    return ND_OK;
}

nd_status nd_index_copy_cpu(nd_tensor *x, int dim, const nd_tensor *idx, const nd_tensor *src)
{
    const char *op = "index_copy";
    ND_TRY(check_dim(op, x, dim));
    ND_TRY(check_index_vector(op, idx, x, dim));
    ND_TRY(check_same_dtype(op, x, src));
    ND_TRY(check_slices(op, x, dim, idx->size[0], src));
    index_move(x, src, dim, idx, 1);
    return ND_OK;
}

#define INDEX_ADD(T)                                                                                                   \
    while (nd_iter_next(&it)) {                                                                                        \
        for (int64_t i = 0; i < n; i++) {                                                                              \
            T *o = (T *)it.ptr[0] + ip[i * is] * xsd;                                                                  \
            const T *s = (const T *)it.ptr[1] + i * ssd;                                                               \
            for (int64_t j = 0; j < it.inner; j++)                                                                     \
                o[j * it.istride[0]] += s[j * it.istride[1]];                                                          \
        }                                                                                                              \
    }

nd_status nd_index_add_cpu(nd_tensor *x, int dim, const nd_tensor *idx, const nd_tensor *src)
{
    const char *op = "index_add";
    ND_TRY(check_dim(op, x, dim));
    ND_TRY(check_index_vector(op, idx, x, dim));
    ND_TRY(check_same_dtype(op, x, src));
    ND_TRY(check_slices(op, x, dim, idx->size[0], src));
    nd_tensor xr = rest_view(x, dim), sr = rest_view(src, dim);
    const nd_tensor *ops[2] = {&xr, &sr};
    nd_iter it;
    nd_iter_init(&it, 2, ops);
    const int64_t *ip = nd_tensor_data(idx);
    int64_t n = idx->size[0], is = idx->stride[0], xsd = x->stride[dim], ssd = src->stride[dim];
    switch (x->dtype) {
    case ND_DTYPE_F32:
        INDEX_ADD(float) break;
    case ND_DTYPE_F64:
        INDEX_ADD(double) break;
    case ND_DTYPE_I64:
        INDEX_ADD(int64_t) break;
    case ND_DTYPE_U8:
        INDEX_ADD(uint8_t) break;
    default:
        break;
    }
    return ND_OK;
}

#define INDEX_FILL(T)                                                                                                  \
    {                                                                                                                  \
        T v = (T)value;                                                                                                \
        while (nd_iter_next(&it))                                                                                      \
            for (int64_t i = 0; i < n; i++) {                                                                          \
                T *o = (T *)it.ptr[0] + ip[i * is] * xsd;                                                              \
                for (int64_t j = 0; j < it.inner; j++)                                                                 \
                    o[j * it.istride[0]] = v;                                                                          \
            }                                                                                                          \
    }

nd_status nd_index_fill_cpu(nd_tensor *x, int dim, const nd_tensor *idx, double value)
{
    const char *op = "index_fill";
    ND_TRY(check_dim(op, x, dim));
    ND_TRY(check_index_vector(op, idx, x, dim));
    nd_tensor xr = rest_view(x, dim);
    const nd_tensor *ops[1] = {&xr};
    nd_iter it;
    nd_iter_init(&it, 1, ops);
    const int64_t *ip = nd_tensor_data(idx);
    int64_t n = idx->size[0], is = idx->stride[0], xsd = x->stride[dim];
    switch (x->dtype) {
    case ND_DTYPE_F32:
        INDEX_FILL(float) break;
    case ND_DTYPE_F64:
        INDEX_FILL(double) break;
    case ND_DTYPE_I64:
        INDEX_FILL(int64_t) break;
    case ND_DTYPE_U8:
        INDEX_FILL(uint8_t) break;
    default:
        break;
    }
    return ND_OK;
}

/* ---- gather / scatter ---- */

typedef enum { MODE_GATHER, MODE_SCATTER, MODE_SCATTER_ADD, MODE_SCATTER_VALUE } gs_mode;

static const char *gs_name(gs_mode m)
{
    return m == MODE_GATHER ? "gather" : m == MODE_SCATTER_ADD ? "scatter_add" : "scatter";
}

/* idx has x's ndim; idx.size(d) <= x.size(d) for d != dim and <= other.size(d) for all d. */
static nd_status gs_check(gs_mode mode, const nd_tensor *x, int dim, const nd_tensor *idx, const nd_tensor *other)
{
    return nd_index_check_gather(ND_DEVICE_CPU, gs_name(mode), x, dim, idx, other);
}

/* Inner loop bodies over i < n along dim, for one position j of the rest iteration. */
#define GS_LOOP(T, BODY)                                                                                               \
    while (nd_iter_next(&it))                                                                                          \
        for (int64_t j = 0; j < it.inner; j++) {                                                                       \
            T *xp = (T *)it.ptr[0] + j * it.istride[0];                                                                \
            T *sp = (T *)it.ptr[1] + j * it.istride[1];                                                                \
            const int64_t *kp = (const int64_t *)it.ptr[2] + j * it.istride[2];                                        \
            (void)sp;                                                                                                  \
            for (int64_t i = 0; i < n; i++) {                                                                          \
                int64_t k = kp[i * isd];                                                                               \
                if (k < 0 || k >= lim) {                                                                               \
                    bad = k;                                                                                           \
                    goto done;                                                                                         \
                }                                                                                                      \
                BODY;                                                                                                  \
            }                                                                                                          \
        }

#define GS_MOVE(T)                                                                                                     \
    if (mode == MODE_GATHER)                                                                                           \
        GS_LOOP(T, sp[i * ssd] = xp[k * xsd])                                                                          \
    else                                                                                                               \
        GS_LOOP(T, xp[k * xsd] = sp[i * ssd])
#define GS_ADD(T) GS_LOOP(T, xp[k * xsd] += sp[i * ssd])
#define GS_FILL(T)                                                                                                     \
    {                                                                                                                  \
        T v = (T)value;                                                                                                \
        GS_LOOP(T, xp[k * xsd] = v)                                                                                    \
    }

/* x: the indexed tensor; s: gather's out or scatter's src (NULL for MODE_SCATTER_VALUE). */
static nd_status gs_run(gs_mode mode, nd_tensor *x, int dim, const nd_tensor *idx, nd_tensor *s, double value)
{
    nd_tensor xr = rest_view_sized(x, idx, dim), ir = rest_view(idx, dim);
    nd_tensor sr = s ? rest_view_sized(s, idx, dim) : ir;
    const nd_tensor *ops[3] = {&xr, &sr, &ir};
    nd_iter it;
    nd_iter_init(&it, 3, ops);
    int64_t n = idx->size[dim], isd = idx->stride[dim], xsd = x->stride[dim], ssd = s ? s->stride[dim] : 0;
    int64_t lim = x->size[dim], bad = 0;
    if (mode == MODE_SCATTER_VALUE) {
        switch (x->dtype) {
        case ND_DTYPE_F32:
            GS_FILL(float) break;
        case ND_DTYPE_F64:
            GS_FILL(double) break;
        case ND_DTYPE_I64:
            GS_FILL(int64_t) break;
        case ND_DTYPE_U8:
            GS_FILL(uint8_t) break;
        default:
            break;
        }
    } else if (mode == MODE_SCATTER_ADD) {
        switch (x->dtype) {
        case ND_DTYPE_F32:
            GS_ADD(float) break;
        case ND_DTYPE_F64:
            GS_ADD(double) break;
        case ND_DTYPE_I64:
            GS_ADD(int64_t) break;
        case ND_DTYPE_U8:
            GS_ADD(uint8_t) break;
        default:
            break;
        }
    } else {
        switch (nd_dtype_size(x->dtype)) {
        case 1:
            GS_MOVE(uint8_t) break;
        case 4:
            GS_MOVE(uint32_t) break;
        case 8:
            GS_MOVE(uint64_t) break;
        default:
            break;
        }
    }
    return ND_OK;
done:;
    char s1[ND_SHAPE_STR_MAX], s2[ND_SHAPE_STR_MAX];
    return ND_ERROR(ND_ERR_INDEX, "%s: index %lld out of range for dimension %d of size %lld (tensor %s, index %s)",
                    gs_name(mode), (long long)bad + 1, dim + 1, (long long)lim, SHAPE(x, s1), SHAPE(idx, s2));
}

nd_status nd_gather_cpu(nd_tensor *out, const nd_tensor *x, int dim, const nd_tensor *idx)
{
    ND_TRY(gs_check(MODE_GATHER, x, dim, idx, NULL));
    ND_TRY(nd_linalg_prepare_out("gather", out, x->dtype, idx->ndim, idx->size));
    return gs_run(MODE_GATHER, (nd_tensor *)x, dim, idx, out, 0); /* x is only read in this mode */
}

nd_status nd_scatter_cpu(nd_tensor *x, int dim, const nd_tensor *idx, const nd_tensor *src)
{
    ND_TRY(gs_check(MODE_SCATTER, x, dim, idx, src));
    return gs_run(MODE_SCATTER, x, dim, idx, (nd_tensor *)src, 0); /* src is only read */
}

nd_status nd_scatter_add_cpu(nd_tensor *x, int dim, const nd_tensor *idx, const nd_tensor *src)
{
    ND_TRY(gs_check(MODE_SCATTER_ADD, x, dim, idx, src));
    return gs_run(MODE_SCATTER_ADD, x, dim, idx, (nd_tensor *)src, 0);
}

nd_status nd_scatter_value_cpu(nd_tensor *x, int dim, const nd_tensor *idx, double value)
{
    ND_TRY(gs_check(MODE_SCATTER_VALUE, x, dim, idx, NULL));
    return gs_run(MODE_SCATTER_VALUE, x, dim, idx, NULL, value);
}

/* ---- masks ---- */

/* m = the mask as uint8 0/1 (a view when it already is uint8), with x's shape. */
#define MASK_BYTES(T)                                                                                                  \
    while (nd_iter_next(&it))                                                                                          \
        for (int64_t i = 0; i < it.inner; i++)                                                                         \
            ((uint8_t *)it.ptr[0])[i * it.istride[0]] = ((const T *)it.ptr[1])[i * it.istride[1]] != 0;

static nd_status mask_bytes(const char *op, const nd_tensor *x, const nd_tensor *mask, nd_tensor *m)
{
    char s1[ND_SHAPE_STR_MAX], s2[ND_SHAPE_STR_MAX];
    ND_TRY(check_cpu(op, x));
    ND_TRY(check_cpu(op, mask));
    if (!nd_tensor_same_shape(x, mask))
        return ND_ERROR(ND_ERR_SHAPE, "%s: mask %s and tensor %s differ in shape", op, SHAPE(mask, s1), SHAPE(x, s2));
    if (mask->dtype == ND_DTYPE_U8) {
        nd_tensor_view_of(m, mask);
        return ND_OK;
    }
    ND_TRY(nd_tensor_new(m, ND_DTYPE_U8, mask->ndim, mask->size, nd_cpu_device(), 0));
    nd_iter it;
    const nd_tensor *ops[2] = {m, mask};
    nd_iter_init(&it, 2, ops);
    switch (mask->dtype) {
    case ND_DTYPE_F32:
        MASK_BYTES(float) break;
    case ND_DTYPE_F64:
        MASK_BYTES(double) break;
    case ND_DTYPE_I64:
        MASK_BYTES(int64_t) break;
    default:
        break;
    }
    return ND_OK;
}

static int64_t mask_count(const nd_tensor *m)
{
    nd_iter it;
    const nd_tensor *ops[1] = {m};
    nd_iter_init(&it, 1, ops);
    int64_t c = 0;
    while (nd_iter_next(&it))
        for (int64_t i = 0; i < it.inner; i++)
            c += ((const uint8_t *)it.ptr[0])[i * it.istride[0]] != 0;
    return c;
}

#define MASK_FILL(T)                                                                                                   \
    {                                                                                                                  \
        T v = (T)value;                                                                                                \
        while (nd_iter_next(&it))                                                                                      \
            for (int64_t i = 0; i < it.inner; i++)                                                                     \
                if (((const uint8_t *)it.ptr[1])[i * it.istride[1]]) ((T *)it.ptr[0])[i * it.istride[0]] = v;          \
    }

nd_status nd_masked_fill_cpu(nd_tensor *x, const nd_tensor *mask, double value)
{
    nd_tensor m;
    ND_TRY(mask_bytes("masked_fill", x, mask, &m));
    nd_iter it;
    const nd_tensor *ops[2] = {x, &m};
    nd_iter_init(&it, 2, ops);
    switch (x->dtype) {
    case ND_DTYPE_F32:
        MASK_FILL(float) break;
    case ND_DTYPE_F64:
        MASK_FILL(double) break;
    case ND_DTYPE_I64:
        MASK_FILL(int64_t) break;
    case ND_DTYPE_U8:
        MASK_FILL(uint8_t) break;
    default:
        break;
    }
    nd_tensor_release(&m);
    return ND_OK;
}

/* Moves selected elements between x (strided, under the mask) and a contiguous buffer: to_x = 0
 * reads x into buf (select), 1 writes buf into x (copy). */
#define MASK_MOVE(T)                                                                                                   \
    {                                                                                                                  \
        T *b = (T *)buf;                                                                                               \
        int64_t k = 0;                                                                                                 \
        while (nd_iter_next(&it))                                                                                      \
            for (int64_t i = 0; i < it.inner; i++)                                                                     \
                if (((const uint8_t *)it.ptr[1])[i * it.istride[1]]) {                                                 \
                    T *p = (T *)it.ptr[0] + i * it.istride[0];                                                         \
                    if (to_x)                                                                                          \
                        *p = b[k++];                                                                                   \
                    else                                                                                               \
                        b[k++] = *p;                                                                                   \
                }                                                                                                      \
    }

static void mask_move(const nd_tensor *x, const nd_tensor *m, void *buf, int to_x)
{
    nd_iter it;
    const nd_tensor *ops[2] = {x, m};
    nd_iter_init(&it, 2, ops);
    switch (nd_dtype_size(x->dtype)) {
    case 1:
        MASK_MOVE(uint8_t) break;
    case 4:
        MASK_MOVE(uint32_t) break;
    case 8:
        MASK_MOVE(uint64_t) break;
    default:
        break;
    }
}

nd_status nd_masked_select_cpu(nd_tensor *out, const nd_tensor *x, const nd_tensor *mask)
{
    nd_tensor m;
    nd_tensor_init_empty(out, x->dtype);
    ND_TRY(mask_bytes("masked_select", x, mask, &m));
    int64_t n = mask_count(&m);
    nd_status st = ND_OK;
    if (n > 0 && (st = nd_tensor_new(out, x->dtype, 1, &n, nd_cpu_device(), 0)) == ND_OK)
        mask_move(x, &m, nd_tensor_data(out), 0);
    nd_tensor_release(&m);
    return st;
}

nd_status nd_masked_copy_cpu(nd_tensor *x, const nd_tensor *mask, const nd_tensor *src)
{
    nd_tensor m, sc;
    ND_TRY(check_cpu("masked_copy", src));
    ND_TRY(mask_bytes("masked_copy", x, mask, &m));
    int64_t n = mask_count(&m), have = nd_tensor_numel(src);
    nd_status st = ND_OK;
    if (have < n) {
        char s1[ND_SHAPE_STR_MAX], s2[ND_SHAPE_STR_MAX];
        st = ND_ERROR(ND_ERR_SHAPE, "masked_copy: the mask selects %lld elements of %s but the source %s has %lld",
                      (long long)n, SHAPE(x, s1), SHAPE(src, s2), (long long)have);
    } else if (n > 0) {
        st = src->dtype == x->dtype ? nd_tensor_contiguous(&sc, src) : nd_tensor_clone(&sc, src, x->dtype);
        if (st == ND_OK) {
            mask_move(x, &m, nd_tensor_data(&sc), 1);
            nd_tensor_release(&sc);
        }
    }
    nd_tensor_release(&m);
    return st;
}

/* ---- nonzero ---- */

/* Walks x in row-major order with an explicit coordinate counter; `emit` runs for each nonzero. */
#define NZ_WALK(T, EMIT)                                                                                               \
    {                                                                                                                  \
        const T *p = (const T *)nd_tensor_data(x);                                                                     \
        int64_t coord[ND_MAX_DIMS] = {0}, off = 0;                                                                     \
        for (int64_t e = 0; e < numel; e++) {                                                                          \
            if (p[off] != 0) EMIT;                                                                                     \
            for (int d = nd - 1; d >= 0; d--) {                                                                        \
                off += x->stride[d];                                                                                   \
                if (++coord[d] < x->size[d]) break;                                                                    \
                off -= x->stride[d] * x->size[d];                                                                      \
                coord[d] = 0;                                                                                          \
            }                                                                                                          \
        }                                                                                                              \
    }
#define NZ_COUNT(T) NZ_WALK(T, count++)
#define NZ_WRITE(T)                                                                                                    \
    NZ_WALK(T, {                                                                                                       \
        memcpy(o, coord, sizeof(int64_t) * (size_t)nd);                                                                \
        o += nd;                                                                                                       \
    })

nd_status nd_nonzero_cpu(nd_tensor *out, const nd_tensor *x)
{
    nd_tensor_init_empty(out, ND_DTYPE_I64);
    ND_TRY(check_cpu("nonzero", x));
    int64_t numel = nd_tensor_numel(x), count = 0;
    int nd = x->ndim;
    switch (x->dtype) {
    case ND_DTYPE_F32:
        NZ_COUNT(float) break;
    case ND_DTYPE_F64:
        NZ_COUNT(double) break;
    case ND_DTYPE_I64:
        NZ_COUNT(int64_t) break;
    case ND_DTYPE_U8:
        NZ_COUNT(uint8_t) break;
    default:
        break;
    }
    if (count == 0) return ND_OK;
    int64_t size[2] = {count, nd};
    ND_TRY(nd_tensor_new(out, ND_DTYPE_I64, 2, size, nd_cpu_device(), 0));
    int64_t *o = nd_tensor_data(out);
    switch (x->dtype) {
    case ND_DTYPE_F32:
        NZ_WRITE(float) break;
    case ND_DTYPE_F64:
        NZ_WRITE(double) break;
    case ND_DTYPE_I64:
        NZ_WRITE(int64_t) break;
    case ND_DTYPE_U8:
        NZ_WRITE(uint8_t) break;
    default:
        break;
    }
    return ND_OK;
}

/* ---- cat ---- */

nd_status nd_cat_cpu(nd_tensor *out, const nd_tensor *const *xs, int n, int dim)
{
    int ref;
    int64_t size[ND_MAX_DIMS];
    ND_TRY(nd_cat_shape(xs, n, dim, &ref, size));
    if (ref < 0) return ND_OK; /* nothing but empty tensors: out stays as it is */
    for (int i = 0; i < n; i++)
        if (xs[i]->ndim > 0) ND_TRY(check_cpu("cat", xs[i]));
    const nd_tensor *r = xs[ref];
    ND_TRY(nd_linalg_prepare_out("cat", out, out->ndim ? out->dtype : r->dtype, r->ndim, size));
    return nd_cat_copy(out, xs, n, dim);
}
