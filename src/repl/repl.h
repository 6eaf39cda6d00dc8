/* The nd interpreter (build/bin/nd): shared declarations of the src/repl files.
 *
 * main.c        options, state setup (package.path, preload, nd/nn/optim globals), scripts
 * eval.c        protected calls with traceback and Ctrl-C, line evaluation and auto-print,
 *               pipe mode
 * interactive.c the readline REPL: prompts, history, Ctrl-C at the prompt, timing
 * complete.c    tab completion by raw table walks (no code runs during completion) */
#ifndef ND_REPL_H
#define ND_REPL_H

#include <stddef.h>
#include <stdio.h>

#include <lua.h>

#define ND_REPL_VERSION "nd 0.1 (" LUA_VERSION ")"

/* Provided by the binding (src/lua); declared here so the REPL does not need the engine headers. */
int luaopen_nd_core(lua_State *L);

/* Results of nd_repl_eval. */
enum { ND_REPL_OK = 0, ND_REPL_ERROR = 1, ND_REPL_INCOMPLETE = 2 };

/* Sets the state that SIGINT interrupts (the main thread of the session). */
void nd_repl_set_state(lua_State *L);

/* Calls the function below its narg arguments like lua_pcall, with a traceback on error and
 * SIGINT turned into the error "interrupted!" while it runs. Returns the lua_pcall status; on
 * error the message (with traceback) is on top of the stack. */
int nd_repl_docall(lua_State *L, int narg, int nres);

/* Prints the error message on top of the stack to stderr as "<prefix><message>" and pops it. */
void nd_repl_report(lua_State *L, const char *prefix);

/* Evaluates one chunk typed at the REPL: tries "return <chunk>" first and prints its results,
 * else runs it as a statement. A trailing ';' suppresses printing. Returns ND_REPL_INCOMPLETE
 * when the chunk needs more lines (unless final != 0, then the syntax error is reported). */
int nd_repl_eval(lua_State *L, const char *chunk, size_t len, int final);

/* Evaluates the lines of `in` like the REPL, without prompts. Returns the exit status:
 * 1 when any chunk failed, else 0. */
int nd_repl_pipe(lua_State *L, FILE *in);

/* The interactive readline REPL on the terminal. Returns the exit status (0). */
int nd_repl_interactive(lua_State *L);

/* A growable list of malloc'd strings. */
typedef struct {
    char **v;
    size_t n, cap;
} nd_repl_strlist;

void nd_repl_strlist_free(nd_repl_strlist *list);

/* Collects the completions of `text` (a name or dotted expression such as "nd.ze", "x:su") into
 * out, each one the full replacement text, sorted and without duplicates. Only raw table reads
 * and getmetatable are used. Returns the number of completions. */
size_t nd_repl_complete(lua_State *L, const char *text, nd_repl_strlist *out);

/* Prints the completions of text one per line (the internal `--complete` option). */
void nd_repl_print_completions(lua_State *L, const char *text);

/* Installs the readline completion hook (interactive.c calls it once). */
void nd_repl_complete_init(lua_State *L);

#endif
