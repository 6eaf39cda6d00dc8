/* Strided N-d tensors over a refcounted storage.
 *
 * Ownership: an nd_tensor is a small value struct that holds ONE reference to its storage
 * (or none when storage == NULL: the empty tensor). nd_tensor_release() drops it.
 * View functions (narrow, select, transpose, ...) rewrite the struct in place and keep the
 * storage: to take a view of `src`, first nd_tensor_view_of(&v, src) (a new reference), then
 * apply view operations to `v`. Offsets and strides count elements, not bytes.
 * ndim == 0 means "empty" (no elements), as in Torch7; there are no 0-d scalars. */
#ifndef ND_TENSOR_H
#define ND_TENSOR_H

#include <stdint.h>

#include "nd_dtype.h"
#include "nd_error.h"
#include "nd_storage.h"

#define ND_MAX_DIMS 8

typedef struct nd_tensor {
    nd_storage *storage; /* owned reference, NULL for the empty tensor */
    int64_t offset;      /* in elements */
    int ndim;
    nd_dtype dtype;
    int64_t size[ND_MAX_DIMS];
    int64_t stride[ND_MAX_DIMS];
} nd_tensor;

/* An empty tensor of dtype dt (no storage). */
void nd_tensor_init_empty(nd_tensor *t, nd_dtype dt);
/* Allocates a contiguous tensor. `t` must not hold a reference (it is overwritten).
 * Sizes must be >= 0 (a 0 size gives no elements). */
nd_status nd_tensor_new(nd_tensor *t, nd_dtype dt, int ndim, const int64_t *size, nd_device dev, int zero);
/* Same shape and dtype as `like`, contiguous, on the same device. */
nd_status nd_tensor_new_like(nd_tensor *t, const nd_tensor *like, int zero);
/* A contiguous CPU tensor of this shape over memory nd does not own (a Lua string, a pinned
 * buffer): *holder becomes its stand-in storage and must outlive t. t holds no reference: never
 * release it. */
void nd_tensor_borrow(nd_tensor *t, nd_storage *holder, void *data, int64_t nbytes, nd_dtype dt, int ndim,
                      const int64_t *size);
/* Drops the storage reference and leaves an empty tensor; safe to call twice. */
void nd_tensor_release(nd_tensor *t);
/* dst becomes a view of src sharing its storage (takes a new reference). dst must not hold one. */
void nd_tensor_view_of(nd_tensor *dst, const nd_tensor *src);
/* Like view_of but first releases whatever dst held (dst may equal src). */
void nd_tensor_set(nd_tensor *dst, const nd_tensor *src);

int64_t nd_tensor_numel(const nd_tensor *t);
int nd_tensor_is_contiguous(const nd_tensor *t);
int nd_tensor_same_shape(const nd_tensor *a, const nd_tensor *b);
/* Pointer to element 0 of the view (CPU address or device address). */
static inline void *nd_tensor_data(const nd_tensor *t)
{
    return t->storage ? (char *)t->storage->data + t->offset * (int64_t)nd_dtype_size(t->dtype) : 0;
}
static inline nd_device nd_tensor_device(const nd_tensor *t)
{
    return t->storage ? t->storage->device : nd_cpu_device();
}
/* Writes "2x3x4" (or "empty") into buf; returns buf. */
char *nd_tensor_shape_str(const nd_tensor *t, char *buf, int n);
#define ND_SHAPE_STR_MAX 200

/* ---- in-place view operations (dims are 0-based) ---- */
nd_status nd_tensor_narrow(nd_tensor *t, int dim, int64_t start, int64_t len);
nd_status nd_tensor_select(nd_tensor *t, int dim, int64_t index);  /* removes dim; 1-d -> error */
nd_status nd_tensor_transpose(nd_tensor *t, int d0, int d1);
nd_status nd_tensor_permute(nd_tensor *t, const int *perm);        /* perm has t->ndim entries */
nd_status nd_tensor_unsqueeze(nd_tensor *t, int dim);              /* dim in [0, ndim] */
nd_status nd_tensor_squeeze(nd_tensor *t, int dim);                /* dim < 0: all size-1 dims */
/* Broadcast size-1 dims (stride 0) and add leading dims to reach `size`. */
nd_status nd_tensor_expand(nd_tensor *t, int ndim, const int64_t *size);
/* Reinterpret with a new shape without copying; one size may be -1 (inferred).
 * Fails when the strides cannot express the view (call contiguous first). */
nd_status nd_tensor_view(nd_tensor *t, int ndim, const int64_t *size);
/* Moves sliding windows of `size` with `step` along dim into a new last dim (Torch7 unfold). */
nd_status nd_tensor_unfold(nd_tensor *t, int dim, int64_t size, int64_t step);

/* ---- copies ---- */
/* Elementwise copy with dtype conversion; shapes may differ if the element counts match
 * (Torch7 semantics: both are read in row-major order). When either tensor is on a GPU the copy
 * goes to the backend's device-copy hook (below); without one, ND_ERR_DEVICE. So clone,
 * contiguous and copy work on every device once the backend is initialised. */
nd_status nd_tensor_copy(nd_tensor *dst, const nd_tensor *src);
/* out = src if contiguous (a new view), otherwise a contiguous copy. out must not hold a reference. */
nd_status nd_tensor_contiguous(nd_tensor *out, const nd_tensor *src);
/* out = contiguous copy of src, optionally converting dtype. out must not hold a reference. */
nd_status nd_tensor_clone(nd_tensor *out, const nd_tensor *src, nd_dtype dt);

/* Device copy hook installed by a GPU backend (nd_cuda_copy): called by nd_tensor_copy with the
 * element counts checked equal and non-zero and at least one tensor off the CPU; handles any
 * strides, shapes and dtypes, host<->device and device<->device. */
typedef nd_status (*nd_device_copy_fn)(nd_tensor *dst, const nd_tensor *src);
void nd_tensor_set_device_copy(nd_device_copy_fn fn);

#endif
