/* Elementwise maps, fills, reductions and cumulative ops (src/cpu/nd_cpu_math.h) against naive
 * per-element loops written independently here, in every dtype, on contiguous, transposed,
 * narrowed and expanded operands, plus sizes large enough for the threaded paths and the errors.
 * One check per (op, dtype, layout) case: it passes when every element matches. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nd.h"
#include "nd_cpu_math.h"
#include "nd_test.h"

static nd_rng rng;
static const nd_dtype all_dt[4] = {ND_DTYPE_F32, ND_DTYPE_F64, ND_DTYPE_I64, ND_DTYPE_U8};

/* ---- element access by row-major position ---- */

static char *at(const nd_tensor *t, int64_t flat)
{
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        off += (flat % t->size[d]) * t->stride[d];
        flat /= t->size[d];
    }
    return (char *)nd_tensor_data(t) + off * (int64_t)nd_dtype_size(t->dtype);
}

static double getd(const nd_tensor *t, int64_t i)
{
    char *p = at(t, i);
    switch (t->dtype) {
    case ND_DTYPE_F32: return *(float *)p;
    case ND_DTYPE_F64: return *(double *)p;
    case ND_DTYPE_I64: return (double)*(int64_t *)p;
    default: return *(uint8_t *)p;
    }
}

static void setd(nd_tensor *t, int64_t i, double v)
{
    char *p = at(t, i);
    switch (t->dtype) {
    case ND_DTYPE_F32: *(float *)p = (float)v; break;
    case ND_DTYPE_F64: *(double *)p = v; break;
    case ND_DTYPE_I64: *(int64_t *)p = (int64_t)v; break;
    default: *(uint8_t *)p = (uint8_t)v; break;
    }
}

/* Equal, both NaN, or within tol (relative above 1). */
static int close_to(double got, double want, double tol)
{
    if (want != want) return got != got;
    if (isinf(want)) return got == want;
    return fabs(got - want) <= tol * (1 + fabs(want));
}

/* ---- operands ---- */

enum { L_CONTIG, L_TRANS, L_NARROW, L_EXPAND, L_LAYOUTS };
static const int64_t S3[3] = {3, 4, 5};

static void fill_random(nd_tensor *t)
{
    if (nd_dtype_is_float(t->dtype)) nd_rng_fill_uniform(&rng, t, -2, 2);
    else if (t->dtype == ND_DTYPE_I64) nd_rng_fill_integer(&rng, t, -20, 20);
    else nd_rng_fill_integer(&rng, t, 0, 255);
}

/* A 3x4x5 operand with the given layout and random contents (expanded: along dim 2). */
static nd_tensor make3(nd_dtype dt, int layout)
{
    nd_tensor base, v;
    int64_t s[3] = {3, 4, 5};
    if (layout == L_TRANS) s[0] = 5, s[2] = 3;
    if (layout == L_NARROW) s[1] = 7;
    if (layout == L_EXPAND) s[1] = 1;
    nd_tensor_new(&base, dt, 3, s, nd_cpu_device(), 0);
    fill_random(&base);
    nd_tensor_view_of(&v, &base);
    nd_tensor_release(&base);
    if (layout == L_TRANS) nd_tensor_transpose(&v, 0, 2);
    if (layout == L_NARROW) nd_tensor_narrow(&v, 1, 2, 4);
    if (layout == L_EXPAND) nd_tensor_expand(&v, 3, S3);
    return v;
}

static nd_tensor empty_of(nd_dtype dt)
{
    nd_tensor t;
    nd_tensor_init_empty(&t, dt);
    return t;
}

/* ---- naive references ---- */

static double ref_unary_f(nd_unary_op op, double v, double p1, double p2)
{
    switch (op) {
    case ND_UNARY_NEG: return -v;
    case ND_UNARY_ABS: return fabs(v);
    case ND_UNARY_SIGN: return v > 0 ? 1 : v < 0 ? -1 : 0;
    case ND_UNARY_RELU: return v > 0 ? v : 0;
    case ND_UNARY_SQUARE: return v * v;
    case ND_UNARY_FLOOR: return floor(v);
    case ND_UNARY_CEIL: return ceil(v);
    case ND_UNARY_ROUND: return round(v);
    case ND_UNARY_TRUNC: return trunc(v);
    case ND_UNARY_FRAC: return v - trunc(v);
    case ND_UNARY_SQRT: return sqrt(v);
    case ND_UNARY_RSQRT: return 1 / sqrt(v);
    case ND_UNARY_EXP: return exp(v);
    case ND_UNARY_LOG: return log(v);
    case ND_UNARY_LOG1P: return log1p(v);
    case ND_UNARY_EXPM1: return expm1(v);
    case ND_UNARY_LOG2: return log2(v);
    case ND_UNARY_LOG10: return log10(v);
    case ND_UNARY_TANH: return tanh(v);
    case ND_UNARY_SIGMOID: return 1 / (1 + exp(-v));
    case ND_UNARY_SIN: return sin(v);
    case ND_UNARY_COS: return cos(v);
    case ND_UNARY_TAN: return tan(v);
    case ND_UNARY_ASIN: return asin(v);
    case ND_UNARY_ACOS: return acos(v);
    case ND_UNARY_ATAN: return atan(v);
    case ND_UNARY_SINH: return sinh(v);
    case ND_UNARY_COSH: return cosh(v);
    case ND_UNARY_ERF: return erf(v);
    case ND_UNARY_RECIPROCAL: return 1 / v;
    case ND_UNARY_CLAMP: return v < p1 ? p1 : v > p2 ? p2 : v;
    case ND_UNARY_POW: return pow(v, p1);
    case ND_UNARY_RPOW: return pow(p1, v);
    case ND_UNARY_ADD: return v + p1;
    case ND_UNARY_RSUB: return p1 - v;
    case ND_UNARY_MUL: return v * p1;
    case ND_UNARY_DIV: return v / p1;
    case ND_UNARY_RDIV: return p1 / v;
    case ND_UNARY_FLOORDIV: return floor(v / p1);
    case ND_UNARY_FMOD: return fmod(v, p1);
    case ND_UNARY_REMAINDER: return v - p1 * floor(v / p1);
    case ND_UNARY_MAX: return v > p1 ? v : p1;
    case ND_UNARY_MIN: return v < p1 ? v : p1;
    case ND_UNARY_EQ: return v == p1;
    case ND_UNARY_NE: return v != p1;
    case ND_UNARY_LT: return v < p1;
    case ND_UNARY_LE: return v <= p1;
    case ND_UNARY_GT: return v > p1;
    case ND_UNARY_GE: return v >= p1;
    default: return NAN;
    }
}

static int64_t ref_pow_i(int64_t b, int64_t e)
{
    if (e < 0) return b == 1 ? 1 : b == -1 ? (e % 2 ? -1 : 1) : 0;
    int64_t r = 1;
    for (int64_t k = 0; k < e; k++) r = (int64_t)((uint64_t)r * (uint64_t)b); /* wraps like the kernel */
    return r;
}

static int64_t floor_div(int64_t a, int64_t b) { return (int64_t)floor((double)a / (double)b); }

static int64_t ref_unary_i(nd_unary_op op, int64_t v, int64_t p1, int64_t p2)
{
    switch (op) {
    case ND_UNARY_NEG: return -v;
    case ND_UNARY_ABS: return v < 0 ? -v : v;
    case ND_UNARY_SIGN: return v > 0 ? 1 : v < 0 ? -1 : 0;
    case ND_UNARY_RELU: return v > 0 ? v : 0;
    case ND_UNARY_SQUARE: return v * v;
    case ND_UNARY_FRAC: return 0;
    case ND_UNARY_CLAMP: return v < p1 ? p1 : v > p2 ? p2 : v;
    case ND_UNARY_POW: return ref_pow_i(v, p1);
    case ND_UNARY_RPOW: return ref_pow_i(p1, v);
    case ND_UNARY_ADD: return v + p1;
    case ND_UNARY_RSUB: return p1 - v;
    case ND_UNARY_MUL: return v * p1;
    case ND_UNARY_DIV: return v / p1;
    case ND_UNARY_RDIV: return p1 / v;
    case ND_UNARY_FLOORDIV: return floor_div(v, p1);
    case ND_UNARY_FMOD: return v % p1;
    case ND_UNARY_REMAINDER: return v - p1 * floor_div(v, p1);
    case ND_UNARY_MAX: return v > p1 ? v : p1;
    case ND_UNARY_MIN: return v < p1 ? v : p1;
    case ND_UNARY_EQ: return v == p1;
    case ND_UNARY_NE: return v != p1;
    case ND_UNARY_LT: return v < p1;
    case ND_UNARY_LE: return v <= p1;
    case ND_UNARY_GT: return v > p1;
    case ND_UNARY_GE: return v >= p1;
    default: return v; /* floor, ceil, round, trunc */
    }
}

/* Stored form of an exact integer result in dtype dt (uint8 wraps). */
static double wrap_to(nd_dtype dt, int64_t v) { return dt == ND_DTYPE_U8 ? (double)(uint8_t)(uint64_t)v : (double)v; }

static int is_float_only(nd_unary_op op) { return op >= ND_UNARY_SQRT && op <= ND_UNARY_RECIPROCAL; }

static void unary_params(nd_unary_op op, nd_dtype dt, double *p1, double *p2)
{
    int fl = nd_dtype_is_float(dt), u8 = dt == ND_DTYPE_U8;
    *p2 = 0;
    switch (op) {
    case ND_UNARY_CLAMP: *p1 = fl ? -0.5 : u8 ? 30 : -3; *p2 = fl ? 0.7 : u8 ? 200 : 7; break;
    case ND_UNARY_POW: *p1 = fl ? 2.5 : 3; break;
    case ND_UNARY_RPOW: *p1 = fl ? 1.5 : 2; break;
    case ND_UNARY_MUL: *p1 = fl ? -1.5 : -3; break;
    case ND_UNARY_DIV: case ND_UNARY_FLOORDIV: case ND_UNARY_FMOD: *p1 = fl ? 0.7 : -3; break;
    case ND_UNARY_REMAINDER: *p1 = fl ? -0.7 : 3; break;
    case ND_UNARY_RDIV: *p1 = fl ? 2 : 100; break;
    case ND_UNARY_MAX: case ND_UNARY_MIN: *p1 = fl ? 0.1 : 2; break;
    default: *p1 = fl ? 0.5 : 2; break; /* add, rsub, comparisons: the value planted at position 3 */
    }
}

/* out = f(x) for every op x dtype x layout, against ref_unary_*; out non-contiguous half the time. */
static void test_unary_all(void)
{
    for (int di = 0; di < 4; di++) {
        nd_dtype dt = all_dt[di];
        int fl = nd_dtype_is_float(dt);
        for (int op = 0; op < ND_UNARY_COUNT; op++) {
            if (!fl && is_float_only((nd_unary_op)op)) continue;
            double p1, p2;
            unary_params((nd_unary_op)op, dt, &p1, &p2);
            if (dt == ND_DTYPE_F32) p1 = (float)p1, p2 = (float)p2;
            for (int lay = 0; lay < L_LAYOUTS; lay++) {
                nd_tensor x = make3(dt, lay), out;
                setd(&x, 3, fl ? 0.5 : 2);
                if (!fl && op == ND_UNARY_RDIV)
                    for (int64_t i = 0; i < 60; i++)
                        if (getd(&x, i) == 0) setd(&x, i, 1);
                int cmp = op >= ND_UNARY_EQ;
                if (lay == L_TRANS) out = make3(cmp ? ND_DTYPE_U8 : dt, L_NARROW);
                else out = empty_of(cmp ? ND_DTYPE_U8 : dt);
                nd_status st = nd_unary_cpu(&out, &x, (nd_unary_op)op, p1, p2);
                int ok = st == ND_OK;
                for (int64_t i = 0; ok && i < 60; i++) {
                    double v = getd(&x, i), want;
                    if (fl) want = ref_unary_f((nd_unary_op)op, v, p1, p2);
                    else want = wrap_to(out.dtype, ref_unary_i((nd_unary_op)op, (int64_t)v, (int64_t)p1, (int64_t)p2));
                    ok = close_to(getd(&out, i), want, dt == ND_DTYPE_F32 && !cmp ? 2e-5 : 1e-12);
                    if (!ok)
                        fprintf(stderr, "unary %s %s layout %d at %lld: got %g want %g (x %g)\n",
                                nd_unary_name((nd_unary_op)op), nd_dtype_name(dt), lay, (long long)i,
                                getd(&out, i), want, v);
                }
                if (st != ND_OK) fprintf(stderr, "unary: %s\n", nd_error_message());
                ND_CHECK(ok);
                nd_tensor_release(&x);
                nd_tensor_release(&out);
            }
        }
    }
}

/* Mixed dtypes, in place, integer edge cases and errors. */
static void test_unary_special(void)
{
    /* float-only op of an int64 tensor into a float32 result; into int64: an error */
    nd_tensor x = make3(ND_DTYPE_I64, L_TRANS), out = empty_of(ND_DTYPE_F32), bad = empty_of(ND_DTYPE_I64);
    nd_unary_cpu(&x, &x, ND_UNARY_ABS, 0, 0);
    ND_CHECK_OK(nd_unary_cpu(&out, &x, ND_UNARY_SQRT, 0, 0));
    int ok = 1;
    for (int64_t i = 0; i < 60; i++) ok &= close_to(getd(&out, i), sqrt(getd(&x, i)), 1e-6);
    ND_CHECK(ok);
    ND_CHECK(nd_unary_cpu(&bad, &x, ND_UNARY_EXP, 0, 0) == ND_ERR_DTYPE);
    ND_CHECK(strstr(nd_error_message(), "exp") != NULL);
    /* a non-integral scalar on int64 computes in double and truncates */
    nd_tensor y = empty_of(ND_DTYPE_I64);
    ND_CHECK_OK(nd_unary_cpu(&y, &x, ND_UNARY_MUL, 0.5, 0));
    ok = 1;
    for (int64_t i = 0; i < 60; i++) ok &= getd(&y, i) == trunc(getd(&x, i) * 0.5);
    ND_CHECK(ok);
    /* in place on a non-contiguous view */
    nd_tensor z = make3(ND_DTYPE_F64, L_NARROW), z0 = empty_of(ND_DTYPE_F64);
    nd_tensor_clone(&z0, &z, ND_DTYPE_F64);
    ND_CHECK_OK(nd_unary_cpu(&z, &z, ND_UNARY_TANH, 0, 0));
    ok = 1;
    for (int64_t i = 0; i < 60; i++) ok &= close_to(getd(&z, i), tanh(getd(&z0, i)), 1e-14);
    ND_CHECK(ok);
    /* a float32 input compares with the scalar rounded to float32 (0.1 finds 0.1f), also into uint8 */
    nd_tensor f = make3(ND_DTYPE_F32, L_TRANS), fm = empty_of(ND_DTYPE_U8), fs = empty_of(ND_DTYPE_F64);
    setd(&f, 2, 0.1);
    ND_CHECK_OK(nd_unary_cpu(&fm, &f, ND_UNARY_EQ, 0.1, 0));
    ND_CHECK(getd(&fm, 2) == 1 && getd(&fm, 3) == 0);
    ND_CHECK_OK(nd_unary_cpu(&fs, &f, ND_UNARY_ADD, 0.1, 0));
    ND_CHECK(getd(&fs, 2) == 2 * (double)0.1f);
    nd_tensor_release(&f);
    nd_tensor_release(&fm);
    nd_tensor_release(&fs);
    /* int64 wraps, uint8 wraps modulo 256 */
    nd_tensor big;
    int64_t one = 1;
    nd_tensor_new(&big, ND_DTYPE_I64, 1, &one, nd_cpu_device(), 0);
    *(int64_t *)nd_tensor_data(&big) = INT64_MAX;
    ND_CHECK_OK(nd_unary_cpu(&big, &big, ND_UNARY_ADD, 1, 0));
    ND_CHECK(*(int64_t *)nd_tensor_data(&big) == INT64_MIN);
    *(int64_t *)nd_tensor_data(&big) = INT64_MIN;
    ND_CHECK_OK(nd_unary_cpu(&big, &big, ND_UNARY_DIV, -1, 0));
    ND_CHECK(*(int64_t *)nd_tensor_data(&big) == INT64_MIN);
    /* division by zero, a reversed clamp, an expanded result, a shape mismatch */
    ND_CHECK(nd_unary_cpu(&big, &big, ND_UNARY_DIV, 0, 0) == ND_ERR_ARG);
    ND_CHECK(strstr(nd_error_message(), "division by zero") != NULL);
    ND_CHECK(nd_unary_cpu(&big, &big, ND_UNARY_CLAMP, 2, 1) == ND_ERR_ARG);
    nd_tensor ex = make3(ND_DTYPE_F32, L_EXPAND), xf = make3(ND_DTYPE_F32, L_CONTIG);
    ND_CHECK(nd_unary_cpu(&ex, &xf, ND_UNARY_NEG, 0, 0) == ND_ERR_ARG);
    ND_CHECK(strstr(nd_error_message(), "expanded") != NULL);
    nd_tensor wrong;
    int64_t s2[2] = {4, 5};
    nd_tensor_new(&wrong, ND_DTYPE_F32, 2, s2, nd_cpu_device(), 0);
    ND_CHECK(nd_unary_cpu(&wrong, &xf, ND_UNARY_NEG, 0, 0) == ND_ERR_SHAPE);
    ND_CHECK(strstr(nd_error_message(), "4x5") && strstr(nd_error_message(), "3x4x5"));
    /* rdiv of an int64 tensor holding 0 */
    nd_tensor zero = empty_of(ND_DTYPE_I64), r = empty_of(ND_DTYPE_I64);
    nd_tensor_new(&zero, ND_DTYPE_I64, 1, &one, nd_cpu_device(), 1);
    ND_CHECK(nd_unary_cpu(&r, &zero, ND_UNARY_RDIV, 1, 0) == ND_ERR_ARG);
    nd_tensor *all[] = {&x, &out, &bad, &y, &z, &z0, &big, &ex, &xf, &wrong, &zero, &r};
    for (size_t k = 0; k < sizeof all / sizeof *all; k++) nd_tensor_release(all[k]);
}

/* ---- binary ---- */

static double ref_binary_f(nd_binary_op op, double a, double b, double al)
{
    switch (op) {
    case ND_BINARY_ADD: return a + al * b;
    case ND_BINARY_SUB: return a - al * b;
    case ND_BINARY_MUL: return a * b;
    case ND_BINARY_DIV: return a / b;
    case ND_BINARY_FLOORDIV: return floor(a / b);
    case ND_BINARY_POW: return pow(a, b);
    case ND_BINARY_MAX: return a > b ? a : b;
    case ND_BINARY_MIN: return a < b ? a : b;
    case ND_BINARY_FMOD: return fmod(a, b);
    case ND_BINARY_REMAINDER: return a - b * floor(a / b);
    case ND_BINARY_ATAN2: return atan2(a, b);
    case ND_BINARY_LERP: return a + al * (b - a);
    case ND_BINARY_EQ: return a == b;
    case ND_BINARY_NE: return a != b;
    case ND_BINARY_LT: return a < b;
    case ND_BINARY_LE: return a <= b;
    case ND_BINARY_GT: return a > b;
    case ND_BINARY_GE: return a >= b;
    case ND_BINARY_AND: return a != 0 && b != 0;
    case ND_BINARY_OR: return a != 0 || b != 0;
    case ND_BINARY_XOR: return (a != 0) != (b != 0);
    default: return NAN;
    }
}

static int64_t ref_binary_i(nd_binary_op op, int64_t a, int64_t b, int64_t al)
{
    switch (op) {
    case ND_BINARY_ADD: return a + al * b;
    case ND_BINARY_SUB: return a - al * b;
    case ND_BINARY_MUL: return a * b;
    case ND_BINARY_DIV: return a / b;
    case ND_BINARY_FLOORDIV: return floor_div(a, b);
    case ND_BINARY_POW: return ref_pow_i(a, b);
    case ND_BINARY_FMOD: return a % b;
    case ND_BINARY_REMAINDER: return a - b * floor_div(a, b);
    case ND_BINARY_LERP: return a + al * (b - a);
    default: return (int64_t)ref_binary_f(op, (double)a, (double)b, (double)al);
    }
}

static int divides(nd_binary_op op)
{
    return op == ND_BINARY_DIV || op == ND_BINARY_FLOORDIV || op == ND_BINARY_FMOD || op == ND_BINARY_REMAINDER;
}

/* Every op, dtype and layout pair (a, b), plus out == a (in place). */
static void test_binary_all(void)
{
    static const int lay_pairs[5][2] = {{L_CONTIG, L_CONTIG}, {L_CONTIG, L_TRANS}, {L_TRANS, L_NARROW},
                                        {L_NARROW, L_EXPAND}, {L_EXPAND, L_CONTIG}};
    for (int di = 0; di < 4; di++) {
        nd_dtype dt = all_dt[di];
        int fl = nd_dtype_is_float(dt);
        for (int op = 0; op < ND_BINARY_COUNT; op++) {
            if (!fl && op == ND_BINARY_ATAN2) continue;
            double al = op == ND_BINARY_LERP ? (fl ? 0.25 : 2) : (fl ? -1.5 : 3);
            if (dt == ND_DTYPE_F32) al = (float)al;
            int mask = op >= ND_BINARY_EQ;
            for (int lp = 0; lp < 6; lp++) {
                int inplace = lp == 5;
                nd_tensor a = make3(dt, inplace ? L_TRANS : lay_pairs[lp][0]);
                nd_tensor b = make3(dt, inplace ? L_NARROW : lay_pairs[lp][1]);
                if (fl && op == ND_BINARY_POW) nd_unary_cpu(&b, &b, ND_UNARY_ROUND, 0, 0); /* defined powers */
                if (!fl && op == ND_BINARY_POW) nd_unary_cpu(&b, &b, ND_UNARY_REMAINDER, 4, 0);
                setd(&b, 5, getd(&a, 5)); /* one equal pair for the comparisons */
                if (!fl && divides((nd_binary_op)op))
                    for (int64_t i = 0; i < 60; i++)
                        if (getd(&b, i) == 0) setd(&b, i, 7);
                nd_tensor a0 = empty_of(dt), out = empty_of(mask ? ND_DTYPE_U8 : dt);
                nd_tensor_clone(&a0, &a, dt);
                nd_tensor *o = inplace && !mask ? &a : &out;
                nd_status st = nd_binary_cpu(o, &a, &b, (nd_binary_op)op, al);
                int ok = st == ND_OK;
                for (int64_t i = 0; ok && i < 60; i++) {
                    double x = getd(&a0, i), y = getd(&b, i), want;
                    if (fl) want = ref_binary_f((nd_binary_op)op, x, y, al);
                    else want = wrap_to(o->dtype, ref_binary_i((nd_binary_op)op, (int64_t)x, (int64_t)y, (int64_t)al));
                    ok = close_to(getd(o, i), want, dt == ND_DTYPE_F32 && !mask ? 2e-5 : 1e-12);
                    if (!ok)
                        fprintf(stderr, "binary %s %s pair %d at %lld: got %g want %g (%g, %g)\n",
                                nd_binary_name((nd_binary_op)op), nd_dtype_name(dt), lp, (long long)i,
                                getd(o, i), want, x, y);
                }
                if (st != ND_OK) fprintf(stderr, "binary: %s\n", nd_error_message());
                ND_CHECK(ok);
                nd_tensor_release(&a);
                nd_tensor_release(&b);
                nd_tensor_release(&a0);
                nd_tensor_release(&out);
            }
        }
    }
}

static void test_binary_special(void)
{
    /* float32 + int64 -> float64 out, comparisons of float32 into uint8 */
    nd_tensor a = make3(ND_DTYPE_F32, L_TRANS), b = make3(ND_DTYPE_I64, L_NARROW);
    nd_tensor o = empty_of(ND_DTYPE_F64), m = empty_of(ND_DTYPE_U8);
    ND_CHECK_OK(nd_binary_cpu(&o, &a, &b, ND_BINARY_ADD, 2));
    ND_CHECK_OK(nd_binary_cpu(&m, &a, &b, ND_BINARY_LT, 1));
    int ok = 1;
    for (int64_t i = 0; i < 60; i++) {
        ok &= close_to(getd(&o, i), getd(&a, i) + 2 * getd(&b, i), 1e-12);
        ok &= getd(&m, i) == (getd(&a, i) < getd(&b, i));
    }
    ND_CHECK(ok);
    /* integer division by zero, mismatched shapes */
    nd_tensor i1 = make3(ND_DTYPE_I64, L_CONTIG), i2 = empty_of(ND_DTYPE_I64), r = empty_of(ND_DTYPE_I64);
    nd_tensor_new(&i2, ND_DTYPE_I64, 3, S3, nd_cpu_device(), 1);
    ND_CHECK(nd_binary_cpu(&r, &i1, &i2, ND_BINARY_DIV, 1) == ND_ERR_ARG);
    nd_tensor c;
    int64_t s2[2] = {2, 3};
    nd_tensor_new(&c, ND_DTYPE_F32, 2, s2, nd_cpu_device(), 0);
    nd_tensor r2 = empty_of(ND_DTYPE_F32);
    ND_CHECK(nd_binary_cpu(&r2, &a, &c, ND_BINARY_MUL, 1) == ND_ERR_SHAPE);
    ND_CHECK(strstr(nd_error_message(), "mul") && strstr(nd_error_message(), "3x4x5") &&
             strstr(nd_error_message(), "2x3"));
    /* atan2 needs a float result */
    ND_CHECK(nd_binary_cpu(&r, &i1, &i1, ND_BINARY_ATAN2, 1) == ND_ERR_DTYPE);
    /* NaN propagates through max/min from either side */
    nd_tensor n1 = make3(ND_DTYPE_F64, L_CONTIG), n2 = make3(ND_DTYPE_F64, L_CONTIG), r3 = empty_of(ND_DTYPE_F64);
    setd(&n1, 0, NAN);
    setd(&n2, 1, NAN);
    ND_CHECK_OK(nd_binary_cpu(&r3, &n1, &n2, ND_BINARY_MAX, 1));
    ND_CHECK(isnan(getd(&r3, 0)) && isnan(getd(&r3, 1)) && !isnan(getd(&r3, 2)));
    nd_tensor *all[] = {&a, &b, &o, &m, &i1, &i2, &r, &c, &r2, &n1, &n2, &r3};
    for (size_t k = 0; k < sizeof all / sizeof *all; k++) nd_tensor_release(all[k]);
}

/* ---- ternary and fill ---- */

static void test_ternary(void)
{
    for (int di = 0; di < 4; di++) {
        nd_dtype dt = all_dt[di];
        int fl = nd_dtype_is_float(dt);
        for (int op = 0; op < ND_TERNARY_COUNT; op++) {
            for (int lay = 0; lay < 3; lay++) {
                nd_tensor a = make3(dt, lay), b = make3(dt, (lay + 1) % 4), c = make3(dt, (lay + 3) % 4);
                if (op == ND_TERNARY_ADDCDIV)
                    for (int64_t i = 0; i < 60; i++)
                        if (getd(&c, i) == 0) setd(&c, i, 3);
                if (op == ND_TERNARY_WHERE) setd(&a, 0, 0);
                double v = fl ? 0.75 : 2;
                nd_tensor out = empty_of(dt);
                ND_CHECK_OK(nd_ternary_cpu(&out, &a, &b, &c, (nd_ternary_op)op, v));
                int ok = 1;
                for (int64_t i = 0; i < 60 && ok; i++) {
                    double x = getd(&a, i), y = getd(&b, i), z = getd(&c, i), want;
                    int64_t ix = (int64_t)x, iy = (int64_t)y, iz = (int64_t)z;
                    switch (op) {
                    case ND_TERNARY_ADDCMUL: want = fl ? x + v * y * z : wrap_to(dt, ix + 2 * iy * iz); break;
                    case ND_TERNARY_ADDCDIV: want = fl ? x + v * y / z : wrap_to(dt, ix + (2 * iy) / iz); break;
                    case ND_TERNARY_LERP: want = fl ? x + z * (y - x) : wrap_to(dt, ix + iz * (iy - ix)); break;
                    default: want = x != 0 ? y : z; break;
                    }
                    ok = close_to(getd(&out, i), want, dt == ND_DTYPE_F32 ? 2e-5 : 1e-12);
                    if (!ok)
                        fprintf(stderr, "ternary %s %s at %lld: got %g want %g\n", nd_ternary_name((nd_ternary_op)op),
                                nd_dtype_name(dt), (long long)i, getd(&out, i), want);
                }
                ND_CHECK(ok);
                nd_tensor_release(&a);
                nd_tensor_release(&b);
                nd_tensor_release(&c);
                nd_tensor_release(&out);
            }
        }
    }
    /* where with a uint8 mask and float32 values; in-place addcmul (out == a) */
    nd_tensor m = make3(ND_DTYPE_U8, L_TRANS), a = make3(ND_DTYPE_F32, L_NARROW), b = make3(ND_DTYPE_F32, L_EXPAND);
    nd_unary_cpu(&m, &m, ND_UNARY_GT, 127, 0);
    nd_tensor out = empty_of(ND_DTYPE_F32), a0 = empty_of(ND_DTYPE_F32);
    ND_CHECK_OK(nd_ternary_cpu(&out, &m, &a, &b, ND_TERNARY_WHERE, 1));
    nd_tensor_clone(&a0, &a, ND_DTYPE_F32);
    ND_CHECK_OK(nd_ternary_cpu(&a, &a, &b, &b, ND_TERNARY_ADDCMUL, -0.5));
    int ok = 1;
    for (int64_t i = 0; i < 60; i++) {
        ok &= getd(&out, i) == (getd(&m, i) ? getd(&a0, i) : getd(&b, i));
        ok &= close_to(getd(&a, i), getd(&a0, i) - 0.5 * getd(&b, i) * getd(&b, i), 1e-6);
    }
    ND_CHECK(ok);
    nd_tensor *all[] = {&m, &a, &b, &out, &a0};
    for (size_t k = 0; k < sizeof all / sizeof *all; k++) nd_tensor_release(all[k]);
}

static void test_fill(void)
{
    for (int di = 0; di < 4; di++) {
        for (int lay = 0; lay < L_LAYOUTS; lay++) {
            nd_tensor t = make3(all_dt[di], lay);
            ND_CHECK_OK(nd_fill_cpu(&t, 7.0));
            int ok = 1;
            for (int64_t i = 0; i < 60; i++) ok &= getd(&t, i) == 7;
            ND_CHECK(ok);
            nd_tensor_release(&t);
        }
    }
    nd_tensor t = make3(ND_DTYPE_U8, L_CONTIG), i = make3(ND_DTYPE_I64, L_CONTIG);
    nd_fill_cpu(&t, 300);
    nd_fill_cpu(&i, -2.7);
    ND_CHECK(getd(&t, 7) == 44 && getd(&i, 7) == -2);
    /* a large non-contiguous fill runs threaded */
    nd_tensor big, v;
    int64_t s[2] = {700, 400};
    nd_tensor_new(&big, ND_DTYPE_F32, 2, s, nd_cpu_device(), 1);
    nd_tensor_view_of(&v, &big);
    nd_tensor_transpose(&v, 0, 1);
    ND_CHECK_OK(nd_fill_cpu(&v, -1.5));
    double sum = 0;
    for (int64_t k = 0; k < 280000; k++) sum += ((float *)nd_tensor_data(&big))[k];
    ND_CHECK(sum == -1.5 * 280000);
    nd_tensor_release(&t);
    nd_tensor_release(&i);
    nd_tensor_release(&big);
    nd_tensor_release(&v);
}

/* ---- reductions ---- */

/* The reference reduction of n values v (positions 0..n-1); *idx gets the arg position. */
static double ref_reduce(nd_reduce_op op, const double *v, int64_t n, double p, int64_t *idx)
{
    double s = 0;
    *idx = 0;
    switch (op) {
    case ND_REDUCE_SUM: for (int64_t i = 0; i < n; i++) s += v[i]; return s;
    case ND_REDUCE_PROD: s = 1; for (int64_t i = 0; i < n; i++) s *= v[i]; return s;
    case ND_REDUCE_MEAN: for (int64_t i = 0; i < n; i++) s += v[i]; return s / n;
    case ND_REDUCE_MAX: case ND_REDUCE_MIN: case ND_REDUCE_ARGMAX: case ND_REDUCE_ARGMIN: {
        int mx = op == ND_REDUCE_MAX || op == ND_REDUCE_ARGMAX;
        for (int64_t i = 0; i < n; i++) {
            if (v[i] != v[i]) { *idx = i; return op == ND_REDUCE_MAX || op == ND_REDUCE_MIN ? v[i] : (double)i; }
            if (mx ? v[i] > v[*idx] : v[i] < v[*idx]) *idx = i;
        }
        return op == ND_REDUCE_MAX || op == ND_REDUCE_MIN ? v[*idx] : (double)*idx;
    }
    case ND_REDUCE_VAR: case ND_REDUCE_STD: {
        double m = 0;
        for (int64_t i = 0; i < n; i++) m += v[i];
        m /= n;
        for (int64_t i = 0; i < n; i++) s += (v[i] - m) * (v[i] - m);
        s /= (double)(n - (p != 0));
        return op == ND_REDUCE_STD ? sqrt(s) : s;
    }
    case ND_REDUCE_NORM:
        if (p == 0) { for (int64_t i = 0; i < n; i++) s += v[i] != 0; return s; }
        if (isinf(p)) { for (int64_t i = 0; i < n; i++) s = fabs(v[i]) > s ? fabs(v[i]) : s; return s; }
        for (int64_t i = 0; i < n; i++) s += pow(fabs(v[i]), p);
        return pow(s, 1 / p);
    case ND_REDUCE_LOGSUMEXP: {
        double m = -INFINITY;
        for (int64_t i = 0; i < n; i++) m = v[i] > m ? v[i] : m;
        for (int64_t i = 0; i < n; i++) s += exp(v[i] - m);
        return m + log(s);
    }
    case ND_REDUCE_COUNT_NONZERO: for (int64_t i = 0; i < n; i++) s += v[i] != 0; return s;
    case ND_REDUCE_ANY: for (int64_t i = 0; i < n; i++) if (v[i] != 0) return 1; return 0;
    case ND_REDUCE_ALL: for (int64_t i = 0; i < n; i++) if (v[i] == 0) return 0; return 1;
    default: return NAN;
    }
}

static double reduce_p(nd_reduce_op op, int variant)
{
    if (op == ND_REDUCE_NORM) return variant == 0 ? 2 : variant == 1 ? 1 : variant == 2 ? 0 : variant == 3 ? 3 : INFINITY;
    if (op == ND_REDUCE_VAR || op == ND_REDUCE_STD) return variant % 2;
    return 0;
}

/* Checks nd_reduce_cpu along every dim and nd_reduce_all_cpu of x against ref_reduce. */
static int check_reduce(const nd_tensor *x, nd_reduce_op op, double p, double tol)
{
    int ok = 1, arg = op == ND_REDUCE_ARGMAX || op == ND_REDUCE_ARGMIN;
    int ext = arg || op == ND_REDUCE_MAX || op == ND_REDUCE_MIN;
    int64_t n = nd_tensor_numel(x);
    double *buf = malloc((size_t)n * sizeof(double));
    for (int dim = 0; dim < x->ndim && ok; dim++) {
        nd_tensor vals = empty_of(ND_DTYPE_F64), idx = empty_of(ND_DTYPE_I64);
        nd_status st = nd_reduce_cpu(arg ? NULL : &vals, ext ? &idx : NULL, x, dim, op, p);
        if (st != ND_OK) {
            fprintf(stderr, "reduce %s: %s\n", nd_reduce_name(op), nd_error_message());
            ok = 0;
        }
        int64_t L = x->size[dim], inner = 1;
        for (int d = dim + 1; d < x->ndim; d++) inner *= x->size[d];
        for (int64_t o = 0; ok && o < n / L; o++) {
            int64_t base = (o / inner) * L * inner + o % inner;
            for (int64_t k = 0; k < L; k++) buf[k] = getd(x, base + k * inner);
            int64_t ri;
            double want = ref_reduce(op, buf, L, p, &ri);
            if (!arg) ok &= close_to(getd(&vals, o), want, tol);
            if (ext) ok &= getd(&idx, o) == (double)ri;
            if (!ok)
                fprintf(stderr, "reduce %s (p %g) %s dim %d at %lld: got %g [%g] want %g [%lld]\n", nd_reduce_name(op),
                        p, nd_dtype_name(x->dtype), dim, (long long)o, arg ? 0 : getd(&vals, o),
                        ext ? getd(&idx, o) : 0, want, (long long)ri);
        }
        nd_tensor_release(&vals);
        nd_tensor_release(&idx);
    }
    for (int64_t k = 0; k < n; k++) buf[k] = getd(x, k);
    int64_t ri;
    double want = ref_reduce(op, buf, n, p, &ri);
    nd_scalar r;
    nd_status st = nd_reduce_all_cpu(&r, x, op, p);
    int ok2 = st == ND_OK && close_to(r.f, want, tol) && (!ext || r.index == ri);
    if (!ok2)
        fprintf(stderr, "reduce_all %s (p %g) %s: got %g [%lld] want %g [%lld]\n", nd_reduce_name(op), p,
                nd_dtype_name(x->dtype), r.f, (long long)r.index, want, (long long)ri);
    free(buf);
    return ok && ok2;
}

static void test_reduce_all_ops(void)
{
    for (int di = 0; di < 4; di++) {
        nd_dtype dt = all_dt[di];
        for (int op = 0; op < ND_REDUCE_COUNT; op++) {
            int variants = op == ND_REDUCE_NORM ? 5 : (op == ND_REDUCE_VAR || op == ND_REDUCE_STD) ? 2 : 1;
            for (int var = 0; var < variants; var++) {
                for (int lay = 0; lay < L_LAYOUTS; lay++) {
                    nd_tensor x = make3(dt, lay);
                    nd_tensor w; /* x without its expansion, for in-place edits */
                    nd_tensor_view_of(&w, &x);
                    if (lay == L_EXPAND) nd_tensor_narrow(&w, 1, 0, 1);
                    if (op == ND_REDUCE_PROD && nd_dtype_is_float(dt)) ND_CHECK_OK(nd_unary_cpu(&w, &w, ND_UNARY_MUL, 0.5, 0));
                    if (op == ND_REDUCE_PROD && !nd_dtype_is_float(dt))
                        ND_CHECK_OK(nd_unary_cpu(&w, &w, ND_UNARY_REMAINDER, 3, 0));
                    nd_tensor_release(&w);
                    if (dt != ND_DTYPE_U8) setd(&x, 7, 0); /* zeros for count / any / all */
                    double tol = dt == ND_DTYPE_F32 ? 1e-5 : 1e-10;
                    ND_CHECK(check_reduce(&x, (nd_reduce_op)op, reduce_p((nd_reduce_op)op, var), tol));
                    nd_tensor_release(&x);
                }
            }
        }
    }
}

static void test_reduce_special(void)
{
    /* big enough for the threaded paths: 2-d row-major, transposed, and a long 1-d line */
    nd_tensor big;
    int64_t s[2] = {300, 700};
    nd_tensor_new(&big, ND_DTYPE_F32, 2, s, nd_cpu_device(), 0);
    nd_rng_fill_uniform(&rng, &big, -1, 1);
    static const nd_reduce_op ops[] = {ND_REDUCE_SUM, ND_REDUCE_MEAN, ND_REDUCE_MAX, ND_REDUCE_ARGMIN,
                                       ND_REDUCE_VAR, ND_REDUCE_LOGSUMEXP, ND_REDUCE_NORM};
    for (size_t k = 0; k < sizeof ops / sizeof *ops; k++) {
        ND_CHECK(check_reduce(&big, ops[k], ops[k] == ND_REDUCE_VAR ? 1 : 2, 1e-5));
        nd_tensor t;
        nd_tensor_view_of(&t, &big);
        nd_tensor_transpose(&t, 0, 1);
        ND_CHECK(check_reduce(&t, ops[k], ops[k] == ND_REDUCE_VAR ? 1 : 2, 1e-5));
        nd_tensor_release(&t);
        nd_tensor_view_of(&t, &big);
        nd_tensor_view(&t, 1, (int64_t[]){210000});
        ND_CHECK(check_reduce(&t, ops[k], ops[k] == ND_REDUCE_VAR ? 1 : 2, 1e-5));
        nd_tensor_release(&t);
    }
    /* NaN: max/min/argmax report the first NaN; sums and logsumexp become NaN */
    setd(&big, 5 * 700 + 9, NAN);
    setd(&big, 5 * 700 + 20, NAN);
    nd_scalar r;
    ND_CHECK_OK(nd_reduce_all_cpu(&r, &big, ND_REDUCE_MAX, 0));
    ND_CHECK(isnan(r.f) && r.index == 5 * 700 + 9);
    nd_tensor v = empty_of(ND_DTYPE_F32), ix = empty_of(ND_DTYPE_I64);
    ND_CHECK_OK(nd_reduce_cpu(&v, &ix, &big, 1, ND_REDUCE_MIN, 0));
    ND_CHECK(isnan(getd(&v, 5)) && getd(&ix, 5) == 9 && !isnan(getd(&v, 6)));
    nd_tensor cv = empty_of(ND_DTYPE_F64), ci = empty_of(ND_DTYPE_I64); /* along dim 1: the column path */
    ND_CHECK_OK(nd_reduce_cpu(&cv, &ci, &big, 0, ND_REDUCE_MAX, 0));
    ND_CHECK(isnan(getd(&cv, 9)) && getd(&ci, 9) == 5 && isnan(getd(&cv, 20)) && !isnan(getd(&cv, 21)));
    nd_tensor_release(&cv);
    nd_tensor_release(&ci);
    ND_CHECK_OK(nd_reduce_all_cpu(&r, &big, ND_REDUCE_LOGSUMEXP, 0));
    ND_CHECK(isnan(r.f));
    /* integer results are exact and flagged; counts; mean of int64 is a double */
    nd_tensor i = make3(ND_DTYPE_I64, L_TRANS);
    ND_CHECK_OK(nd_reduce_all_cpu(&r, &i, ND_REDUCE_SUM, 0));
    double s0 = 0;
    for (int64_t k = 0; k < 60; k++) s0 += getd(&i, k);
    ND_CHECK(r.is_int && r.i == (int64_t)s0);
    ND_CHECK_OK(nd_reduce_all_cpu(&r, &i, ND_REDUCE_MEAN, 0));
    ND_CHECK(!r.is_int && close_to(r.f, s0 / 60, 1e-15));
    /* uint8 sums into an int64 result do not wrap */
    nd_tensor u = make3(ND_DTYPE_U8, L_CONTIG), us = empty_of(ND_DTYPE_I64);
    nd_fill_cpu(&u, 255);
    ND_CHECK_OK(nd_reduce_cpu(&us, NULL, &u, 1, ND_REDUCE_SUM, 0));
    ND_CHECK(getd(&us, 0) == 4 * 255);
    /* var of one element (unbiased) is NaN; empty tensors; errors */
    nd_tensor one, e = empty_of(ND_DTYPE_F32), bad = empty_of(ND_DTYPE_F32);
    nd_tensor_new(&one, ND_DTYPE_F64, 1, (int64_t[]){1}, nd_cpu_device(), 1);
    ND_CHECK_OK(nd_reduce_all_cpu(&r, &one, ND_REDUCE_VAR, 1));
    ND_CHECK(isnan(r.f));
    ND_CHECK_OK(nd_reduce_all_cpu(&r, &e, ND_REDUCE_SUM, 0));
    ND_CHECK(r.f == 0);
    ND_CHECK(nd_reduce_all_cpu(&r, &e, ND_REDUCE_MAX, 0) == ND_ERR_SHAPE);
    ND_CHECK(nd_reduce_cpu(&bad, NULL, &i, 3, ND_REDUCE_SUM, 0) == ND_ERR_INDEX);
    ND_CHECK(strstr(nd_error_message(), "dimension 4") && strstr(nd_error_message(), "3x4x5"));
    nd_tensor wrong;
    nd_tensor_new(&wrong, ND_DTYPE_F32, 2, (int64_t[]){3, 4}, nd_cpu_device(), 0);
    ND_CHECK(nd_reduce_cpu(&wrong, NULL, &i, 2, ND_REDUCE_SUM, 0) == ND_ERR_SHAPE);
    ND_CHECK(strstr(nd_error_message(), "3x4x1") != NULL);
    nd_tensor *all[] = {&big, &v, &ix, &i, &u, &us, &one, &e, &bad, &wrong};
    for (size_t k = 0; k < sizeof all / sizeof *all; k++) nd_tensor_release(all[k]);
}

static void test_cumulate(void)
{
    for (int di = 0; di < 4; di++) {
        nd_dtype dt = all_dt[di];
        for (int op = 0; op < ND_CUMULATE_COUNT; op++) {
            for (int lay = 0; lay < 3; lay++) {
                nd_tensor x = make3(dt, lay);
                if (op == ND_CUMULATE_PROD) nd_unary_cpu(&x, &x, ND_UNARY_CLAMP, -2, 2);
                for (int dim = 0; dim < 3; dim++) {
                    nd_tensor out = empty_of(nd_dtype_is_float(dt) ? dt : ND_DTYPE_I64);
                    ND_CHECK_OK(nd_cumulate_cpu(&out, &x, dim, (nd_cumulate_op)op));
                    int64_t L = x.size[dim], inner = 1;
                    for (int d = dim + 1; d < 3; d++) inner *= x.size[d];
                    int ok = 1;
                    for (int64_t o = 0; o < 60 / L; o++) {
                        int64_t base = (o / inner) * L * inner + o % inner;
                        double a = op == ND_CUMULATE_SUM ? 0 : 1;
                        for (int64_t k = 0; k < L; k++) {
                            double v = getd(&x, base + k * inner);
                            a = op == ND_CUMULATE_SUM ? a + v : a * v;
                            ok &= close_to(getd(&out, base + k * inner), a, dt == ND_DTYPE_F32 ? 1e-5 : 1e-12);
                        }
                    }
                    ND_CHECK(ok);
                    nd_tensor_release(&out);
                }
                nd_tensor_release(&x);
            }
        }
    }
    /* in place */
    nd_tensor x = make3(ND_DTYPE_F64, L_NARROW), x0 = empty_of(ND_DTYPE_F64);
    nd_tensor_clone(&x0, &x, ND_DTYPE_F64);
    ND_CHECK_OK(nd_cumulate_cpu(&x, &x, 2, ND_CUMULATE_SUM));
    ND_CHECK(close_to(getd(&x, 4), getd(&x0, 0) + getd(&x0, 1) + getd(&x0, 2) + getd(&x0, 3) + getd(&x0, 4), 1e-14));
    nd_tensor_release(&x);
    nd_tensor_release(&x0);
}

/* Large contiguous and strided maps (threaded) against the small-case kernels' results. */
static void test_large_maps(void)
{
    nd_tensor a, b, o1 = empty_of(ND_DTYPE_F32), o2 = empty_of(ND_DTYPE_F32);
    int64_t s[2] = {500, 400};
    nd_tensor_new(&a, ND_DTYPE_F32, 2, s, nd_cpu_device(), 0);
    nd_tensor_new(&b, ND_DTYPE_F32, 2, s, nd_cpu_device(), 0);
    nd_rng_fill_uniform(&rng, &a, -3, 3);
    nd_rng_fill_uniform(&rng, &b, -3, 3);
    ND_CHECK_OK(nd_binary_cpu(&o1, &a, &b, ND_BINARY_ADD, 0.5));
    ND_CHECK_OK(nd_unary_cpu(&o2, &a, ND_UNARY_SIGMOID, 0, 0));
    int ok = 1;
    for (int64_t i = 0; i < 200000; i += 7) {
        float x = ((float *)nd_tensor_data(&a))[i], y = ((float *)nd_tensor_data(&b))[i];
        ok &= close_to(((float *)nd_tensor_data(&o1))[i], x + 0.5 * y, 1e-6);
        ok &= close_to(((float *)nd_tensor_data(&o2))[i], 1 / (1 + exp(-x)), 1e-6);
    }
    ND_CHECK(ok);
    nd_tensor at_, o3 = empty_of(ND_DTYPE_F64);
    nd_tensor_view_of(&at_, &a);
    nd_tensor_transpose(&at_, 0, 1);
    ND_CHECK_OK(nd_unary_cpu(&o3, &at_, ND_UNARY_SQUARE, 0, 0));
    ok = 1;
    for (int64_t i = 0; i < 200000; i += 13) {
        double x = getd(&at_, i);
        ok &= close_to(getd(&o3, i), x * x, 1e-6);
    }
    ND_CHECK(ok);
    nd_tensor *all[] = {&a, &b, &o1, &o2, &at_, &o3};
    for (size_t k = 0; k < sizeof all / sizeof *all; k++) nd_tensor_release(all[k]);
}

void nd_test_math(void)
{
    nd_rng_seed(&rng, 1234);
    test_unary_all();
    test_unary_special();
    test_binary_all();
    test_binary_special();
    test_ternary();
    test_fill();
    test_reduce_all_ops();
    test_reduce_special();
    test_cumulate();
    test_large_maps();
}
