/* Convolution tests (group `conv`): im2col/col2im round trip, the fast convolution against the
 * direct reference over many configurations (both dtypes, strided inputs, chunked batches),
 * backward against the reference backward and against central finite differences (float64). */
#include <string.h>

#include "nd.h"
#include "nd_cpu_nn.h"
#include "fixtures.h"
#include "nd_test.h"

static nd_rng conv_rng;

/* A new tensor of uniform values in [-1, 1). */
static nd_tensor conv_rand(nd_dtype dt, int ndim, const int64_t *size)
{
    return nd_fx_uniform(&conv_rng, dt, ndim, size, -1, 1);
}

/* A random tensor of the given shape that is NOT contiguous: variant 0 is a transposed H/W
 * view, variant 1 a narrowed view of a wider tensor. */
static nd_tensor conv_rand_strided(nd_dtype dt, int ndim, const int64_t *size, int variant)
{
    int64_t s[ND_MAX_DIMS];
    memcpy(s, size, sizeof(int64_t) * (size_t)ndim);
    nd_tensor t;
    if (variant == 0) {
        s[ndim - 1] = size[ndim - 2];
        s[ndim - 2] = size[ndim - 1];
        t = conv_rand(dt, ndim, s);
        nd_tensor_transpose(&t, ndim - 2, ndim - 1);
    } else {
        s[ndim - 1] = size[ndim - 1] + 3;
        t = conv_rand(dt, ndim, s);
        nd_tensor_narrow(&t, ndim - 1, 2, size[ndim - 1]);
    }
    return t;
}

typedef struct conv_case {
    int64_t N, C, H, W, Cout, kh, kw, sh, sw, ph, pw, dh, dw, groups;
    int bias;
} conv_case;

static const conv_case conv_cases[] = {
    {2, 3, 7, 9, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},   /* plain 3x3 pad 1, odd sizes */
    {3, 4, 8, 8, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1, 0},   /* stride 2, no bias */
    {2, 4, 9, 7, 4, 3, 2, 2, 1, 0, 2, 1, 1, 1, 1},   /* asymmetric kernel, stride, padding */
    {2, 3, 10, 11, 5, 3, 3, 1, 1, 2, 2, 2, 2, 1, 1}, /* dilation 2 */
    {2, 6, 7, 7, 9, 3, 3, 1, 1, 1, 1, 1, 1, 3, 1},   /* 3 groups */
    {2, 4, 6, 6, 8, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1},   /* 1x1 on a small image (batched path) */
    {2, 8, 17, 16, 4, 1, 1, 1, 1, 0, 0, 1, 1, 2, 1}, /* 1x1 direct path, 2 groups */
    {1, 3, 5, 5, 2, 5, 5, 1, 1, 0, 0, 1, 1, 1, 1},   /* kernel as large as the image */
    {3, 2, 4, 5, 3, 3, 3, 3, 3, 2, 2, 1, 1, 1, 1},   /* stride 3, padding 2 */
    {2, 4, 6, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 4, 1},   /* depthwise */
    {2, 4, 9, 9, 3, 1, 1, 2, 2, 0, 0, 1, 1, 1, 0},   /* 1x1 stride 2 */
    {2, 3, 6, 8, 4, 2, 3, 1, 2, 1, 0, 3, 1, 1, 1},   /* dilation 3x1, stride 1x2 */
    {2, 3, 9, 20, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},  /* wide rows (row-copy im2col) */
    {2, 2, 7, 41, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},  /* wide rows, stride 2 */
    {1, 4, 5, 37, 4, 3, 5, 1, 1, 2, 3, 2, 2, 2, 0},  /* wide rows, dilation 2, groups */
};
#define CONV_NCASES ((int)(sizeof conv_cases / sizeof conv_cases[0]))

static nd_conv2d_params conv_params(const conv_case *c)
{
    nd_conv2d_params p = {c->kh, c->kw, c->sh, c->sw, c->ph, c->pw, c->dh, c->dw, c->groups};
    return p;
}

/* col2im(im2col(x)) == x * (number of windows covering each pixel), and im2col entries match
 * their definition. */
static void test_im2col_roundtrip(void)
{
    for (int k = 0; k < CONV_NCASES; k++) {
        for (int dti = 0; dti < 2; dti++) {
            nd_dtype dt = dti ? ND_DTYPE_F64 : ND_DTYPE_F32;
            const conv_case *c = &conv_cases[k];
            nd_conv2d_params p = conv_params(c);
            int64_t xs[4] = {c->N, c->C, c->H, c->W};
            nd_tensor x = k % 3 == 2 ? conv_rand_strided(dt, 4, xs, k % 2) : conv_rand(dt, 4, xs);
            int64_t OH = nd_conv_out_size(c->H, c->kh, c->sh, c->ph, c->dh);
            int64_t OW = nd_conv_out_size(c->W, c->kw, c->sw, c->pw, c->dw);
            int64_t cs[2] = {c->C * c->kh * c->kw, c->N * OH * OW};
            nd_tensor cols = nd_fx_zeros(dt, 2, cs), y = nd_fx_zeros(dt, 4, xs), expect = nd_fx_zeros(dt, 4, xs);
            ND_CHECK_OK(nd_im2col_cpu(&cols, &x, &p));
            ND_CHECK_OK(nd_col2im_cpu(&y, &cols, &p));
            /* brute force: every (f, column) entry, and the overlap-weighted sum */
            int bad = 0;
            for (int64_t n = 0; n < c->N; n++)
                for (int64_t ch = 0; ch < c->C; ch++)
                    for (int64_t ki = 0; ki < c->kh; ki++)
                        for (int64_t kj = 0; kj < c->kw; kj++)
                            for (int64_t oh = 0; oh < OH; oh++)
                                for (int64_t ow = 0; ow < OW; ow++) {
                                    int64_t ih = oh * c->sh - c->ph + ki * c->dh, iw = ow * c->sw - c->pw + kj * c->dw;
                                    int64_t f = (ch * c->kh + ki) * c->kw + kj, col = (n * OH + oh) * OW + ow;
                                    double v = 0;
                                    if (ih >= 0 && ih < c->H && iw >= 0 && iw < c->W) {
                                        int64_t xo =
                                            n * x.stride[0] + ch * x.stride[1] + ih * x.stride[2] + iw * x.stride[3];
                                        int64_t eo = ((n * c->C + ch) * c->H + ih) * c->W + iw;
                                        v = nd_nn_get(&x, xo);
                                        nd_nn_set(&expect, eo, nd_nn_get(&expect, eo) + v);
                                    }
                                    if (nd_nn_get(&cols, f * cs[1] + col) != v) bad++;
                                }
            ND_CHECK(bad == 0);
            ND_CHECK_NEAR(nd_fx_maxdiff(&y, &expect), 0, dti ? 1e-12 : 1e-5);
            /* 3-d input: the (C*kh*kw, OH*OW) layout of one image */
            nd_tensor x0, c0;
            nd_tensor_view_of(&x0, &x);
            nd_tensor_select(&x0, 0, c->N - 1);
            int64_t cs0[2] = {cs[0], OH * OW};
            c0 = nd_fx_zeros(dt, 2, cs0);
            ND_CHECK_OK(nd_im2col_cpu(&c0, &x0, &p));
            nd_tensor tail;
            nd_tensor_view_of(&tail, &cols);
            nd_tensor_narrow(&tail, 1, (c->N - 1) * OH * OW, OH * OW);
            ND_CHECK(nd_fx_maxdiff(&c0, &tail) == 0);
            nd_tensor_release(&tail);
            nd_tensor_release(&c0);
            nd_tensor_release(&x0);
            nd_tensor_release(&x);
            nd_tensor_release(&cols);
            nd_tensor_release(&y);
            nd_tensor_release(&expect);
        }
    }
}

/* Fast forward vs the direct loops: both dtypes, contiguous and strided input, 3-d input,
 * default chunking and one image per chunk. */
static void test_forward_vs_ref(void)
{
    for (int k = 0; k < CONV_NCASES; k++) {
        const conv_case *c = &conv_cases[k];
        nd_conv2d_params p = conv_params(c);
        int64_t OH = nd_conv_out_size(c->H, c->kh, c->sh, c->ph, c->dh);
        int64_t OW = nd_conv_out_size(c->W, c->kw, c->sw, c->pw, c->dw);
        for (int dti = 0; dti < 2; dti++) {
            nd_dtype dt = dti ? ND_DTYPE_F64 : ND_DTYPE_F32;
            double tol = dti ? 1e-12 : 2e-5;
            int64_t xs[4] = {c->N, c->C, c->H, c->W}, ws[4] = {c->Cout, c->C / c->groups, c->kh, c->kw};
            int64_t os[4] = {c->N, c->Cout, OH, OW}, bs[1] = {c->Cout};
            nd_tensor w = conv_rand(dt, 4, ws), b = conv_rand(dt, 1, bs);
            nd_tensor *bias = c->bias ? &b : NULL;
            for (int layout = 0; layout < 3; layout++) {
                nd_tensor x = layout == 0 ? conv_rand(dt, 4, xs) : conv_rand_strided(dt, 4, xs, layout - 1);
                nd_tensor ref = nd_fx_zeros(dt, 4, os), out = nd_fx_zeros(dt, 4, os);
                ND_CHECK_OK(nd_conv2d_forward_ref_cpu(&ref, &x, &w, bias, &p));
                ND_CHECK_OK(nd_conv2d_forward_cpu(&out, &x, &w, bias, &p));
                ND_CHECK_NEAR(nd_fx_maxdiff(&out, &ref), 0, tol);
                int64_t old = nd_conv_set_chunk_bytes(1); /* one image per chunk */
                ND_CHECK_OK(nd_conv2d_forward_cpu(&out, &x, &w, bias, &p));
                nd_conv_set_chunk_bytes(old);
                ND_CHECK_NEAR(nd_fx_maxdiff(&out, &ref), 0, tol);
                if (layout == 2) { /* 3-d input gives a 3-d output */
                    nd_tensor x0, r0, o0;
                    nd_tensor_view_of(&x0, &x);
                    nd_tensor_select(&x0, 0, 0);
                    nd_tensor_view_of(&r0, &ref);
                    nd_tensor_select(&r0, 0, 0);
                    o0 = nd_fx_zeros(dt, 3, os + 1);
                    ND_CHECK_OK(nd_conv2d_forward_cpu(&o0, &x0, &w, bias, &p));
                    ND_CHECK_NEAR(nd_fx_maxdiff(&o0, &r0), 0, tol);
                    nd_tensor_release(&x0);
                    nd_tensor_release(&r0);
                    nd_tensor_release(&o0);
                }
                nd_tensor_release(&x);
                nd_tensor_release(&ref);
                nd_tensor_release(&out);
            }
            /* a 2-d weight (Cout, Cin/g*kh*kw) is the same weight */
            nd_tensor w2;
            nd_tensor_view_of(&w2, &w);
            int64_t w2s[2] = {c->Cout, -1};
            nd_tensor_view(&w2, 2, w2s);
            nd_tensor x = conv_rand(dt, 4, xs), ref = nd_fx_zeros(dt, 4, os), out = nd_fx_zeros(dt, 4, os);
            ND_CHECK_OK(nd_conv2d_forward_ref_cpu(&ref, &x, &w, bias, &p));
            ND_CHECK_OK(nd_conv2d_forward_cpu(&out, &x, &w2, bias, &p));
            ND_CHECK_NEAR(nd_fx_maxdiff(&out, &ref), 0, tol);
            nd_tensor_release(&w2);
            nd_tensor_release(&x);
            nd_tensor_release(&ref);
            nd_tensor_release(&out);
            nd_tensor_release(&w);
            nd_tensor_release(&b);
        }
    }
}

/* Fast backward (separate calls and the combined one) vs the reference backward; the
 * accumulators start from random values and the scale is 0.5. */
static void test_backward_vs_ref(void)
{
    for (int k = 0; k < CONV_NCASES; k++) {
        const conv_case *c = &conv_cases[k];
        nd_conv2d_params p = conv_params(c);
        int64_t OH = nd_conv_out_size(c->H, c->kh, c->sh, c->ph, c->dh);
        int64_t OW = nd_conv_out_size(c->W, c->kw, c->sw, c->pw, c->dw);
        for (int dti = 0; dti < 2; dti++) {
            nd_dtype dt = dti ? ND_DTYPE_F64 : ND_DTYPE_F32;
            double tol = dti ? 1e-12 : 3e-5;
            int64_t xs[4] = {c->N, c->C, c->H, c->W}, ws[4] = {c->Cout, c->C / c->groups, c->kh, c->kw};
            int64_t os[4] = {c->N, c->Cout, OH, OW}, bs[1] = {c->Cout};
            nd_tensor w = conv_rand(dt, 4, ws);
            nd_tensor x = k % 2 ? conv_rand_strided(dt, 4, xs, k % 4 == 1) : conv_rand(dt, 4, xs);
            nd_tensor go = k % 3 == 1 ? conv_rand_strided(dt, 4, os, 0) : conv_rand(dt, 4, os);
            nd_tensor gw0 = conv_rand(dt, 4, ws), gb0 = conv_rand(dt, 1, bs);
            nd_tensor rgi = conv_rand(dt, 4, xs), rgw, rgb;
            nd_tensor_clone(&rgw, &gw0, dt);
            nd_tensor_clone(&rgb, &gb0, dt);
            ND_CHECK_OK(nd_conv2d_backward_ref_cpu(&rgi, &rgw, &rgb, &x, &go, &w, 0.5, &p));
            for (int mode = 0; mode < 3; mode++) {
                nd_tensor gi = conv_rand(dt, 4, xs), gw, gb;
                nd_tensor_clone(&gw, &gw0, dt);
                nd_tensor_clone(&gb, &gb0, dt);
                int64_t old = nd_conv_set_chunk_bytes(mode == 2 ? 1 : 0);
                ND_CHECK_OK(nd_fx_conv_backward(mode == 0, &gi, &gw, &gb, &x, &go, &w, 0.5, &p));
                nd_conv_set_chunk_bytes(old);
                ND_CHECK_NEAR(nd_fx_maxdiff(&gi, &rgi), 0, tol);
                ND_CHECK_NEAR(nd_fx_maxdiff(&gw, &rgw), 0, tol * 10);
                ND_CHECK_NEAR(nd_fx_maxdiff(&gb, &rgb), 0, tol * 10);
                nd_tensor_release(&gi);
                nd_tensor_release(&gw);
                nd_tensor_release(&gb);
            }
            nd_tensor *all[] = {&w, &x, &go, &gw0, &gb0, &rgi, &rgw, &rgb};
            for (int i = 0; i < 8; i++)
                nd_tensor_release(all[i]);
        }
    }
}

/* L = sum(conv(x, w, b) .* R): analytic gradients of the fast backward vs central differences. */
static double conv_loss(const nd_tensor *x, const nd_tensor *w, const nd_tensor *b, const nd_tensor *R,
                        const nd_conv2d_params *p)
{
    nd_tensor out = nd_fx_zeros(ND_DTYPE_F64, R->ndim, R->size);
    nd_conv2d_forward_cpu(&out, x, w, b, p);
    const double *o = nd_tensor_data(&out), *r = nd_tensor_data(R);
    double s = 0;
    for (int64_t i = 0; i < nd_tensor_numel(&out); i++)
        s += o[i] * r[i];
    nd_tensor_release(&out);
    return s;
}

static double conv_fd_check(nd_tensor *param, const nd_tensor *grad, const nd_tensor *x, const nd_tensor *w,
                            const nd_tensor *b, const nd_tensor *R, const nd_conv2d_params *p)
{
    double *v = nd_tensor_data(param), worst = 0, h = 1e-6;
    const double *g = nd_tensor_data(grad);
    for (int64_t i = 0; i < nd_tensor_numel(param); i++) {
        double keep = v[i];
        v[i] = keep + h;
        double lp = conv_loss(x, w, b, R, p);
        v[i] = keep - h;
        double lm = conv_loss(x, w, b, R, p);
        v[i] = keep;
        double fd = (lp - lm) / (2 * h), d = fabs(fd - g[i]) / (1 + fabs(fd));
        if (d > worst) worst = d;
    }
    return worst;
}

static void test_backward_fd(void)
{
    const int picks[] = {0, 1, 3, 4, 6, 9, 11, 13};
    for (int t = 0; t < (int)(sizeof picks / sizeof picks[0]); t++) {
        conv_case c = conv_cases[picks[t]];
        c.N = 2;
        if (c.H > 7) c.H = 7;
        if (c.W > 7 && c.kh * c.kw > 1 && c.W < 20) c.W = 7;
        nd_conv2d_params p = conv_params(&c);
        int64_t OH = nd_conv_out_size(c.H, c.kh, c.sh, c.ph, c.dh), OW = nd_conv_out_size(c.W, c.kw, c.sw, c.pw, c.dw);
        int64_t xs[4] = {c.N, c.C, c.H, c.W}, ws[4] = {c.Cout, c.C / c.groups, c.kh, c.kw};
        int64_t os[4] = {c.N, c.Cout, OH, OW}, bs[1] = {c.Cout};
        nd_dtype dt = ND_DTYPE_F64;
        nd_tensor x = conv_rand(dt, 4, xs), w = conv_rand(dt, 4, ws), b = conv_rand(dt, 1, bs),
                  R = conv_rand(dt, 4, os);
        nd_tensor gi = nd_fx_zeros(dt, 4, xs), gw = nd_fx_zeros(dt, 4, ws), gb = nd_fx_zeros(dt, 1, bs);
        ND_CHECK_OK(nd_conv2d_backward_cpu(&gi, &gw, &gb, &x, &R, &w, 1.0, &p));
        ND_CHECK_NEAR(conv_fd_check(&x, &gi, &x, &w, &b, &R, &p), 0, 1e-7);
        ND_CHECK_NEAR(conv_fd_check(&w, &gw, &x, &w, &b, &R, &p), 0, 1e-7);
        ND_CHECK_NEAR(conv_fd_check(&b, &gb, &x, &w, &b, &R, &p), 0, 1e-7);
        nd_tensor *all[] = {&x, &w, &b, &R, &gi, &gw, &gb};
        for (int i = 0; i < 7; i++)
            nd_tensor_release(all[i]);
    }
}

/* The OpenMP paths (forced on, sizes above the parallel thresholds) give the same results as
 * the serial ones, both im2col strategies. */
static void test_parallel(void)
{
    const conv_case big[2] = {{4, 16, 12, 12, 8, 3, 3, 1, 1, 1, 1, 1, 1, 2, 1},
                              {3, 6, 20, 24, 5, 3, 3, 2, 1, 1, 1, 1, 1, 1, 1}};
    for (int k = 0; k < 2; k++) {
        const conv_case *c = &big[k];
        nd_conv2d_params p = conv_params(c);
        int64_t OH = nd_conv_out_size(c->H, c->kh, c->sh, c->ph, c->dh);
        int64_t OW = nd_conv_out_size(c->W, c->kw, c->sw, c->pw, c->dw);
        int64_t xs[4] = {c->N, c->C, c->H, c->W}, ws[4] = {c->Cout, c->C / c->groups, c->kh, c->kw};
        int64_t os[4] = {c->N, c->Cout, OH, OW}, bs[1] = {c->Cout};
        nd_dtype dt = ND_DTYPE_F32;
        nd_tensor x = conv_rand(dt, 4, xs), w = conv_rand(dt, 4, ws), b = conv_rand(dt, 1, bs);
        nd_tensor go = conv_rand(dt, 4, os), ref = nd_fx_zeros(dt, 4, os);
        nd_tensor out[2], gi[2], gw[2], gb[2];
        ND_CHECK_OK(nd_conv2d_forward_ref_cpu(&ref, &x, &w, &b, &p));
        int old = nd_nn_set_parallel(0);
        for (int par = 0; par < 2; par++) {
            nd_nn_set_parallel(par);
            ND_CHECK(nd_nn_parallel() == par);
            out[par] = nd_fx_zeros(dt, 4, os);
            gi[par] = nd_fx_zeros(dt, 4, xs);
            gw[par] = nd_fx_zeros(dt, 4, ws);
            gb[par] = nd_fx_zeros(dt, 1, bs);
            ND_CHECK_OK(nd_conv2d_forward_cpu(&out[par], &x, &w, &b, &p));
            ND_CHECK_OK(nd_conv2d_backward_cpu(&gi[par], &gw[par], &gb[par], &x, &go, &w, 1.0, &p));
        }
        nd_nn_set_parallel(old);
        ND_CHECK_NEAR(nd_fx_maxdiff(&out[1], &ref), 0, 2e-5);
        ND_CHECK(nd_fx_maxdiff(&out[0], &out[1]) == 0);
        ND_CHECK(nd_fx_maxdiff(&gi[0], &gi[1]) == 0);
        ND_CHECK(nd_fx_maxdiff(&gw[0], &gw[1]) == 0);
        ND_CHECK(nd_fx_maxdiff(&gb[0], &gb[1]) == 0);
        nd_tensor *all[] = {&x, &w, &b, &go, &ref, &out[0], &out[1], &gi[0], &gi[1], &gw[0], &gw[1], &gb[0], &gb[1]};
        for (int i = 0; i < 13; i++)
            nd_tensor_release(all[i]);
    }
}

static void test_errors(void)
{
    nd_conv2d_params p = {3, 3, 1, 1, 1, 1, 1, 1, 1};
    int64_t xs[4] = {2, 32, 6, 6}, ws[4] = {8, 64, 3, 3}, os[4] = {2, 8, 6, 6};
    nd_tensor x = conv_rand(ND_DTYPE_F32, 4, xs), w = conv_rand(ND_DTYPE_F32, 4, ws),
              o = nd_fx_zeros(ND_DTYPE_F32, 4, os);
    ND_CHECK(nd_conv2d_forward_cpu(&o, &x, &w, NULL, &p) == ND_ERR_SHAPE);
    ND_CHECK(strstr(nd_error_message(), "conv2d: expected input of 64 planes, got 32 (input 2x32x6x6") != NULL);
    nd_tensor_release(&w);
    int64_t ws2[4] = {8, 32, 3, 3};
    w = conv_rand(ND_DTYPE_F64, 4, ws2);
    ND_CHECK(nd_conv2d_forward_cpu(&o, &x, &w, NULL, &p) == ND_ERR_DTYPE);
    nd_tensor_release(&w);
    w = conv_rand(ND_DTYPE_F32, 4, ws2);
    p.ph = p.pw = 0;
    ND_CHECK(nd_conv2d_forward_cpu(&o, &x, &w, NULL, &p) == ND_ERR_SHAPE); /* output is 4x4 now */
    ND_CHECK(strstr(nd_error_message(), "output has shape 2x8x6x6, expected 2x8x4x4") != NULL);
    p.kh = p.kw = 7;
    ND_CHECK(nd_conv2d_forward_cpu(&o, &x, &w, NULL, &p) == ND_ERR_SHAPE);
    ND_CHECK(strstr(nd_error_message(), "too small") != NULL);
    p.kh = p.kw = 3;
    p.groups = 3;
    ND_CHECK(nd_conv2d_forward_cpu(&o, &x, &w, NULL, &p) == ND_ERR_SHAPE);
    p.groups = 1;
    p.sh = 0;
    ND_CHECK(nd_conv2d_forward_cpu(&o, &x, &w, NULL, &p) == ND_ERR_ARG);
    /* an output that aliases the input (same shape with 3x3, padding 1) is refused */
    int64_t ss[4] = {2, 8, 6, 6}, sw[4] = {8, 8, 3, 3};
    nd_conv2d_params q = {3, 3, 1, 1, 1, 1, 1, 1, 1};
    nd_tensor a = conv_rand(ND_DTYPE_F32, 4, ss), aw = conv_rand(ND_DTYPE_F32, 4, sw),
              ag = conv_rand(ND_DTYPE_F32, 4, ss);
    ND_CHECK(nd_conv2d_forward_cpu(&a, &a, &aw, NULL, &q) == ND_ERR_ARG);
    ND_CHECK(strstr(nd_error_message(), "conv2d: output shares memory with an input") != NULL);
    ND_CHECK(nd_conv2d_backward_input_cpu(&ag, &ag, &aw, &q) == ND_ERR_ARG);
    ND_CHECK_OK(nd_conv2d_backward_input_cpu(&ag, &a, &aw, &q));
    nd_tensor_release(&a);
    nd_tensor_release(&aw);
    nd_tensor_release(&ag);
    nd_tensor_release(&x);
    nd_tensor_release(&w);
    nd_tensor_release(&o);
}

void nd_test_conv(void)
{
    nd_rng_seed(&conv_rng, 1234);
    test_im2col_roundtrip();
    test_forward_vs_ref();
    test_backward_vs_ref();
    test_backward_fd();
    test_parallel();
    test_errors();
    nd_conv_scratch_free();
}
