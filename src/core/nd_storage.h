/* Refcounted, device-tagged byte buffers. A tensor is a strided view of one storage;
 * several tensors may share a storage (views). Counts are atomic so a background
 * thread (the data loader) may release storages too. */
#ifndef ND_STORAGE_H
#define ND_STORAGE_H

#include <stdint.h>

#include "nd_error.h"

typedef enum nd_device_type { ND_DEVICE_CPU = 0, ND_DEVICE_CUDA = 1 } nd_device_type;

typedef struct nd_device {
    nd_device_type type;
    int index; /* GPU ordinal; 0 for the CPU */
} nd_device;

typedef struct nd_storage {
    void *data;          /* 64-byte aligned; NULL when nbytes == 0 */
    int64_t nbytes;
#ifdef __cplusplus
    int64_t refcount; /* atomic in C (same size and alignment); C++ (CUDA) code never touches it */
#else
    _Atomic int64_t refcount;
#endif
    nd_device device;
    int accounted;       /* set by the Lua binding once the bytes were reported to the GC */
} nd_storage;

/* Allocates a storage of nbytes on `device` with refcount 1 (zeroed when zero != 0).
 * The caller owns the reference. */
nd_status nd_storage_new(nd_storage **out, int64_t nbytes, nd_device device, int zero);
void nd_storage_retain(nd_storage *s);
/* Drops one reference; frees the buffer at zero. NULL is ignored. */
void nd_storage_release(nd_storage *s);

/* Device memory hooks, installed by a backend (e.g. the CUDA one) at start-up. */
typedef struct nd_device_allocator {
    nd_status (*alloc)(void **ptr, int64_t nbytes, int index);
    void (*free)(void *ptr, int64_t nbytes, int index);
    nd_status (*memset0)(void *ptr, int64_t nbytes, int index);
} nd_device_allocator;
void nd_storage_set_allocator(nd_device_type type, const nd_device_allocator *a);

/* Bytes currently held by live storages on the CPU / on all GPUs, and the CPU peak. */
int64_t nd_storage_bytes_cpu(void);
int64_t nd_storage_bytes_gpu(void);
int64_t nd_storage_peak_cpu(void);

static inline nd_device nd_cpu_device(void) { nd_device d = {ND_DEVICE_CPU, 0}; return d; }

#endif
