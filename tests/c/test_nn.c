/* nn kernel tests (group `nn`): pooling, activations, batch normalisation and losses. Forwards
 * against plain formulas written here, backwards against central finite differences in
 * float64, on contiguous and non-contiguous inputs. */
#include <string.h>

#include "nd.h"
#include "nd_cpu_nn.h"
#include "nd_test.h"

static nd_rng nn_rng;

static nd_tensor nn_new(nd_dtype dt, int ndim, const int64_t *size, double lo, double hi)
{
    nd_tensor t;
    nd_tensor_new(&t, dt, ndim, size, nd_cpu_device(), 0);
    nd_rng_fill_uniform(&nn_rng, &t, lo, hi);
    return t;
}

static nd_tensor nn_zeros(nd_dtype dt, int ndim, const int64_t *size)
{
    nd_tensor t;
    nd_tensor_new(&t, dt, ndim, size, nd_cpu_device(), 1);
    return t;
}

/* A random non-contiguous tensor: the last two dims transposed (or, for 1-d, every other element). */
static nd_tensor nn_new_strided(nd_dtype dt, int ndim, const int64_t *size, double lo, double hi)
{
    int64_t s[ND_MAX_DIMS];
    memcpy(s, size, sizeof(int64_t) * (size_t)ndim);
    nd_tensor t;
    if (ndim == 1) {
        s[0] = 2 * size[0];
        t = nn_new(dt, 1, s, lo, hi);
        nd_tensor_unfold(&t, 0, 1, 2); /* (size, 1) with stride 2 */
        nd_tensor_squeeze(&t, 1);
        return t;
    }
    s[ndim - 1] = size[ndim - 2];
    s[ndim - 2] = size[ndim - 1];
    t = nn_new(dt, ndim, s, lo, hi);
    nd_tensor_transpose(&t, ndim - 2, ndim - 1);
    return t;
}

/* Storage offset of the element at row-major position lin. */
static int64_t nn_off(const nd_tensor *t, int64_t lin)
{
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        off += (lin % t->size[d]) * t->stride[d];
        lin /= t->size[d];
    }
    return off;
}
static double nn_at(const nd_tensor *t, int64_t lin)
{
    return nd_nn_get(t, nn_off(t, lin));
}

static double nn_maxdiff(const nd_tensor *a, const nd_tensor *b)
{
    if (nd_tensor_numel(a) != nd_tensor_numel(b)) return 1e30;
    double m = 0;
    for (int64_t i = 0; i < nd_tensor_numel(a); i++) {
        double x = nn_at(a, i), y = nn_at(b, i), d = fabs(x - y) / (1 + fabs(y));
        if (!(d <= m)) m = d;
    }
    return m;
}

/* sum(t .* R) in double. */
static double nn_dot(const nd_tensor *t, const nd_tensor *R)
{
    double s = 0;
    for (int64_t i = 0; i < nd_tensor_numel(t); i++)
        s += nn_at(t, i) * nn_at(R, i);
    return s;
}

/* Central differences of loss(ctx) w.r.t. every element of param against grad (row-major);
 * returns the worst relative error. */
typedef double (*nn_loss_fn)(void *ctx);
static double nn_fd(nd_tensor *param, const nd_tensor *grad, nn_loss_fn f, void *ctx, double h)
{
    double worst = 0;
    for (int64_t i = 0; i < nd_tensor_numel(param); i++) {
        int64_t o = nn_off(param, i);
        double keep = nd_nn_get(param, o);
        nd_nn_set(param, o, keep + h);
        double lp = f(ctx);
        nd_nn_set(param, o, keep - h);
        double lm = f(ctx);
        nd_nn_set(param, o, keep);
        double fd = (lp - lm) / (2 * h), d = fabs(fd - nn_at(grad, i)) / (1 + fabs(fd));
        if (!(d <= worst)) worst = d;
    }
    return worst;
}

/* ---------------------------------------------------------------------------------------- */
/* pooling */

typedef struct nn_pool_case {
    int64_t N, C, H, W;
    nd_pool2d_params p;
} nn_pool_case;

static const nn_pool_case nn_pool_cases[] = {
    {2, 3, 8, 8, {2, 2, 2, 2, 0, 0, 0, 1}}, {2, 2, 7, 9, {3, 3, 2, 2, 1, 1, 0, 1}},
    {1, 3, 7, 6, {3, 2, 2, 2, 1, 1, 1, 1}}, /* ceil mode */
    {2, 2, 6, 6, {3, 3, 2, 2, 1, 1, 1, 0}}, /* ceil mode, count_include_pad off */
    {2, 2, 5, 7, {3, 3, 1, 1, 1, 1, 0, 0}}, {1, 2, 5, 5, {2, 3, 3, 2, 1, 0, 1, 1}}, /* asymmetric, ceil */
};
#define NN_NPOOL ((int)(sizeof nn_pool_cases / sizeof nn_pool_cases[0]))

/* Plain max / average pooling of one output pixel, and the argmax. */
static double nn_pool_ref(const nd_tensor *x, int64_t n, int64_t c, int64_t oh, int64_t ow, const nd_pool2d_params *p,
                          int avg, int64_t *arg)
{
    int64_t H = x->size[2], W = x->size[3];
    double best = -INFINITY, sum = 0;
    int64_t cnt = 0, padded = 0;
    for (int64_t i = 0; i < p->kh; i++)
        for (int64_t j = 0; j < p->kw; j++) {
            int64_t h = oh * p->sh - p->ph + i, w = ow * p->sw - p->pw + j;
            if (h < H + p->ph && w < W + p->pw) padded++;
            if (h < 0 || h >= H || w < 0 || w >= W) continue;
            double v = nd_nn_get(x, n * x->stride[0] + c * x->stride[1] + h * x->stride[2] + w * x->stride[3]);
            sum += v;
            cnt++;
            if (v > best) {
                best = v;
                *arg = h * W + w;
            }
        }
    if (!avg) return best;
    return sum / (double)(p->count_include_pad ? padded : cnt);
}

typedef struct nn_pool_ctx {
    nd_tensor *x, *R;
    const nd_pool2d_params *p;
    int kind; /* 0 max, 1 avg, 2 adaptive */
} nn_pool_ctx;

static double nn_pool_loss(void *vc)
{
    nn_pool_ctx *c = vc;
    nd_tensor out = nn_zeros(ND_DTYPE_F64, c->R->ndim, c->R->size),
              ind = nn_zeros(ND_DTYPE_I64, c->R->ndim, c->R->size);
    if (c->kind == 0)
        nd_maxpool2d_forward_cpu(&out, &ind, c->x, c->p);
    else if (c->kind == 1)
        nd_avgpool2d_forward_cpu(&out, c->x, c->p);
    else
        nd_adaptive_avgpool2d_forward_cpu(&out, c->x);
    double s = nn_dot(&out, c->R);
    nd_tensor_release(&out);
    nd_tensor_release(&ind);
    return s;
}

static void test_pool(void)
{
    /* output sizes, PyTorch's rule */
    ND_CHECK(nd_pool_out_size(5, 2, 2, 0, 0) == 2 && nd_pool_out_size(5, 2, 2, 0, 1) == 3);
    ND_CHECK(nd_pool_out_size(6, 3, 2, 1, 0) == 3 && nd_pool_out_size(6, 3, 2, 1, 1) == 4);
    ND_CHECK(nd_pool_out_size(7, 3, 2, 1, 1) == 4 && nd_pool_out_size(4, 2, 2, 1, 1) == 3);
    ND_CHECK(nd_pool_out_size(5, 3, 3, 1, 1) == 2); /* a third window would start in the padding */
    for (int k = 0; k < NN_NPOOL; k++) {
        const nn_pool_case *pc = &nn_pool_cases[k];
        const nd_pool2d_params *p = &pc->p;
        int64_t OH = nd_pool_out_size(pc->H, p->kh, p->sh, p->ph, p->ceil_mode);
        int64_t OW = nd_pool_out_size(pc->W, p->kw, p->sw, p->pw, p->ceil_mode);
        int64_t xs[4] = {pc->N, pc->C, pc->H, pc->W}, os[4] = {pc->N, pc->C, OH, OW};
        for (int v = 0; v < 4; v++) {
            nd_dtype dt = v & 1 ? ND_DTYPE_F64 : ND_DTYPE_F32;
            nd_tensor x = v & 2 ? nn_new_strided(dt, 4, xs, -1, 1) : nn_new(dt, 4, xs, -1, 1);
            nd_tensor mo = nn_zeros(dt, 4, os), ao = nn_zeros(dt, 4, os), ind = nn_zeros(ND_DTYPE_I64, 4, os);
            ND_CHECK_OK(nd_maxpool2d_forward_cpu(&mo, &ind, &x, p));
            ND_CHECK_OK(nd_avgpool2d_forward_cpu(&ao, &x, p));
            int bad = 0;
            for (int64_t n = 0; n < pc->N; n++)
                for (int64_t c = 0; c < pc->C; c++)
                    for (int64_t oh = 0; oh < OH; oh++)
                        for (int64_t ow = 0; ow < OW; ow++) {
                            int64_t arg = -1, o = ((n * pc->C + c) * OH + oh) * OW + ow;
                            double m = nn_pool_ref(&x, n, c, oh, ow, p, 0, &arg),
                                   a = nn_pool_ref(&x, n, c, oh, ow, p, 1, &arg);
                            nn_pool_ref(&x, n, c, oh, ow, p, 0, &arg);
                            if (nd_nn_get(&mo, o) != m) bad++;
                            if (((int64_t *)nd_tensor_data(&ind))[o] != arg) bad++;
                            if (fabs(nd_nn_get(&ao, o) - a) > 1e-6) bad++;
                        }
            ND_CHECK(bad == 0);
            /* 3-d input: the first image alone */
            nd_tensor x0, m0 = nn_zeros(dt, 3, os + 1), i0 = nn_zeros(ND_DTYPE_I64, 3, os + 1), r0;
            nd_tensor_view_of(&x0, &x);
            nd_tensor_select(&x0, 0, 0);
            nd_tensor_view_of(&r0, &mo);
            nd_tensor_select(&r0, 0, 0);
            ND_CHECK_OK(nd_maxpool2d_forward_cpu(&m0, &i0, &x0, p));
            ND_CHECK(nn_maxdiff(&m0, &r0) == 0);
            nd_tensor *all[] = {&x, &mo, &ao, &ind, &x0, &m0, &i0, &r0};
            for (int i = 0; i < 8; i++)
                nd_tensor_release(all[i]);
        }
        /* backward vs finite differences (float64, distinct values so the max is stable) */
        for (int kind = 0; kind < 2; kind++) {
            nd_tensor x = k % 2 ? nn_new_strided(ND_DTYPE_F64, 4, xs, -1, 1) : nn_new(ND_DTYPE_F64, 4, xs, -1, 1);
            nd_tensor R = nn_new(ND_DTYPE_F64, 4, os, -1, 1), gi = nn_new(ND_DTYPE_F64, 4, xs, -1, 1);
            nd_tensor out = nn_zeros(ND_DTYPE_F64, 4, os), ind = nn_zeros(ND_DTYPE_I64, 4, os);
            nd_tensor Rs = nn_new_strided(ND_DTYPE_F64, 4, os, -1, 1);
            nd_tensor_copy(&Rs, &R); /* the same values through a strided grad_output */
            if (kind == 0) {
                ND_CHECK_OK(nd_maxpool2d_forward_cpu(&out, &ind, &x, p));
                ND_CHECK_OK(nd_maxpool2d_backward_cpu(&gi, &Rs, &ind, p));
            } else {
                ND_CHECK_OK(nd_avgpool2d_forward_cpu(&out, &x, p));
                ND_CHECK_OK(nd_avgpool2d_backward_cpu(&gi, &Rs, p));
            }
            nn_pool_ctx ctx = {&x, &R, p, kind};
            ND_CHECK_NEAR(nn_fd(&x, &gi, nn_pool_loss, &ctx, 1e-6), 0, 1e-7);
            nd_tensor *all[] = {&x, &R, &gi, &out, &ind, &Rs};
            for (int i = 0; i < 6; i++)
                nd_tensor_release(all[i]);
        }
    }
    /* adaptive average pooling: formula and gradient, shrinking, identity and growing */
    const int64_t ad[][4] = {{7, 5, 3, 2}, {4, 4, 1, 1}, {5, 5, 5, 5}, {3, 2, 5, 4}, {9, 8, 4, 3}};
    for (int k = 0; k < 5; k++) {
        int64_t xs[4] = {2, 3, ad[k][0], ad[k][1]}, os[4] = {2, 3, ad[k][2], ad[k][3]};
        for (int v = 0; v < 2; v++) {
            nd_dtype dt = v ? ND_DTYPE_F64 : ND_DTYPE_F32;
            nd_tensor x = v ? nn_new_strided(dt, 4, xs, -1, 1) : nn_new(dt, 4, xs, -1, 1), out = nn_zeros(dt, 4, os);
            ND_CHECK_OK(nd_adaptive_avgpool2d_forward_cpu(&out, &x));
            int bad = 0;
            for (int64_t pl = 0; pl < 6; pl++)
                for (int64_t oh = 0; oh < os[2]; oh++)
                    for (int64_t ow = 0; ow < os[3]; ow++) {
                        int64_t h0 = (oh * xs[2]) / os[2], h1 = ((oh + 1) * xs[2] + os[2] - 1) / os[2];
                        int64_t w0 = (ow * xs[3]) / os[3], w1 = ((ow + 1) * xs[3] + os[3] - 1) / os[3];
                        double s = 0;
                        for (int64_t h = h0; h < h1; h++)
                            for (int64_t w = w0; w < w1; w++)
                                s += nn_at(&x, (pl * xs[2] + h) * xs[3] + w);
                        s /= (double)((h1 - h0) * (w1 - w0));
                        if (fabs(nn_at(&out, (pl * os[2] + oh) * os[3] + ow) - s) > 1e-6) bad++;
                    }
            ND_CHECK(bad == 0);
            nd_tensor_release(&x);
            nd_tensor_release(&out);
        }
        nd_tensor x = nn_new(ND_DTYPE_F64, 4, xs, -1, 1), R = nn_new_strided(ND_DTYPE_F64, 4, os, -1, 1);
        nd_tensor gi = nn_zeros(ND_DTYPE_F64, 4, xs);
        ND_CHECK_OK(nd_adaptive_avgpool2d_backward_cpu(&gi, &R));
        nn_pool_ctx ctx = {&x, &R, NULL, 2};
        ND_CHECK_NEAR(nn_fd(&x, &gi, nn_pool_loss, &ctx, 1e-6), 0, 1e-7);
        nd_tensor_release(&x);
        nd_tensor_release(&R);
        nd_tensor_release(&gi);
    }
    /* ties pick the first position of the window in row-major order; NaN wins */
    {
        int64_t ts[3] = {1, 4, 4}, tos[3] = {1, 2, 2};
        nd_tensor x = nn_zeros(ND_DTYPE_F32, 3, ts), o = nn_zeros(ND_DTYPE_F32, 3, tos),
                  ind = nn_zeros(ND_DTYPE_I64, 3, tos);
        nd_nn_set(&x, 1 * 4 + 1, NAN);
        nd_pool2d_params p2 = {2, 2, 2, 2, 0, 0, 0, 1};
        ND_CHECK_OK(nd_maxpool2d_forward_cpu(&o, &ind, &x, &p2));
        const int64_t *ip = nd_tensor_data(&ind);
        ND_CHECK(ip[0] == 5 && isnan(nd_nn_get(&o, 0)));
        ND_CHECK(ip[1] == 2 && ip[2] == 8 && ip[3] == 10 && nd_nn_get(&o, 3) == 0);
        nd_tensor_release(&x);
        nd_tensor_release(&o);
        nd_tensor_release(&ind);
    }
    /* errors */
    int64_t xs[4] = {1, 2, 3, 3}, os[4] = {1, 2, 2, 2};
    nd_tensor x = nn_new(ND_DTYPE_F32, 4, xs, -1, 1), o = nn_zeros(ND_DTYPE_F32, 4, os),
              ind = nn_zeros(ND_DTYPE_I64, 4, os);
    nd_pool2d_params bad = {5, 5, 1, 1, 0, 0, 0, 1};
    ND_CHECK(nd_maxpool2d_forward_cpu(&o, &ind, &x, &bad) == ND_ERR_SHAPE);
    ND_CHECK(strstr(nd_error_message(), "maxpool2d: input 1x2x3x3 is too small") != NULL);
    nd_pool2d_params bad2 = {2, 2, 1, 1, 2, 2, 0, 1};
    ND_CHECK(nd_avgpool2d_forward_cpu(&o, &x, &bad2) == ND_ERR_ARG);
    nd_pool2d_params ok = {2, 2, 2, 2, 0, 0, 0, 1};
    ND_CHECK(nd_maxpool2d_forward_cpu(&o, &ind, &x, &ok) == ND_ERR_SHAPE); /* output should be 1x1 */
    ND_CHECK(strstr(nd_error_message(), "expected 1x2x1x1") != NULL);
    nd_tensor_release(&x);
    nd_tensor_release(&o);
    nd_tensor_release(&ind);
}

/* ---------------------------------------------------------------------------------------- */
/* activations */

typedef struct nn_act_ctx {
    nd_tensor *x, *R;
    nd_status (*fwd)(nd_tensor *, const nd_tensor *);
} nn_act_ctx;

static double nn_act_loss(void *vc)
{
    nn_act_ctx *c = vc;
    nd_tensor out = nn_zeros(ND_DTYPE_F64, c->x->ndim, c->x->size);
    c->fwd(&out, c->x);
    double s = nn_dot(&out, c->R);
    nd_tensor_release(&out);
    return s;
}

static double nn_sig(double x)
{
    return 1 / (1 + exp(-x));
}
static double nn_relu(double x)
{
    return x > 0 ? x : 0;
}

static void test_act(void)
{
    nd_status (*fwd[3])(nd_tensor *, const nd_tensor *) = {nd_relu_forward_cpu, nd_sigmoid_forward_cpu,
                                                           nd_tanh_forward_cpu};
    nd_status (*bwd[3])(nd_tensor *, const nd_tensor *,
                        const nd_tensor *) = {nd_relu_backward_cpu, nd_sigmoid_backward_cpu, nd_tanh_backward_cpu};
    double (*ref[3])(double) = {nn_relu, nn_sig, tanh};
    int64_t xs[3] = {3, 4, 5};
    for (int f = 0; f < 3; f++) {
        for (int v = 0; v < 4; v++) {
            nd_dtype dt = v & 1 ? ND_DTYPE_F64 : ND_DTYPE_F32;
            nd_tensor x = v & 2 ? nn_new_strided(dt, 3, xs, -3, 3) : nn_new(dt, 3, xs, -3, 3);
            nd_tensor y = v & 2 ? nn_new_strided(dt, 3, xs, 0, 1) : nn_zeros(dt, 3, xs);
            ND_CHECK_OK(fwd[f](&y, &x));
            double worst = 0;
            for (int64_t i = 0; i < 60; i++)
                worst = fmax(worst, fabs(nn_at(&y, i) - ref[f](nn_at(&x, i))));
            ND_CHECK_NEAR(worst, 0, 1e-6);
            /* in place */
            nd_tensor xc;
            nd_tensor_clone(&xc, &x, dt);
            ND_CHECK_OK(fwd[f](&x, &x));
            ND_CHECK(nn_maxdiff(&x, &y) == 0);
            nd_tensor_release(&xc);
            nd_tensor_release(&x);
            nd_tensor_release(&y);
        }
        /* backward vs finite differences, strided operands, gradient written in place */
        nd_tensor x = nn_new_strided(ND_DTYPE_F64, 3, xs, -3, 3), R = nn_new(ND_DTYPE_F64, 3, xs, -1, 1);
        for (int64_t i = 0; i < 60; i++) /* keep relu away from its kink */
            if (fabs(nn_at(&x, i)) < 1e-3) nd_nn_set(&x, nn_off(&x, i), 0.5);
        nd_tensor y = nn_zeros(ND_DTYPE_F64, 3, xs), g;
        nd_tensor_clone(&g, &R, ND_DTYPE_F64);
        ND_CHECK_OK(fwd[f](&y, &x));
        ND_CHECK_OK(bwd[f](&g, &g, &y));
        nn_act_ctx ctx = {&x, &R, fwd[f]};
        ND_CHECK_NEAR(nn_fd(&x, &g, nn_act_loss, &ctx, 1e-6), 0, 1e-7);
        nd_tensor_release(&x);
        nd_tensor_release(&R);
        nd_tensor_release(&y);
        nd_tensor_release(&g);
    }
    /* mismatched shapes */
    int64_t s2[2] = {3, 4};
    nd_tensor a = nn_new(ND_DTYPE_F32, 3, xs, -1, 1), b = nn_zeros(ND_DTYPE_F32, 2, s2);
    ND_CHECK(nd_relu_forward_cpu(&b, &a) == ND_ERR_SHAPE);
    ND_CHECK(strstr(nd_error_message(), "relu: output 3x4 and input 3x4x5 differ in shape") != NULL);
    nd_tensor_release(&a);
    nd_tensor_release(&b);

    /* softmax and log-softmax: (C), (N,C), (N,C,H,W); large offsets must not overflow */
    const int64_t shapes[3][4] = {{7, 0, 0, 0}, {4, 6, 0, 0}, {2, 3, 4, 5}};
    const int nds[3] = {1, 2, 4};
    for (int sh = 0; sh < 3; sh++) {
        int nd = nds[sh];
        const int64_t *s = shapes[sh];
        int64_t C = nd == 1 ? s[0] : s[1], Nn = nd == 1 ? 1 : s[0], S = 1;
        for (int d = 2; d < nd; d++)
            S *= s[d];
        for (int lg = 0; lg < 2; lg++) {
            nd_status (*sf)(nd_tensor *, const nd_tensor *) = lg ? nd_logsoftmax_forward_cpu : nd_softmax_forward_cpu;
            nd_status (*sb)(nd_tensor *, const nd_tensor *, const nd_tensor *) =
                lg ? nd_logsoftmax_backward_cpu : nd_softmax_backward_cpu;
            for (int v = 0; v < 4; v++) {
                nd_dtype dt = v & 1 ? ND_DTYPE_F64 : ND_DTYPE_F32;
                nd_tensor x = v & 2 ? nn_new_strided(dt, nd, s, -5, 5) : nn_new(dt, nd, s, -5, 5);
                for (int64_t i = 0; i < nd_tensor_numel(&x); i++) /* a large common offset */
                    nd_nn_set(&x, nn_off(&x, i), nn_at(&x, i) + 1000);
                nd_tensor y = nn_zeros(dt, nd, s);
                ND_CHECK_OK(sf(&y, &x));
                double worst = 0;
                for (int64_t n = 0; n < Nn; n++)
                    for (int64_t p = 0; p < S; p++) {
                        double m = -INFINITY, z = 0;
                        for (int64_t c = 0; c < C; c++)
                            m = fmax(m, nn_at(&x, (n * C + c) * S + p));
                        for (int64_t c = 0; c < C; c++)
                            z += exp(nn_at(&x, (n * C + c) * S + p) - m);
                        for (int64_t c = 0; c < C; c++) {
                            double e = nn_at(&x, (n * C + c) * S + p) - m - log(z);
                            double got = nn_at(&y, (n * C + c) * S + p);
                            worst = fmax(worst, fabs(got - (lg ? e : exp(e))));
                        }
                    }
                ND_CHECK(worst < (dt == ND_DTYPE_F32 ? 2e-4 : 1e-10));
                nd_tensor_release(&x);
                nd_tensor_release(&y);
            }
            nd_tensor x = nn_new_strided(ND_DTYPE_F64, nd, s, -2, 2), R = nn_new(ND_DTYPE_F64, nd, s, -1, 1);
            nd_tensor y = nn_zeros(ND_DTYPE_F64, nd, s), g = nn_zeros(ND_DTYPE_F64, nd, s);
            nd_tensor Rs = nn_new_strided(ND_DTYPE_F64, nd, s, 0, 1);
            nd_tensor_copy(&Rs, &R);
            ND_CHECK_OK(sf(&y, &x));
            ND_CHECK_OK(sb(&g, &Rs, &y));
            nn_act_ctx ctx = {&x, &R, sf};
            ND_CHECK_NEAR(nn_fd(&x, &g, nn_act_loss, &ctx, 1e-6), 0, 1e-7);
            nd_tensor *all[] = {&x, &R, &y, &g, &Rs};
            for (int i = 0; i < 5; i++)
                nd_tensor_release(all[i]);
        }
    }
}

/* ---------------------------------------------------------------------------------------- */
/* batch normalisation */

typedef struct nn_bn_ctx {
    nd_tensor *x, *w, *b, *R, *rm, *rv;
    int training;
} nn_bn_ctx;

static double nn_bn_loss(void *vc)
{
    nn_bn_ctx *c = vc;
    nd_tensor out = nn_zeros(ND_DTYPE_F64, c->x->ndim, c->x->size);
    if (c->training)
        nd_batchnorm_forward_train_cpu(&out, NULL, NULL, c->x, c->w, c->b, NULL, NULL, 0.1, 1e-5);
    else
        nd_batchnorm_forward_eval_cpu(&out, c->x, c->w, c->b, c->rm, c->rv, 1e-5);
    double s = nn_dot(&out, c->R);
    nd_tensor_release(&out);
    return s;
}

static void test_batchnorm(void)
{
    const int64_t shapes[2][4] = {{6, 4, 0, 0}, {3, 4, 3, 5}};
    const int nds[2] = {2, 4};
    const double eps = 1e-5, mom = 0.1;
    for (int sh = 0; sh < 2; sh++) {
        int nd = nds[sh];
        const int64_t *s = shapes[sh];
        int64_t N = s[0], C = s[1], S = nd == 4 ? s[2] * s[3] : 1, m = N * S, cs[1] = {C};
        for (int v = 0; v < 4; v++) {
            nd_dtype dt = v & 1 ? ND_DTYPE_F64 : ND_DTYPE_F32;
            double tol = dt == ND_DTYPE_F32 ? 1e-5 : 1e-12;
            nd_tensor x = v & 2 ? nn_new_strided(dt, nd, s, -2, 3) : nn_new(dt, nd, s, -2, 3);
            nd_tensor w = nn_new(dt, 1, cs, 0.5, 1.5), b = nn_new(dt, 1, cs, -1, 1);
            nd_tensor rm = nn_new(dt, 1, cs, -1, 1), rv = nn_new(dt, 1, cs, 0.5, 2), rm0, rv0;
            nd_tensor_clone(&rm0, &rm, dt);
            nd_tensor_clone(&rv0, &rv, dt);
            nd_tensor y = nn_zeros(dt, nd, s), sm = nn_zeros(dt, 1, cs), si = nn_zeros(dt, 1, cs);
            ND_CHECK_OK(nd_batchnorm_forward_train_cpu(&y, &sm, &si, &x, &w, &b, &rm, &rv, mom, eps));
            double worst = 0;
            for (int64_t c = 0; c < C; c++) {
                double mean = 0, var = 0;
                for (int64_t n = 0; n < N; n++)
                    for (int64_t p = 0; p < S; p++)
                        mean += nn_at(&x, (n * C + c) * S + p);
                mean /= (double)m;
                for (int64_t n = 0; n < N; n++)
                    for (int64_t p = 0; p < S; p++)
                        var += pow(nn_at(&x, (n * C + c) * S + p) - mean, 2);
                double invstd = 1 / sqrt(var / (double)m + eps);
                for (int64_t n = 0; n < N; n++)
                    for (int64_t p = 0; p < S; p++) {
                        int64_t i = (n * C + c) * S + p;
                        double e = (nn_at(&x, i) - mean) * invstd * nn_at(&w, c) + nn_at(&b, c);
                        worst = fmax(worst, fabs(nn_at(&y, i) - e) / (1 + fabs(e)));
                    }
                worst = fmax(worst, fabs(nn_at(&sm, c) - mean));
                worst = fmax(worst, fabs(nn_at(&si, c) - invstd) / invstd);
                worst = fmax(worst, fabs(nn_at(&rm, c) - (0.9 * nn_at(&rm0, c) + 0.1 * mean)));
                worst = fmax(worst, fabs(nn_at(&rv, c) - (0.9 * nn_at(&rv0, c) + 0.1 * var / (double)(m - 1))));
            }
            ND_CHECK_NEAR(worst, 0, tol * 10);
            /* evaluation with the running statistics */
            ND_CHECK_OK(nd_batchnorm_forward_eval_cpu(&y, &x, &w, &b, &rm, &rv, eps));
            worst = 0;
            for (int64_t i = 0; i < nd_tensor_numel(&x); i++) {
                int64_t c = (i / S) % C;
                double e = (nn_at(&x, i) - nn_at(&rm, c)) / sqrt(nn_at(&rv, c) + eps) * nn_at(&w, c) + nn_at(&b, c);
                worst = fmax(worst, fabs(nn_at(&y, i) - e) / (1 + fabs(e)));
            }
            ND_CHECK_NEAR(worst, 0, tol * 10);
            /* no affine: unit variance, zero mean */
            ND_CHECK_OK(nd_batchnorm_forward_train_cpu(&y, NULL, NULL, &x, NULL, NULL, NULL, NULL, mom, eps));
            double mean = 0, sq = 0;
            for (int64_t n = 0; n < N; n++)
                for (int64_t p = 0; p < S; p++) {
                    mean += nn_at(&y, (n * C + 1) * S + p);
                    sq += pow(nn_at(&y, (n * C + 1) * S + p), 2);
                }
            ND_CHECK_NEAR(mean / (double)m, 0, tol * 10);
            ND_CHECK_NEAR(sq / (double)m, 1, 1e-3);
            nd_tensor *all[] = {&x, &w, &b, &rm, &rv, &rm0, &rv0, &y, &sm, &si};
            for (int i = 0; i < 10; i++)
                nd_tensor_release(all[i]);
        }
        /* backward vs finite differences (float64), training and evaluation, affine or not */
        for (int mode = 0; mode < 3; mode++) {
            int training = mode != 1, affine = mode != 2;
            nd_dtype dt = ND_DTYPE_F64;
            nd_tensor x = nn_new_strided(dt, nd, s, -2, 3), R = nn_new(dt, nd, s, -1, 1);
            nd_tensor w = nn_new(dt, 1, cs, 0.5, 1.5), b = nn_new(dt, 1, cs, -1, 1);
            nd_tensor rm = nn_new(dt, 1, cs, -1, 1), rv = nn_new(dt, 1, cs, 0.5, 2);
            nd_tensor y = nn_zeros(dt, nd, s), sm = nn_zeros(dt, 1, cs), si = nn_zeros(dt, 1, cs);
            nd_tensor gi = nn_zeros(dt, nd, s), gw = nn_new(dt, 1, cs, -1, 1), gb = nn_new(dt, 1, cs, -1, 1), gw0, gb0;
            nd_tensor_clone(&gw0, &gw, dt);
            nd_tensor_clone(&gb0, &gb, dt);
            nd_tensor *wp = affine ? &w : NULL, *bp = affine ? &b : NULL;
            ND_CHECK_OK(nd_batchnorm_forward_train_cpu(&y, &sm, &si, &x, wp, bp, NULL, NULL, mom, eps));
            nd_tensor Rs = nn_new_strided(dt, nd, s, 0, 1);
            nd_tensor_copy(&Rs, &R);
            ND_CHECK_OK(nd_batchnorm_backward_cpu(&gi, affine ? &gw : NULL, affine ? &gb : NULL, &x, &Rs, wp, &sm, &si,
                                                  &rm, &rv, training, 0.5, eps));
            nn_bn_ctx ctx = {&x, wp, bp, &R, &rm, &rv, training};
            ND_CHECK_NEAR(nn_fd(&x, &gi, nn_bn_loss, &ctx, 1e-6), 0, 1e-6);
            if (affine) {
                /* accumulated: (gw - gw0) / 0.5 is the gradient */
                for (int64_t c = 0; c < C; c++) {
                    nd_nn_set(&gw, c, (nn_at(&gw, c) - nn_at(&gw0, c)) / 0.5);
                    nd_nn_set(&gb, c, (nn_at(&gb, c) - nn_at(&gb0, c)) / 0.5);
                }
                ND_CHECK_NEAR(nn_fd(&w, &gw, nn_bn_loss, &ctx, 1e-6), 0, 1e-6);
                ND_CHECK_NEAR(nn_fd(&b, &gb, nn_bn_loss, &ctx, 1e-6), 0, 1e-6);
            }
            nd_tensor *all[] = {&x, &R, &w, &b, &rm, &rv, &y, &sm, &si, &gi, &gw, &gb, &gw0, &gb0, &Rs};
            for (int i = 0; i < 15; i++)
                nd_tensor_release(all[i]);
        }
    }
    /* errors */
    int64_t s1[2] = {1, 3}, c3[1] = {4};
    nd_tensor x = nn_new(ND_DTYPE_F32, 2, s1, -1, 1), y = nn_zeros(ND_DTYPE_F32, 2, s1),
              w = nn_zeros(ND_DTYPE_F32, 1, c3);
    ND_CHECK(nd_batchnorm_forward_train_cpu(&y, NULL, NULL, &x, NULL, NULL, NULL, NULL, 0.1, 1e-5) == ND_ERR_SHAPE);
    ND_CHECK(strstr(nd_error_message(), "more than 1 value per plane") != NULL);
    ND_CHECK(nd_batchnorm_forward_eval_cpu(&y, &x, &w, NULL, &w, &w, 1e-5) == ND_ERR_SHAPE);
    ND_CHECK(strstr(nd_error_message(), "batchnorm: expected weight of 3 elements, got 4") != NULL);
    nd_tensor_release(&x);
    nd_tensor_release(&y);
    nd_tensor_release(&w);
}

/* ---------------------------------------------------------------------------------------- */
/* losses */

typedef struct nn_loss_ctx {
    nd_tensor *x, *t, *w;
    int kind; /* 0 nll, 1 mse, 2 bce */
    int avg;
    int64_t ignore;
} nn_loss_ctx;

static double nn_loss_val(void *vc)
{
    nn_loss_ctx *c = vc;
    double l = 0, tw = 0;
    if (c->kind == 0)
        nd_nll_loss_forward_cpu(&l, &tw, c->x, c->t, c->w, c->avg, c->ignore);
    else if (c->kind == 1)
        nd_mse_loss_forward_cpu(&l, c->x, c->t, c->avg);
    else
        nd_bce_loss_forward_cpu(&l, c->x, c->t, c->w, c->avg);
    return l;
}

static void test_losses(void)
{
    int64_t xs[2] = {5, 4}, ts[1] = {5}, cs[1] = {4};
    for (int v = 0; v < 8; v++) {
        nd_dtype dt = v & 1 ? ND_DTYPE_F64 : ND_DTYPE_F32;
        int strided = v & 2, weighted = v & 4;
        nd_tensor x = strided ? nn_new_strided(dt, 2, xs, -3, 0) : nn_new(dt, 2, xs, -3, 0);
        nd_tensor w = nn_new(dt, 1, cs, 0.5, 2), t = nn_zeros(ND_DTYPE_I64, 1, ts);
        int64_t *tp = nd_tensor_data(&t);
        const int64_t tv[5] = {0, 3, 2, 3, 1};
        memcpy(tp, tv, sizeof tv);
        for (int avg = 0; avg < 2; avg++) {
            for (int64_t ignore = -100; ignore <= 3; ignore += 103) { /* none, then class 3 */
                double l, tw, s = 0, ws = 0;
                ND_CHECK_OK(nd_nll_loss_forward_cpu(&l, &tw, &x, &t, weighted ? &w : NULL, avg, ignore));
                for (int n = 0; n < 5; n++) {
                    if (tv[n] == ignore) continue;
                    double wt = weighted ? nn_at(&w, tv[n]) : 1;
                    s -= wt * nn_at(&x, n * 4 + tv[n]);
                    ws += wt;
                }
                ND_CHECK_NEAR(l, avg ? s / ws : s, 1e-6);
                ND_CHECK_NEAR(tw, ws, 1e-6);
                if (dt == ND_DTYPE_F64) {
                    nd_tensor gi = nn_zeros(dt, 2, xs);
                    ND_CHECK_OK(nd_nll_loss_backward_cpu(&gi, &t, weighted ? &w : NULL, tw, avg, ignore, 1.0));
                    nn_loss_ctx ctx = {&x, &t, weighted ? &w : NULL, 0, avg, ignore};
                    ND_CHECK_NEAR(nn_fd(&x, &gi, nn_loss_val, &ctx, 1e-6), 0, 1e-7);
                    nd_tensor_release(&gi);
                }
            }
        }
        /* a single sample: (C) input, one target */
        nd_tensor x1, t1;
        nd_tensor_view_of(&x1, &x);
        nd_tensor_select(&x1, 0, 1);
        nd_tensor_view_of(&t1, &t);
        nd_tensor_narrow(&t1, 0, 1, 1);
        double l1, tw1;
        ND_CHECK_OK(nd_nll_loss_forward_cpu(&l1, &tw1, &x1, &t1, NULL, 1, -100));
        ND_CHECK_NEAR(l1, -nn_at(&x, 4 + 3), 1e-6);
        nd_tensor_release(&x1);
        nd_tensor_release(&t1);
        /* out-of-range target */
        tp[2] = 4;
        double l, tw;
        ND_CHECK(nd_nll_loss_forward_cpu(&l, &tw, &x, &t, NULL, 1, -100) == ND_ERR_INDEX);
        ND_CHECK(strstr(nd_error_message(), "nll_loss: target 4 is out of range for 4 classes (sample 2)") != NULL);
        nd_tensor_release(&x);
        nd_tensor_release(&w);
        nd_tensor_release(&t);
    }
    /* MSE and BCE: formulas, gradients, strided operands, a target of another shape */
    int64_t s3[3] = {2, 3, 4}, s2[2] = {6, 4};
    for (int v = 0; v < 4; v++) {
        nd_dtype dt = v & 1 ? ND_DTYPE_F64 : ND_DTYPE_F32;
        nd_tensor x = v & 2 ? nn_new_strided(dt, 3, s3, 0.05, 0.95) : nn_new(dt, 3, s3, 0.05, 0.95);
        nd_tensor y = v & 2 ? nn_new(dt, 2, s2, 0, 1) : nn_new_strided(dt, 3, s3, 0, 1);
        nd_tensor w = nn_new(dt, 3, s3, 0.5, 2);
        for (int avg = 0; avg < 2; avg++) {
            double l, e = 0, eb = 0;
            ND_CHECK_OK(nd_mse_loss_forward_cpu(&l, &x, &y, avg));
            for (int64_t i = 0; i < 24; i++)
                e += pow(nn_at(&x, i) - nn_at(&y, i), 2);
            ND_CHECK_NEAR(l, avg ? e / 24 : e, 1e-6);
            ND_CHECK_OK(nd_bce_loss_forward_cpu(&l, &x, &y, &w, avg));
            for (int64_t i = 0; i < 24; i++) {
                double xv = nn_at(&x, i), yv = nn_at(&y, i);
                eb -= nn_at(&w, i) * (yv * log(xv) + (1 - yv) * log(1 - xv));
            }
            ND_CHECK_NEAR(l, avg ? eb / 24 : eb, 1e-5);
            if (dt == ND_DTYPE_F64) {
                nd_tensor gi = nn_new_strided(dt, 3, s3, 0, 1);
                for (int kind = 1; kind <= 2; kind++) {
                    for (int weighted = 0; weighted < 2; weighted++) {
                        if (kind == 1 && weighted) continue;
                        if (kind == 1)
                            ND_CHECK_OK(nd_mse_loss_backward_cpu(&gi, &x, &y, avg, 1.0));
                        else
                            ND_CHECK_OK(nd_bce_loss_backward_cpu(&gi, &x, &y, weighted ? &w : NULL, avg, 1.0));
                        nn_loss_ctx ctx = {&x, &y, weighted ? &w : NULL, kind, avg, 0};
                        ND_CHECK_NEAR(nn_fd(&x, &gi, nn_loss_val, &ctx, 1e-7), 0, 1e-6);
                    }
                }
                nd_tensor_release(&gi);
            }
        }
        nd_tensor_release(&x);
        nd_tensor_release(&y);
        nd_tensor_release(&w);
    }
    /* BCE clamps the logs at -100 */
    int64_t one[1] = {2};
    nd_tensor x = nn_zeros(ND_DTYPE_F64, 1, one), y = nn_zeros(ND_DTYPE_F64, 1, one);
    nd_nn_set(&x, 0, 0.0);
    nd_nn_set(&y, 0, 1.0);
    nd_nn_set(&x, 1, 1.0);
    nd_nn_set(&y, 1, 1.0);
    double l;
    ND_CHECK_OK(nd_bce_loss_forward_cpu(&l, &x, &y, NULL, 0));
    ND_CHECK_NEAR(l, 100, 1e-12);
    nd_tensor_release(&x);
    nd_tensor_release(&y);
}

/* ---------------------------------------------------------------------------------------- */
/* the OpenMP paths (forced on, large inputs) agree with the serial ones */

static void test_parallel(void)
{
    int64_t xs[4] = {8, 16, 20, 20}, cs[1] = {16};
    nd_tensor x = nn_new(ND_DTYPE_F32, 4, xs, -2, 2), w = nn_new(ND_DTYPE_F32, 1, cs, 0.5, 1.5);
    nd_tensor b = nn_new(ND_DTYPE_F32, 1, cs, -1, 1), go = nn_new(ND_DTYPE_F32, 4, xs, -1, 1);
    nd_pool2d_params pp = {3, 3, 2, 2, 1, 1, 1, 1};
    int64_t os[4] = {8, 16, nd_pool_out_size(20, 3, 2, 1, 1), nd_pool_out_size(20, 3, 2, 1, 1)};
    nd_tensor r[2][10];
    int old = nd_nn_set_parallel(0);
    for (int par = 0; par < 2; par++) {
        nd_nn_set_parallel(par);
        nd_tensor *t = r[par];
        t[0] = nn_zeros(ND_DTYPE_F32, 4, os);
        t[1] = nn_zeros(ND_DTYPE_I64, 4, os);
        t[2] = nn_zeros(ND_DTYPE_F32, 4, xs);
        t[3] = nn_zeros(ND_DTYPE_F32, 4, os);
        t[4] = nn_zeros(ND_DTYPE_F32, 4, xs);
        t[5] = nn_zeros(ND_DTYPE_F32, 4, xs);
        t[6] = nn_zeros(ND_DTYPE_F32, 1, cs);
        t[7] = nn_zeros(ND_DTYPE_F32, 1, cs);
        t[8] = nn_zeros(ND_DTYPE_F32, 4, xs);
        t[9] = nn_zeros(ND_DTYPE_F32, 4, xs);
        ND_CHECK_OK(nd_maxpool2d_forward_cpu(&t[0], &t[1], &x, &pp));
        ND_CHECK_OK(nd_maxpool2d_backward_cpu(&t[2], &t[0], &t[1], &pp));
        ND_CHECK_OK(nd_avgpool2d_forward_cpu(&t[3], &x, &pp));
        ND_CHECK_OK(nd_avgpool2d_backward_cpu(&t[4], &t[3], &pp));
        ND_CHECK_OK(nd_batchnorm_forward_train_cpu(&t[5], &t[6], &t[7], &x, &w, &b, NULL, NULL, 0.1, 1e-5));
        ND_CHECK_OK(nd_batchnorm_backward_cpu(&t[8], NULL, NULL, &x, &go, &w, &t[6], &t[7], NULL, NULL, 1, 1, 1e-5));
        ND_CHECK_OK(nd_softmax_forward_cpu(&t[9], &x));
        ND_CHECK_OK(nd_relu_forward_cpu(&t[9], &t[9]));
    }
    nd_nn_set_parallel(old);
    for (int i = 0; i < 10; i++) {
        ND_CHECK(nn_maxdiff(&r[0][i], &r[1][i]) == 0);
        nd_tensor_release(&r[0][i]);
        nd_tensor_release(&r[1][i]);
    }
    nd_tensor_release(&x);
    nd_tensor_release(&w);
    nd_tensor_release(&b);
    nd_tensor_release(&go);
}

void nd_test_nn(void)
{
    nd_rng_seed(&nn_rng, 4321);
    test_pool();
    test_act();
    test_batchnorm();
    test_losses();
    test_parallel();
}
