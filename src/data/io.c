/* Atomic file writing for the data writers: write a temp file in the target's directory, then
 * rename it over the target, so a reader never sees half a file. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "nd_data_io.h"

static _Atomic unsigned long nd_data_tmp_counter;

nd_status nd_data_tmpname(const char *path, char *tmp, size_t ntmp)
{
    unsigned long n = atomic_fetch_add(&nd_data_tmp_counter, 1);
    int len = snprintf(tmp, ntmp, "%s.tmp.%ld.%lu", path, (long)getpid(), n);
    if (len < 0 || (size_t)len >= ntmp) return ND_ERROR(ND_ERR_ARG, "path too long: %s", path);
    return ND_OK;
}

nd_status nd_data_tmp_open(const char *path, char *tmp, size_t ntmp, FILE **out)
{
    *out = NULL;
    ND_TRY(nd_data_tmpname(path, tmp, ntmp));
    FILE *f = fopen(tmp, "wb");
    if (!f) return ND_ERROR(ND_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    *out = f;
    return ND_OK;
}

nd_status nd_data_tmp_rename(const char *tmp, const char *path)
{
    if (rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return ND_ERROR(ND_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(e));
    }
    return ND_OK;
}

nd_status nd_data_tmp_commit(FILE *f, const char *tmp, const char *path)
{
    int bad = fflush(f) != 0 || ferror(f);
    int e = errno;
    if (!bad && fsync(fileno(f)) != 0 && errno != EINVAL) bad = 1, e = errno;
    if (fclose(f) != 0 && !bad) bad = 1, e = errno;
    if (bad) {
        remove(tmp);
        return ND_ERROR(ND_ERR_IO, "cannot write %s: %s", path, strerror(e));
    }
    return nd_data_tmp_rename(tmp, path);
}

void nd_data_tmp_abort(FILE *f, const char *tmp)
{
    if (f) fclose(f);
    remove(tmp);
}
