/* Lua binding: the tensor userdata, creation, metadata, views, copies, element access,
 * random numbers, raw bytes and memory accounting. Dims and indices are 1-based here. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "nd_lua.h"

/* ---- userdata helpers ---- */

int nd_lua_error(lua_State *L, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    return lua_error(L);
}

nd_tensor *nd_lua_totensor_any(lua_State *L, int idx)
{
    return (nd_tensor *)luaL_testudata(L, idx, ND_LUA_TENSOR_MT);
}

nd_tensor *nd_lua_checktensor_any(lua_State *L, int idx)
{
    nd_tensor *t = nd_lua_totensor_any(L, idx);
    if (!t) {
        const char *got = luaL_typename(L, idx);
        nd_lua_error(L, "expected a tensor as argument #%d, got %s", idx, got);
    }
    return t;
}

static nd_tensor *nd_lua_cpu_only(lua_State *L, int idx, nd_tensor *t)
{
    if (t && nd_tensor_device(t).type != ND_DEVICE_CPU) {
        char s[ND_SHAPE_STR_MAX];
        lua_pushfstring(L, "expected a CPU tensor, got a cuda:%d tensor %s (this op has no CUDA kernel)",
                        nd_tensor_device(t).index, nd_tensor_shape_str(t, s, sizeof s));
        luaL_argerror(L, idx, lua_tostring(L, -1));
    }
    return t;
}

nd_tensor *nd_lua_totensor(lua_State *L, int idx) { return nd_lua_cpu_only(L, idx, nd_lua_totensor_any(L, idx)); }

nd_tensor *nd_lua_checktensor(lua_State *L, int idx)
{
    return nd_lua_cpu_only(L, idx, nd_lua_checktensor_any(L, idx));
}

static const char *nd_lua_device_name(nd_device d, char *buf, size_t n)
{
    if (d.type == ND_DEVICE_CPU)
        snprintf(buf, n, "cpu");
    else
        snprintf(buf, n, "cuda:%d", d.index);
    return buf;
}

nd_device nd_lua_device_of_dev(lua_State *L, const char *op, int n, const nd_tensor *const *ts)
{
    nd_device dev = nd_cpu_device();
    int seen = 0;
    for (int i = 0; i < n; i++) {
        if (!ts[i] || !ts[i]->storage) continue;
        nd_device d = nd_tensor_device(ts[i]);
        if (!seen) {
            dev = d;
            seen = 1;
        } else if (d.type != dev.type || d.index != dev.index) {
            char a[32], b[32];
            nd_lua_error(L, "%s: expected all tensors on one device, got %s and %s", op,
                         nd_lua_device_name(dev, a, sizeof a), nd_lua_device_name(d, b, sizeof b));
        }
    }
    return dev;
}

nd_device_type nd_lua_device_of(lua_State *L, const char *op, int n, const nd_tensor *const *ts)
{
    return nd_lua_device_of_dev(L, op, n, ts).type;
}

nd_tensor *nd_lua_pushempty(lua_State *L, nd_dtype dt)
{
    nd_tensor *t = (nd_tensor *)lua_newuserdatauv(L, sizeof(nd_tensor), 0);
    nd_tensor_init_empty(t, dt); /* safe state before the metatable makes __gc reachable */
    luaL_setmetatable(L, ND_LUA_TENSOR_MT);
    return t;
}

/* Raises the engine's message as is: the traceback, not a prefix, tells where it happened. */
void nd_lua_check(lua_State *L, nd_status st)
{
    if (st == ND_OK) return;
    lua_pushstring(L, nd_error_message());
    lua_error(L);
}

/* Bytes not yet seen by the collector: add them as GC debt so that a loop making big tensors
 * triggers collection of the dead ones (their userdata is tiny). */
/* GPU storages count too: dead GPU tensors hold device memory until collected. */
void nd_lua_account(lua_State *L, nd_tensor *t)
{
    nd_storage *s = t->storage;
    if (!s || s->accounted) return;
    s->accounted = 1;
    int64_t kb = s->nbytes / 1024;
    if (kb > 0) lua_gc(L, LUA_GCSTEP, (int)(kb > 1 << 30 ? 1 << 30 : kb));
}

/* nd_tensor_new; on a GPU out of memory, a full collection (dead tensors give their blocks back
 * to the caching allocator, which then also returns its free ones to the driver) and one retry. */
static nd_status nd_lua_tensor_new(lua_State *L, nd_tensor *t, nd_dtype dt, int ndim, const int64_t *size,
                                   nd_device dev, int zero)
{
    nd_status st = nd_tensor_new(t, dt, ndim, size, dev, zero);
    if (st == ND_ERR_MEMORY && dev.type == ND_DEVICE_CUDA) {
        lua_gc(L, LUA_GCCOLLECT);
        st = nd_tensor_new(t, dt, ndim, size, dev, zero);
    }
    return st;
}

nd_tensor *nd_lua_pushnew(lua_State *L, nd_dtype dt, int ndim, const int64_t *size, nd_device dev, int zero)
{
    nd_tensor *t = nd_lua_pushempty(L, dt);
    nd_lua_check(L, nd_lua_tensor_new(L, t, dt, ndim, size, dev, zero));
    nd_lua_account(L, t);
    return t;
}

nd_tensor *nd_lua_pushview(lua_State *L, const nd_tensor *src)
{
    nd_tensor *t = nd_lua_pushempty(L, src->dtype);
    nd_tensor_view_of(t, src);
    return t;
}

int nd_lua_checkdim(lua_State *L, int idx, const nd_tensor *t, int allow_end)
{
    lua_Integer d = luaL_checkinteger(L, idx);
    int hi = t->ndim + (allow_end ? 1 : 0);
    if (d < 1 || d > hi) {
        char s[ND_SHAPE_STR_MAX];
        nd_lua_error(L, "dimension %d out of range for a %d-d tensor (%s)", (int)d, t->ndim,
                   nd_tensor_shape_str(t, s, sizeof s));
    }
    return (int)d - 1;
}

nd_dtype nd_lua_optdtype(lua_State *L, int idx, nd_dtype def)
{
    if (lua_isnoneornil(L, idx)) return def;
    const char *name = luaL_checkstring(L, idx);
    int dt = nd_dtype_from_name(name);
    if (dt < 0) nd_lua_error(L, "unknown dtype '%s' (float32, float64, int64 or uint8)", name);
    return (nd_dtype)dt;
}

int nd_lua_checksizes(lua_State *L, int idx, int64_t *size)
{
    int n = 0;
    if (lua_istable(L, idx)) {
        n = (int)luaL_len(L, idx);
        if (n > ND_MAX_DIMS) nd_lua_error(L, "a tensor has at most %d dimensions, got %d", ND_MAX_DIMS, n);
        for (int i = 1; i <= n; i++) {
            lua_geti(L, idx, i);
            int ok;
            lua_Integer v = lua_tointegerx(L, -1, &ok);
            if (!ok) nd_lua_error(L, "size %d is not an integer (%s)", i, luaL_typename(L, -1));
            size[i - 1] = v;
            lua_pop(L, 1);
        }
        return n;
    }
    int top = lua_gettop(L);
    for (int i = idx; i <= top; i++) {
        if (n >= ND_MAX_DIMS) nd_lua_error(L, "a tensor has at most %d dimensions", ND_MAX_DIMS);
        size[n++] = luaL_checkinteger(L, i);
    }
    return n;
}

/* Torch7 printed sums and elements of float tensors as plain numbers: an integral value that
 * fits is pushed as a Lua integer (prints "4", compares and computes as 4.0 would). */
void nd_lua_pushreal(lua_State *L, double v)
{
    if (v == (double)(int64_t)v && v > -9007199254740992.0 && v < 9007199254740992.0)
        lua_pushinteger(L, (lua_Integer)v);
    else
        lua_pushnumber(L, v);
}

void nd_lua_register(lua_State *L, const luaL_Reg *fns) { luaL_setfuncs(L, fns, 0); }

static void nd_lua_checkpositive(lua_State *L, int ndim, const int64_t *size, const char *fn)
{
    for (int d = 0; d < ndim; d++)
        if (size[d] <= 0)
            nd_lua_error(L, "%s: sizes must be positive, got %d in dimension %d", fn, (int)size[d], d + 1);
}

/* ---- creation ---- */

/* A device name: nil or "cpu" (the host), "cuda" (the current GPU) or "cuda:N" (GPU N, from 0).
 * Naming a GPU loads and initialises the CUDA backend, or raises "CUDA is not available: why". */
static nd_device nd_lua_optdevice(lua_State *L, int idx)
{
    nd_device d = nd_cpu_device();
    if (lua_isnoneornil(L, idx)) return d;
    const char *name = luaL_checkstring(L, idx);
    if (strcmp(name, "cpu") == 0) return d;
    if (strncmp(name, "cuda", 4) == 0) {
        int index = -1;
        char extra;
        if (name[4] == ':' && (sscanf(name + 5, "%d%c", &index, &extra) != 1 || index < 0))
            nd_lua_error(L, "unknown device '%s' (cpu, cuda or cuda:N)", name);
        if (name[4] != ':' && name[4] != '\0') nd_lua_error(L, "unknown device '%s' (cpu, cuda or cuda:N)", name);
        nd_lua_cuda_init(L);
        if (index < 0) {
            int (*cur)(void) = (int (*)(void))nd_lua_cuda_sym(L, "cuda", "nd_cuda_current_device");
            index = cur();
        }
        int (*count)(void) = (int (*)(void))nd_lua_cuda_sym(L, "cuda", "nd_cuda_device_count");
        if (index >= count()) nd_lua_error(L, "device %s does not exist (%d GPUs, numbered from 0)", name, count());
        d.type = ND_DEVICE_CUDA;
        d.index = index;
        return d;
    }
    nd_lua_error(L, "unknown device '%s' (cpu, cuda or cuda:N)", name);
    return d;
}

/* core.empty(dtype, sizes [, device]) / core.zeros(...): sizes is a table; {} gives the empty tensor. */
static int nd_lua_new_common(lua_State *L, int zero)
{
    nd_dtype dt = nd_lua_optdtype(L, 1, ND_DTYPE_F32);
    int64_t size[ND_MAX_DIMS];
    luaL_checktype(L, 2, LUA_TTABLE);
    int ndim = nd_lua_checksizes(L, 2, size);
    nd_lua_checkpositive(L, ndim, size, zero ? "zeros" : "Tensor");
    nd_lua_pushnew(L, dt, ndim, size, nd_lua_optdevice(L, 3), zero);
    return 1;
}
static int l_empty(lua_State *L) { return nd_lua_new_common(L, 0); }
static int l_zeros(lua_State *L) { return nd_lua_new_common(L, 1); }

/* t becomes a contiguous (dt, ndim, size) view from `offset` of its own storage (which fits). */
static void nd_lua_relayout(nd_tensor *t, nd_dtype dt, int64_t offset, int ndim, const int64_t *size)
{
    t->dtype = dt;
    t->offset = offset;
    t->ndim = ndim;
    int64_t st = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        t->size[d] = size[d];
        t->stride[d] = st;
        st *= size[d];
    }
}

/* Replaces t by a fresh contiguous tensor on dev (reported to the collector). */
static void nd_lua_renew(lua_State *L, nd_tensor *t, nd_device dev, nd_dtype dt, int ndim, const int64_t *size)
{
    nd_tensor fresh;
    nd_lua_check(L, nd_lua_tensor_new(L, &fresh, dt, ndim, size, dev, 0));
    nd_tensor_release(t);
    *t = fresh;
    nd_lua_account(L, t);
}

void nd_lua_resize_on(lua_State *L, nd_tensor *t, nd_device dev, nd_dtype dt, int ndim, const int64_t *size)
{
    nd_device have = nd_tensor_device(t);
    int on_dev = t->storage && have.type == dev.type && have.index == dev.index;
    int same = on_dev && t->ndim == ndim && t->dtype == dt && nd_tensor_is_contiguous(t);
    for (int d = 0; same && d < ndim; d++) same = t->size[d] == size[d];
    if (same) return;
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= size[d];
    if (on_dev && t->storage->refcount == 1 && t->storage->nbytes >= n * (int64_t)nd_dtype_size(dt))
        nd_lua_relayout(t, dt, 0, ndim, size);
    else
        nd_lua_renew(L, t, dev, dt, ndim, size);
}

void nd_lua_resize(lua_State *L, nd_tensor *t, nd_dtype dt, int ndim, const int64_t *size, int strict)
{
    if (strict) {
        nd_lua_resize_on(L, t, nd_cpu_device(), dt, ndim, size);
        return;
    }
    int same = t->storage && t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = t->size[d] == size[d];
    if (same) return;
    int64_t n = ndim ? 1 : 0;
    for (int d = 0; d < ndim; d++) n *= size[d];
    if (t->storage && (t->offset + n) * (int64_t)nd_dtype_size(dt) <= t->storage->nbytes)
        nd_lua_relayout(t, dt, t->offset, ndim, size);
    else
        nd_lua_renew(L, t, nd_tensor_device(t), dt, ndim, size);
}

/* core.resize(t, sizes): reshapes t in place to a contiguous layout, reusing its storage when it is
 * large enough (Torch7 resize). Contents are unspecified unless the old layout was contiguous. */
static int l_resize(lua_State *L)
{
    nd_tensor *t = nd_lua_checktensor_any(L, 1);
    int64_t size[ND_MAX_DIMS];
    luaL_checktype(L, 2, LUA_TTABLE);
    int ndim = nd_lua_checksizes(L, 2, size);
    nd_lua_checkpositive(L, ndim, size, "resize");
    nd_lua_resize(L, t, t->dtype, ndim, size, 0);
    lua_settop(L, 1);
    return 1;
}

/* ---- metadata ---- */

/* core.size(t [, dim]) / core.stride(t [, dim]): one entry, or a table of all. */
static int nd_lua_pushdims(lua_State *L, int stride)
{
    nd_tensor *t = nd_lua_checktensor_any(L, 1);
    const int64_t *v = stride ? t->stride : t->size;
    if (!lua_isnoneornil(L, 2)) {
        lua_pushinteger(L, v[nd_lua_checkdim(L, 2, t, 0)]);
        return 1;
    }
    lua_createtable(L, t->ndim, 0);
    for (int d = 0; d < t->ndim; d++) {
        lua_pushinteger(L, v[d]);
        lua_rawseti(L, -2, d + 1);
    }
    return 1;
}
static int l_size(lua_State *L) { return nd_lua_pushdims(L, 0); }
static int l_stride(lua_State *L) { return nd_lua_pushdims(L, 1); }

static int l_dim(lua_State *L)
{
    lua_pushinteger(L, nd_lua_checktensor_any(L, 1)->ndim);
    return 1;
}

static int l_numel(lua_State *L)
{
    lua_pushinteger(L, nd_tensor_numel(nd_lua_checktensor_any(L, 1)));
    return 1;
}

static int l_dtype(lua_State *L)
{
    lua_pushstring(L, nd_dtype_name(nd_lua_checktensor_any(L, 1)->dtype));
    return 1;
}

/* core.device(t) -> "cpu" | "cuda", device index (0 for the host). */
static int l_device(lua_State *L)
{
    nd_device d = nd_tensor_device(nd_lua_checktensor_any(L, 1));
    lua_pushstring(L, d.type == ND_DEVICE_CPU ? "cpu" : "cuda");
    lua_pushinteger(L, d.index);
    return 2;
}

static int l_iscontiguous(lua_State *L)
{
    lua_pushboolean(L, nd_tensor_is_contiguous(nd_lua_checktensor_any(L, 1)));
    return 1;
}

/* core.storageid(t): an integer naming the storage (nil when empty); equal ids share memory. */
static int l_storageid(lua_State *L)
{
    nd_tensor *t = nd_lua_checktensor_any(L, 1);
    if (!t->storage) return 0;
    lua_pushinteger(L, (lua_Integer)(intptr_t)t->storage);
    return 1;
}

/* core.offset(t): 1-based storage offset (Torch7 storageOffset). core.storagesize(t): elements. */
static int l_offset(lua_State *L)
{
    lua_pushinteger(L, nd_lua_checktensor_any(L, 1)->offset + 1);
    return 1;
}

static int l_storagesize(lua_State *L)
{
    nd_tensor *t = nd_lua_checktensor_any(L, 1);
    lua_pushinteger(L, t->storage ? t->storage->nbytes / (int64_t)nd_dtype_size(t->dtype) : 0);
    return 1;
}

/* ---- views (each returns a new tensor sharing storage) ---- */

static nd_tensor *nd_lua_viewarg(lua_State *L, nd_tensor **src)
{
    *src = nd_lua_checktensor_any(L, 1);
    return nd_lua_pushview(L, *src);
}

static int l_narrow(lua_State *L)
{
    nd_tensor *src = nd_lua_checktensor_any(L, 1);
    int dim = nd_lua_checkdim(L, 2, src, 0);
    lua_Integer start = luaL_checkinteger(L, 3), len = luaL_checkinteger(L, 4);
    nd_tensor *v = nd_lua_viewarg(L, &src);
    nd_lua_check(L, nd_tensor_narrow(v, dim, start - 1, len));
    return 1;
}

static int l_select(lua_State *L)
{
    nd_tensor *src = nd_lua_checktensor_any(L, 1);
    int dim = nd_lua_checkdim(L, 2, src, 0);
    lua_Integer idx = luaL_checkinteger(L, 3);
    if (src->ndim == 1) return nd_lua_error(L, "select: a 1-d tensor has no sub-tensor (use t[i] for a value)");
    if (idx < 0) idx += src->size[dim] + 1; /* -1 = last */
    nd_tensor *v = nd_lua_viewarg(L, &src);
    nd_lua_check(L, nd_tensor_select(v, dim, idx - 1));
    return 1;
}

static int l_transpose(lua_State *L)
{
    nd_tensor *src = nd_lua_checktensor_any(L, 1);
    int d0 = nd_lua_checkdim(L, 2, src, 0), d1 = nd_lua_checkdim(L, 3, src, 0);
    nd_tensor *v = nd_lua_viewarg(L, &src);
    nd_lua_check(L, nd_tensor_transpose(v, d0, d1));
    return 1;
}

static int l_permute(lua_State *L)
{
    nd_tensor *src = nd_lua_checktensor_any(L, 1);
    int64_t p[ND_MAX_DIMS];
    luaL_checktype(L, 2, LUA_TTABLE);
    int n = nd_lua_checksizes(L, 2, p);
    if (n != src->ndim) {
        char s[ND_SHAPE_STR_MAX];
        return nd_lua_error(L, "permute: got %d dimensions for a %d-d tensor (%s)", n, src->ndim,
                          nd_tensor_shape_str(src, s, sizeof s));
    }
    int perm[ND_MAX_DIMS];
    for (int d = 0; d < n; d++) perm[d] = (int)p[d] - 1;
    nd_tensor *v = nd_lua_viewarg(L, &src);
    nd_lua_check(L, nd_tensor_permute(v, perm));
    return 1;
}

static int l_unsqueeze(lua_State *L)
{
    nd_tensor *src = nd_lua_checktensor_any(L, 1);
    int dim = nd_lua_checkdim(L, 2, src, 1);
    nd_tensor *v = nd_lua_viewarg(L, &src);
    nd_lua_check(L, nd_tensor_unsqueeze(v, dim));
    return 1;
}

static int l_squeeze(lua_State *L)
{
    nd_tensor *src = nd_lua_checktensor_any(L, 1);
    int dim = lua_isnoneornil(L, 2) ? -1 : nd_lua_checkdim(L, 2, src, 0);
    nd_tensor *v = nd_lua_viewarg(L, &src);
    nd_lua_check(L, nd_tensor_squeeze(v, dim));
    return 1;
}

static int l_expand(lua_State *L)
{
    nd_tensor *src = nd_lua_checktensor_any(L, 1);
    int64_t size[ND_MAX_DIMS];
    luaL_checktype(L, 2, LUA_TTABLE);
    int n = nd_lua_checksizes(L, 2, size);
    nd_tensor *v = nd_lua_viewarg(L, &src);
    nd_lua_check(L, nd_tensor_expand(v, n, size));
    return 1;
}

static int l_view(lua_State *L)
{
    nd_tensor *src = nd_lua_checktensor_any(L, 1);
    int64_t size[ND_MAX_DIMS];
    luaL_checktype(L, 2, LUA_TTABLE);
    int n = nd_lua_checksizes(L, 2, size);
    nd_tensor *v = nd_lua_viewarg(L, &src);
    nd_lua_check(L, nd_tensor_view(v, n, size));
    return 1;
}

static int l_unfold(lua_State *L)
{
    nd_tensor *src = nd_lua_checktensor_any(L, 1);
    int dim = nd_lua_checkdim(L, 2, src, 0);
    lua_Integer size = luaL_checkinteger(L, 3), step = luaL_checkinteger(L, 4);
    nd_tensor *v = nd_lua_viewarg(L, &src);
    nd_lua_check(L, nd_tensor_unfold(v, dim, size, step));
    return 1;
}

/* core.set(dst, src): dst becomes a view of src (Torch7 :set). */
static int l_set(lua_State *L)
{
    nd_tensor *dst = nd_lua_checktensor_any(L, 1), *src = nd_lua_checktensor_any(L, 2);
    nd_tensor_set(dst, src);
    lua_settop(L, 1);
    return 1;
}

/* ---- copies ---- */

static int l_copy(lua_State *L)
{
    nd_tensor *dst = nd_lua_checktensor_any(L, 1), *src = nd_lua_checktensor_any(L, 2);
    nd_lua_check(L, nd_tensor_copy(dst, src));
    lua_settop(L, 1);
    return 1;
}

/* core.clone(t [, dtype [, device]]): a contiguous copy (converted). */
static int l_clone(lua_State *L)
{
    nd_tensor *src = nd_lua_checktensor_any(L, 1);
    nd_dtype dt = nd_lua_optdtype(L, 2, src->dtype);
    nd_device dev = lua_isnoneornil(L, 3) ? nd_tensor_device(src) : nd_lua_optdevice(L, 3);
    if (src->ndim == 0) {
        nd_lua_pushempty(L, dt);
        return 1;
    }
    nd_tensor *t = nd_lua_pushnew(L, dt, src->ndim, src->size, dev, 0);
    nd_lua_check(L, nd_tensor_copy(t, src));
    return 1;
}

static int l_contiguous(lua_State *L)
{
    nd_tensor *src = nd_lua_checktensor_any(L, 1);
    if (nd_tensor_is_contiguous(src)) {
        lua_settop(L, 1);
        return 1;
    }
    return l_clone(L);
}

/* core.free(t): drops the storage now (also __gc and __close); t becomes empty. */
static int l_free(lua_State *L)
{
    nd_tensor *t = nd_lua_totensor_any(L, 1);
    if (t) nd_tensor_release(t);
    return 0;
}

/* ---- element access ---- */

/* Storage offset (elements, relative to t's element 0) of the element at 1-based indices
 * first..top; raises on a wrong count or an index out of range. */
static int64_t nd_lua_elemoff(lua_State *L, nd_tensor *t, int first, const char *op)
{
    int n = lua_gettop(L) - first + 1;
    if (t->ndim == 0 || !t->storage) nd_lua_error(L, "%s: cannot index an empty tensor (it has no elements)", op);
    if (n != t->ndim) {
        char s[ND_SHAPE_STR_MAX];
        nd_lua_error(L, "expected %d indices for a %s tensor, got %d", t->ndim, nd_tensor_shape_str(t, s, sizeof s), n);
    }
    int64_t off = 0;
    for (int d = 0; d < t->ndim; d++) {
        lua_Integer i = luaL_checkinteger(L, first + d);
        if (i < 0) i += t->size[d] + 1;
        if (i < 1 || i > t->size[d]) {
            char s[ND_SHAPE_STR_MAX];
            nd_lua_error(L, "index %d out of range for dimension %d of size %d (%s)", (int)i, d + 1, (int)t->size[d],
                       nd_tensor_shape_str(t, s, sizeof s));
        }
        off += (i - 1) * t->stride[d];
    }
    return off;
}

static char *nd_lua_elemptr(lua_State *L, nd_tensor *t, int first, const char *op)
{
    return (char *)nd_tensor_data(t) + nd_lua_elemoff(L, t, first, op) * (int64_t)nd_dtype_size(t->dtype);
}

/* One element of a GPU tensor through a host copy: *one (1 element, CPU) receives it (to_host) or
 * is written to it. Slow (a transfer and a synchronisation per element) but correct. */
static void nd_lua_gpu_elem(lua_State *L, nd_tensor *t, int64_t off, nd_tensor *one, int to_host)
{
    nd_tensor v;
    nd_tensor_view_of(&v, t);
    v.offset += off;
    v.ndim = 1;
    v.size[0] = 1;
    v.stride[0] = 1;
    nd_status st = to_host ? nd_tensor_copy(one, &v) : nd_tensor_copy(&v, one);
    nd_tensor_release(&v);
    nd_lua_check(L, st);
}

static void nd_lua_pushelem(lua_State *L, nd_dtype dt, const char *p)
{
    switch (dt) {
    case ND_DTYPE_F32: nd_lua_pushreal(L, *(const float *)p); break;
    case ND_DTYPE_F64: nd_lua_pushreal(L, *(const double *)p); break;
    case ND_DTYPE_I64: lua_pushinteger(L, *(const int64_t *)p); break;
    case ND_DTYPE_U8: lua_pushinteger(L, *(const uint8_t *)p); break;
    default: lua_pushnil(L);
    }
}

static void nd_lua_storeelem(lua_State *L, nd_dtype dt, char *p, int idx)
{
    switch (dt) {
    case ND_DTYPE_F32: *(float *)p = (float)luaL_checknumber(L, idx); break;
    case ND_DTYPE_F64: *(double *)p = luaL_checknumber(L, idx); break;
    case ND_DTYPE_I64: {
        int ok;
        lua_Integer v = lua_tointegerx(L, idx, &ok);
        if (!ok) v = (lua_Integer)luaL_checknumber(L, idx);
        *(int64_t *)p = v;
        break;
    }
    case ND_DTYPE_U8: *(uint8_t *)p = (uint8_t)luaL_checknumber(L, idx); break;
    default: break;
    }
}

/* core.get(t, i1, ..., in) -> number; core.setelem(t, v, i1, ..., in). */
/* On a GPU tensor each call copies one element (see nd_lua_gpu_elem). */
static int l_get(lua_State *L)
{
    nd_tensor *t = nd_lua_checktensor_any(L, 1);
    if (nd_tensor_device(t).type != ND_DEVICE_CPU) {
        int64_t off = nd_lua_elemoff(L, t, 2, "get");
        int64_t one_size[1] = {1};
        nd_tensor *one = nd_lua_pushnew(L, t->dtype, 1, one_size, nd_cpu_device(), 0);
        nd_lua_gpu_elem(L, t, off, one, 1);
        nd_lua_pushelem(L, t->dtype, (const char *)nd_tensor_data(one));
        return 1;
    }
    nd_lua_pushelem(L, t->dtype, nd_lua_elemptr(L, t, 2, "get"));
    return 1;
}

static int l_setelem(lua_State *L)
{
    nd_tensor *t = nd_lua_checktensor_any(L, 1);
    luaL_checkany(L, 2);
    if (nd_tensor_device(t).type != ND_DEVICE_CPU) {
        int64_t off = nd_lua_elemoff(L, t, 3, "setelem");
        int64_t one_size[1] = {1};
        nd_tensor *one = nd_lua_pushnew(L, t->dtype, 1, one_size, nd_cpu_device(), 0);
        nd_lua_storeelem(L, t->dtype, (char *)nd_tensor_data(one), 2);
        nd_lua_gpu_elem(L, t, off, one, 0);
        return 0;
    }
    char *p = nd_lua_elemptr(L, t, 3, "setelem");
    nd_lua_storeelem(L, t->dtype, p, 2);
    return 0;
}

/* A CPU copy of the GPU tensor at idx replaces it on the stack (CPU tensors stay as they are). */
static nd_tensor *nd_lua_hostarg(lua_State *L, int idx)
{
    nd_tensor *t = nd_lua_checktensor_any(L, idx);
    if (nd_tensor_device(t).type == ND_DEVICE_CPU || t->ndim == 0) return t;
    nd_tensor *h = nd_lua_pushnew(L, t->dtype, t->ndim, t->size, nd_cpu_device(), 0);
    nd_lua_check(L, nd_tensor_copy(h, t));
    lua_replace(L, idx);
    return nd_lua_checktensor_any(L, idx);
}

/* core.toflat(t) -> {values in row-major order}; core.fromflat(t, list) fills t row-major. */
static int l_toflat(lua_State *L)
{
    nd_tensor *t = nd_lua_hostarg(L, 1);
    int64_t n = nd_tensor_numel(t), k = 0;
    lua_createtable(L, (int)n, 0);
    nd_iter it;
    const nd_tensor *ops[1] = {t};
    nd_iter_init(&it, 1, ops);
    int64_t es = (int64_t)nd_dtype_size(t->dtype);
    while (nd_iter_next(&it))
        for (int64_t i = 0; i < it.inner; i++) {
            nd_lua_pushelem(L, t->dtype, it.ptr[0] + i * it.istride[0] * es);
            lua_rawseti(L, -2, ++k);
        }
    return 1;
}

static int l_fromflat(lua_State *L)
{
    nd_tensor *t = nd_lua_checktensor_any(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    if (nd_tensor_device(t).type != ND_DEVICE_CPU) { /* fill a host tensor, then copy it over */
        lua_settop(L, 2);
        nd_tensor *h = nd_lua_pushnew(L, t->dtype, t->ndim, t->size, nd_cpu_device(), 0);
        lua_pushcfunction(L, l_fromflat);
        lua_pushvalue(L, 3);
        lua_pushvalue(L, 2);
        lua_call(L, 2, 0);
        nd_lua_check(L, nd_tensor_copy(t, h));
        lua_settop(L, 1);
        return 1;
    }
    int64_t n = nd_tensor_numel(t), k = 0;
    if ((int64_t)luaL_len(L, 2) != n)
        return nd_lua_error(L, "fromflat: %d values for %d elements", (int)luaL_len(L, 2), (int)n);
    nd_iter it;
    const nd_tensor *ops[1] = {t};
    nd_iter_init(&it, 1, ops);
    int64_t es = (int64_t)nd_dtype_size(t->dtype);
    while (nd_iter_next(&it))
        for (int64_t i = 0; i < it.inner; i++) {
            lua_rawgeti(L, 2, ++k);
            if (!lua_isnumber(L, -1)) return nd_lua_error(L, "value %d is not a number (%s)", (int)k, luaL_typename(L, -1));
            nd_lua_storeelem(L, t->dtype, it.ptr[0] + i * it.istride[0] * es, -1);
            lua_pop(L, 1);
        }
    lua_settop(L, 1);
    return 1;
}

/* core.tobytes(t) -> string of the row-major element bytes (little-endian host order). */
static int l_tobytes(lua_State *L)
{
    nd_tensor *t = nd_lua_checktensor_any(L, 1);
    if (t->ndim == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    nd_tensor c;
    nd_lua_check(L, nd_tensor_new(&c, t->dtype, t->ndim, t->size, nd_cpu_device(), 0));
    nd_status st = nd_tensor_copy(&c, t);
    if (st != ND_OK) {
        nd_tensor_release(&c);
        nd_lua_check(L, st);
    }
    lua_pushlstring(L, (const char *)nd_tensor_data(&c), (size_t)c.storage->nbytes);
    nd_tensor_release(&c);
    return 1;
}

/* core.frombytes(t, s [, pos]): fills t (row-major) from bytes of s starting at 1-based pos. */
static int l_frombytes(lua_State *L)
{
    nd_tensor *t = nd_lua_checktensor_any(L, 1);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    lua_Integer pos = luaL_optinteger(L, 3, 1);
    int64_t need = nd_tensor_numel(t) * (int64_t)nd_dtype_size(t->dtype);
    if (pos < 1 || (int64_t)(pos - 1) + need > (int64_t)len)
        return nd_lua_error(L, "frombytes: need %d bytes at position %d, the string has %d", (int)need, (int)pos, (int)len);
    if (need == 0) {
        lua_settop(L, 1);
        return 1;
    }
    nd_tensor src;
    nd_storage holder;
    nd_tensor_borrow(&src, &holder, (void *)(s + pos - 1), need, t->dtype, t->ndim, t->size);
    nd_lua_check(L, nd_tensor_copy(t, &src)); /* src borrows the string: no release */
    lua_settop(L, 1);
    return 1;
}

/* ---- misc ---- */

static int l_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec);
    return 1;
}

static int l_memory(lua_State *L)
{
    lua_pushinteger(L, nd_storage_bytes_cpu());
    lua_pushinteger(L, nd_storage_bytes_gpu());
    lua_pushinteger(L, nd_storage_peak_cpu());
    return 3;
}

static int l_istensor(lua_State *L)
{
    lua_pushboolean(L, nd_lua_totensor_any(L, 1) != NULL);
    return 1;
}

/* __index for tensors: string keys look up the method table (upvalue 1) directly; other keys
 * (numbers, tables) go to the Lua function in upvalue 2. */
static int l_tensor_index(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TSTRING) {
        lua_pushvalue(L, 2);
        lua_rawget(L, lua_upvalueindex(1));
        return 1;
    }
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_call(L, 2, 1);
    return 1;
}

/* core.setindex(methods, keyfn): installs the tensor __index. */
static int l_setindex(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    luaL_getmetatable(L, ND_LUA_TENSOR_MT);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, l_tensor_index, 2);
    lua_setfield(L, -2, "__index");
    return 0;
}

static int l_metatable(lua_State *L)
{
    luaL_getmetatable(L, ND_LUA_TENSOR_MT);
    return 1;
}

static const luaL_Reg nd_lua_tensor_fns[] = {
    {"empty", l_empty},       {"zeros", l_zeros},         {"resize", l_resize},
    {"size", l_size},         {"stride", l_stride},       {"dim", l_dim},
    {"numel", l_numel},       {"dtype", l_dtype},         {"device", l_device},
    {"iscontiguous", l_iscontiguous}, {"storageid", l_storageid}, {"offset", l_offset},
    {"storagesize", l_storagesize},
    {"narrow", l_narrow},     {"select", l_select},       {"transpose", l_transpose},
    {"permute", l_permute},   {"unsqueeze", l_unsqueeze}, {"squeeze", l_squeeze},
    {"expand", l_expand},     {"view", l_view},           {"unfold", l_unfold},
    {"set", l_set},           {"copy", l_copy},           {"clone", l_clone},
    {"contiguous", l_contiguous}, {"free", l_free},
    {"get", l_get},           {"setelem", l_setelem},     {"toflat", l_toflat},
    {"fromflat", l_fromflat}, {"tobytes", l_tobytes},     {"frombytes", l_frombytes},
    {"now", l_now},           {"memory", l_memory},       {"istensor", l_istensor},
    {"setindex", l_setindex}, {"metatable", l_metatable},
    {NULL, NULL}};

void nd_lua_open_tensor(lua_State *L) { nd_lua_register(L, nd_lua_tensor_fns); }

/* Optional parts, present once their files are linked in. */
void nd_lua_open_math(lua_State *L) __attribute__((weak));
void nd_lua_open_linalg(lua_State *L) __attribute__((weak));
void nd_lua_open_nn(lua_State *L) __attribute__((weak));
void nd_lua_open_data(lua_State *L) __attribute__((weak));
void nd_lua_open_cuda(lua_State *L) __attribute__((weak));
void nd_lua_open_random(lua_State *L) __attribute__((weak));
void nd_lua_open_deconv(lua_State *L) __attribute__((weak));
void nd_lua_open_serialize(lua_State *L) __attribute__((weak));

int luaopen_nd_core(lua_State *L)
{
    if (luaL_newmetatable(L, ND_LUA_TENSOR_MT)) {
        lua_pushcfunction(L, l_free);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_free);
        lua_setfield(L, -2, "__close");
        lua_pushliteral(L, "nd.Tensor");
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
    lua_newtable(L);
    nd_lua_open_tensor(L);
    if (nd_lua_open_math) nd_lua_open_math(L);
    if (nd_lua_open_linalg) nd_lua_open_linalg(L);
    if (nd_lua_open_nn) nd_lua_open_nn(L);
    if (nd_lua_open_data) nd_lua_open_data(L);
    if (nd_lua_open_cuda) nd_lua_open_cuda(L);
    if (nd_lua_open_random) nd_lua_open_random(L);
    if (nd_lua_open_deconv) nd_lua_open_deconv(L);
    if (nd_lua_open_serialize) nd_lua_open_serialize(L);
    lua_pushboolean(L, nd_lua_open_cuda != NULL);
    lua_setfield(L, -2, "has_cuda");
    return 1;
}
