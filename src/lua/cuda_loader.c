/* Loads the CUDA backend plugin on first use and looks its functions up (nd_lua.h).
 * The plugin (libnd_cuda.so) resolves the core's symbols (nd_tensor_*, nd_error_set, ...) from the
 * module that loaded it: the nd executable exports them (-rdynamic); core.so, which Lua opens
 * RTLD_LOCAL, is first re-opened RTLD_GLOBAL. The plugin sits in lib/nd/ beside core.so, or in
 * ../lib/nd/ from the nd executable; ND_CUDA_LIB overrides the path. */
#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nd_lua.h"

static void *nd_cuda_handle;
static int nd_cuda_tried;
static char nd_cuda_why[PATH_MAX + 600];
static pthread_mutex_t nd_cuda_lock = PTHREAD_MUTEX_INITIALIZER;

static void nd_cuda_plugin_path(char *out, size_t n)
{
    const char *env = getenv("ND_CUDA_LIB");
    if (env && *env) {
        snprintf(out, n, "%s", env);
        return;
    }
    Dl_info info;
    char self[PATH_MAX] = ".";
    if (dladdr((void *)nd_cuda_plugin_path, &info) && info.dli_fname) snprintf(self, sizeof self, "%s", info.dli_fname);
    /* inside the nd executable dli_fname is argv[0] ("nd" found on PATH, "./nd" run from bin/):
     * its directory says nothing, the executable's real path does */
    size_t sl = strlen(self);
    if (sl < 3 || strcmp(self + sl - 3, ".so") != 0) {
        ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
        if (k > 0) self[k] = 0;
    }
    char *dir = dirname(self); /* build/lib/nd (core.so) or build/bin (nd) */
    size_t len = strlen(dir);
    if (len >= 4 && strcmp(dir + len - 4, "/bin") == 0)
        snprintf(out, n, "%s/../lib/nd/libnd_cuda.so", dir);
    else
        snprintf(out, n, "%s/libnd_cuda.so", dir);
}

int nd_lua_cuda_load(const char **why)
{
    pthread_mutex_lock(&nd_cuda_lock);
    if (!nd_cuda_tried) {
        nd_cuda_tried = 1;
        Dl_info info;
        if (dladdr((void *)nd_lua_cuda_load, &info) && info.dli_fname) /* core.so: make its symbols global */
            dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL);
        char path[PATH_MAX + 32];
        nd_cuda_plugin_path(path, sizeof path);
        nd_cuda_handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!nd_cuda_handle) {
            const char *e = dlerror();
            if (access(path, F_OK) != 0)
                snprintf(nd_cuda_why, sizeof nd_cuda_why,
                         "this build has no CUDA backend (%s not found; build with make CUDA=1 where nvcc exists)", path);
            else
                snprintf(nd_cuda_why, sizeof nd_cuda_why, "the CUDA backend could not be loaded (%s)", e ? e : path);
        }
    }
    int ok = nd_cuda_handle != NULL;
    if (why) *why = ok ? "" : nd_cuda_why;
    pthread_mutex_unlock(&nd_cuda_lock);
    return ok;
}

static int nd_seed_pending;
static uint64_t nd_seed_value;
static int state; /* of nd_lua_cuda_ready: 0 not tried, 1 ready, -1 unavailable */

void nd_lua_cuda_manual_seed(uint64_t seed)
{
    if (state == 1) {
        void (*f)(uint64_t) = (void (*)(uint64_t))dlsym(nd_cuda_handle, "nd_cuda_manual_seed");
        if (f) f(seed);
        nd_seed_pending = 0;
    } else {
        nd_seed_pending = 1;
        nd_seed_value = seed;
    }
}

int nd_lua_cuda_ready(const char **why)
{
    static char reason[PATH_MAX + 700];
    if (state == 0) {
        const char *w;
        if (!nd_lua_cuda_load(&w)) {
            snprintf(reason, sizeof reason, "%s", w);
            state = -1;
        } else {
            nd_status (*init)(void) = (nd_status (*)(void))dlsym(nd_cuda_handle, "nd_cuda_init");
            if (!init) {
                snprintf(reason, sizeof reason, "the CUDA backend has no nd_cuda_init");
                state = -1;
            } else if (init() != ND_OK) {
                snprintf(reason, sizeof reason, "%s", nd_error_message());
                state = -1;
            } else {
                state = 1;
                if (nd_seed_pending) nd_lua_cuda_manual_seed(nd_seed_value);
            }
        }
    }
    if (why) *why = state == 1 ? "" : reason;
    return state == 1;
}

void nd_lua_cuda_init(lua_State *L)
{
    const char *why;
    if (!nd_lua_cuda_ready(&why)) nd_lua_error(L, "CUDA is not available: %s", why);
}

void *nd_lua_cuda_sym(lua_State *L, const char *op, const char *name)
{
    const char *why;
    if (!nd_lua_cuda_load(&why)) nd_lua_error(L, "%s: not available on CUDA tensors: %s", op, why);
    void *f = dlsym(nd_cuda_handle, name);
    if (!f) nd_lua_error(L, "%s: not available on CUDA tensors (no CUDA kernel %s yet)", op, name);
    return f;
}
