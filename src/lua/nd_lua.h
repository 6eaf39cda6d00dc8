/* The Lua 5.4 binding of the nd engine.
 *
 * Tensors are full userdata holding an nd_tensor by value (metatable "nd.Tensor"); the userdata
 * owns one storage reference, dropped by __gc / __close (one idempotent function).
 * Indices and dimensions are 1-based in Lua and 0-based in C: the binding converts, nowhere else.
 * C failures come back as nd_status + message and are raised here as Lua errors. */
#ifndef ND_LUA_H
#define ND_LUA_H

#include <lauxlib.h>
#include <lua.h>

#include "nd.h"

#define ND_LUA_TENSOR_MT "nd.Tensor"

int luaopen_nd_core(lua_State *L);

/* Device rule: nd_lua_checktensor / nd_lua_totensor return CPU tensors only and raise
 * "bad argument #i to 'op' (expected a CPU tensor, got a cuda:0 tensor 2x3 ...)" for a GPU
 * tensor, so a CPU kernel never sees a device pointer. Bindings that dispatch on the device
 * (ND_DEVICE_CALL below) fetch their tensors with the _any variants instead. */
/* The CPU tensor at idx, or a Lua error. */
nd_tensor *nd_lua_checktensor(lua_State *L, int idx);
/* The CPU tensor at idx, NULL when it is not a tensor; a Lua error for a GPU tensor. */
nd_tensor *nd_lua_totensor(lua_State *L, int idx);
/* Same on any device. */
nd_tensor *nd_lua_checktensor_any(lua_State *L, int idx);
nd_tensor *nd_lua_totensor_any(lua_State *L, int idx);
/* The device type shared by the n tensors ts (NULL entries and empty tensors are skipped;
 * ND_DEVICE_CPU when none has storage). Mixed devices raise
 * "<op>: expected all tensors on one device, got cuda:0 and cpu". */
nd_device_type nd_lua_device_of(lua_State *L, const char *op, int n, const nd_tensor *const *ts);
/* The device of the n tensors as an nd_device (index included), same rule. */
nd_device nd_lua_device_of_dev(lua_State *L, const char *op, int n, const nd_tensor *const *ts);
/* The CUDA backend is a plugin (build/lib/nd/libnd_cuda.so, built with CUDA=1) loaded on first
 * use, so that nd starts fast and runs where the CUDA libraries are missing.
 * nd_lua_cuda_load: 1 when loaded (0 and *why set otherwise; never raises).
 * nd_lua_cuda_sym: the address of a backend function, or a Lua error naming op when the backend
 * or the function is missing. */
int nd_lua_cuda_load(const char **why);
void *nd_lua_cuda_sym(lua_State *L, const char *op, const char *name);
/* nd_lua_cuda_ready: 1 when the plugin is loaded, a GPU is present and nd_cuda_init ran
 * (installing the allocator and copy hooks); 0 and *why otherwise ("no CUDA-capable device is
 * detected", "this build has no CUDA backend ..."); never raises, tried once.
 * nd_lua_cuda_init: the same, raising "CUDA is not available: <why>" when it is not. Call one of
 * them before creating a GPU tensor. */
int nd_lua_cuda_ready(const char **why);
void nd_lua_cuda_init(lua_State *L);
/* Seeds the device generator; before the backend is initialised the seed is kept and applied at
 * initialisation (so nd.manualSeed does not load the plugin). */
void nd_lua_cuda_manual_seed(uint64_t seed);
/* st = ND_DEVICE_CALL(L, op, devtype, fn, args...) calls fn_cuda(args) (from the plugin, looked up
 * once per call site) for ND_DEVICE_CUDA and fn_cpu(args) otherwise. fn_cuda must be declared
 * (the family header in src/cuda); a missing one is a Lua error, not a link error. */
#define ND_DEVICE_CALL(L, op, dev, fn, ...)                                                    \
    ((dev) == ND_DEVICE_CUDA ? __extension__({                                                 \
        static void *nd_sym_;                                                                  \
        if (!nd_sym_) nd_sym_ = nd_lua_cuda_sym((L), (op), #fn "_cuda");                       \
        ((__typeof__(&fn##_cuda))nd_sym_)(__VA_ARGS__);                                        \
    })                                                                                         \
                             : fn##_cpu(__VA_ARGS__))
/* Pushes a new userdata holding an empty tensor of dtype dt; fill it in place. */
nd_tensor *nd_lua_pushempty(lua_State *L, nd_dtype dt);
/* Pushes a new contiguous tensor (zero-filled when zero != 0); raises on failure. */
nd_tensor *nd_lua_pushnew(lua_State *L, nd_dtype dt, int ndim, const int64_t *size, nd_device dev, int zero);
/* Pushes a view sharing src's storage. */
nd_tensor *nd_lua_pushview(lua_State *L, const nd_tensor *src);
/* Reports storage bytes not yet reported to Lua's collector (call after filling a pushed tensor
 * with a fresh storage; nd_lua_pushnew does it). */
void nd_lua_account(lua_State *L, nd_tensor *t);
/* Resizes t in place to a contiguous (dt, ndim, size) layout. strict (nn OUT arguments): t is kept
 * when already contiguous with that shape and dtype on the CPU, its storage reused from offset 0
 * when unshared, on the CPU and large enough. Otherwise (core.resize, dt == t->dtype): t is kept
 * when it has the shape (any strides), its storage reused from t's offset whenever it fits, shared
 * or not. Else a fresh storage (CPU when strict, t's device otherwise), reported via
 * nd_lua_account. */
void nd_lua_resize(lua_State *L, nd_tensor *t, nd_dtype dt, int ndim, const int64_t *size, int strict);
/* The strict rule of nd_lua_resize on device dev (OUT arguments of device-dispatched ops): t is
 * kept when contiguous with that shape and dtype on dev, its storage reused from offset 0 when
 * unshared, on dev and large enough; else a fresh storage on dev. */
void nd_lua_resize_on(lua_State *L, nd_tensor *t, nd_device dev, nd_dtype dt, int ndim, const int64_t *size);
/* Pushes a real result: a Lua integer when v is integral and exact, else a float. */
void nd_lua_pushreal(lua_State *L, double v);
/* Raises a Lua error with a formatted message (lua_pushfstring formats: %s %d %f %p %c %%),
 * without a position prefix: the traceback tells where. */
int nd_lua_error(lua_State *L, const char *fmt, ...);
/* Raises a Lua error with the engine's message when st != ND_OK. */
void nd_lua_check(lua_State *L, nd_status st);
/* Reads a 1-based dimension argument and returns it 0-based, checked against t->ndim
 * (allow_end: dim may equal ndim+1, for unsqueeze). */
int nd_lua_checkdim(lua_State *L, int idx, const nd_tensor *t, int allow_end);
/* Reads a dtype name ("float32", "float64", "int64", "uint8"); default when absent. */
nd_dtype nd_lua_optdtype(lua_State *L, int idx, nd_dtype def);
/* Reads a size list from a table or from the integer arguments idx..top. Returns ndim. */
int nd_lua_checksizes(lua_State *L, int idx, int64_t *size);

/* Each bind_*.c file registers its functions into the table on top of the stack. */
void nd_lua_register(lua_State *L, const luaL_Reg *fns);
void nd_lua_open_tensor(lua_State *L);   /* bind_tensor.c: creation, views, copies, rng, memory */
void nd_lua_open_math(lua_State *L) __attribute__((weak));     /* bind_math.c: elementwise and reductions */
void nd_lua_open_linalg(lua_State *L) __attribute__((weak));   /* bind_linalg.c: blas, index ops, sort, cat */
void nd_lua_open_cuda(lua_State *L) __attribute__((weak));     /* bind_cuda.c: nd.cuda, moving tensors */

#endif
