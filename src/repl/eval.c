/* Protected calls with traceback and Ctrl-C, evaluation of REPL chunks, auto-print, pipe mode. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "repl.h"

static lua_State *volatile g_state;

void nd_repl_set_state(lua_State *L)
{
    g_state = L;
}

/* ---- Ctrl-C: the signal handler arms a hook, the hook raises the error ---- */

static void interrupt_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, "interrupted!");
}

/* Runs in the signal handler: lua_sethook only stores the hook, mask and count, which is how
 * Lua code is interrupted from a signal (the hook then raises the error inside Lua). */
static void on_sigint(int sig)
{
    (void)sig;
    if (g_state) lua_sethook(g_state, interrupt_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
}

/* Message handler: turns any error value into a string and appends a traceback. */
static int msg_handler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int nd_repl_docall(lua_State *L, int narg, int nres)
{
    int base = lua_gettop(L) - narg;
    struct sigaction sa, old;
    int status;

    lua_pushcfunction(L, msg_handler);
    lua_insert(L, base);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a blocking read returns so the hook can fire */
    sigaction(SIGINT, &sa, &old);
    status = lua_pcall(L, narg, nres, base);
    sigaction(SIGINT, &old, NULL);
    if (lua_gethook(L) == interrupt_hook) /* a signal that came too late to fire */
        lua_sethook(L, NULL, 0, 0);
    lua_remove(L, base);
    return status;
}

void nd_repl_report(lua_State *L, const char *prefix)
{
    const char *msg = lua_tostring(L, -1);
    fflush(stdout);
    fprintf(stderr, "%s%s\n", prefix ? prefix : "", msg ? msg : "(error object is not a string)");
    fflush(stderr);
    lua_pop(L, 1);
}

/* ---- auto-print ---- */

/* Integers as Lua prints them; integer-valued floats below 2^53 without ".0"; others %.14g. */
static void format_number(lua_State *L, int idx, char *buf, size_t size)
{
    if (lua_isinteger(L, idx)) {
        snprintf(buf, size, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
        return;
    }
    double v = (double)lua_tonumber(L, idx);
    if (v == floor(v) && fabs(v) < 9007199254740992.0)
        snprintf(buf, size, "%.0f", v);
    else
        snprintf(buf, size, "%.14g", v);
}

/* Pushes the text of value idx through the global tostring (so __tostring applies). */
static const char *to_text(lua_State *L, int idx, size_t *len)
{
    lua_getglobal(L, "tostring");
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        return luaL_tolstring(L, idx, len);
    }
    lua_pushvalue(L, idx);
    lua_call(L, 1, 1);
    const char *s = lua_tolstring(L, -1, len);
    if (s == NULL) luaL_error(L, "'tostring' must return a string");
    return s;
}

/* Prints all its arguments, tab separated (called protected, so __tostring may fail). */
static int print_results(lua_State *L)
{
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        char num[64];
        const char *s;
        size_t len;
        if (lua_type(L, i) == LUA_TNUMBER) {
            format_number(L, i, num, sizeof num);
            s = num;
            len = strlen(num);
        } else {
            s = to_text(L, i, &len);
        }
        if (i > 1) fputc('\t', stdout);
        fwrite(s, 1, len, stdout);
        if (s != num) lua_pop(L, 1);
    }
    if (n > 0) fputc('\n', stdout);
    fflush(stdout);
    return 0;
}

/* ---- evaluation ---- */

static int ends_with_semicolon(const char *s, size_t len)
{
    while (len > 0 && strchr(" \t\r\n\f\v", s[len - 1]))
        len--;
    return len > 0 && s[len - 1] == ';';
}

/* A syntax error is "incomplete input" when the parser hit the end of the chunk. */
static int is_incomplete(lua_State *L)
{
    static const char mark[] = "<eof>";
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    return msg && len >= sizeof mark - 1 && strcmp(msg + len - (sizeof mark - 1), mark) == 0;
}

/* Compiles "return <chunk>"; pushes the function and returns 1, or pushes nothing and returns 0. */
static int load_as_expression(lua_State *L, const char *chunk, size_t len)
{
    lua_pushliteral(L, "return ");
    lua_pushlstring(L, chunk, len);
    lua_concat(L, 2);
    size_t n;
    const char *code = lua_tolstring(L, -1, &n);
    int st = luaL_loadbuffer(L, code, n, "=stdin");
    lua_remove(L, -2);
    if (st != LUA_OK) {
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}

/* Runs the function on top and prints its results unless quiet. */
static int run_and_print(lua_State *L, int quiet)
{
    int base = lua_gettop(L) - 1;
    if (nd_repl_docall(L, 0, LUA_MULTRET) != LUA_OK) {
        nd_repl_report(L, NULL);
        return ND_REPL_ERROR;
    }
    int n = lua_gettop(L) - base;
    if (quiet || n == 0) {
        lua_settop(L, base);
        return ND_REPL_OK;
    }
    luaL_checkstack(L, 1, "too many results to print");
    lua_pushcfunction(L, print_results);
    lua_insert(L, base + 1);
    if (nd_repl_docall(L, n, 0) != LUA_OK) {
        nd_repl_report(L, NULL);
        return ND_REPL_ERROR;
    }
    return ND_REPL_OK;
}

int nd_repl_eval(lua_State *L, const char *chunk, size_t len, int final)
{
    int quiet = ends_with_semicolon(chunk, len);
    if (!load_as_expression(L, chunk, len)) {
        int st = luaL_loadbuffer(L, chunk, len, "=stdin");
        if (st == LUA_ERRSYNTAX && !final && is_incomplete(L)) {
            lua_pop(L, 1);
            return ND_REPL_INCOMPLETE;
        }
        if (st != LUA_OK) {
            nd_repl_report(L, NULL);
            return ND_REPL_ERROR;
        }
    }
    return run_and_print(L, quiet);
}

/* ---- pipe mode ---- */

static int is_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!strchr(" \t\r\f\v", s[i])) return 0;
    return 1;
}

int nd_repl_pipe(lua_State *L, FILE *in)
{
    char *line = NULL, *chunk = NULL;
    size_t line_cap = 0, len = 0, cap = 0;
    ssize_t n;
    int failed = 0;

    while ((n = getline(&line, &line_cap, in)) >= 0) {
        if (n > 0 && line[n - 1] == '\n') n--;
        if (len == 0 && is_blank(line, (size_t)n)) continue;
        if (len + (size_t)n + 2 > cap) {
            cap = (len + (size_t)n + 2) * 2;
            char *p = realloc(chunk, cap);
            if (p == NULL) {
                fprintf(stderr, "nd: out of memory\n");
                failed = 1;
                break;
            }
            chunk = p;
        }
        if (len > 0) chunk[len++] = '\n';
        memcpy(chunk + len, line, (size_t)n);
        len += (size_t)n;
        int st = nd_repl_eval(L, chunk, len, 0);
        if (st == ND_REPL_INCOMPLETE) continue;
        failed |= st == ND_REPL_ERROR;
        len = 0;
    }
    if (len > 0 && nd_repl_eval(L, chunk, len, 1) != ND_REPL_OK)
        failed = 1; /* input ended inside an unfinished chunk */
    free(line);
    free(chunk);
    return failed;
}
