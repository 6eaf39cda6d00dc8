/* Lua binding of the linear algebra, index, sort and cat kernels (src/cpu/nd_cpu_linalg.h).
 *
 * Result arguments may be nil (a new tensor is made) or a tensor of the exact result shape (the Lua
 * layer resizes it first). Dimensions are 1-based here; index tensors coming from Lua hold 1-based
 * values of any dtype and are converted into 0-based int64 temporaries; index tensors going back
 * get +1. Temporaries live in userdata on the Lua stack, so a raised error frees them too.
 *
 * Devices: products, dot, the index ops, masked fill and cat run on the device of their tensors
 * (ND_DEVICE_CALL: the _cpu kernel or its _cuda twin, src/cuda/nd_cuda_math.h); a nil result is
 * made on that device and index tensors may sit on the CPU for a GPU op (they are uploaded).
 * addmmref, masked select/copy, nonzero, sort and topk take CPU tensors only. */
#include "nd_cpu_linalg.h"
#include "nd_cpu_math.h"
#include "nd_cuda.h"
#include "nd_cuda_math.h"
#include "nd_lua.h"

/* ---- helpers ---- */

/* The result at arg idx (pushed again), or a new empty tensor of dtype dt pushed in its place. */
static nd_tensor *push_out(lua_State *L, int idx, nd_dtype dt)
{
    if (lua_isnoneornil(L, idx)) return nd_lua_pushempty(L, dt);
    nd_tensor *t = nd_lua_checktensor_any(L, idx);
    lua_pushvalue(L, idx);
    return t;
}

/* push_out for the CPU-only ops (sort, topk): a result on a GPU is rejected as an argument. */
static nd_tensor *push_out_cpu(lua_State *L, int idx, nd_dtype dt)
{
    if (!lua_isnoneornil(L, idx)) nd_lua_checktensor(L, idx);
    return push_out(L, idx, dt);
}

/* The device of the tensors (NULL and storage-less ones skipped); mixed devices raise. */
static nd_device device_of(lua_State *L, const char *op, int n, const nd_tensor *const *ts)
{
    return nd_lua_device_of_dev(L, op, n, ts);
}

/* The tensor at arg idx (any device), or NULL when nil. */
static nd_tensor *opt_tensor(lua_State *L, int idx)
{
    return lua_isnoneornil(L, idx) ? NULL : nd_lua_checktensor_any(L, idx);
}

static void add_to_all(nd_tensor *t, int64_t v)
{
    if (t->ndim == 0 || t->dtype != ND_DTYPE_I64) return;
    nd_iter it;
    const nd_tensor *ops[1] = {t};
    nd_iter_init(&it, 1, ops);
    while (nd_iter_next(&it)) {
        int64_t *p = (int64_t *)it.ptr[0];
        for (int64_t i = 0; i < it.inner; i++)
            p[i * it.istride[0]] += v;
    }
}

/* Pushes a 0-based int64 copy, on the CPU, of the 1-based index tensor src. */
static nd_tensor *push_index0_cpu(lua_State *L, const nd_tensor *src)
{
    nd_tensor *t = nd_lua_pushempty(L, ND_DTYPE_I64);
    if (src->ndim == 0) return t;
    nd_lua_check(L, nd_tensor_clone(t, src, ND_DTYPE_I64));
    nd_lua_account(L, t);
    add_to_all(t, -1);
    return t;
}

/* Pushes a 0-based int64 copy of the 1-based index tensor at arg idx, on dev (the device of the
 * indexed tensor): converted on the GPU when it is there already, uploaded when it is on the CPU
 * (Lua tables of indices become CPU tensors). op names the caller in errors. */
static nd_tensor *push_index0(lua_State *L, int idx, nd_device dev, const char *op)
{
    if (dev.type == ND_DEVICE_CPU) return push_index0_cpu(L, nd_lua_checktensor(L, idx));
    nd_tensor *src = nd_lua_checktensor_any(L, idx);
    nd_device sd = nd_tensor_device(src);
    if (src->ndim == 0 || sd.type == ND_DEVICE_CUDA) {
        nd_tensor *t = nd_lua_pushempty(L, ND_DTYPE_I64);
        if (src->ndim == 0) return t;
        if (sd.index != dev.index)
            nd_lua_error(L, "%s: the indices are on cuda:%d, the tensor on cuda:%d", op, sd.index, dev.index);
        nd_lua_check(L, ND_DEVICE_CALL(L, op, ND_DEVICE_CUDA, nd_unary, t, src, ND_UNARY_ADD, -1, 0));
        nd_lua_account(L, t);
        return t;
    }
    nd_tensor *h = push_index0_cpu(L, src); /* stays on the stack below t until the call returns */
    nd_tensor *t = nd_lua_pushempty(L, ND_DTYPE_I64);
    nd_lua_check(L, nd_tensor_new(t, ND_DTYPE_I64, h->ndim, h->size, dev, 0));
    nd_lua_check(L, nd_tensor_copy(t, h));
    return t;
}

/* A dimension argument: 1-based, negative counts from the end (-1 = last); checked against t. */
static int check_dim(lua_State *L, int idx, const nd_tensor *t)
{
    lua_Integer d = luaL_checkinteger(L, idx);
    if (d < 0) d += t->ndim + 1;
    if (d < 1 || d > t->ndim) {
        char s[ND_SHAPE_STR_MAX];
        nd_lua_error(L, "dimension %d out of range for a %d-d tensor (%s)", (int)luaL_checkinteger(L, idx), t->ndim,
                     nd_tensor_shape_str(t, s, sizeof s));
    }
    return (int)d - 1;
}

/* ---- products ---- */

typedef enum { PRODUCT_GEMM, PRODUCT_GEMM_REF, PRODUCT_BGEMM, PRODUCT_GEMV, PRODUCT_GER } product_kind;

/* core.<op>(out|nil, beta, c|nil, alpha, x, y) -> out = beta * c + alpha * (x . y)
 * (c only matters when beta != 0; gemm_ref runs on the CPU only). */
static int product(lua_State *L, product_kind kind)
{
    static const char *const names[] = {"addmm", "addmm", "baddbmm", "addmv", "addr"};
    const char *op = names[kind];
    double beta = luaL_checknumber(L, 2), alpha = luaL_checknumber(L, 4);
    int cpu_only = kind == PRODUCT_GEMM_REF;
    nd_tensor *c = lua_isnoneornil(L, 3) ? NULL : cpu_only ? nd_lua_checktensor(L, 3) : nd_lua_checktensor_any(L, 3);
    nd_tensor *x = cpu_only ? nd_lua_checktensor(L, 5) : nd_lua_checktensor_any(L, 5);
    nd_tensor *y = cpu_only ? nd_lua_checktensor(L, 6) : nd_lua_checktensor_any(L, 6);
    if (cpu_only && !lua_isnoneornil(L, 1)) nd_lua_checktensor(L, 1);
    nd_tensor *out = push_out(L, 1, x->dtype);
    nd_device_type dev = device_of(L, op, 4, (const nd_tensor *[]){x, y, beta != 0 ? c : NULL, out}).type;
    nd_status st = ND_OK;
    switch (kind) {
    case PRODUCT_GEMM:
        st = ND_DEVICE_CALL(L, op, dev, nd_gemm, out, beta, c, alpha, x, y);
        break;
    case PRODUCT_GEMM_REF:
        st = nd_gemm_ref_cpu(out, beta, c, alpha, x, y);
        break;
    case PRODUCT_BGEMM:
        st = ND_DEVICE_CALL(L, op, dev, nd_bgemm, out, beta, c, alpha, x, y);
        break;
    case PRODUCT_GEMV:
        st = ND_DEVICE_CALL(L, op, dev, nd_gemv, out, beta, c, alpha, x, y);
        break;
    case PRODUCT_GER:
        st = ND_DEVICE_CALL(L, op, dev, nd_ger, out, beta, c, alpha, x, y);
        break;
    }
    nd_lua_check(L, st);
    nd_lua_account(L, out);
    return 1;
}

static int l_addmm(lua_State *L)
{
    return product(L, PRODUCT_GEMM);
}
static int l_addmmref(lua_State *L)
{
    return product(L, PRODUCT_GEMM_REF);
}
static int l_baddbmm(lua_State *L)
{
    return product(L, PRODUCT_BGEMM);
}
static int l_addmv(lua_State *L)
{
    return product(L, PRODUCT_GEMV);
}
static int l_addr(lua_State *L)
{
    return product(L, PRODUCT_GER);
}

/* core.dot(a, b) -> number (an integer for integer dtypes) */
static int l_dot(lua_State *L)
{
    nd_tensor *a = nd_lua_checktensor_any(L, 1), *b = nd_lua_checktensor_any(L, 2);
    double r;
    nd_device_type dev = device_of(L, "dot", 2, (const nd_tensor *[]){a, b}).type;
    nd_lua_check(L, ND_DEVICE_CALL(L, "dot", dev, nd_dot, a, b, &r));
    if (nd_dtype_is_float(a->dtype))
        nd_lua_pushreal(L, r);
    else
        lua_pushinteger(L, (lua_Integer)r);
    return 1;
}

/* ---- index operations ---- */

/* core.indexselect(out|nil, x, dim, idx) -> out */
static int l_indexselect(lua_State *L)
{
    nd_tensor *x = nd_lua_checktensor_any(L, 2);
    int dim = check_dim(L, 3, x);
    nd_device dev = device_of(L, "index_select", 2, (const nd_tensor *[]){x, opt_tensor(L, 1)});
    nd_tensor *idx = push_index0(L, 4, dev, "index_select");
    nd_tensor *out = push_out(L, 1, x->dtype);
    nd_lua_check(L, ND_DEVICE_CALL(L, "index_select", dev.type, nd_index_select, out, x, dim, idx));
    nd_lua_account(L, out);
    return 1;
}

/* core.indexcopy / indexadd (x, dim, idx, src) -> x; core.scatteradd likewise. */
typedef enum { WITH_SRC_INDEX_COPY, WITH_SRC_INDEX_ADD, WITH_SRC_SCATTER_ADD } with_src_kind;

static int index_with_src(lua_State *L, with_src_kind kind)
{
    static const char *const names[] = {"index_copy", "index_add", "scatter_add"};
    const char *op = names[kind];
    nd_tensor *x = nd_lua_checktensor_any(L, 1);
    int dim = check_dim(L, 2, x);
    nd_tensor *src = nd_lua_checktensor_any(L, 4);
    nd_device dev = device_of(L, op, 2, (const nd_tensor *[]){x, src});
    nd_tensor *idx = push_index0(L, 3, dev, op);
    nd_status st = ND_OK;
    switch (kind) {
    case WITH_SRC_INDEX_COPY:
        st = ND_DEVICE_CALL(L, op, dev.type, nd_index_copy, x, dim, idx, src);
        break;
    case WITH_SRC_INDEX_ADD:
        st = ND_DEVICE_CALL(L, op, dev.type, nd_index_add, x, dim, idx, src);
        break;
    case WITH_SRC_SCATTER_ADD:
        st = ND_DEVICE_CALL(L, op, dev.type, nd_scatter_add, x, dim, idx, src);
        break;
    }
    nd_lua_check(L, st);
    lua_settop(L, 1);
    return 1;
}
static int l_indexcopy(lua_State *L)
{
    return index_with_src(L, WITH_SRC_INDEX_COPY);
}
static int l_indexadd(lua_State *L)
{
    return index_with_src(L, WITH_SRC_INDEX_ADD);
}

/* core.indexfill(x, dim, idx, value) -> x */
static int l_indexfill(lua_State *L)
{
    nd_tensor *x = nd_lua_checktensor_any(L, 1);
    int dim = check_dim(L, 2, x);
    double v = luaL_checknumber(L, 4);
    nd_device dev = device_of(L, "index_fill", 1, (const nd_tensor *[]){x});
    nd_tensor *idx = push_index0(L, 3, dev, "index_fill");
    nd_lua_check(L, ND_DEVICE_CALL(L, "index_fill", dev.type, nd_index_fill, x, dim, idx, v));
    lua_settop(L, 1);
    return 1;
}

/* core.gather(out|nil, x, dim, idx) -> out (idx's shape) */
static int l_gather(lua_State *L)
{
    nd_tensor *x = nd_lua_checktensor_any(L, 2);
    int dim = check_dim(L, 3, x);
    nd_device dev = device_of(L, "gather", 2, (const nd_tensor *[]){x, opt_tensor(L, 1)});
    nd_tensor *idx = push_index0(L, 4, dev, "gather");
    nd_tensor *out = push_out(L, 1, x->dtype);
    nd_lua_check(L, ND_DEVICE_CALL(L, "gather", dev.type, nd_gather, out, x, dim, idx));
    nd_lua_account(L, out);
    return 1;
}

/* core.scatter(x, dim, idx, src or value) -> x; core.scatteradd(x, dim, idx, src) -> x */
static int l_scatter(lua_State *L)
{
    nd_tensor *x = nd_lua_checktensor_any(L, 1);
    int dim = check_dim(L, 2, x);
    if (lua_type(L, 4) == LUA_TNUMBER) {
        double v = lua_tonumber(L, 4);
        nd_device dev = device_of(L, "scatter", 1, (const nd_tensor *[]){x});
        nd_tensor *idx = push_index0(L, 3, dev, "scatter");
        nd_lua_check(L, ND_DEVICE_CALL(L, "scatter", dev.type, nd_scatter_value, x, dim, idx, v));
    } else {
        nd_tensor *src = nd_lua_checktensor_any(L, 4);
        nd_device dev = device_of(L, "scatter", 2, (const nd_tensor *[]){x, src});
        nd_tensor *idx = push_index0(L, 3, dev, "scatter");
        nd_lua_check(L, ND_DEVICE_CALL(L, "scatter", dev.type, nd_scatter, x, dim, idx, src));
    }
    lua_settop(L, 1);
    return 1;
}

static int l_scatteradd(lua_State *L)
{
    return index_with_src(L, WITH_SRC_SCATTER_ADD);
}

/* core.maskedfill(x, mask, value) -> x */
static int l_maskedfill(lua_State *L)
{
    nd_tensor *x = nd_lua_checktensor_any(L, 1), *m = nd_lua_checktensor_any(L, 2);
    double v = luaL_checknumber(L, 3);
    nd_device_type dev = device_of(L, "masked_fill", 2, (const nd_tensor *[]){x, m}).type;
    nd_lua_check(L, ND_DEVICE_CALL(L, "masked_fill", dev, nd_masked_fill, x, m, v));
    lua_settop(L, 1);
    return 1;
}

/* core.maskedselect(x, mask) -> new 1-d tensor (empty when nothing is selected) */
static int l_maskedselect(lua_State *L)
{
    nd_tensor *x = nd_lua_checktensor(L, 1), *m = nd_lua_checktensor(L, 2);
    nd_tensor *out = nd_lua_pushempty(L, x->dtype);
    nd_lua_check(L, nd_masked_select_cpu(out, x, m));
    nd_lua_account(L, out);
    return 1;
}

/* core.maskedcopy(x, mask, src) -> x */
static int l_maskedcopy(lua_State *L)
{
    nd_tensor *x = nd_lua_checktensor(L, 1), *m = nd_lua_checktensor(L, 2), *src = nd_lua_checktensor(L, 3);
    nd_lua_check(L, nd_masked_copy_cpu(x, m, src));
    lua_settop(L, 1);
    return 1;
}

/* core.nonzero(x) -> int64 n x ndim of 1-based coordinates (empty when none) */
static int l_nonzero(lua_State *L)
{
    nd_tensor *x = nd_lua_checktensor(L, 1);
    nd_tensor *out = nd_lua_pushempty(L, ND_DTYPE_I64);
    nd_lua_check(L, nd_nonzero_cpu(out, x));
    nd_lua_account(L, out);
    add_to_all(out, 1);
    return 1;
}

/* core.cat(out|nil, {tensors}, dim) -> out; dim is 1-based (the Lua layer resolves defaults). */
static int l_cat(lua_State *L)
{
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer dim = luaL_checkinteger(L, 3);
    int n = (int)luaL_len(L, 2);
    if (n < 1) return nd_lua_error(L, "cat: expected at least one tensor");
    const nd_tensor **xs = lua_newuserdatauv(L, sizeof(nd_tensor *) * (size_t)(n + 1), 0); /* freed by the GC */
    for (int i = 1; i <= n; i++) {
        lua_geti(L, 2, i);
        xs[i - 1] = nd_lua_totensor_any(L, -1);
        if (!xs[i - 1]) return nd_lua_error(L, "cat: entry %d is a %s, not a tensor", i, luaL_typename(L, -1));
        lua_pop(L, 1); /* the table keeps it alive */
    }
    nd_dtype dt = xs[0]->dtype;
    for (int i = 0; i < n; i++)
        if (xs[i]->ndim > 0) {
            dt = xs[i]->dtype;
            break;
        }
    nd_tensor *out = push_out(L, 1, dt);
    xs[n] = out; /* the device check covers the result too */
    nd_device_type dev = device_of(L, "cat", n + 1, xs).type;
    nd_lua_check(L, ND_DEVICE_CALL(L, "cat", dev, nd_cat, out, xs, n, (int)dim - 1));
    nd_lua_account(L, out);
    return 1;
}

/* ---- sorting ---- */

static int sort_results(lua_State *L, nd_tensor *v, nd_tensor *ix, nd_status st)
{
    nd_lua_check(L, st);
    nd_lua_account(L, v);
    nd_lua_account(L, ix);
    add_to_all(ix, 1);
    return 2;
}

/* core.sort(values|nil, indices|nil, x, dim, descending) -> values, indices (1-based) */
static int l_sort(lua_State *L)
{
    nd_tensor *x = nd_lua_checktensor(L, 3);
    int dim = check_dim(L, 4, x);
    int desc = lua_toboolean(L, 5);
    nd_tensor *v = push_out_cpu(L, 1, x->dtype);
    nd_tensor *ix = push_out_cpu(L, 2, ND_DTYPE_I64);
    return sort_results(L, v, ix, nd_sort_cpu(v, ix, x, dim, desc));
}

/* core.topk(values|nil, indices|nil, x, k, dim, largest) -> values, indices (sorted, 1-based) */
static int l_topk(lua_State *L)
{
    nd_tensor *x = nd_lua_checktensor(L, 3);
    lua_Integer k = luaL_checkinteger(L, 4);
    int dim = check_dim(L, 5, x);
    int largest = lua_toboolean(L, 6);
    nd_tensor *v = push_out_cpu(L, 1, x->dtype);
    nd_tensor *ix = push_out_cpu(L, 2, ND_DTYPE_I64);
    return sort_results(L, v, ix, nd_topk_cpu(v, ix, x, dim, k, largest));
}

/* ---- threads ---- */

static int l_setnumthreads(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    if (n < 1) return nd_lua_error(L, "setnumthreads: need at least 1 thread, got %d", (int)n);
    nd_blas_set_threads((int)n);
    return 0;
}

static int l_getnumthreads(lua_State *L)
{
    lua_pushinteger(L, nd_blas_get_threads());
    return 1;
}

static int l_blasconfig(lua_State *L)
{
    lua_pushstring(L, nd_blas_config());
    return 1;
}

/* core.cudatf32([on]) -> the previous setting: TF32 tensor cores for float32 products on the GPU
 * (off by default: strict float32). Without an argument only reads it. Raises without the CUDA
 * backend. */
static int l_cudatf32(lua_State *L)
{
    int (*get)(void) = (int (*)(void))nd_lua_cuda_sym(L, "cudatf32", "nd_cuda_get_tf32");
    int prev = get();
    if (!lua_isnoneornil(L, 1)) {
        int (*set)(int) = (int (*)(int))nd_lua_cuda_sym(L, "cudatf32", "nd_cuda_set_tf32");
        set(lua_toboolean(L, 1));
    }
    lua_pushboolean(L, prev);
    return 1;
}

static const luaL_Reg nd_lua_linalg_fns[] = {{"addmm", l_addmm},
                                             {"addmmref", l_addmmref},
                                             {"baddbmm", l_baddbmm},
                                             {"addmv", l_addmv},
                                             {"addr", l_addr},
                                             {"dot", l_dot},
                                             {"indexselect", l_indexselect},
                                             {"indexcopy", l_indexcopy},
                                             {"indexadd", l_indexadd},
                                             {"indexfill", l_indexfill},
                                             {"gather", l_gather},
                                             {"scatter", l_scatter},
                                             {"scatteradd", l_scatteradd},
                                             {"maskedfill", l_maskedfill},
                                             {"maskedselect", l_maskedselect},
                                             {"maskedcopy", l_maskedcopy},
                                             {"nonzero", l_nonzero},
                                             {"cat", l_cat},
                                             {"sort", l_sort},
                                             {"topk", l_topk},
                                             {"setnumthreads", l_setnumthreads},
                                             {"getnumthreads", l_getnumthreads},
                                             {"blasconfig", l_blasconfig},
                                             {"cudatf32", l_cudatf32},
                                             {NULL, NULL}};

void nd_lua_open_linalg(lua_State *L)
{
    nd_lua_register(L, nd_lua_linalg_fns);
}
