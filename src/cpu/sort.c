/* Sorting along a dimension on the CPU: stable sort and top-k, any dtype, any strides.
 * Contracts: nd_cpu_linalg.h.
 *
 * Each slice along dim is copied into a contiguous key buffer; positions are then ordered by a
 * total order: key first (NaN above everything), position second. Ordering by that total order
 * is what a stable sort gives, so sort (bottom-up merge sort over positions) and top-k (a bounded
 * heap, then heapsort of the k kept) agree on ties: the earlier element comes first. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nd_cpu_linalg.h"

#define SHAPE(t, buf) nd_tensor_shape_str((t), (buf), (int)sizeof(buf))
#define NO_NAN(x) 0
#define INSERTION_RUN 16

/* For one element type T (ISNAN: the NaN test for T):
 *   NAME##_first(keys, i, j, sgn): 1 when position i goes before position j (sgn 1: ascending,
 *   -1: descending), ties broken by position.
 *   NAME##_msort: sorts perm[0..n) (positions) by that order; tmp holds n entries.
 *   NAME##_topk: the k first positions in order, in out[0..k) (a heap of k while scanning).
 *   NAME##_run: the slice driver. */
#define SORT_TYPE(T, NAME, ISNAN)                                                                                      \
    static inline int NAME##_first(const T *keys, int64_t i, int64_t j, int sgn)                                       \
    {                                                                                                                  \
        T a = keys[i], b = keys[j];                                                                                    \
        int an = ISNAN(a), bn = ISNAN(b), c;                                                                           \
        if (an | bn)                                                                                                   \
            c = an - bn;                                                                                               \
        else                                                                                                           \
            c = (a > b) - (a < b);                                                                                     \
        c *= sgn;                                                                                                      \
        return c < 0 || (c == 0 && i < j);                                                                             \
    }                                                                                                                  \
    static void NAME##_msort(const T *keys, int64_t *perm, int64_t *tmp, int64_t n, int sgn)                           \
    {                                                                                                                  \
        for (int64_t lo = 0; lo < n; lo += INSERTION_RUN) {                                                            \
            int64_t hi = lo + INSERTION_RUN < n ? lo + INSERTION_RUN : n;                                              \
            for (int64_t i = lo + 1; i < hi; i++) {                                                                    \
                int64_t v = perm[i], j = i;                                                                            \
                for (; j > lo && NAME##_first(keys, v, perm[j - 1], sgn); j--)                                         \
                    perm[j] = perm[j - 1];                                                                             \
                perm[j] = v;                                                                                           \
            }                                                                                                          \
        }                                                                                                              \
        int64_t *src = perm, *dst = tmp;                                                                               \
        for (int64_t w = INSERTION_RUN; w < n; w *= 2) {                                                               \
            for (int64_t lo = 0; lo < n; lo += 2 * w) {                                                                \
                int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;                           \
                int64_t p = lo, q = mid, o = lo;                                                                       \
                while (p < mid && q < hi)                                                                              \
                    dst[o++] = NAME##_first(keys, src[q], src[p], sgn) ? src[q++] : src[p++];                          \
                while (p < mid)                                                                                        \
                    dst[o++] = src[p++];                                                                               \
                while (q < hi)                                                                                         \
                    dst[o++] = src[q++];                                                                               \
            }                                                                                                          \
            int64_t *s = src;                                                                                          \
            src = dst;                                                                                                 \
            dst = s;                                                                                                   \
        }                                                                                                              \
        if (src != perm) memcpy(perm, src, sizeof(int64_t) * (size_t)n);                                               \
    }                                                                                                                  \
    /* heap[0] is the LAST of the kept positions (the one to evict first) */                                           \
    static void NAME##_sift(const T *keys, int64_t *heap, int64_t m, int64_t at, int sgn)                              \
    {                                                                                                                  \
        for (;;) {                                                                                                     \
            int64_t l = 2 * at + 1, r = l + 1, w = at;                                                                 \
            if (l < m && NAME##_first(keys, heap[w], heap[l], sgn)) w = l;                                             \
            if (r < m && NAME##_first(keys, heap[w], heap[r], sgn)) w = r;                                             \
            if (w == at) return;                                                                                       \
            int64_t t = heap[w];                                                                                       \
            heap[w] = heap[at];                                                                                        \
            heap[at] = t;                                                                                              \
            at = w;                                                                                                    \
        }                                                                                                              \
    }                                                                                                                  \
    static void NAME##_topk(const T *keys, int64_t n, int64_t k, int sgn, int64_t *heap)                               \
    {                                                                                                                  \
        for (int64_t i = 0; i < k; i++)                                                                                \
            heap[i] = i;                                                                                               \
        for (int64_t i = k / 2 - 1; i >= 0; i--)                                                                       \
            NAME##_sift(keys, heap, k, i, sgn);                                                                        \
        for (int64_t i = k; i < n; i++)                                                                                \
            if (NAME##_first(keys, i, heap[0], sgn)) {                                                                 \
                heap[0] = i;                                                                                           \
                NAME##_sift(keys, heap, k, 0, sgn);                                                                    \
            }                                                                                                          \
        for (int64_t m = k - 1; m > 0; m--) { /* heapsort: the last-ranked goes to the end */                          \
            int64_t t = heap[0];                                                                                       \
            heap[0] = heap[m];                                                                                         \
            heap[m] = t;                                                                                               \
            NAME##_sift(keys, heap, m, 0, sgn);                                                                        \
        }                                                                                                              \
    }                                                                                                                  \
    static nd_status NAME##_run(const nd_tensor *x, nd_tensor *values, nd_tensor *indices, int dim, int sgn,           \
                                int64_t k, int topk)                                                                   \
    {                                                                                                                  \
        int64_t n = x->size[dim];                                                                                      \
        T *keys = malloc(sizeof(T) * (size_t)(n ? n : 1));                                                             \
        int64_t *perm = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));                                                 \
        int64_t *tmp = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));                                                  \
        if (!keys || !perm || !tmp) {                                                                                  \
            free(keys);                                                                                                \
            free(perm);                                                                                                \
            free(tmp);                                                                                                 \
            return ND_ERROR(ND_ERR_MEMORY, "sort: out of memory for slices of %lld", (long long)n);                    \
        }                                                                                                              \
        nd_tensor xr = nd_linalg_rest_view(x, dim), vr = nd_linalg_rest_view(values, dim),                             \
                  ir = nd_linalg_rest_view(indices, dim);                                                              \
        const nd_tensor *ops[3] = {&vr, &xr, &ir};                                                                     \
        int64_t xsd = x->stride[dim], vsd = values->stride[dim], isd = indices->stride[dim];                           \
        nd_iter it;                                                                                                    \
        nd_iter_init(&it, 3, ops);                                                                                     \
        while (nd_iter_next(&it))                                                                                      \
            for (int64_t j = 0; j < it.inner; j++) {                                                                   \
                const T *xs = (const T *)it.ptr[1] + j * it.istride[1];                                                \
                T *vs = (T *)it.ptr[0] + j * it.istride[0];                                                            \
                int64_t *is = (int64_t *)it.ptr[2] + j * it.istride[2];                                                \
                for (int64_t i = 0; i < n; i++)                                                                        \
                    keys[i] = xs[i * xsd];                                                                             \
                if (topk)                                                                                              \
                    NAME##_topk(keys, n, k, sgn, perm);                                                                \
                else {                                                                                                 \
                    for (int64_t i = 0; i < n; i++)                                                                    \
                        perm[i] = i;                                                                                   \
                    NAME##_msort(keys, perm, tmp, n, sgn);                                                             \
                }                                                                                                      \
                for (int64_t i = 0; i < k; i++) {                                                                      \
                    vs[i * vsd] = keys[perm[i]];                                                                       \
                    is[i * isd] = perm[i];                                                                             \
                }                                                                                                      \
            }                                                                                                          \
        free(keys);                                                                                                    \
        free(perm);                                                                                                    \
        free(tmp);                                                                                                     \
        return ND_OK;                                                                                                  \
    }

SORT_TYPE(float, sort_f32, isnan)
SORT_TYPE(double, sort_f64, isnan)
SORT_TYPE(int64_t, sort_i64, NO_NAN)
SORT_TYPE(uint8_t, sort_u8, NO_NAN)

static nd_status sort_common(const char *op, nd_tensor *values, nd_tensor *indices, const nd_tensor *x, int dim,
                             int sgn, int64_t k, int topk)
{
    if (x->storage && x->storage->device.type != ND_DEVICE_CPU)
        return ND_ERROR(ND_ERR_DEVICE, "%s: CPU kernel given a GPU tensor", op);
    if (x->ndim == 0) return ND_OK; /* nothing to sort: the results stay as they are */
    char s[ND_SHAPE_STR_MAX];
    if (dim < 0 || dim >= x->ndim)
        return ND_ERROR(ND_ERR_INDEX, "%s: dimension %d out of range for a %d-d tensor (%s)", op, dim + 1, x->ndim,
                        SHAPE(x, s));
    if (k < 1 || k > x->size[dim]) /* k = 0 would make a result with a size-0 dimension */
        return ND_ERROR(ND_ERR_ARG, "%s: k = %lld out of range for dimension %d of size %lld (%s)", op, (long long)k,
                        dim + 1, (long long)x->size[dim], SHAPE(x, s));
    int64_t size[ND_MAX_DIMS];
    memcpy(size, x->size, sizeof size);
    size[dim] = k;
    ND_TRY(nd_linalg_prepare_out(op, values, x->dtype, x->ndim, size));
    ND_TRY(nd_linalg_prepare_out(op, indices, ND_DTYPE_I64, x->ndim, size));
    switch (x->dtype) {
    case ND_DTYPE_F32:
        return sort_f32_run(x, values, indices, dim, sgn, k, topk);
    case ND_DTYPE_F64:
        return sort_f64_run(x, values, indices, dim, sgn, k, topk);
    case ND_DTYPE_I64:
        return sort_i64_run(x, values, indices, dim, sgn, k, topk);
    case ND_DTYPE_U8:
        return sort_u8_run(x, values, indices, dim, sgn, k, topk);
    default:
        return ND_ERROR(ND_ERR_DTYPE, "%s: unsupported dtype", op);
    }
}

nd_status nd_sort_cpu(nd_tensor *values, nd_tensor *indices, const nd_tensor *x, int dim, int descending)
{
    int64_t n = x->ndim > 0 && dim >= 0 && dim < x->ndim ? x->size[dim] : 0;
    return sort_common("sort", values, indices, x, dim, descending ? -1 : 1, n, 0);
}

nd_status nd_topk_cpu(nd_tensor *values, nd_tensor *indices, const nd_tensor *x, int dim, int64_t k, int largest)
{
    return sort_common("topk", values, indices, x, dim, largest ? -1 : 1, k, 1);
}
