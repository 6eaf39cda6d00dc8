#include "nd_iter.h"

void nd_iter_init(nd_iter *it, int n, const nd_tensor *const *t)
{
    it->n = n;
    it->started = 0;
    it->done = 0;
    int64_t numel = nd_tensor_numel(t[0]);
    if (numel == 0) {
        it->done = 1;
        it->ndim = 0;
        return;
    }
    /* Collect non-trivial dims, merging a dim into its predecessor when every operand allows it. */
    int nd = 0;
    for (int d = 0; d < t[0]->ndim; d++) {
        if (t[0]->size[d] == 1) continue;
        int merge = nd > 0;
        for (int k = 0; merge && k < n; k++) {
            int64_t es = (int64_t)nd_dtype_size(t[k]->dtype);
            if (it->bstride[k][nd - 1] != t[k]->stride[d] * es * t[0]->size[d]) merge = 0;
        }
        if (merge) {
            it->size[nd - 1] *= t[0]->size[d];
            for (int k = 0; k < n; k++)
                it->bstride[k][nd - 1] = t[k]->stride[d] * (int64_t)nd_dtype_size(t[k]->dtype);
        } else {
            it->size[nd] = t[0]->size[d];
            for (int k = 0; k < n; k++)
                it->bstride[k][nd] = t[k]->stride[d] * (int64_t)nd_dtype_size(t[k]->dtype);
            nd++;
        }
    }
    if (nd == 0) { /* a single element */
        it->size[0] = 1;
        for (int k = 0; k < n; k++) it->bstride[k][0] = 0;
        nd = 1;
    }
    it->ndim = nd;
    for (int k = 0; k < n; k++) {
        it->base[k] = (char *)nd_tensor_data(t[k]);
        int64_t es = (int64_t)nd_dtype_size(t[k]->dtype);
        it->istride[k] = it->bstride[k][nd - 1] / es;
        it->ptr[k] = it->base[k];
    }
    it->inner = it->size[nd - 1];
    for (int d = 0; d < nd; d++) it->idx[d] = 0;
}

int nd_iter_next(nd_iter *it)
{
    if (it->done) return 0;
    if (!it->started) {
        it->started = 1;
        return 1;
    }
    /* Increment the outer counter (all dims but the inner one). */
    int d = it->ndim - 2;
    for (; d >= 0; d--) {
        if (++it->idx[d] < it->size[d]) break;
        it->idx[d] = 0;
    }
    if (d < 0) {
        it->done = 1;
        return 0;
    }
    for (int k = 0; k < it->n; k++) {
        char *p = it->base[k];
        for (int e = 0; e < it->ndim - 1; e++) p += it->idx[e] * it->bstride[k][e];
        it->ptr[k] = p;
    }
    return 1;
}
