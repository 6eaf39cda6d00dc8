/* Losses on the CPU: class NLL (with class weights and an ignored index), MSE and binary cross
 * entropy; forward results are doubles, sums accumulated in double. Cross entropy is
 * logsoftmax + NLL (composed in Lua). Conventions: nd_cpu_nn.h.
 *
 * The typed kernels (float, double) sit between #ifdef ND_T and #else: this file includes
 * itself once per element type. */
#ifdef ND_T

/* it runs over (input, target[, weight]). */
static double ND_F(mse_sum)(nd_iter *it)
{
    double s = 0;
    while (nd_iter_next(it)) {
        const ND_T *x = (const ND_T *)it->ptr[0], *y = (const ND_T *)it->ptr[1];
        for (int64_t i = 0; i < it->inner; i++) {
            const double d = (double)x[i * it->istride[0]] - y[i * it->istride[1]];
            s += d * d;
        }
    }
    return s;
}

/* it runs over (grad_input, input, target). */
static void ND_F(mse_grad)(nd_iter *it, double k)
{
    while (nd_iter_next(it)) {
        ND_T *gi = (ND_T *)it->ptr[0];
        const ND_T *x = (const ND_T *)it->ptr[1], *y = (const ND_T *)it->ptr[2];
        for (int64_t i = 0; i < it->inner; i++)
            gi[i * it->istride[0]] = (ND_T)(k * ((double)x[i * it->istride[1]] - y[i * it->istride[2]]));
    }
}

static double ND_F(bce_sum)(nd_iter *it, int has_w)
{
    double s = 0;
    while (nd_iter_next(it)) {
        const ND_T *x = (const ND_T *)it->ptr[0], *y = (const ND_T *)it->ptr[1];
        const ND_T *w = has_w ? (const ND_T *)it->ptr[2] : NULL;
        for (int64_t i = 0; i < it->inner; i++) {
            const double xv = x[i * it->istride[0]], yv = y[i * it->istride[1]];
            const double lx = fmax(log(xv), -100.0), l1x = fmax(log(1.0 - xv), -100.0);
            const double v = -(yv * lx + (1.0 - yv) * l1x);
            s += w ? v * w[i * it->istride[2]] : v;
        }
    }
    return s;
}

/* it runs over (grad_input, input, target[, weight]). */
static void ND_F(bce_grad)(nd_iter *it, int has_w, double k)
{
    while (nd_iter_next(it)) {
        ND_T *gi = (ND_T *)it->ptr[0];
        const ND_T *x = (const ND_T *)it->ptr[1], *y = (const ND_T *)it->ptr[2];
        const ND_T *w = has_w ? (const ND_T *)it->ptr[3] : NULL;
        for (int64_t i = 0; i < it->inner; i++) {
            const double xv = x[i * it->istride[1]], yv = y[i * it->istride[2]];
            double v = k * (xv - yv) / fmax(xv * (1.0 - xv), 1e-12);
            if (w) v *= w[i * it->istride[3]];
            gi[i * it->istride[0]] = (ND_T)v;
        }
    }
}

#else /* ---------------------------------------------------------------------------------- */

#include <math.h>
#include <string.h>

#include "nd_cpu_nn.h"

#define ND_T float
#define ND_F(name) nd_loss_##name##_f32
#include "loss.c"
#undef ND_T
#undef ND_F
#define ND_T double
#define ND_F(name) nd_loss_##name##_f64
#include "loss.c"
#undef ND_T
#undef ND_F

/* ---- class NLL ---- */

/* input (N,C) or (C) -> N, C and the element strides; target: N int64 values (contiguous copy). */
static nd_status nd_nll_prepare(const char *op, const nd_tensor *shape_of, const nd_tensor *target,
                                const nd_tensor *class_weight, int64_t *N, int64_t *C, int64_t *sn, int64_t *sc,
                                int64_t *wst, nd_tensor *tgt, int64_t ignore_index)
{
    ND_TRY(nd_nll_check_dims(ND_DEVICE_CPU, op, shape_of, target, class_weight, N, C, sn, sc, wst));
    ND_TRY(nd_tensor_contiguous(tgt, target));
    const int64_t *t = nd_tensor_data(tgt);
    for (int64_t n = 0; n < *N; n++)
        if (t[n] != ignore_index && (t[n] < 0 || t[n] >= *C)) {
            int64_t bad = t[n];
            nd_tensor_release(tgt);
            return ND_ERROR(ND_ERR_INDEX, "%s: target %lld is out of range for %lld classes (sample %lld)", op,
                            (long long)bad, (long long)*C, (long long)n);
        }
    return ND_OK;
}

nd_status nd_nll_loss_forward_cpu(double *loss, double *total_weight, const nd_tensor *input, const nd_tensor *target,
                                  const nd_tensor *class_weight, int size_average, int64_t ignore_index)
{
    const char *op = "nll_loss";
    int64_t N, C, sn, sc, wst;
    nd_tensor tgt;
    ND_TRY(nd_nn_check_float(op, "input", input, -1));
    ND_TRY(nd_nll_prepare(op, input, target, class_weight, &N, &C, &sn, &sc, &wst, &tgt, ignore_index));
    const int64_t *t = nd_tensor_data(&tgt);
    double s = 0, tw = 0;
    for (int64_t n = 0; n < N; n++) {
        if (t[n] == ignore_index) continue;
        double w = class_weight ? nd_nn_get(class_weight, t[n] * wst) : 1.0;
        s -= w * nd_nn_get(input, n * sn + t[n] * sc);
        tw += w;
    }
    nd_tensor_release(&tgt);
    *loss = size_average ? s / tw : s;
    *total_weight = tw;
    return ND_OK;
}

nd_status nd_nll_loss_backward_cpu(nd_tensor *grad_input, const nd_tensor *target, const nd_tensor *class_weight,
                                   double total_weight, int size_average, int64_t ignore_index, double grad_scale)
{
    const char *op = "nll_loss backward";
    int64_t N, C, sn, sc, wst;
    nd_tensor tgt;
    ND_TRY(nd_nn_check_float(op, "grad_input", grad_input, -1));
    ND_TRY(nd_nn_check_out(op, "grad_input", grad_input, grad_input->dtype, grad_input->ndim, grad_input->size, 1));
    ND_TRY(nd_nll_prepare(op, grad_input, target, class_weight, &N, &C, &sn, &sc, &wst, &tgt, ignore_index));
    const int64_t *t = nd_tensor_data(&tgt);
    memset(nd_tensor_data(grad_input), 0, (size_t)(N * C) * nd_dtype_size(grad_input->dtype));
    const double k = size_average ? grad_scale / total_weight : grad_scale;
    for (int64_t n = 0; n < N; n++) {
        if (t[n] == ignore_index) continue;
        double w = class_weight ? nd_nn_get(class_weight, t[n] * wst) : 1.0;
        nd_nn_set(grad_input, n * sn + t[n] * sc, -w * k);
    }
    nd_tensor_release(&tgt);
    return ND_OK;
}

/* ---- MSE, BCE ---- */

/* out = a view of t with like's shape (a contiguous copy first when the shapes differ). */
static nd_status nd_loss_align(const char *op, const char *what, nd_tensor *out, const nd_tensor *t,
                               const nd_tensor *like)
{
    ND_TRY(nd_loss_check_like(ND_DEVICE_CPU, op, what, t, like));
    if (nd_tensor_same_shape(t, like)) {
        nd_tensor_view_of(out, t);
        return ND_OK;
    }
    ND_TRY(nd_tensor_contiguous(out, t));
    nd_status st = nd_tensor_view(out, like->ndim, like->size);
    if (st != ND_OK) nd_tensor_release(out);
    return st;
}

nd_status nd_mse_loss_forward_cpu(double *loss, const nd_tensor *input, const nd_tensor *target, int size_average)
{
    const char *op = "mse_loss";
    ND_TRY(nd_nn_check_float(op, "input", input, -1));
    nd_tensor y;
    ND_TRY(nd_loss_align(op, "target", &y, target, input));
    nd_iter it;
    nd_iter_init(&it, 2, (const nd_tensor *[]){input, &y});
    double s = input->dtype == ND_DTYPE_F32 ? nd_loss_mse_sum_f32(&it) : nd_loss_mse_sum_f64(&it);
    nd_tensor_release(&y);
    int64_t n = nd_tensor_numel(input);
    *loss = size_average && n > 0 ? s / (double)n : s;
    return ND_OK;
}

nd_status nd_mse_loss_backward_cpu(nd_tensor *grad_input, const nd_tensor *input, const nd_tensor *target,
                                   int size_average, double grad_scale)
{
    const char *op = "mse_loss backward";
    ND_TRY(nd_nn_check_float(op, "input", input, -1));
    ND_TRY(nd_nn_check_out(op, "grad_input", grad_input, input->dtype, input->ndim, input->size, 0));
    ND_TRY(nd_nn_check_alias(op, "grad_input", grad_input, 1, 2, (const nd_tensor *[]){input, target}));
    nd_tensor y;
    ND_TRY(nd_loss_align(op, "target", &y, target, input));
    int64_t n = nd_tensor_numel(input);
    double k = 2.0 * grad_scale / (size_average && n > 0 ? (double)n : 1.0);
    nd_iter it;
    nd_iter_init(&it, 3, (const nd_tensor *[]){grad_input, input, &y});
    if (input->dtype == ND_DTYPE_F32)
        nd_loss_mse_grad_f32(&it, k);
    else
        nd_loss_mse_grad_f64(&it, k);
    nd_tensor_release(&y);
    return ND_OK;
}

nd_status nd_bce_loss_forward_cpu(double *loss, const nd_tensor *input, const nd_tensor *target,
                                  const nd_tensor *weight, int size_average)
{
    const char *op = "bce_loss";
    ND_TRY(nd_nn_check_float(op, "input", input, -1));
    nd_tensor y, w;
    nd_tensor_init_empty(&w, input->dtype);
    ND_TRY(nd_loss_align(op, "target", &y, target, input));
    nd_status st = weight ? nd_loss_align(op, "weight", &w, weight, input) : ND_OK;
    if (st == ND_OK) {
        nd_iter it;
        nd_iter_init(&it, weight ? 3 : 2, (const nd_tensor *[]){input, &y, &w});
        double s = input->dtype == ND_DTYPE_F32 ? nd_loss_bce_sum_f32(&it, weight != NULL)
                                                : nd_loss_bce_sum_f64(&it, weight != NULL);
        int64_t n = nd_tensor_numel(input);
        *loss = size_average && n > 0 ? s / (double)n : s;
    }
    nd_tensor_release(&y);
    nd_tensor_release(&w);
    return st;
}

nd_status nd_bce_loss_backward_cpu(nd_tensor *grad_input, const nd_tensor *input, const nd_tensor *target,
                                   const nd_tensor *weight, int size_average, double grad_scale)
{
    const char *op = "bce_loss backward";
    ND_TRY(nd_nn_check_float(op, "input", input, -1));
    ND_TRY(nd_nn_check_out(op, "grad_input", grad_input, input->dtype, input->ndim, input->size, 0));
    ND_TRY(nd_nn_check_alias(op, "grad_input", grad_input, 1, 2, (const nd_tensor *[]){input, target}));
    nd_tensor y, w;
    nd_tensor_init_empty(&w, input->dtype);
    ND_TRY(nd_loss_align(op, "target", &y, target, input));
    nd_status st = weight ? nd_loss_align(op, "weight", &w, weight, input) : ND_OK;
    if (st == ND_OK) {
        int64_t n = nd_tensor_numel(input);
        double k = grad_scale / (size_average && n > 0 ? (double)n : 1.0);
        nd_iter it;
        nd_iter_init(&it, weight ? 4 : 3, (const nd_tensor *[]){grad_input, input, &y, &w});
        if (input->dtype == ND_DTYPE_F32)
            nd_loss_bce_grad_f32(&it, weight != NULL, k);
        else
            nd_loss_bce_grad_f64(&it, weight != NULL, k);
    }
    nd_tensor_release(&y);
    nd_tensor_release(&w);
    return st;
}

#endif
