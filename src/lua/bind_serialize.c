/* Lua binding for serialization: rebuilding strided views over one storage (nd.load) and
 * taking a view of a whole storage (nd.save). Everything else of the format is in
 * lua/nd/serialize.lua. */
#include "nd_lua.h"

/* core.setview(dst, src, offset, sizes, strides) -> dst.
 * dst becomes a view of src's storage (a new reference; dst's old one is dropped) with the
 * 1-based storage offset, the sizes and the strides given (tables of integers, in elements),
 * and src's dtype; the device is the storage's. Torch7's t:set(storage, offset, sizes, strides).
 * Checked so that no element lies outside the storage: sizes >= 1, strides >= 0, the offset and
 * the last element inside [1, storage elements]. sizes = {} makes dst the empty tensor of src's
 * dtype. dst may be src. Used by nd.load to restore views that share one storage, and by
 * nd.save (offset 1, sizes {n}, strides {1}) to read a whole storage. */
static int l_setview(lua_State *L)
{
    nd_tensor *dst = nd_lua_checktensor_any(L, 1); /* views are device-neutral (nd.save of GPU tensors) */
    nd_tensor *src = nd_lua_checktensor_any(L, 2);
    lua_Integer off = luaL_checkinteger(L, 3);
    luaL_checktype(L, 4, LUA_TTABLE);
    luaL_checktype(L, 5, LUA_TTABLE);
    int64_t size[ND_MAX_DIMS], stride[ND_MAX_DIMS];
    int n = nd_lua_checksizes(L, 4, size);
    int m = nd_lua_checksizes(L, 5, stride);
    if (n != m) return nd_lua_error(L, "setview: %d sizes but %d strides", n, m);
    if (n == 0) {
        nd_dtype dt = src->dtype;
        nd_tensor_release(dst);
        nd_tensor_init_empty(dst, dt);
        lua_settop(L, 1);
        return 1;
    }
    if (!src->storage) return nd_lua_error(L, "setview: the source tensor has no storage");
    int64_t es = (int64_t)nd_dtype_size(src->dtype);
    int64_t count = src->storage->nbytes / es;
    if (off < 1 || off > count)
        return nd_lua_error(L, "setview: offset %d outside a storage of %d elements", (int)off, (int)count);
    int64_t last = off - 1, numel = 1; /* 0-based index of the furthest element */
    for (int d = 0; d < n; d++) {
        if (size[d] < 1) return nd_lua_error(L, "setview: size %d in dimension %d is not positive", (int)size[d], d + 1);
        if (stride[d] < 0) return nd_lua_error(L, "setview: negative stride in dimension %d", d + 1);
        if (numel > INT64_MAX / 16 / size[d]) return nd_lua_error(L, "setview: the view is too large");
        numel *= size[d];
        if (size[d] > 1 && stride[d] > 0) {
            if (size[d] - 1 > (count - 1 - last) / stride[d])
                return nd_lua_error(L, "setview: the view reaches past the end of a storage of %d elements", (int)count);
            last += (size[d] - 1) * stride[d];
        }
    }
    nd_tensor v;
    nd_tensor_view_of(&v, src); /* the new reference, taken before dst (maybe src) lets go */
    v.offset = off - 1;
    v.ndim = n;
    for (int d = 0; d < ND_MAX_DIMS; d++) {
        v.size[d] = d < n ? size[d] : 0;
        v.stride[d] = d < n ? stride[d] : 0;
    }
    nd_tensor_release(dst);
    *dst = v;
    lua_settop(L, 1);
    return 1;
}

static const luaL_Reg nd_lua_serialize_fns[] = {{"setview", l_setview}, {NULL, NULL}};

void nd_lua_open_serialize(lua_State *L) { nd_lua_register(L, nd_lua_serialize_fns); }
