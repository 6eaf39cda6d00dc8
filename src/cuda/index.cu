/* Index operations on the GPU: index_select/copy/add/fill, gather/scatter(_add/_value),
 * masked_fill and cat. Contracts: nd_cpu_linalg.h (same checks and messages); GPU differences:
 * nd_cuda_math.h (indices range-checked on the device and read back; repeated indices).
 *
 * Every indexed op is one kernel over a shape S with three operands: 0 = the written tensor,
 * 1 = the read tensor, 2 = the int64 indices. The indexed tensor (x) enters with stride 0 along
 * dim, and the index k read from operand 2 adds k * x.stride[dim]. For the 1-d index vectors of
 * index_* ops operand 2 is the vector itself, given its stride along dim and 0 elsewhere, so the
 * same kernel serves both families. Moves go by element size (one kernel for every dtype). */
#include <string.h>

#include "math_common.cuh"

#define SHAPE(t, buf) nd_tensor_shape_str((t), (buf), (int)sizeof(buf))

enum { IX_READ, IX_WRITE, IX_ADD, IX_FILL };

__device__ __forceinline__ void ix_atomic_add(float *p, float v)
{
    atomicAdd(p, v);
}
__device__ __forceinline__ void ix_atomic_add(double *p, double v)
{
    atomicAdd(p, v);
}
__device__ __forceinline__ void ix_atomic_add(int64_t *p, int64_t v)
{
    atomicAdd((unsigned long long *)p, (unsigned long long)v);
}

/* READ: w[off0] = r[off1 + k sd]; WRITE: w[off0 + k sd] = r[off1]; ADD: w[off0 + k sd] += r[off1];
 * FILL: w[off0 + k sd] = value (bits). Indices outside [0, lim) are skipped and recorded. */
template <typename T, int MODE>
__global__ void index_kernel(const __grid_constant__ nd_cm_iter it, int64_t sd, int64_t lim, uint64_t bits,
                             nd_cuda_flag *flag)
{
    T *w = (T *)it.base[0];
    const T *r = (const T *)it.base[1];
    T value;
    memcpy(&value, &bits, sizeof(T));
    ND_CM_LOOP(it, 3, {
        int64_t k = ((const int64_t *)it.base[2])[off[2]];
        if (k < 0 || k >= lim) {
            nd_cm_flag_set(flag, k);
            continue;
        }
        if constexpr (MODE == IX_READ)
            w[off[0]] = r[off[1] + k * sd];
        else if constexpr (MODE == IX_WRITE)
            w[off[0] + k * sd] = r[off[1]];
        else if constexpr (MODE == IX_ADD)
            ix_atomic_add(&w[off[0] + k * sd], r[off[1]]);
        else
            w[off[0] + k * sd] = value;
    })
}

/* x[off0] = value where mask[off1] != 0 (mask: any dtype). */
template <typename T> __global__ void masked_fill_kernel(const __grid_constant__ nd_cm_iter it, uint64_t bits)
{
    T value;
    memcpy(&value, &bits, sizeof(T));
    ND_CM_LOOP(it, 2, {
        if (nd_cm_load<double>(it.base[1], off[1], it.dt[1]) != 0) ((T *)it.base[0])[off[0]] = value;
    })
}

/* ---- host side ---- */

/* value converted to dtype dt (the CPU's (T)value for in-range values), as raw bits. */
static uint64_t value_bits(nd_dtype dt, double value)
{
    uint64_t bits = 0;
    int64_t iv = value != value ? 0 : value >= 9.2e18 ? INT64_MAX : value <= -9.2e18 ? INT64_MIN : (int64_t)value;
    switch (dt) {
    case ND_DTYPE_F32: {
        float f = (float)value;
        memcpy(&bits, &f, sizeof f);
    } break;
    case ND_DTYPE_F64:
        memcpy(&bits, &value, sizeof value);
        break;
    case ND_DTYPE_I64:
        memcpy(&bits, &iv, sizeof iv);
        break;
    default: {
        uint8_t u = (uint8_t)(uint64_t)iv;
        memcpy(&bits, &u, 1);
    } break;
    }
    return bits;
}

/* Shared with index.c (src/cpu/math_check.c); devices are checked with nd_cuda_math_enter. */
#define check_dim(op, x, dim) nd_index_check_dim(ND_DEVICE_CUDA, op, x, dim)
#define check_same_dtype(op, x, src) nd_index_check_same_dtype(ND_DEVICE_CUDA, op, x, src)
#define check_slices nd_index_check_slices

static nd_status check_index_vector(const char *op, const nd_tensor *idx)
{
    char s1[ND_SHAPE_STR_MAX];
    if (idx->dtype != ND_DTYPE_I64)
        return ND_ERROR(ND_ERR_DTYPE, "%s: indices must be int64, got %s", op, nd_dtype_name(idx->dtype));
    if (idx->ndim != 1) return ND_ERROR(ND_ERR_SHAPE, "%s: expected a 1-d index vector, got %s", op, SHAPE(idx, s1));
    return ND_OK;
}


/* The operands of one indexed op: strides over S (ndim dims), bases. */
typedef struct ix_plan {
    int ndim;
    int64_t size[ND_MAX_DIMS];
    int64_t st[3][ND_MAX_DIMS];
    char *base[3];
} ix_plan;

/* Operand k = t's strides, with stride 0 along dim when zero_dim (the indexed tensor). */
static void plan_tensor(ix_plan *p, int k, const nd_tensor *t, int dim, int zero_dim)
{
    for (int d = 0; d < t->ndim; d++)
        p->st[k][d] = zero_dim && d == dim ? 0 : t->stride[d];
    p->base[k] = (char *)nd_tensor_data(t);
}

/* Operand 2 = a 1-d index vector walked along dim of S. */
static void plan_vector(ix_plan *p, const nd_tensor *idx, int dim)
{
    for (int d = 0; d < p->ndim; d++)
        p->st[2][d] = d == dim ? idx->stride[0] : 0;
    p->base[2] = (char *)nd_tensor_data(idx);
}

/* Launches the op on dtype dt, then reads back the index check. x, idx, dim: for the message. */
static nd_status run_index(const char *op, int mode, nd_dtype dt, const ix_plan *p, int64_t sd, int64_t lim,
                           double value, const nd_tensor *x, const nd_tensor *idx, int dim)
{
    nd_cm_iter it;
    int dts[3] = {dt, dt, ND_DTYPE_I64};
    nd_cm_iter_make(&it, 3, p->ndim, p->size, p->st, p->base, dts);
    if (it.n == 0) return ND_OK;
    if (mode == IX_ADD && dt == ND_DTYPE_U8)
        return ND_ERROR(ND_ERR_DTYPE, "%s: uint8 tensors have no CUDA kernel (atomic adds); use int64", op);
    nd_cuda_flag *flag;
    ND_TRY(nd_cuda_flag_begin(&flag));
    uint64_t bits = value_bits(dt, value);
    unsigned nb = nd_cm_blocks(it.n);
    cudaStream_t s = nd_cuda_stream();
#define IX_LAUNCH(T, M) index_kernel<T, M><<<nb, ND_CM_THREADS, 0, s>>>(it, sd, lim, bits, flag)
#define IX_BY_SIZE(M)                                                                                                  \
    switch (nd_dtype_size(dt)) {                                                                                       \
    case 1:                                                                                                            \
        IX_LAUNCH(uint8_t, M);                                                                                         \
        break;                                                                                                         \
    case 4:                                                                                                            \
        IX_LAUNCH(uint32_t, M);                                                                                        \
        break;                                                                                                         \
    default:                                                                                                           \
        IX_LAUNCH(uint64_t, M);                                                                                        \
        break;                                                                                                         \
    }
    if (mode == IX_READ)
        IX_BY_SIZE(IX_READ)
    else if (mode == IX_WRITE)
        IX_BY_SIZE(IX_WRITE)
    else if (mode == IX_FILL)
        IX_BY_SIZE(IX_FILL)
    else if (dt == ND_DTYPE_F32)
        IX_LAUNCH(float, IX_ADD);
    else if (dt == ND_DTYPE_F64)
        IX_LAUNCH(double, IX_ADD);
    else
        IX_LAUNCH(int64_t, IX_ADD);
#undef IX_BY_SIZE
#undef IX_LAUNCH
    ND_CUDA_LAUNCH_CHECK();
    int hit;
    int64_t bad;
    ND_TRY(nd_cuda_flag_read(&hit, &bad));
    if (hit) {
        char s1[ND_SHAPE_STR_MAX], s2[ND_SHAPE_STR_MAX];
        return ND_ERROR(ND_ERR_INDEX, "%s: index %lld out of range for dimension %d of size %lld (tensor %s, index %s)",
                        op, (long long)bad + 1, dim + 1, (long long)lim, SHAPE(x, s1), SHAPE(idx, s2));
    }
    return ND_OK;
}

/* ---- index_select / copy / add / fill ---- */

extern "C" nd_status nd_index_select_cuda(nd_tensor *out, const nd_tensor *x, int dim, const nd_tensor *idx)
{
    const char *op = "index_select";
    ND_TRY(check_dim(op, x, dim));
    ND_TRY(check_index_vector(op, idx));
    const nd_tensor *ts[3] = {x, idx, out};
    nd_device dev;
    ND_TRY(nd_cuda_math_enter(op, 3, ts, &dev));
    int64_t size[ND_MAX_DIMS];
    memcpy(size, x->size, sizeof size);
    size[dim] = idx->size[0];
    ND_TRY(nd_cuda_linalg_prepare_out(op, out, x->dtype, x->ndim, size, dev));
    ix_plan p;
    memset(&p, 0, sizeof p);
    p.ndim = x->ndim;
    memcpy(p.size, size, sizeof size);
    plan_tensor(&p, 0, out, dim, 0);
    plan_tensor(&p, 1, x, dim, 1);
    plan_vector(&p, idx, dim);
    return run_index(op, IX_READ, x->dtype, &p, x->stride[dim], x->size[dim], 0, x, idx, dim);
}

/* index_copy (mode IX_WRITE) and index_add (IX_ADD): x.select(dim, idx[i]) <- src.select(dim, i). */
static nd_status index_from_src(const char *op, int mode, nd_tensor *x, int dim, const nd_tensor *idx,
                                const nd_tensor *src)
{
    ND_TRY(check_dim(op, x, dim));
    ND_TRY(check_index_vector(op, idx));
    ND_TRY(check_same_dtype(op, x, src));
    ND_TRY(check_slices(op, x, dim, idx->size[0], src));
    const nd_tensor *ts[3] = {x, idx, src};
    nd_device dev;
    ND_TRY(nd_cuda_math_enter(op, 3, ts, &dev));
    ix_plan p;
    memset(&p, 0, sizeof p);
    p.ndim = src->ndim;
    memcpy(p.size, src->size, sizeof p.size);
    plan_tensor(&p, 0, x, dim, 1);
    plan_tensor(&p, 1, src, dim, 0);
    plan_vector(&p, idx, dim);
    return run_index(op, mode, x->dtype, &p, x->stride[dim], x->size[dim], 0, x, idx, dim);
}

extern "C" nd_status nd_index_copy_cuda(nd_tensor *x, int dim, const nd_tensor *idx, const nd_tensor *src)
{
    return index_from_src("index_copy", IX_WRITE, x, dim, idx, src);
}

extern "C" nd_status nd_index_add_cuda(nd_tensor *x, int dim, const nd_tensor *idx, const nd_tensor *src)
{
    return index_from_src("index_add", IX_ADD, x, dim, idx, src);
}

extern "C" nd_status nd_index_fill_cuda(nd_tensor *x, int dim, const nd_tensor *idx, double value)
{
    const char *op = "index_fill";
    ND_TRY(check_dim(op, x, dim));
    ND_TRY(check_index_vector(op, idx));
    const nd_tensor *ts[2] = {x, idx};
    nd_device dev;
    ND_TRY(nd_cuda_math_enter(op, 2, ts, &dev));
    ix_plan p;
    memset(&p, 0, sizeof p);
    p.ndim = x->ndim;
    memcpy(p.size, x->size, sizeof p.size);
    p.size[dim] = idx->size[0];
    plan_tensor(&p, 0, x, dim, 1);
    plan_vector(&p, idx, dim); /* operand 1 unused: zero strides, no base */
    return run_index(op, IX_FILL, x->dtype, &p, x->stride[dim], x->size[dim], value, x, idx, dim);
}

/* ---- gather / scatter ---- */

/* The CPU's gs_check (src/cpu/math_check.c). */
static nd_status gs_check(const char *op, const nd_tensor *x, int dim, const nd_tensor *idx, const nd_tensor *other)
{
    return nd_index_check_gather(ND_DEVICE_CUDA, op, x, dim, idx, other);
}

extern "C" nd_status nd_gather_cuda(nd_tensor *out, const nd_tensor *x, int dim, const nd_tensor *idx)
{
    const char *op = "gather";
    ND_TRY(gs_check(op, x, dim, idx, NULL));
    const nd_tensor *ts[3] = {x, idx, out};
    nd_device dev;
    ND_TRY(nd_cuda_math_enter(op, 3, ts, &dev));
    ND_TRY(nd_cuda_linalg_prepare_out(op, out, x->dtype, idx->ndim, idx->size, dev));
    ix_plan p;
    memset(&p, 0, sizeof p);
    p.ndim = idx->ndim;
    memcpy(p.size, idx->size, sizeof p.size);
    plan_tensor(&p, 0, out, dim, 0);
    plan_tensor(&p, 1, x, dim, 1);
    plan_tensor(&p, 2, idx, dim, 0);
    return run_index(op, IX_READ, x->dtype, &p, x->stride[dim], x->size[dim], 0, x, idx, dim);
}

/* scatter (IX_WRITE), scatter_add (IX_ADD), scatter_value (IX_FILL, src NULL). */
static nd_status scatter_common(const char *op, int mode, nd_tensor *x, int dim, const nd_tensor *idx,
                                const nd_tensor *src, double value)
{
    ND_TRY(gs_check(op, x, dim, idx, src));
    const nd_tensor *ts[3] = {x, idx, src};
    nd_device dev;
    ND_TRY(nd_cuda_math_enter(op, 3, ts, &dev));
    ix_plan p;
    memset(&p, 0, sizeof p);
    p.ndim = idx->ndim;
    memcpy(p.size, idx->size, sizeof p.size);
    plan_tensor(&p, 0, x, dim, 1);
    if (src) plan_tensor(&p, 1, src, dim, 0);
    plan_tensor(&p, 2, idx, dim, 0);
    return run_index(op, mode, x->dtype, &p, x->stride[dim], x->size[dim], value, x, idx, dim);
}

extern "C" nd_status nd_scatter_cuda(nd_tensor *x, int dim, const nd_tensor *idx, const nd_tensor *src)
{
    return scatter_common("scatter", IX_WRITE, x, dim, idx, src, 0);
}

extern "C" nd_status nd_scatter_add_cuda(nd_tensor *x, int dim, const nd_tensor *idx, const nd_tensor *src)
{
    return scatter_common("scatter_add", IX_ADD, x, dim, idx, src, 0);
}

extern "C" nd_status nd_scatter_value_cuda(nd_tensor *x, int dim, const nd_tensor *idx, double value)
{
    return scatter_common("scatter", IX_FILL, x, dim, idx, NULL, value);
}

/* ---- masked_fill, cat ---- */

extern "C" nd_status nd_masked_fill_cuda(nd_tensor *x, const nd_tensor *mask, double value)
{
    const char *op = "masked_fill";
    char s1[ND_SHAPE_STR_MAX], s2[ND_SHAPE_STR_MAX];
    const nd_tensor *ts[2] = {x, mask};
    nd_device dev;
    ND_TRY(nd_cuda_math_enter(op, 2, ts, &dev));
    if (!nd_tensor_same_shape(x, mask))
        return ND_ERROR(ND_ERR_SHAPE, "%s: mask %s and tensor %s differ in shape", op, SHAPE(mask, s1), SHAPE(x, s2));
    if ((unsigned)x->dtype >= ND_DTYPE_COUNT || (unsigned)mask->dtype >= ND_DTYPE_COUNT)
        return ND_ERROR(ND_ERR_DTYPE, "%s: invalid dtype", op);
    if (nd_tensor_numel(x) == 0) return ND_OK;
    nd_cm_iter it;
    nd_cm_iter_tensors(&it, 2, ts);
    uint64_t bits = value_bits(x->dtype, value);
    unsigned nb = nd_cm_blocks(it.n);
    cudaStream_t s = nd_cuda_stream();
    switch (nd_dtype_size(x->dtype)) {
    case 1:
        masked_fill_kernel<uint8_t><<<nb, ND_CM_THREADS, 0, s>>>(it, bits);
        break;
    case 4:
        masked_fill_kernel<uint32_t><<<nb, ND_CM_THREADS, 0, s>>>(it, bits);
        break;
    default:
        masked_fill_kernel<uint64_t><<<nb, ND_CM_THREADS, 0, s>>>(it, bits);
        break;
    }
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}

extern "C" nd_status nd_cat_cuda(nd_tensor *out, const nd_tensor *const *xs, int n, int dim)
{
    int ref;
    int64_t size[ND_MAX_DIMS];
    ND_TRY(nd_cat_shape(xs, n, dim, &ref, size));
    if (ref < 0) return ND_OK; /* nothing but empty tensors: out stays as it is */
    const nd_tensor *r = xs[ref];
    nd_device dev = {ND_DEVICE_CUDA, -1};
    for (int i = 0; i < n; i++) {
        const nd_tensor *ts[2] = {r, xs[i]};
        if (xs[i]->ndim > 0) ND_TRY(nd_cuda_math_enter("cat", 2, ts, &dev));
    }
    const nd_tensor *ts[2] = {r, out};
    ND_TRY(nd_cuda_math_enter("cat", 2, ts, &dev));
    ND_TRY(nd_cuda_linalg_prepare_out("cat", out, out->ndim ? out->dtype : r->dtype, r->ndim, size, dev));
    return nd_cat_copy(out, xs, n, dim);
}
