/* Lua binding of the network-deconvolution kernels (src/cpu/nd_cpu_deconv.h and their CUDA twins,
 * src/cuda/nd_cuda_deconv.h). Every function runs on the device of its tensor arguments (all on
 * one device; ND_DEVICE_CALL picks the _cpu or _cuda kernel) and returns new tensors on that
 * device (except deconv_col2im, which adds into its first argument); dtypes float32 or float64,
 * all arguments of one call alike. The `saved` tables hold tensors of the forward's device: pass
 * them back to the backward unchanged (the GPU's isqrt `saved` is only meaningful there). No dims or indices cross this
 * boundary, so nothing is converted between 1-based and 0-based here. An optional trailing output argument
 * ([, X], [, GX]) is reused (overwritten and returned) when it already has the result's dtype and
 * shape and is contiguous; otherwise a new tensor is returned.
 *
 *   core.isqrt(A, iters) -> D
 *       A (d,d) or (g,d,d): D ~ A^{-1/2} by `iters` Newton-Schulz steps (nothing kept).
 *   core.isqrt_forward(A, iters) -> D, saved
 *   core.isqrt_backward(GD, saved, A, iters) -> GA          (GA not symmetrised)
 *
 *   FastDeconv (s = sampling_stride * conv stride, B block, groups = conv groups):
 *   core.deconv_im2col(x, k, pad, dil, s, B, groups [, X]) -> X
 *       x (N,Cin,H,W). X (M, groups*F), F = k*k*B: groups == 1: the strided block rows
 *       (M = R0 * Cin/B); groups > 1: the sampled patches, group j = columns j*F .. (M = R0).
 *   core.deconv_col2im(gx, GX, k, pad, dil, s, B, groups) -> gx      (gx += adjoint(GX))
 *   core.deconv_stats_forward(X, groups, eps, iters) -> mu, D, saved
 *       mu (groups*F) column means; C = cov + eps I ((F,F) or (groups,F,F)); D = isqrt(C).
 *       saved = {X=, mu=, C=, ns=, groups=, iters=} (a plain table: keep it for the backward,
 *       drop it in clearState).
 *   core.deconv_stats_backward(GD, Gmu, saved [, GX]) -> GX          (Gmu may be nil)
 *   core.deconv_fold_forward(W, b0, D, mu, groups [, layout]) -> Wf, b
 *       W (Cout, ...), b0 (Cout) or nil; layout "strided" (FastDeconv, default) or
 *       "contiguous" (Delinear).
 *   core.deconv_fold_backward(GWf, Gb, W, D, mu, groups [, layout]) -> GW, Gb0, GD, Gmu
 *       Gb may be nil (zero); Gb0 is a copy of Gb.
 *   Delinear: X = x:view(N*in/B, B) (contiguous chunks), stats as above with groups 1, fold
 *       with "contiguous", y = x Wf^T + b; the GX of stats_backward viewed (N, in) adds to gx.
 *
 *   ChannelDeconv:
 *   core.channel_deconv_forward(x, B, eps, iters, s) -> y, mean1, D, mean2, var2, saved
 *       training: batch statistics (uncentred second moment, spec 4); mean2 / var2 are numbers
 *       (0 and 1 without leftover channels). saved = {x=, mean1=, D=, cov=, ns=, mean2=, var2=,
 *       B=, eps=, iters=, s=}.
 *   core.channel_deconv_apply(x, mean1, D, mean2, var2, eps) -> y     (eval: running buffers)
 *   core.channel_deconv_backward(gy, saved) -> gx */
#include <string.h>

#include "nd_cpu_deconv.h"
#include "nd_cuda_deconv.h"
#include "nd_lua.h"

void nd_lua_open_deconv(lua_State *L);

static int nd_lua_checkiters(lua_State *L, int idx)
{
    lua_Integer n = luaL_checkinteger(L, idx);
    if (n < 0 || n > 1000) nd_lua_error(L, "iterations must be in 0..1000, got %d", (int)n);
    return (int)n;
}

static nd_deconv_layout nd_lua_checklayout(lua_State *L, int idx)
{
    const char *s = luaL_optstring(L, idx, "strided");
    if (strcmp(s, "strided") == 0) return ND_DECONV_STRIDED;
    if (strcmp(s, "contiguous") == 0) return ND_DECONV_CONTIGUOUS;
    nd_lua_error(L, "unknown block layout '%s' (strided or contiguous)", s);
    return ND_DECONV_STRIDED;
}

/* The tensor in field `name` of the table at idx, pushed on the stack (keeps it alive). */
static nd_tensor *nd_lua_fieldtensor(lua_State *L, int idx, const char *name)
{
    lua_getfield(L, idx, name);
    nd_tensor *t = nd_lua_totensor_any(L, -1);
    if (!t) nd_lua_error(L, "saved state: field '%s' is not a tensor (got %s)", name, luaL_typename(L, -1));
    return t;
}

static lua_Integer nd_lua_fieldint(lua_State *L, int idx, const char *name)
{
    lua_getfield(L, idx, name);
    int ok;
    lua_Integer v = lua_tointegerx(L, -1, &ok);
    if (!ok) nd_lua_error(L, "saved state: field '%s' is not an integer (got %s)", name, luaL_typename(L, -1));
    lua_pop(L, 1);
    return v;
}

static double nd_lua_fieldnum(lua_State *L, int idx, const char *name)
{
    lua_getfield(L, idx, name);
    int ok;
    double v = lua_tonumberx(L, -1, &ok);
    if (!ok) nd_lua_error(L, "saved state: field '%s' is not a number (got %s)", name, luaL_typename(L, -1));
    lua_pop(L, 1);
    return v;
}

/* Stores the value on top of the stack into field name of the table at idx (pops it). */
static void nd_lua_setfield_top(lua_State *L, int idx, const char *name)
{
    lua_setfield(L, idx, name);
}

/* Pushes the tensor at idx when it can take the result (dtype dt, contiguous, exactly this shape,
 * on device dev): it is then overwritten, saving a fresh allocation per call; otherwise pushes a
 * new empty one (the kernel allocates it on the inputs' device). */
static nd_tensor *nd_lua_outarg(lua_State *L, int idx, nd_device dev, nd_dtype dt, int ndim, const int64_t *size)
{
    nd_tensor *t = lua_isnoneornil(L, idx) ? NULL : nd_lua_checktensor_any(L, idx);
    int ok = t && t->storage && t->dtype == dt && t->ndim == ndim && nd_tensor_is_contiguous(t) &&
             nd_tensor_device(t).type == dev.type && nd_tensor_device(t).index == dev.index;
    for (int d = 0; ok && d < ndim; d++)
        ok = t->size[d] == size[d];
    if (!ok) return nd_lua_pushempty(L, dt);
    lua_pushvalue(L, idx);
    return t;
}

/* The device shared by the listed tensors (NULL entries skipped); mixed devices raise. */
#define ND_DEV(L, op, ...)                                                                                             \
    nd_lua_device_of_dev((L), (op), (int)(sizeof((const nd_tensor *[]){__VA_ARGS__}) / sizeof(nd_tensor *)),           \
                         (const nd_tensor *[]){__VA_ARGS__})

/* An optional tensor argument (nil or absent: NULL), any device. */
static nd_tensor *nd_lua_opttensor_any(lua_State *L, int idx)
{
    return lua_isnoneornil(L, idx) ? NULL : nd_lua_checktensor_any(L, idx);
}

/* ---- Newton-Schulz ---- */

static int l_isqrt(lua_State *L)
{
    nd_tensor *A = nd_lua_checktensor_any(L, 1);
    int iters = nd_lua_checkiters(L, 2);
    nd_device dev = ND_DEV(L, "isqrt", A);
    nd_tensor *D = nd_lua_pushempty(L, A->dtype);
    nd_lua_check(L, ND_DEVICE_CALL(L, "isqrt", dev.type, nd_isqrt_forward, D, NULL, A, iters));
    nd_lua_account(L, D);
    return 1;
}

static int l_isqrt_forward(lua_State *L)
{
    nd_tensor *A = nd_lua_checktensor_any(L, 1);
    int iters = nd_lua_checkiters(L, 2);
    nd_device dev = ND_DEV(L, "isqrt", A);
    nd_tensor *D = nd_lua_pushempty(L, A->dtype);
    nd_tensor *sv = nd_lua_pushempty(L, A->dtype);
    nd_lua_check(L, ND_DEVICE_CALL(L, "isqrt", dev.type, nd_isqrt_forward, D, sv, A, iters));
    nd_lua_account(L, D);
    nd_lua_account(L, sv);
    return 2;
}

static int l_isqrt_backward(lua_State *L)
{
    nd_tensor *GD = nd_lua_checktensor_any(L, 1), *sv = nd_lua_checktensor_any(L, 2);
    nd_tensor *A = nd_lua_checktensor_any(L, 3);
    int iters = nd_lua_checkiters(L, 4);
    nd_device dev = ND_DEV(L, "isqrt_backward", GD, sv, A);
    nd_tensor *GA = nd_lua_pushempty(L, A->dtype);
    nd_lua_check(L, ND_DEVICE_CALL(L, "isqrt_backward", dev.type, nd_isqrt_backward, GA, GD, sv, A, iters));
    nd_lua_account(L, GA);
    return 1;
}

/* ---- FastDeconv im2col ---- */

static void nd_lua_checkgeom(lua_State *L, int idx, nd_deconv_geom *g)
{
    g->k = luaL_checkinteger(L, idx);
    g->pad = luaL_checkinteger(L, idx + 1);
    g->dil = luaL_checkinteger(L, idx + 2);
    g->s = luaL_checkinteger(L, idx + 3);
    g->block = luaL_checkinteger(L, idx + 4);
    g->groups = luaL_optinteger(L, idx + 5, 1);
}

static int l_deconv_im2col(lua_State *L)
{
    nd_tensor *x = nd_lua_checktensor_any(L, 1);
    nd_deconv_geom g;
    nd_lua_checkgeom(L, 2, &g);
    lua_settop(L, 8);
    nd_device dev = ND_DEV(L, "deconv_im2col", x);
    int64_t size[2] = {0, 0};
    if (x->ndim == 4 && g.block > 0 && g.groups > 0 && g.k > 0 && g.s > 0 && x->size[1] % g.block == 0) {
        int64_t Gs = g.groups == 1 ? x->size[1] / g.block : 1;
        size[0] = nd_deconv_sample_rows(x->size[0], x->size[2], x->size[3], &g) * Gs;
        size[1] = x->size[1] * g.k * g.k / Gs;
    }
    nd_tensor *X = nd_lua_outarg(L, 8, dev, x->dtype, 2, size);
    nd_lua_check(L, ND_DEVICE_CALL(L, "deconv_im2col", dev.type, nd_deconv_im2col, X, x, &g));
    nd_lua_account(L, X);
    return 1;
}

static int l_deconv_col2im(lua_State *L)
{
    nd_tensor *gx = nd_lua_checktensor_any(L, 1), *GX = nd_lua_checktensor_any(L, 2);
    nd_deconv_geom g;
    nd_lua_checkgeom(L, 3, &g);
    nd_device dev = ND_DEV(L, "deconv_col2im", gx, GX);
    nd_lua_check(L, ND_DEVICE_CALL(L, "deconv_col2im", dev.type, nd_deconv_col2im, gx, GX, &g));
    lua_settop(L, 1);
    return 1;
}

/* ---- statistics ---- */

static int l_deconv_stats_forward(lua_State *L)
{
    nd_tensor *X = nd_lua_checktensor_any(L, 1);
    lua_Integer groups = luaL_checkinteger(L, 2);
    double eps = luaL_checknumber(L, 3);
    int iters = nd_lua_checkiters(L, 4);
    lua_settop(L, 4);
    nd_device dev = ND_DEV(L, "deconv_stats", X);
    nd_tensor *mu = nd_lua_pushempty(L, X->dtype); /* 5 */
    nd_tensor *D = nd_lua_pushempty(L, X->dtype);  /* 6 */
    lua_createtable(L, 0, 6);                      /* 7: saved */
    nd_tensor *C = nd_lua_pushempty(L, X->dtype);  /* 8 */
    nd_tensor *sv = nd_lua_pushempty(L, X->dtype); /* 9 */
    nd_lua_check(L, ND_DEVICE_CALL(L, "deconv_stats", dev.type, nd_deconv_cov_forward, mu, C, X, groups, eps));
    nd_lua_check(L, ND_DEVICE_CALL(L, "deconv_stats", dev.type, nd_isqrt_forward, D, sv, C, iters));
    nd_lua_account(L, mu);
    nd_lua_account(L, C);
    nd_lua_account(L, D);
    nd_lua_account(L, sv);
    nd_lua_setfield_top(L, 7, "ns");
    nd_lua_setfield_top(L, 7, "C");
    lua_pushvalue(L, 1);
    nd_lua_setfield_top(L, 7, "X");
    lua_pushvalue(L, 5);
    nd_lua_setfield_top(L, 7, "mu");
    lua_pushinteger(L, groups);
    nd_lua_setfield_top(L, 7, "groups");
    lua_pushinteger(L, iters);
    nd_lua_setfield_top(L, 7, "iters");
    return 3;
}

static int l_deconv_stats_backward(lua_State *L)
{
    nd_tensor *GD = nd_lua_checktensor_any(L, 1);
    nd_tensor *Gmu = nd_lua_opttensor_any(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 4);                               /* 4: the optional GX to reuse */
    nd_tensor *X = nd_lua_fieldtensor(L, 3, "X");   /* 5 */
    nd_tensor *mu = nd_lua_fieldtensor(L, 3, "mu"); /* 6 */
    nd_tensor *C = nd_lua_fieldtensor(L, 3, "C");   /* 7 */
    nd_tensor *sv = nd_lua_fieldtensor(L, 3, "ns"); /* 8 */
    lua_Integer groups = nd_lua_fieldint(L, 3, "groups");
    int iters = (int)nd_lua_fieldint(L, 3, "iters");
    const char *op = "deconv_stats_backward";
    nd_device dev = ND_DEV(L, op, GD, Gmu, X, mu, C, sv);
    nd_tensor *GC = nd_lua_pushempty(L, X->dtype); /* 9 */
    nd_lua_check(L, ND_DEVICE_CALL(L, op, dev.type, nd_isqrt_backward, GC, GD, sv, C, iters));
    nd_tensor *GX = nd_lua_outarg(L, 4, dev, X->dtype, 2, X->size); /* 10 */
    nd_lua_check(L, ND_DEVICE_CALL(L, op, dev.type, nd_deconv_cov_backward, GX, GC, Gmu, X, mu, groups));
    nd_lua_account(L, GX);
    return 1;
}

/* ---- folding ---- */

static int l_deconv_fold_forward(lua_State *L)
{
    nd_tensor *W = nd_lua_checktensor_any(L, 1);
    nd_tensor *b0 = nd_lua_opttensor_any(L, 2);
    nd_tensor *D = nd_lua_checktensor_any(L, 3), *mu = nd_lua_checktensor_any(L, 4);
    lua_Integer groups = luaL_checkinteger(L, 5);
    nd_deconv_layout layout = nd_lua_checklayout(L, 6);
    nd_device dev = ND_DEV(L, "deconv_fold", W, b0, D, mu);
    nd_tensor *Wf = nd_lua_pushempty(L, W->dtype);
    nd_tensor *b = nd_lua_pushempty(L, W->dtype);
    nd_lua_check(
        L, ND_DEVICE_CALL(L, "deconv_fold", dev.type, nd_deconv_fold_forward, Wf, b, W, b0, D, mu, groups, layout));
    nd_lua_account(L, Wf);
    return 2;
}

static int l_deconv_fold_backward(lua_State *L)
{
    nd_tensor *GWf = nd_lua_checktensor_any(L, 1);
    nd_tensor *Gb = nd_lua_opttensor_any(L, 2);
    nd_tensor *W = nd_lua_checktensor_any(L, 3), *D = nd_lua_checktensor_any(L, 4), *mu = nd_lua_checktensor_any(L, 5);
    lua_Integer groups = luaL_checkinteger(L, 6);
    nd_deconv_layout layout = nd_lua_checklayout(L, 7);
    const char *op = "deconv_fold_backward";
    nd_device dev = ND_DEV(L, op, GWf, Gb, W, D, mu);
    nd_tensor *GW = nd_lua_pushempty(L, W->dtype);
    nd_tensor *Gb0 = nd_lua_pushempty(L, W->dtype);
    nd_tensor *GD = nd_lua_pushempty(L, W->dtype);
    nd_tensor *Gmu = nd_lua_pushempty(L, W->dtype);
    nd_lua_check(L, ND_DEVICE_CALL(L, op, dev.type, nd_deconv_fold_backward, GW, Gb0, GD, Gmu, GWf, Gb, W, D, mu,
                                   groups, layout));
    nd_lua_account(L, GW);
    nd_lua_account(L, GD);
    return 4;
}

/* ---- ChannelDeconv ---- */

/* On a GPU, mean2 / var2 come back to the host (a stream synchronisation) only when the input
 * has leftover channels: see nd_cuda_deconv.h. */
static int l_channel_deconv_forward(lua_State *L)
{
    nd_tensor *x = nd_lua_checktensor_any(L, 1);
    lua_Integer B = luaL_checkinteger(L, 2);
    double eps = luaL_checknumber(L, 3);
    int iters = nd_lua_checkiters(L, 4);
    lua_Integer s = luaL_checkinteger(L, 5);
    lua_settop(L, 5);
    nd_device dev = ND_DEV(L, "channel_deconv", x);
    nd_tensor *y = nd_lua_pushempty(L, x->dtype);     /* 6 */
    nd_tensor *mean1 = nd_lua_pushempty(L, x->dtype); /* 7 */
    nd_tensor *D = nd_lua_pushempty(L, x->dtype);     /* 8 */
    nd_tensor *cov = nd_lua_pushempty(L, x->dtype);   /* 9 */
    nd_tensor *sv = nd_lua_pushempty(L, x->dtype);    /* 10 */
    double mean2, var2;
    nd_lua_check(L, ND_DEVICE_CALL(L, "channel_deconv", dev.type, nd_channel_deconv_forward, y, mean1, D, cov, sv,
                                   &mean2, &var2, x, B, eps, iters, s));
    nd_lua_account(L, y);
    nd_lua_account(L, sv);
    lua_createtable(L, 0, 11); /* 11: saved */
    const char *names[6] = {"x", "mean1", "D", "cov", "ns", NULL};
    const int slots[5] = {1, 7, 8, 9, 10};
    for (int i = 0; names[i]; i++) {
        lua_pushvalue(L, slots[i]);
        nd_lua_setfield_top(L, 11, names[i]);
    }
    lua_pushnumber(L, mean2);
    nd_lua_setfield_top(L, 11, "mean2");
    lua_pushnumber(L, var2);
    nd_lua_setfield_top(L, 11, "var2");
    lua_pushinteger(L, B);
    nd_lua_setfield_top(L, 11, "B");
    lua_pushnumber(L, eps);
    nd_lua_setfield_top(L, 11, "eps");
    lua_pushinteger(L, iters);
    nd_lua_setfield_top(L, 11, "iters");
    lua_pushinteger(L, s);
    nd_lua_setfield_top(L, 11, "s");
    /* results: y, mean1, D, mean2, var2, saved */
    lua_pushvalue(L, 6);
    lua_pushvalue(L, 7);
    lua_pushvalue(L, 8);
    lua_pushnumber(L, mean2);
    lua_pushnumber(L, var2);
    lua_pushvalue(L, 11);
    return 6;
}

static int l_channel_deconv_apply(lua_State *L)
{
    nd_tensor *x = nd_lua_checktensor_any(L, 1), *mean1 = nd_lua_checktensor_any(L, 2);
    nd_tensor *D = nd_lua_checktensor_any(L, 3);
    double mean2 = luaL_checknumber(L, 4), var2 = luaL_checknumber(L, 5), eps = luaL_checknumber(L, 6);
    nd_device dev = ND_DEV(L, "channel_deconv_apply", x, mean1, D);
    nd_tensor *y = nd_lua_pushempty(L, x->dtype);
    nd_lua_check(L, ND_DEVICE_CALL(L, "channel_deconv_apply", dev.type, nd_channel_deconv_apply, y, x, mean1, D, mean2,
                                   var2, eps));
    nd_lua_account(L, y);
    return 1;
}

static int l_channel_deconv_backward(lua_State *L)
{
    nd_tensor *gy = nd_lua_checktensor_any(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    nd_tensor *x = nd_lua_fieldtensor(L, 2, "x");
    nd_tensor *mean1 = nd_lua_fieldtensor(L, 2, "mean1");
    nd_tensor *D = nd_lua_fieldtensor(L, 2, "D");
    nd_tensor *cov = nd_lua_fieldtensor(L, 2, "cov");
    nd_tensor *sv = nd_lua_fieldtensor(L, 2, "ns");
    double mean2 = nd_lua_fieldnum(L, 2, "mean2"), var2 = nd_lua_fieldnum(L, 2, "var2");
    double eps = nd_lua_fieldnum(L, 2, "eps");
    lua_Integer B = nd_lua_fieldint(L, 2, "B"), s = nd_lua_fieldint(L, 2, "s");
    int iters = (int)nd_lua_fieldint(L, 2, "iters");
    const char *op = "channel_deconv_backward";
    nd_device dev = ND_DEV(L, op, gy, x, mean1, D, cov, sv);
    nd_tensor *gx = nd_lua_pushempty(L, x->dtype);
    nd_lua_check(L, ND_DEVICE_CALL(L, op, dev.type, nd_channel_deconv_backward, gx, gy, x, mean1, D, cov, sv, mean2,
                                   var2, B, eps, iters, s));
    nd_lua_account(L, gx);
    return 1;
}

static const luaL_Reg nd_lua_deconv_fns[] = {{"isqrt", l_isqrt},
                                             {"isqrt_forward", l_isqrt_forward},
                                             {"isqrt_backward", l_isqrt_backward},
                                             {"deconv_im2col", l_deconv_im2col},
                                             {"deconv_col2im", l_deconv_col2im},
                                             {"deconv_stats_forward", l_deconv_stats_forward},
                                             {"deconv_stats_backward", l_deconv_stats_backward},
                                             {"deconv_fold_forward", l_deconv_fold_forward},
                                             {"deconv_fold_backward", l_deconv_fold_backward},
                                             {"channel_deconv_forward", l_channel_deconv_forward},
                                             {"channel_deconv_apply", l_channel_deconv_apply},
                                             {"channel_deconv_backward", l_channel_deconv_backward},
                                             {NULL, NULL}};

void nd_lua_open_deconv(lua_State *L)
{
    nd_lua_register(L, nd_lua_deconv_fns);
}
