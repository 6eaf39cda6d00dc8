/* Batch normalisation on the CPU over (N,C) or (N,C,d2,...): training forward (batch
 * statistics, running averages), evaluation forward, backward. Planes c are independent: the
 * loops run in parallel over c; every sum is accumulated in double. Conventions: nd_cpu_nn.h.
 *
 * The typed kernels (float, double) sit between #ifdef ND_T and #else: this file includes
 * itself once per element type. */
#ifdef ND_T

/* Per-plane vectors come in as (pointer, stride) pairs, NULL when absent. */
static inline double ND_F(vget)(const nd_bn_vec *v, int64_t c, double def)
{
    return v->p ? (double)((const ND_T *)v->p)[c * v->stride] : def;
}
static inline void ND_F(vset)(const nd_bn_vec *v, int64_t c, double x)
{
    if (v->p) ((ND_T *)v->p)[c * v->stride] = (ND_T)x;
}

static void ND_F(train_fwd)(ND_T *y, const ND_T *x, const nd_bn_geom *g, const nd_bn_vec *w, const nd_bn_vec *b,
                            const nd_bn_vec *smean, const nd_bn_vec *sinv, const nd_bn_vec *rmean,
                            const nd_bn_vec *rvar, double momentum, double eps)
{
    const int64_t N = g->N, C = g->C, S = g->S, m = N * S;
#pragma omp parallel for schedule(static) if (nd_nn_parallel() && (N * C * S > 32768))
    for (int64_t c = 0; c < C; c++) {
        double sum = 0, ss = 0;
        for (int64_t n = 0; n < N; n++) {
            const ND_T *xp = x + (n * C + c) * S;
            double part = 0;
#pragma omp simd reduction(+ : part)
            for (int64_t i = 0; i < S; i++)
                part += xp[i];
            sum += part;
        }
        const double mean = sum / (double)m;
        for (int64_t n = 0; n < N; n++) {
            const ND_T *xp = x + (n * C + c) * S;
            double part = 0;
#pragma omp simd reduction(+ : part)
            for (int64_t i = 0; i < S; i++) {
                const double d = xp[i] - mean;
                part += d * d;
            }
            ss += part;
        }
        const double var = ss / (double)m, invstd = 1.0 / sqrt(var + eps);
        const double scale = invstd * ND_F(vget)(w, c, 1.0), shift = ND_F(vget)(b, c, 0.0) - mean * scale;
        const ND_T a = (ND_T)scale, o = (ND_T)shift;
        for (int64_t n = 0; n < N; n++) {
            const ND_T *xp = x + (n * C + c) * S;
            ND_T *yp = y + (n * C + c) * S;
#pragma omp simd
            for (int64_t i = 0; i < S; i++)
                yp[i] = xp[i] * a + o;
        }
        ND_F(vset)(smean, c, mean);
        ND_F(vset)(sinv, c, invstd);
        if (rmean->p) ND_F(vset)(rmean, c, (1 - momentum) * ND_F(vget)(rmean, c, 0) + momentum * mean);
        if (rvar->p) ND_F(vset)(rvar, c, (1 - momentum) * ND_F(vget)(rvar, c, 0) + momentum * ss / (double)(m - 1));
    }
}

static void ND_F(eval_fwd)(ND_T *y, const ND_T *x, const nd_bn_geom *g, const nd_bn_vec *w, const nd_bn_vec *b,
                           const nd_bn_vec *rmean, const nd_bn_vec *rvar, double eps)
{
    const int64_t N = g->N, C = g->C, S = g->S;
#pragma omp parallel for collapse(2) schedule(static) if (nd_nn_parallel() && (N * C * S > 32768))
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            const double invstd = 1.0 / sqrt(ND_F(vget)(rvar, c, 1) + eps);
            const double scale = invstd * ND_F(vget)(w, c, 1.0);
            const ND_T a = (ND_T)scale, o = (ND_T)(ND_F(vget)(b, c, 0.0) - ND_F(vget)(rmean, c, 0) * scale);
            const ND_T *xp = x + (n * C + c) * S;
            ND_T *yp = y + (n * C + c) * S;
#pragma omp simd
            for (int64_t i = 0; i < S; i++)
                yp[i] = xp[i] * a + o;
        }
}

/* mean/invstd: the batch's (training) or the running ones turned into invstd (evaluation). */
static void ND_F(bwd)(ND_T *gi, const nd_bn_vec *gw, const nd_bn_vec *gb, const ND_T *x, const ND_T *go,
                      const nd_bn_geom *g, const nd_bn_vec *w, const nd_bn_vec *mean_v, const nd_bn_vec *inv_v,
                      int training, int inv_is_var, double scale, double eps)
{
    const int64_t N = g->N, C = g->C, S = g->S, m = N * S;
#pragma omp parallel for schedule(static) if (nd_nn_parallel() && (N * C * S > 32768))
    for (int64_t c = 0; c < C; c++) {
        const double mean = ND_F(vget)(mean_v, c, 0);
        const double invstd = inv_is_var ? 1.0 / sqrt(ND_F(vget)(inv_v, c, 1) + eps) : ND_F(vget)(inv_v, c, 1);
        double sg = 0, sgx = 0; /* sum go, sum go * (x - mean) */
        for (int64_t n = 0; n < N; n++) {
            const ND_T *xp = x + (n * C + c) * S, *gp = go + (n * C + c) * S;
            double p1 = 0, p2 = 0;
#pragma omp simd reduction(+ : p1, p2)
            for (int64_t i = 0; i < S; i++) {
                p1 += gp[i];
                p2 += (double)gp[i] * (xp[i] - mean);
            }
            sg += p1;
            sgx += p2;
        }
        if (gw->p) ND_F(vset)(gw, c, ND_F(vget)(gw, c, 0) + scale * sgx * invstd);
        if (gb->p) ND_F(vset)(gb, c, ND_F(vget)(gb, c, 0) + scale * sg);
        if (!gi) continue;
        const double k = invstd * ND_F(vget)(w, c, 1.0);
        if (training) {
            /* gi = k * (go - sg/m - (x - mean) * invstd^2 * sgx/m) */
            const double a = k, bx = -k * invstd * invstd * sgx / (double)m;
            const double c0 = -k * sg / (double)m - bx * mean;
            const ND_T A = (ND_T)a, B = (ND_T)bx, C0 = (ND_T)c0;
            for (int64_t n = 0; n < N; n++) {
                const ND_T *xp = x + (n * C + c) * S, *gp = go + (n * C + c) * S;
                ND_T *ip = gi + (n * C + c) * S;
#pragma omp simd
                for (int64_t i = 0; i < S; i++)
                    ip[i] = A * gp[i] + B * xp[i] + C0;
            }
        } else {
            const ND_T A = (ND_T)k;
            for (int64_t n = 0; n < N; n++) {
                const ND_T *gp = go + (n * C + c) * S;
                ND_T *ip = gi + (n * C + c) * S;
#pragma omp simd
                for (int64_t i = 0; i < S; i++)
                    ip[i] = A * gp[i];
            }
        }
    }
}

#else /* ---------------------------------------------------------------------------------- */

#include <math.h>

#include "nd_cpu_nn.h"

/* nd_bn_geom, nd_bn_vec and the checks: nd_cpu_nn.h, nn_check.c (shared with norm.cu). */

#define ND_T float
#define ND_F(name) nd_bn_##name##_f32
#include "norm.c"
#undef ND_T
#undef ND_F
#define ND_T double
#define ND_F(name) nd_bn_##name##_f64
#include "norm.c"
#undef ND_T
#undef ND_F

nd_status nd_batchnorm_forward_train_cpu(nd_tensor *out, nd_tensor *save_mean, nd_tensor *save_invstd,
                                         const nd_tensor *input, const nd_tensor *weight, const nd_tensor *bias,
                                         nd_tensor *running_mean, nd_tensor *running_var, double momentum, double eps)
{
    const char *op = "batchnorm";
    nd_bn_geom g;
    nd_bn_vec w, b, sm, si, rm, rv;
    ND_TRY(nd_bn_check_forward_train(ND_DEVICE_CPU, op, &g, out, save_mean, save_invstd, input, weight, bias, running_mean,
                                     running_var, eps, &w, &b, &sm, &si, &rm, &rv));
    nd_dtype dt = input->dtype;
    nd_tensor x;
    ND_TRY(nd_tensor_contiguous(&x, input));
    if (dt == ND_DTYPE_F32)
        nd_bn_train_fwd_f32(nd_tensor_data(out), nd_tensor_data(&x), &g, &w, &b, &sm, &si, &rm, &rv, momentum, eps);
    else
        nd_bn_train_fwd_f64(nd_tensor_data(out), nd_tensor_data(&x), &g, &w, &b, &sm, &si, &rm, &rv, momentum, eps);
    nd_tensor_release(&x);
    return ND_OK;
}

nd_status nd_batchnorm_forward_eval_cpu(nd_tensor *out, const nd_tensor *input, const nd_tensor *weight,
                                        const nd_tensor *bias, const nd_tensor *running_mean,
                                        const nd_tensor *running_var, double eps)
{
    const char *op = "batchnorm";
    nd_bn_geom g;
    nd_bn_vec w, b, rm, rv;
    ND_TRY(nd_bn_check_forward_eval(ND_DEVICE_CPU, op, &g, out, input, weight, bias, running_mean, running_var, &w, &b, &rm,
                                    &rv));
    nd_dtype dt = input->dtype;
    nd_tensor x;
    ND_TRY(nd_tensor_contiguous(&x, input));
    if (dt == ND_DTYPE_F32)
        nd_bn_eval_fwd_f32(nd_tensor_data(out), nd_tensor_data(&x), &g, &w, &b, &rm, &rv, eps);
    else
        nd_bn_eval_fwd_f64(nd_tensor_data(out), nd_tensor_data(&x), &g, &w, &b, &rm, &rv, eps);
    nd_tensor_release(&x);
    return ND_OK;
}

nd_status nd_batchnorm_backward_cpu(nd_tensor *grad_input, nd_tensor *grad_weight, nd_tensor *grad_bias,
                                    const nd_tensor *input, const nd_tensor *grad_output, const nd_tensor *weight,
                                    const nd_tensor *save_mean, const nd_tensor *save_invstd,
                                    const nd_tensor *running_mean, const nd_tensor *running_var, int training,
                                    double scale, double eps)
{
    const char *op = "batchnorm backward";
    nd_bn_geom g;
    nd_bn_vec gw, gb, w, mean, inv;
    ND_TRY(nd_bn_check_backward(ND_DEVICE_CPU, op, &g, grad_input, grad_weight, grad_bias, input, grad_output, weight, save_mean,
                                save_invstd, running_mean, running_var, training, &gw, &gb, &w, &mean, &inv));
    nd_dtype dt = input->dtype;
    nd_tensor x, go;
    ND_TRY(nd_tensor_contiguous(&x, input));
    nd_status st = nd_tensor_contiguous(&go, grad_output);
    if (st == ND_OK) {
        void *gi = grad_input ? nd_tensor_data(grad_input) : NULL;
        if (dt == ND_DTYPE_F32)
            nd_bn_bwd_f32(gi, &gw, &gb, nd_tensor_data(&x), nd_tensor_data(&go), &g, &w, &mean, &inv, training,
                          !training, scale, eps);
        else
            nd_bn_bwd_f64(gi, &gw, &gb, nd_tensor_data(&x), nd_tensor_data(&go), &g, &w, &mean, &inv, training,
                          !training, scale, eps);
        nd_tensor_release(&go);
    }
    nd_tensor_release(&x);
    return st;
}

#endif
