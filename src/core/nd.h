/* The nd C engine: include this to get the core (tensors, storage, errors, rng, iteration). */
#ifndef ND_H
#define ND_H
#ifdef __cplusplus
extern "C" {
#endif
#include "nd_dtype.h"
#include "nd_error.h"
#include "nd_iter.h"
#include "nd_rng.h"
#include "nd_storage.h"
#include "nd_tensor.h"
#ifdef __cplusplus
}
#endif
#endif
