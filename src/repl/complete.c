/* Tab completion of globals and of fields/methods after '.' or ':' on a dotted expression.
 * Only raw reads are used (lua_rawget, lua_next, lua_getmetatable, lua_getupvalue): completing
 * never runs Lua code. Fields are looked up in a value, then in the __index table of its
 * metatable, and so on along the chain. An __index that is a C function is not called; when its
 * first upvalue is a table, that table stands for it (the nd tensor __index is a C closure whose
 * upvalue 1 is the method table). */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <readline/readline.h>

#include "repl.h"

#define MAX_CHAIN 32 /* longest __index chain followed (guards against cycles) */

static const char *const keywords[] = {"and",      "break",  "do",   "else", "elseif", "end",   "false", "for",
                                       "function", "goto",   "if",   "in",   "local",  "nil",   "not",   "or",
                                       "repeat",   "return", "then", "true", "until",  "while", NULL};

void nd_repl_strlist_free(nd_repl_strlist *list)
{
    for (size_t i = 0; i < list->n; i++)
        free(list->v[i]);
    free(list->v);
    list->v = NULL;
    list->n = list->cap = 0;
}

/* Appends prefix..name (copied); silently drops it when out of memory. */
static void strlist_add(nd_repl_strlist *list, const char *prefix, size_t plen, const char *name)
{
    if (list->n == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 32;
        char **v = realloc(list->v, cap * sizeof *v);
        if (v == NULL) return;
        list->v = v;
        list->cap = cap;
    }
    size_t nlen = strlen(name);
    char *s = malloc(plen + nlen + 1);
    if (s == NULL) return;
    memcpy(s, prefix, plen);
    memcpy(s + plen, name, nlen + 1);
    list->v[list->n++] = s;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void strlist_sort_unique(nd_repl_strlist *list)
{
    if (list->n == 0) return;
    qsort(list->v, list->n, sizeof *list->v, cmp_str);
    size_t k = 1;
    for (size_t i = 1; i < list->n; i++) {
        if (strcmp(list->v[i], list->v[k - 1]) == 0)
            free(list->v[i]);
        else
            list->v[k++] = list->v[i];
    }
    list->n = k;
}

static int is_identifier(const char *s, size_t len)
{
    if (len == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_')) return 0;
    for (size_t i = 1; i < len; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_')) return 0;
    return 1;
}

/* Replaces the value on top with the table its fields come from after the current one: the
 * __index table of its metatable (or upvalue 1 of a C function __index). Returns 0 (and pops)
 * when there is none. */
static int next_in_chain(lua_State *L)
{
    if (!lua_getmetatable(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pushliteral(L, "__index");
    lua_rawget(L, -2);
    lua_remove(L, -2); /* metatable */
    lua_remove(L, -2); /* value */
    if (lua_iscfunction(L, -1)) {
        if (lua_getupvalue(L, -1, 1) == NULL) lua_pushnil(L);
        lua_remove(L, -2);
    }
    if (lua_type(L, -1) != LUA_TTABLE) {
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}

/* Replaces the value on top by its field `key` (raw, through __index tables). Returns 0 (and
 * pops) when the field is absent. */
static int get_field(lua_State *L, const char *key, size_t klen)
{
    for (int depth = 0; depth < MAX_CHAIN; depth++) {
        if (lua_type(L, -1) == LUA_TTABLE) {
            lua_pushlstring(L, key, klen);
            lua_rawget(L, -2);
            if (!lua_isnil(L, -1)) {
                lua_remove(L, -2);
                return 1;
            }
            lua_pop(L, 1);
        }
        if (!next_in_chain(L)) return 0;
    }
    lua_pop(L, 1);
    return 0;
}

/* Adds prefix..key for each string key of the value on top (and its __index tables) that
 * starts with word; methods_only keeps function values. Pops the value. */
static void add_fields(lua_State *L, const char *prefix, size_t plen, const char *word, int methods_only,
                       nd_repl_strlist *out)
{
    size_t wlen = strlen(word);
    for (int depth = 0; depth < MAX_CHAIN; depth++) {
        if (lua_type(L, -1) == LUA_TTABLE) {
            lua_pushnil(L);
            while (lua_next(L, -2)) {
                size_t klen;
                const char *k;
                if (lua_type(L, -2) == LUA_TSTRING && (k = lua_tolstring(L, -2, &klen)) && klen >= wlen &&
                    memcmp(k, word, wlen) == 0 && is_identifier(k, klen) && (!methods_only || lua_isfunction(L, -1)))
                    strlist_add(out, prefix, plen, k);
                lua_pop(L, 1);
            }
        }
        if (!next_in_chain(L)) return;
    }
    lua_pop(L, 1);
}

/* Pushes the value of the dotted path text[0..len) from the globals, or returns 0. */
static int resolve_path(lua_State *L, const char *text, size_t len)
{
    lua_pushglobaltable(L);
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && text[i] != '.') continue;
        if (!is_identifier(text + start, i - start)) {
            lua_pop(L, 1);
            return 0;
        }
        if (!get_field(L, text + start, i - start)) return 0;
        start = i + 1;
    }
    return 1;
}

/* Protected body of nd_repl_complete: arguments are the list (light userdata) and text. */
static int complete_body(lua_State *L)
{
    nd_repl_strlist *out = lua_touserdata(L, 1);
    const char *text = lua_tostring(L, 2);
    const char *sep = NULL;
    for (const char *p = text; *p; p++)
        if (*p == '.' || *p == ':') sep = p;
    if (sep == NULL) {
        for (int i = 0; keywords[i]; i++)
            if (strncmp(keywords[i], text, strlen(text)) == 0) strlist_add(out, "", 0, keywords[i]);
        lua_pushglobaltable(L);
        add_fields(L, "", 0, text, 0, out);
        return 0;
    }
    if (!resolve_path(L, text, (size_t)(sep - text))) return 0;
    add_fields(L, text, (size_t)(sep - text) + 1, sep + 1, *sep == ':', out);
    return 0;
}

size_t nd_repl_complete(lua_State *L, const char *text, nd_repl_strlist *out)
{
    int top = lua_gettop(L);
    if (!lua_checkstack(L, 8)) return 0;
    lua_pushcfunction(L, complete_body);
    lua_pushlightuserdata(L, out);
    lua_pushstring(L, text);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) /* only memory errors can get here */
        lua_pop(L, 1);
    lua_settop(L, top);
    strlist_sort_unique(out);
    return out->n;
}

void nd_repl_print_completions(lua_State *L, const char *text)
{
    nd_repl_strlist list = {0};
    nd_repl_complete(L, text, &list);
    for (size_t i = 0; i < list.n; i++)
        puts(list.v[i]);
    nd_repl_strlist_free(&list);
    fflush(stdout);
}

/* ---- readline glue ---- */

static lua_State *g_complete_state;
static nd_repl_strlist g_matches;
static size_t g_next_match;

/* readline generator: hands out the precomputed matches, each freshly malloc'd. */
static char *match_generator(const char *text, int state)
{
    (void)text;
    if (state == 0) g_next_match = 0;
    if (g_next_match >= g_matches.n) return NULL;
    return strdup(g_matches.v[g_next_match++]);
}

static char **attempt_completion(const char *text, int start, int end)
{
    (void)start;
    (void)end;
    rl_attempted_completion_over = 1; /* never fall back to file names */
    rl_completion_append_character = '\0';
    nd_repl_strlist_free(&g_matches);
    if (nd_repl_complete(g_complete_state, text, &g_matches) == 0) return NULL;
    return rl_completion_matches(text, match_generator);
}

/* '.' and ':' are not word breaks, so "nd.ze" and "x:su" reach the completer whole. */
static char word_breaks[] = " \t\n\"\\'`@$><=;|&{}()[],+-*/%^#~";

void nd_repl_complete_init(lua_State *L)
{
    g_complete_state = L;
    rl_attempted_completion_function = attempt_completion;
    rl_completer_word_break_characters = word_breaks;
    rl_basic_word_break_characters = word_breaks;
}
