/* Winograd F(2x2,3x3) convolution on the CPU (3x3 kernel, stride 1, dilation 1, one group,
 * padding 0 or 1), all three passes of training. Shapes and the chunking: see nd_cpu_nn.h.
 *
 * The output is cut into 2x2 tiles; tile (ti, tj) of image b reads the 4x4 input patch whose
 * top-left corner is (2*ti - ph, 2*tj - pw) (zero outside the image). With the matrices
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
 *   A^T = [1 1 1 0; 0 1 -1 -1]
 * and xi = 4*r + c indexing the 16 entries of a 4x4 transform:
 *   forward   V = B^T d B (16, C, T), U = G g G^T (16, Cout, C), M_xi = U_xi V_xi (16 GEMMs),
 *             y = A^T M A (+ bias), cropped to OH x OW
 *   grad in   dM = A dy A^T (16, Cout, T), dV_xi = U_xi^T dM_xi, dx += B dV B^T over the
 *             overlapping patches (padding cropped)
 *   grad w    dU_xi += dM_xi V_xi^T over the chunks, dg = G^T dU G, grad_weight += scale * dg
 * which is the exact gradient of the forward, hence of the convolution. T counts the tiles of
 * one chunk: tile rows R = b*th + ti in [R0, R1), tile t = (R - R0)*tw + tj. Every (16, X, T)
 * array is 16 row-major (X, T) slabs, so each product is one plain GEMM.
 *
 * Transforms accumulate in the element type (float for float32). Their OpenMP loops follow
 * nd_nn_parallel(); the GEMMs run outside any parallel region. Each thread uses its own rows
 * of the workspace (ND_WINOGRAD_WORK * Wp elements, Wp = 2*tw + 2) at the end of the scratch.
 *
 * The typed kernels are written once below, between #ifdef ND_T and #else: this file includes
 * itself once per element type (as conv.c). */
#ifdef ND_T

/* ---- typed kernels: ND_T is the element type, ND_F(name) its suffixed name ---- */

/* U[xi][co][ci] = (G g G^T)[r][c] for every (co, ci); w (Cout, C, 3, 3) contiguous. */
static void ND_F(weight_transform)(ND_T *U, const ND_T *w, const nd_winograd_geom *g)
{
    const int64_t CC = g->Cout * g->C, S = nd_winograd_slab(CC);
#pragma omp parallel for schedule(static) if (nd_nn_parallel() && CC * 16 > 32768)
    for (int64_t k = 0; k < CC; k++) {
        const ND_T *q = w + k * 9;
        ND_T t[4][3], h = (ND_T)0.5;
        for (int j = 0; j < 3; j++) { /* G on the columns: t = G g (4 x 3) */
            t[0][j] = q[j];
            t[1][j] = h * (q[j] + q[3 + j] + q[6 + j]);
            t[2][j] = h * (q[j] - q[3 + j] + q[6 + j]);
            t[3][j] = q[6 + j];
        }
        for (int r = 0; r < 4; r++) { /* then on the rows: (G g) G^T */
            ND_T *u = U + 4 * r * S + k;
            u[0] = t[r][0];
            u[S] = h * (t[r][0] + t[r][1] + t[r][2]);
            u[2 * S] = h * (t[r][0] - t[r][1] + t[r][2]);
            u[3 * S] = t[r][2];
        }
    }
}

/* grad_weight[co][ci] += scale * (G^T dU G) for every (co, ci); gw (Cout, C, 3, 3) contiguous. */
static void ND_F(weight_grad)(ND_T *gw, const ND_T *dU, double scale, const nd_winograd_geom *g)
{
    const int64_t CC = g->Cout * g->C, S = nd_winograd_slab(CC);
#pragma omp parallel for schedule(static) if (nd_nn_parallel() && CC * 16 > 32768)
    for (int64_t k = 0; k < CC; k++) {
        ND_T t[4][3], h = (ND_T)0.5;
        for (int r = 0; r < 4; r++) { /* dU G on each row r: t = dU G (4 x 3) */
            const ND_T *u = dU + 4 * r * S + k;
            const ND_T u0 = u[0], u1 = u[S], u2 = u[2 * S], u3 = u[3 * S];
            t[r][0] = u0 + h * (u1 + u2);
            t[r][1] = h * (u1 - u2);
            t[r][2] = h * (u1 + u2) + u3;
        }
        ND_T *q = gw + k * 9;
        for (int j = 0; j < 3; j++) { /* then G^T t on the columns */
            const ND_T s = h * (t[1][j] + t[2][j]);
            q[j] += (ND_T)(scale * (t[0][j] + s));
            q[3 + j] += (ND_T)(scale * (h * (t[1][j] - t[2][j])));
            q[6 + j] += (ND_T)(scale * (s + t[3][j]));
        }
    }
}

/* The per-tile-row bodies below take tw last; ND_WINOGRAD_BY_TW calls them with a constant tw
 * for the small widths (VGG's 2x2 ... 16x16 images) so that their loops unroll completely. */
#define ND_WINOGRAD_BY_TW(tw, fn, ...)                                                                 \
    switch (tw) {                                                                                      \
    case 1: fn(__VA_ARGS__, 1); break;                                                                 \
    case 2: fn(__VA_ARGS__, 2); break;                                                                 \
    case 4: fn(__VA_ARGS__, 4); break;                                                                 \
    case 8: fn(__VA_ARGS__, 8); break;                                                                 \
    default: fn(__VA_ARGS__, tw); break;                                                               \
    }

/* Tile j of a tile row: the 4x4 patch at columns c0 .. c0+3 of the rows p0..p3 (columns outside
 * [0, W) read as zero when check), B^T on its columns then B on its rows, to v[xi * ld]. Patches
 * are read straight from the image: no staging buffer written and read back. */
static inline ND_INLINE void ND_F(input_tile)(ND_T *v, int64_t ld, const ND_T *p0, const ND_T *p1, const ND_T *p2,
                                              const ND_T *p3, int64_t c0, int64_t W, const int check)
{
    ND_T e[4][4];
    for (int k = 0; k < 4; k++) {
        const int64_t c = c0 + k;
        const int ok = !check || (c >= 0 && c < W);
        const ND_T d0 = ok ? p0[c] : 0, d1 = ok ? p1[c] : 0, d2 = ok ? p2[c] : 0, d3 = ok ? p3[c] : 0;
        e[0][k] = d0 - d2;
        e[1][k] = d1 + d2;
        e[2][k] = d2 - d1;
        e[3][k] = d1 - d3;
    }
    for (int r = 0; r < 4; r++) {
        v[4 * r * ld] = e[r][0] - e[r][2];
        v[(4 * r + 1) * ld] = e[r][1] + e[r][2];
        v[(4 * r + 2) * ld] = e[r][2] - e[r][1];
        v[(4 * r + 3) * ld] = e[r][1] - e[r][3];
    }
}

/* One tile row of V from the 4 input rows from ih0 of plane (rows outside the image read the
 * zero row z): tile j's 16 values to v[xi * ld + j]. Edge tiles check their columns. */
static inline ND_INLINE void ND_F(input_row)(ND_T *v, int64_t ld, const ND_T *plane, int64_t ih0, const ND_T *z,
                                             const nd_winograd_geom *g, const int64_t tw)
{
    const int64_t W = g->W, pw = g->pw;
    const ND_T *p[4];
    for (int r = 0; r < 4; r++)
        p[r] = ih0 + r >= 0 && ih0 + r < g->H ? plane + (ih0 + r) * W : z;
    /* interior tiles j in [jlo, jhi): columns 2j - pw .. 2j - pw + 3 inside [0, W) */
    const int64_t n = W + pw - 3, jlo = pw, jhi0 = n > 0 ? (n + 1) / 2 : 0, jhi = jhi0 < tw ? jhi0 : tw;
    for (int64_t j = 0; j < tw; j++) {
        if (j >= jlo && j < jhi)
            ND_F(input_tile)(v + j, ld, p[0], p[1], p[2], p[3], 2 * j - pw, W, 0);
        else
            ND_F(input_tile)(v + j, ld, p[0], p[1], p[2], p[3], 2 * j - pw, W, 1);
    }
}

/* V (16, C, T) of a chunk from the images x (N, C, H, W). */
static void ND_F(input_transform)(ND_T *V, const ND_T *x, int64_t R0, int64_t R1, ND_T *work,
                                  const nd_winograd_geom *g)
{
    const int64_t T = (R1 - R0) * g->tw, ld = nd_winograd_slab(g->C * T), Wp = 2 * g->tw + 2;
#pragma omp parallel if (nd_nn_parallel() && g->C * T * 16 > 32768)
    {
        ND_T *z = work + (int64_t)omp_get_thread_num() * ND_WINOGRAD_WORK * Wp; /* a zero row */
        memset(z, 0, sizeof(ND_T) * (size_t)Wp);
#pragma omp for collapse(2) schedule(static)
        for (int64_t ci = 0; ci < g->C; ci++)
            for (int64_t R = R0; R < R1; R++) {
                const int64_t b = R / g->th, ih0 = 2 * (R % g->th) - g->ph;
                const ND_T *plane = x + (b * g->C + ci) * g->H * g->W;
                ND_T *v = V + ci * T + (R - R0) * g->tw;
                ND_WINOGRAD_BY_TW(g->tw, ND_F(input_row), v, ld, plane, ih0, z, g)
            }
    }
}

/* One tile row of the output: A^T on the columns of M's 16 entries (m[xi * ld + j]), then A on
 * the rows, + bv, into the output rows y0 and y1 (ow columns: the last tile's second column is
 * dropped when ow is odd). Written straight to the output: no staging buffer to read back. */
static inline ND_INLINE void ND_F(output_row)(ND_T *y0, ND_T *y1, int64_t ow, const ND_T *m, int64_t ld, ND_T bv,
                                              const int64_t tw)
{
    for (int64_t j = 0; j < tw; j++) {
        ND_T s[2][4];
        for (int c = 0; c < 4; c++) {
            const ND_T m0 = m[c * ld + j], m1 = m[(4 + c) * ld + j], m2 = m[(8 + c) * ld + j];
            const ND_T m3 = m[(12 + c) * ld + j];
            s[0][c] = m0 + m1 + m2;
            s[1][c] = m1 - m2 - m3;
        }
        y0[2 * j] = s[0][0] + s[0][1] + s[0][2] + bv;
        y1[2 * j] = s[1][0] + s[1][1] + s[1][2] + bv;
        if (2 * j + 1 < ow) {
            y0[2 * j + 1] = s[0][1] - s[0][2] - s[0][3] + bv;
            y1[2 * j + 1] = s[1][1] - s[1][2] - s[1][3] + bv;
        }
    }
}

/* out (N, Cout, OH, OW) rows of the chunk = A^T M A + bias, from M (16, Cout, T). */
static void ND_F(output_transform)(ND_T *out, const ND_T *M, const ND_T *bias, int64_t bstride, int64_t R0,
                                   int64_t R1, ND_T *work, const nd_winograd_geom *g)
{
    const int64_t T = (R1 - R0) * g->tw, ld = nd_winograd_slab(g->Cout * T), Wp = 2 * g->tw + 2, OW = g->OW;
#pragma omp parallel if (nd_nn_parallel() && g->Cout * T * 16 > 32768)
    {
        ND_T *dummy = work + (int64_t)omp_get_thread_num() * ND_WINOGRAD_WORK * Wp; /* a cropped last row */
#pragma omp for collapse(2) schedule(static)
        for (int64_t co = 0; co < g->Cout; co++)
            for (int64_t R = R0; R < R1; R++) {
                const int64_t b = R / g->th, oh = 2 * (R % g->th);
                const ND_T *m = M + co * T + (R - R0) * g->tw;
                const ND_T bv = bias ? bias[co * bstride] : (ND_T)0;
                ND_T *y0 = out + ((b * g->Cout + co) * g->OH + oh) * OW, *y1 = oh + 1 < g->OH ? y0 + OW : dummy;
                ND_WINOGRAD_BY_TW(g->tw, ND_F(output_row), y0, y1, OW, m, ld, bv)
            }
    }
}

/* One tile row of dM from the grad_output rows y0, y1 (ow columns; a missing column reads as
 * zero): A on the columns, then A^T on the rows: tile j's 16 values to d[xi * ld + j]. */
static inline ND_INLINE void ND_F(grad_output_row)(ND_T *d, int64_t ld, const ND_T *y0, const ND_T *y1, int64_t ow,
                                                   const int64_t tw)
{
    for (int64_t j = 0; j < tw; j++) {
        ND_T a[4][2];
        const int full = 2 * j + 1 < ow;
        for (int k = 0; k < 2; k++) {
            const ND_T u0 = k == 0 || full ? y0[2 * j + k] : 0, u1 = k == 0 || full ? y1[2 * j + k] : 0;
            a[0][k] = u0;
            a[1][k] = u0 + u1;
            a[2][k] = u0 - u1;
            a[3][k] = -u1;
        }
        for (int r = 0; r < 4; r++) {
            d[(4 * r) * ld + j] = a[r][0];
            d[(4 * r + 1) * ld + j] = a[r][0] + a[r][1];
            d[(4 * r + 2) * ld + j] = a[r][0] - a[r][1];
            d[(4 * r + 3) * ld + j] = -a[r][1];
        }
    }
}

/* dM (16, Cout, T) = A dy A^T per tile from grad_output gout (N, Cout, OH, OW) (zero beyond OH, OW). */
static void ND_F(grad_output_transform)(ND_T *dM, const ND_T *gout, int64_t R0, int64_t R1, ND_T *work,
                                        const nd_winograd_geom *g)
{
    const int64_t T = (R1 - R0) * g->tw, ld = nd_winograd_slab(g->Cout * T), Wp = 2 * g->tw + 2, OW = g->OW;
#pragma omp parallel if (nd_nn_parallel() && g->Cout * T * 16 > 32768)
    {
        ND_T *z = work + (int64_t)omp_get_thread_num() * ND_WINOGRAD_WORK * Wp; /* a zero row */
        memset(z, 0, sizeof(ND_T) * (size_t)Wp);
#pragma omp for collapse(2) schedule(static)
        for (int64_t co = 0; co < g->Cout; co++)
            for (int64_t R = R0; R < R1; R++) {
                const int64_t b = R / g->th, oh = 2 * (R % g->th);
                const ND_T *y0 = gout + ((b * g->Cout + co) * g->OH + oh) * OW, *y1 = oh + 1 < g->OH ? y0 + OW : z;
                ND_T *d = dM + co * T + (R - R0) * g->tw;
                ND_WINOGRAD_BY_TW(g->tw, ND_F(grad_output_row), d, ld, y0, y1, OW)
            }
    }
}

/* Tile j's B dV B^T (dV at v[xi * ld]) added to columns c0 .. c0+3 of the rows q0..q3 (columns
 * outside [0, W) dropped when check). */
static inline ND_INLINE void ND_F(input_grad_tile)(ND_T *q0, ND_T *q1, ND_T *q2, ND_T *q3, const ND_T *v, int64_t ld,
                                                   int64_t c0, int64_t W, const int check)
{
    ND_T h[4][4];
    for (int r = 0; r < 4; r++) { /* dV B^T */
        const ND_T v0 = v[4 * r * ld], v1 = v[(4 * r + 1) * ld], v2 = v[(4 * r + 2) * ld], v3 = v[(4 * r + 3) * ld];
        h[r][0] = v0;
        h[r][1] = v1 - v2 + v3;
        h[r][2] = -v0 + v1 + v2;
        h[r][3] = -v3;
    }
    for (int k = 0; k < 4; k++) { /* B (dV B^T), column k */
        const int64_t c = c0 + k;
        if (check && (c < 0 || c >= W)) continue;
        q0[c] += h[0][k];
        q1[c] += h[1][k] - h[2][k] + h[3][k];
        q2[c] += -h[0][k] + h[1][k] + h[2][k];
        q3[c] += -h[3][k];
    }
}

/* One tile row of the input gradient added into the plane's rows from ih0 (rows outside the
 * image go to the scratch row z). Tiles run in order: overlapping columns add up in place. */
static inline ND_INLINE void ND_F(input_grad_row)(ND_T *plane, int64_t ih0, ND_T *z, const ND_T *v, int64_t ld,
                                                  const nd_winograd_geom *g, const int64_t tw)
{
    const int64_t W = g->W, pw = g->pw;
    ND_T *q[4];
    for (int r = 0; r < 4; r++)
        q[r] = ih0 + r >= 0 && ih0 + r < g->H ? plane + (ih0 + r) * W : z;
    const int64_t n = W + pw - 3, jlo = pw, jhi0 = n > 0 ? (n + 1) / 2 : 0, jhi = jhi0 < tw ? jhi0 : tw;
    for (int64_t j = 0; j < tw; j++) {
        if (j >= jlo && j < jhi)
            ND_F(input_grad_tile)(q[0], q[1], q[2], q[3], v + j, ld, 2 * j - pw, W, 0);
        else
            ND_F(input_grad_tile)(q[0], q[1], q[2], q[3], v + j, ld, 2 * j - pw, W, 1);
    }
}

/* gin (N, C, H, W) += B dV B^T over the chunk's patches (padding cropped), dV (16, C, T). One
 * thread owns each plane and walks its tile rows in order, so overlapping patches never race. */
static void ND_F(input_grad_transform)(ND_T *gin, const ND_T *dV, int64_t R0, int64_t R1, ND_T *work,
                                       const nd_winograd_geom *g)
{
    const int64_t T = (R1 - R0) * g->tw, ld = nd_winograd_slab(g->C * T), Wp = 2 * g->tw + 2;
#pragma omp parallel if (nd_nn_parallel() && g->C * T * 16 > 32768)
    {
        ND_T *z = work + (int64_t)omp_get_thread_num() * ND_WINOGRAD_WORK * Wp; /* a discarded row */
#pragma omp for schedule(static)
        for (int64_t ci = 0; ci < g->C; ci++)
            for (int64_t R = R0; R < R1; R++) {
                const int64_t b = R / g->th, ih0 = 2 * (R % g->th) - g->ph;
                const ND_T *v = dV + ci * T + (R - R0) * g->tw;
                ND_T *plane = gin + (b * g->C + ci) * g->H * g->W;
                ND_WINOGRAD_BY_TW(g->tw, ND_F(input_grad_row), plane, ih0, z, v, ld, g)
            }
    }
}

/* Forward; scratch as planned by nd_winograd_plan(g, ..., need_u = 1, need_du = 0). */
nd_status ND_F(forward)(ND_T *out, const ND_T *x, const ND_T *w, const ND_T *bias, int64_t bstride,
                        const nd_winograd_geom *g, void *scratch)
{
    const int64_t C = g->C, Cout = g->Cout, rows_total = g->N * g->th;
    const int64_t Tmax = g->rows * g->tw, SU = nd_winograd_slab(Cout * C);
    ND_T *U = scratch, *V = U + 16 * SU, *M = V + 16 * nd_winograd_slab(C * Tmax);
    ND_T *work = M + 16 * nd_winograd_slab(Cout * Tmax);
    ND_F(weight_transform)(U, w, g);
    for (int64_t R0 = 0; R0 < rows_total; R0 += g->rows) {
        const int64_t R1 = R0 + g->rows < rows_total ? R0 + g->rows : rows_total, T = (R1 - R0) * g->tw;
        const int64_t SV = nd_winograd_slab(C * T), SM = nd_winograd_slab(Cout * T);
        ND_F(input_transform)(V, x, R0, R1, work, g);
        for (int xi = 0; xi < 16; xi++)
            ND_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Cout, (int)T, (int)C, 1, U + xi * SU, (int)C,
                    V + xi * SV, (int)T, 0, M + xi * SM, (int)T);
        ND_F(output_transform)(out, M, bias, bstride, R0, R1, work, g);
    }
    return ND_OK;
}

/* Backward: gin overwritten, gw += scale * dL/dw; either may be NULL. Scratch as planned by
 * nd_winograd_plan(g, ..., need_u = gin != NULL, need_du = gw != NULL). */
nd_status ND_F(backward)(ND_T *gin, ND_T *gw, const ND_T *x, const ND_T *gout, const ND_T *w, double scale,
                         const nd_winograd_geom *g, void *scratch)
{
    const int64_t C = g->C, Cout = g->Cout, rows_total = g->N * g->th, SU = nd_winograd_slab(Cout * C);
    const int64_t Tmax = g->rows * g->tw;
    ND_T *p = scratch, *U = NULL, *dU = NULL;
    if (gin) U = p, p += 16 * SU;
    if (gw) dU = p, p += 16 * SU;
    ND_T *V = p, *dM = V + 16 * nd_winograd_slab(C * Tmax), *work = dM + 16 * nd_winograd_slab(Cout * Tmax);
    if (gin) {
        ND_F(weight_transform)(U, w, g);
        const int64_t planes = g->N * C, HW = g->H * g->W;
#pragma omp parallel for schedule(static) if (nd_nn_parallel() && planes * HW > 32768)
        for (int64_t k = 0; k < planes; k++)
            memset(gin + k * HW, 0, sizeof(ND_T) * (size_t)HW);
    }
    for (int64_t R0 = 0; R0 < rows_total; R0 += g->rows) {
        const int64_t R1 = R0 + g->rows < rows_total ? R0 + g->rows : rows_total, T = (R1 - R0) * g->tw;
        const int64_t SV = nd_winograd_slab(C * T), SM = nd_winograd_slab(Cout * T);
        ND_F(grad_output_transform)(dM, gout, R0, R1, work, g);
        if (gw) { /* dU_xi (Cout, C) += dM_xi (Cout, T) V_xi^T */
            ND_F(input_transform)(V, x, R0, R1, work, g);
            for (int xi = 0; xi < 16; xi++)
                ND_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Cout, (int)C, (int)T, 1, dM + xi * SM, (int)T,
                        V + xi * SV, (int)T, R0 ? 1 : 0, dU + xi * SU, (int)C);
        }
        if (gin) { /* dV_xi (C, T) = U_xi^T dM_xi, into V's space */
            for (int xi = 0; xi < 16; xi++)
                ND_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)C, (int)T, (int)Cout, 1, U + xi * SU, (int)C,
                        dM + xi * SM, (int)T, 0, V + xi * SV, (int)T);
            ND_F(input_grad_transform)(gin, V, R0, R1, work, g);
        }
    }
    if (gw) ND_F(weight_grad)(gw, dU, scale, g);
    return ND_OK;
}

#else /* ---------------------------------------------------------------------------------- */

#include <cblas.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "nd_cpu_nn.h"

/* Distance between the 16 slabs of an array of n-element slabs: n rounded up to 4 KiB plus one
 * 64-byte line (in floats; the same count for double), so that the 16 streams of a transform
 * fall in different cache sets (power-of-two distances made them evict each other). */
static inline int64_t nd_winograd_slab(int64_t n)
{
    return ((n + 1023) & ~(int64_t)1023) + 16;
}

/* Workspace rows of Wp = 2*tw + 2 elements per thread (one row: a zero or discarded row). */
#define ND_WINOGRAD_WORK 1
#define ND_INLINE __attribute__((always_inline))

int nd_winograd_applies(const nd_conv2d_params *p)
{
    return p->kh == 3 && p->kw == 3 && p->sh == 1 && p->sw == 1 && p->dh == 1 && p->dw == 1 && p->groups == 1 &&
           (p->ph == 0 || p->ph == 1) && (p->pw == 0 || p->pw == 1);
}

int64_t nd_winograd_plan(nd_winograd_geom *g, int64_t budget, int64_t elem, int need_u, int need_du)
{
    g->OH = g->H + 2 * g->ph - 2;
    g->OW = g->W + 2 * g->pw - 2;
    g->th = (g->OH + 1) / 2;
    g->tw = (g->OW + 1) / 2;
    const int64_t row_elems = 16 * (g->C + g->Cout) * g->tw, rows_total = g->N * g->th;
    int64_t rows = budget / (row_elems * elem);
    if (rows < 1) rows = 1;
    if (rows > rows_total) rows = rows_total;
    /* even chunks: the same number of chunks, as few rows as possible in the last one */
    const int64_t chunks = (rows_total + rows - 1) / rows;
    g->rows = (rows_total + chunks - 1) / chunks;
    const int64_t work = (int64_t)omp_get_max_threads() * ND_WINOGRAD_WORK * (2 * g->tw + 2);
    const int64_t T = g->rows * g->tw;
    return elem * ((need_u + need_du) * 16 * nd_winograd_slab(g->Cout * g->C) + 16 * nd_winograd_slab(g->C * T) +
                   16 * nd_winograd_slab(g->Cout * T) + work);
}

#define ND_T float
#define ND_F(name) nd_winograd_##name##_f32
#define ND_GEMM cblas_sgemm
#include "winograd.c"
#undef ND_T
#undef ND_F
#undef ND_GEMM
#define ND_T double
#define ND_F(name) nd_winograd_##name##_f64
#define ND_GEMM cblas_dgemm
#include "winograd.c"
#undef ND_T
#undef ND_F
#undef ND_GEMM

#endif
