/* Element types. float32 is the default; float64 serves gradient checks; int64 holds labels and
 * indices; uint8 holds raw images and masks. */
#ifndef ND_DTYPE_H
#define ND_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum nd_dtype {
    ND_DTYPE_F32 = 0,
    ND_DTYPE_F64 = 1,
    ND_DTYPE_I64 = 2,
    ND_DTYPE_U8 = 3,
    ND_DTYPE_COUNT
} nd_dtype;

size_t nd_dtype_size(nd_dtype dt);
const char *nd_dtype_name(nd_dtype dt);        /* "float32", "float64", "int64", "uint8" */
int nd_dtype_from_name(const char *name);      /* -1 when unknown */
static inline int nd_dtype_is_float(nd_dtype dt) { return dt == ND_DTYPE_F32 || dt == ND_DTYPE_F64; }

/* Expands X(ctype, DTYPE_ENUM) for every dtype: used to write one switch for all types. */
#define ND_FOREACH_DTYPE(X) \
    X(float, ND_DTYPE_F32)  \
    X(double, ND_DTYPE_F64) \
    X(int64_t, ND_DTYPE_I64) \
    X(uint8_t, ND_DTYPE_U8)

#endif
