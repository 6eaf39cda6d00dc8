/* Row-major iteration over up to ND_ITER_MAX tensors of the same shape (broadcast first with
 * nd_tensor_expand). Dimensions that are contiguous in every operand are merged, so the caller's
 * inner loop runs as long as possible:
 *
 *   nd_iter it; nd_iter_init(&it, 2, (const nd_tensor *[]){out, in});
 *   while (nd_iter_next(&it)) {
 *       float *o = (float *)it.ptr[0]; const float *x = (const float *)it.ptr[1];
 *       for (int64_t i = 0; i < it.inner; i++) o[i * it.istride[0]] = f(x[i * it.istride[1]]);
 *   }
 *
 * Pointers are CPU addresses; inner strides count elements of each operand's dtype. */
#ifndef ND_ITER_H
#define ND_ITER_H

#include "nd_tensor.h"

#define ND_ITER_MAX 4

typedef struct nd_iter {
    int n, ndim;                          /* operands; outer dims (after merging) */
    int64_t size[ND_MAX_DIMS];            /* outer sizes, last entry = inner length */
    int64_t bstride[ND_ITER_MAX][ND_MAX_DIMS]; /* byte strides */
    int64_t idx[ND_MAX_DIMS];
    char *base[ND_ITER_MAX];
    int started, done;
    char *ptr[ND_ITER_MAX];               /* start of the current inner run */
    int64_t inner;                        /* its length */
    int64_t istride[ND_ITER_MAX];         /* its element strides */
} nd_iter;

/* All operands must have t[0]'s sizes (checked by the caller). */
void nd_iter_init(nd_iter *it, int n, const nd_tensor *const *t);
/* Advances to the next inner run; returns 0 when finished. */
int nd_iter_next(nd_iter *it);

#endif
