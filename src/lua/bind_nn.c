/* Lua binding of the nn kernels (src/cpu/nd_cpu_nn.h): convolution, pooling, activations, batch
 * normalisation, losses. Registered into the `core` table.
 *
 * Conventions
 * - Arguments: outputs first, then inputs, weights, parameters (Torch7 order: W before H).
 * - OUT arguments (marked out) may be nil: a new tensor is returned. A tensor is resized to the
 *   result's shape and dtype: kept as is when it already fits (contiguous), otherwise its
 *   storage is reused when large enough and not shared with any other tensor (no views of it
 *   alive), else it gets a fresh storage (so a non-contiguous view is never written through:
 *   it is detached from its base). Every function returns its OUT tensors.
 *   Elementwise activations (and the MSE/BCE gradients) write through any strided output of
 *   the right shape, in place included. Outputs must not share memory with the inputs except
 *   where the kernel allows in place (see nd_cpu_nn.h); a violation raises an error.
 * - ACC arguments (gradWeight, gradBias, running statistics) are updated in place and must
 *   already have the right shape and dtype (and be contiguous for gradWeight).
 * - Optional tensors (opt) accept nil or false.
 * - Floating tensors of one call share the dtype (float32 or float64).
 * - Class targets are 1-based in Lua (int64 or integral floats) and converted here; maxpool
 *   indices are 0-based plane offsets, opaque to Lua (pass them back to the backward).
 *
 * Convolution (input (N,C,H,W) or (C,H,W); weight (Cout, Cin/groups, kH, kW) or its 2-d view):
 *   core.conv2d_forward(out, input, weight, bias|opt, kW, kH, dW, dH, padW, padH
 *                       [, dilW=1, dilH=1, groups=1]) -> output
 *   core.conv2d_backward_input(gradInput|out, input, gradOutput, weight, kW, kH, dW, dH, padW,
 *                              padH [, dilW, dilH, groups]) -> gradInput
 *       (input gives the shape only)
 *   core.conv2d_backward_params(gradWeight|acc, gradBias|acc opt, input, gradOutput, scale, kW,
 *                               kH, dW, dH, padW, padH [, dilW, dilH, groups])
 *       gradWeight += scale * dW, gradBias += scale * db. Returns nothing.
 *   core.conv2d_backward(gradInput|out or false, gradWeight|acc opt, gradBias|acc opt, input,
 *                        gradOutput, weight, scale, kW, kH, dW, dH, padW, padH
 *                        [, dilW, dilH, groups]) -> gradInput or nil
 *       both at once (shares the rearranged gradOutput); false skips gradInput (first layer).
 *   core.conv2d_forward_ref(...)      same arguments as conv2d_forward: direct loops, for tests.
 *   core.conv2d_backward_ref(...)     same arguments as conv2d_backward: direct loops.
 *   core.im2col(cols|out, input, kW, kH, dW, dH, padW, padH [, dilW, dilH]) -> cols
 *       cols (C*kH*kW, N*OH*OW) ((C*kH*kW, OH*OW) for a 3-d input), row c*kH*kW + ki*kW + kj.
 *   core.col2im(image|out, cols, sizes, kW, kH, dW, dH, padW, padH [, dilW, dilH]) -> image
 *       sizes = {C,H,W} or {N,C,H,W}; the image is overwritten with the adjoint of im2col.
 *   core.conv_config([chunkBytes [, parallel [, winograd]]])
 *       -> chunkBytes, scratchBytes, parallel, winograd
 *       (values in force before the call) the column-buffer budget per chunk (default 64 MiB),
 *       this thread's scratch size, whether the memory-bound loops of every nn kernel run
 *       on OpenMP threads (default: only when OMP_WAIT_POLICY=passive or a small
 *       GOMP_SPINCOUNT is set, see nd_nn_set_parallel in nd_cpu_nn.h), and the process-wide
 *       Winograd F(2x2,3x3) mode "off" | "auto" | "force" (nil keeps it; the initial mode
 *       comes from ND_CONV_WINOGRAD, see nd_conv_set_winograd).
 *   core.conv_scratch_free()          frees this thread's column scratch.
 *
 * Pooling (input (N,C,H,W) or (C,H,W)):
 *   core.maxpool2d_forward(out, indices|out, input, kW, kH, dW, dH, padW, padH [, ceil=false])
 *       -> output, indices (int64)
 *   core.maxpool2d_backward(gradInput|out, input, gradOutput, indices, kW, kH, dW, dH, padW,
 *                           padH [, ceil]) -> gradInput
 *   core.avgpool2d_forward(out, input, kW, kH, dW, dH, padW, padH [, ceil=false,
 *                          countIncludePad=true]) -> output
 *   core.avgpool2d_backward(gradInput|out, input, gradOutput, kW, kH, dW, dH, padW, padH
 *                           [, ceil, countIncludePad]) -> gradInput
 *   core.adaptive_avgpool2d_forward(out, input, oW, oH) -> output
 *   core.adaptive_avgpool2d_backward(gradInput|out, input, gradOutput) -> gradInput
 *
 * Activations (the backward takes the forward OUTPUT):
 *   core.relu_forward(out, input) -> output          (out == input: in place)
 *   core.relu_backward(gradInput|out, gradOutput, output) -> gradInput (may be gradOutput)
 *   core.sigmoid_forward / sigmoid_backward, core.tanh_forward / tanh_backward: same.
 *   core.softmax_forward(out, input) -> output       over dim 2 of (N,C,...) (dim 1 of (C))
 *   core.softmax_backward(gradInput|out, gradOutput, output) -> gradInput
 *   core.logsoftmax_forward / logsoftmax_backward: same.
 *
 * Batch normalisation (input (N,C) or (N,C,...); C-vectors any stride):
 *   core.batchnorm_forward_train(out, saveMean|out, saveInvstd|out, input, weight|opt,
 *       bias|opt, runningMean|acc opt, runningVar|acc opt, momentum, eps)
 *       -> output, saveMean, saveInvstd   (running stats: unbiased variance, PyTorch momentum)
 *   core.batchnorm_forward_eval(out, input, weight|opt, bias|opt, runningMean, runningVar, eps)
 *       -> output
 *   core.batchnorm_backward(gradInput|out or false, gradWeight|acc opt, gradBias|acc opt, input,
 *       gradOutput, weight|opt, saveMean|opt, saveInvstd|opt, runningMean|opt, runningVar|opt,
 *       train, scale, eps) -> gradInput or nil
 *
 * Losses (numbers out; gradScale defaults to 1):
 *   core.nll_forward(input, target, weights|opt, sizeAverage [, ignoreIndex=-100])
 *       -> loss, totalWeight          input (N,C) or (C) log-probabilities, target 1-based
 *   core.nll_backward(gradInput|out, input, target, weights|opt, totalWeight, sizeAverage
 *       [, ignoreIndex=-100, gradScale=1]) -> gradInput
 *   core.mse_forward(input, target, sizeAverage) -> loss
 *   core.mse_backward(gradInput|out, input, target, sizeAverage [, gradScale]) -> gradInput
 *   core.bce_forward(input, target, weights|opt, sizeAverage) -> loss
 *   core.bce_backward(gradInput|out, input, target, weights|opt, sizeAverage [, gradScale])
 *       -> gradInput
 *
 * Devices: every function above except conv_config and conv_scratch_free runs on the device of
 * its tensor arguments (all on one device, else an error naming the op): the CPU kernels of
 * nd_cpu_nn.h or their CUDA twins (src/cuda/nd_cuda_nn.h). OUT tensors are resized on that
 * device. Class targets may be on the CPU or on the input's GPU (converted there, no host
 * round trip); loss forwards on the GPU wait for the device (they return numbers).
 *   core.conv_cuda_config([tf32 [, find]]) -> tf32, find   (settings before the call; nil
 *       without a CUDA backend): TF32 tensor-core math for float32 cuDNN convolutions (default
 *       on, as PyTorch's default) and benchmarked algorithm search (default on); see
 *       nd_conv_cuda_config in nd_cuda_nn.h. */
#include <string.h>

#include "nd_cpu_nn.h"
#include "nd_cuda_nn.h"
#include "nd_lua.h"

void nd_lua_open_nn(lua_State *L);

/* ---- helpers ---- */

/* The OUT argument at idx, resized on device dev (a new tensor replaces nil at idx). */
static nd_tensor *nn_out(lua_State *L, int idx, nd_device dev, nd_dtype dt, int ndim, const int64_t *size)
{
    if (lua_gettop(L) < idx) lua_settop(L, idx);
    if (lua_isnil(L, idx)) {
        nd_lua_pushnew(L, dt, ndim, size, dev, 0);
        lua_replace(L, idx);
        return nd_lua_totensor_any(L, idx);
    }
    nd_tensor *t = nd_lua_checktensor_any(L, idx);
    if (dev.type == ND_DEVICE_CPU)
        nd_lua_resize(L, t, dt, ndim, size, 1); /* see the header comment */
    else
        nd_lua_resize_on(L, t, dev, dt, ndim, size);
    return t;
}

/* An optional tensor (any device): nil, false or absent give NULL. */
static nd_tensor *nn_opt(lua_State *L, int idx)
{
    if (lua_isnoneornil(L, idx) || (lua_isboolean(L, idx) && !lua_toboolean(L, idx))) return NULL;
    return nd_lua_checktensor_any(L, idx);
}

/* A tensor argument on any device. */
static nd_tensor *nn_tensor(lua_State *L, int idx)
{
    return nd_lua_checktensor_any(L, idx);
}

/* The device of the (non-OUT) tensors of a call; mixed devices raise an error naming op. */
#define NN_DEV(L, op, ...)                                                                                             \
    nd_lua_device_of_dev((L), (op), (int)(sizeof((const nd_tensor *[]){__VA_ARGS__}) / sizeof(nd_tensor *)),           \
                         (const nd_tensor *[]){__VA_ARGS__})

static int64_t nn_int(lua_State *L, int idx, int64_t def)
{
    return (int64_t)luaL_optinteger(L, idx, def);
}

static int nn_bool(lua_State *L, int idx, int def)
{
    if (lua_isnoneornil(L, idx)) return def;
    return lua_toboolean(L, idx);
}

/* kW, kH, dW, dH, padW, padH [, dilW, dilH [, groups]] from idx on. */
static nd_conv2d_params nn_conv_params(lua_State *L, int idx, int with_groups)
{
    nd_conv2d_params p;
    p.kw = luaL_checkinteger(L, idx);
    p.kh = luaL_checkinteger(L, idx + 1);
    p.sw = luaL_checkinteger(L, idx + 2);
    p.sh = luaL_checkinteger(L, idx + 3);
    p.pw = luaL_checkinteger(L, idx + 4);
    p.ph = luaL_checkinteger(L, idx + 5);
    p.dw = nn_int(L, idx + 6, 1);
    p.dh = nn_int(L, idx + 7, 1);
    p.groups = with_groups ? nn_int(L, idx + 8, 1) : 1;
    return p;
}

static nd_pool2d_params nn_pool_params(lua_State *L, int idx, int with_pad_flag)
{
    nd_pool2d_params p;
    p.kw = luaL_checkinteger(L, idx);
    p.kh = luaL_checkinteger(L, idx + 1);
    p.sw = luaL_checkinteger(L, idx + 2);
    p.sh = luaL_checkinteger(L, idx + 3);
    p.pw = luaL_checkinteger(L, idx + 4);
    p.ph = luaL_checkinteger(L, idx + 5);
    p.ceil_mode = nn_bool(L, idx + 6, 0);
    p.count_include_pad = with_pad_flag ? nn_bool(L, idx + 7, 1) : 1;
    return p;
}

/* An image argument (3-d or 4-d): its rank is checked by the kernels; here only what the
 * output shape needs. */
static nd_tensor *nn_image(lua_State *L, int idx, const char *op)
{
    nd_tensor *t = nd_lua_checktensor_any(L, idx);
    if (t->ndim != 3 && t->ndim != 4) {
        char s[ND_SHAPE_STR_MAX];
        nd_lua_error(L, "%s: expected a 3-d (C,H,W) or 4-d (N,C,H,W) input, got %s", op,
                     nd_tensor_shape_str(t, s, sizeof s));
    }
    return t;
}

/* The convolution output shape, or an error naming the op when it would be empty. The kernel
 * repeats the full validation; this only sizes the output. */
static int nn_conv_out_shape(const nd_tensor *x, const nd_tensor *w, const nd_conv2d_params *p, int64_t *size)
{
    int b = x->ndim == 4;
    if (b) size[0] = x->size[0];
    size[b] = w->ndim >= 1 ? w->size[0] : 0;
    size[b + 1] = nd_conv_out_size(x->size[b + 1], p->kh, p->sh > 0 ? p->sh : 1, p->ph, p->dh);
    size[b + 2] = nd_conv_out_size(x->size[b + 2], p->kw, p->sw > 0 ? p->sw : 1, p->pw, p->dw);
    for (int d = 0; d < x->ndim; d++)
        if (size[d] < 1) size[d] = 1; /* the kernel reports the real problem */
    return x->ndim;
}

/* ---- convolution ---- */

static int nn_conv_forward_common(lua_State *L, int ref)
{
    nd_tensor *x = nn_image(L, 2, "conv2d"), *w = nn_tensor(L, 3), *b = nn_opt(L, 4);
    nd_conv2d_params p = nn_conv_params(L, 5, 1);
    nd_device dev = NN_DEV(L, "conv2d", x, w, b);
    int64_t size[4];
    int nd = nn_conv_out_shape(x, w, &p, size);
    nd_tensor *out = nn_out(L, 1, dev, x->dtype, nd, size);
    nd_lua_check(L, ref ? ND_DEVICE_CALL(L, "conv2d", dev.type, nd_conv2d_forward_ref, out, x, w, b, &p)
                        : ND_DEVICE_CALL(L, "conv2d", dev.type, nd_conv2d_forward, out, x, w, b, &p));
    lua_pushvalue(L, 1);
    return 1;
}
static int l_conv2d_forward(lua_State *L)
{
    return nn_conv_forward_common(L, 0);
}
static int l_conv2d_forward_ref(lua_State *L)
{
    return nn_conv_forward_common(L, 1);
}

static int l_conv2d_backward_input(lua_State *L)
{
    nd_tensor *x = nn_image(L, 2, "conv2d backward"), *go = nn_tensor(L, 3), *w = nn_tensor(L, 4);
    nd_conv2d_params p = nn_conv_params(L, 5, 1);
    nd_device dev = NN_DEV(L, "conv2d backward", x, go, w);
    nd_tensor *gi = nn_out(L, 1, dev, x->dtype, x->ndim, x->size);
    nd_lua_check(L, ND_DEVICE_CALL(L, "conv2d backward", dev.type, nd_conv2d_backward_input, gi, go, w, &p));
    lua_pushvalue(L, 1);
    return 1;
}

static int l_conv2d_backward_params(lua_State *L)
{
    nd_tensor *gw = nn_tensor(L, 1), *gb = nn_opt(L, 2), *x = nn_image(L, 3, "conv2d backward");
    nd_tensor *go = nn_tensor(L, 4);
    double scale = luaL_checknumber(L, 5);
    nd_conv2d_params p = nn_conv_params(L, 6, 1);
    nd_device dev = NN_DEV(L, "conv2d backward", gw, gb, x, go);
    nd_lua_check(L,
                 ND_DEVICE_CALL(L, "conv2d backward", dev.type, nd_conv2d_backward_params, gw, gb, x, go, scale, &p));
    return 0;
}

static int nn_conv_backward_common(lua_State *L, int ref)
{
    nd_tensor *gw = nn_opt(L, 2), *gb = nn_opt(L, 3), *x = nn_image(L, 4, "conv2d backward");
    nd_tensor *go = nn_tensor(L, 5), *w = nn_tensor(L, 6);
    double scale = luaL_checknumber(L, 7);
    nd_conv2d_params p = nn_conv_params(L, 8, 1);
    const char *op = "conv2d backward";
    nd_device dev = NN_DEV(L, op, gw, gb, x, go, w);
    int want_gi = !(lua_isboolean(L, 1) && !lua_toboolean(L, 1));
    nd_tensor *gi = want_gi ? nn_out(L, 1, dev, x->dtype, x->ndim, x->size) : NULL;
    nd_lua_check(L, ref ? ND_DEVICE_CALL(L, op, dev.type, nd_conv2d_backward_ref, gi, gw, gb, x, go, w, scale, &p)
                        : ND_DEVICE_CALL(L, op, dev.type, nd_conv2d_backward, gi, gw, gb, x, go, w, scale, &p));
    if (want_gi)
        lua_pushvalue(L, 1);
    else
        lua_pushnil(L);
    return 1;
}
static int l_conv2d_backward(lua_State *L)
{
    return nn_conv_backward_common(L, 0);
}
static int l_conv2d_backward_ref(lua_State *L)
{
    return nn_conv_backward_common(L, 1);
}

static int l_im2col(lua_State *L)
{
    nd_tensor *x = nn_image(L, 2, "im2col");
    nd_conv2d_params p = nn_conv_params(L, 3, 0);
    int b = x->ndim == 4;
    int64_t OH = nd_conv_out_size(x->size[b + 1], p.kh, p.sh > 0 ? p.sh : 1, p.ph, p.dh);
    int64_t OW = nd_conv_out_size(x->size[b + 2], p.kw, p.sw > 0 ? p.sw : 1, p.pw, p.dw);
    int64_t size[2] = {x->size[b] * (p.kh > 0 ? p.kh : 1) * (p.kw > 0 ? p.kw : 1),
                       (b ? x->size[0] : 1) * (OH > 0 ? OH : 1) * (OW > 0 ? OW : 1)};
    nd_device dev = NN_DEV(L, "im2col", x);
    nd_tensor *cols = nn_out(L, 1, dev, x->dtype, 2, size);
    nd_lua_check(L, ND_DEVICE_CALL(L, "im2col", dev.type, nd_im2col, cols, x, &p));
    lua_pushvalue(L, 1);
    return 1;
}

static int l_col2im(lua_State *L)
{
    nd_tensor *cols = nn_tensor(L, 2);
    int64_t size[ND_MAX_DIMS];
    luaL_checktype(L, 3, LUA_TTABLE);
    int nd = nd_lua_checksizes(L, 3, size);
    if (nd != 3 && nd != 4) nd_lua_error(L, "col2im: sizes must be {C,H,W} or {N,C,H,W}, got %d sizes", nd);
    for (int d = 0; d < nd; d++)
        if (size[d] < 1) nd_lua_error(L, "col2im: sizes must be positive");
    nd_conv2d_params p = nn_conv_params(L, 4, 0);
    nd_device dev = NN_DEV(L, "col2im", cols);
    nd_tensor *img = nn_out(L, 1, dev, cols->dtype, nd, size);
    nd_lua_check(L, ND_DEVICE_CALL(L, "col2im", dev.type, nd_col2im, img, cols, &p));
    lua_pushvalue(L, 1);
    return 1;
}

static int l_conv_config(lua_State *L)
{
    static const char *const wino[] = {"off", "auto", "force", NULL}; /* ND_CONV_WINOGRAD_* order */
    int64_t bytes = (int64_t)luaL_optinteger(L, 1, 0);
    int par = lua_isnoneornil(L, 2) ? -1 : lua_toboolean(L, 2);
    int mode = lua_isnoneornil(L, 3) ? -1 : luaL_checkoption(L, 3, NULL, wino); /* checked before any change */
    lua_pushinteger(L, nd_conv_set_chunk_bytes(bytes));
    lua_pushinteger(L, nd_conv_scratch_bytes());
    lua_pushboolean(L, nd_nn_set_parallel(par));
    int old = nd_conv_set_winograd(mode);
    lua_pushstring(L, old >= ND_CONV_WINOGRAD_OFF && old <= ND_CONV_WINOGRAD_FORCE ? wino[old] : "auto");
    return 4;
}

static int l_conv_scratch_free(lua_State *L)
{
    (void)L;
    nd_conv_scratch_free();
    return 0;
}

static int l_conv_cuda_config(lua_State *L)
{
    if (!nd_lua_cuda_load(NULL)) return 0;
    int tf32 = lua_isnoneornil(L, 1) ? -1 : lua_toboolean(L, 1);
    int find = lua_isnoneornil(L, 2) ? -1 : lua_toboolean(L, 2);
    int old_tf32 = 0, old_find = 0;
    void (*cfg)(int, int, int *, int *) =
        (void (*)(int, int, int *, int *))nd_lua_cuda_sym(L, "conv_cuda_config", "nd_conv_cuda_config");
    cfg(tf32, find, &old_tf32, &old_find);
    lua_pushboolean(L, old_tf32);
    lua_pushboolean(L, old_find);
    return 2;
}

/* ---- pooling ---- */

static void nn_pool_out_shape(const nd_tensor *x, const nd_pool2d_params *p, int64_t *size)
{
    int b = x->ndim == 4;
    for (int d = 0; d <= b; d++)
        size[d] = x->size[d];
    int64_t oh = nd_pool_out_size(x->size[b + 1], p->kh, p->sh, p->ph, p->ceil_mode);
    int64_t ow = nd_pool_out_size(x->size[b + 2], p->kw, p->sw, p->pw, p->ceil_mode);
    size[b + 1] = oh > 0 ? oh : 1; /* the kernel reports a too small input */
    size[b + 2] = ow > 0 ? ow : 1;
}

static int l_maxpool2d_forward(lua_State *L)
{
    nd_tensor *x = nn_image(L, 3, "maxpool2d");
    nd_pool2d_params p = nn_pool_params(L, 4, 0);
    int64_t size[4];
    nn_pool_out_shape(x, &p, size);
    nd_device dev = NN_DEV(L, "maxpool2d", x);
    nd_tensor *out = nn_out(L, 1, dev, x->dtype, x->ndim, size), *ind = nn_out(L, 2, dev, ND_DTYPE_I64, x->ndim, size);
    nd_lua_check(L, ND_DEVICE_CALL(L, "maxpool2d", dev.type, nd_maxpool2d_forward, out, ind, x, &p));
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    return 2;
}

static int l_maxpool2d_backward(lua_State *L)
{
    nd_tensor *x = nn_image(L, 2, "maxpool2d backward"), *go = nn_tensor(L, 3), *ind = nn_tensor(L, 4);
    nd_pool2d_params p = nn_pool_params(L, 5, 0);
    nd_device dev = NN_DEV(L, "maxpool2d backward", x, go, ind);
    nd_tensor *gi = nn_out(L, 1, dev, x->dtype, x->ndim, x->size);
    nd_lua_check(L, ND_DEVICE_CALL(L, "maxpool2d backward", dev.type, nd_maxpool2d_backward, gi, go, ind, &p));
    lua_pushvalue(L, 1);
    return 1;
}

static int l_avgpool2d_forward(lua_State *L)
{
    nd_tensor *x = nn_image(L, 2, "avgpool2d");
    nd_pool2d_params p = nn_pool_params(L, 3, 1);
    int64_t size[4];
    nn_pool_out_shape(x, &p, size);
    nd_device dev = NN_DEV(L, "avgpool2d", x);
    nd_tensor *out = nn_out(L, 1, dev, x->dtype, x->ndim, size);
    nd_lua_check(L, ND_DEVICE_CALL(L, "avgpool2d", dev.type, nd_avgpool2d_forward, out, x, &p));
    lua_pushvalue(L, 1);
    return 1;
}

static int l_avgpool2d_backward(lua_State *L)
{
    nd_tensor *x = nn_image(L, 2, "avgpool2d backward"), *go = nn_tensor(L, 3);
    nd_pool2d_params p = nn_pool_params(L, 4, 1);
    nd_device dev = NN_DEV(L, "avgpool2d backward", x, go);
    nd_tensor *gi = nn_out(L, 1, dev, x->dtype, x->ndim, x->size);
    nd_lua_check(L, ND_DEVICE_CALL(L, "avgpool2d backward", dev.type, nd_avgpool2d_backward, gi, go, &p));
    lua_pushvalue(L, 1);
    return 1;
}

static int l_adaptive_avgpool2d_forward(lua_State *L)
{
    nd_tensor *x = nn_image(L, 2, "adaptive_avgpool2d");
    int64_t ow = luaL_checkinteger(L, 3), oh = luaL_checkinteger(L, 4);
    if (ow < 1 || oh < 1) nd_lua_error(L, "adaptive_avgpool2d: output size %dx%d must be positive", (int)oh, (int)ow);
    int64_t size[4];
    int b = x->ndim == 4;
    for (int d = 0; d <= b; d++)
        size[d] = x->size[d];
    size[b + 1] = oh;
    size[b + 2] = ow;
    nd_device dev = NN_DEV(L, "adaptive_avgpool2d", x);
    nd_tensor *out = nn_out(L, 1, dev, x->dtype, x->ndim, size);
    nd_lua_check(L, ND_DEVICE_CALL(L, "adaptive_avgpool2d", dev.type, nd_adaptive_avgpool2d_forward, out, x));
    lua_pushvalue(L, 1);
    return 1;
}

static int l_adaptive_avgpool2d_backward(lua_State *L)
{
    const char *op = "adaptive_avgpool2d backward";
    nd_tensor *x = nn_image(L, 2, op), *go = nn_tensor(L, 3);
    nd_device dev = NN_DEV(L, op, x, go);
    nd_tensor *gi = nn_out(L, 1, dev, x->dtype, x->ndim, x->size);
    nd_lua_check(L, ND_DEVICE_CALL(L, op, dev.type, nd_adaptive_avgpool2d_backward, gi, go));
    lua_pushvalue(L, 1);
    return 1;
}

/* ---- activations ---- */

/* Elementwise outputs: kept when they already have the shape and dtype on dev (any strides). */
static nd_tensor *nn_out_elementwise(lua_State *L, int idx, nd_device dev, const nd_tensor *like)
{
    nd_tensor *t = lua_isnoneornil(L, idx) ? NULL : nd_lua_checktensor_any(L, idx);
    if (t && t->storage && t->dtype == like->dtype && nd_tensor_same_shape(t, like) &&
        nd_tensor_device(t).type == dev.type && nd_tensor_device(t).index == dev.index)
        return t;
    return nn_out(L, idx, dev, like->dtype, like->ndim, like->size);
}

/* The activation bindings: forward (out, input), backward (gradInput, gradOutput, output). */
#define NN_ACT(name, elementwise)                                                                                      \
    static int l_##name##_forward(lua_State *L)                                                                        \
    {                                                                                                                  \
        nd_tensor *x = nn_tensor(L, 2);                                                                                \
        nd_device dev = NN_DEV(L, #name, x);                                                                           \
        nd_tensor *out =                                                                                               \
            elementwise ? nn_out_elementwise(L, 1, dev, x) : nn_out(L, 1, dev, x->dtype, x->ndim, x->size);            \
        nd_lua_check(L, ND_DEVICE_CALL(L, #name, dev.type, nd_##name##_forward, out, x));                              \
        lua_pushvalue(L, 1);                                                                                           \
        return 1;                                                                                                      \
    }                                                                                                                  \
    static int l_##name##_backward(lua_State *L)                                                                       \
    {                                                                                                                  \
        nd_tensor *go = nn_tensor(L, 2), *y = nn_tensor(L, 3);                                                         \
        nd_device dev = NN_DEV(L, #name " backward", go, y);                                                           \
        nd_tensor *gi =                                                                                                \
            elementwise ? nn_out_elementwise(L, 1, dev, y) : nn_out(L, 1, dev, y->dtype, y->ndim, y->size);            \
        nd_lua_check(L, ND_DEVICE_CALL(L, #name " backward", dev.type, nd_##name##_backward, gi, go, y));              \
        lua_pushvalue(L, 1);                                                                                           \
        return 1;                                                                                                      \
    }
NN_ACT(relu, 1)
NN_ACT(sigmoid, 1)
NN_ACT(tanh, 1)
NN_ACT(softmax, 0)
NN_ACT(logsoftmax, 0)
#undef NN_ACT

/* ---- batch normalisation ---- */

static int l_batchnorm_forward_train(lua_State *L)
{
    nd_tensor *x = nn_tensor(L, 4), *w = nn_opt(L, 5), *b = nn_opt(L, 6);
    nd_tensor *rm = nn_opt(L, 7), *rv = nn_opt(L, 8);
    nd_device dev = NN_DEV(L, "batchnorm", x, w, b, rm, rv);
    double momentum = luaL_checknumber(L, 9), eps = luaL_checknumber(L, 10);
    if (x->ndim < 2) {
        char s[ND_SHAPE_STR_MAX];
        nd_lua_error(L, "batchnorm: expected an (N,C) or (N,C,...) input, got %s", nd_tensor_shape_str(x, s, sizeof s));
    }
    int64_t cs[1] = {x->size[1]};
    nd_tensor *out = nn_out(L, 1, dev, x->dtype, x->ndim, x->size);
    nd_tensor *sm = nn_out(L, 2, dev, x->dtype, 1, cs), *si = nn_out(L, 3, dev, x->dtype, 1, cs);
    nd_lua_check(L, ND_DEVICE_CALL(L, "batchnorm", dev.type, nd_batchnorm_forward_train, out, sm, si, x, w, b, rm, rv,
                                   momentum, eps));
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    return 3;
}

static int l_batchnorm_forward_eval(lua_State *L)
{
    nd_tensor *x = nn_tensor(L, 2), *w = nn_opt(L, 3), *b = nn_opt(L, 4);
    nd_tensor *rm = nn_tensor(L, 5), *rv = nn_tensor(L, 6);
    double eps = luaL_checknumber(L, 7);
    nd_device dev = NN_DEV(L, "batchnorm", x, w, b, rm, rv);
    nd_tensor *out = nn_out(L, 1, dev, x->dtype, x->ndim, x->size);
    nd_lua_check(L, ND_DEVICE_CALL(L, "batchnorm", dev.type, nd_batchnorm_forward_eval, out, x, w, b, rm, rv, eps));
    lua_pushvalue(L, 1);
    return 1;
}

static int l_batchnorm_backward(lua_State *L)
{
    nd_tensor *gw = nn_opt(L, 2), *gb = nn_opt(L, 3), *x = nn_tensor(L, 4), *go = nn_tensor(L, 5);
    nd_tensor *w = nn_opt(L, 6), *sm = nn_opt(L, 7), *si = nn_opt(L, 8), *rm = nn_opt(L, 9), *rv = nn_opt(L, 10);
    int train = lua_toboolean(L, 11);
    double scale = luaL_checknumber(L, 12), eps = luaL_checknumber(L, 13);
    const char *op = "batchnorm backward";
    nd_device dev = NN_DEV(L, op, gw, gb, x, go, w, sm, si, rm, rv);
    int want_gi = !(lua_isboolean(L, 1) && !lua_toboolean(L, 1));
    nd_tensor *gi = want_gi ? nn_out(L, 1, dev, x->dtype, x->ndim, x->size) : NULL;
    nd_lua_check(L, ND_DEVICE_CALL(L, op, dev.type, nd_batchnorm_backward, gi, gw, gb, x, go, w, sm, si, rm, rv, train,
                                   scale, eps));
    if (want_gi)
        lua_pushvalue(L, 1);
    else
        lua_pushnil(L);
    return 1;
}

/* ---- losses ---- */

/* Converts 1-based class targets (int64 or integral floats, any shape) into a new contiguous
 * int64 tensor of 0-based classes, checking the range in Lua's terms. */
static void nn_targets(lua_State *L, nd_tensor *out, const nd_tensor *t, int64_t nclasses, int64_t ignore,
                       const char *op)
{
    int64_t n = nd_tensor_numel(t), size[1] = {n};
    if (nd_tensor_device(t).type != ND_DEVICE_CPU) nd_lua_error(L, "%s: target is not a CPU tensor", op);
    if (t->dtype == ND_DTYPE_U8) nd_lua_error(L, "%s: target must be int64 or float, got uint8", op);
    nd_lua_check(L, nd_tensor_new(out, ND_DTYPE_I64, 1, size, nd_cpu_device(), 0));
    nd_tensor flat;
    nd_status st = nd_tensor_clone(&flat, t, ND_DTYPE_F64);
    if (st != ND_OK) {
        nd_tensor_release(out);
        nd_lua_check(L, st);
    }
    const double *v = nd_tensor_data(&flat);
    int64_t *o = nd_tensor_data(out);
    for (int64_t i = 0; i < n; i++) {
        double c = v[i];
        if (c == (double)ignore) {
            o[i] = ignore - 1;
            continue;
        }
        if (!(c >= 1 && c <= (double)nclasses && c == (double)(int64_t)c)) {
            nd_tensor_release(&flat);
            nd_tensor_release(out);
            if (c == (double)(int64_t)c)
                nd_lua_error(L, "%s: target %I is out of range for %I classes (sample %I)", op, (lua_Integer)c,
                             (lua_Integer)nclasses, (lua_Integer)(i + 1));
            nd_lua_error(L, "%s: target %f is not a class number (%I classes, sample %I)", op, c, (lua_Integer)nclasses,
                         (lua_Integer)(i + 1));
        }
        o[i] = (int64_t)c - 1;
    }
    nd_tensor_release(&flat);
}

/* The 0-based int64 targets on the GPU dev, pushed on the stack: CPU targets are converted and
 * checked on the host (as above) then copied; GPU targets are converted by a kernel (invalid ones
 * are reported by the loss forward). */
static nd_tensor *nn_targets_cuda(lua_State *L, nd_device dev, const nd_tensor *t, int64_t nclasses, int64_t ignore,
                                  const char *op)
{
    int64_t size[1] = {nd_tensor_numel(t)};
    nd_tensor *out = nd_lua_pushnew(L, ND_DTYPE_I64, 1, size, dev, 0);
    nd_device td = nd_tensor_device(t);
    if (td.type == ND_DEVICE_CPU) {
        nd_tensor host;
        nn_targets(L, &host, t, nclasses, ignore, op);
        nd_status st = nd_tensor_copy(out, &host);
        nd_tensor_release(&host);
        nd_lua_check(L, st);
        return out;
    }
    if (td.index != dev.index) nd_lua_error(L, "%s: target and input are on different GPUs", op);
    nd_status (*convert)(nd_tensor *, const nd_tensor *, int64_t, int64_t) =
        (nd_status(*)(nd_tensor *, const nd_tensor *, int64_t, int64_t))nd_lua_cuda_sym(L, op, "nd_nll_targets_cuda");
    nd_lua_check(L, convert(out, t, nclasses, ignore));
    return out;
}

static int64_t nn_classes(lua_State *L, const nd_tensor *x, const char *op)
{
    if (x->ndim != 1 && x->ndim != 2) {
        char s[ND_SHAPE_STR_MAX];
        nd_lua_error(L, "%s: expected a (N,C) or (C) input, got %s", op, nd_tensor_shape_str(x, s, sizeof s));
    }
    return x->size[x->ndim - 1];
}

static int l_nll_forward(lua_State *L)
{
    nd_tensor *x = nn_tensor(L, 1), *t = nn_tensor(L, 2), *w = nn_opt(L, 3);
    int avg = lua_toboolean(L, 4);
    int64_t ignore = nn_int(L, 5, -100);
    nd_device dev = NN_DEV(L, "nll_loss", x, w);
    if (dev.type == ND_DEVICE_CUDA) {
        nd_tensor *tg = nn_targets_cuda(L, dev, t, nn_classes(L, x, "nll_loss"), ignore, "nll_loss");
        double loss = 0, tw = 0;
        nd_lua_check(L, ND_DEVICE_CALL(L, "nll_loss", ND_DEVICE_CUDA, nd_nll_loss_forward, &loss, &tw, x, tg, w, avg,
                                       ignore - 1));
        lua_pushnumber(L, loss);
        lua_pushnumber(L, tw);
        return 2;
    }
    nd_tensor tgt;
    nn_targets(L, &tgt, t, nn_classes(L, x, "nll_loss"), ignore, "nll_loss");
    double loss = 0, tw = 0;
    nd_status st = nd_nll_loss_forward_cpu(&loss, &tw, x, &tgt, w, avg, ignore - 1);
    nd_tensor_release(&tgt);
    nd_lua_check(L, st);
    lua_pushnumber(L, loss);
    lua_pushnumber(L, tw);
    return 2;
}

static int l_nll_backward(lua_State *L)
{
    nd_tensor *x = nn_tensor(L, 2), *t = nn_tensor(L, 3), *w = nn_opt(L, 4);
    double tw = luaL_checknumber(L, 5);
    int avg = lua_toboolean(L, 6);
    int64_t ignore = nn_int(L, 7, -100);
    double gs = luaL_optnumber(L, 8, 1.0);
    const char *op = "nll_loss backward";
    int64_t C = nn_classes(L, x, op);
    nd_device dev = NN_DEV(L, op, x, w);
    nd_tensor *gi = nn_out(L, 1, dev, x->dtype, x->ndim, x->size);
    if (dev.type == ND_DEVICE_CUDA) {
        nd_tensor *tg = nn_targets_cuda(L, dev, t, C, ignore, op);
        nd_lua_check(L,
                     ND_DEVICE_CALL(L, op, ND_DEVICE_CUDA, nd_nll_loss_backward, gi, tg, w, tw, avg, ignore - 1, gs));
        lua_pushvalue(L, 1);
        return 1;
    }
    nd_tensor tgt;
    nn_targets(L, &tgt, t, C, ignore, "nll_loss backward");
    nd_status st = nd_nll_loss_backward_cpu(gi, &tgt, w, tw, avg, ignore - 1, gs);
    nd_tensor_release(&tgt);
    nd_lua_check(L, st);
    lua_pushvalue(L, 1);
    return 1;
}

static int l_mse_forward(lua_State *L)
{
    double loss = 0;
    nd_tensor *x = nn_tensor(L, 1), *t = nn_tensor(L, 2);
    nd_device dev = NN_DEV(L, "mse_loss", x, t);
    nd_lua_check(L, ND_DEVICE_CALL(L, "mse_loss", dev.type, nd_mse_loss_forward, &loss, x, t, lua_toboolean(L, 3)));
    lua_pushnumber(L, loss);
    return 1;
}

static int l_mse_backward(lua_State *L)
{
    nd_tensor *x = nn_tensor(L, 2), *t = nn_tensor(L, 3);
    int avg = lua_toboolean(L, 4);
    double gs = luaL_optnumber(L, 5, 1.0);
    nd_device dev = NN_DEV(L, "mse_loss backward", x, t);
    nd_tensor *gi = nn_out_elementwise(L, 1, dev, x);
    nd_lua_check(L, ND_DEVICE_CALL(L, "mse_loss backward", dev.type, nd_mse_loss_backward, gi, x, t, avg, gs));
    lua_pushvalue(L, 1);
    return 1;
}

static int l_bce_forward(lua_State *L)
{
    double loss = 0;
    nd_tensor *x = nn_tensor(L, 1), *t = nn_tensor(L, 2), *w = nn_opt(L, 3);
    nd_device dev = NN_DEV(L, "bce_loss", x, t, w);
    nd_lua_check(L, ND_DEVICE_CALL(L, "bce_loss", dev.type, nd_bce_loss_forward, &loss, x, t, w, lua_toboolean(L, 4)));
    lua_pushnumber(L, loss);
    return 1;
}

static int l_bce_backward(lua_State *L)
{
    nd_tensor *x = nn_tensor(L, 2), *t = nn_tensor(L, 3), *w = nn_opt(L, 4);
    int avg = lua_toboolean(L, 5);
    double gs = luaL_optnumber(L, 6, 1.0);
    nd_device dev = NN_DEV(L, "bce_loss backward", x, t, w);
    nd_tensor *gi = nn_out_elementwise(L, 1, dev, x);
    nd_lua_check(L, ND_DEVICE_CALL(L, "bce_loss backward", dev.type, nd_bce_loss_backward, gi, x, t, w, avg, gs));
    lua_pushvalue(L, 1);
    return 1;
}

static const luaL_Reg nd_lua_nn_fns[] = {{"conv2d_forward", l_conv2d_forward},
                                         {"conv2d_forward_ref", l_conv2d_forward_ref},
                                         {"conv2d_backward_input", l_conv2d_backward_input},
                                         {"conv2d_backward_params", l_conv2d_backward_params},
                                         {"conv2d_backward", l_conv2d_backward},
                                         {"conv2d_backward_ref", l_conv2d_backward_ref},
                                         {"im2col", l_im2col},
                                         {"col2im", l_col2im},
                                         {"conv_config", l_conv_config},
                                         {"conv_scratch_free", l_conv_scratch_free},
                                         {"conv_cuda_config", l_conv_cuda_config},
                                         {"maxpool2d_forward", l_maxpool2d_forward},
                                         {"maxpool2d_backward", l_maxpool2d_backward},
                                         {"avgpool2d_forward", l_avgpool2d_forward},
                                         {"avgpool2d_backward", l_avgpool2d_backward},
                                         {"adaptive_avgpool2d_forward", l_adaptive_avgpool2d_forward},
                                         {"adaptive_avgpool2d_backward", l_adaptive_avgpool2d_backward},
                                         {"relu_forward", l_relu_forward},
                                         {"relu_backward", l_relu_backward},
                                         {"sigmoid_forward", l_sigmoid_forward},
                                         {"sigmoid_backward", l_sigmoid_backward},
                                         {"tanh_forward", l_tanh_forward},
                                         {"tanh_backward", l_tanh_backward},
                                         {"softmax_forward", l_softmax_forward},
                                         {"softmax_backward", l_softmax_backward},
                                         {"logsoftmax_forward", l_logsoftmax_forward},
                                         {"logsoftmax_backward", l_logsoftmax_backward},
                                         {"batchnorm_forward_train", l_batchnorm_forward_train},
                                         {"batchnorm_forward_eval", l_batchnorm_forward_eval},
                                         {"batchnorm_backward", l_batchnorm_backward},
                                         {"nll_forward", l_nll_forward},
                                         {"nll_backward", l_nll_backward},
                                         {"mse_forward", l_mse_forward},
                                         {"mse_backward", l_mse_backward},
                                         {"bce_forward", l_bce_forward},
                                         {"bce_backward", l_bce_backward},
                                         {NULL, NULL}};

void nd_lua_open_nn(lua_State *L)
{
    nd_lua_register(L, nd_lua_nn_fns);
}
