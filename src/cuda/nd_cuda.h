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
/* Installs the allocator and copy hooks in the core; idempotent. ND_ERR_DEVICE without a GPU.
 * Call it (the Lua binding does) before creating any GPU tensor. */
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
/* Peak reset (nd.cuda.resetPeak) and counters of the caching allocator on device `index`:
 * driver allocations made and requests served from the cache. */
void nd_cuda_reset_peak(void);
void nd_cuda_memory_stats(int index, int64_t *mallocs, int64_t *hits);
/* Page-locked host memory (for batches copied to the GPU asynchronously); not cached. A copy from
 * it to the GPU is truly asynchronous: do not overwrite it before the stream passed the copy. */
nd_status nd_cuda_host_alloc(void **ptr, int64_t nbytes);
void nd_cuda_host_free(void *ptr);

/* ---- copies and fills (copy.cu) ---- */
/* The core's device-copy hook (nd_tensor_copy routes here whenever a tensor is on a GPU):
 * dst = src converted to dst's dtype, any strides, any shapes with equal element counts (both read
 * in row-major order), between the host and a GPU either way or between GPUs. Copies to the host
 * synchronise the stream before returning; other copies are queued on it. Overlapping dst and src
 * on one storage are copied through a temporary. */
nd_status nd_cuda_copy(nd_tensor *dst, const nd_tensor *src);
/* t (on a GPU, any strides, any dtype) = value converted to t's dtype. Same contract as
 * nd_fill_cpu (src/cpu/nd_cpu_math.h), so ND_DEVICE_CALL(L, op, dev, nd_fill, t, v) dispatches. */
nd_status nd_fill_cuda(nd_tensor *t, double value);

/* ---- random numbers (random.cu) ---- */
/* Seeds the device random generator (nd.cuda.manualSeed); the sequence restarts. */
void nd_cuda_manual_seed(uint64_t seed);
/* The generator's state: seed and offset (counters used so far); set restores a saved state. */
void nd_cuda_rng_get_state(uint64_t *seed, uint64_t *offset);
void nd_cuda_rng_set_state(uint64_t seed, uint64_t offset);
/* Fills a GPU tensor (any strides and dtype), as the CPU nd_rng_fill_* do: uniform in [a, b),
 * normal N(mean, std), integers in [a, b], Bernoulli(p). Counter-based (Philox-4x32-10): the
 * values depend on the seed, the number of fills since the seed and the element's row-major
 * position, not on the launch configuration. They differ from the CPU generator's. */
nd_status nd_cuda_fill_uniform(nd_tensor *t, double a, double b);
nd_status nd_cuda_fill_normal(nd_tensor *t, double mean, double std);
nd_status nd_cuda_fill_integer(nd_tensor *t, int64_t a, int64_t b);
nd_status nd_cuda_fill_bernoulli(nd_tensor *t, double p);

#ifdef __cplusplus
}
#endif
#endif
