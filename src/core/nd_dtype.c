#include "nd_dtype.h"

#include <string.h>

static const char *const nd_dtype_names[ND_DTYPE_COUNT] = {"float32", "float64", "int64", "uint8"};
static const size_t nd_dtype_sizes[ND_DTYPE_COUNT] = {4, 8, 8, 1};

size_t nd_dtype_size(nd_dtype dt) { return (unsigned)dt < ND_DTYPE_COUNT ? nd_dtype_sizes[dt] : 0; }

const char *nd_dtype_name(nd_dtype dt) { return (unsigned)dt < ND_DTYPE_COUNT ? nd_dtype_names[dt] : "?"; }

int nd_dtype_from_name(const char *name)
{
    for (int i = 0; i < ND_DTYPE_COUNT; i++)
        if (strcmp(name, nd_dtype_names[i]) == 0) return i;
    return -1;
}
