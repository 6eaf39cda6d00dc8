/* Lua binding: random numbers. CPU tensors draw from the global generator (src/core/nd_rng.c),
 * GPU tensors from the device generator (src/cuda/random.cu, through the plugin). */
#include <string.h>

#include "nd_lua.h"

/* ---- random numbers (the global generator; GPU tensors: the device generator, random.cu) ---- */

static int l_manualseed(lua_State *L)
{
    nd_rng_seed(nd_rng_global(), (uint64_t)luaL_checkinteger(L, 1));
    return 0;
}

static int l_initialseed(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)nd_rng_global()->seed);
    return 1;
}

static int l_rand(lua_State *L)
{
    nd_tensor *t = nd_lua_checktensor_any(L, 1);
    if (nd_tensor_device(t).type == ND_DEVICE_CUDA) {
        nd_status (*f)(nd_tensor *, double, double) = (nd_status (*)(nd_tensor *, double, double))nd_lua_cuda_sym(L, "random", "nd_cuda_fill_uniform");
        nd_lua_check(L, f(t, luaL_optnumber(L, 2, 0), luaL_optnumber(L, 3, 1)));
    } else {
        nd_lua_check(L, nd_rng_fill_uniform(nd_rng_global(), t, luaL_optnumber(L, 2, 0), luaL_optnumber(L, 3, 1)));
    }
    lua_settop(L, 1);
    return 1;
}

static int l_randn(lua_State *L)
{
    nd_tensor *t = nd_lua_checktensor_any(L, 1);
    if (nd_tensor_device(t).type == ND_DEVICE_CUDA) {
        nd_status (*f)(nd_tensor *, double, double) = (nd_status (*)(nd_tensor *, double, double))nd_lua_cuda_sym(L, "random", "nd_cuda_fill_normal");
        nd_lua_check(L, f(t, luaL_optnumber(L, 2, 0), luaL_optnumber(L, 3, 1)));
    } else {
        nd_lua_check(L, nd_rng_fill_normal(nd_rng_global(), t, luaL_optnumber(L, 2, 0), luaL_optnumber(L, 3, 1)));
    }
    lua_settop(L, 1);
    return 1;
}

static int l_randint(lua_State *L)
{
    nd_tensor *t = nd_lua_checktensor_any(L, 1);
    if (nd_tensor_device(t).type == ND_DEVICE_CUDA) {
        nd_status (*f)(nd_tensor *, int64_t, int64_t) = (nd_status (*)(nd_tensor *, int64_t, int64_t))nd_lua_cuda_sym(L, "random", "nd_cuda_fill_integer");
        nd_lua_check(L, f(t, luaL_checkinteger(L, 2), luaL_checkinteger(L, 3)));
    } else {
        nd_lua_check(L, nd_rng_fill_integer(nd_rng_global(), t, luaL_checkinteger(L, 2), luaL_checkinteger(L, 3)));
    }
    lua_settop(L, 1);
    return 1;
}

static int l_bernoulli(lua_State *L)
{
    nd_tensor *t = nd_lua_checktensor_any(L, 1);
    if (nd_tensor_device(t).type == ND_DEVICE_CUDA) {
        nd_status (*f)(nd_tensor *, double) = (nd_status (*)(nd_tensor *, double))nd_lua_cuda_sym(L, "random", "nd_cuda_fill_bernoulli");
        nd_lua_check(L, f(t, luaL_optnumber(L, 2, 0.5)));
    } else {
        nd_lua_check(L, nd_rng_fill_bernoulli(nd_rng_global(), t, luaL_optnumber(L, 2, 0.5)));
    }
    lua_settop(L, 1);
    return 1;
}

/* core.randperm(n) -> int64 tensor holding a permutation of 1..n */
static int l_randperm(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    nd_tensor *t = nd_lua_pushempty(L, ND_DTYPE_I64);
    nd_lua_check(L, nd_rng_permutation(nd_rng_global(), t, n));
    int64_t *p = (int64_t *)nd_tensor_data(t);
    for (lua_Integer i = 0; i < n; i++) p[i] += 1;
    nd_lua_account(L, t);
    return 1;
}

/* core.uniform() -> one number in [0,1) from the global generator */
static int l_uniform(lua_State *L)
{
    lua_pushnumber(L, nd_rng_uniform(nd_rng_global()));
    return 1;
}

static int l_rngstate(lua_State *L)
{
    lua_pushlstring(L, (const char *)nd_rng_global(), sizeof(nd_rng));
    return 1;
}

static int l_setrngstate(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    if (len != sizeof(nd_rng)) return nd_lua_error(L, "setRNGState: not a generator state (%d bytes)", (int)len);
    memcpy(nd_rng_global(), s, sizeof(nd_rng));
    return 0;
}

static const luaL_Reg nd_lua_random_fns[] = {
    {"manualseed", l_manualseed}, {"initialseed", l_initialseed}, {"rand", l_rand},
    {"randn", l_randn},       {"randint", l_randint},     {"bernoulli", l_bernoulli},
    {"randperm", l_randperm}, {"uniform", l_uniform},     {"rngstate", l_rngstate},
    {"setrngstate", l_setrngstate},
    {NULL, NULL}};

void nd_lua_open_random(lua_State *L) { nd_lua_register(L, nd_lua_random_fns); }
