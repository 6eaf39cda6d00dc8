/* The CUDA backend of nd (built with CUDA=1): device management, the caching allocator and the
 * host<->device copies. Plain C API, no CUDA headers: the Lua binding (gcc) includes it.
 * Kernel twins live in the family headers nd_cuda_math.h, nd_cuda_nn.h, nd_cuda_deconv.h with the
 * same arguments and rules as their _cpu counterparts (src/cpu/nd_cpu_*.h), except that every
 * tensor argument lives on one GPU. All work is queued on one stream per device
 * (nd_cuda_stream); nothing synchronises the host except copies to the host and
 * nd_cuda_synchronize. */
#ifndef ND_CUDA_H
#define ND_CUDA_H

#include "nd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Number of usable GPUs: 0 without a driver or a device (never fails). */
int nd_cuda_device_count(void);
/* Why nd_cuda_device_count() is 0 ("no CUDA driver", "no GPU found", ...), "" otherwise. */
const char *nd_cuda_unavailable_reason(void);
/* Installs the allocator and copy hooks in the core; idempotent. ND_ERR_DEVICE without a GPU. */
nd_status nd_cuda_init(void);
/* Makes `index` the current device. */
nd_status nd_cuda_set_device(int index);
int nd_cuda_current_device(void);
/* Name and compute capability (major*10+minor) of a device. */
nd_status nd_cuda_device_info(int index, char *name, int name_len, int *cc, int64_t *total_bytes);
/* Waits for all queued work on the current device; reports asynchronous kernel errors. */
nd_status nd_cuda_synchronize(void);
/* Returns the cached free blocks of the caching allocator to the driver. */
nd_status nd_cuda_empty_cache(void);
/* Bytes held by live tensors, bytes cached (allocated from the driver, incl. live), peak live. */
void nd_cuda_memory(int64_t *allocated, int64_t *cached, int64_t *peak);
/* Seeds the device random generator (nd.cuda.manualSeed). */
void nd_cuda_manual_seed(uint64_t seed);

#ifdef __cplusplus
}
#endif
#endif
