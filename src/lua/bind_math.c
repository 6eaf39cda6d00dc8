/* Lua binding of the elementwise, reduction and cumulative kernels (src/cpu/nd_cpu_math.h).
 *
 *   core.unary(op, out|nil, x [, p1 [, p2]])              -> out
 *   core.binary(op, out|nil, a, b [, alpha = 1])           -> out
 *   core.ternary(op, out|nil, a, b, c [, v = 1])           -> out
 *   core.fill(t, value)                                    -> t
 *   core.reduce(op, values|nil, indices|nil, x, dim [, p]) -> values [, indices] (argmax/argmin: indices)
 *   core.reduceall(op, x [, p])                            -> number [, index]
 *   core.cumulate(op, out|nil, x, dim)                     -> out
 *   core.samesize(a, b)                                    -> boolean
 *
 * `op` is the kernel's name ("exp", "add", "addcmul", "sum", "cumsum", ...; see nd_*_name), looked
 * up in a table built once. A nil out is made here: x's dtype (uint8 for comparisons and logic;
 * for binary/ternary ops the promoted dtype of the inputs: float64 > float32 > int64 > uint8).
 * A given out must already have the result shape (the Lua layer resizes it) or be empty.
 * Dims are 1-based (negative counts from the end); indices come back 1-based. reduce's p: the norm
 * order (default 2) or, for var/std, `unbiased` (boolean or number, default true).
 * reduceall returns a Lua integer for exact integer results (sums of integer tensors, counts,
 * max/min of integer tensors), and for max/min/argmax/argmin the 1-based row-major position.
 *
 * Devices: every function runs on the device of its tensors (ND_DEVICE_CALL: the _cpu kernel or
 * its _cuda twin, src/cuda/nd_cuda_math.h); mixed devices are an error, a nil out is made on the
 * inputs' device, reduceall on a GPU tensor waits for the result. */
#include <math.h>
#include <string.h>

#include "nd_cpu_math.h"
#include "nd_cuda.h"
#include "nd_cuda_math.h"
#include "nd_lua.h"

/* Raises the engine's message prefixed with "nd.". */
static void check(lua_State *L, nd_status st)
{
    if (st != ND_OK) nd_lua_error(L, "nd.%s", nd_error_message());
}

/* The op number for the name at arg 1, from the lookup table in upvalue 1. */
static int check_op(lua_State *L, const char *family)
{
    const char *name = luaL_checkstring(L, 1);
    lua_pushvalue(L, 1);
    lua_rawget(L, lua_upvalueindex(1));
    if (!lua_isinteger(L, -1)) nd_lua_error(L, "core.%s: unknown op '%s'", family, name);
    int op = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return op;
}

static nd_tensor *check_tensor(lua_State *L, int idx, const char *op, const char *what)
{
    nd_tensor *t = nd_lua_totensor_any(L, idx);
    if (!t) nd_lua_error(L, "nd.%s: expected a tensor as %s, got %s", op, what, luaL_typename(L, idx));
    return t;
}

/* The device of the operands (NULL and storage-less ones skipped); mixed devices raise. */
static nd_device_type device_of(lua_State *L, const char *op, int n, const nd_tensor *const *ts)
{
    return nd_lua_device_of(L, op, n, ts);
}

/* The result at arg idx pushed again, or a new empty tensor of dtype dt pushed in its place. */
static nd_tensor *push_out(lua_State *L, int idx, nd_dtype dt, const char *op)
{
    if (lua_isnoneornil(L, idx)) return nd_lua_pushempty(L, dt);
    nd_tensor *t = check_tensor(L, idx, op, "the result");
    lua_pushvalue(L, idx);
    return t;
}

static int dtype_rank(nd_dtype dt)
{
    switch (dt) {
    case ND_DTYPE_F64: return 3;
    case ND_DTYPE_F32: return 2;
    case ND_DTYPE_I64: return 1;
    default: return 0;
    }
}

static nd_dtype promote(nd_dtype a, nd_dtype b) { return dtype_rank(a) >= dtype_rank(b) ? a : b; }

/* A 1-based (negative from the end) dim argument, returned 0-based. */
static int check_dim(lua_State *L, int idx, const nd_tensor *x, const char *op)
{
    lua_Integer d = luaL_checkinteger(L, idx), d0 = d;
    if (d < 0) d += x->ndim + 1;
    if (d < 1 || d > x->ndim) {
        char s[ND_SHAPE_STR_MAX];
        nd_lua_error(L, "nd.%s: dimension %d out of range for a %d-d tensor (%s)", op, (int)d0, x->ndim,
                     nd_tensor_shape_str(x, s, sizeof s));
    }
    return (int)d - 1;
}

/* ---- maps ---- */

static int l_unary(lua_State *L)
{
    nd_unary_op op = (nd_unary_op)check_op(L, "unary");
    const char *name = nd_unary_name(op);
    nd_tensor *x = check_tensor(L, 3, name, "input");
    int cmp = op >= ND_UNARY_EQ && op <= ND_UNARY_GE;
    double p1 = luaL_optnumber(L, 4, op == ND_UNARY_CLAMP ? -HUGE_VAL : 0);
    double p2 = luaL_optnumber(L, 5, op == ND_UNARY_CLAMP ? HUGE_VAL : 0);
    nd_tensor *out = push_out(L, 2, cmp ? ND_DTYPE_U8 : x->dtype, name);
    nd_device_type dev = device_of(L, name, 2, (const nd_tensor *[]){x, out});
    check(L, ND_DEVICE_CALL(L, name, dev, nd_unary, out, x, op, p1, p2));
    nd_lua_account(L, out);
    return 1;
}

static int l_binary(lua_State *L)
{
    nd_binary_op op = (nd_binary_op)check_op(L, "binary");
    const char *name = nd_binary_name(op);
    nd_tensor *a = check_tensor(L, 3, name, "first input");
    nd_tensor *b = check_tensor(L, 4, name, "second input");
    double alpha = luaL_optnumber(L, 5, 1);
    int mask = op >= ND_BINARY_EQ;
    nd_tensor *out = push_out(L, 2, mask ? ND_DTYPE_U8 : promote(a->dtype, b->dtype), name);
    nd_device_type dev = device_of(L, name, 3, (const nd_tensor *[]){a, b, out});
    check(L, ND_DEVICE_CALL(L, name, dev, nd_binary, out, a, b, op, alpha));
    nd_lua_account(L, out);
    return 1;
}

static int l_ternary(lua_State *L)
{
    nd_ternary_op op = (nd_ternary_op)check_op(L, "ternary");
    const char *name = nd_ternary_name(op);
    nd_tensor *a = check_tensor(L, 3, name, "first input");
    nd_tensor *b = check_tensor(L, 4, name, "second input");
    nd_tensor *c = check_tensor(L, 5, name, "third input");
    double v = luaL_optnumber(L, 6, 1);
    nd_dtype dt = promote(b->dtype, c->dtype);
    if (op != ND_TERNARY_WHERE) dt = promote(a->dtype, dt);
    nd_tensor *out = push_out(L, 2, dt, name);
    nd_device_type dev = device_of(L, name, 4, (const nd_tensor *[]){a, b, c, out});
    check(L, ND_DEVICE_CALL(L, name, dev, nd_ternary, out, a, b, c, op, v));
    nd_lua_account(L, out);
    return 1;
}

static int l_fill(lua_State *L)
{
    nd_tensor *t = check_tensor(L, 1, "fill", "argument #1");
    double v;
    if (lua_isboolean(L, 2)) v = lua_toboolean(L, 2);
    else if (lua_type(L, 2) == LUA_TNUMBER) v = lua_tonumber(L, 2);
    else return nd_lua_error(L, "nd.fill: expected a number, got %s", luaL_typename(L, 2));
    nd_device_type dev = device_of(L, "fill", 1, (const nd_tensor *[]){t});
    check(L, ND_DEVICE_CALL(L, "fill", dev, nd_fill, t, v));
    lua_settop(L, 1);
    return 1;
}

/* ---- reductions ---- */

static nd_dtype reduce_dtype(nd_reduce_op op, nd_dtype xdt)
{
    int fl = nd_dtype_is_float(xdt);
    switch (op) {
    case ND_REDUCE_SUM: case ND_REDUCE_PROD:
        return fl ? xdt : ND_DTYPE_I64;
    case ND_REDUCE_MAX: case ND_REDUCE_MIN:
        return xdt;
    case ND_REDUCE_COUNT_NONZERO: case ND_REDUCE_ARGMAX: case ND_REDUCE_ARGMIN:
        return ND_DTYPE_I64;
    case ND_REDUCE_ANY: case ND_REDUCE_ALL:
        return ND_DTYPE_U8;
    default: /* mean, var, std, norm, logsumexp */
        return fl ? xdt : ND_DTYPE_F64;
    }
}

/* The p argument at idx: var/std take `unbiased` (default true), norm the order (default 2). */
static double reduce_param(lua_State *L, int idx, nd_reduce_op op)
{
    if (op == ND_REDUCE_VAR || op == ND_REDUCE_STD) {
        if (lua_isnoneornil(L, idx)) return 1;
        if (lua_isboolean(L, idx)) return lua_toboolean(L, idx);
        return luaL_checknumber(L, idx) != 0;
    }
    if (op == ND_REDUCE_NORM) return luaL_optnumber(L, idx, 2);
    return luaL_optnumber(L, idx, 0);
}

static void add_one(lua_State *L, nd_tensor *idx, nd_device_type dev)
{
    check(L, ND_DEVICE_CALL(L, "reduce", dev, nd_unary, idx, idx, ND_UNARY_ADD, 1, 0));
}

static int l_reduce(lua_State *L)
{
    nd_reduce_op op = (nd_reduce_op)check_op(L, "reduce");
    const char *name = nd_reduce_name(op);
    nd_tensor *x = check_tensor(L, 4, name, "input");
    int dim = check_dim(L, 5, x, name);
    double p = reduce_param(L, 6, op);
    int arg = op == ND_REDUCE_ARGMAX || op == ND_REDUCE_ARGMIN;
    int want_idx = arg || op == ND_REDUCE_MAX || op == ND_REDUCE_MIN;
    nd_tensor *values = NULL, *indices = NULL;
    lua_settop(L, 5);
    if (!arg) values = push_out(L, 2, reduce_dtype(op, x->dtype), name); /* at 6 */
    else lua_pushnil(L);
    if (want_idx) indices = push_out(L, 3, ND_DTYPE_I64, name); /* at 7 */
    nd_device_type dev = device_of(L, name, 3, (const nd_tensor *[]){x, values, indices});
    check(L, ND_DEVICE_CALL(L, name, dev, nd_reduce, values, indices, x, dim, op, p));
    if (values) nd_lua_account(L, values);
    if (indices) {
        nd_lua_account(L, indices);
        add_one(L, indices, dev);
    }
    if (arg) return 1;
    return want_idx ? 2 : 1;
}

static int l_reduceall(lua_State *L)
{
    nd_reduce_op op = (nd_reduce_op)check_op(L, "reduceall");
    const char *name = nd_reduce_name(op);
    nd_tensor *x = check_tensor(L, 2, name, "input");
    double p = reduce_param(L, 3, op);
    nd_scalar r;
    nd_device_type dev = device_of(L, name, 1, (const nd_tensor *[]){x});
    check(L, ND_DEVICE_CALL(L, name, dev, nd_reduce_all, &r, x, op, p));
    if (op == ND_REDUCE_ARGMAX || op == ND_REDUCE_ARGMIN) {
        lua_pushinteger(L, (lua_Integer)r.index + 1);
        return 1;
    }
    if (op == ND_REDUCE_ANY || op == ND_REDUCE_ALL) {
        lua_pushboolean(L, r.i != 0);
        return 1;
    }
    if (r.is_int) lua_pushinteger(L, (lua_Integer)r.i);
    else nd_lua_pushreal(L, r.f);
    if (op == ND_REDUCE_MAX || op == ND_REDUCE_MIN) {
        lua_pushinteger(L, (lua_Integer)r.index + 1);
        return 2;
    }
    return 1;
}

static int l_cumulate(lua_State *L)
{
    nd_cumulate_op op = (nd_cumulate_op)check_op(L, "cumulate");
    const char *name = nd_cumulate_name(op);
    nd_tensor *x = check_tensor(L, 3, name, "input");
    int dim = check_dim(L, 4, x, name);
    nd_tensor *out = push_out(L, 2, nd_dtype_is_float(x->dtype) ? x->dtype : ND_DTYPE_I64, name);
    nd_device_type dev = device_of(L, name, 2, (const nd_tensor *[]){x, out});
    check(L, ND_DEVICE_CALL(L, name, dev, nd_cumulate, out, x, dim, op));
    nd_lua_account(L, out);
    return 1;
}

/* core.samesize(a, b) -> true when a and b have the same sizes (cheap: no tables). */
static int l_samesize(lua_State *L)
{
    nd_tensor *a = check_tensor(L, 1, "samesize", "argument #1");
    nd_tensor *b = check_tensor(L, 2, "samesize", "argument #2");
    lua_pushboolean(L, nd_tensor_same_shape(a, b));
    return 1;
}

/* ---- registration ---- */

typedef const char *(*name_fn)(int);

static const char *unary_name(int op) { return nd_unary_name((nd_unary_op)op); }
static const char *binary_name(int op) { return nd_binary_name((nd_binary_op)op); }
static const char *ternary_name(int op) { return nd_ternary_name((nd_ternary_op)op); }
static const char *reduce_name(int op) { return nd_reduce_name((nd_reduce_op)op); }
static const char *cumulate_name(int op) { return nd_cumulate_name((nd_cumulate_op)op); }

/* core[field] = f with upvalue {name = op} over ops 0..count-1. */
static void register_family(lua_State *L, const char *field, lua_CFunction f, name_fn names, int count)
{
    lua_createtable(L, 0, count);
    for (int op = 0; op < count; op++) {
        lua_pushinteger(L, op);
        lua_setfield(L, -2, names(op));
    }
    lua_pushcclosure(L, f, 1);
    lua_setfield(L, -2, field);
}

void nd_lua_open_math(lua_State *L)
{
    register_family(L, "unary", l_unary, unary_name, ND_UNARY_COUNT);
    register_family(L, "binary", l_binary, binary_name, ND_BINARY_COUNT);
    register_family(L, "ternary", l_ternary, ternary_name, ND_TERNARY_COUNT);
    register_family(L, "reduce", l_reduce, reduce_name, ND_REDUCE_COUNT);
    register_family(L, "reduceall", l_reduceall, reduce_name, ND_REDUCE_COUNT);
    register_family(L, "cumulate", l_cumulate, cumulate_name, ND_CUMULATE_COUNT);
    static const luaL_Reg fns[] = {{"fill", l_fill}, {"samesize", l_samesize}, {NULL, NULL}};
    nd_lua_register(L, fns);
}
