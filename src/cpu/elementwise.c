/* Elementwise maps (unary, binary, ternary) and fill on the CPU; see nd_cpu_math.h for the rules.
 *
 * Each op is written once as an expression over a value type T_ in three lists:
 * the float list (instantiated for float and double through <tgmath.h>, so exp() is expf() on
 * floats) and the int64 list (wrapping arithmetic, division by zero flagged).
 * Paths: operands all float32 (or all float64) run the typed loop on the tensors' memory;
 * all-int64 operands run the int64 loop in place; any other mix is converted in chunks of
 * CHUNK elements into float64 or int64 buffers, computed there and converted back. */
#include <limits.h>
#include <stdlib.h>
#include <omp.h>
#include <stdatomic.h>
#include <string.h>
#include <tgmath.h>

#include "nd_cpu_math.h"

#define CHUNK 256

/* ---- shared helpers ---- */

int64_t nd_math_f2i(double v)
{
    if (v != v) return 0;
    if (v >= 9223372036854775807.0) return INT64_MAX;
    if (v <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)v;
}

void nd_math_load_f64(double *dst, const char *p, int64_t s, nd_dtype dt, int64_t n)
{
    switch (dt) {
#define LOAD(T, E)                                                                                                     \
    case E: {                                                                                                          \
        const T *q = (const T *)p;                                                                                     \
        if (s == 1)                                                                                                    \
            for (int64_t i = 0; i < n; i++) dst[i] = (double)q[i];                                                     \
        else                                                                                                           \
            for (int64_t i = 0; i < n; i++) dst[i] = (double)q[i * s];                                                 \
    } break;
        ND_FOREACH_DTYPE(LOAD)
#undef LOAD
    default:
        break;
    }
}

void nd_math_load_i64(int64_t *dst, const char *p, int64_t s, nd_dtype dt, int64_t n)
{
    switch (dt) {
    case ND_DTYPE_F32:
        for (int64_t i = 0; i < n; i++) dst[i] = nd_math_f2i(((const float *)p)[i * s]);
        break;
    case ND_DTYPE_F64:
        for (int64_t i = 0; i < n; i++) dst[i] = nd_math_f2i(((const double *)p)[i * s]);
        break;
    case ND_DTYPE_I64:
        for (int64_t i = 0; i < n; i++) dst[i] = ((const int64_t *)p)[i * s];
        break;
    case ND_DTYPE_U8:
        for (int64_t i = 0; i < n; i++) dst[i] = ((const uint8_t *)p)[i * s];
        break;
    default:
        break;
    }
}

void nd_math_store_f64(char *p, int64_t s, nd_dtype dt, const double *src, int64_t n)
{
    switch (dt) {
    case ND_DTYPE_F32:
        for (int64_t i = 0; i < n; i++) ((float *)p)[i * s] = (float)src[i];
        break;
    case ND_DTYPE_F64:
        for (int64_t i = 0; i < n; i++) ((double *)p)[i * s] = src[i];
        break;
    case ND_DTYPE_I64:
        for (int64_t i = 0; i < n; i++) ((int64_t *)p)[i * s] = nd_math_f2i(src[i]);
        break;
    case ND_DTYPE_U8:
        for (int64_t i = 0; i < n; i++) ((uint8_t *)p)[i * s] = (uint8_t)(uint64_t)nd_math_f2i(src[i]);
        break;
    default:
        break;
    }
}

void nd_math_store_i64(char *p, int64_t s, nd_dtype dt, const int64_t *src, int64_t n)
{
    switch (dt) {
    case ND_DTYPE_F32:
        for (int64_t i = 0; i < n; i++) ((float *)p)[i * s] = (float)src[i];
        break;
    case ND_DTYPE_F64:
        for (int64_t i = 0; i < n; i++) ((double *)p)[i * s] = (double)src[i];
        break;
    case ND_DTYPE_I64:
        for (int64_t i = 0; i < n; i++) ((int64_t *)p)[i * s] = src[i];
        break;
    case ND_DTYPE_U8:
        for (int64_t i = 0; i < n; i++) ((uint8_t *)p)[i * s] = (uint8_t)(uint64_t)src[i];
        break;
    default:
        break;
    }
}

nd_status nd_math_check_cpu(const char *op, const char *what, const nd_tensor *t)
{
    if (nd_tensor_device(t).type != ND_DEVICE_CPU)
        return ND_ERROR(ND_ERR_DEVICE, "%s: %s is a GPU tensor; this kernel runs on the CPU", op, what);
    return ND_OK;
}

nd_status nd_math_prepare_out(const char *op, nd_tensor *out, int ndim, const int64_t *size)
{
    char s1[ND_SHAPE_STR_MAX], s2[ND_SHAPE_STR_MAX];
    if (!out->storage) {
        if (ndim == 0) return ND_OK; /* empty result: out stays empty */
        return nd_tensor_new(out, out->dtype, ndim, size, nd_cpu_device(), 0);
    }
    ND_TRY(nd_math_check_cpu(op, "the result", out));
    nd_tensor want;
    nd_tensor_init_empty(&want, out->dtype);
    want.ndim = ndim;
    for (int d = 0; d < ndim; d++) want.size[d] = size[d];
    if (!nd_tensor_same_shape(out, &want))
        return ND_ERROR(ND_ERR_SHAPE, "%s: the result has size %s, expected %s", op,
                        nd_tensor_shape_str(out, s1, sizeof s1), nd_tensor_shape_str(&want, s2, sizeof s2));
    for (int d = 0; d < out->ndim; d++)
        if (out->stride[d] == 0 && out->size[d] > 1)
            return ND_ERROR(ND_ERR_ARG, "%s: the result (%s) is an expanded view (stride 0 in dimension %d)", op,
                            nd_tensor_shape_str(out, s1, sizeof s1), d + 1);
    return ND_OK;
}

int64_t nd_math_range_len(int64_t numel, int64_t cost)
{
    int nt = omp_get_max_threads();
    if (numel <= 1 || nt <= 1 || omp_in_parallel() || numel * (cost < 1 ? 1 : cost) < ND_MATH_PARALLEL_MIN)
        return numel < 1 ? 1 : numel;
    return (numel + nt - 1) / nt;
}

/* Calls f on the runs covering row-major positions [start, start + count). */
static void walk_range(const nd_iter *it, int64_t range, int64_t start, int64_t count, nd_math_run_fn f, void *ctx)
{
    int nd = it->ndim;
    int64_t inner = it->size[nd - 1];
    int64_t o = start / inner, off = start % inner, idx[ND_MAX_DIMS];
    for (int d = nd - 2; d >= 0; d--) {
        idx[d] = o % it->size[d];
        o /= it->size[d];
    }
    while (count > 0) {
        char *p[ND_ITER_MAX];
        for (int k = 0; k < it->n; k++) {
            char *q = it->base[k] + off * it->bstride[k][nd - 1];
            for (int d = 0; d < nd - 1; d++) q += idx[d] * it->bstride[k][d];
            p[k] = q;
        }
        int64_t len = inner - off < count ? inner - off : count;
        f(ctx, range, start, p, it->istride, len);
        count -= len;
        start += len;
        off = 0;
        for (int d = nd - 2; d >= 0; d--) {
            if (++idx[d] < it->size[d]) break;
            idx[d] = 0;
        }
    }
}

/* Tiles of the last two dims (rows x cols) for operands with a large inner stride. */
#ifndef TILE_R
#define TILE_R 16
#define TILE_C 64
#endif

static int want_tiles(const nd_iter *it)
{
    int nd = it->ndim;
    if (nd < 2) return 0;
    for (int k = 0; k < it->n; k++) {
        int64_t in = llabs(it->bstride[k][nd - 1]), out = llabs(it->bstride[k][nd - 2]);
        if (in > 64 && out < in) return 1;
    }
    return 0;
}

/* Tile `unit` (row-major over outer index, tile row, tile col): one run per row of the tile. */
static void walk_tile(const nd_iter *it, int64_t unit, int64_t ntr, int64_t ntc, nd_math_run_fn f, void *ctx)
{
    int nd = it->ndim;
    int64_t R = it->size[nd - 2], C = it->size[nd - 1];
    int64_t tc = unit % ntc, tr = (unit / ntc) % ntr, o = unit / ntc / ntr, rem = o;
    char *b[ND_ITER_MAX];
    for (int k = 0; k < it->n; k++) b[k] = it->base[k];
    for (int d = nd - 3; d >= 0; d--) {
        int64_t i = rem % it->size[d];
        rem /= it->size[d];
        for (int k = 0; k < it->n; k++) b[k] += i * it->bstride[k][d];
    }
    int64_t r0 = tr * TILE_R, r1 = r0 + TILE_R < R ? r0 + TILE_R : R, c0 = tc * TILE_C;
    int64_t len = C - c0 < TILE_C ? C - c0 : TILE_C;
    for (int64_t r = r0; r < r1; r++) {
        char *p[ND_ITER_MAX];
        for (int k = 0; k < it->n; k++) p[k] = b[k] + r * it->bstride[k][nd - 2] + c0 * it->bstride[k][nd - 1];
        f(ctx, unit, (o * R + r) * C + c0, p, it->istride, len);
    }
}

void nd_math_foreach(int n, const nd_tensor *const *t, int64_t range_len, int flags, nd_math_run_fn f, void *ctx)
{
    nd_iter it;
    nd_iter_init(&it, n, t);
    if (it.done) return;
    int64_t numel = nd_tensor_numel(t[0]);
    if (range_len < 1) range_len = numel;
    int64_t nr = (numel + range_len - 1) / range_len;
    int par = (flags & ND_MATH_PARALLEL) && nr > 1 && !omp_in_parallel();
    if ((flags & ND_MATH_UNORDERED) && want_tiles(&it)) {
        int64_t R = it.size[it.ndim - 2], C = it.size[it.ndim - 1];
        int64_t ntr = (R + TILE_R - 1) / TILE_R, ntc = (C + TILE_C - 1) / TILE_C;
        int64_t units = numel / (R * C) * ntr * ntc;
#pragma omp parallel for schedule(static) if (par)
        for (int64_t u = 0; u < units; u++) walk_tile(&it, u, ntr, ntc, f, ctx);
        return;
    }
    if (!par) {
        for (int64_t r = 0; r < nr; r++) {
            int64_t s = r * range_len;
            walk_range(&it, r, s, numel - s < range_len ? numel - s : range_len, f, ctx);
        }
        return;
    }
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < nr; r++) {
        int64_t s = r * range_len;
        walk_range(&it, r, s, numel - s < range_len ? numel - s : range_len, f, ctx);
    }
}

/* ---- scalar helpers for the int64 lists: wrapping arithmetic, flagged division by zero ---- */

static inline int64_t wadd(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
static inline int64_t wsub(int64_t a, int64_t b) { return (int64_t)((uint64_t)a - (uint64_t)b); }
static inline int64_t wmul(int64_t a, int64_t b) { return (int64_t)((uint64_t)a * (uint64_t)b); }
static inline int64_t idiv(int64_t a, int64_t b, int *err)
{
    if (b == 0) {
        *err = 1;
        return 0;
    }
    if (b == -1) return wsub(0, a); /* INT64_MIN / -1 wraps instead of trapping */
    return a / b;
}
static inline int64_t ifmod(int64_t a, int64_t b, int *err)
{
    if (b == 0) {
        *err = 1;
        return 0;
    }
    if (b == -1) return 0;
    return a % b;
}
static inline int64_t irem(int64_t a, int64_t b, int *err)
{
    int64_t r = ifmod(a, b, err);
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
static inline int64_t ifloordiv(int64_t a, int64_t b, int *err)
{
    int64_t q = idiv(a, b, err), r = ifmod(a, b, err);
    return (r != 0 && ((r < 0) != (b < 0))) ? q - 1 : q;
}
/* b ^ e; a negative e truncates the fraction (0 unless |b| == 1); 0 ^ negative is an error. */
static inline int64_t ipow(int64_t b, int64_t e, int *err)
{
    if (e < 0) {
        if (b == 1) return 1;
        if (b == -1) return (e & 1) ? -1 : 1;
        if (b == 0) *err = 1;
        return 0;
    }
    int64_t r = 1;
    while (e) {
        if (e & 1) r = wmul(r, b);
        b = wmul(b, b);
        e >>= 1;
    }
    return r;
}
static inline float remf_(float a, float b)
{
    float r = fmodf(a, b);
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
static inline double remd_(double a, double b)
{
    double r = fmod(a, b);
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
#define REM(a, b) _Generic((a), float: remf_, default: remd_)((a), (b))
#define MAXN(a, b) (((a) > (b) || (a) != (a)) ? (a) : (b)) /* NaN in a or b propagates */
#define MINN(a, b) (((a) < (b) || (a) != (a)) ? (a) : (b))

/* ---- names ---- */

static const char *const unary_names[ND_UNARY_COUNT] = {
    "neg", "abs", "sign", "relu", "square", "floor", "ceil", "round", "trunc", "frac", "sqrt", "rsqrt", "exp",
    "log", "log1p", "expm1", "log2", "log10", "tanh", "sigmoid", "sin", "cos", "tan", "asin", "acos", "atan",
    "sinh", "cosh", "erf", "reciprocal", "clamp", "pow", "rpow", "add", "rsub", "mul", "div", "rdiv", "floordiv",
    "fmod", "remainder", "max", "min", "eq", "ne", "lt", "le", "gt", "ge"};
static const char *const binary_names[ND_BINARY_COUNT] = {
    "add", "sub", "mul", "div", "floordiv", "pow", "max", "min", "fmod", "remainder", "atan2", "lerp",
    "eq", "ne", "lt", "le", "gt", "ge", "and", "or", "xor"};
static const char *const ternary_names[ND_TERNARY_COUNT] = {"addcmul", "addcdiv", "lerp", "where"};

const char *nd_unary_name(nd_unary_op op) { return (unsigned)op < ND_UNARY_COUNT ? unary_names[op] : "?"; }
const char *nd_binary_name(nd_binary_op op) { return (unsigned)op < ND_BINARY_COUNT ? binary_names[op] : "?"; }
const char *nd_ternary_name(nd_ternary_op op) { return (unsigned)op < ND_TERNARY_COUNT ? ternary_names[op] : "?"; }

/* ---- unary ---- */

#define UNARY_FLOAT_OPS(X)                                                                                             \
    X(NEG, -v) X(ABS, fabs(v)) X(SIGN, (v > 0 ? (T_)1 : v < 0 ? (T_)-1 : v)) X(RELU, (v < 0 ? (T_)0 : v))              \
    X(SQUARE, v *v) X(FLOOR, floor(v)) X(CEIL, ceil(v)) X(ROUND, round(v)) X(TRUNC, trunc(v))                          \
    X(FRAC, v - trunc(v)) X(SQRT, sqrt(v)) X(RSQRT, 1 / sqrt(v)) X(EXP, exp(v)) X(LOG, log(v))                         \
    X(LOG1P, log1p(v)) X(EXPM1, expm1(v)) X(LOG2, log2(v)) X(LOG10, log10(v)) X(TANH, tanh(v))                         \
    X(SIGMOID, 1 / (1 + exp(-v))) X(SIN, sin(v)) X(COS, cos(v)) X(TAN, tan(v)) X(ASIN, asin(v)) X(ACOS, acos(v))     \
    X(ATAN, atan(v)) X(SINH, sinh(v)) X(COSH, cosh(v)) X(ERF, erf(v)) X(RECIPROCAL, 1 / v)                             \
    X(CLAMP, (v < p1 ? p1 : v > p2 ? p2 : v)) X(POW, pow(v, p1)) X(RPOW, pow(p1, v)) X(ADD, v + p1)                    \
    X(RSUB, p1 - v) X(MUL, v *p1) X(DIV, v / p1) X(RDIV, p1 / v) X(FLOORDIV, floor(v / p1)) X(FMOD, fmod(v, p1))     \
    X(REMAINDER, REM(v, p1)) X(MAX, MAXN(v, p1)) X(MIN, MINN(v, p1)) X(EQ, (T_)(v == p1)) X(NE, (T_)(v != p1))       \
    X(LT, (T_)(v < p1)) X(LE, (T_)(v <= p1)) X(GT, (T_)(v > p1)) X(GE, (T_)(v >= p1))

#define UNARY_INT_OPS(X)                                                                                               \
    X(NEG, wsub(0, v)) X(ABS, (v < 0 ? wsub(0, v) : v)) X(SIGN, (T_)((v > 0) - (v < 0))) X(RELU, (v < 0 ? 0 : v))     \
    X(SQUARE, wmul(v, v)) X(FLOOR, v) X(CEIL, v) X(ROUND, v) X(TRUNC, v) X(FRAC, wsub(v, v)) X(CLAMP, (v < p1 ? p1 : v > p2 ? p2 : v)) \
    X(POW, ipow(v, p1, &err)) X(RPOW, ipow(p1, v, &err)) X(ADD, wadd(v, p1)) X(RSUB, wsub(p1, v))                      \
    X(MUL, wmul(v, p1)) X(DIV, idiv(v, p1, &err)) X(RDIV, idiv(p1, v, &err)) X(FLOORDIV, ifloordiv(v, p1, &err))     \
    X(FMOD, ifmod(v, p1, &err)) X(REMAINDER, irem(v, p1, &err)) X(MAX, (v > p1 ? v : p1)) X(MIN, (v < p1 ? v : p1))   \
    X(EQ, v == p1) X(NE, v != p1) X(LT, v < p1) X(LE, v <= p1) X(GT, v > p1) X(GE, v >= p1)

/* The loop for one expression; a unit-stride copy of it lets the compiler vectorize. */
#define UMAP(EXPR)                                                                                                     \
    if (os == 1 && xs == 1)                                                                                            \
        for (int64_t i = 0; i < n; i++) {                                                                              \
            T_ v = x[i];                                                                                               \
            o[i] = (EXPR);                                                                                             \
        }                                                                                                              \
    else                                                                                                               \
        for (int64_t i = 0; i < n; i++) {                                                                              \
            T_ v = x[i * xs];                                                                                          \
            o[i * os] = (EXPR);                                                                                        \
        }
#define UCASE(OP, EXPR)                                                                                                \
    case ND_UNARY_##OP:                                                                                                \
        UMAP(EXPR) break;

#define DEFINE_UNARY_FLOAT(NAME, T)                                                                                    \
    static void NAME(nd_unary_op op, T *o, int64_t os, const T *x, int64_t xs, int64_t n, T p1, T p2)                 \
    {                                                                                                                  \
        typedef T T_;                                                                                                  \
        switch (op) {                                                                                                  \
            UNARY_FLOAT_OPS(UCASE)                                                                                     \
        default:                                                                                                       \
            break;                                                                                                     \
        }                                                                                                              \
    }
DEFINE_UNARY_FLOAT(unary_f32, float)
DEFINE_UNARY_FLOAT(unary_f64, double)

/* Returns 1 on an integer division by zero. */
static int unary_i64(nd_unary_op op, int64_t *o, int64_t os, const int64_t *x, int64_t xs, int64_t n, int64_t p1,
                     int64_t p2)
{
    typedef int64_t T_;
    int err = 0;
    switch (op) {
        UNARY_INT_OPS(UCASE)
    default:
        break;
    }
    return err;
}

/* Comparisons of float32/float64 operands into uint8 masks, without the conversion buffers.
 * cmp: 0..5 for eq ne lt le gt ge; y == NULL compares with the scalar p. */
#define CMP_LOOP(OPR, YV)                                                                                              \
    if (os == 1 && xs == 1 && ys == 1)                                                                                 \
        for (int64_t i = 0; i < n; i++) o[i] = (uint8_t)(x[i] OPR YV(i));                                             \
    else                                                                                                               \
        for (int64_t i = 0; i < n; i++) o[i * os] = (uint8_t)(x[i * xs] OPR YV(i * ys));
#define CMP_SWITCH(YV)                                                                                                 \
    switch (cmp) {                                                                                                     \
    case 0: CMP_LOOP(==, YV) break;                                                                                    \
    case 1: CMP_LOOP(!=, YV) break;                                                                                    \
    case 2: CMP_LOOP(<, YV) break;                                                                                     \
    case 3: CMP_LOOP(<=, YV) break;                                                                                    \
    case 4: CMP_LOOP(>, YV) break;                                                                                     \
    default: CMP_LOOP(>=, YV) break;                                                                                   \
    }
#define Y_AT(i) y[i]
#define P_AT(i) p
#define DEFINE_CMP_U8(NAME, T)                                                                                         \
    static void NAME(int cmp, uint8_t *o, int64_t os, const T *x, int64_t xs, const T *y, int64_t ys, int64_t n, T p) \
    {                                                                                                                  \
        if (y) {                                                                                                       \
            CMP_SWITCH(Y_AT)                                                                                           \
        } else {                                                                                                       \
            ys = 1;                                                                                                    \
            CMP_SWITCH(P_AT)                                                                                           \
        }                                                                                                              \
    }
DEFINE_CMP_U8(cmp_u8_f32, float)
DEFINE_CMP_U8(cmp_u8_f64, double)

static int unary_float_only(nd_unary_op op) { return op >= ND_UNARY_SQRT && op <= ND_UNARY_RECIPROCAL; }
static int unary_uses_p1(nd_unary_op op) { return op >= ND_UNARY_CLAMP; }
static int is_integral(double v) { return v == v && v == trunc(v) && fabs(v) < 9.2e18; }

/* Cheaper equivalents of pow with common exponents (float domain only). */
static nd_unary_op unary_simplify(nd_unary_op op, double *p1)
{
    if (op != ND_UNARY_POW) return op;
    if (*p1 == 2) return ND_UNARY_SQUARE;
    if (*p1 == 0.5) return ND_UNARY_SQRT;
    if (*p1 == -0.5) return ND_UNARY_RSQRT;
    if (*p1 == -1) return ND_UNARY_RECIPROCAL;
    if (*p1 == 1) {
        *p1 = 1;
        return ND_UNARY_MUL;
    }
    return op;
}

/* v rounded to float precision. Through a volatile: GCC 12's SLP vectorizer drops the
 * double -> float -> double round trip when two adjacent fields are rounded this way at -O2. */
static double round_to_f32(double v)
{
    volatile float f = (float)v;
    return f;
}

enum { PATH_F32, PATH_F64, PATH_I64, PATH_GEN_F64, PATH_GEN_I64, PATH_CMP_F32, PATH_CMP_F64 };

typedef struct unary_ctx {
    int path;
    nd_unary_op op;
    double p1, p2;
    nd_dtype odt, xdt;
    _Atomic int err;
} unary_ctx;

static void unary_run(void *vc, int64_t range, int64_t flat, char *const *p, const int64_t *s, int64_t n)
{
    (void)range;
    (void)flat;
    unary_ctx *c = (unary_ctx *)vc;
    switch (c->path) {
    case PATH_F32:
        unary_f32(c->op, (float *)p[0], s[0], (const float *)p[1], s[1], n, (float)c->p1, (float)c->p2);
        return;
    case PATH_F64:
        unary_f64(c->op, (double *)p[0], s[0], (const double *)p[1], s[1], n, c->p1, c->p2);
        return;
    case PATH_I64:
        if (unary_i64(c->op, (int64_t *)p[0], s[0], (const int64_t *)p[1], s[1], n, (int64_t)c->p1, (int64_t)c->p2))
            c->err = 1;
        return;
    case PATH_CMP_F32:
        cmp_u8_f32(c->op - ND_UNARY_EQ, (uint8_t *)p[0], s[0], (const float *)p[1], s[1], NULL, 0, n, (float)c->p1);
        return;
    case PATH_CMP_F64:
        cmp_u8_f64(c->op - ND_UNARY_EQ, (uint8_t *)p[0], s[0], (const double *)p[1], s[1], NULL, 0, n, c->p1);
        return;
    default:
        break;
    }
    int64_t oes = (int64_t)nd_dtype_size(c->odt), xes = (int64_t)nd_dtype_size(c->xdt);
    for (int64_t off = 0; off < n; off += CHUNK) {
        int64_t m = n - off < CHUNK ? n - off : CHUNK;
        const char *xp = p[1] + off * s[1] * xes;
        char *op_ = p[0] + off * s[0] * oes;
        if (c->path == PATH_GEN_F64) {
            double buf[CHUNK];
            nd_math_load_f64(buf, xp, s[1], c->xdt, m);
            unary_f64(c->op, buf, 1, buf, 1, m, c->p1, c->p2);
            nd_math_store_f64(op_, s[0], c->odt, buf, m);
        } else {
            int64_t buf[CHUNK];
            nd_math_load_i64(buf, xp, s[1], c->xdt, m);
            if (unary_i64(c->op, buf, 1, buf, 1, m, (int64_t)c->p1, (int64_t)c->p2)) c->err = 1;
            nd_math_store_i64(op_, s[0], c->odt, buf, m);
        }
    }
}

/* Checks the operands shared by all maps: CPU, a valid dtype, the shape of x. */
static nd_status check_inputs(const char *op, int n, const nd_tensor *const *in)
{
    char s1[ND_SHAPE_STR_MAX], s2[ND_SHAPE_STR_MAX];
    static const char *const what[] = {"input 1", "input 2", "input 3"};
    for (int k = 0; k < n; k++) {
        ND_TRY(nd_math_check_cpu(op, what[k], in[k]));
        if ((unsigned)in[k]->dtype >= ND_DTYPE_COUNT) return ND_ERROR(ND_ERR_DTYPE, "%s: invalid dtype", op);
        if (k > 0 && !nd_tensor_same_shape(in[0], in[k]))
            return ND_ERROR(ND_ERR_SHAPE, "%s: sizes %s and %s differ (broadcast with expand first)", op,
                            nd_tensor_shape_str(in[0], s1, sizeof s1), nd_tensor_shape_str(in[k], s2, sizeof s2));
    }
    return ND_OK;
}

static nd_status div_zero(const char *op)
{
    return ND_ERROR(ND_ERR_ARG, "%s: integer division by zero", op);
}

nd_status nd_unary_cpu(nd_tensor *out, const nd_tensor *x, nd_unary_op op, double p1, double p2)
{
    if ((unsigned)op >= ND_UNARY_COUNT) return ND_ERROR(ND_ERR_ARG, "unary: unknown op %d", (int)op);
    const char *name = unary_names[op];
    ND_TRY(check_inputs(name, 1, &x));
    ND_TRY(nd_math_prepare_out(name, out, x->ndim, x->size));
    int fdom = nd_dtype_is_float(x->dtype) || nd_dtype_is_float(out->dtype) || unary_float_only(op) ||
               (unary_uses_p1(op) && !is_integral(p1)) || (op == ND_UNARY_CLAMP && !is_integral(p2));
    if (unary_float_only(op) && !nd_dtype_is_float(out->dtype))
        return ND_ERROR(ND_ERR_DTYPE, "%s: needs a float32 or float64 result, got %s", name,
                        nd_dtype_name(out->dtype));
    if (!fdom && (op == ND_UNARY_DIV || op == ND_UNARY_FMOD || op == ND_UNARY_REMAINDER ||
                  op == ND_UNARY_FLOORDIV) && p1 == 0)
        return div_zero(name);
    if (op == ND_UNARY_CLAMP && p1 > p2)
        return ND_ERROR(ND_ERR_ARG, "clamp: lower bound %g exceeds upper bound %g", p1, p2);
    unary_ctx c = {.op = op, .p1 = p1, .p2 = p2, .odt = out->dtype, .xdt = x->dtype, .err = 0};
    if (fdom) {
        c.op = unary_simplify(op, &c.p1);
        if (x->dtype == ND_DTYPE_F32) { /* scalars at the input's precision: x:eq(0.1) finds 0.1f */
            c.p1 = round_to_f32(c.p1);
            c.p2 = round_to_f32(c.p2);
        }
        c.path = (x->dtype == out->dtype && x->dtype == ND_DTYPE_F32)   ? PATH_F32
                 : (x->dtype == out->dtype && x->dtype == ND_DTYPE_F64) ? PATH_F64
                                                                        : PATH_GEN_F64;
        if (op >= ND_UNARY_EQ && out->dtype == ND_DTYPE_U8 && nd_dtype_is_float(x->dtype))
            c.path = x->dtype == ND_DTYPE_F32 ? PATH_CMP_F32 : PATH_CMP_F64;
    } else {
        c.path = (x->dtype == ND_DTYPE_I64 && out->dtype == ND_DTYPE_I64) ? PATH_I64 : PATH_GEN_I64;
    }
    const nd_tensor *ops[2] = {out, x};
    int64_t numel = nd_tensor_numel(x);
    int64_t rl = nd_math_range_len(numel, unary_float_only(op) ? 4 : 1);
    nd_math_foreach(2, ops, rl, ND_MATH_PARALLEL | ND_MATH_UNORDERED, unary_run, &c);
    return c.err ? div_zero(name) : ND_OK;
}

/* ---- binary ---- */

#define BINARY_FLOAT_OPS(X)                                                                                            \
    X(ADD, a + al * b) X(SUB, a - al * b) X(MUL, a *b) X(DIV, a / b) X(FLOORDIV, floor(a / b)) X(POW, pow(a, b))     \
    X(MAX, MAXN(a, b)) X(MIN, MINN(a, b)) X(FMOD, fmod(a, b)) X(REMAINDER, REM(a, b)) X(ATAN2, atan2(a, b))           \
    X(LERP, a + al * (b - a)) X(EQ, (T_)(a == b)) X(NE, (T_)(a != b)) X(LT, (T_)(a < b)) X(LE, (T_)(a <= b))          \
    X(GT, (T_)(a > b)) X(GE, (T_)(a >= b)) X(AND, (T_)(a != 0 && b != 0)) X(OR, (T_)(a != 0 || b != 0))             \
    X(XOR, (T_)((a != 0) != (b != 0)))

#define BINARY_INT_OPS(X)                                                                                              \
    X(ADD, wadd(a, wmul(al, b))) X(SUB, wsub(a, wmul(al, b))) X(MUL, wmul(a, b)) X(DIV, idiv(a, b, &err))            \
    X(FLOORDIV, ifloordiv(a, b, &err)) X(POW, ipow(a, b, &err)) X(MAX, (a > b ? a : b)) X(MIN, (a < b ? a : b))      \
    X(FMOD, ifmod(a, b, &err)) X(REMAINDER, irem(a, b, &err)) X(LERP, wadd(a, wmul(al, wsub(b, a))))                 \
    X(EQ, a == b) X(NE, a != b) X(LT, a < b) X(LE, a <= b) X(GT, a > b) X(GE, a >= b) X(AND, a != 0 && b != 0)       \
    X(OR, a != 0 || b != 0) X(XOR, (a != 0) != (b != 0))

#define BMAP(EXPR)                                                                                                     \
    if (os == 1 && as == 1 && bs == 1)                                                                                 \
        for (int64_t i = 0; i < n; i++) {                                                                              \
            T_ a = A[i], b = B[i];                                                                                     \
            o[i] = (EXPR);                                                                                             \
        }                                                                                                              \
    else                                                                                                               \
        for (int64_t i = 0; i < n; i++) {                                                                              \
            T_ a = A[i * as], b = B[i * bs];                                                                           \
            o[i * os] = (EXPR);                                                                                        \
        }
#define BCASE(OP, EXPR)                                                                                                \
    case ND_BINARY_##OP:                                                                                               \
        BMAP(EXPR) break;

#define DEFINE_BINARY_FLOAT(NAME, T)                                                                                   \
    static void NAME(nd_binary_op op, T *o, int64_t os, const T *A, int64_t as, const T *B, int64_t bs, int64_t n,    \
                     T al)                                                                                             \
    {                                                                                                                  \
        typedef T T_;                                                                                                  \
        switch (op) {                                                                                                  \
            BINARY_FLOAT_OPS(BCASE)                                                                                    \
        default:                                                                                                       \
            break;                                                                                                     \
        }                                                                                                              \
    }
DEFINE_BINARY_FLOAT(binary_f32, float)
DEFINE_BINARY_FLOAT(binary_f64, double)

static int binary_i64(nd_binary_op op, int64_t *o, int64_t os, const int64_t *A, int64_t as, const int64_t *B,
                      int64_t bs, int64_t n, int64_t al)
{
    typedef int64_t T_;
    int err = 0;
    switch (op) {
        BINARY_INT_OPS(BCASE)
    default:
        break;
    }
    return err;
}

typedef struct binary_ctx {
    int path;
    nd_binary_op op;
    double alpha;
    nd_dtype dt[3]; /* out, a, b */
    _Atomic int err;
} binary_ctx;

static void binary_run(void *vc, int64_t range, int64_t flat, char *const *p, const int64_t *s, int64_t n)
{
    (void)range;
    (void)flat;
    binary_ctx *c = (binary_ctx *)vc;
    switch (c->path) {
    case PATH_F32:
        binary_f32(c->op, (float *)p[0], s[0], (const float *)p[1], s[1], (const float *)p[2], s[2], n,
                   (float)c->alpha);
        return;
    case PATH_F64:
        binary_f64(c->op, (double *)p[0], s[0], (const double *)p[1], s[1], (const double *)p[2], s[2], n, c->alpha);
        return;
    case PATH_I64:
        if (binary_i64(c->op, (int64_t *)p[0], s[0], (const int64_t *)p[1], s[1], (const int64_t *)p[2], s[2], n,
                       (int64_t)c->alpha))
            c->err = 1;
        return;
    case PATH_CMP_F32:
        cmp_u8_f32(c->op - ND_BINARY_EQ, (uint8_t *)p[0], s[0], (const float *)p[1], s[1], (const float *)p[2], s[2],
                   n, 0);
        return;
    case PATH_CMP_F64:
        cmp_u8_f64(c->op - ND_BINARY_EQ, (uint8_t *)p[0], s[0], (const double *)p[1], s[1], (const double *)p[2],
                   s[2], n, 0);
        return;
    default:
        break;
    }
    int64_t es[3];
    for (int k = 0; k < 3; k++) es[k] = (int64_t)nd_dtype_size(c->dt[k]);
    for (int64_t off = 0; off < n; off += CHUNK) {
        int64_t m = n - off < CHUNK ? n - off : CHUNK;
        const char *ap = p[1] + off * s[1] * es[1], *bp = p[2] + off * s[2] * es[2];
        char *op_ = p[0] + off * s[0] * es[0];
        if (c->path == PATH_GEN_F64) {
            double a[CHUNK], b[CHUNK];
            nd_math_load_f64(a, ap, s[1], c->dt[1], m);
            nd_math_load_f64(b, bp, s[2], c->dt[2], m);
            binary_f64(c->op, a, 1, a, 1, b, 1, m, c->alpha);
            nd_math_store_f64(op_, s[0], c->dt[0], a, m);
        } else {
            int64_t a[CHUNK], b[CHUNK];
            nd_math_load_i64(a, ap, s[1], c->dt[1], m);
            nd_math_load_i64(b, bp, s[2], c->dt[2], m);
            if (binary_i64(c->op, a, 1, a, 1, b, 1, m, (int64_t)c->alpha)) c->err = 1;
            nd_math_store_i64(op_, s[0], c->dt[0], a, m);
        }
    }
}

nd_status nd_binary_cpu(nd_tensor *out, const nd_tensor *a, const nd_tensor *b, nd_binary_op op, double alpha)
{
    if ((unsigned)op >= ND_BINARY_COUNT) return ND_ERROR(ND_ERR_ARG, "binary: unknown op %d", (int)op);
    const char *name = binary_names[op];
    const nd_tensor *in[2] = {a, b};
    ND_TRY(check_inputs(name, 2, in));
    ND_TRY(nd_math_prepare_out(name, out, a->ndim, a->size));
    int uses_alpha = op == ND_BINARY_ADD || op == ND_BINARY_SUB || op == ND_BINARY_LERP;
    int fdom = nd_dtype_is_float(a->dtype) || nd_dtype_is_float(b->dtype) || nd_dtype_is_float(out->dtype) ||
               op == ND_BINARY_ATAN2 || (uses_alpha && !is_integral(alpha));
    if (op == ND_BINARY_ATAN2 && !nd_dtype_is_float(out->dtype))
        return ND_ERROR(ND_ERR_DTYPE, "atan2: needs a float32 or float64 result, got %s", nd_dtype_name(out->dtype));
    binary_ctx c = {.op = op, .alpha = alpha, .dt = {out->dtype, a->dtype, b->dtype}, .err = 0};
    int same = a->dtype == out->dtype && b->dtype == out->dtype;
    if (fdom)
        c.path = same && out->dtype == ND_DTYPE_F32 ? PATH_F32 : same && out->dtype == ND_DTYPE_F64 ? PATH_F64
                                                                                                    : PATH_GEN_F64;
    else
        c.path = same && out->dtype == ND_DTYPE_I64 ? PATH_I64 : PATH_GEN_I64;
    if (op >= ND_BINARY_EQ && op <= ND_BINARY_GE && out->dtype == ND_DTYPE_U8 && a->dtype == b->dtype &&
        nd_dtype_is_float(a->dtype))
        c.path = a->dtype == ND_DTYPE_F32 ? PATH_CMP_F32 : PATH_CMP_F64;
    const nd_tensor *ops[3] = {out, a, b};
    int64_t numel = nd_tensor_numel(a);
    int64_t rl = nd_math_range_len(numel, op == ND_BINARY_POW || op == ND_BINARY_ATAN2 ? 4 : 1);
    nd_math_foreach(3, ops, rl, ND_MATH_PARALLEL | ND_MATH_UNORDERED, binary_run, &c);
    return c.err ? div_zero(name) : ND_OK;
}

/* ---- ternary ---- */

#define TERNARY_FLOAT_OPS(X)                                                                                           \
    X(ADDCMUL, a + v * b * c) X(ADDCDIV, a + v * b / c) X(LERP, a + c * (b - a)) X(WHERE, (a != 0 ? b : c))

#define TERNARY_INT_OPS(X)                                                                                             \
    X(ADDCMUL, wadd(a, wmul(v, wmul(b, c)))) X(ADDCDIV, wadd(a, idiv(wmul(v, b), c, &err)))                           \
    X(LERP, wadd(a, wmul(c, wsub(b, a)))) X(WHERE, (a != 0 ? b : c))

#define TMAP(EXPR)                                                                                                     \
    if (os == 1 && as == 1 && bs == 1 && cs == 1)                                                                      \
        for (int64_t i = 0; i < n; i++) {                                                                              \
            T_ a = A[i], b = B[i], c = C[i];                                                                           \
            o[i] = (EXPR);                                                                                             \
        }                                                                                                              \
    else                                                                                                               \
        for (int64_t i = 0; i < n; i++) {                                                                              \
            T_ a = A[i * as], b = B[i * bs], c = C[i * cs];                                                            \
            o[i * os] = (EXPR);                                                                                        \
        }
#define TCASE(OP, EXPR)                                                                                                \
    case ND_TERNARY_##OP:                                                                                              \
        TMAP(EXPR) break;

#define DEFINE_TERNARY_FLOAT(NAME, T)                                                                                  \
    static void NAME(nd_ternary_op op, T *o, int64_t os, const T *A, int64_t as, const T *B, int64_t bs, const T *C,  \
                     int64_t cs, int64_t n, T v)                                                                       \
    {                                                                                                                  \
        typedef T T_;                                                                                                  \
        switch (op) {                                                                                                  \
            TERNARY_FLOAT_OPS(TCASE)                                                                                   \
        default:                                                                                                       \
            break;                                                                                                     \
        }                                                                                                              \
    }
DEFINE_TERNARY_FLOAT(ternary_f32, float)
DEFINE_TERNARY_FLOAT(ternary_f64, double)

static int ternary_i64(nd_ternary_op op, int64_t *o, int64_t os, const int64_t *A, int64_t as, const int64_t *B,
                       int64_t bs, const int64_t *C, int64_t cs, int64_t n, int64_t v)
{
    typedef int64_t T_;
    int err = 0;
    switch (op) {
        TERNARY_INT_OPS(TCASE)
    default:
        break;
    }
    return err;
}

typedef struct ternary_ctx {
    int path;
    nd_ternary_op op;
    double v;
    nd_dtype dt[4]; /* out, a, b, c */
    _Atomic int err;
} ternary_ctx;

static void ternary_run(void *vc, int64_t range, int64_t flat, char *const *p, const int64_t *s, int64_t n)
{
    (void)range;
    (void)flat;
    ternary_ctx *c = (ternary_ctx *)vc;
    switch (c->path) {
    case PATH_F32:
        ternary_f32(c->op, (float *)p[0], s[0], (const float *)p[1], s[1], (const float *)p[2], s[2],
                    (const float *)p[3], s[3], n, (float)c->v);
        return;
    case PATH_F64:
        ternary_f64(c->op, (double *)p[0], s[0], (const double *)p[1], s[1], (const double *)p[2], s[2],
                    (const double *)p[3], s[3], n, c->v);
        return;
    case PATH_I64:
        if (ternary_i64(c->op, (int64_t *)p[0], s[0], (const int64_t *)p[1], s[1], (const int64_t *)p[2], s[2],
                        (const int64_t *)p[3], s[3], n, (int64_t)c->v))
            c->err = 1;
        return;
    default:
        break;
    }
    int64_t es[4];
    for (int k = 0; k < 4; k++) es[k] = (int64_t)nd_dtype_size(c->dt[k]);
    for (int64_t off = 0; off < n; off += CHUNK) {
        int64_t m = n - off < CHUNK ? n - off : CHUNK;
        const char *ip[3];
        for (int k = 0; k < 3; k++) ip[k] = p[k + 1] + off * s[k + 1] * es[k + 1];
        char *op_ = p[0] + off * s[0] * es[0];
        if (c->path == PATH_GEN_F64) {
            double buf[3][CHUNK];
            for (int k = 0; k < 3; k++) nd_math_load_f64(buf[k], ip[k], s[k + 1], c->dt[k + 1], m);
            ternary_f64(c->op, buf[0], 1, buf[0], 1, buf[1], 1, buf[2], 1, m, c->v);
            nd_math_store_f64(op_, s[0], c->dt[0], buf[0], m);
        } else {
            int64_t buf[3][CHUNK];
            for (int k = 0; k < 3; k++) nd_math_load_i64(buf[k], ip[k], s[k + 1], c->dt[k + 1], m);
            if (ternary_i64(c->op, buf[0], 1, buf[0], 1, buf[1], 1, buf[2], 1, m, (int64_t)c->v)) c->err = 1;
            nd_math_store_i64(op_, s[0], c->dt[0], buf[0], m);
        }
    }
}

nd_status nd_ternary_cpu(nd_tensor *out, const nd_tensor *a, const nd_tensor *b, const nd_tensor *c,
                         nd_ternary_op op, double v)
{
    if ((unsigned)op >= ND_TERNARY_COUNT) return ND_ERROR(ND_ERR_ARG, "ternary: unknown op %d", (int)op);
    const char *name = ternary_names[op];
    const nd_tensor *in[3] = {a, b, c};
    ND_TRY(check_inputs(name, 3, in));
    ND_TRY(nd_math_prepare_out(name, out, a->ndim, a->size));
    int fdom = nd_dtype_is_float(b->dtype) || nd_dtype_is_float(c->dtype) || nd_dtype_is_float(out->dtype);
    if (op != ND_TERNARY_WHERE) fdom = fdom || nd_dtype_is_float(a->dtype) || !is_integral(v);
    ternary_ctx tc = {.op = op, .v = v, .dt = {out->dtype, a->dtype, b->dtype, c->dtype}, .err = 0};
    int same = a->dtype == out->dtype && b->dtype == out->dtype && c->dtype == out->dtype;
    if (fdom)
        tc.path = same && out->dtype == ND_DTYPE_F32 ? PATH_F32 : same && out->dtype == ND_DTYPE_F64 ? PATH_F64
                                                                                                     : PATH_GEN_F64;
    else
        tc.path = same && out->dtype == ND_DTYPE_I64 ? PATH_I64 : PATH_GEN_I64;
    const nd_tensor *ops[4] = {out, a, b, c};
    int64_t numel = nd_tensor_numel(a);
    int64_t rl = nd_math_range_len(numel, 1);
    nd_math_foreach(4, ops, rl, ND_MATH_PARALLEL | ND_MATH_UNORDERED, ternary_run, &tc);
    return tc.err ? div_zero(name) : ND_OK;
}

/* ---- fill ---- */

typedef struct fill_ctx {
    nd_dtype dt;
    float f32;
    double f64;
    int64_t i64;
    uint8_t u8;
} fill_ctx;

static void fill_run(void *vc, int64_t range, int64_t flat, char *const *p, const int64_t *s, int64_t n)
{
    (void)range;
    (void)flat;
    fill_ctx *c = (fill_ctx *)vc;
    int64_t st = s[0];
    switch (c->dt) {
#define FILL(T, E, V)                                                                                                  \
    case E: {                                                                                                          \
        T *q = (T *)p[0];                                                                                              \
        if (st == 1)                                                                                                   \
            for (int64_t i = 0; i < n; i++) q[i] = c->V;                                                               \
        else                                                                                                           \
            for (int64_t i = 0; i < n; i++) q[i * st] = c->V;                                                          \
    } break;
        FILL(float, ND_DTYPE_F32, f32)
        FILL(double, ND_DTYPE_F64, f64)
        FILL(int64_t, ND_DTYPE_I64, i64)
        FILL(uint8_t, ND_DTYPE_U8, u8)
#undef FILL
    default:
        break;
    }
}

nd_status nd_fill_cpu(nd_tensor *t, double value)
{
    ND_TRY(nd_math_check_cpu("fill", "the tensor", t));
    if ((unsigned)t->dtype >= ND_DTYPE_COUNT) return ND_ERROR(ND_ERR_DTYPE, "fill: invalid dtype");
    fill_ctx c = {.dt = t->dtype, .f32 = (float)value, .f64 = value, .i64 = nd_math_f2i(value)};
    c.u8 = (uint8_t)(uint64_t)c.i64;
    int expanded = 0; /* several threads must not write one address */
    for (int d = 0; d < t->ndim; d++)
        if (t->stride[d] == 0 && t->size[d] > 1) expanded = 1;
    const nd_tensor *ops[1] = {t};
    int64_t numel = nd_tensor_numel(t);
    int64_t rl = expanded ? numel : nd_math_range_len(numel, 1);
    nd_math_foreach(1, ops, rl, (expanded ? 0 : ND_MATH_PARALLEL) | ND_MATH_UNORDERED, fill_run, &c);
    return ND_OK;
}
