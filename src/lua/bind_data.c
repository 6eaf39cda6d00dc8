/* Lua binding of src/data: IDX, CIFAR and PNG files, and the batch loader userdata.
 * Class labels are 1-based in Lua and 0-based in the files and in C: converted here only.
 *
 *   core.idx_read(path [, ndim])                 -> uint8 tensor with the file's dims
 *   core.idx_read_labels(path [, nclasses])      -> int64 N, 1-based
 *   core.idx_write(path, uint8 tensor)           (gzip when path ends in .gz)
 *   core.cifar_read(path | {paths}, label_bytes) -> uint8 N x 3 x 32 x 32, int64 N [, coarse N] (1-based)
 *   core.cifar_write(path, images, labels [, coarse])  (coarse given: CIFAR-100 records)
 *   core.png_read(path)                          -> uint8 C x H x W
 *   core.png_write(path, uint8 C x H x W | H x W)
 *   core.loader(images, labels, {batch_size=, shuffle=, crop_pad=, flip=, normalize=, drop_last=,
 *               mean={...}, std={...}, seed=})   -> nd.DataLoader userdata with
 *       :start(epoch) -> generation, :next() -> x, y | nil, :stop([generation]), :size(),
 *       :nsamples(), :close() (also __gc and __close) */
#include <string.h>

#include "nd_data.h"
#include "nd_lua.h"

#define ND_LUA_LOADER_MT "nd.DataLoader"

void nd_lua_open_data(lua_State *L);

/* Adds delta to every element of a contiguous int64 tensor. */
static void nd_lua_shift_labels(nd_tensor *t, int64_t delta)
{
    int64_t *p = nd_tensor_data(t);
    int64_t n = nd_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) p[i] += delta;
}

/* Moves a C-owned tensor into a new userdata (the reference moves with it). */
static void nd_lua_pushmove(lua_State *L, nd_tensor *t)
{
    nd_tensor *u = nd_lua_pushempty(L, t->dtype);
    *u = *t;
    nd_tensor_init_empty(t, t->dtype);
    nd_lua_account(L, u);
}

static int l_idx_read(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int ndim = (int)luaL_optinteger(L, 2, 0);
    nd_tensor t;
    nd_lua_check(L, nd_idx_read(path, ndim, &t));
    nd_lua_pushmove(L, &t);
    return 1;
}

static int l_idx_read_labels(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int64_t nclasses = luaL_optinteger(L, 2, 0);
    nd_tensor t;
    nd_lua_check(L, nd_idx_read_labels(path, nclasses, &t));
    nd_lua_shift_labels(&t, 1);
    nd_lua_pushmove(L, &t);
    return 1;
}

static int l_idx_write(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    nd_lua_check(L, nd_idx_write(path, nd_lua_checktensor(L, 2)));
    return 0;
}

static int l_cifar_read(lua_State *L)
{
    const char *paths[256];
    int n = 0;
    if (lua_type(L, 1) == LUA_TTABLE) {
        n = (int)luaL_len(L, 1);
        if (n < 1 || n > 256) return nd_lua_error(L, "cifar_read: expected 1 to 256 paths, got %d", n);
        for (int i = 0; i < n; i++) {
            lua_geti(L, 1, i + 1);
            paths[i] = lua_tostring(L, -1); /* the table keeps the strings alive */
            lua_pop(L, 1);
            if (!paths[i]) return nd_lua_error(L, "cifar_read: path %d is not a string", i + 1);
        }
    } else {
        paths[0] = luaL_checkstring(L, 1);
        n = 1;
    }
    int label_bytes = (int)luaL_optinteger(L, 2, 1);
    nd_tensor images, labels, coarse;
    nd_lua_check(L, nd_cifar_read(paths, n, label_bytes, &images, &labels, &coarse));
    nd_lua_shift_labels(&labels, 1);
    nd_lua_pushmove(L, &images);
    nd_lua_pushmove(L, &labels);
    if (label_bytes == 2) {
        nd_lua_shift_labels(&coarse, 1);
        nd_lua_pushmove(L, &coarse);
        return 3;
    }
    return 2;
}

/* A 0-based int64 copy of the 1-based labels at idx (left on the stack as a userdata). */
static nd_tensor *nd_lua_zero_based(lua_State *L, int idx)
{
    nd_tensor *src = nd_lua_checktensor(L, idx);
    nd_tensor *t = nd_lua_pushempty(L, ND_DTYPE_I64);
    nd_lua_check(L, nd_tensor_clone(t, src, ND_DTYPE_I64));
    nd_lua_shift_labels(t, -1);
    return t;
}

static int l_cifar_write(lua_State *L)
{
    lua_settop(L, 4); /* the 0-based copies go above the arguments */
    const char *path = luaL_checkstring(L, 1);
    nd_tensor *images = nd_lua_checktensor(L, 2);
    nd_tensor *labels = nd_lua_zero_based(L, 3);
    nd_tensor *coarse = lua_isnoneornil(L, 4) ? NULL : nd_lua_zero_based(L, 4);
    nd_lua_check(L, nd_cifar_write(path, coarse ? 2 : 1, images, labels, coarse));
    return 0;
}

static int l_png_read(lua_State *L)
{
    nd_tensor t;
    nd_lua_check(L, nd_png_read(luaL_checkstring(L, 1), &t));
    nd_lua_pushmove(L, &t);
    return 1;
}

static int l_png_write(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    nd_lua_check(L, nd_png_write(path, nd_lua_checktensor(L, 2)));
    return 0;
}

/* ---- the loader userdata ---- */

typedef struct nd_lua_loader {
    nd_loader *l;    /* NULL once closed */
    lua_Integer gen; /* counts start() calls */
} nd_lua_loader;

static nd_lua_loader *nd_lua_checkloader(lua_State *L, int idx)
{
    nd_lua_loader *u = luaL_checkudata(L, idx, ND_LUA_LOADER_MT);
    if (!u->l) nd_lua_error(L, "the data loader is closed");
    return u;
}

static int nd_lua_optbool(lua_State *L, int t, const char *k, int def)
{
    int v = def;
    if (lua_getfield(L, t, k) != LUA_TNIL) v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

static lua_Integer nd_lua_optint(lua_State *L, int t, const char *k, lua_Integer def)
{
    lua_Integer v = def;
    if (lua_getfield(L, t, k) != LUA_TNIL) {
        int ok;
        v = lua_tointegerx(L, -1, &ok);
        if (!ok) nd_lua_error(L, "loader option %s must be an integer", k);
    }
    lua_pop(L, 1);
    return v;
}

/* mean/std: a number or a list of numbers; returns the count (0 when absent). */
static int nd_lua_optlist(lua_State *L, int t, const char *k, double *out)
{
    int n = 0, type = lua_getfield(L, t, k);
    if (type == LUA_TNUMBER) out[n++] = lua_tonumber(L, -1);
    else if (type == LUA_TTABLE) {
        int len = (int)luaL_len(L, -1);
        if (len < 1 || len > ND_LOADER_MAX_CHANNELS)
            nd_lua_error(L, "loader option %s must list 1 to %d numbers", k, ND_LOADER_MAX_CHANNELS);
        for (int i = 1; i <= len; i++) {
            lua_geti(L, -1, i);
            if (!lua_isnumber(L, -1)) nd_lua_error(L, "loader option %s[%d] is not a number", k, i);
            out[n++] = lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
    } else if (type != LUA_TNIL)
        nd_lua_error(L, "loader option %s must be a number or a list of numbers", k);
    lua_pop(L, 1);
    return n;
}

static int l_loader(lua_State *L)
{
    nd_tensor *images = nd_lua_checktensor(L, 1);
    nd_tensor *labels = nd_lua_checktensor(L, 2);
    nd_loader_opts o;
    nd_loader_opts_default(&o);
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        o.batch_size = nd_lua_optint(L, 3, "batch_size", o.batch_size);
        o.shuffle = nd_lua_optbool(L, 3, "shuffle", 0);
        o.crop_pad = nd_lua_optint(L, 3, "crop_pad", 0);
        o.flip = nd_lua_optbool(L, 3, "flip", 0);
        o.normalize = nd_lua_optbool(L, 3, "normalize", 1);
        o.drop_last = nd_lua_optbool(L, 3, "drop_last", 0);
        o.seed = (uint64_t)nd_lua_optint(L, 3, "seed", 0);
        double mean[ND_LOADER_MAX_CHANNELS], std[ND_LOADER_MAX_CHANNELS];
        int nm = nd_lua_optlist(L, 3, "mean", mean), ns = nd_lua_optlist(L, 3, "std", std);
        if (nm || ns) {
            if (nm == 0) mean[0] = 0.0, nm = 1;
            if (ns == 0) std[0] = 1.0, ns = 1;
            if (nm != ns && nm != 1 && ns != 1)
                return nd_lua_error(L, "loader: %d means but %d stds", nm, ns);
            o.nmean = nm > ns ? nm : ns;
            for (int i = 0; i < o.nmean; i++) {
                o.mean[i] = mean[nm == 1 ? 0 : i];
                o.std[i] = std[ns == 1 ? 0 : i];
            }
        }
    }
    nd_lua_loader *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->l = NULL; /* safe state before __gc becomes reachable */
    u->gen = 0;
    luaL_setmetatable(L, ND_LUA_LOADER_MT);
    nd_lua_check(L, nd_loader_new(&u->l, images, labels, &o));
    return 1;
}

static int l_loader_close(lua_State *L)
{
    nd_lua_loader *u = luaL_checkudata(L, 1, ND_LUA_LOADER_MT);
    nd_loader_free(u->l);
    u->l = NULL;
    return 0;
}

static int l_loader_start(lua_State *L)
{
    nd_lua_loader *u = nd_lua_checkloader(L, 1);
    lua_Integer epoch = luaL_checkinteger(L, 2);
    nd_lua_check(L, nd_loader_start(u->l, epoch));
    lua_pushinteger(L, ++u->gen);
    return 1;
}

static int l_loader_next(lua_State *L)
{
    nd_lua_loader *u = nd_lua_checkloader(L, 1);
    nd_tensor x, y;
    int done;
    nd_lua_check(L, nd_loader_next(u->l, &x, &y, &done));
    if (done) {
        lua_pushnil(L);
        return 1;
    }
    nd_lua_pushmove(L, &x);
    nd_lua_pushmove(L, &y);
    return 2;
}

/* :stop([gen]): stops the running epoch; with gen, only when no later start() happened. */
static int l_loader_stop(lua_State *L)
{
    nd_lua_loader *u = luaL_checkudata(L, 1, ND_LUA_LOADER_MT);
    if (u->l && (lua_isnoneornil(L, 2) || luaL_checkinteger(L, 2) == u->gen)) nd_loader_stop(u->l);
    return 0;
}

static int l_loader_size(lua_State *L)
{
    lua_pushinteger(L, nd_loader_num_batches(nd_lua_checkloader(L, 1)->l));
    return 1;
}

static int l_loader_nsamples(lua_State *L)
{
    lua_pushinteger(L, nd_loader_num_samples(nd_lua_checkloader(L, 1)->l));
    return 1;
}

static int l_loader_tostring(lua_State *L)
{
    nd_lua_loader *u = luaL_checkudata(L, 1, ND_LUA_LOADER_MT);
    if (!u->l) lua_pushliteral(L, "nd.DataLoader (closed)");
    else
        lua_pushfstring(L, "nd.DataLoader (%d samples, %d batches)", (int)nd_loader_num_samples(u->l),
                        (int)nd_loader_num_batches(u->l));
    return 1;
}

static const luaL_Reg nd_lua_loader_methods[] = {
    {"start", l_loader_start}, {"next", l_loader_next},         {"stop", l_loader_stop},
    {"size", l_loader_size},   {"nsamples", l_loader_nsamples}, {"close", l_loader_close},
    {NULL, NULL}};

static const luaL_Reg nd_lua_data_fns[] = {
    {"idx_read", l_idx_read},       {"idx_read_labels", l_idx_read_labels}, {"idx_write", l_idx_write},
    {"cifar_read", l_cifar_read},   {"cifar_write", l_cifar_write},         {"png_read", l_png_read},
    {"png_write", l_png_write},     {"loader", l_loader},                   {NULL, NULL}};

void nd_lua_open_data(lua_State *L)
{
    if (luaL_newmetatable(L, ND_LUA_LOADER_MT)) {
        lua_newtable(L);
        luaL_setfuncs(L, nd_lua_loader_methods, 0);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_loader_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_loader_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, l_loader_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    nd_lua_register(L, nd_lua_data_fns);
}
