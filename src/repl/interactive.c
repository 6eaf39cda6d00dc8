/* The interactive REPL on readline. Ctrl-C at the prompt: readline's own signal handling is
 * off (rl_catch_signals = 0); our handler sets a flag, the interrupted read in read_key returns
 * the key code 3, and that key (bound to abort_line) clears the line and ends readline() with
 * the line marked as abandoned. Ctrl-C while a command runs is nd_repl_docall's business. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <readline/history.h>
#include <readline/readline.h>

#include "repl.h"

#define PROMPT "nd> "
#define PROMPT_MORE "  >> "
#define HISTORY_MAX 1000
#define SLOW_SECONDS 0.1
#define KEY_INTERRUPT 3 /* Ctrl-C: never typed as a key, since the terminal turns it into SIGINT */

enum { READ_LINE, READ_EOF, READ_INTERRUPTED };

static volatile sig_atomic_t g_sigint, g_sigwinch;
static int g_abandoned;
static char *g_history_path;

static void on_prompt_sigint(int sig)
{
    (void)sig;
    g_sigint = 1;
}

static void on_sigwinch(int sig)
{
    (void)sig;
    g_sigwinch = 1;
}

static void set_handler(int sig, void (*fn)(int), int flags, struct sigaction *old)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = flags;
    sigaction(sig, &sa, old);
}

/* ---- history ---- */

static void history_save(void)
{
    if (g_history_path) {
        stifle_history(HISTORY_MAX);
        write_history(g_history_path); /* an unwritable path is ignored */
    }
}

static void history_open(void)
{
    const char *env = getenv("ND_HISTORY");
    const char *home = getenv("HOME");
    using_history();
    if (env && *env) {
        g_history_path = strdup(env);
    } else if (home && *home) {
        size_t n = strlen(home) + sizeof "/.nd_history";
        g_history_path = malloc(n);
        if (g_history_path) snprintf(g_history_path, n, "%s/.nd_history", home);
    }
    if (g_history_path) {
        read_history(g_history_path);
        atexit(history_save); /* also runs on os.exit */
    }
}

static void history_add(const char *line)
{
    if (*line == '\0') return;
    HIST_ENTRY *last = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
    if (last == NULL || strcmp(last->line, line) != 0) add_history(line);
}

/* ---- reading one line ---- */

/* readline's key source: a plain read() that turns SIGINT into KEY_INTERRUPT and a terminal
 * resize into a redisplay. */
static int read_key(FILE *in)
{
    for (;;) {
        unsigned char c;
        ssize_t r = read(fileno(in), &c, 1);
        if (g_sigint) {
            g_sigint = 0;
            return KEY_INTERRUPT;
        }
        if (g_sigwinch) {
            g_sigwinch = 0;
            rl_resize_terminal();
        }
        if (r == 1) return c;
        if (r == 0 || errno != EINTR) return EOF;
    }
}

/* Bound to KEY_INTERRUPT: shows ^C after the typed text and ends readline() with an empty,
 * abandoned line. */
static int abort_line(int count, int key)
{
    (void)count;
    (void)key;
    rl_point = rl_end;
    rl_redisplay();
    fputs("^C", rl_outstream);
    rl_crlf();
    rl_replace_line("", 1);
    g_abandoned = 1;
    rl_done = 1;
    return 0;
}

static void readline_init(lua_State *L)
{
    rl_readline_name = "nd";
    rl_catch_signals = 0;
    rl_catch_sigwinch = 0;
    rl_getc_function = read_key;
    rl_bind_key_in_map(KEY_INTERRUPT, abort_line, emacs_standard_keymap);
    rl_bind_key_in_map(KEY_INTERRUPT, abort_line, vi_insertion_keymap);
    rl_bind_key_in_map(KEY_INTERRUPT, abort_line, vi_movement_keymap);
    set_handler(SIGWINCH, on_sigwinch, SA_RESTART, NULL);
    nd_repl_complete_init(L);
}

/* Reads a line with the given prompt into *line (malloc'd when READ_LINE). SIGINT and SIGWINCH
 * interrupt the read only while it waits here. */
static int read_line(const char *prompt, char **line)
{
    struct sigaction old_int;
    g_sigint = 0;
    g_abandoned = 0;
    set_handler(SIGINT, on_prompt_sigint, 0, &old_int);
    set_handler(SIGWINCH, on_sigwinch, 0, NULL);
    *line = readline(prompt);
    set_handler(SIGWINCH, on_sigwinch, SA_RESTART, NULL);
    sigaction(SIGINT, &old_int, NULL);
    if (g_abandoned) {
        free(*line);
        *line = NULL;
        return READ_INTERRUPTED;
    }
    return *line ? READ_LINE : READ_EOF;
}

/* ---- the loop ---- */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void print_time(double seconds)
{
    if (seconds <= SLOW_SECONDS) return;
    if (isatty(fileno(stdout)))
        printf("\033[2m(%.2f s)\033[0m\n", seconds);
    else
        printf("(%.2f s)\n", seconds);
    fflush(stdout);
}

int nd_repl_interactive(lua_State *L)
{
    char *chunk = NULL;
    size_t len = 0, cap = 0;

    readline_init(L);
    history_open();
    printf("%s  (Ctrl-D exits, Ctrl-C interrupts)\n", ND_REPL_VERSION);

    for (;;) {
        char *line;
        int r = read_line(len ? PROMPT_MORE : PROMPT, &line);
        if (r == READ_EOF) {
            fputc('\n', stdout);
            break;
        }
        if (r == READ_INTERRUPTED) {
            len = 0;
            continue;
        }
        history_add(line);
        size_t n = strlen(line);
        if (len + n + 2 > cap) {
            size_t want = (len + n + 2) * 2;
            char *p = realloc(chunk, want);
            if (p == NULL) {
                free(line);
                fprintf(stderr, "nd: out of memory\n");
                break;
            }
            chunk = p;
            cap = want;
        }
        if (len > 0) chunk[len++] = '\n';
        memcpy(chunk + len, line, n);
        len += n;
        free(line);
        chunk[len] = '\0';
        if (strspn(chunk, " \t") == len) {
            len = 0;
            continue;
        }
        double t0 = now_seconds();
        int st = nd_repl_eval(L, chunk, len, 0);
        if (st == ND_REPL_INCOMPLETE) continue;
        print_time(now_seconds() - t0);
        len = 0;
    }
    free(chunk);
    return 0;
}
