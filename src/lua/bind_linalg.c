/* Lua binding of the linear algebra, index, sort and cat kernels (src/cpu/nd_cpu_linalg.h).
 *
 * Result arguments may be nil (a new tensor is made) or a tensor of the exact result shape (the Lua
 * layer resizes it first). Dimensions are 1-based here; index tensors coming from Lua hold 1-based
 * values of any dtype and are converted into 0-based int64 temporaries; index tensors going back
 * get +1. Temporaries live in userdata on the Lua stack, so a raised error frees them too. */
#include "nd_cpu_linalg.h"
#include "nd_lua.h"

/* ---- helpers ---- */

/* The result at arg idx (pushed again), or a new empty tensor of dtype dt pushed in its place. */
static nd_tensor *push_out(lua_State *L, int idx, nd_dtype dt)
{
    if (lua_isnoneornil(L, idx)) return nd_lua_pushempty(L, dt);
    nd_tensor *t = nd_lua_checktensor(L, idx);
    lua_pushvalue(L, idx);
    return t;
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

/* Pushes a 0-based int64 copy of the 1-based index tensor at arg idx. */
static nd_tensor *push_index0(lua_State *L, int idx)
{
    nd_tensor *src = nd_lua_checktensor(L, idx);
    nd_tensor *t = nd_lua_pushempty(L, ND_DTYPE_I64);
    if (src->ndim == 0) return t;
    nd_lua_check(L, nd_tensor_clone(t, src, ND_DTYPE_I64));
    nd_lua_account(L, t);
    add_to_all(t, -1);
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

typedef nd_status (*product_fn)(nd_tensor *, double, const nd_tensor *, double, const nd_tensor *, const nd_tensor *);

/* core.<op>(out|nil, beta, c|nil, alpha, x, y) -> out = beta * c + alpha * (x . y) */
static int product(lua_State *L, product_fn f)
{
    double beta = luaL_checknumber(L, 2), alpha = luaL_checknumber(L, 4);
    nd_tensor *c = lua_isnoneornil(L, 3) ? NULL : nd_lua_checktensor(L, 3);
    nd_tensor *x = nd_lua_checktensor(L, 5), *y = nd_lua_checktensor(L, 6);
    nd_tensor *out = push_out(L, 1, x->dtype);
    nd_lua_check(L, f(out, beta, c, alpha, x, y));
    nd_lua_account(L, out);
    return 1;
}

static int l_addmm(lua_State *L)
{
    return product(L, nd_gemm_cpu);
}
static int l_addmmref(lua_State *L)
{
    return product(L, nd_gemm_ref_cpu);
}
static int l_baddbmm(lua_State *L)
{
    return product(L, nd_bgemm_cpu);
}
static int l_addmv(lua_State *L)
{
    return product(L, nd_gemv_cpu);
}
static int l_addr(lua_State *L)
{
    return product(L, nd_ger_cpu);
}

/* core.dot(a, b) -> number (an integer for integer dtypes) */
static int l_dot(lua_State *L)
{
    nd_tensor *a = nd_lua_checktensor(L, 1), *b = nd_lua_checktensor(L, 2);
    double r;
    nd_lua_check(L, nd_dot_cpu(a, b, &r));
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
    nd_tensor *x = nd_lua_checktensor(L, 2);
    int dim = check_dim(L, 3, x);
    nd_tensor *idx = push_index0(L, 4);
    nd_tensor *out = push_out(L, 1, x->dtype);
    nd_lua_check(L, nd_index_select_cpu(out, x, dim, idx));
    nd_lua_account(L, out);
    return 1;
}

typedef nd_status (*index_src_fn)(nd_tensor *, int, const nd_tensor *, const nd_tensor *);

/* core.indexcopy / indexadd (x, dim, idx, src) -> x */
static int index_with_src(lua_State *L, index_src_fn f)
{
    nd_tensor *x = nd_lua_checktensor(L, 1);
    int dim = check_dim(L, 2, x);
    nd_tensor *src = nd_lua_checktensor(L, 4);
    nd_tensor *idx = push_index0(L, 3);
    nd_lua_check(L, f(x, dim, idx, src));
    lua_settop(L, 1);
    return 1;
}
static int l_indexcopy(lua_State *L)
{
    return index_with_src(L, nd_index_copy_cpu);
}
static int l_indexadd(lua_State *L)
{
    return index_with_src(L, nd_index_add_cpu);
}

/* core.indexfill(x, dim, idx, value) -> x */
static int l_indexfill(lua_State *L)
{
    nd_tensor *x = nd_lua_checktensor(L, 1);
    int dim = check_dim(L, 2, x);
    double v = luaL_checknumber(L, 4);
    nd_tensor *idx = push_index0(L, 3);
    nd_lua_check(L, nd_index_fill_cpu(x, dim, idx, v));
    lua_settop(L, 1);
    return 1;
}

/* core.gather(out|nil, x, dim, idx) -> out (idx's shape) */
static int l_gather(lua_State *L)
{
    nd_tensor *x = nd_lua_checktensor(L, 2);
    int dim = check_dim(L, 3, x);
    nd_tensor *idx = push_index0(L, 4);
    nd_tensor *out = push_out(L, 1, x->dtype);
    nd_lua_check(L, nd_gather_cpu(out, x, dim, idx));
    nd_lua_account(L, out);
    return 1;
}

/* core.scatter(x, dim, idx, src or value) -> x; core.scatteradd(x, dim, idx, src) -> x */
static int l_scatter(lua_State *L)
{
    nd_tensor *x = nd_lua_checktensor(L, 1);
    int dim = check_dim(L, 2, x);
    if (lua_type(L, 4) == LUA_TNUMBER) {
        double v = lua_tonumber(L, 4);
        nd_tensor *idx = push_index0(L, 3);
        nd_lua_check(L, nd_scatter_value_cpu(x, dim, idx, v));
    } else {
        nd_tensor *src = nd_lua_checktensor(L, 4);
        nd_tensor *idx = push_index0(L, 3);
        nd_lua_check(L, nd_scatter_cpu(x, dim, idx, src));
    }
    lua_settop(L, 1);
    return 1;
}

static int l_scatteradd(lua_State *L)
{
    return index_with_src(L, nd_scatter_add_cpu);
}

/* core.maskedfill(x, mask, value) -> x */
static int l_maskedfill(lua_State *L)
{
    nd_tensor *x = nd_lua_checktensor(L, 1), *m = nd_lua_checktensor(L, 2);
    nd_lua_check(L, nd_masked_fill_cpu(x, m, luaL_checknumber(L, 3)));
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
    const nd_tensor **xs = lua_newuserdatauv(L, sizeof(nd_tensor *) * (size_t)n, 0); /* freed by the GC */
    for (int i = 1; i <= n; i++) {
        lua_geti(L, 2, i);
        xs[i - 1] = nd_lua_totensor(L, -1);
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
    nd_lua_check(L, nd_cat_cpu(out, xs, n, (int)dim - 1));
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
    nd_tensor *v = push_out(L, 1, x->dtype);
    nd_tensor *ix = push_out(L, 2, ND_DTYPE_I64);
    return sort_results(L, v, ix, nd_sort_cpu(v, ix, x, dim, desc));
}

/* core.topk(values|nil, indices|nil, x, k, dim, largest) -> values, indices (sorted, 1-based) */
static int l_topk(lua_State *L)
{
    nd_tensor *x = nd_lua_checktensor(L, 3);
    lua_Integer k = luaL_checkinteger(L, 4);
    int dim = check_dim(L, 5, x);
    int largest = lua_toboolean(L, 6);
    nd_tensor *v = push_out(L, 1, x->dtype);
    nd_tensor *ix = push_out(L, 2, ND_DTYPE_I64);
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
                                             {NULL, NULL}};

void nd_lua_open_linalg(lua_State *L)
{
    nd_lua_register(L, nd_lua_linalg_fns);
}
