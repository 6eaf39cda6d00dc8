/* nd: the interpreter. Options, state setup and scripts; the REPL is in interactive.c/eval.c.
 *
 *   nd [options] [script [args]]    see usage() below
 *
 * Ctrl-C while a script or -e runs raises the Lua error "interrupted!": the script stops with
 * "nd: interrupted!" and a traceback, exit status 1. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "repl.h"

enum { HAS_I = 1, HAS_V = 2, HAS_E = 4, HAS_L = 8, HAS_COMPLETE = 16 };

typedef struct {
    int argc;
    char **argv;
    int script; /* index of the script in argv, 0 when none */
    int flags;
    int status; /* exit status */
} nd_repl_args;

static void usage(FILE *f)
{
    fputs("usage: nd [options] [script [args]]\n"
          "  -e code     run 'code' (several -e run in order)\n"
          "  -l mod      require 'mod' into global 'mod' (-l g=mod: into global 'g')\n"
          "  -i          enter the REPL after running script and -e\n"
          "  -v          print the version\n"
          "  -h          print this help\n"
          "  --          stop handling options\n"
          "  -           run the script read from stdin\n"
          "Without script and -e: the REPL when stdin is a terminal, otherwise stdin is read\n"
          "line by line like the REPL (results printed, exit status 1 if any line failed).\n"
          "Environment: ND_ROOT (the tree holding lua/; default: found from the binary),\n"
          "ND_HISTORY (history file; default ~/.nd_history).\n",
          f);
}

/* Parses options up to the script. Returns 0, or -1 on a bad option (usage printed). */
static int parse_args(nd_repl_args *a)
{
    for (int i = 1; i < a->argc; i++) {
        const char *s = a->argv[i];
        if (s[0] != '-' || strcmp(s, "-") == 0) {
            a->script = i;
            return 0;
        }
        if (strcmp(s, "--") == 0) {
            a->script = i + 1 < a->argc ? i + 1 : 0;
            return 0;
        }
        if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        int flag = strcmp(s, "-i") == 0           ? HAS_I
                   : strcmp(s, "-v") == 0         ? HAS_V
                   : strncmp(s, "-e", 2) == 0     ? HAS_E
                   : strncmp(s, "-l", 2) == 0     ? HAS_L
                   : strcmp(s, "--complete") == 0 ? HAS_COMPLETE
                                                  : 0;
        if (flag == 0 || (flag & (HAS_I | HAS_V) && s[2] != '\0')) {
            fprintf(stderr, "nd: unrecognized option '%s'\n", s);
            usage(stderr);
            return -1;
        }
        a->flags |= flag;
        if ((flag & (HAS_E | HAS_L) && s[2] == '\0') || flag == HAS_COMPLETE) {
            if (++i >= a->argc) {
                fprintf(stderr, "nd: '%s' needs an argument\n", s);
                usage(stderr);
                return -1;
            }
        }
    }
    return 0;
}

/* ---- state setup ---- */

/* Cuts the last path component of p (in place); "/x" becomes "/". */
static void cut_dirname(char *p)
{
    char *slash = strrchr(p, '/');
    if (slash == NULL)
        strcpy(p, ".");
    else if (slash == p)
        p[1] = '\0';
    else
        *slash = '\0';
}

/* Pushes the root of the nd tree: $ND_ROOT, else <root> of <root>/build/bin/nd. */
static void push_root(lua_State *L)
{
    const char *env = getenv("ND_ROOT");
    if (env && *env) {
        lua_pushstring(L, env);
        return;
    }
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        lua_pushliteral(L, ".");
        return;
    }
    exe[n] = '\0';
    for (int i = 0; i < 3; i++)
        cut_dirname(exe);
    lua_pushstring(L, exe);
}

/* package.path = <root>/lua/?.lua;<root>/lua/?/init.lua;<root>/?.lua;<root>/?/init.lua;<old> */
static void set_path(lua_State *L)
{
    lua_getglobal(L, "package");
    push_root(L);
    const char *r = lua_tostring(L, -1);
    lua_getfield(L, -2, "path");
    lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;%s/?.lua;%s/?/init.lua;%s", r, r, r, r, lua_tostring(L, -1));
    lua_setfield(L, -4, "path");
    lua_pop(L, 3);
}

static void set_preload(lua_State *L)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_nd_core);
    lua_setfield(L, -2, "nd.core");
    lua_pop(L, 1);
}

/* Calls require(mod); on success sets global glob (when not NULL) and leaves the module on the
 * stack (returns 1). On failure nothing is pushed: returns 0 when quiet_missing and the module
 * itself was not found, else prints the error and returns -1. */
static int require_global(lua_State *L, const char *mod, const char *glob, int quiet_missing)
{
    lua_getglobal(L, "require");
    lua_pushstring(L, mod);
    if (nd_repl_docall(L, 1, 1) == LUA_OK) {
        if (glob) {
            lua_pushvalue(L, -1);
            lua_setglobal(L, glob);
        }
        return 1;
    }
    const char *missing = lua_pushfstring(L, "module '%s' not found", mod);
    const char *msg = lua_tostring(L, -2);
    int skip = quiet_missing && msg && strncmp(msg, missing, strlen(missing)) == 0;
    lua_pop(L, 1);
    if (skip) {
        lua_pop(L, 1);
        return 0;
    }
    nd_repl_report(L, "nd: ");
    return -1;
}

/* Globals nd and torch (require 'nd', or the bare binding while lua/nd is absent), nn, optim. */
static void load_globals(lua_State *L)
{
    int st = require_global(L, "nd", "nd", 1);
    if (st == 0) st = require_global(L, "nd.core", "nd", 0);
    if (st == 1) lua_setglobal(L, "torch");
    if (require_global(L, "nn", "nn", 1) == 1) lua_pop(L, 1);
    if (require_global(L, "optim", "optim", 1) == 1) lua_pop(L, 1);
}

/* arg = {[0] = script, script args...; interpreter and options at negative indices}. */
static void set_arg(lua_State *L, const nd_repl_args *a)
{
    int s = a->script;
    lua_createtable(L, a->argc - s, s + 1);
    for (int i = 0; i < a->argc; i++) {
        lua_pushstring(L, a->argv[i]);
        lua_rawseti(L, -2, i - s);
    }
    lua_setglobal(L, "arg");
}

/* ---- running ---- */

static int run_string(lua_State *L, const char *code)
{
    int st = luaL_loadbuffer(L, code, strlen(code), "=(command line)");
    if (st == LUA_OK) st = nd_repl_docall(L, 0, 0);
    if (st != LUA_OK) {
        nd_repl_report(L, "nd: ");
        return 1;
    }
    return 0;
}

static int run_require(lua_State *L, const char *spec)
{
    const char *eq = strchr(spec, '=');
    char glob[256];
    const char *mod = spec;
    if (eq && (size_t)(eq - spec) < sizeof glob) {
        memcpy(glob, spec, (size_t)(eq - spec));
        glob[eq - spec] = '\0';
        mod = eq + 1;
    } else {
        snprintf(glob, sizeof glob, "%s", spec);
    }
    if (require_global(L, mod, glob, 0) != 1) return 1;
    lua_pop(L, 1);
    return 0;
}

/* Runs -e, -l and --complete in the order given. Returns 0, or 1 after the first failure. */
static int run_options(lua_State *L, const nd_repl_args *a)
{
    int last = a->script ? a->script : a->argc;
    for (int i = 1; i < last; i++) {
        const char *s = a->argv[i];
        if (strcmp(s, "--") == 0) break;
        int e = strncmp(s, "-e", 2) == 0, l = strncmp(s, "-l", 2) == 0;
        if (strcmp(s, "--complete") == 0) {
            nd_repl_print_completions(L, a->argv[++i]);
        } else if (e || l) {
            const char *val = s[2] ? s + 2 : a->argv[++i];
            if ((e ? run_string(L, val) : run_require(L, val)) != 0) return 1;
        }
    }
    return 0;
}

static int run_script(lua_State *L, const nd_repl_args *a)
{
    const char *name = a->argv[a->script];
    int st = luaL_loadfile(L, strcmp(name, "-") == 0 ? NULL : name);
    if (st == LUA_OK) {
        int n = a->argc - a->script - 1;
        luaL_checkstack(L, n, "too many arguments to script");
        for (int i = a->script + 1; i < a->argc; i++)
            lua_pushstring(L, a->argv[i]);
        st = nd_repl_docall(L, n, 0);
    }
    if (st != LUA_OK) {
        nd_repl_report(L, "nd: ");
        return 1;
    }
    return 0;
}

static int run_input(lua_State *L)
{
    if (isatty(fileno(stdin))) return nd_repl_interactive(L);
    return nd_repl_pipe(L, stdin);
}

/* The whole session, run protected so that memory errors during setup are reported. */
static int protected_main(lua_State *L)
{
    nd_repl_args *a = lua_touserdata(L, 1);
    luaL_openlibs(L);
    set_path(L);
    set_preload(L);
    set_arg(L, a);
    load_globals(L);
    if ((a->status = run_options(L, a)) != 0) return 0;
    if (a->script && (a->status = run_script(L, a)) != 0) return 0;
    if (a->flags & HAS_I)
        a->status = run_input(L);
    else if (!a->script && !(a->flags & (HAS_E | HAS_V | HAS_COMPLETE)))
        a->status = run_input(L);
    return 0;
}

/* Idle worker threads of one pool steal the cores from the other pool's next parallel region:
 * OpenMP threads that spin after a loop slow the OpenBLAS call that follows, and OpenBLAS
 * workers that keep yielding for 2^28 cycles (its default) after a product slow our OpenMP
 * loops (Winograd transforms, im2col, batch norm): VGG-11 BN trains ~20% faster with them
 * sleeping after 2^12 cycles (bench/train_step.lua). Both libraries read their setting when they
 * load, before main: when the user has set neither, set OMP_WAIT_POLICY=passive and
 * OPENBLAS_THREAD_TIMEOUT=12 and re-execute once. */
static void nd_repl_tune_threads(char **argv)
{
    int changed = 0;
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        changed = 1;
    }
    if (!getenv("OPENBLAS_THREAD_TIMEOUT")) {
        setenv("OPENBLAS_THREAD_TIMEOUT", "12", 1);
        changed = 1;
    }
    if (changed) execv("/proc/self/exe", argv);
    /* exec failed: carry on with the defaults */
}

int main(int argc, char **argv)
{
    nd_repl_tune_threads(argv);
    nd_repl_args a = {.argc = argc, .argv = argv};
    if (parse_args(&a) != 0) return 1;
    if (a.flags & HAS_V) {
        puts(ND_REPL_VERSION);
        fflush(stdout);
    }
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        fprintf(stderr, "nd: cannot create the Lua state: out of memory\n");
        return 1;
    }
    nd_repl_set_state(L);
    lua_pushcfunction(L, protected_main);
    lua_pushlightuserdata(L, &a);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        nd_repl_report(L, "nd: ");
        a.status = 1;
    }
    nd_repl_set_state(NULL);
    lua_close(L);
    return a.status;
}
