/* Reductions (along a dim and over the whole tensor) and cumulative sums/products on the GPU;
 * the contract is nd_reduce_cpu's (src/cpu/nd_cpu_math.h), see nd_cuda_math.h for the GPU
 * differences.
 *
 * Every reduction folds one accumulator (`racc`, the CPU's acc) over the elements of a "line":
 * the elements along dim for nd_reduce_cuda (one line per result element), the whole tensor in
 * row-major order for nd_reduce_all_cuda. Floats accumulate in double, integer sums, products,
 * extremes and counts exactly in int64. The merge of two accumulators does not depend on their
 * order (extremes keep the lower index on ties, the first NaN wins by index), so any split of a
 * line gives the CPU's max/min/argmax/argmin; sums, variances (Chan's merge) and norms agree to
 * rounding. Two kernels:
 *   line_block_kernel: a block per (line, split) with a shared-memory tree; with several splits per
 *     line the partial accumulators go to the workspace and merge_kernel finishes each line;
 *   line_thread_kernel: a thread per line, for short lines and for lines whose neighbours sit
 *     side by side in memory (sum(1) of a row-major matrix: coalesced reads).
 * Cumulative ops: a thread per line, sequential along it. */
#include <math.h>
#include <string.h>

#include "math_common.cuh"

typedef nd_reduce_acc racc; /* src/cpu/nd_cpu_math.h, the CPU's acc */

typedef struct red_args {
    int op, idom, xdt, vdt, eall, splits;
    double p;
    const char *x;
    char *vals, *inds; /* NULL when absent */
    nd_cm_iter lines;  /* over the result elements: 0 = x (line start), 1 = values, 2 = indices */
    int64_t len, lstride, chunk;
    nd_cm_iter elems; /* eall: x's own layout (line = whole tensor); else e * lstride */
    racc *partial;    /* lines * splits accumulators (splits > 1 or keep) */
    int keep;         /* store raw accumulators in partial instead of results (whole tensor) */
} red_args;

__host__ __device__ __forceinline__ int is_max_op(int op)
{
    return op == ND_REDUCE_MAX || op == ND_REDUCE_ARGMAX;
}
__host__ __device__ __forceinline__ int is_extreme_op(int op)
{
    return op == ND_REDUCE_MAX || op == ND_REDUCE_MIN || op == ND_REDUCE_ARGMAX || op == ND_REDUCE_ARGMIN;
}
__device__ __forceinline__ int64_t r_wadd(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a + (uint64_t)b);
}
__device__ __forceinline__ int64_t r_wmul(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a * (uint64_t)b);
}

__device__ __forceinline__ void racc_zero(racc &a)
{
    a.n = 0;
    a.s = a.m = a.m2 = 0;
    a.is = a.idx = 0;
    a.nan = 0;
}

/* The accumulator of one element at position pos (float domain). */
__device__ __forceinline__ void racc_one_f(racc &a, int op, double p, double v, int64_t pos)
{
    racc_zero(a);
    a.n = 1;
    switch (op) {
    case ND_REDUCE_SUM:
    case ND_REDUCE_MEAN:
    case ND_REDUCE_PROD:
        a.s = v;
        break;
    case ND_REDUCE_MAX:
    case ND_REDUCE_MIN:
    case ND_REDUCE_ARGMAX:
    case ND_REDUCE_ARGMIN:
        a.m = v;
        a.idx = pos;
        a.nan = v != v;
        break;
    case ND_REDUCE_VAR:
    case ND_REDUCE_STD:
        a.m = v;
        break;
    case ND_REDUCE_NORM:
        if (p == 0)
            a.s = v != 0;
        else if (isinf(p))
            a.m = fabs(v);
        else if (p == 1)
            a.s = fabs(v);
        else if (p == 2)
            a.s = v * v;
        else
            a.s = pow(fabs(v), p);
        break;
    case ND_REDUCE_LOGSUMEXP:
        a.nan = v != v;
        a.m = v;
        a.s = (a.nan || isinf(v)) ? (v > 0 ? 1 : 0) : 1;
        break;
    default: /* count_nonzero, any, all */
        a.is = v != 0;
        break;
    }
}

/* Same for the int64 domain (sum, prod, mean, extremes, counts of integer tensors). */
__device__ __forceinline__ void racc_one_i(racc &a, int op, int64_t v, int64_t pos)
{
    racc_zero(a);
    a.n = 1;
    a.idx = pos;
    if (op == ND_REDUCE_COUNT_NONZERO || op == ND_REDUCE_ANY || op == ND_REDUCE_ALL)
        a.is = v != 0;
    else
        a.is = v;
}

/* a = a merged with b (order-free, see the top). */
__device__ __forceinline__ void racc_merge(racc &a, const racc &b, int op, double p, int idom)
{
    if (b.n == 0) return;
    if (a.n == 0) {
        a = b;
        return;
    }
    switch (op) {
    case ND_REDUCE_SUM:
    case ND_REDUCE_MEAN:
        a.s += b.s;
        a.is = r_wadd(a.is, b.is);
        break;
    case ND_REDUCE_PROD:
        a.s *= b.s;
        a.is = r_wmul(a.is, b.is);
        break;
    case ND_REDUCE_MAX:
    case ND_REDUCE_MIN:
    case ND_REDUCE_ARGMAX:
    case ND_REDUCE_ARGMIN: {
        int mx = is_max_op(op), take;
        if (a.nan || b.nan)
            take = (a.nan && b.nan) ? b.idx < a.idx : b.nan;
        else if (idom)
            take = mx ? (b.is > a.is || (b.is == a.is && b.idx < a.idx))
                      : (b.is < a.is || (b.is == a.is && b.idx < a.idx));
        else
            take = mx ? (b.m > a.m || (b.m == a.m && b.idx < a.idx)) : (b.m < a.m || (b.m == a.m && b.idx < a.idx));
        if (take) {
            a.m = b.m;
            a.is = b.is;
            a.idx = b.idx;
            a.nan = b.nan;
        }
    } break;
    case ND_REDUCE_VAR:
    case ND_REDUCE_STD: {
        double na = (double)a.n, nb = (double)b.n, n = na + nb, d = b.m - a.m;
        a.m += d * nb / n;
        a.m2 += b.m2 + d * d * na * nb / n;
    } break;
    case ND_REDUCE_NORM:
        if (isinf(p)) {
            if (a.m != a.m || b.m != b.m)
                a.m = a.m != a.m ? a.m : b.m;
            else if (p > 0 ? b.m > a.m : b.m < a.m)
                a.m = b.m;
        } else {
            a.s += b.s;
        }
        break;
    case ND_REDUCE_LOGSUMEXP: {
        a.nan |= b.nan;
        double M = a.m > b.m ? a.m : b.m;
        if (a.nan) break;
        if (isinf(M))
            a.s = M > 0 ? 1 : 0;
        else
            a.s = a.s * exp(a.m - M) + b.s * exp(b.m - M);
        a.m = M;
    } break;
    case ND_REDUCE_COUNT_NONZERO:
        a.is += b.is;
        break;
    case ND_REDUCE_ANY:
        a.is = a.is || b.is;
        break;
    case ND_REDUCE_ALL:
        a.is = a.is && b.is;
        break;
    default:
        break;
    }
    a.n += b.n;
}

/* The CPU's finalize: the result of an accumulator. */
__host__ __device__ __forceinline__ void racc_final(const racc &a, int op, double p, int idom, int *is_int, int64_t *iv,
                                                    double *fv)
{
    double n = (double)a.n, f = 0;
    int ii = 0;
    int64_t i = 0;
    switch (op) {
    case ND_REDUCE_SUM:
        if (idom)
            ii = 1, i = a.is;
        else
            f = a.s;
        break;
    case ND_REDUCE_PROD:
        if (idom)
            ii = 1, i = a.n ? a.is : 1;
        else
            f = a.n ? a.s : 1;
        break;
    case ND_REDUCE_MEAN:
        f = a.n == 0 ? NAN : (idom ? (double)a.is : a.s) / n;
        break;
    case ND_REDUCE_MAX:
    case ND_REDUCE_MIN:
        if (idom)
            ii = 1, i = a.is;
        else
            f = a.m;
        break;
    case ND_REDUCE_ARGMAX:
    case ND_REDUCE_ARGMIN:
        ii = 1, i = a.idx;
        break;
    case ND_REDUCE_VAR:
    case ND_REDUCE_STD: {
        double denom = n - (p != 0 ? 1 : 0);
        f = denom > 0 ? a.m2 / denom : NAN;
        if (op == ND_REDUCE_STD) f = sqrt(f);
    } break;
    case ND_REDUCE_NORM:
        if (a.n == 0)
            f = 0;
        else if (p == 0 || p == 1)
            f = a.s;
        else if (isinf(p))
            f = a.m;
        else if (p == 2)
            f = sqrt(a.s);
        else
            f = pow(a.s, 1 / p);
        break;
    case ND_REDUCE_LOGSUMEXP:
        if (a.nan)
            f = NAN;
        else if (a.n == 0)
            f = -INFINITY;
        else if (isinf(a.m))
            f = a.m;
        else
            f = a.m + log(a.s);
        break;
    case ND_REDUCE_COUNT_NONZERO:
        ii = 1, i = a.is;
        break;
    case ND_REDUCE_ANY:
        ii = 1, i = a.n ? a.is : 0;
        break;
    case ND_REDUCE_ALL:
        ii = 1, i = a.n ? a.is : 1;
        break;
    default:
        break;
    }
    *is_int = ii;
    *iv = i;
    *fv = ii ? (double)i : f;
}

/* Stores the result of line `line` (values and/or indices). */
__device__ __forceinline__ void store_line(const red_args &r, int64_t line, const racc &a)
{
    int64_t off[3];
    nd_cm_offsets<3>(r.lines, line, off);
    if (r.vals) {
        int ii;
        int64_t iv;
        double fv;
        racc_final(a, r.op, r.p, r.idom, &ii, &iv, &fv);
        if (ii)
            nd_cm_store<int64_t>(r.vals, off[1], r.vdt, iv);
        else
            nd_cm_store<double>(r.vals, off[1], r.vdt, fv);
    }
    if (r.inds) ((int64_t *)r.inds)[off[2]] = a.idx;
}

/* Folds elements [e0, e1) of the line starting at x offset base into a, stepping by `step`. */
template <bool IDOM>
__device__ __forceinline__ void fold(const red_args &r, racc &a, int64_t base, int64_t e0, int64_t e1, int64_t step)
{
    for (int64_t e = e0; e < e1; e += step) {
        int64_t o;
        if (r.eall)
            nd_cm_offsets<1>(r.elems, e, &o);
        else
            o = e * r.lstride;
        racc one;
        if (IDOM)
            racc_one_i(one, r.op, nd_cm_load<int64_t>(r.x, base + o, r.xdt), e);
        else
            racc_one_f(one, r.op, r.p, nd_cm_load<double>(r.x, base + o, r.xdt), e);
        racc_merge(a, one, r.op, r.p, r.idom);
    }
}

/* Block (line, split): elements [split * chunk, ...) of the line. blockDim: a power of 2 <= 256. */
template <bool IDOM> __global__ void line_block_kernel(const __grid_constant__ red_args r)
{
    __shared__ racc sh[ND_CM_THREADS];
    int64_t line = blockIdx.x / r.splits, split = blockIdx.x % r.splits;
    int64_t base;
    {
        int64_t off[3];
        nd_cm_offsets<3>(r.lines, line, off);
        base = off[0];
    }
    int64_t e0 = split * r.chunk, e1 = e0 + r.chunk < r.len ? e0 + r.chunk : r.len;
    racc a;
    racc_zero(a);
    fold<IDOM>(r, a, base, e0 + threadIdx.x, e1, blockDim.x);
    sh[threadIdx.x] = a;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) racc_merge(sh[threadIdx.x], sh[threadIdx.x + s], r.op, r.p, r.idom);
        __syncthreads();
    }
    if (threadIdx.x != 0) return;
    if (r.splits > 1 || r.keep)
        r.partial[blockIdx.x] = sh[0];
    else
        store_line(r, line, sh[0]);
}

/* A thread per line: merges its splits' partial accumulators (in split order) and stores. */
static __global__ void merge_kernel(const __grid_constant__ red_args r, int64_t nlines)
{
    for (int64_t line = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; line < nlines;
         line += (int64_t)blockDim.x * gridDim.x) {
        racc a;
        racc_zero(a);
        for (int s = 0; s < r.splits; s++)
            racc_merge(a, r.partial[line * r.splits + s], r.op, r.p, r.idom);
        if (r.keep)
            r.partial[(int64_t)r.splits * nlines] = a;
        else
            store_line(r, line, a);
    }
}

/* A thread per line, sequential along it. */
template <bool IDOM> __global__ void line_thread_kernel(const __grid_constant__ red_args r)
{
    for (int64_t line = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; line < r.lines.n;
         line += (int64_t)blockDim.x * gridDim.x) {
        int64_t off[3];
        nd_cm_offsets<3>(r.lines, line, off);
        racc a;
        racc_zero(a);
        fold<IDOM>(r, a, off[0], 0, r.len, 1);
        store_line(r, line, a);
    }
}

/* ---- host side ---- */

static nd_status check_x(nd_reduce_op op, const nd_tensor *x)
{
    if ((unsigned)op >= ND_REDUCE_COUNT) return ND_ERROR(ND_ERR_ARG, "reduce: unknown op %d", (int)op);
    if ((unsigned)x->dtype >= ND_DTYPE_COUNT) return ND_ERROR(ND_ERR_DTYPE, "%s: invalid dtype", nd_reduce_name(op));
    return ND_OK;
}

static int int_domain(nd_reduce_op op, nd_dtype dt)
{
    if (nd_dtype_is_float(dt)) return 0;
    switch (op) {
    case ND_REDUCE_SUM:
    case ND_REDUCE_PROD:
    case ND_REDUCE_MEAN:
    case ND_REDUCE_MAX:
    case ND_REDUCE_MIN:
    case ND_REDUCE_ARGMAX:
    case ND_REDUCE_ARGMIN:
    case ND_REDUCE_COUNT_NONZERO:
    case ND_REDUCE_ANY:
    case ND_REDUCE_ALL:
        return 1;
    default:
        return 0;
    }
}

static unsigned pow2_threads(int64_t len)
{
    unsigned t = 32;
    while (t < ND_CM_THREADS && t < len)
        t <<= 1;
    return t;
}

/* Runs the reduction described by r over r.lines.n lines of r.len elements. */
static nd_status run_lines(red_args *r, int force_block)
{
    int64_t lines = r->lines.n, len = r->len;
    cudaStream_t s = nd_cuda_stream();
    int inner_unit = r->lines.stride[0][r->lines.ndim - 1] == 1;
    int by_thread = !force_block && (len <= 16 || (r->lstride != 1 && lines >= 256 && inner_unit));
    if (by_thread) {
        if (r->idom)
            line_thread_kernel<true><<<nd_cm_blocks(lines), ND_CM_THREADS, 0, s>>>(*r);
        else
            line_thread_kernel<false><<<nd_cm_blocks(lines), ND_CM_THREADS, 0, s>>>(*r);
        ND_CUDA_LAUNCH_CHECK();
        return ND_OK;
    }
    unsigned threads = pow2_threads(len);
    int64_t splits = 1;
    if (lines < 512) {
        int64_t by_len = (len + 4095) / 4096, by_lines = (1024 + lines - 1) / lines;
        splits = by_len < by_lines ? by_len : by_lines;
        if (splits < 1) splits = 1;
    }
    if (lines * splits >= ((int64_t)1 << 31))
        return ND_ERROR(ND_ERR_ARG, "%s: too many lines to reduce (%lld)", nd_reduce_name((nd_reduce_op)r->op),
                        (long long)lines);
    r->splits = (int)splits;
    r->chunk = (len + splits - 1) / splits;
    if (splits > 1 || r->keep) {
        void *ws;
        ND_TRY(nd_cuda_workspace(&ws, sizeof(racc) * (size_t)(lines * splits + 1)));
        r->partial = (racc *)ws;
    }
    unsigned grid = (unsigned)(lines * splits);
    if (r->idom)
        line_block_kernel<true><<<grid, threads, 0, s>>>(*r);
    else
        line_block_kernel<false><<<grid, threads, 0, s>>>(*r);
    ND_CUDA_LAUNCH_CHECK();
    if (splits > 1 || r->keep) {
        merge_kernel<<<nd_cm_blocks(lines), ND_CM_THREADS, 0, s>>>(*r, lines);
        ND_CUDA_LAUNCH_CHECK();
    }
    return ND_OK;
}

extern "C" nd_status nd_reduce_all_cuda(nd_scalar *out, const nd_tensor *x, nd_reduce_op op, double p)
{
    memset(out, 0, sizeof *out);
    ND_TRY(check_x(op, x));
    const char *name = nd_reduce_name(op);
    nd_device dev;
    ND_TRY(nd_cuda_math_enter(name, 1, &x, &dev));
    int64_t numel = nd_tensor_numel(x);
    if (numel == 0 && is_extreme_op(op)) return ND_ERROR(ND_ERR_SHAPE, "%s: the tensor is empty", name);
    int idom = int_domain(op, x->dtype);
    racc a;
    memset(&a, 0, sizeof a);
    if (numel > 0) {
        red_args r;
        memset(&r, 0, sizeof r);
        r.op = op, r.idom = idom, r.xdt = x->dtype, r.p = p, r.x = (const char *)nd_tensor_data(x);
        r.eall = 1, r.len = numel, r.keep = 1;
        int64_t one = 1, zst[ND_MAX_DIMS][ND_MAX_DIMS];
        memset(zst, 0, sizeof zst);
        char *nb[3] = {NULL, NULL, NULL};
        int dts[3] = {0, 0, 0};
        nd_cm_iter_make(&r.lines, 3, 1, &one, zst, nb, dts);
        nd_cm_iter_tensors(&r.elems, 1, &x);
        ND_TRY(run_lines(&r, 1));
        ND_CUDA_TRY(cudaMemcpyAsync(&a, r.partial + r.splits, sizeof a, cudaMemcpyDeviceToHost, nd_cuda_stream()));
        ND_CUDA_TRY(cudaStreamSynchronize(nd_cuda_stream()));
    }
    racc_final(a, op, p, idom, &out->is_int, &out->i, &out->f);
    out->index = a.idx;
    return ND_OK;
}

/* Strides of t without dimension dim, into st (t->ndim - 1 entries). */
static void rest_strides(const nd_tensor *t, int dim, int64_t *st)
{
    int k = 0;
    for (int d = 0; d < t->ndim; d++)
        if (d != dim) st[k++] = t->stride[d];
}

extern "C" nd_status nd_reduce_cuda(nd_tensor *values, nd_tensor *indices, const nd_tensor *x, int dim, nd_reduce_op op,
                                    double p)
{
    ND_TRY(check_x(op, x));
    const char *name = nd_reduce_name(op);
    char s1[ND_SHAPE_STR_MAX];
    if (x->ndim == 0) return ND_ERROR(ND_ERR_SHAPE, "%s: cannot reduce along a dimension of an empty tensor", name);
    if (dim < 0 || dim >= x->ndim)
        return ND_ERROR(ND_ERR_INDEX, "%s: dimension %d out of range for a %d-d tensor (%s)", name, dim + 1, x->ndim,
                        nd_tensor_shape_str(x, s1, sizeof s1));
    int64_t size[ND_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++)
        size[d] = d == dim ? 1 : x->size[d];
    int arg = op == ND_REDUCE_ARGMAX || op == ND_REDUCE_ARGMIN;
    if (!arg) indices = is_extreme_op(op) ? indices : NULL;
    if (arg && !indices) return ND_ERROR(ND_ERR_ARG, "%s: needs an indices tensor", name);
    if (!arg && !values) return ND_ERROR(ND_ERR_ARG, "%s: needs a values tensor", name);
    if (is_extreme_op(op) && x->size[dim] == 0)
        return ND_ERROR(ND_ERR_SHAPE, "%s: dimension %d of %s has size 0", name, dim + 1,
                        nd_tensor_shape_str(x, s1, sizeof s1));
    const nd_tensor *ts[3] = {x, values, indices};
    nd_device dev;
    ND_TRY(nd_cuda_math_enter(name, 3, ts, &dev));
    if (values) ND_TRY(nd_cuda_math_prepare_out(name, values, x->ndim, size, dev));
    if (indices) {
        if (!indices->storage) indices->dtype = ND_DTYPE_I64;
        if (indices->dtype != ND_DTYPE_I64)
            return ND_ERROR(ND_ERR_DTYPE, "%s: indices must be int64, got %s", name, nd_dtype_name(indices->dtype));
        ND_TRY(nd_cuda_math_prepare_out(name, indices, x->ndim, size, dev));
    }
    red_args r;
    memset(&r, 0, sizeof r);
    r.op = op, r.idom = int_domain(op, x->dtype), r.xdt = x->dtype, r.p = p;
    r.x = (const char *)nd_tensor_data(x);
    r.vals = values ? (char *)nd_tensor_data(values) : NULL;
    r.vdt = values ? values->dtype : ND_DTYPE_F64;
    r.inds = indices ? (char *)nd_tensor_data(indices) : NULL;
    r.len = x->size[dim], r.lstride = x->stride[dim];
    int64_t rsize[ND_MAX_DIMS], st[3][ND_MAX_DIMS];
    memset(st, 0, sizeof st);
    int rn = 0;
    for (int d = 0; d < x->ndim; d++)
        if (d != dim) rsize[rn++] = x->size[d];
    rest_strides(x, dim, st[0]);
    if (values) rest_strides(values, dim, st[1]);
    if (indices) rest_strides(indices, dim, st[2]);
    if (rn == 0) rsize[rn++] = 1; /* a 1-d x: one line */
    char *bases[3] = {(char *)r.x, r.vals, r.inds};
    int dts[3] = {r.xdt, r.vdt, ND_DTYPE_I64};
    nd_cm_iter_make(&r.lines, 3, rn, rsize, st, bases, dts);
    if (r.lines.n == 0) return ND_OK;
    return run_lines(&r, 0);
}

/* ---- cumulative ---- */

typedef struct cum_args {
    nd_cm_iter lines; /* 0 = out, 1 = x: the first element of each line */
    int64_t len, os, xs;
    int sum, idom;
} cum_args;

static __global__ void cumulate_kernel(const __grid_constant__ cum_args c)
{
    for (int64_t line = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; line < c.lines.n;
         line += (int64_t)blockDim.x * gridDim.x) {
        int64_t off[2];
        nd_cm_offsets<2>(c.lines, line, off);
        char *o = c.lines.base[0];
        const char *x = c.lines.base[1];
        int odt = c.lines.dt[0], xdt = c.lines.dt[1];
        if (c.idom) {
            int64_t acc = c.sum ? 0 : 1;
            for (int64_t k = 0; k < c.len; k++) {
                int64_t v = nd_cm_load<int64_t>(x, off[1] + k * c.xs, xdt);
                acc = c.sum ? r_wadd(acc, v) : r_wmul(acc, v);
                nd_cm_store<int64_t>(o, off[0] + k * c.os, odt, acc);
            }
        } else {
            double acc = c.sum ? 0 : 1;
            for (int64_t k = 0; k < c.len; k++) {
                double v = nd_cm_load<double>(x, off[1] + k * c.xs, xdt);
                acc = c.sum ? acc + v : acc * v;
                nd_cm_store<double>(o, off[0] + k * c.os, odt, acc);
            }
        }
    }
}

extern "C" nd_status nd_cumulate_cuda(nd_tensor *out, const nd_tensor *x, int dim, nd_cumulate_op op)
{
    if ((unsigned)op >= ND_CUMULATE_COUNT) return ND_ERROR(ND_ERR_ARG, "cumulate: unknown op %d", (int)op);
    const char *name = nd_cumulate_name(op);
    char s1[ND_SHAPE_STR_MAX];
    if ((unsigned)x->dtype >= ND_DTYPE_COUNT) return ND_ERROR(ND_ERR_DTYPE, "%s: invalid dtype", name);
    if (x->ndim == 0) return ND_ERROR(ND_ERR_SHAPE, "%s: cannot reduce along a dimension of an empty tensor", name);
    if (dim < 0 || dim >= x->ndim)
        return ND_ERROR(ND_ERR_INDEX, "%s: dimension %d out of range for a %d-d tensor (%s)", name, dim + 1, x->ndim,
                        nd_tensor_shape_str(x, s1, sizeof s1));
    const nd_tensor *ts[2] = {x, out};
    nd_device dev;
    ND_TRY(nd_cuda_math_enter(name, 2, ts, &dev));
    ND_TRY(nd_cuda_math_prepare_out(name, out, x->ndim, x->size, dev));
    cum_args c;
    memset(&c, 0, sizeof c);
    c.sum = op == ND_CUMULATE_SUM;
    c.idom = !nd_dtype_is_float(x->dtype) && !nd_dtype_is_float(out->dtype);
    c.len = x->size[dim], c.xs = x->stride[dim], c.os = out->stride[dim];
    int64_t rsize[ND_MAX_DIMS], st[2][ND_MAX_DIMS];
    memset(st, 0, sizeof st);
    int rn = 0;
    for (int d = 0; d < x->ndim; d++)
        if (d != dim) rsize[rn++] = x->size[d];
    rest_strides(out, dim, st[0]);
    rest_strides(x, dim, st[1]);
    if (rn == 0) rsize[rn++] = 1;
    char *bases[2] = {(char *)nd_tensor_data(out), (char *)nd_tensor_data(x)};
    int dts[2] = {out->dtype, x->dtype};
    nd_cm_iter_make(&c.lines, 2, rn, rsize, st, bases, dts);
    if (c.lines.n == 0 || c.len == 0) return ND_OK;
    cumulate_kernel<<<nd_cm_blocks(c.lines.n), ND_CM_THREADS, 0, nd_cuda_stream()>>>(c);
    ND_CUDA_LAUNCH_CHECK();
    return ND_OK;
}
