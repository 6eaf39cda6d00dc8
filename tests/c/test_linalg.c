/* Linear algebra, index ops, sort and cat: fast kernels against plain loops.
 * gemm: OpenBLAS path vs nd_gemm_ref_cpu over odd sizes, every operand layout (contiguous,
 * transposed, padded, column-major padded, non-BLAS strides), beta/alpha/c variants, f32 and f64. */
#include <stdlib.h>
#include <string.h>

#include "nd.h"
#include "nd_cpu_linalg.h"
#include "nd_test.h"

static nd_rng rng;

/* ---- element access for any dtype and strides ---- */

static char *elem(const nd_tensor *t, const int64_t *ix)
{
    int64_t off = 0;
    for (int d = 0; d < t->ndim; d++)
        off += ix[d] * t->stride[d];
    return (char *)nd_tensor_data(t) + off * (int64_t)nd_dtype_size(t->dtype);
}

static double getv(const nd_tensor *t, const int64_t *ix)
{
    char *p = elem(t, ix);
    switch (t->dtype) {
    case ND_DTYPE_F32:
        return *(float *)p;
    case ND_DTYPE_F64:
        return *(double *)p;
    case ND_DTYPE_I64:
        return (double)*(int64_t *)p;
    case ND_DTYPE_U8:
        return *(uint8_t *)p;
    default:
        return 0;
    }
}

static void setv(nd_tensor *t, const int64_t *ix, double v)
{
    char *p = elem(t, ix);
    switch (t->dtype) {
    case ND_DTYPE_F32:
        *(float *)p = (float)v;
        break;
    case ND_DTYPE_F64:
        *(double *)p = v;
        break;
    case ND_DTYPE_I64:
        *(int64_t *)p = (int64_t)v;
        break;
    case ND_DTYPE_U8:
        *(uint8_t *)p = (uint8_t)v;
        break;
    default:
        break;
    }
}

static double get2(const nd_tensor *t, int64_t i, int64_t j)
{
    int64_t ix[2] = {i, j};
    return getv(t, ix);
}

/* Advances a row-major coordinate; returns 0 after the last one. */
static int next_coord(const nd_tensor *t, int64_t *ix)
{
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (++ix[d] < t->size[d]) return 1;
        ix[d] = 0;
    }
    return 0;
}

static nd_tensor new_t(nd_dtype dt, int ndim, const int64_t *size)
{
    nd_tensor t;
    nd_tensor_new(&t, dt, ndim, size, nd_cpu_device(), 1);
    return t;
}

/* A rows x cols matrix with one of five layouts, random contents in [-1, 1). */
enum { L_CONTIG, L_TRANS, L_PADDED, L_STRIDED, L_COLPAD, L_COUNT };
static nd_tensor make_mat(nd_dtype dt, int64_t rows, int64_t cols, int layout)
{
    nd_tensor base, v;
    int64_t s[2];
    switch (layout) {
    case L_TRANS:
        s[0] = cols;
        s[1] = rows;
        break;
    case L_PADDED:
        s[0] = rows;
        s[1] = cols + 3;
        break;
    case L_STRIDED:
        s[0] = rows;
        s[1] = 2 * cols;
        break;
    case L_COLPAD:
        s[0] = cols;
        s[1] = rows + 2;
        break;
    default:
        s[0] = rows;
        s[1] = cols;
    }
    nd_tensor_new(&base, dt, 2, s, nd_cpu_device(), 0);
    nd_rng_fill_uniform(&rng, &base, -1, 1);
    nd_tensor_view_of(&v, &base);
    nd_tensor_release(&base);
    switch (layout) {
    case L_TRANS:
        nd_tensor_transpose(&v, 0, 1);
        break;
    case L_PADDED:
        nd_tensor_narrow(&v, 1, 1, cols);
        break;
    case L_STRIDED:
        v.size[1] = cols;
        v.stride[1] = 2;
        break;
    case L_COLPAD:
        nd_tensor_narrow(&v, 1, 2, rows);
        nd_tensor_transpose(&v, 0, 1);
        break;
    default:
        break;
    }
    return v;
}

static double max_rel_diff(const nd_tensor *x, const nd_tensor *y)
{
    double worst = 0;
    int64_t ix[ND_MAX_DIMS] = {0};
    if (nd_tensor_numel(x) == 0) return 0;
    do {
        double a = getv(x, ix), b = getv(y, ix);
        double d = fabs(a - b) / (1 + fabs(b));
        if (!(d <= worst)) worst = d; /* NaN propagates */
    } while (next_coord(x, ix));
    return worst;
}

/* ---- gemm ---- */

static void test_gemm_vs_ref(void)
{
    static const int64_t sizes[][3] = {{1, 1, 1}, {3, 5, 7}, {17, 1, 33}, {1, 19, 4}, {64, 65, 63}, {97, 67, 45}};
    int fails = 0, runs = 0;
    for (int dti = 0; dti < 2; dti++) {
        nd_dtype dt = dti ? ND_DTYPE_F64 : ND_DTYPE_F32;
        double tol = dti ? 1e-12 : 2e-5;
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            int64_t m = sizes[si][0], n = sizes[si][1], k = sizes[si][2];
            for (int la = 0; la < L_COUNT; la++)
                for (int lb = 0; lb < L_COUNT; lb++)
                    for (int lo = 0; lo < 3; lo++)
                        for (int mode = 0; mode < 3; mode++) {
                            int lout = lo == 0 ? L_CONTIG : lo == 1 ? L_TRANS : L_STRIDED;
                            nd_tensor a = make_mat(dt, m, k, la), b = make_mat(dt, k, n, lb);
                            nd_tensor of = make_mat(dt, m, n, lout), c = make_mat(dt, m, n, L_CONTIG);
                            int64_t os[2] = {m, n};
                            nd_tensor orf = new_t(dt, 2, os);
                            nd_tensor_copy(&orf, &of);
                            /* mode 0: beta 0 (out ignored); 1: out = 0.5 out + a b; 2: out = -1 c - 2 a b */
                            double beta = mode == 0 ? 0 : mode == 1 ? 0.5 : -1, alpha = mode == 2 ? -2 : 1;
                            const nd_tensor *cc = mode == 2 ? &c : NULL;
                            nd_status s1 = nd_gemm_cpu(&of, beta, cc, alpha, &a, &b);
                            nd_status s2 = nd_gemm_ref_cpu(&orf, beta, cc, alpha, &a, &b);
                            double d = max_rel_diff(&of, &orf);
                            runs++;
                            if (s1 != ND_OK || s2 != ND_OK || !(d <= tol)) {
                                if (fails++ < 5)
                                    fprintf(stderr,
                                            "gemm %s %lldx%lldx%lld layouts a%d b%d out%d mode %d: diff %g (%s)\n",
                                            nd_dtype_name(dt), (long long)m, (long long)n, (long long)k, la, lb, lout,
                                            mode, d, nd_error_message());
                            }
                            nd_tensor_release(&a);
                            nd_tensor_release(&b);
                            nd_tensor_release(&of);
                            nd_tensor_release(&orf);
                            nd_tensor_release(&c);
                        }
        }
    }
    ND_CHECK(fails == 0);
    ND_CHECK(runs == 2 * 6 * L_COUNT * L_COUNT * 3 * 3);
}

static void test_gemm_edges(void)
{
    /* beta = 0 must overwrite NaNs in out */
    nd_tensor a = make_mat(ND_DTYPE_F32, 40, 30, L_CONTIG), b = make_mat(ND_DTYPE_F32, 30, 20, L_CONTIG);
    int64_t os[2] = {40, 20};
    nd_tensor o = new_t(ND_DTYPE_F32, 2, os), r = new_t(ND_DTYPE_F32, 2, os);
    float *op = nd_tensor_data(&o);
    for (int i = 0; i < 800; i++)
        op[i] = NAN;
    ND_CHECK_OK(nd_gemm_cpu(&o, 0, NULL, 1, &a, &b));
    ND_CHECK_OK(nd_gemm_ref_cpu(&r, 0, NULL, 1, &a, &b));
    ND_CHECK(max_rel_diff(&o, &r) < 1e-5);
    nd_tensor_release(&o);
    nd_tensor_release(&r);

    /* an empty out is allocated; a broadcast bias row as c */
    nd_tensor e, bias;
    nd_tensor_init_empty(&e, ND_DTYPE_F32);
    int64_t bs[1] = {20};
    bias = new_t(ND_DTYPE_F32, 1, bs);
    nd_rng_fill_uniform(&rng, &bias, -1, 1);
    ND_CHECK_OK(nd_gemm_cpu(&e, 1, &bias, 1, &a, &b));
    ND_CHECK(e.ndim == 2 && e.size[0] == 40 && e.size[1] == 20);
    r = new_t(ND_DTYPE_F32, 2, os);
    ND_CHECK_OK(nd_gemm_ref_cpu(&r, 0, NULL, 1, &a, &b));
    int ok = 1;
    for (int64_t i = 0; i < 40; i++)
        for (int64_t j = 0; j < 20; j++) {
            int64_t bj[1] = {j};
            ok &= fabs(get2(&e, i, j) - get2(&r, i, j) - getv(&bias, bj)) < 1e-5;
        }
    ND_CHECK(ok);
    nd_tensor_release(&e);
    nd_tensor_release(&r);
    nd_tensor_release(&bias);

    /* out aliasing an operand: x = x @ y for square x */
    nd_tensor x = make_mat(ND_DTYPE_F64, 9, 9, L_CONTIG), y = make_mat(ND_DTYPE_F64, 9, 9, L_TRANS);
    int64_t s9[2] = {9, 9};
    nd_tensor want = new_t(ND_DTYPE_F64, 2, s9);
    ND_CHECK_OK(nd_gemm_ref_cpu(&want, 0, NULL, 1, &x, &y));
    ND_CHECK_OK(nd_gemm_cpu(&x, 0, NULL, 1, &x, &y));
    ND_CHECK(max_rel_diff(&x, &want) < 1e-12);
    nd_tensor_release(&x);
    nd_tensor_release(&y);
    nd_tensor_release(&want);

    /* k = 0: out = beta c */
    int64_t s30[2] = {3, 0}, s04[2] = {0, 4}, s34[2] = {3, 4};
    nd_tensor z1 = new_t(ND_DTYPE_F32, 2, s30), z2 = new_t(ND_DTYPE_F32, 2, s04), z3 = new_t(ND_DTYPE_F32, 2, s34);
    float *zp = nd_tensor_data(&z3);
    for (int i = 0; i < 12; i++)
        zp[i] = 2;
    ND_CHECK_OK(nd_gemm_cpu(&z3, 0.5, NULL, 1, &z1, &z2));
    ND_CHECK(zp[0] == 1 && zp[11] == 1);
    nd_tensor_release(&z1);
    nd_tensor_release(&z2);
    nd_tensor_release(&z3);

    /* int64 by plain loops; error messages */
    int64_t s23[2] = {2, 3}, s32[2] = {3, 2};
    nd_tensor ia = new_t(ND_DTYPE_I64, 2, s23), ib = new_t(ND_DTYPE_I64, 2, s32), ic;
    int64_t *pa = nd_tensor_data(&ia), *pb = nd_tensor_data(&ib);
    for (int i = 0; i < 6; i++) {
        pa[i] = i + 1;            /* 1 2 3 / 4 5 6 */
        pb[i] = (i % 2) ? -1 : 2; /* 2 -1 / 2 -1 / 2 -1 */
    }
    nd_tensor_init_empty(&ic, ND_DTYPE_I64);
    ND_CHECK_OK(nd_gemm_cpu(&ic, 0, NULL, 3, &ia, &ib));
    int64_t *pc = nd_tensor_data(&ic);
    ND_CHECK(pc[0] == 36 && pc[1] == -18 && pc[2] == 90 && pc[3] == -45);
    nd_tensor_release(&ic);
    nd_tensor_init_empty(&ic, ND_DTYPE_I64);
    ND_CHECK(nd_gemm_cpu(&ic, 0, NULL, 1, &ia, &ia) == ND_ERR_SHAPE);
    ND_CHECK(strstr(nd_error_message(), "2x3 and 2x3") && strstr(nd_error_message(), "inner dimensions 3 and 2"));
    nd_tensor fa = make_mat(ND_DTYPE_F32, 3, 2, L_CONTIG);
    ND_CHECK(nd_gemm_cpu(&ic, 0, NULL, 1, &ia, &fa) == ND_ERR_DTYPE);
    nd_tensor wrong = new_t(ND_DTYPE_I64, 2, s23);
    ND_CHECK(nd_gemm_cpu(&wrong, 0, NULL, 1, &ia, &ib) == ND_ERR_SHAPE);
    ND_CHECK(strstr(nd_error_message(), "2x3") && strstr(nd_error_message(), "2x2"));
    nd_tensor_release(&wrong);
    nd_tensor_release(&fa);
    nd_tensor_release(&ia);
    nd_tensor_release(&ib);
    nd_tensor_release(&a);
    nd_tensor_release(&b);
}

static void test_bmm_gemv_ger_dot(void)
{
    /* bmm on a transposed batch of b: (4 x 5 x 6) @ (4 x 6 x 3) */
    int64_t sa[3] = {4, 5, 6}, sbT[3] = {4, 3, 6}, so[3] = {4, 5, 3};
    nd_tensor a = new_t(ND_DTYPE_F64, 3, sa), bT = new_t(ND_DTYPE_F64, 3, sbT), b, o, c = new_t(ND_DTYPE_F64, 3, so);
    nd_rng_fill_uniform(&rng, &a, -1, 1);
    nd_rng_fill_uniform(&rng, &bT, -1, 1);
    nd_rng_fill_uniform(&rng, &c, -1, 1);
    nd_tensor_view_of(&b, &bT);
    nd_tensor_transpose(&b, 1, 2);
    nd_tensor_init_empty(&o, ND_DTYPE_F64);
    ND_CHECK_OK(nd_bgemm_cpu(&o, 2, &c, 0.5, &a, &b));
    int ok = 1;
    for (int64_t q = 0; q < 4; q++)
        for (int64_t i = 0; i < 5; i++)
            for (int64_t j = 0; j < 3; j++) {
                double acc = 0;
                for (int64_t p = 0; p < 6; p++) {
                    int64_t ia[3] = {q, i, p}, ib[3] = {q, p, j};
                    acc += getv(&a, ia) * getv(&b, ib);
                }
                int64_t io[3] = {q, i, j};
                ok &= fabs(getv(&o, io) - (2 * getv(&c, io) + 0.5 * acc)) < 1e-12;
            }
    ND_CHECK(ok);
    nd_tensor bad;
    nd_tensor_init_empty(&bad, ND_DTYPE_F64);
    ND_CHECK(nd_bgemm_cpu(&bad, 0, NULL, 1, &a, &a) == ND_ERR_SHAPE);
    ND_CHECK(strstr(nd_error_message(), "baddbmm") && strstr(nd_error_message(), "4x5x6 and 4x5x6"));
    nd_tensor_release(&a);
    nd_tensor_release(&b);
    nd_tensor_release(&bT);
    nd_tensor_release(&o);
    nd_tensor_release(&c);

    /* gemv with row-major, transposed and strided matrices, strided x and out */
    for (int dti = 0; dti < 3; dti++) {
        nd_dtype dt = dti == 0 ? ND_DTYPE_F32 : dti == 1 ? ND_DTYPE_F64 : ND_DTYPE_I64;
        for (int la = 0; la < L_COUNT; la++) {
            nd_tensor m = make_mat(dt, 7, 5, la), xv = make_mat(dt, 5, 2, L_CONTIG), yv = make_mat(dt, 7, 3, L_CONTIG);
            if (dt == ND_DTYPE_I64) {
                nd_rng_fill_integer(&rng, &m, -3, 3);
                nd_rng_fill_integer(&rng, &xv, -3, 3);
                nd_rng_fill_integer(&rng, &yv, -3, 3);
            }
            nd_tensor x, y, y0;
            nd_tensor_view_of(&x, &xv);
            nd_tensor_select(&x, 1, 1); /* stride 2 */
            nd_tensor_view_of(&y, &yv);
            nd_tensor_select(&y, 1, 2); /* stride 3 */
            nd_tensor_clone(&y0, &y, dt);
            ND_CHECK_OK(nd_gemv_cpu(&y, 2, NULL, 3, &m, &x));
            int good = 1;
            for (int64_t i = 0; i < 7; i++) {
                double acc = 0;
                for (int64_t j = 0; j < 5; j++) {
                    int64_t jj[1] = {j};
                    acc += get2(&m, i, j) * getv(&x, jj);
                }
                int64_t ii[1] = {i};
                good &= fabs(getv(&y, ii) - (2 * getv(&y0, ii) + 3 * acc)) < 1e-4;
            }
            ND_CHECK(good);
            nd_tensor_release(&m);
            nd_tensor_release(&xv);
            nd_tensor_release(&yv);
            nd_tensor_release(&x);
            nd_tensor_release(&y);
            nd_tensor_release(&y0);
        }
    }

    /* ger into a transposed out; dot of strided vectors and of matrices */
    int64_t s6[1] = {6}, s4[1] = {4}, s46[2] = {4, 6};
    nd_tensor u = new_t(ND_DTYPE_F32, 1, s6), w = new_t(ND_DTYPE_F32, 1, s4), base = new_t(ND_DTYPE_F32, 2, s46), out;
    nd_rng_fill_uniform(&rng, &u, -1, 1);
    nd_rng_fill_uniform(&rng, &w, -1, 1);
    nd_rng_fill_uniform(&rng, &base, -1, 1);
    nd_tensor_view_of(&out, &base);
    nd_tensor_transpose(&out, 0, 1); /* 6 x 4, column-major */
    nd_tensor before;
    nd_tensor_clone(&before, &out, ND_DTYPE_F32);
    ND_CHECK_OK(nd_ger_cpu(&out, 0.5, NULL, 2, &u, &w));
    ok = 1;
    for (int64_t i = 0; i < 6; i++)
        for (int64_t j = 0; j < 4; j++) {
            int64_t ii[1] = {i}, jj[1] = {j};
            ok &= fabs(get2(&out, i, j) - (0.5 * get2(&before, i, j) + 2 * getv(&u, ii) * getv(&w, jj))) < 1e-5;
        }
    ND_CHECK(ok);
    double dv = 0, want = 0;
    nd_tensor col;
    nd_tensor_view_of(&col, &out);
    nd_tensor_select(&col, 1, 2); /* a column of a column-major 6x4: stride 1; rows of base: stride 6 */
    ND_CHECK_OK(nd_dot_cpu(&col, &u, &dv));
    for (int64_t i = 0; i < 6; i++)
        want += get2(&out, i, 2) * ((float *)nd_tensor_data(&u))[i];
    ND_CHECK_NEAR(dv, want, 1e-5);
    ND_CHECK_OK(nd_dot_cpu(&out, &out, &dv));
    want = 0;
    for (int64_t i = 0; i < 6; i++)
        for (int64_t j = 0; j < 4; j++)
            want += get2(&out, i, j) * get2(&out, i, j);
    ND_CHECK_NEAR(dv, want, 1e-5);
    ND_CHECK(nd_dot_cpu(&u, &w, &dv) == ND_ERR_SHAPE);
    nd_tensor_release(&col);
    nd_tensor_release(&u);
    nd_tensor_release(&w);
    nd_tensor_release(&base);
    nd_tensor_release(&out);
    nd_tensor_release(&before);
}

/* ---- index ops ---- */

/* A 3-d tensor (4 x 5 x 6) seen through a permutation (non-contiguous), values 0..119 by position. */
static nd_tensor make_cube(nd_dtype dt)
{
    int64_t s[3] = {6, 4, 5};
    nd_tensor t = new_t(dt, 3, s);
    int64_t ix[3] = {0};
    int64_t v = 0;
    do
        setv(&t, ix, (double)(v++ % 97));
    while (next_coord(&t, ix));
    int perm[3] = {1, 2, 0}; /* -> 4 x 5 x 6 */
    nd_tensor_permute(&t, perm);
    return t;
}

static nd_tensor make_idx(int64_t n, const int64_t *vals)
{
    nd_tensor t = new_t(ND_DTYPE_I64, 1, &n);
    memcpy(nd_tensor_data(&t), vals, sizeof(int64_t) * (size_t)n);
    return t;
}

static void test_index_select_copy_add_fill(void)
{
    static const int64_t picks[] = {3, 0, 3, 1};
    int ok = 1;
    for (int dti = 0; dti < ND_DTYPE_COUNT; dti++) {
        nd_tensor x = make_cube((nd_dtype)dti);
        nd_tensor idx = make_idx(4, picks);
        for (int dim = 0; dim < 3; dim++) {
            nd_tensor out;
            nd_tensor_init_empty(&out, x.dtype);
            ND_CHECK_OK(nd_index_select_cpu(&out, &x, dim, &idx));
            int64_t ix[3] = {0};
            do {
                int64_t src[3] = {ix[0], ix[1], ix[2]};
                src[dim] = picks[ix[dim]];
                ok &= getv(&out, ix) == getv(&x, src);
            } while (next_coord(&out, ix));

            /* index_add with repeated index 3: accumulates twice; index_copy: last write wins */
            nd_tensor acc;
            nd_tensor_clone(&acc, &x, x.dtype);
            ND_CHECK_OK(nd_index_add_cpu(&acc, dim, &idx, &out));
            nd_tensor cp;
            nd_tensor_clone(&cp, &x, x.dtype);
            ND_CHECK_OK(nd_index_copy_cpu(&cp, dim, &idx, &out));
            memset(ix, 0, sizeof ix);
            do {
                double mult = ix[dim] == 3 ? 3 : ix[dim] <= 1 ? 2 : 1;
                double want = getv(&x, ix) * mult;
                if (x.dtype == ND_DTYPE_U8) want = (double)(uint8_t)(int)want;
                ok &= getv(&acc, ix) == want && getv(&cp, ix) == getv(&x, ix);
            } while (next_coord(&x, ix));
            nd_tensor_release(&acc);
            nd_tensor_release(&cp);
            nd_tensor_release(&out);
        }
        nd_tensor fill;
        nd_tensor_clone(&fill, &x, x.dtype);
        ND_CHECK_OK(nd_index_fill_cpu(&fill, 2, &idx, 7));
        int64_t ix[3] = {0};
        do
            ok &= getv(&fill, ix) == ((ix[2] == 0 || ix[2] == 1 || ix[2] == 3) ? 7 : getv(&x, ix));
        while (next_coord(&x, ix));
        nd_tensor_release(&fill);
        nd_tensor_release(&x);
        nd_tensor_release(&idx);
    }
    ND_CHECK(ok);

    nd_tensor x = make_cube(ND_DTYPE_F32), out;
    static const int64_t bad[] = {0, 5};
    nd_tensor idx = make_idx(2, bad);
    nd_tensor_init_empty(&out, ND_DTYPE_F32);
    ND_CHECK(nd_index_select_cpu(&out, &x, 0, &idx) == ND_ERR_INDEX);
    ND_CHECK(strstr(nd_error_message(), "index 6 out of range") && strstr(nd_error_message(), "size 4"));
    ND_CHECK(nd_index_select_cpu(&out, &x, 2, &idx) == ND_OK);
    nd_tensor_release(&out);
    nd_tensor_release(&idx);
    nd_tensor_release(&x);
}

static void test_gather_scatter(void)
{
    int ok = 1;
    for (int dti = 0; dti < ND_DTYPE_COUNT; dti++) {
        nd_tensor x = make_cube((nd_dtype)dti); /* 4 x 5 x 6 */
        for (int dim = 0; dim < 3; dim++) {
            int64_t is[3] = {3, 4, 5};
            is[dim] = 7; /* more picks than the size: repeats */
            nd_tensor idx = new_t(ND_DTYPE_I64, 3, is);
            nd_rng_fill_integer(&rng, &idx, 0, x.size[dim] - 1);
            nd_tensor g;
            nd_tensor_init_empty(&g, x.dtype);
            ND_CHECK_OK(nd_gather_cpu(&g, &x, dim, &idx));
            int64_t ix[3] = {0};
            do {
                int64_t src[3] = {ix[0], ix[1], ix[2]};
                src[dim] = (int64_t)getv(&idx, ix);
                ok &= getv(&g, ix) == getv(&x, src);
            } while (next_coord(&g, ix));
            /* scatter_add of ones counts how often each position was picked */
            nd_tensor cnt = new_t(x.dtype, 3, x.size), ones = new_t(x.dtype, 3, is);
            int64_t jx[3] = {0};
            do
                setv(&ones, jx, 1);
            while (next_coord(&ones, jx));
            ND_CHECK_OK(nd_scatter_add_cpu(&cnt, dim, &idx, &ones));
            double total = 0;
            memset(jx, 0, sizeof jx);
            do
                total += getv(&cnt, jx);
            while (next_coord(&cnt, jx));
            ok &= total == (double)nd_tensor_numel(&idx);
            nd_tensor_release(&cnt);
            nd_tensor_release(&ones);
            nd_tensor_release(&g);
            nd_tensor_release(&idx);
        }
        /* scatter a permutation then gather it back */
        int64_t ps[3] = {4, 5, 6};
        nd_tensor perm = new_t(ND_DTYPE_I64, 3, ps), y = new_t(x.dtype, 3, ps), back;
        int64_t ix[3] = {0};
        do
            setv(&perm, ix, (double)((ix[1] * 2 + ix[0] + ix[2]) % 5));
        while (next_coord(&perm, ix));
        /* along dim 1 each (i, :, k) fiber of perm must be a permutation of 0..4 */
        ND_CHECK_OK(nd_scatter_cpu(&y, 1, &perm, &x));
        nd_tensor_init_empty(&back, x.dtype);
        ND_CHECK_OK(nd_gather_cpu(&back, &y, 1, &perm));
        ok &= max_rel_diff(&back, &x) == 0;
        ND_CHECK_OK(nd_scatter_value_cpu(&y, 1, &perm, 9));
        memset(ix, 0, sizeof ix);
        do
            ok &= getv(&y, ix) == 9;
        while (next_coord(&y, ix));
        setv(&perm, ix, 5);
        ND_CHECK(nd_gather_cpu(&back, &y, 1, &perm) == ND_ERR_INDEX);
        ND_CHECK(strstr(nd_error_message(), "index 6 out of range for dimension 2 of size 5") != NULL);
        nd_tensor_release(&perm);
        nd_tensor_release(&y);
        nd_tensor_release(&back);
        nd_tensor_release(&x);
    }
    ND_CHECK(ok);
}

static void test_masks_nonzero(void)
{
    nd_tensor x = make_cube(ND_DTYPE_F64); /* values v % 97 by storage position */
    nd_tensor mask = new_t(ND_DTYPE_F32, 3, x.size);
    int64_t ix[3] = {0};
    int64_t count = 0;
    do {
        int on = ((ix[0] + 2 * ix[1] + ix[2]) % 3) == 0;
        setv(&mask, ix, on ? 0.5 : 0); /* nonzero floats are true */
        count += on;
    } while (next_coord(&mask, ix));
    nd_tensor sel;
    ND_CHECK_OK(nd_masked_select_cpu(&sel, &x, &mask));
    ND_CHECK(sel.ndim == 1 && sel.size[0] == count);
    int ok = 1;
    int64_t k = 0;
    memset(ix, 0, sizeof ix);
    do
        if (getv(&mask, ix) != 0) ok &= ((double *)nd_tensor_data(&sel))[k++] == getv(&x, ix);
    while (next_coord(&x, ix));
    ND_CHECK(ok);

    nd_tensor nz;
    ND_CHECK_OK(nd_nonzero_cpu(&nz, &mask));
    ND_CHECK(nz.ndim == 2 && nz.size[0] == count && nz.size[1] == 3);
    ok = 1;
    for (int64_t r = 0; r < count; r++) {
        int64_t *row = (int64_t *)nd_tensor_data(&nz) + 3 * r;
        ok &= getv(&mask, row) != 0;
        if (r > 0) ok &= (row[-3] * 30 + row[-2] * 6 + row[-1] < row[0] * 30 + row[1] * 6 + row[2]);
    }
    ND_CHECK(ok);

    /* masked_copy writes sel * 2 back; masked_fill sets -1 */
    nd_tensor y;
    nd_tensor_clone(&y, &x, ND_DTYPE_F64);
    double *sp = nd_tensor_data(&sel);
    for (int64_t i = 0; i < count; i++)
        sp[i] *= 2;
    ND_CHECK_OK(nd_masked_copy_cpu(&y, &mask, &sel));
    nd_tensor z;
    nd_tensor_clone(&z, &x, ND_DTYPE_F64);
    ND_CHECK_OK(nd_masked_fill_cpu(&z, &mask, -1));
    ok = 1;
    memset(ix, 0, sizeof ix);
    do {
        int on = getv(&mask, ix) != 0;
        ok &= getv(&y, ix) == (on ? 2 : 1) * getv(&x, ix);
        ok &= getv(&z, ix) == (on ? -1 : getv(&x, ix));
    } while (next_coord(&x, ix));
    ND_CHECK(ok);
    nd_tensor small;
    int64_t one = 1;
    nd_tensor_new(&small, ND_DTYPE_F64, 1, &one, nd_cpu_device(), 1);
    ND_CHECK(nd_masked_copy_cpu(&y, &mask, &small) == ND_ERR_SHAPE);
    nd_tensor zero = new_t(ND_DTYPE_U8, 3, x.size), none;
    ND_CHECK_OK(nd_masked_select_cpu(&none, &x, &zero));
    ND_CHECK(none.ndim == 0);
    ND_CHECK_OK(nd_nonzero_cpu(&none, &zero));
    ND_CHECK(none.ndim == 0);
    nd_tensor_release(&small);
    nd_tensor_release(&zero);
    nd_tensor_release(&x);
    nd_tensor_release(&mask);
    nd_tensor_release(&sel);
    nd_tensor_release(&nz);
    nd_tensor_release(&y);
    nd_tensor_release(&z);
}

/* ---- sort, topk, cat ---- */

static void test_sort_topk(void)
{
    int ok = 1;
    for (int dti = 0; dti < ND_DTYPE_COUNT; dti++) {
        nd_dtype dt = (nd_dtype)dti;
        int64_t s[2] = {53, 37};
        nd_tensor base = new_t(dt, 2, s), x;
        nd_rng_fill_integer(&rng, &base, 0, 6); /* many ties */
        nd_tensor_view_of(&x, &base);
        nd_tensor_transpose(&x, 0, 1); /* 37 x 53, non-contiguous */
        for (int dim = 0; dim < 2; dim++)
            for (int desc = 0; desc < 2; desc++) {
                nd_tensor v, ind;
                nd_tensor_init_empty(&v, dt);
                nd_tensor_init_empty(&ind, ND_DTYPE_I64);
                ND_CHECK_OK(nd_sort_cpu(&v, &ind, &x, dim, desc));
                int64_t n = x.size[dim], other = x.size[1 - dim];
                for (int64_t o = 0; o < other; o++)
                    for (int64_t i = 0; i < n; i++) {
                        int64_t p[2], q[2];
                        p[dim] = i;
                        p[1 - dim] = o;
                        int64_t src = (int64_t)getv(&ind, p);
                        q[dim] = src;
                        q[1 - dim] = o;
                        ok &= getv(&v, p) == getv(&x, q);
                        if (i > 0) {
                            int64_t r[2];
                            r[dim] = i - 1;
                            r[1 - dim] = o;
                            double prev = getv(&v, r), cur = getv(&v, p);
                            ok &= desc ? prev >= cur : prev <= cur;
                            if (prev == cur) ok &= getv(&ind, r) < src; /* stable */
                        }
                    }
                /* topk = the first k of the (stable) sort, both directions */
                nd_tensor tv, ti;
                nd_tensor_init_empty(&tv, dt);
                nd_tensor_init_empty(&ti, ND_DTYPE_I64);
                int64_t kk = dim == 0 ? 5 : 17;
                ND_CHECK_OK(nd_topk_cpu(&tv, &ti, &x, dim, kk, desc));
                int64_t ix[2] = {0};
                do
                    ok &= getv(&ti, ix) == getv(&ind, ix) && getv(&tv, ix) == getv(&v, ix);
                while (next_coord(&tv, ix));
                nd_tensor_release(&tv);
                nd_tensor_release(&ti);
                nd_tensor_release(&v);
                nd_tensor_release(&ind);
            }
        nd_tensor_release(&x);
        nd_tensor_release(&base);
    }
    ND_CHECK(ok);

    /* NaN sorts last ascending, first descending; errors */
    int64_t n5 = 5;
    nd_tensor f = new_t(ND_DTYPE_F32, 1, &n5), v, ind;
    float *fp = nd_tensor_data(&f);
    fp[0] = 3, fp[1] = NAN, fp[2] = -1, fp[3] = 3, fp[4] = 0;
    nd_tensor_init_empty(&v, ND_DTYPE_F32);
    nd_tensor_init_empty(&ind, ND_DTYPE_I64);
    ND_CHECK_OK(nd_sort_cpu(&v, &ind, &f, 0, 0));
    float *vp = nd_tensor_data(&v);
    int64_t *ip = nd_tensor_data(&ind);
    ND_CHECK(vp[0] == -1 && vp[1] == 0 && vp[2] == 3 && vp[3] == 3 && isnan(vp[4]));
    ND_CHECK(ip[2] == 0 && ip[3] == 3 && ip[4] == 1);
    ND_CHECK_OK(nd_sort_cpu(&v, &ind, &f, 0, 1));
    ND_CHECK(isnan(vp[0]) && vp[1] == 3 && ip[1] == 0 && ip[2] == 3 && vp[4] == -1);
    nd_tensor tv, ti;
    nd_tensor_init_empty(&tv, ND_DTYPE_F32);
    nd_tensor_init_empty(&ti, ND_DTYPE_I64);
    ND_CHECK(nd_topk_cpu(&tv, &ti, &f, 0, 6, 1) == ND_ERR_ARG);
    ND_CHECK(strstr(nd_error_message(), "k = 6") != NULL);
    ND_CHECK_OK(nd_topk_cpu(&tv, &ti, &f, 0, 2, 0));
    ND_CHECK(((float *)nd_tensor_data(&tv))[0] == -1 && ((int64_t *)nd_tensor_data(&ti))[1] == 4);
    nd_tensor_release(&tv);
    nd_tensor_release(&ti);
    nd_tensor_release(&f);
    nd_tensor_release(&v);
    nd_tensor_release(&ind);
}

static void test_cat(void)
{
    int64_t s1[2] = {2, 3}, s2t[2] = {4, 2}, s3[2] = {2, 1};
    nd_tensor a = new_t(ND_DTYPE_F32, 2, s1), bt = new_t(ND_DTYPE_F32, 2, s2t), c = new_t(ND_DTYPE_F64, 2, s3), b, e;
    nd_rng_fill_uniform(&rng, &a, -1, 1);
    nd_rng_fill_uniform(&rng, &bt, -1, 1);
    nd_rng_fill_uniform(&rng, &c, -1, 1);
    nd_tensor_view_of(&b, &bt);
    nd_tensor_transpose(&b, 0, 1); /* 2 x 4, non-contiguous */
    nd_tensor_init_empty(&e, ND_DTYPE_F32);
    const nd_tensor *xs[4] = {&a, &e, &b, &c};
    nd_tensor out;
    nd_tensor_init_empty(&out, ND_DTYPE_F32);
    ND_CHECK_OK(nd_cat_cpu(&out, xs, 4, 1));
    ND_CHECK(out.ndim == 2 && out.size[0] == 2 && out.size[1] == 8 && out.dtype == ND_DTYPE_F32);
    int ok = 1;
    for (int64_t i = 0; i < 2; i++)
        for (int64_t j = 0; j < 8; j++) {
            double want = j < 3 ? get2(&a, i, j) : j < 7 ? get2(&b, i, j - 3) : (float)get2(&c, i, 0);
            ok &= get2(&out, i, j) == want;
        }
    ND_CHECK(ok);
    nd_tensor_release(&out);
    nd_tensor_init_empty(&out, ND_DTYPE_F32);
    const nd_tensor *ys[2] = {&a, &b};
    ND_CHECK(nd_cat_cpu(&out, ys, 2, 0) == ND_ERR_SHAPE);
    ND_CHECK(strstr(nd_error_message(), "2x3") && strstr(nd_error_message(), "2x4") &&
             strstr(nd_error_message(), "dimension 2"));
    const nd_tensor *zs[2] = {&a, &a};
    ND_CHECK_OK(nd_cat_cpu(&out, zs, 2, 0));
    ND_CHECK(out.size[0] == 4 && get2(&out, 3, 2) == get2(&a, 1, 2));
    nd_tensor_release(&out);
    nd_tensor_release(&a);
    nd_tensor_release(&b);
    nd_tensor_release(&bt);
    nd_tensor_release(&c);
}

void nd_test_linalg(void)
{
    nd_rng_seed(&rng, 1234);
    int64_t before = nd_storage_bytes_cpu();
    test_gemm_vs_ref();
    test_gemm_edges();
    test_bmm_gemv_ger_dot();
    test_index_select_copy_add_fill();
    test_gather_scatter();
    test_masks_nonzero();
    test_sort_topk();
    test_cat();
    ND_CHECK(nd_storage_bytes_cpu() == before); /* every temporary released */
}
