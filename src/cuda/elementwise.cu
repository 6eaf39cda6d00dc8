/* Elementwise maps (unary, binary, ternary) on the GPU; the contract is nd_unary_cpu's and its
 * siblings' (src/cpu/nd_cpu_math.h), see nd_cuda_math.h for the GPU differences.
 *
 * Paths, as on the CPU: operands all float32 (or all float64) run typed kernels on the tensors'
 * memory (T = float or double); all-int64 operands the int64 kernel; any other mix converts each
 * element on load and store (the "GEN" kernels: float64 or int64 arithmetic). Each op is one case
 * of a switch OUTSIDE the grid-stride loop, so the loop body holds a single expression.
 * Integer ops that can divide by zero record it in a device status word, read back (the one
 * host synchronisation here) to raise the CPU's error. Also: the helpers shared by the math files
 * (device entry, result preparation, the status word). */
#include <math.h>
#include <string.h>

#include "math_common.cuh"

/* ---- shared helpers (nd_cuda_math.h) ---- */

extern "C" nd_status nd_cuda_math_enter(const char *op, int n, const nd_tensor *const *ts, nd_device *dev)
{
    ND_TRY(nd_cuda_check_device(op, n, ts));
    int index = -1;
    for (int i = 0; i < n && index < 0; i++)
        if (ts[i] && ts[i]->storage) index = nd_tensor_device(ts[i]).index;
    if (index < 0) index = nd_cuda_current_device();
    if (index != nd_cuda_current_device()) ND_TRY(nd_cuda_set_device(index));
    dev->type = ND_DEVICE_CUDA;
    dev->index = index;
    return ND_OK;
}

extern "C" nd_status nd_cuda_math_prepare_out(const char *op, nd_tensor *out, int ndim, const int64_t *size,
                                              nd_device dev)
{
    char s1[ND_SHAPE_STR_MAX], s2[ND_SHAPE_STR_MAX];
    if (!out->storage) {
        if (ndim == 0) return ND_OK; /* empty result: out stays empty */
        return nd_tensor_new(out, out->dtype, ndim, size, dev, 0);
    }
    nd_device od = nd_tensor_device(out);
    if (od.type != ND_DEVICE_CUDA)
        return ND_ERROR(ND_ERR_DEVICE, "%s: the result is on the CPU, the inputs on cuda:%d", op, dev.index);
    if (od.index != dev.index)
        return ND_ERROR(ND_ERR_DEVICE, "%s: the result is on cuda:%d, the inputs on cuda:%d", op, od.index, dev.index);
    nd_tensor want;
    nd_tensor_init_empty(&want, out->dtype);
    want.ndim = ndim;
    for (int d = 0; d < ndim; d++)
        want.size[d] = size[d];
    if (!nd_tensor_same_shape(out, &want))
        return ND_ERROR(ND_ERR_SHAPE, "%s: the result has size %s, expected %s", op,
                        nd_tensor_shape_str(out, s1, sizeof s1), nd_tensor_shape_str(&want, s2, sizeof s2));
    for (int d = 0; d < out->ndim; d++)
        if (out->stride[d] == 0 && out->size[d] > 1)
            return ND_ERROR(ND_ERR_ARG, "%s: the result (%s) is an expanded view (stride 0 in dimension %d)", op,
                            nd_tensor_shape_str(out, s1, sizeof s1), d + 1);
    return ND_OK;
}

#define ND_CM_MAX_DEVICES 16
static nd_cuda_flag *nd_cm_flags[ND_CM_MAX_DEVICES];

extern "C" nd_status nd_cuda_flag_begin(nd_cuda_flag **dflag)
{
    int d = nd_cuda_current_device();
    if (d < 0 || d >= ND_CM_MAX_DEVICES) return ND_ERROR(ND_ERR_DEVICE, "cuda: device %d out of range", d);
    if (!nd_cm_flags[d]) ND_CUDA_TRY(cudaMalloc((void **)&nd_cm_flags[d], sizeof(nd_cuda_flag)));
    ND_CUDA_TRY(cudaMemsetAsync(nd_cm_flags[d], 0, sizeof(nd_cuda_flag), nd_cuda_stream()));
    *dflag = nd_cm_flags[d];
    return ND_OK;
}

extern "C" nd_status nd_cuda_flag_read(int *hit, int64_t *value)
{
    int d = nd_cuda_current_device();
    nd_cuda_flag h = {0, 0, 0};
    if (d >= 0 && d < ND_CM_MAX_DEVICES && nd_cm_flags[d]) {
        ND_CUDA_TRY(cudaMemcpyAsync(&h, nd_cm_flags[d], sizeof h, cudaMemcpyDeviceToHost, nd_cuda_stream()));
        ND_CUDA_TRY(cudaStreamSynchronize(nd_cuda_stream()));
    }
    *hit = h.hit;
    *value = h.value;
    return ND_OK;
}

/* ---- device scalar helpers ---- */

/* float / double overloads of the libm functions the ops use. */
#define ND_CM_F1(NAME, FF, DF)                                                                                         \
    __device__ __forceinline__ float NAME(float v)                                                                     \
    {                                                                                                                  \
        return FF(v);                                                                                                  \
    }                                                                                                                  \
    __device__ __forceinline__ double NAME(double v)                                                                   \
    {                                                                                                                  \
        return DF(v);                                                                                                  \
    }
#define ND_CM_F2(NAME, FF, DF)                                                                                         \
    __device__ __forceinline__ float NAME(float a, float b)                                                            \
    {                                                                                                                  \
        return FF(a, b);                                                                                               \
    }                                                                                                                  \
    __device__ __forceinline__ double NAME(double a, double b)                                                         \
    {                                                                                                                  \
        return DF(a, b);                                                                                               \
    }
ND_CM_F1(m_fabs, fabsf, fabs)
ND_CM_F1(m_floor, floorf, floor)
ND_CM_F1(m_ceil, ceilf, ceil)
ND_CM_F1(m_round, roundf, round)
ND_CM_F1(m_trunc, truncf, trunc)
ND_CM_F1(m_sqrt, sqrtf, sqrt)
ND_CM_F1(m_exp, expf, exp)
ND_CM_F1(m_log, logf, log)
ND_CM_F1(m_log1p, log1pf, log1p)
ND_CM_F1(m_expm1, expm1f, expm1)
ND_CM_F1(m_log2, log2f, log2)
ND_CM_F1(m_log10, log10f, log10)
ND_CM_F1(m_tanh, tanhf, tanh)
ND_CM_F1(m_sin, sinf, sin)
ND_CM_F1(m_cos, cosf, cos)
ND_CM_F1(m_tan, tanf, tan)
ND_CM_F1(m_asin, asinf, asin)
ND_CM_F1(m_acos, acosf, acos)
ND_CM_F1(m_atan, atanf, atan)
ND_CM_F1(m_sinh, sinhf, sinh)
ND_CM_F1(m_cosh, coshf, cosh)
ND_CM_F1(m_erf, erff, erf)
ND_CM_F2(m_pow, powf, pow)
ND_CM_F2(m_fmod, fmodf, fmod)
ND_CM_F2(m_atan2, atan2f, atan2)

template <typename T> __device__ __forceinline__ T m_rem(T a, T b)
{
    T r = m_fmod(a, b);
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
#define MAXN(a, b) (((a) > (b) || (a) != (a)) ? (a) : (b)) /* NaN in a or b propagates */
#define MINN(a, b) (((a) < (b) || (a) != (a)) ? (a) : (b))

/* int64: wrapping arithmetic, division by zero flagged in err (the CPU's helpers). */
__device__ __forceinline__ int64_t wadd(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a + (uint64_t)b);
}
__device__ __forceinline__ int64_t wsub(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a - (uint64_t)b);
}
__device__ __forceinline__ int64_t wmul(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a * (uint64_t)b);
}
__device__ __forceinline__ int64_t idiv(int64_t a, int64_t b, int *err)
{
    if (b == 0) {
        *err = 1;
        return 0;
    }
    if (b == -1) return wsub(0, a);
    return a / b;
}
__device__ __forceinline__ int64_t ifmod(int64_t a, int64_t b, int *err)
{
    if (b == 0) {
        *err = 1;
        return 0;
    }
    if (b == -1) return 0;
    return a % b;
}
__device__ __forceinline__ int64_t irem(int64_t a, int64_t b, int *err)
{
    int64_t r = ifmod(a, b, err);
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
__device__ __forceinline__ int64_t ifloordiv(int64_t a, int64_t b, int *err)
{
    int64_t q = idiv(a, b, err), r = ifmod(a, b, err);
    return (r != 0 && ((r < 0) != (b < 0))) ? q - 1 : q;
}
__device__ __forceinline__ int64_t ipow(int64_t b, int64_t e, int *err)
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

/* Operand k at offset o: typed access (all operands of dtype T) or converting (GEN). */
template <typename T, bool GEN> __device__ __forceinline__ T ld(const nd_cm_iter &it, int k, int64_t o)
{
    if constexpr (GEN)
        return nd_cm_load<T>(it.base[k], o, it.dt[k]);
    else
        return ((const T *)it.base[k])[o];
}
template <typename T, bool GEN> __device__ __forceinline__ void st(const nd_cm_iter &it, int64_t o, T v)
{
    if constexpr (GEN)
        nd_cm_store<T>(it.base[0], o, it.dt[0], v);
    else
        ((T *)it.base[0])[o] = v;
}

/* clang-format off */
/* ---- op lists (the CPU's, over T_) ---- */

#define UNARY_FLOAT_OPS(X)                                                                            \
    X(NEG, -v) X(ABS, m_fabs(v)) X(SIGN, (v > 0 ? (T_)1 : v < 0 ? (T_)-1 : v)) X(RELU, (v < 0 ? (T_)0 : v)) \
    X(SQUARE, v * v) X(FLOOR, m_floor(v)) X(CEIL, m_ceil(v)) X(ROUND, m_round(v)) X(TRUNC, m_trunc(v))  \
    X(FRAC, v - m_trunc(v)) X(SQRT, m_sqrt(v)) X(RSQRT, (T_)1 / m_sqrt(v)) X(EXP, m_exp(v))            \
    X(LOG, m_log(v)) X(LOG1P, m_log1p(v)) X(EXPM1, m_expm1(v)) X(LOG2, m_log2(v)) X(LOG10, m_log10(v)) \
    X(TANH, m_tanh(v)) X(SIGMOID, (T_)1 / ((T_)1 + m_exp(-v))) X(SIN, m_sin(v)) X(COS, m_cos(v))       \
    X(TAN, m_tan(v)) X(ASIN, m_asin(v)) X(ACOS, m_acos(v)) X(ATAN, m_atan(v)) X(SINH, m_sinh(v))       \
    X(COSH, m_cosh(v)) X(ERF, m_erf(v)) X(RECIPROCAL, (T_)1 / v)                                       \
    X(CLAMP, (v < p1 ? p1 : v > p2 ? p2 : v)) X(POW, m_pow(v, p1)) X(RPOW, m_pow(p1, v))               \
    X(ADD, v + p1) X(RSUB, p1 - v) X(MUL, v * p1) X(DIV, v / p1) X(RDIV, p1 / v)                      \
    X(FLOORDIV, m_floor(v / p1)) X(FMOD, m_fmod(v, p1)) X(REMAINDER, m_rem(v, p1))                    \
    X(MAX, MAXN(v, p1)) X(MIN, MINN(v, p1)) X(EQ, (T_)(v == p1)) X(NE, (T_)(v != p1))                 \
    X(LT, (T_)(v < p1)) X(LE, (T_)(v <= p1)) X(GT, (T_)(v > p1)) X(GE, (T_)(v >= p1))

#define UNARY_INT_OPS(X)                                                                              \
    X(NEG, wsub(0, v)) X(ABS, (v < 0 ? wsub(0, v) : v)) X(SIGN, (T_)((v > 0) - (v < 0)))              \
    X(RELU, (v < 0 ? 0 : v)) X(SQUARE, wmul(v, v)) X(FLOOR, v) X(CEIL, v) X(ROUND, v) X(TRUNC, v)     \
    X(FRAC, wsub(v, v)) X(CLAMP, (v < p1 ? p1 : v > p2 ? p2 : v)) X(POW, ipow(v, p1, &err))           \
    X(RPOW, ipow(p1, v, &err)) X(ADD, wadd(v, p1)) X(RSUB, wsub(p1, v)) X(MUL, wmul(v, p1))           \
    X(DIV, idiv(v, p1, &err)) X(RDIV, idiv(p1, v, &err)) X(FLOORDIV, ifloordiv(v, p1, &err))          \
    X(FMOD, ifmod(v, p1, &err)) X(REMAINDER, irem(v, p1, &err)) X(MAX, (v > p1 ? v : p1))            \
    X(MIN, (v < p1 ? v : p1)) X(EQ, (T_)(v == p1)) X(NE, (T_)(v != p1)) X(LT, (T_)(v < p1))           \
    X(LE, (T_)(v <= p1)) X(GT, (T_)(v > p1)) X(GE, (T_)(v >= p1))

#define BINARY_FLOAT_OPS(X)                                                                           \
    X(ADD, a + al * b) X(SUB, a - al * b) X(MUL, a * b) X(DIV, a / b) X(FLOORDIV, m_floor(a / b))     \
    X(POW, m_pow(a, b)) X(MAX, MAXN(a, b)) X(MIN, MINN(a, b)) X(FMOD, m_fmod(a, b))                   \
    X(REMAINDER, m_rem(a, b)) X(ATAN2, m_atan2(a, b)) X(LERP, a + al * (b - a))                       \
    X(EQ, (T_)(a == b)) X(NE, (T_)(a != b)) X(LT, (T_)(a < b)) X(LE, (T_)(a <= b)) X(GT, (T_)(a > b)) \
    X(GE, (T_)(a >= b)) X(AND, (T_)(a != 0 && b != 0)) X(OR, (T_)(a != 0 || b != 0))                 \
    X(XOR, (T_)((a != 0) != (b != 0)))

#define BINARY_INT_OPS(X)                                                                             \
    X(ADD, wadd(a, wmul(al, b))) X(SUB, wsub(a, wmul(al, b))) X(MUL, wmul(a, b))                      \
    X(DIV, idiv(a, b, &err)) X(FLOORDIV, ifloordiv(a, b, &err)) X(POW, ipow(a, b, &err))              \
    X(MAX, (a > b ? a : b)) X(MIN, (a < b ? a : b)) X(FMOD, ifmod(a, b, &err))                        \
    X(REMAINDER, irem(a, b, &err)) X(LERP, wadd(a, wmul(al, wsub(b, a)))) X(EQ, (T_)(a == b))         \
    X(NE, (T_)(a != b)) X(LT, (T_)(a < b)) X(LE, (T_)(a <= b)) X(GT, (T_)(a > b)) X(GE, (T_)(a >= b)) \
    X(AND, (T_)(a != 0 && b != 0)) X(OR, (T_)(a != 0 || b != 0)) X(XOR, (T_)((a != 0) != (b != 0)))

#define TERNARY_FLOAT_OPS(X)                                                                          \
    X(ADDCMUL, a + v * b * c) X(ADDCDIV, a + v * b / c) X(LERP, a + c * (b - a)) X(WHERE, (a != 0 ? b : c))

#define TERNARY_INT_OPS(X)                                                                            \
    X(ADDCMUL, wadd(a, wmul(v, wmul(b, c)))) X(ADDCDIV, wadd(a, idiv(wmul(v, b), c, &err)))           \
    X(LERP, wadd(a, wmul(c, wsub(b, a)))) X(WHERE, (a != 0 ? b : c))

/* ---- kernels: operand 0 is the result ---- */

#define UCASE(OP, EXPR)                                                                               \
    case ND_UNARY_##OP:                                                                               \
        ND_CM_LOOP(it, 2, {                                                                           \
            T_ v = ld<T_, GEN>(it, 1, off[1]);                                                        \
            st<T_, GEN>(it, off[0], (T_)(EXPR));                                                      \
        }) break;
#define BCASE(OP, EXPR)                                                                               \
    case ND_BINARY_##OP:                                                                              \
        ND_CM_LOOP(it, 3, {                                                                           \
            T_ a = ld<T_, GEN>(it, 1, off[1]), b = ld<T_, GEN>(it, 2, off[2]);                        \
            st<T_, GEN>(it, off[0], (T_)(EXPR));                                                      \
        }) break;
#define TCASE(OP, EXPR)                                                                               \
    case ND_TERNARY_##OP:                                                                             \
        ND_CM_LOOP(it, 4, {                                                                           \
            T_ a = ld<T_, GEN>(it, 1, off[1]), b = ld<T_, GEN>(it, 2, off[2]), c = ld<T_, GEN>(it, 3, off[3]); \
            st<T_, GEN>(it, off[0], (T_)(EXPR));                                                      \
        }) break;
/* clang-format on */

template <typename T_, bool GEN>
__global__ void unary_float_kernel(const __grid_constant__ nd_cm_iter it, int op, T_ p1, T_ p2)
{
    switch (op) {
        UNARY_FLOAT_OPS(UCASE)
    default:
        break;
    }
}

template <bool GEN>
__global__ void unary_int_kernel(const __grid_constant__ nd_cm_iter it, int op, int64_t p1, int64_t p2,
                                 nd_cuda_flag *flag)
{
    typedef int64_t T_;
    int err = 0;
    switch (op) {
        UNARY_INT_OPS(UCASE)
    default:
        break;
    }
    if (err && flag) nd_cm_flag_set(flag, 1);
}

template <typename T_, bool GEN>
__global__ void binary_float_kernel(const __grid_constant__ nd_cm_iter it, int op, T_ al)
{
    switch (op) {
        BINARY_FLOAT_OPS(BCASE)
    default:
        break;
    }
}

template <bool GEN>
__global__ void binary_int_kernel(const __grid_constant__ nd_cm_iter it, int op, int64_t al, nd_cuda_flag *flag)
{
    typedef int64_t T_;
    int err = 0;
    switch (op) {
        BINARY_INT_OPS(BCASE)
    default:
        break;
    }
    if (err && flag) nd_cm_flag_set(flag, 1);
}

template <typename T_, bool GEN>
__global__ void ternary_float_kernel(const __grid_constant__ nd_cm_iter it, int op, T_ v)
{
    switch (op) {
        TERNARY_FLOAT_OPS(TCASE)
    default:
        break;
    }
}

template <bool GEN>
__global__ void ternary_int_kernel(const __grid_constant__ nd_cm_iter it, int op, int64_t v, nd_cuda_flag *flag)
{
    typedef int64_t T_;
    int err = 0;
    switch (op) {
        TERNARY_INT_OPS(TCASE)
    default:
        break;
    }
    if (err && flag) nd_cm_flag_set(flag, 1);
}

/* ---- host side ---- */

static int is_integral(double v)
{
    return v == v && v == trunc(v) && fabs(v) < 9.2e18;
}

static double round_to_f32(double v)
{
    volatile float f = (float)v;
    return f;
}

/* Device, dtype and shape checks shared by the maps; enters the inputs' device. */
static nd_status check_inputs(const char *op, int n, const nd_tensor *const *in, nd_tensor *out, nd_device *dev)
{
    char s1[ND_SHAPE_STR_MAX], s2[ND_SHAPE_STR_MAX];
    for (int k = 0; k < n; k++) {
        if ((unsigned)in[k]->dtype >= ND_DTYPE_COUNT) return ND_ERROR(ND_ERR_DTYPE, "%s: invalid dtype", op);
        if (k > 0 && !nd_tensor_same_shape(in[0], in[k]))
            return ND_ERROR(ND_ERR_SHAPE, "%s: sizes %s and %s differ (broadcast with expand first)", op,
                            nd_tensor_shape_str(in[0], s1, sizeof s1), nd_tensor_shape_str(in[k], s2, sizeof s2));
    }
    const nd_tensor *ts[ND_CM_MAX_OPS] = {out};
    for (int k = 0; k < n; k++)
        ts[k + 1] = in[k];
    return nd_cuda_math_enter(op, n + 1, ts, dev);
}

static nd_status div_zero(const char *op)
{
    return ND_ERROR(ND_ERR_ARG, "%s: integer division by zero", op);
}

/* Reads the status word when `flag` was armed; a set flag is an integer division by zero. */
static nd_status finish(const char *op, nd_cuda_flag *flag)
{
    ND_CUDA_LAUNCH_CHECK();
    if (!flag) return ND_OK;
    int hit;
    int64_t v;
    ND_TRY(nd_cuda_flag_read(&hit, &v));
    return hit ? div_zero(op) : ND_OK;
}

/* Launches KERNEL<T, GEN>: typed (all operands of T's dtype) or converting (gen). */
#define LAUNCH(KERNEL, T, gen, ...)                                                                                    \
    do {                                                                                                               \
        unsigned nb_ = nd_cm_blocks(it.n);                                                                             \
        if (gen)                                                                                                       \
            KERNEL<T, true><<<nb_, ND_CM_THREADS, 0, nd_cuda_stream()>>>(it, __VA_ARGS__);                             \
        else                                                                                                           \
            KERNEL<T, false><<<nb_, ND_CM_THREADS, 0, nd_cuda_stream()>>>(it, __VA_ARGS__);                            \
    } while (0)
#define LAUNCH_F32(KERNEL, ...)                                                                                        \
    KERNEL<float, false><<<nd_cm_blocks(it.n), ND_CM_THREADS, 0, nd_cuda_stream()>>>(it, __VA_ARGS__)
#define LAUNCH_INT(KERNEL, gen, ...)                                                                                   \
    do {                                                                                                               \
        unsigned nb_ = nd_cm_blocks(it.n);                                                                             \
        if (gen)                                                                                                       \
            KERNEL<true><<<nb_, ND_CM_THREADS, 0, nd_cuda_stream()>>>(it, __VA_ARGS__);                                \
        else                                                                                                           \
            KERNEL<false><<<nb_, ND_CM_THREADS, 0, nd_cuda_stream()>>>(it, __VA_ARGS__);                               \
    } while (0)

/* The float path of n + 1 operands (out first): typed float32 / float64 or converting float64. */
static int all_dtype(int n, const nd_tensor *const *ts, nd_dtype dt)
{
    for (int k = 0; k < n; k++)
        if (ts[k]->dtype != dt) return 0;
    return 1;
}

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

extern "C" nd_status nd_unary_cuda(nd_tensor *out, const nd_tensor *x, nd_unary_op op, double p1, double p2)
{
    if ((unsigned)op >= ND_UNARY_COUNT) return ND_ERROR(ND_ERR_ARG, "unary: unknown op %d", (int)op);
    const char *name = nd_unary_name(op);
    nd_device dev;
    ND_TRY(check_inputs(name, 1, &x, out, &dev));
    ND_TRY(nd_cuda_math_prepare_out(name, out, x->ndim, x->size, dev));
    int float_only = op >= ND_UNARY_SQRT && op <= ND_UNARY_RECIPROCAL, uses_p1 = op >= ND_UNARY_CLAMP;
    int fdom = nd_dtype_is_float(x->dtype) || nd_dtype_is_float(out->dtype) || float_only ||
               (uses_p1 && !is_integral(p1)) || (op == ND_UNARY_CLAMP && !is_integral(p2));
    if (float_only && !nd_dtype_is_float(out->dtype))
        return ND_ERROR(ND_ERR_DTYPE, "%s: needs a float32 or float64 result, got %s", name, nd_dtype_name(out->dtype));
    if (!fdom && (op == ND_UNARY_DIV || op == ND_UNARY_FMOD || op == ND_UNARY_REMAINDER || op == ND_UNARY_FLOORDIV) &&
        p1 == 0)
        return div_zero(name);
    if (op == ND_UNARY_CLAMP && p1 > p2)
        return ND_ERROR(ND_ERR_ARG, "clamp: lower bound %g exceeds upper bound %g", p1, p2);
    if (nd_tensor_numel(x) == 0) return ND_OK;
    const nd_tensor *ts[2] = {out, x};
    nd_cm_iter it;
    nd_cm_iter_tensors(&it, 2, ts);
    nd_cuda_flag *flag = NULL;
    if (fdom) {
        nd_unary_op eop = unary_simplify(op, &p1);
        if (x->dtype == ND_DTYPE_F32) { /* scalars at the input's precision: x:eq(0.1) finds 0.1f */
            p1 = round_to_f32(p1);
            p2 = round_to_f32(p2);
        }
        if (all_dtype(2, ts, ND_DTYPE_F32))
            LAUNCH_F32(unary_float_kernel, (int)eop, (float)p1, (float)p2);
        else
            LAUNCH(unary_float_kernel, double, !all_dtype(2, ts, ND_DTYPE_F64), (int)eop, p1, p2);
    } else {
        if (op == ND_UNARY_RDIV || op == ND_UNARY_POW || op == ND_UNARY_RPOW) ND_TRY(nd_cuda_flag_begin(&flag));
        LAUNCH_INT(unary_int_kernel, !all_dtype(2, ts, ND_DTYPE_I64), (int)op, (int64_t)p1, (int64_t)p2, flag);
    }
    return finish(name, flag);
}

extern "C" nd_status nd_binary_cuda(nd_tensor *out, const nd_tensor *a, const nd_tensor *b, nd_binary_op op,
                                    double alpha)
{
    if ((unsigned)op >= ND_BINARY_COUNT) return ND_ERROR(ND_ERR_ARG, "binary: unknown op %d", (int)op);
    const char *name = nd_binary_name(op);
    const nd_tensor *in[2] = {a, b};
    nd_device dev;
    ND_TRY(check_inputs(name, 2, in, out, &dev));
    ND_TRY(nd_cuda_math_prepare_out(name, out, a->ndim, a->size, dev));
    int uses_alpha = op == ND_BINARY_ADD || op == ND_BINARY_SUB || op == ND_BINARY_LERP;
    int fdom = nd_dtype_is_float(a->dtype) || nd_dtype_is_float(b->dtype) || nd_dtype_is_float(out->dtype) ||
               op == ND_BINARY_ATAN2 || (uses_alpha && !is_integral(alpha));
    if (op == ND_BINARY_ATAN2 && !nd_dtype_is_float(out->dtype))
        return ND_ERROR(ND_ERR_DTYPE, "atan2: needs a float32 or float64 result, got %s", nd_dtype_name(out->dtype));
    if (nd_tensor_numel(a) == 0) return ND_OK;
    const nd_tensor *ts[3] = {out, a, b};
    nd_cm_iter it;
    nd_cm_iter_tensors(&it, 3, ts);
    nd_cuda_flag *flag = NULL;
    if (fdom) {
        if (all_dtype(3, ts, ND_DTYPE_F32))
            LAUNCH_F32(binary_float_kernel, (int)op, (float)alpha);
        else
            LAUNCH(binary_float_kernel, double, !all_dtype(3, ts, ND_DTYPE_F64), (int)op, alpha);
    } else {
        if (op == ND_BINARY_DIV || op == ND_BINARY_FLOORDIV || op == ND_BINARY_POW || op == ND_BINARY_FMOD ||
            op == ND_BINARY_REMAINDER)
            ND_TRY(nd_cuda_flag_begin(&flag));
        LAUNCH_INT(binary_int_kernel, !all_dtype(3, ts, ND_DTYPE_I64), (int)op, (int64_t)alpha, flag);
    }
    return finish(name, flag);
}

extern "C" nd_status nd_ternary_cuda(nd_tensor *out, const nd_tensor *a, const nd_tensor *b, const nd_tensor *c,
                                     nd_ternary_op op, double v)
{
    if ((unsigned)op >= ND_TERNARY_COUNT) return ND_ERROR(ND_ERR_ARG, "ternary: unknown op %d", (int)op);
    const char *name = nd_ternary_name(op);
    const nd_tensor *in[3] = {a, b, c};
    nd_device dev;
    ND_TRY(check_inputs(name, 3, in, out, &dev));
    ND_TRY(nd_cuda_math_prepare_out(name, out, a->ndim, a->size, dev));
    int fdom = nd_dtype_is_float(b->dtype) || nd_dtype_is_float(c->dtype) || nd_dtype_is_float(out->dtype);
    if (op != ND_TERNARY_WHERE) fdom = fdom || nd_dtype_is_float(a->dtype) || !is_integral(v);
    if (nd_tensor_numel(a) == 0) return ND_OK;
    const nd_tensor *ts[4] = {out, a, b, c};
    nd_cm_iter it;
    nd_cm_iter_tensors(&it, 4, ts);
    nd_cuda_flag *flag = NULL;
    if (fdom) {
        if (all_dtype(4, ts, ND_DTYPE_F32))
            LAUNCH_F32(ternary_float_kernel, (int)op, (float)v);
        else
            LAUNCH(ternary_float_kernel, double, !all_dtype(4, ts, ND_DTYPE_F64), (int)op, v);
    } else {
        if (op == ND_TERNARY_ADDCDIV) ND_TRY(nd_cuda_flag_begin(&flag));
        LAUNCH_INT(ternary_int_kernel, !all_dtype(4, ts, ND_DTYPE_I64), (int)op, (int64_t)v, flag);
    }
    return finish(name, flag);
}
