/* Lua binding of the CUDA backend: availability, devices, memory, the device generator, and
 * moving tensors between devices. Every call goes through the plugin (cuda_loader.c), so these
 * functions exist in every build; without the plugin or a GPU, core.cuda_available() returns
 * false and the reason, and the others raise a clear error (never a crash).
 *
 * Devices are numbered from 0 (as in "cuda:0").
 *   core.cuda_available()            -> true | false, reason
 *   core.cuda_device_count()         -> n (0 when unavailable)
 *   core.cuda_device_info(i)         -> {name=, capability=9.0, memory=bytes, index=i}
 *   core.cuda_current_device()       -> i
 *   core.cuda_set_device(i)
 *   core.cuda_synchronize()
 *   core.cuda_memory()               -> allocated, cached, peak (bytes, current device)
 *   core.cuda_memory_stats()         -> driver allocations, cache hits (current device)
 *   core.cuda_reset_peak()
 *   core.cuda_empty_cache()
 *   core.cuda_manual_seed(seed)
 *   core.cuda_rng_state()            -> seed, offset;  core.cuda_set_rng_state(seed, offset)
 *   core.cuda_fill(t, v)             -> t (a GPU tensor filled with v) */
#include <stdio.h>

#include "nd_lua.h"
#include "nd_cuda.h"

/* Looks a plugin function up with its declared type (nd_cuda.h). */
#define ND_CUDA_FN(L, op, name) ((__typeof__(&name))nd_lua_cuda_sym((L), (op), #name))

static int l_cuda_available(lua_State *L)
{
    const char *why;
    if (nd_lua_cuda_ready(&why)) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    lua_pushstring(L, why);
    return 2;
}

static int l_cuda_device_count(lua_State *L)
{
    const char *why;
    if (!nd_lua_cuda_ready(&why)) {
        lua_pushinteger(L, 0);
        return 1;
    }
    lua_pushinteger(L, ND_CUDA_FN(L, "cuda_device_count", nd_cuda_device_count)());
    return 1;
}

static int nd_lua_checkdevindex(lua_State *L, int idx)
{
    nd_lua_cuda_init(L);
    lua_Integer i = luaL_checkinteger(L, idx);
    int n = ND_CUDA_FN(L, "cuda", nd_cuda_device_count)();
    if (i < 0 || i >= n) nd_lua_error(L, "cuda: device %d does not exist (%d GPUs, numbered from 0)", (int)i, n);
    return (int)i;
}

static int l_cuda_device_info(lua_State *L)
{
    int i = lua_isnoneornil(L, 1) ? (nd_lua_cuda_init(L), ND_CUDA_FN(L, "cuda", nd_cuda_current_device)())
                                  : nd_lua_checkdevindex(L, 1);
    char name[256];
    int cc = 0;
    int64_t total = 0;
    nd_lua_check(L, ND_CUDA_FN(L, "cuda_device_info", nd_cuda_device_info)(i, name, (int)sizeof name, &cc, &total));
    lua_createtable(L, 0, 4);
    lua_pushstring(L, name);
    lua_setfield(L, -2, "name");
    lua_pushnumber(L, cc / 10 + (cc % 10) / 10.0);
    lua_setfield(L, -2, "capability");
    lua_pushinteger(L, total);
    lua_setfield(L, -2, "memory");
    lua_pushinteger(L, i);
    lua_setfield(L, -2, "index");
    return 1;
}

static int l_cuda_current_device(lua_State *L)
{
    nd_lua_cuda_init(L);
    lua_pushinteger(L, ND_CUDA_FN(L, "cuda", nd_cuda_current_device)());
    return 1;
}

static int l_cuda_set_device(lua_State *L)
{
    int i = nd_lua_checkdevindex(L, 1);
    nd_lua_check(L, ND_CUDA_FN(L, "cuda_set_device", nd_cuda_set_device)(i));
    return 0;
}

/* The calls below are harmless no-ops when there is no GPU (synchronize, memory, empty cache, RNG state and
 * seeding have nothing to do), so scripts can call them unconditionally. */
static int l_cuda_synchronize(lua_State *L)
{
    const char *why;
    if (!nd_lua_cuda_ready(&why)) return 0;
    nd_lua_check(L, ND_CUDA_FN(L, "cuda_synchronize", nd_cuda_synchronize)());
    return 0;
}

static int l_cuda_memory(lua_State *L)
{
    const char *why;
    int64_t a = 0, c = 0, p = 0;
    if (nd_lua_cuda_ready(&why)) ND_CUDA_FN(L, "cuda_memory", nd_cuda_memory)(&a, &c, &p);
    lua_pushinteger(L, a);
    lua_pushinteger(L, c);
    lua_pushinteger(L, p);
    return 3;
}

static int l_cuda_memory_stats(lua_State *L)
{
    const char *why;
    int64_t m = 0, h = 0;
    if (nd_lua_cuda_ready(&why))
        ND_CUDA_FN(L, "cuda_memory", nd_cuda_memory_stats)(ND_CUDA_FN(L, "cuda", nd_cuda_current_device)(), &m, &h);
    lua_pushinteger(L, m);
    lua_pushinteger(L, h);
    return 2;
}

static int l_cuda_reset_peak(lua_State *L)
{
    const char *why;
    if (nd_lua_cuda_ready(&why)) ND_CUDA_FN(L, "cuda_reset_peak", nd_cuda_reset_peak)();
    return 0;
}

static int l_cuda_empty_cache(lua_State *L)
{
    const char *why;
    if (!nd_lua_cuda_ready(&why)) return 0;
    lua_gc(L, LUA_GCCOLLECT); /* dead tensors give their blocks back first */
    nd_lua_check(L, ND_CUDA_FN(L, "cuda_empty_cache", nd_cuda_empty_cache)());
    return 0;
}

static int l_cuda_manual_seed(lua_State *L)
{
    nd_lua_cuda_manual_seed((uint64_t)luaL_checkinteger(L, 1));
    return 0;
}

static int l_cuda_rng_state(lua_State *L)
{
    uint64_t seed = 0, off = 0;
    const char *why;
    if (nd_lua_cuda_ready(&why)) ND_CUDA_FN(L, "cuda_rng_state", nd_cuda_rng_get_state)(&seed, &off);
    lua_pushinteger(L, (lua_Integer)seed);
    lua_pushinteger(L, (lua_Integer)off);
    return 2;
}

static int l_cuda_set_rng_state(lua_State *L)
{
    lua_Integer seed = luaL_checkinteger(L, 1), off = luaL_checkinteger(L, 2);
    const char *why;
    if (!nd_lua_cuda_ready(&why)) return 0; /* no GPU: nothing to restore (cuda_rng_state gave 0, 0) */
    ND_CUDA_FN(L, "cuda_set_rng_state", nd_cuda_rng_set_state)((uint64_t)seed, (uint64_t)off);
    return 0;
}

static int l_cuda_fill(lua_State *L)
{
    nd_tensor *t = nd_lua_checktensor_any(L, 1);
    double v = lua_isboolean(L, 2) ? (double)lua_toboolean(L, 2) : luaL_checknumber(L, 2);
    if (nd_tensor_device(t).type != ND_DEVICE_CUDA) return nd_lua_error(L, "cuda_fill: expected a GPU tensor");
    nd_lua_check(L, ND_CUDA_FN(L, "fill", nd_fill_cuda)(t, v));
    lua_settop(L, 1);
    return 1;
}

static const luaL_Reg nd_lua_cuda_fns[] = {
    {"cuda_available", l_cuda_available},       {"cuda_device_count", l_cuda_device_count},
    {"cuda_device_info", l_cuda_device_info},   {"cuda_current_device", l_cuda_current_device},
    {"cuda_set_device", l_cuda_set_device},     {"cuda_synchronize", l_cuda_synchronize},
    {"cuda_memory", l_cuda_memory},             {"cuda_memory_stats", l_cuda_memory_stats},
    {"cuda_reset_peak", l_cuda_reset_peak},     {"cuda_empty_cache", l_cuda_empty_cache},
    {"cuda_manual_seed", l_cuda_manual_seed},   {"cuda_rng_state", l_cuda_rng_state},
    {"cuda_set_rng_state", l_cuda_set_rng_state},
    {"cuda_fill", l_cuda_fill},                 {NULL, NULL}};

void nd_lua_open_cuda(lua_State *L) { nd_lua_register(L, nd_lua_cuda_fns); }
