/* Activations on the CPU: relu, sigmoid, tanh (elementwise, any strides, in place allowed) and
 * softmax / log-softmax over dim 1 (max subtracted, sums in double). Conventions: nd_cpu_nn.h.
 *
 * The typed kernels (float, double) sit between #ifdef ND_T and #else: this file includes
 * itself once per element type. */
#ifdef ND_T

/* Elementwise ops over an nd_iter of 2 (forward: out, in) or 3 (backward: gi, go, y) operands.
 * Contiguous runs go to one vectorised loop per op (split across threads when long); strided
 * runs use the scalar definitions below. */
static inline ND_T ND_F(act_f)(int op, ND_T x)
{
    switch (op) {
    case ND_ACT_RELU:
        return x > 0 ? x : (ND_T)0;
    case ND_ACT_SIGMOID:
        return (ND_T)1 / ((ND_T)1 + ND_EXP(-x));
    default:
        return ND_TANH(x);
    }
}

/* g = grad_output, y = the forward output */
static inline ND_T ND_F(act_b)(int op, ND_T g, ND_T y)
{
    switch (op) {
    case ND_ACT_RELU:
        return y > 0 ? g : (ND_T)0;
    case ND_ACT_SIGMOID:
        return g * y * ((ND_T)1 - y);
    default:
        return g * ((ND_T)1 - y * y);
    }
}

#define ND_ACT_PAR if (parallel : nd_nn_parallel() && n > 65536)

static void ND_F(relu_f)(ND_T *o, const ND_T *x, int64_t n)
{
#pragma omp parallel for simd schedule(static) ND_ACT_PAR
    for (int64_t i = 0; i < n; i++)
        o[i] = x[i] > 0 ? x[i] : (ND_T)0;
}
static void ND_F(sigmoid_f)(ND_T *o, const ND_T *x, int64_t n)
{
#pragma omp parallel for simd schedule(static) ND_ACT_PAR
    for (int64_t i = 0; i < n; i++)
        o[i] = (ND_T)1 / ((ND_T)1 + ND_EXP(-x[i]));
}
static void ND_F(tanh_f)(ND_T *o, const ND_T *x, int64_t n)
{
#pragma omp parallel for simd schedule(static) ND_ACT_PAR
    for (int64_t i = 0; i < n; i++)
        o[i] = ND_TANH(x[i]);
}
static void ND_F(relu_b)(ND_T *o, const ND_T *g, const ND_T *y, int64_t n)
{
#pragma omp parallel for simd schedule(static) ND_ACT_PAR
    for (int64_t i = 0; i < n; i++)
        o[i] = y[i] > 0 ? g[i] : (ND_T)0;
}
static void ND_F(sigmoid_b)(ND_T *o, const ND_T *g, const ND_T *y, int64_t n)
{
#pragma omp parallel for simd schedule(static) ND_ACT_PAR
    for (int64_t i = 0; i < n; i++)
        o[i] = g[i] * y[i] * ((ND_T)1 - y[i]);
}
static void ND_F(tanh_b)(ND_T *o, const ND_T *g, const ND_T *y, int64_t n)
{
#pragma omp parallel for simd schedule(static) ND_ACT_PAR
    for (int64_t i = 0; i < n; i++)
        o[i] = g[i] * ((ND_T)1 - y[i] * y[i]);
}

static void ND_F(act_fwd)(nd_iter *it, int op)
{
    void (*run)(ND_T *, const ND_T *, int64_t) = op == ND_ACT_RELU      ? ND_F(relu_f)
                                                 : op == ND_ACT_SIGMOID ? ND_F(sigmoid_f)
                                                                        : ND_F(tanh_f);
    while (nd_iter_next(it)) {
        ND_T *o = (ND_T *)it->ptr[0];
        const ND_T *a = (const ND_T *)it->ptr[1];
        const int64_t so = it->istride[0], sa = it->istride[1], n = it->inner;
        if (so == 1 && sa == 1)
            run(o, a, n);
        else
            for (int64_t i = 0; i < n; i++)
                o[i * so] = ND_F(act_f)(op, a[i * sa]);
    }
}

static void ND_F(act_bwd)(nd_iter *it, int op)
{
    void (*run)(ND_T *, const ND_T *, const ND_T *, int64_t) = op == ND_ACT_RELU      ? ND_F(relu_b)
                                                               : op == ND_ACT_SIGMOID ? ND_F(sigmoid_b)
                                                                                      : ND_F(tanh_b);
    while (nd_iter_next(it)) {
        ND_T *o = (ND_T *)it->ptr[0];
        const ND_T *g = (const ND_T *)it->ptr[1], *y = (const ND_T *)it->ptr[2];
        const int64_t so = it->istride[0], sg = it->istride[1], sy = it->istride[2], n = it->inner;
        if (so == 1 && sg == 1 && sy == 1)
            run(o, g, y, n);
        else
            for (int64_t i = 0; i < n; i++)
                o[i * so] = ND_F(act_b)(op, g[i * sg], y[i * sy]);
    }
}

static void ND_F(relu_fwd)(nd_iter *it)
{
    ND_F(act_fwd)(it, ND_ACT_RELU);
}
static void ND_F(relu_bwd)(nd_iter *it)
{
    ND_F(act_bwd)(it, ND_ACT_RELU);
}
static void ND_F(sigmoid_fwd)(nd_iter *it)
{
    ND_F(act_fwd)(it, ND_ACT_SIGMOID);
}
static void ND_F(sigmoid_bwd)(nd_iter *it)
{
    ND_F(act_bwd)(it, ND_ACT_SIGMOID);
}
static void ND_F(tanh_fwd)(nd_iter *it)
{
    ND_F(act_fwd)(it, ND_ACT_TANH);
}
static void ND_F(tanh_bwd)(nd_iter *it)
{
    ND_F(act_bwd)(it, ND_ACT_TANH);
}

#undef ND_ACT_PAR

/* Softmax over c of x viewed as (N, C, S), contiguous; log_mode gives log-softmax. */
static void ND_F(softmax_fwd)(ND_T *y, const ND_T *x, int64_t N, int64_t C, int64_t S, int log_mode)
{
#pragma omp parallel for schedule(static) if (nd_nn_parallel() && (N * C * S > 32768))
    for (int64_t ns = 0; ns < N * S; ns++) {
        const int64_t n = ns / S, s = ns % S;
        const ND_T *xp = x + n * C * S + s;
        ND_T *yp = y + n * C * S + s;
        ND_T m = xp[0];
        for (int64_t c = 1; c < C; c++)
            if (xp[c * S] > m || xp[c * S] != xp[c * S]) m = xp[c * S];
        double sum = 0;
        for (int64_t c = 0; c < C; c++)
            sum += exp((double)(xp[c * S] - m));
        if (log_mode) {
            const ND_T shift = m + (ND_T)log(sum);
            for (int64_t c = 0; c < C; c++)
                yp[c * S] = xp[c * S] - shift;
        } else {
            for (int64_t c = 0; c < C; c++)
                yp[c * S] = (ND_T)(exp((double)(xp[c * S] - m)) / sum);
        }
    }
}

static void ND_F(softmax_bwd)(ND_T *gi, const ND_T *go, const ND_T *y, int64_t N, int64_t C, int64_t S, int log_mode)
{
#pragma omp parallel for schedule(static) if (nd_nn_parallel() && (N * C * S > 32768))
    for (int64_t ns = 0; ns < N * S; ns++) {
        const int64_t base = (ns / S) * C * S + ns % S;
        double sum = 0;
        if (log_mode) {
            for (int64_t c = 0; c < C; c++)
                sum += go[base + c * S];
            for (int64_t c = 0; c < C; c++)
                gi[base + c * S] = (ND_T)(go[base + c * S] - exp((double)y[base + c * S]) * sum);
        } else {
            for (int64_t c = 0; c < C; c++)
                sum += (double)go[base + c * S] * y[base + c * S];
            for (int64_t c = 0; c < C; c++)
                gi[base + c * S] = (ND_T)(y[base + c * S] * (go[base + c * S] - sum));
        }
    }
}

#else /* ---------------------------------------------------------------------------------- */

#include <math.h>

#include "nd_cpu_nn.h"

enum { ND_ACT_RELU, ND_ACT_SIGMOID, ND_ACT_TANH };

#define ND_T float
#define ND_F(name) nd_act_##name##_f32
#define ND_EXP expf
#define ND_TANH tanhf
#include "act.c"
#undef ND_T
#undef ND_F
#undef ND_EXP
#undef ND_TANH
#define ND_T double
#define ND_F(name) nd_act_##name##_f64
#define ND_EXP exp
#define ND_TANH tanh
#include "act.c"
#undef ND_T
#undef ND_F
#undef ND_EXP
#undef ND_TANH

typedef void (*nd_act_fn)(nd_iter *it);

/* Checks n operands (same dtype and shape as t[1], the first input) and runs fn over them. */
static nd_status nd_act_run(const char *op, int n, const nd_tensor *const *t, const char *const *names, nd_act_fn f32,
                            nd_act_fn f64)
{
    char a[ND_SHAPE_STR_MAX], b[ND_SHAPE_STR_MAX];
    ND_TRY(nd_nn_check_float(op, names[1], t[1], -1));
    for (int k = 0; k < n; k++) {
        if (k == 1) continue;
        ND_TRY(nd_nn_check_float(op, names[k], t[k], (int)t[1]->dtype));
        if (!nd_tensor_same_shape(t[k], t[1]))
            return ND_ERROR(ND_ERR_SHAPE, "%s: %s %s and %s %s differ in shape", op, names[k],
                            nd_tensor_shape_str(t[k], a, sizeof a), names[1], nd_tensor_shape_str(t[1], b, sizeof b));
    }
    ND_TRY(nd_nn_check_alias(op, names[0], t[0], 1, n - 1, t + 1));
    nd_iter it;
    nd_iter_init(&it, n, t);
    (t[1]->dtype == ND_DTYPE_F32 ? f32 : f64)(&it);
    return ND_OK;
}

#define ND_ACT_FORWARD(NAME, OP)                                                                                       \
    nd_status nd_##NAME##_forward_cpu(nd_tensor *out, const nd_tensor *input)                                          \
    {                                                                                                                  \
        const nd_tensor *t[2] = {out, input};                                                                          \
        const char *names[2] = {"output", "input"};                                                                    \
        return nd_act_run(OP, 2, t, names, nd_act_##NAME##_fwd_f32, nd_act_##NAME##_fwd_f64);                          \
    }
#define ND_ACT_BACKWARD(NAME, OP)                                                                                      \
    nd_status nd_##NAME##_backward_cpu(nd_tensor *grad_input, const nd_tensor *grad_output, const nd_tensor *output)   \
    {                                                                                                                  \
        const nd_tensor *t[3] = {grad_input, grad_output, output};                                                     \
        const char *names[3] = {"grad_input", "grad_output", "output"};                                                \
        return nd_act_run(OP, 3, t, names, nd_act_##NAME##_bwd_f32, nd_act_##NAME##_bwd_f64);                          \
    }

ND_ACT_FORWARD(relu, "relu")
ND_ACT_BACKWARD(relu, "relu backward")
ND_ACT_FORWARD(sigmoid, "sigmoid")
ND_ACT_BACKWARD(sigmoid, "sigmoid backward")
ND_ACT_FORWARD(tanh, "tanh")
ND_ACT_BACKWARD(tanh, "tanh backward")

/* (N, C, S) view of a softmax operand: dim 1 is the class dim (dim 0 for a 1-d tensor). */
static nd_status nd_act_softmax_dims(const char *op, const nd_tensor *t, int64_t *N, int64_t *C, int64_t *S)
{
    return nd_softmax_check_dims(ND_DEVICE_CPU, op, t, N, C, S);
}

static nd_status nd_act_softmax_forward(const char *op, nd_tensor *out, const nd_tensor *input, int log_mode)
{
    int64_t N, C, S;
    ND_TRY(nd_act_softmax_dims(op, input, &N, &C, &S));
    ND_TRY(nd_nn_check_out(op, "output", out, input->dtype, input->ndim, input->size, 1));
    ND_TRY(nd_nn_check_alias(op, "output", out, 1, 1, (const nd_tensor *[]){input}));
    nd_tensor x;
    ND_TRY(nd_tensor_contiguous(&x, input));
    if (x.dtype == ND_DTYPE_F32)
        nd_act_softmax_fwd_f32(nd_tensor_data(out), nd_tensor_data(&x), N, C, S, log_mode);
    else
        nd_act_softmax_fwd_f64(nd_tensor_data(out), nd_tensor_data(&x), N, C, S, log_mode);
    nd_tensor_release(&x);
    return ND_OK;
}

static nd_status nd_act_softmax_backward(const char *op, nd_tensor *grad_input, const nd_tensor *grad_output,
                                         const nd_tensor *output, int log_mode)
{
    int64_t N, C, S;
    ND_TRY(nd_act_softmax_dims(op, output, &N, &C, &S));
    ND_TRY(nd_nn_check_float(op, "grad_output", grad_output, (int)output->dtype));
    ND_TRY(nd_nn_check_out(op, "grad_output", grad_output, output->dtype, output->ndim, output->size, 0));
    ND_TRY(nd_nn_check_out(op, "grad_input", grad_input, output->dtype, output->ndim, output->size, 1));
    ND_TRY(nd_nn_check_alias(op, "grad_input", grad_input, 1, 2, (const nd_tensor *[]){grad_output, output}));
    nd_tensor go, y;
    ND_TRY(nd_tensor_contiguous(&go, grad_output));
    nd_status st = nd_tensor_contiguous(&y, output);
    if (st == ND_OK) {
        if (y.dtype == ND_DTYPE_F32)
            nd_act_softmax_bwd_f32(nd_tensor_data(grad_input), nd_tensor_data(&go), nd_tensor_data(&y), N, C, S,
                                   log_mode);
        else
            nd_act_softmax_bwd_f64(nd_tensor_data(grad_input), nd_tensor_data(&go), nd_tensor_data(&y), N, C, S,
                                   log_mode);
        nd_tensor_release(&y);
    }
    nd_tensor_release(&go);
    return st;
}

nd_status nd_softmax_forward_cpu(nd_tensor *out, const nd_tensor *input)
{
    return nd_act_softmax_forward("softmax", out, input, 0);
}
nd_status nd_logsoftmax_forward_cpu(nd_tensor *out, const nd_tensor *input)
{
    return nd_act_softmax_forward("logsoftmax", out, input, 1);
}
nd_status nd_softmax_backward_cpu(nd_tensor *grad_input, const nd_tensor *grad_output, const nd_tensor *output)
{
    return nd_act_softmax_backward("softmax backward", grad_input, grad_output, output, 0);
}
nd_status nd_logsoftmax_backward_cpu(nd_tensor *grad_input, const nd_tensor *grad_output, const nd_tensor *output)
{
    return nd_act_softmax_backward("logsoftmax backward", grad_input, grad_output, output, 1);
}

#endif
