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

/* The tensor at idx, or a Lua error naming `what` ("argument #2 of mm"). */
nd_tensor *nd_lua_checktensor(lua_State *L, int idx);
/* The tensor at idx or NULL when it is not one. */
nd_tensor *nd_lua_totensor(lua_State *L, int idx);
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

#endif
