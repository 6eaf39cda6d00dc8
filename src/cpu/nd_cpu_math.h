/* CPU elementwise maps, fills, reductions and cumulative ops (elementwise.c, reduce.c).
 *
 * Conventions for every function here:
 * - Stateless; argument order is outputs, then inputs, then the op and its parameters.
 *   Returns ND_OK or an error status whose message names the op and the shapes.
 * - Every operand may have any strides (transposed, narrowed, expanded views); iteration goes
 *   through nd_iter (transposed operands in cache tiles). float32/float64 operands of one dtype
 *   run typed loops (unit-stride ones vectorize), as do their comparisons into uint8 masks; other
 *   mixes convert through small buffers. Work above ND_MATH_PARALLEL_MIN elements is split over
 *   OpenMP threads.
 * - An `out` argument is either EMPTY (no storage: it is allocated here, contiguous, with the
 *   dtype the empty tensor carries, and the caller owns the new reference) or already has exactly
 *   the result shape (any strides, but not an expanded view) and is written in place.
 * - Operands may have different dtypes. Values are computed in float64 when any operand (or the
 *   result) is a float dtype, or the op is float-only (sqrt, exp, ...); otherwise exactly in int64
 *   (wrapping on overflow). A float result stored into an integer tensor is truncated toward zero
 *   (NaN gives 0, out-of-range saturates to int64); uint8 keeps the low 8 bits (wraps modulo 256).
 *   Float-only ops need a float `out`. Scalar parameters are doubles: integral ones keep integer
 *   ops exact; a non-integral parameter (x:mul(0.5) on int64) moves the op to float64.
 * - Integer division or modulo by zero is an error (ND_ERR_ARG); `out` may then be partly written.
 * - `out` may be the same view as an input (in-place ops), but must not partially overlap one.
 * - Dimensions are 0-based; messages print them 1-based. CPU tensors only (ND_ERR_DEVICE). */
#ifndef ND_CPU_MATH_H
#define ND_CPU_MATH_H

#include "nd.h"

/* Elements of work below which loops stay on one thread. */
#define ND_MATH_PARALLEL_MIN 65536

/* ---- unary maps: out = f(x; p1, p2) (elementwise.c) ---- */
typedef enum nd_unary_op {
    ND_UNARY_NEG, ND_UNARY_ABS, ND_UNARY_SIGN, ND_UNARY_RELU, ND_UNARY_SQUARE,
    ND_UNARY_FLOOR, ND_UNARY_CEIL, ND_UNARY_ROUND, ND_UNARY_TRUNC, ND_UNARY_FRAC,
    /* float-only from here to ND_UNARY_ATAN (need a float out) */
    ND_UNARY_SQRT, ND_UNARY_RSQRT, ND_UNARY_EXP, ND_UNARY_LOG, ND_UNARY_LOG1P, ND_UNARY_EXPM1,
    ND_UNARY_LOG2, ND_UNARY_LOG10, ND_UNARY_TANH, ND_UNARY_SIGMOID, ND_UNARY_SIN, ND_UNARY_COS,
    ND_UNARY_TAN, ND_UNARY_ASIN, ND_UNARY_ACOS, ND_UNARY_ATAN, ND_UNARY_SINH, ND_UNARY_COSH,
    ND_UNARY_ERF, ND_UNARY_RECIPROCAL,
    /* with scalar parameters */
    ND_UNARY_CLAMP,     /* min(max(x, p1), p2); NaN stays NaN */
    ND_UNARY_POW,       /* x ^ p1 (integers: p1 must be integral; a negative one truncates) */
    ND_UNARY_RPOW,      /* p1 ^ x */
    ND_UNARY_ADD,       /* x + p1 */
    ND_UNARY_RSUB,      /* p1 - x */
    ND_UNARY_MUL,       /* x * p1 */
    ND_UNARY_DIV,       /* x / p1 (integers: truncating division, Torch7/C) */
    ND_UNARY_RDIV,      /* p1 / x */
    ND_UNARY_FLOORDIV,  /* floor(x / p1) */
    ND_UNARY_FMOD,      /* C fmod: result has the sign of x */
    ND_UNARY_REMAINDER, /* Lua/Python %: result has the sign of p1 */
    ND_UNARY_MAX,       /* max(x, p1); NaN in x propagates */
    ND_UNARY_MIN,       /* min(x, p1) */
    /* comparisons with p1: out (any dtype) gets 0 or 1 */
    ND_UNARY_EQ, ND_UNARY_NE, ND_UNARY_LT, ND_UNARY_LE, ND_UNARY_GT, ND_UNARY_GE,
    ND_UNARY_COUNT
} nd_unary_op;

/* out (x's shape) = f(x). "neg" -> ND_UNARY_NEG etc.: the lower-case name after ND_UNARY_. */
nd_status nd_unary_cpu(nd_tensor *out, const nd_tensor *x, nd_unary_op op, double p1, double p2);
const char *nd_unary_name(nd_unary_op op);

/* ---- binary maps: out = f(a, b; alpha), a, b, out of one shape (expand first) ---- */
typedef enum nd_binary_op {
    ND_BINARY_ADD,       /* a + alpha * b */
    ND_BINARY_SUB,       /* a - alpha * b */
    ND_BINARY_MUL, ND_BINARY_DIV /* integers truncate */, ND_BINARY_FLOORDIV,
    ND_BINARY_POW, ND_BINARY_MAX, ND_BINARY_MIN /* NaN propagates */, ND_BINARY_FMOD,
    ND_BINARY_REMAINDER,
    ND_BINARY_ATAN2,     /* float-only */
    ND_BINARY_LERP,      /* a + alpha * (b - a) */
    /* 0/1 results into an out of any dtype */
    ND_BINARY_EQ, ND_BINARY_NE, ND_BINARY_LT, ND_BINARY_LE, ND_BINARY_GT, ND_BINARY_GE,
    ND_BINARY_AND, ND_BINARY_OR, ND_BINARY_XOR, /* logical: nonzero is true */
    ND_BINARY_COUNT
} nd_binary_op;

nd_status nd_binary_cpu(nd_tensor *out, const nd_tensor *a, const nd_tensor *b, nd_binary_op op, double alpha);
const char *nd_binary_name(nd_binary_op op);

/* ---- ternary maps: out = f(a, b, c; v), all of one shape ---- */
typedef enum nd_ternary_op {
    ND_TERNARY_ADDCMUL, /* a + v * b * c */
    ND_TERNARY_ADDCDIV, /* a + v * b / c */
    ND_TERNARY_LERP,    /* a + c * (b - a) (c: the weight) */
    ND_TERNARY_WHERE,   /* a != 0 ? b : c (a: the mask, any dtype) */
    ND_TERNARY_COUNT
} nd_ternary_op;

nd_status nd_ternary_cpu(nd_tensor *out, const nd_tensor *a, const nd_tensor *b, const nd_tensor *c,
                         nd_ternary_op op, double v);
const char *nd_ternary_name(nd_ternary_op op);

/* t (any layout, expanded views included) = value, converted to t's dtype as above. */
nd_status nd_fill_cpu(nd_tensor *t, double value);

/* ---- reductions (reduce.c) ---- */
typedef enum nd_reduce_op {
    ND_REDUCE_SUM, ND_REDUCE_PROD, ND_REDUCE_MEAN,
    ND_REDUCE_MAX, ND_REDUCE_MIN,       /* first occurrence; the first NaN wins */
    ND_REDUCE_ARGMAX, ND_REDUCE_ARGMIN,
    ND_REDUCE_VAR, ND_REDUCE_STD,       /* p != 0: unbiased (divide by n - 1; NaN when n == 1) */
    ND_REDUCE_NORM,                     /* (sum |x|^p)^(1/p); p = 0 counts nonzeros, p = +-inf */
    ND_REDUCE_LOGSUMEXP,
    ND_REDUCE_COUNT_NONZERO, ND_REDUCE_ANY, ND_REDUCE_ALL,
    ND_REDUCE_COUNT
} nd_reduce_op;

const char *nd_reduce_name(nd_reduce_op op);

/* Along dim, keeping it with size 1 (Torch7): values and indices have x's shape with
 * size[dim] = 1. values: any dtype (float32 sums accumulate in double, integer sums and products
 * in int64); indices: int64, 0-based positions along dim, written for MAX/MIN/ARGMAX/ARGMIN.
 * MAX/MIN need values (indices optional: NULL); ARGMAX/ARGMIN need indices (values optional);
 * the other ops need values and ignore indices. A reduction over a 0-length dim gives 0 (sum,
 * count, any), 1 (prod, all), NaN (mean, var) and is an error for max/min. */
nd_status nd_reduce_cpu(nd_tensor *values, nd_tensor *indices, const nd_tensor *x, int dim, nd_reduce_op op,
                        double p);

/* A whole-tensor result: `f` always; `i` and is_int for exact integer results (sums, products,
 * max/min of integer tensors, counts); index: 0-based row-major position for MAX/MIN/ARG*. */
typedef struct nd_scalar {
    double f;
    int64_t i;
    int is_int;
    int64_t index;
} nd_scalar;

/* Reduces every element of x (any layout). An empty x gives 0 (sum, count, norm, any), 1 (prod,
 * all), NaN (mean, var, std), -inf (logsumexp) and is an error for max/min/arg*. */
nd_status nd_reduce_all_cpu(nd_scalar *out, const nd_tensor *x, nd_reduce_op op, double p);

/* out (x's shape) = running sum / product of x along dim (out may be x). Floats accumulate in
 * double, integers in int64. */
typedef enum nd_cumulate_op { ND_CUMULATE_SUM, ND_CUMULATE_PROD, ND_CUMULATE_COUNT } nd_cumulate_op;
nd_status nd_cumulate_cpu(nd_tensor *out, const nd_tensor *x, int dim, nd_cumulate_op op);
const char *nd_cumulate_name(nd_cumulate_op op);

/* ---- shared by elementwise.c and reduce.c (internal) ---- */

/* The accumulator every reduction folds (reduce.c, and on the device reduce.cu): one segment
 * of elements, partials combined in order. */
typedef struct nd_reduce_acc {
    int64_t n;   /* elements seen; 0 = nothing yet */
    double s;    /* sum, product, sum |x|^p, exp-sum (logsumexp) */
    double m;    /* extreme value, mean (var), max (logsumexp) */
    double m2;   /* sum of squared deviations (var) */
    int64_t is;  /* integer sum / product / extreme; counts */
    int64_t idx; /* position of the extreme */
    int nan;     /* a NaN was seen (extremes, logsumexp) */
} nd_reduce_acc;

/* Processes n elements of one run: operand k starts at p[k] and steps s[k] elements. `range` is
 * the number of the range being walked and `flat` the row-major position of the run's first element. */
typedef void (*nd_math_run_fn)(void *ctx, int64_t range, int64_t flat, char *const *p, const int64_t *s, int64_t n);
/* Flags of nd_math_foreach. */
#define ND_MATH_PARALLEL 1  /* ranges may run on OpenMP threads */
#define ND_MATH_UNORDERED 2 /* runs may come in any order (independent elements): allows cache tiles */
/* Walks the n (<= ND_ITER_MAX) same-shape tensors t in row-major order, split into consecutive
 * ranges of range_len elements (the last one shorter); ranges run on OpenMP threads when
 * ND_MATH_PARALLEL is set and there is more than one. Each range is cut into runs at the inner
 * (merged) dimension. With ND_MATH_UNORDERED, when an operand steps through memory with a large
 * inner stride (a transposed view), the last two dims are walked in tiles instead, so that
 * every operand stays in cache; `range` is then the tile's number. */
void nd_math_foreach(int n, const nd_tensor *const *t, int64_t range_len, int flags, nd_math_run_fn f, void *ctx);
/* The range length that spreads numel elements of `cost` work each over the threads (numel itself
 * when the work is below ND_MATH_PARALLEL_MIN or only one thread is available). */
int64_t nd_math_range_len(int64_t numel, int64_t cost);
/* Checks that a tensor is on the CPU; `op` and `what` name it in the message. */
nd_status nd_math_check_cpu(const char *op, const char *what, const nd_tensor *t);
/* Allocates an empty out with the given shape, or checks that out has it and is not expanded. */
nd_status nd_math_prepare_out(const char *op, nd_tensor *out, int ndim, const int64_t *size);
/* Element conversions for the generic paths (n elements, strided by s elements). */
void nd_math_load_f64(double *dst, const char *p, int64_t s, nd_dtype dt, int64_t n);
void nd_math_load_i64(int64_t *dst, const char *p, int64_t s, nd_dtype dt, int64_t n);
void nd_math_store_f64(char *p, int64_t s, nd_dtype dt, const double *src, int64_t n);
void nd_math_store_i64(char *p, int64_t s, nd_dtype dt, const int64_t *src, int64_t n);
/* double -> int64 truncating toward zero; NaN -> 0; saturating. */
int64_t nd_math_f2i(double v);

#endif
