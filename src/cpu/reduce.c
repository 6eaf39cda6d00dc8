/* Reductions (along a dim and over a whole tensor) and cumulative sums/products on the CPU;
 * see nd_cpu_math.h for the rules.
 *
 * Every reduction is built from one accumulator (`acc`): a segment of elements (strided, any
 * dtype) is converted in chunks of CHUNK into float64 or int64 buffers, each chunk gives a
 * partial acc (two passes over the chunk for var and logsumexp), and partials combine in order
 * (sums add, extremes keep the earlier one on ties, variances merge by Chan's formula, logsumexp
 * rescales to the larger max). Integer tensors reduce exactly in int64 for sum, prod, mean,
 * max/min and the counts; float32 accumulates in double.
 * Along a dim: one segment per output element, output elements spread over threads; when the
 * reduced lines sit side by side in memory (sum(1) of a row-major matrix), sum/mean/var/std/max/min
 * of float tensors walk the rows and update whole columns at once. Whole tensor: fixed ranges of ALL_RANGE elements, so the
 * result does not depend on the number of threads. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "nd_cpu_math.h"

#define CHUNK 512
#define ALL_RANGE 32768

static const char *const reduce_names[ND_REDUCE_COUNT] = {
    "sum", "prod", "mean", "max", "min", "argmax", "argmin", "var", "std", "norm", "logsumexp", "count_nonzero",
    "any", "all"};
static const char *const cumulate_names[ND_CUMULATE_COUNT] = {"cumsum", "cumprod"};

const char *nd_reduce_name(nd_reduce_op op) { return (unsigned)op < ND_REDUCE_COUNT ? reduce_names[op] : "?"; }
const char *nd_cumulate_name(nd_cumulate_op op)
{
    return (unsigned)op < ND_CUMULATE_COUNT ? cumulate_names[op] : "?";
}

static inline int64_t wadd(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
static inline int64_t wmul(int64_t a, int64_t b) { return (int64_t)((uint64_t)a * (uint64_t)b); }

typedef nd_reduce_acc acc; /* nd_cpu_math.h, shared with reduce.cu */

typedef struct red {
    nd_reduce_op op;
    double p;
    int idom; /* reduce in int64 */
    nd_dtype xdt;
} red;

static int is_extreme(nd_reduce_op op)
{
    return op == ND_REDUCE_MAX || op == ND_REDUCE_MIN || op == ND_REDUCE_ARGMAX || op == ND_REDUCE_ARGMIN;
}
static int is_max(nd_reduce_op op) { return op == ND_REDUCE_MAX || op == ND_REDUCE_ARGMAX; }

static int int_domain(nd_reduce_op op, nd_dtype dt)
{
    if (nd_dtype_is_float(dt)) return 0;
    switch (op) {
    case ND_REDUCE_SUM: case ND_REDUCE_PROD: case ND_REDUCE_MEAN: case ND_REDUCE_MAX: case ND_REDUCE_MIN:
    case ND_REDUCE_ARGMAX: case ND_REDUCE_ARGMIN: case ND_REDUCE_COUNT_NONZERO: case ND_REDUCE_ANY:
    case ND_REDUCE_ALL:
        return 1;
    default:
        return 0;
    }
}

/* Sum with four accumulators (breaks the add latency chain). */
static double sum4(const double *v, int64_t n)
{
    double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        a0 += v[i];
        a1 += v[i + 1];
        a2 += v[i + 2];
        a3 += v[i + 3];
    }
    for (; i < n; i++) a0 += v[i];
    return (a0 + a1) + (a2 + a3);
}

/* A fresh acc from n float64 values; base = position of v[0]. */
static void feed_f64(acc *a, const red *r, const double *v, int64_t n, int64_t base)
{
    memset(a, 0, sizeof *a);
    a->n = n;
    if (n == 0) return;
    double p = r->p;
    switch (r->op) {
    case ND_REDUCE_SUM: case ND_REDUCE_MEAN:
        a->s = sum4(v, n);
        break;
    case ND_REDUCE_PROD: {
        double q = 1;
        for (int64_t i = 0; i < n; i++) q *= v[i];
        a->s = q;
    } break;
    case ND_REDUCE_MAX: case ND_REDUCE_MIN: case ND_REDUCE_ARGMAX: case ND_REDUCE_ARGMIN: {
        int mx = is_max(r->op);
        int64_t bi = 0;
        double b = v[0];
        if (b != b) a->nan = 1;
        for (int64_t i = 1; i < n && !a->nan; i++) {
            double x = v[i];
            if (x != x) {
                b = x, bi = i, a->nan = 1;
            } else if (mx ? x > b : x < b) {
                b = x, bi = i;
            }
        }
        a->m = b;
        a->idx = base + bi;
    } break;
    case ND_REDUCE_VAR: case ND_REDUCE_STD: {
        double mean = sum4(v, n) / (double)n, m2 = 0;
        for (int64_t i = 0; i < n; i++) m2 += (v[i] - mean) * (v[i] - mean);
        a->m = mean;
        a->m2 = m2;
    } break;
    case ND_REDUCE_NORM: {
        double s = 0;
        if (p == 0) {
            for (int64_t i = 0; i < n; i++) s += v[i] != 0;
        } else if (isinf(p)) {
            double b = fabs(v[0]);
            for (int64_t i = 1; i < n; i++) {
                double x = fabs(v[i]);
                if (x != x || b != b) b = b != b ? b : x;
                else if (p > 0 ? x > b : x < b) b = x;
            }
            a->m = b;
        } else if (p == 1) {
            for (int64_t i = 0; i < n; i++) s += fabs(v[i]);
        } else if (p == 2) {
            for (int64_t i = 0; i < n; i++) s += v[i] * v[i];
        } else {
            for (int64_t i = 0; i < n; i++) s += pow(fabs(v[i]), p);
        }
        a->s = s;
    } break;
    case ND_REDUCE_LOGSUMEXP: {
        double mx = v[0];
        for (int64_t i = 0; i < n; i++) {
            if (v[i] != v[i]) a->nan = 1;
            else if (v[i] > mx || mx != mx) mx = v[i];
        }
        a->m = mx;
        if (a->nan || isinf(mx)) {
            a->s = mx > 0 ? 1 : 0;
        } else {
            double s = 0;
            for (int64_t i = 0; i < n; i++) s += exp(v[i] - mx);
            a->s = s;
        }
    } break;
    case ND_REDUCE_COUNT_NONZERO: case ND_REDUCE_ANY: case ND_REDUCE_ALL: {
        int64_t c = 0;
        for (int64_t i = 0; i < n; i++) c += v[i] != 0;
        a->is = r->op == ND_REDUCE_COUNT_NONZERO ? c : r->op == ND_REDUCE_ANY ? c > 0 : c == n;
    } break;
    default:
        break;
    }
}

static void feed_i64(acc *a, const red *r, const int64_t *v, int64_t n, int64_t base)
{
    memset(a, 0, sizeof *a);
    a->n = n;
    if (n == 0) return;
    switch (r->op) {
    case ND_REDUCE_SUM: case ND_REDUCE_MEAN: {
        int64_t s = 0;
        for (int64_t i = 0; i < n; i++) s = wadd(s, v[i]);
        a->is = s;
    } break;
    case ND_REDUCE_PROD: {
        int64_t q = 1;
        for (int64_t i = 0; i < n; i++) q = wmul(q, v[i]);
        a->is = q;
    } break;
    case ND_REDUCE_MAX: case ND_REDUCE_MIN: case ND_REDUCE_ARGMAX: case ND_REDUCE_ARGMIN: {
        int mx = is_max(r->op);
        int64_t bi = 0, b = v[0];
        for (int64_t i = 1; i < n; i++)
            if (mx ? v[i] > b : v[i] < b) b = v[i], bi = i;
        a->is = b;
        a->idx = base + bi;
    } break;
    case ND_REDUCE_COUNT_NONZERO: case ND_REDUCE_ANY: case ND_REDUCE_ALL: {
        int64_t c = 0;
        for (int64_t i = 0; i < n; i++) c += v[i] != 0;
        a->is = r->op == ND_REDUCE_COUNT_NONZERO ? c : r->op == ND_REDUCE_ANY ? c > 0 : c == n;
    } break;
    default:
        break;
    }
}

/* a = a followed by b. */
static void combine(acc *a, const acc *b, const red *r)
{
    if (b->n == 0) return;
    if (a->n == 0) {
        *a = *b;
        return;
    }
    switch (r->op) {
    case ND_REDUCE_SUM: case ND_REDUCE_MEAN:
        a->s += b->s;
        a->is = wadd(a->is, b->is);
        break;
    case ND_REDUCE_PROD:
        a->s *= b->s;
        a->is = wmul(a->is, b->is);
        break;
    case ND_REDUCE_MAX: case ND_REDUCE_MIN: case ND_REDUCE_ARGMAX: case ND_REDUCE_ARGMIN: {
        int mx = is_max(r->op), take;
        if (a->nan) take = 0;
        else if (b->nan) take = 1;
        else if (r->idom) take = mx ? b->is > a->is : b->is < a->is;
        else take = mx ? b->m > a->m : b->m < a->m;
        if (take) {
            a->m = b->m, a->is = b->is, a->idx = b->idx, a->nan = b->nan;
        }
    } break;
    case ND_REDUCE_VAR: case ND_REDUCE_STD: {
        double na = (double)a->n, nb = (double)b->n, n = na + nb, d = b->m - a->m;
        a->m += d * nb / n;
        a->m2 += b->m2 + d * d * na * nb / n;
    } break;
    case ND_REDUCE_NORM:
        if (isinf(r->p)) {
            if (a->m != a->m || b->m != b->m) a->m = a->m != a->m ? a->m : b->m;
            else if (r->p > 0 ? b->m > a->m : b->m < a->m) a->m = b->m;
        } else {
            a->s += b->s;
        }
        break;
    case ND_REDUCE_LOGSUMEXP: {
        a->nan |= b->nan;
        double M = a->m > b->m ? a->m : b->m;
        if (a->nan) break;
        if (isinf(M)) a->s = M > 0 ? 1 : 0;
        else a->s = a->s * exp(a->m - M) + b->s * exp(b->m - M);
        a->m = M;
    } break;
    case ND_REDUCE_COUNT_NONZERO:
        a->is += b->is;
        break;
    case ND_REDUCE_ANY:
        a->is = a->is || b->is;
        break;
    case ND_REDUCE_ALL:
        a->is = a->is && b->is;
        break;
    default:
        break;
    }
    a->n += b->n;
}

static void finalize(nd_scalar *out, const acc *a, const red *r)
{
    memset(out, 0, sizeof *out);
    double n = (double)a->n, f = 0;
    int is_int = 0;
    int64_t i = 0;
    switch (r->op) {
    case ND_REDUCE_SUM:
        if (r->idom) is_int = 1, i = a->is;
        else f = a->s;
        break;
    case ND_REDUCE_PROD:
        if (r->idom) is_int = 1, i = a->n ? a->is : 1;
        else f = a->n ? a->s : 1;
        break;
    case ND_REDUCE_MEAN:
        f = a->n == 0 ? NAN : (r->idom ? (double)a->is : a->s) / n;
        break;
    case ND_REDUCE_MAX: case ND_REDUCE_MIN:
        if (r->idom) is_int = 1, i = a->is;
        else f = a->m;
        break;
    case ND_REDUCE_ARGMAX: case ND_REDUCE_ARGMIN:
        is_int = 1, i = a->idx;
        break;
    case ND_REDUCE_VAR: case ND_REDUCE_STD: {
        double denom = n - (r->p != 0 ? 1 : 0);
        f = denom > 0 ? a->m2 / denom : NAN;
        if (r->op == ND_REDUCE_STD) f = sqrt(f);
    } break;
    case ND_REDUCE_NORM:
        if (a->n == 0) f = 0;
        else if (r->p == 0 || r->p == 1) f = a->s;
        else if (isinf(r->p)) f = a->m;
        else if (r->p == 2) f = sqrt(a->s);
        else f = pow(a->s, 1 / r->p);
        break;
    case ND_REDUCE_LOGSUMEXP:
        if (a->nan) f = NAN;
        else if (a->n == 0) f = -INFINITY;
        else if (isinf(a->m)) f = a->m;
        else f = a->m + log(a->s);
        break;
    case ND_REDUCE_COUNT_NONZERO:
        is_int = 1, i = a->is;
        break;
    case ND_REDUCE_ANY:
        is_int = 1, i = a->n ? a->is : 0;
        break;
    case ND_REDUCE_ALL:
        is_int = 1, i = a->n ? a->is : 1;
        break;
    default:
        break;
    }
    out->is_int = is_int;
    out->i = i;
    out->f = is_int ? (double)i : f;
    out->index = a->idx;
}

/* The acc of `count` elements starting at p, `stride` elements apart; base = index of the first. */
static void reduce_segment(acc *out, const red *r, const char *p, int64_t stride, int64_t count, int64_t base)
{
    int64_t es = (int64_t)nd_dtype_size(r->xdt);
    memset(out, 0, sizeof *out);
    for (int64_t off = 0; off < count; off += CHUNK) {
        int64_t m = count - off < CHUNK ? count - off : CHUNK;
        const char *q = p + off * stride * es;
        acc part;
        if (r->idom) {
            int64_t buf[CHUNK];
            const int64_t *v = buf;
            if (r->xdt == ND_DTYPE_I64 && stride == 1) v = (const int64_t *)q;
            else nd_math_load_i64(buf, q, stride, r->xdt, m);
            feed_i64(&part, r, v, m, base + off);
        } else {
            double buf[CHUNK];
            const double *v = buf;
            if (r->xdt == ND_DTYPE_F64 && stride == 1) v = (const double *)q;
            else nd_math_load_f64(buf, q, stride, r->xdt, m);
            feed_f64(&part, r, v, m, base + off);
        }
        combine(out, &part, r);
    }
}

static void store_scalar(char *p, nd_dtype dt, const nd_scalar *v)
{
    if (v->is_int) nd_math_store_i64(p, 1, dt, &v->i, 1);
    else nd_math_store_f64(p, 1, dt, &v->f, 1);
}

/* ---- whole tensor ---- */

typedef struct all_ctx {
    red r;
    acc *parts;
} all_ctx;

static void all_run(void *vc, int64_t range, int64_t flat, char *const *p, const int64_t *s, int64_t n)
{
    all_ctx *c = (all_ctx *)vc;
    acc seg;
    reduce_segment(&seg, &c->r, p[0], s[0], n, flat);
    combine(&c->parts[range], &seg, &c->r);
}

static nd_status check_op(nd_reduce_op op)
{
    if ((unsigned)op >= ND_REDUCE_COUNT) return ND_ERROR(ND_ERR_ARG, "reduce: unknown op %d", (int)op);
    return ND_OK;
}

static nd_status check_x(const char *name, const nd_tensor *x)
{
    ND_TRY(nd_math_check_cpu(name, "the input", x));
    if ((unsigned)x->dtype >= ND_DTYPE_COUNT) return ND_ERROR(ND_ERR_DTYPE, "%s: invalid dtype", name);
    return ND_OK;
}

nd_status nd_reduce_all_cpu(nd_scalar *out, const nd_tensor *x, nd_reduce_op op, double p)
{
    ND_TRY(check_op(op));
    const char *name = reduce_names[op];
    ND_TRY(check_x(name, x));
    int64_t numel = nd_tensor_numel(x);
    if (numel == 0 && is_extreme(op)) return ND_ERROR(ND_ERR_SHAPE, "%s: the tensor is empty", name);
    all_ctx c = {.r = {op, p, int_domain(op, x->dtype), x->dtype}};
    int64_t nr = numel == 0 ? 1 : (numel + ALL_RANGE - 1) / ALL_RANGE;
    acc stack_parts[8];
    c.parts = nr <= 8 ? stack_parts : (acc *)malloc((size_t)nr * sizeof(acc));
    if (!c.parts) return ND_ERROR(ND_ERR_MEMORY, "%s: out of memory for %lld partial results", name, (long long)nr);
    memset(c.parts, 0, (size_t)nr * sizeof(acc));
    const nd_tensor *ops[1] = {x};
    int par = numel >= ND_MATH_PARALLEL_MIN && omp_get_max_threads() > 1;
    nd_math_foreach(1, ops, ALL_RANGE, par ? ND_MATH_PARALLEL : 0, all_run, &c);
    for (int64_t k = 1; k < nr; k++) combine(&c.parts[0], &c.parts[k], &c.r);
    finalize(out, &c.parts[0], &c.r);
    if (c.parts != stack_parts) free(c.parts);
    return ND_OK;
}

/* ---- along a dim ---- */

typedef struct dim_ctx {
    red r;
    int64_t len, lstride; /* the reduced dim: length and element stride in x */
    int vi, ii;           /* operand slots of values / indices, -1 when absent */
    nd_dtype vdt;
} dim_ctx;

/* Ops with a column path: reductions of n lines that start at consecutive elements (sum(1) of a
 * row-major matrix) walk the rows once (twice for var) and update all columns of a chunk. */
static int column_op(nd_reduce_op op)
{
    return op == ND_REDUCE_SUM || op == ND_REDUCE_MEAN || op == ND_REDUCE_VAR || op == ND_REDUCE_STD ||
           is_extreme(op);
}

static void column_reduce(const dim_ctx *c, char *const *p, const int64_t *s, int64_t n)
{
    nd_reduce_op op = c->r.op;
    int64_t xes = (int64_t)nd_dtype_size(c->r.xdt), ves = (int64_t)nd_dtype_size(c->vdt), L = c->len;
    int ext = is_extreme(op), mx = is_max(op);
    for (int64_t j0 = 0; j0 < n; j0 += CHUNK) {
        int64_t m = n - j0 < CHUNK ? n - j0 : CHUNK;
        double acc[CHUNK], row[CHUNK], mean[CHUNK];
        int64_t idx[CHUNK];
        const char *x0 = p[0] + j0 * xes;
        for (int64_t j = 0; j < m; j++) acc[j] = 0, idx[j] = 0;
        if (ext) nd_math_load_f64(acc, x0, 1, c->r.xdt, m);
        for (int64_t k = ext ? 1 : 0; k < L; k++) {
            nd_math_load_f64(row, x0 + k * c->lstride * xes, 1, c->r.xdt, m);
            if (!ext) {
                for (int64_t j = 0; j < m; j++) acc[j] += row[j];
                continue;
            }
            for (int64_t j = 0; j < m; j++) {
                double v = row[j], b = acc[j];
                if (b != b) continue; /* the first NaN stays */
                if (v != v || (mx ? v > b : v < b)) acc[j] = v, idx[j] = k;
            }
        }
        if (op == ND_REDUCE_MEAN || op == ND_REDUCE_VAR || op == ND_REDUCE_STD)
            for (int64_t j = 0; j < m; j++) acc[j] = L ? acc[j] / (double)L : NAN;
        if (op == ND_REDUCE_VAR || op == ND_REDUCE_STD) {
            for (int64_t j = 0; j < m; j++) mean[j] = acc[j], acc[j] = 0;
            for (int64_t k = 0; k < L; k++) {
                nd_math_load_f64(row, x0 + k * c->lstride * xes, 1, c->r.xdt, m);
                for (int64_t j = 0; j < m; j++) acc[j] += (row[j] - mean[j]) * (row[j] - mean[j]);
            }
            double denom = (double)L - (c->r.p != 0 ? 1 : 0);
            for (int64_t j = 0; j < m; j++) {
                acc[j] = denom > 0 ? acc[j] / denom : NAN;
                if (op == ND_REDUCE_STD) acc[j] = sqrt(acc[j]);
            }
        }
        if (c->vi >= 0) nd_math_store_f64(p[c->vi] + j0 * s[c->vi] * ves, s[c->vi], c->vdt, acc, m);
        if (c->ii >= 0)
            for (int64_t j = 0; j < m; j++) ((int64_t *)p[c->ii])[(j0 + j) * s[c->ii]] = idx[j];
    }
}

static void dim_run(void *vc, int64_t range, int64_t flat, char *const *p, const int64_t *s, int64_t n)
{
    (void)range;
    (void)flat;
    const dim_ctx *c = (const dim_ctx *)vc;
    if (column_op(c->r.op) && nd_dtype_is_float(c->r.xdt) && s[0] == 1 && c->lstride != 1 && n > 1 && c->len > 0) {
        column_reduce(c, p, s, n);
        return;
    }
    int64_t xes = (int64_t)nd_dtype_size(c->r.xdt), ves = (int64_t)nd_dtype_size(c->vdt);
    for (int64_t j = 0; j < n; j++) {
        acc a;
        nd_scalar v;
        reduce_segment(&a, &c->r, p[0] + j * s[0] * xes, c->lstride, c->len, 0);
        finalize(&v, &a, &c->r);
        if (c->vi >= 0) store_scalar(p[c->vi] + j * s[c->vi] * ves, c->vdt, &v);
        if (c->ii >= 0) ((int64_t *)p[c->ii])[j * s[c->ii]] = v.index;
    }
}

/* Checks dim and gives x's shape with size[dim] = 1. */
static nd_status reduced_shape(const char *name, const nd_tensor *x, int dim, int64_t *size)
{
    char s1[ND_SHAPE_STR_MAX];
    if (x->ndim == 0) return ND_ERROR(ND_ERR_SHAPE, "%s: cannot reduce along a dimension of an empty tensor", name);
    if (dim < 0 || dim >= x->ndim)
        return ND_ERROR(ND_ERR_INDEX, "%s: dimension %d out of range for a %d-d tensor (%s)", name, dim + 1, x->ndim,
                        nd_tensor_shape_str(x, s1, sizeof s1));
    for (int d = 0; d < x->ndim; d++) size[d] = d == dim ? 1 : x->size[d];
    return ND_OK;
}

nd_status nd_reduce_cpu(nd_tensor *values, nd_tensor *indices, const nd_tensor *x, int dim, nd_reduce_op op,
                        double p)
{
    ND_TRY(check_op(op));
    const char *name = reduce_names[op];
    char s1[ND_SHAPE_STR_MAX];
    ND_TRY(check_x(name, x));
    int64_t size[ND_MAX_DIMS];
    ND_TRY(reduced_shape(name, x, dim, size));
    int arg = op == ND_REDUCE_ARGMAX || op == ND_REDUCE_ARGMIN;
    if (!arg) indices = is_extreme(op) ? indices : NULL;
    if (arg && !indices) return ND_ERROR(ND_ERR_ARG, "%s: needs an indices tensor", name);
    if (!arg && !values) return ND_ERROR(ND_ERR_ARG, "%s: needs a values tensor", name);
    if (is_extreme(op) && x->size[dim] == 0)
        return ND_ERROR(ND_ERR_SHAPE, "%s: dimension %d of %s has size 0", name, dim + 1,
                        nd_tensor_shape_str(x, s1, sizeof s1));
    if (values) ND_TRY(nd_math_prepare_out(name, values, x->ndim, size));
    if (indices) {
        if (!indices->storage) indices->dtype = ND_DTYPE_I64;
        if (indices->dtype != ND_DTYPE_I64)
            return ND_ERROR(ND_ERR_DTYPE, "%s: indices must be int64, got %s", name, nd_dtype_name(indices->dtype));
        ND_TRY(nd_math_prepare_out(name, indices, x->ndim, size));
    }
    dim_ctx c = {.r = {op, p, int_domain(op, x->dtype), x->dtype},
                 .len = x->size[dim],
                 .lstride = x->stride[dim],
                 .vi = -1,
                 .ii = -1,
                 .vdt = values ? values->dtype : ND_DTYPE_F64};
    nd_tensor xn = *x; /* borrowed: the first element of every line */
    xn.size[dim] = 1;
    const nd_tensor *ops[3] = {&xn};
    int n = 1;
    if (values) c.vi = n, ops[n++] = values;
    if (indices) c.ii = n, ops[n++] = indices;
    int64_t lines = nd_tensor_numel(&xn);
    if (lines == 1 && c.len >= ND_MATH_PARALLEL_MIN) { /* one long line: the whole-tensor path is parallel */
        nd_scalar v;
        ND_TRY(nd_reduce_all_cpu(&v, x, op, p));
        if (values) store_scalar((char *)nd_tensor_data(values), values->dtype, &v);
        if (indices) *(int64_t *)nd_tensor_data(indices) = v.index;
        return ND_OK;
    }
    int64_t rl = nd_math_range_len(lines, c.len);
    nd_math_foreach(n, ops, rl, ND_MATH_PARALLEL | ND_MATH_UNORDERED, dim_run, &c);
    return ND_OK;
}

/* ---- cumulative ---- */

typedef struct cum_ctx {
    nd_cumulate_op op;
    int idom;
    int64_t len, xs, os; /* line length and element strides along dim */
    nd_dtype xdt, odt;
} cum_ctx;

static void cum_run(void *vc, int64_t range, int64_t flat, char *const *p, const int64_t *s, int64_t n)
{
    (void)range;
    (void)flat;
    const cum_ctx *c = (const cum_ctx *)vc;
    int64_t oes = (int64_t)nd_dtype_size(c->odt), xes = (int64_t)nd_dtype_size(c->xdt);
    int sum = c->op == ND_CUMULATE_SUM;
    for (int64_t j = 0; j < n; j++) {
        char *o = p[0] + j * s[0] * oes;
        const char *x = p[1] + j * s[1] * xes;
        double fa = sum ? 0 : 1;
        int64_t ia = sum ? 0 : 1;
        for (int64_t off = 0; off < c->len; off += CHUNK) {
            int64_t m = c->len - off < CHUNK ? c->len - off : CHUNK;
            if (c->idom) {
                int64_t buf[CHUNK];
                nd_math_load_i64(buf, x + off * c->xs * xes, c->xs, c->xdt, m);
                for (int64_t k = 0; k < m; k++) buf[k] = ia = sum ? wadd(ia, buf[k]) : wmul(ia, buf[k]);
                nd_math_store_i64(o + off * c->os * oes, c->os, c->odt, buf, m);
            } else {
                double buf[CHUNK];
                nd_math_load_f64(buf, x + off * c->xs * xes, c->xs, c->xdt, m);
                for (int64_t k = 0; k < m; k++) buf[k] = fa = sum ? fa + buf[k] : fa * buf[k];
                nd_math_store_f64(o + off * c->os * oes, c->os, c->odt, buf, m);
            }
        }
    }
}

nd_status nd_cumulate_cpu(nd_tensor *out, const nd_tensor *x, int dim, nd_cumulate_op op)
{
    if ((unsigned)op >= ND_CUMULATE_COUNT) return ND_ERROR(ND_ERR_ARG, "cumulate: unknown op %d", (int)op);
    const char *name = cumulate_names[op];
    ND_TRY(check_x(name, x));
    int64_t size[ND_MAX_DIMS];
    ND_TRY(reduced_shape(name, x, dim, size));
    ND_TRY(nd_math_prepare_out(name, out, x->ndim, x->size));
    cum_ctx c = {.op = op,
                 .idom = !nd_dtype_is_float(x->dtype) && !nd_dtype_is_float(out->dtype),
                 .len = x->size[dim],
                 .xs = x->stride[dim],
                 .os = out->stride[dim],
                 .xdt = x->dtype,
                 .odt = out->dtype};
    nd_tensor xn = *x, on = *out; /* borrowed views of the first element of every line */
    xn.size[dim] = 1;
    on.size[dim] = 1;
    const nd_tensor *ops[2] = {&on, &xn};
    int64_t lines = nd_tensor_numel(&xn);
    int64_t rl = nd_math_range_len(lines, c.len);
    nd_math_foreach(2, ops, rl, ND_MATH_PARALLEL | ND_MATH_UNORDERED, cum_run, &c);
    return ND_OK;
}
