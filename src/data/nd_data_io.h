/* Internal helpers of src/data: atomic file writing (temp file + rename) and big-endian reads. */
#ifndef ND_DATA_IO_H
#define ND_DATA_IO_H

#include <stdint.h>
#include <stdio.h>

#include "nd_error.h"

/* Writes "<path>.tmp.<pid>.<n>" into tmp (n counts calls, so threads do not collide). */
nd_status nd_data_tmpname(const char *path, char *tmp, size_t ntmp);
/* Opens a fresh temp file next to path for writing ("wb"); tmp receives its name. */
nd_status nd_data_tmp_open(const char *path, char *tmp, size_t ntmp, FILE **out);
/* Flushes, syncs and closes f, then renames tmp over path. On any failure tmp is removed. */
nd_status nd_data_tmp_commit(FILE *f, const char *tmp, const char *path);
/* Renames a closed temp file over path (removes tmp on failure). */
nd_status nd_data_tmp_rename(const char *tmp, const char *path);
/* Closes f (when not NULL) and removes tmp. */
void nd_data_tmp_abort(FILE *f, const char *tmp);

static inline uint32_t nd_data_be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

#endif
