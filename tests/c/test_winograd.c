/* Winograd F(2x2,3x3) tests (group `winograd`): the kernels (called directly, and through the
 * conv entry points in forced mode) against the direct reference convolution for forward,
 * grad input, grad weight and grad bias: padding 0 and 1, odd and non-square sizes, N = 1..3,
 * float32 and float64, one tile row per chunk, strided inputs, serial and OpenMP transforms;
 * the auto mode's choice; float32 error next to im2col's on a VGG-sized layer. */
#include <stdlib.h>
#include <string.h>

#include "nd.h"
#include "nd_cpu_nn.h"
#include "fixtures.h"
#include "nd_test.h"

static nd_rng wg_rng;

static nd_tensor wg_rand(nd_dtype dt, int ndim, const int64_t *size)
{
    return nd_fx_uniform(&wg_rng, dt, ndim, size, -1, 1);
}

/* A random (N,C,H,W) tensor viewed through a transpose of a (N,C,W,H) one: not contiguous. */
static nd_tensor wg_rand_strided(nd_dtype dt, const int64_t *size)
{
    int64_t s[4] = {size[0], size[1], size[3], size[2]};
    nd_tensor t = wg_rand(dt, 4, s);
    nd_tensor_transpose(&t, 2, 3);
    return t;
}

/* max |a - b| / max |b| (normwise). */
static double wg_relerr(const nd_tensor *a, const nd_tensor *b)
{
    nd_tensor x, y;
    nd_tensor_clone(&x, a, ND_DTYPE_F64);
    nd_tensor_clone(&y, b, ND_DTYPE_F64);
    const double *p = nd_tensor_data(&x), *q = nd_tensor_data(&y);
    double m = 0, s = 0;
    for (int64_t i = 0; i < nd_tensor_numel(&x); i++) {
        if (fabs(p[i] - q[i]) > m) m = fabs(p[i] - q[i]);
        if (fabs(q[i]) > s) s = fabs(q[i]);
    }
    nd_tensor_release(&x);
    nd_tensor_release(&y);
    return m / (s > 0 ? s : 1);
}

typedef struct wg_case {
    int64_t N, C, H, W, Cout, ph, pw;
} wg_case;

static const wg_case wg_cases[] = {
    {2, 3, 7, 9, 4, 1, 1},  /* odd sizes: a half tile on both edges */
    {1, 4, 8, 8, 5, 1, 1},  /* even sizes */
    {3, 5, 6, 9, 3, 0, 0},  /* no padding, odd output width */
    {2, 3, 9, 4, 6, 0, 1},  /* padding on one axis only, non-square */
    {2, 2, 3, 3, 2, 0, 0},  /* 1x1 output: one tile, three quarters cropped */
    {3, 6, 2, 2, 4, 1, 1},  /* 2x2 image (VGG's last layers): one tile per image */
    {1, 7, 13, 5, 3, 1, 0}, /* tall */
    {2, 4, 1, 6, 3, 1, 1},  /* a single image row */
};
#define WG_NCASES ((int)(sizeof wg_cases / sizeof wg_cases[0]))

static nd_conv2d_params wg_params(const wg_case *c)
{
    nd_conv2d_params p = {3, 3, 1, 1, c->ph, c->pw, 1, 1, 1};
    return p;
}

/* The kernels themselves, on contiguous float32/float64 data, default chunking and one tile row
 * per chunk: forward (with bias), then backward (grad input and grad weight), vs the reference. */
static void test_kernels_vs_ref(void)
{
    for (int k = 0; k < WG_NCASES; k++) {
        const wg_case *c = &wg_cases[k];
        nd_conv2d_params p = wg_params(c);
        ND_CHECK(nd_winograd_applies(&p));
        const int64_t OH = c->H + 2 * c->ph - 2, OW = c->W + 2 * c->pw - 2;
        for (int dti = 0; dti < 2; dti++) {
            const nd_dtype dt = dti ? ND_DTYPE_F64 : ND_DTYPE_F32;
            const double tol = dti ? 1e-12 : 2e-5;
            int64_t xs[4] = {c->N, c->C, c->H, c->W}, ws[4] = {c->Cout, c->C, 3, 3};
            int64_t os[4] = {c->N, c->Cout, OH, OW}, bs[1] = {c->Cout};
            nd_tensor x = wg_rand(dt, 4, xs), w = wg_rand(dt, 4, ws), b = wg_rand(dt, 1, bs), go = wg_rand(dt, 4, os);
            nd_tensor ref = nd_fx_zeros(dt, 4, os), rgi = nd_fx_zeros(dt, 4, xs), rgw = wg_rand(dt, 4, ws);
            nd_tensor gw0;
            nd_tensor_clone(&gw0, &rgw, dt);
            ND_CHECK_OK(nd_conv2d_forward_ref_cpu(&ref, &x, &w, &b, &p));
            ND_CHECK_OK(nd_conv2d_backward_ref_cpu(&rgi, &rgw, NULL, &x, &go, &w, 0.75, &p));
            for (int chunk = 0; chunk < 2; chunk++) {
                nd_winograd_geom g = {.N = c->N, .C = c->C, .H = c->H, .W = c->W, .Cout = c->Cout, .ph = c->ph,
                                      .pw = c->pw};
                const int64_t elem = dti ? 8 : 4, budget = chunk ? 1 : 64 << 20;
                int64_t bytes = nd_winograd_plan(&g, budget, elem, 1, 1);
                ND_CHECK(g.OH == OH && g.OW == OW && g.rows >= 1);
                if (chunk) ND_CHECK(g.rows == 1);
                void *scratch = malloc((size_t)bytes);
                nd_tensor out = wg_rand(dt, 4, os), gi = wg_rand(dt, 4, xs), gw;
                nd_tensor_clone(&gw, &gw0, dt);
                void *o = nd_tensor_data(&out), *gid = nd_tensor_data(&gi), *gwd = nd_tensor_data(&gw);
                const void *xd = nd_tensor_data(&x), *wd = nd_tensor_data(&w), *bd = nd_tensor_data(&b);
                const void *god = nd_tensor_data(&go);
                if (dti) {
                    ND_CHECK_OK(nd_winograd_forward_f64(o, xd, wd, bd, 1, &g, scratch));
                    ND_CHECK_OK(nd_winograd_backward_f64(gid, gwd, xd, god, wd, 0.75, &g, scratch));
                } else {
                    ND_CHECK_OK(nd_winograd_forward_f32(o, xd, wd, bd, 1, &g, scratch));
                    ND_CHECK_OK(nd_winograd_backward_f32(gid, gwd, xd, god, wd, 0.75, &g, scratch));
                }
                ND_CHECK_NEAR(nd_fx_maxdiff(&out, &ref), 0, tol);
                ND_CHECK_NEAR(nd_fx_maxdiff(&gi, &rgi), 0, tol);
                ND_CHECK_NEAR(nd_fx_maxdiff(&gw, &rgw), 0, tol * 5);
                free(scratch);
                nd_tensor_release(&out);
                nd_tensor_release(&gi);
                nd_tensor_release(&gw);
            }
            nd_tensor *all[] = {&x, &w, &b, &go, &ref, &rgi, &rgw, &gw0};
            for (int i = 0; i < 8; i++)
                nd_tensor_release(all[i]);
        }
    }
}

/* Through the public entry points with Winograd forced: strided inputs, 3-d input, the three
 * backward functions (grad bias included), small chunks; serial and parallel transforms. */
static void test_dispatch_vs_ref(void)
{
    const int old_mode = nd_conv_set_winograd(ND_CONV_WINOGRAD_FORCE), old_par = nd_nn_set_parallel(-1);
    for (int par = 0; par < 2; par++) {
        nd_nn_set_parallel(par);
        for (int k = 0; k < WG_NCASES; k++) {
            wg_case c = wg_cases[k];
            if (par) c.C *= 8, c.Cout *= 6, c.N = 3; /* above the parallel thresholds */
            nd_conv2d_params p = wg_params(&c);
            const int64_t OH = c.H + 2 * c.ph - 2, OW = c.W + 2 * c.pw - 2;
            for (int dti = 0; dti < 2; dti++) {
                const nd_dtype dt = dti ? ND_DTYPE_F64 : ND_DTYPE_F32;
                const double tol = dti ? 1e-12 : 2e-5;
                int64_t xs[4] = {c.N, c.C, c.H, c.W}, ws[4] = {c.Cout, c.C, 3, 3};
                int64_t os[4] = {c.N, c.Cout, OH, OW}, bs[1] = {c.Cout};
                nd_tensor x = k % 2 ? wg_rand_strided(dt, xs) : wg_rand(dt, 4, xs), w = wg_rand(dt, 4, ws);
                nd_tensor b = wg_rand(dt, 1, bs), go = k % 3 == 1 ? wg_rand_strided(dt, os) : wg_rand(dt, 4, os);
                nd_tensor ref = nd_fx_zeros(dt, 4, os), rgi = nd_fx_zeros(dt, 4, xs), rgw = wg_rand(dt, 4, ws),
                          rgb = wg_rand(dt, 1, bs);
                nd_tensor gw0, gb0;
                nd_tensor_clone(&gw0, &rgw, dt);
                nd_tensor_clone(&gb0, &rgb, dt);
                ND_CHECK_OK(nd_conv2d_forward_ref_cpu(&ref, &x, &w, &b, &p));
                ND_CHECK_OK(nd_conv2d_backward_ref_cpu(&rgi, &rgw, &rgb, &x, &go, &w, 0.5, &p));
                for (int mode = 0; mode < 3; mode++) {
                    const int64_t old_chunk = nd_conv_set_chunk_bytes(mode == 2 ? 1 : 0);
                    nd_tensor out = wg_rand(dt, 4, os), gi = wg_rand(dt, 4, xs), gw, gb;
                    nd_tensor_clone(&gw, &gw0, dt);
                    nd_tensor_clone(&gb, &gb0, dt);
                    ND_CHECK_OK(nd_conv2d_forward_cpu(&out, &x, &w, mode == 1 ? NULL : &b, &p));
                    if (mode == 1) { /* no bias: compare against ref - bias */
                        nd_tensor nb = nd_fx_zeros(dt, 4, os);
                        ND_CHECK_OK(nd_conv2d_forward_ref_cpu(&nb, &x, &w, NULL, &p));
                        ND_CHECK_NEAR(nd_fx_maxdiff(&out, &nb), 0, tol);
                        nd_tensor_release(&nb);
                    } else {
                        ND_CHECK_NEAR(nd_fx_maxdiff(&out, &ref), 0, tol);
                    }
                    ND_CHECK_OK(nd_fx_conv_backward(mode == 0, &gi, &gw, &gb, &x, &go, &w, 0.5, &p));
                    nd_conv_set_chunk_bytes(old_chunk);
                    ND_CHECK_NEAR(nd_fx_maxdiff(&gi, &rgi), 0, tol);
                    ND_CHECK_NEAR(nd_fx_maxdiff(&gw, &rgw), 0, tol * 5);
                    ND_CHECK_NEAR(nd_fx_maxdiff(&gb, &rgb), 0, tol * 5);
                    nd_tensor *res[] = {&out, &gi, &gw, &gb};
                    for (int i = 0; i < 4; i++)
                        nd_tensor_release(res[i]);
                }
                if (k == 0) { /* a 3-d input gives the first image's output */
                    nd_tensor x0, r0, o0;
                    nd_tensor_view_of(&x0, &x);
                    nd_tensor_select(&x0, 0, 0);
                    nd_tensor_view_of(&r0, &ref);
                    nd_tensor_select(&r0, 0, 0);
                    o0 = nd_fx_zeros(dt, 3, os + 1);
                    ND_CHECK_OK(nd_conv2d_forward_cpu(&o0, &x0, &w, &b, &p));
                    ND_CHECK_NEAR(nd_fx_maxdiff(&o0, &r0), 0, tol);
                    nd_tensor *v[] = {&x0, &r0, &o0};
                    for (int i = 0; i < 3; i++)
                        nd_tensor_release(v[i]);
                }
                nd_tensor *all[] = {&x, &w, &b, &go, &ref, &rgi, &rgw, &rgb, &gw0, &gb0};
                for (int i = 0; i < 10; i++)
                    nd_tensor_release(all[i]);
            }
        }
    }
    nd_nn_set_parallel(old_par);
    nd_conv_set_winograd(old_mode);
}

/* Which shapes qualify, and the mode setting. */
static void test_modes(void)
{
    nd_conv2d_params ok = {3, 3, 1, 1, 1, 1, 1, 1, 1};
    ND_CHECK(nd_winograd_applies(&ok));
    nd_conv2d_params bad[] = {{3, 3, 2, 2, 1, 1, 1, 1, 1}, {3, 3, 1, 1, 2, 2, 1, 1, 1}, {3, 3, 1, 1, 1, 1, 2, 2, 1},
                              {3, 3, 1, 1, 1, 1, 1, 1, 2}, {5, 5, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 0, 0, 1, 1, 1},
                              {3, 1, 1, 1, 1, 0, 1, 1, 1}};
    for (int i = 0; i < (int)(sizeof bad / sizeof bad[0]); i++)
        ND_CHECK(!nd_winograd_applies(&bad[i]));
    const int old = nd_conv_set_winograd(ND_CONV_WINOGRAD_OFF);
    ND_CHECK(nd_conv_set_winograd(-1) == ND_CONV_WINOGRAD_OFF);
    ND_CHECK(nd_conv_set_winograd(ND_CONV_WINOGRAD_AUTO) == ND_CONV_WINOGRAD_OFF);
    ND_CHECK(nd_conv_set_winograd(old) == ND_CONV_WINOGRAD_AUTO);
}

/* A VGG-sized layer (64 -> 64 planes, 16x16, pad 1) in float32: Winograd's normwise error
 * against a float64 result is of the order of im2col's (both printed), for forward and both
 * gradients. The float64 result is the float64 im2col path. */
static void test_accuracy(void)
{
    const int64_t N = 2, C = 64, H = 16, Cout = 64;
    const nd_conv2d_params p = {3, 3, 1, 1, 1, 1, 1, 1, 1};
    int64_t xs[4] = {N, C, H, H}, ws[4] = {Cout, C, 3, 3}, os[4] = {N, Cout, H, H}, bs[1] = {Cout};
    nd_tensor x = wg_rand(ND_DTYPE_F64, 4, xs), w = wg_rand(ND_DTYPE_F64, 4, ws), b = wg_rand(ND_DTYPE_F64, 1, bs);
    nd_tensor go = wg_rand(ND_DTYPE_F64, 4, os);
    nd_tensor r[3] = {nd_fx_zeros(ND_DTYPE_F64, 4, os), nd_fx_zeros(ND_DTYPE_F64, 4, xs), nd_fx_zeros(ND_DTYPE_F64, 4, ws)};
    const int old = nd_conv_set_winograd(ND_CONV_WINOGRAD_OFF);
    ND_CHECK_OK(nd_conv2d_forward_cpu(&r[0], &x, &w, &b, &p));
    ND_CHECK_OK(nd_conv2d_backward_cpu(&r[1], &r[2], NULL, &x, &go, &w, 1.0, &p));
    nd_tensor xf, wf, bf, gof;
    nd_tensor_clone(&xf, &x, ND_DTYPE_F32);
    nd_tensor_clone(&wf, &w, ND_DTYPE_F32);
    nd_tensor_clone(&bf, &b, ND_DTYPE_F32);
    nd_tensor_clone(&gof, &go, ND_DTYPE_F32);
    double err[2][3];
    for (int m = 0; m < 2; m++) {
        nd_conv_set_winograd(m ? ND_CONV_WINOGRAD_FORCE : ND_CONV_WINOGRAD_OFF);
        nd_tensor f[3] = {nd_fx_zeros(ND_DTYPE_F32, 4, os), nd_fx_zeros(ND_DTYPE_F32, 4, xs), nd_fx_zeros(ND_DTYPE_F32, 4, ws)};
        ND_CHECK_OK(nd_conv2d_forward_cpu(&f[0], &xf, &wf, &bf, &p));
        ND_CHECK_OK(nd_conv2d_backward_cpu(&f[1], &f[2], NULL, &xf, &gof, &wf, 1.0, &p));
        for (int i = 0; i < 3; i++) {
            err[m][i] = wg_relerr(&f[i], &r[i]);
            nd_tensor_release(&f[i]);
        }
    }
    nd_conv_set_winograd(old);
    printf("c/winograd float32 normwise error (64->64 16x16), im2col vs winograd: forward %.1e %.1e, "
           "grad input %.1e %.1e, grad weight %.1e %.1e\n",
           err[0][0], err[1][0], err[0][1], err[1][1], err[0][2], err[1][2]);
    for (int i = 0; i < 3; i++) {
        ND_CHECK(err[1][i] < 1e-5);
        ND_CHECK(err[1][i] < 10 * err[0][i] + 1e-7);
    }
    nd_tensor *all[] = {&x, &w, &b, &go, &r[0], &r[1], &r[2], &xf, &wf, &bf, &gof};
    for (int i = 0; i < 11; i++)
        nd_tensor_release(all[i]);
}

void nd_test_winograd(void)
{
    nd_rng_seed(&wg_rng, 4321);
    test_modes();
    test_kernels_vs_ref();
    test_dispatch_vs_ref();
    test_accuracy();
}
