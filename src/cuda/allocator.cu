/* The caching device allocator and the pinned host staging buffers.
 *
 * Device memory: a request is rounded up to a size class (multiples of 512 B up to 4 KiB, then 8
 * classes per power of two, so at most 12.5% is wasted) and served from that class's free list,
 * or by cudaMalloc when the list is empty. Freed blocks go back to their list, never to the
 * driver, until nd_cuda_empty_cache. Reuse is safe without events because all nd work of a device
 * is queued on one stream (nd_cuda_stream): a block freed by the host while a kernel still uses
 * it is handed out again only to work queued after that kernel. Code that uses a block on another
 * stream must synchronise that stream before freeing it. When cudaMalloc fails the device's cache
 * is emptied and the call retried once; then ND_ERR_MEMORY with the sizes.
 * Thread-safe (one mutex): the data loader thread may release GPU storages too.
 *
 * Pinned host memory: a small cache (ND_PINNED_SLOTS buffers) of page-locked buffers for
 * host<->device staging. A buffer taken with nd_cuda_pinned_take is the caller's until
 * nd_cuda_pinned_give, which records an event on the stream: the buffer is handed out again only
 * when the copies queued before that point are done. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.cuh"

#define ND_ALLOC_MAX_DEVICES 16
#define ND_ALLOC_CLASSES 320

typedef struct nd_block {
    void *ptr;
    struct nd_block *next;
} nd_block;

typedef struct nd_dev_cache {
    nd_block *free_list[ND_ALLOC_CLASSES];
    int64_t live;   /* bytes (rounded) in blocks handed out */
    int64_t cached; /* bytes (rounded) obtained from the driver, live or free */
    int64_t peak;   /* max of live */
    int64_t mallocs, hits;
} nd_dev_cache;

static nd_dev_cache nd_caches[ND_ALLOC_MAX_DEVICES];
static nd_block *nd_spare_nodes; /* recycled list nodes */
static pthread_mutex_t nd_alloc_lock = PTHREAD_MUTEX_INITIALIZER;

/* The size class of n bytes (n >= 1): its index and rounded size. */
static int nd_size_class(int64_t n, int64_t *rounded)
{
    if (n <= 4096) {
        int64_t r = (n + 511) / 512 * 512;
        if (r == 0) r = 512;
        *rounded = r;
        return (int)(r / 512 - 1); /* 0..7 */
    }
    int k = 63 - __builtin_clzll((unsigned long long)n); /* 2^k <= n < 2^(k+1), k >= 12 */
    int64_t step = (int64_t)1 << (k - 3);
    int64_t r = (n + step - 1) / step * step;
    int kr = 63 - __builtin_clzll((unsigned long long)r);
    int m = (int)(r >> (kr - 3)); /* 8..15 */
    *rounded = r;
    return 8 + (kr - 12) * 8 + (m - 8);
}

/* The rounded size of class k (the inverse of nd_size_class). */
static int64_t nd_class_bytes(int k)
{
    if (k < 8) return (int64_t)(k + 1) * 512;
    return (int64_t)(8 + (k - 8) % 8) << ((k - 8) / 8 + 12 - 3);
}

/* Runs with the lock held; frees every cached block of device d (switching to it). */
static void nd_release_cached_locked(int d)
{
    nd_dev_cache *c = &nd_caches[d];
    int prev = -1, switched = 0;
    for (int k = 0; k < ND_ALLOC_CLASSES; k++) {
        if (!c->free_list[k]) continue;
        if (!switched) {
            cudaGetDevice(&prev);
            if (prev != d) cudaSetDevice(d);
            /* a cached block may still be read by queued work (freed right after queuing): wait
             * for it explicitly rather than rely on cudaFree's implicit synchronisation */
            if (cudaDeviceSynchronize() != cudaSuccess) cudaGetLastError();
            switched = 1;
        }
        int64_t rounded = nd_class_bytes(k);
        while (c->free_list[k]) {
            nd_block *b = c->free_list[k];
            c->free_list[k] = b->next;
            cudaFree(b->ptr);
            c->cached -= rounded;
            b->next = nd_spare_nodes;
            nd_spare_nodes = b;
        }
    }
    if (switched && prev >= 0 && prev != d) cudaSetDevice(prev);
}

static nd_status nd_cuda_alloc_hook(void **ptr, int64_t nbytes, int index)
{
    *ptr = NULL;
    if (index < 0 || index >= ND_ALLOC_MAX_DEVICES || index >= nd_cuda_device_count())
        return ND_ERROR(ND_ERR_DEVICE, "cuda: device %d does not exist (%d GPUs)", index, nd_cuda_device_count());
    if (nbytes <= 0) return ND_OK;
    if (nbytes > ((int64_t)1 << 46))
        return ND_ERROR(ND_ERR_MEMORY, "cuda: cannot allocate %lld bytes", (long long)nbytes);
    int64_t rounded;
    int k = nd_size_class(nbytes, &rounded);
    nd_dev_cache *c = &nd_caches[index];
    pthread_mutex_lock(&nd_alloc_lock);
    nd_block *b = c->free_list[k];
    if (b) {
        c->free_list[k] = b->next;
        *ptr = b->ptr;
        b->next = nd_spare_nodes;
        nd_spare_nodes = b;
        c->hits++;
    } else {
        int prev = 0;
        cudaGetDevice(&prev);
        if (prev != index) cudaSetDevice(index);
        cudaError_t e = cudaMalloc(ptr, (size_t)rounded);
        if (e == cudaErrorMemoryAllocation) {
            cudaGetLastError(); /* clear the sticky-free error state */
            nd_release_cached_locked(index);
            e = cudaMalloc(ptr, (size_t)rounded);
        }
        if (e != cudaSuccess) {
            cudaGetLastError();
            size_t fr = 0, tot = 0;
            cudaMemGetInfo(&fr, &tot);
            if (prev != index) cudaSetDevice(prev);
            int64_t live = c->live, cached = c->cached;
            pthread_mutex_unlock(&nd_alloc_lock);
            *ptr = NULL;
            return ND_ERROR(e == cudaErrorMemoryAllocation ? ND_ERR_MEMORY : ND_ERR_DEVICE,
                            "cuda: out of memory allocating %.1f MiB on cuda:%d (%s; tensors hold %.1f MiB, "
                            "cache %.1f MiB, driver reports %.1f MiB free of %.1f MiB)",
                            (double)nbytes / 1048576.0, index, cudaGetErrorString(e), (double)live / 1048576.0,
                            (double)cached / 1048576.0, (double)fr / 1048576.0, (double)tot / 1048576.0);
        }
        if (prev != index) cudaSetDevice(prev);
        c->cached += rounded;
        c->mallocs++;
    }
    c->live += rounded;
    if (c->live > c->peak) c->peak = c->live;
    pthread_mutex_unlock(&nd_alloc_lock);
    return ND_OK;
}

static void nd_cuda_free_hook(void *ptr, int64_t nbytes, int index)
{
    if (!ptr || nbytes <= 0 || index < 0 || index >= ND_ALLOC_MAX_DEVICES) return;
    int64_t rounded;
    int k = nd_size_class(nbytes, &rounded);
    nd_dev_cache *c = &nd_caches[index];
    pthread_mutex_lock(&nd_alloc_lock);
    nd_block *b = nd_spare_nodes;
    if (b) nd_spare_nodes = b->next;
    else b = (nd_block *)malloc(sizeof *b);
    if (!b) { /* no node to remember it by: give it back to the driver */
        c->cached -= rounded;
        c->live -= rounded;
        pthread_mutex_unlock(&nd_alloc_lock);
        cudaFree(ptr);
        return;
    }
    b->ptr = ptr;
    b->next = c->free_list[k];
    c->free_list[k] = b;
    c->live -= rounded;
    pthread_mutex_unlock(&nd_alloc_lock);
}

static nd_status nd_cuda_memset0_hook(void *ptr, int64_t nbytes, int index)
{
    int prev = 0;
    cudaGetDevice(&prev);
    if (prev != index) ND_CUDA_TRY(cudaSetDevice(index));
    cudaError_t e = cudaMemsetAsync(ptr, 0, (size_t)nbytes, nd_cuda_stream());
    if (prev != index) cudaSetDevice(prev);
    ND_CUDA_TRY(e);
    return ND_OK;
}

void nd_cuda_install_allocator(void)
{
    nd_device_allocator a;
    a.alloc = nd_cuda_alloc_hook;
    a.free = nd_cuda_free_hook;
    a.memset0 = nd_cuda_memset0_hook;
    nd_storage_set_allocator(ND_DEVICE_CUDA, &a);
}

nd_status nd_cuda_buffer_alloc(void **ptr, int64_t nbytes)
{
    return nd_cuda_alloc_hook(ptr, nbytes, nd_cuda_current_device());
}

void nd_cuda_buffer_free(void *ptr, int64_t nbytes) { nd_cuda_free_hook(ptr, nbytes, nd_cuda_current_device()); }

extern "C" void nd_cuda_memory(int64_t *allocated, int64_t *cached, int64_t *peak)
{
    int d = nd_cuda_current_device();
    if (d < 0 || d >= ND_ALLOC_MAX_DEVICES) d = 0;
    pthread_mutex_lock(&nd_alloc_lock);
    if (allocated) *allocated = nd_caches[d].live;
    if (cached) *cached = nd_caches[d].cached;
    if (peak) *peak = nd_caches[d].peak;
    pthread_mutex_unlock(&nd_alloc_lock);
}

extern "C" void nd_cuda_memory_stats(int index, int64_t *mallocs, int64_t *hits)
{
    if (index < 0 || index >= ND_ALLOC_MAX_DEVICES) index = 0;
    pthread_mutex_lock(&nd_alloc_lock);
    if (mallocs) *mallocs = nd_caches[index].mallocs;
    if (hits) *hits = nd_caches[index].hits;
    pthread_mutex_unlock(&nd_alloc_lock);
}

extern "C" void nd_cuda_reset_peak(void)
{
    int d = nd_cuda_current_device();
    if (d < 0 || d >= ND_ALLOC_MAX_DEVICES) return;
    pthread_mutex_lock(&nd_alloc_lock);
    nd_caches[d].peak = nd_caches[d].live;
    pthread_mutex_unlock(&nd_alloc_lock);
}

/* ---- pinned host buffers ---- */

#define ND_PINNED_SLOTS 8
#define ND_PINNED_MAX ((int64_t)512 << 20) /* larger requests are not cached */

typedef struct nd_pinned {
    void *ptr;
    int64_t size;
    int busy; /* taken and not yet given back */
    int device;
    cudaEvent_t done; /* recorded at give; the buffer is free once it completed */
} nd_pinned;

static nd_pinned nd_pins[ND_PINNED_SLOTS];
static pthread_mutex_t nd_pin_lock = PTHREAD_MUTEX_INITIALIZER;

static int nd_pin_idle(nd_pinned *p)
{
    if (!p->ptr || p->busy) return 0;
    if (!p->done) return 1;
    cudaError_t e = cudaEventQuery(p->done);
    if (e == cudaErrorNotReady) return 0;
    if (e != cudaSuccess) cudaGetLastError();
    return 1;
}

static void nd_pin_drop(nd_pinned *p)
{
    if (p->done) cudaEventSynchronize(p->done);
    if (p->done) cudaEventDestroy(p->done);
    if (p->ptr) cudaFreeHost(p->ptr);
    memset(p, 0, sizeof *p);
}

nd_status nd_cuda_pinned_take(void **ptr, int64_t nbytes, int *slot)
{
    *ptr = NULL;
    *slot = -1;
    if (nbytes <= 0 || nbytes > ND_PINNED_MAX) return ND_OK; /* caller falls back to pageable memory */
    pthread_mutex_lock(&nd_pin_lock);
    int best = -1, empty = -1, idle_small = -1;
    for (int i = 0; i < ND_PINNED_SLOTS; i++) {
        nd_pinned *p = &nd_pins[i];
        if (!p->ptr) {
            if (empty < 0) empty = i;
            continue;
        }
        if (!nd_pin_idle(p)) continue;
        if (p->size >= nbytes) {
            if (best < 0 || p->size < nd_pins[best].size) best = i;
        } else if (idle_small < 0) {
            idle_small = i;
        }
    }
    if (best < 0) {
        int i = empty >= 0 ? empty : idle_small;
        if (i < 0) { /* every slot busy: no staging this time */
            pthread_mutex_unlock(&nd_pin_lock);
            return ND_OK;
        }
        nd_pin_drop(&nd_pins[i]);
        int64_t size = (int64_t)1 << 20;
        while (size < nbytes) size <<= 1;
        void *h = NULL;
        if (cudaHostAlloc(&h, (size_t)size, cudaHostAllocPortable) != cudaSuccess) {
            cudaGetLastError();
            pthread_mutex_unlock(&nd_pin_lock);
            return ND_OK;
        }
        nd_pins[i].ptr = h;
        nd_pins[i].size = size;
        best = i;
    }
    nd_pins[best].busy = 1;
    *ptr = nd_pins[best].ptr;
    *slot = best;
    pthread_mutex_unlock(&nd_pin_lock);
    return ND_OK;
}

nd_status nd_cuda_pinned_give(int slot, int record)
{
    if (slot < 0 || slot >= ND_PINNED_SLOTS) return ND_OK;
    pthread_mutex_lock(&nd_pin_lock);
    nd_pinned *p = &nd_pins[slot];
    cudaError_t e = cudaSuccess;
    if (record) {
        int d = nd_cuda_current_device();
        if (p->done && p->device != d) {
            cudaEventDestroy(p->done);
            p->done = NULL;
        }
        if (!p->done) e = cudaEventCreateWithFlags(&p->done, cudaEventDisableTiming);
        if (e == cudaSuccess) e = cudaEventRecord(p->done, nd_cuda_stream());
        p->device = d;
    } else if (p->done) {
        cudaEventDestroy(p->done);
        p->done = NULL;
    }
    p->busy = 0;
    if (e != cudaSuccess) { /* no event: wait for the stream instead */
        cudaGetLastError();
        if (p->done) cudaEventDestroy(p->done);
        p->done = NULL;
        e = cudaStreamSynchronize(nd_cuda_stream());
    }
    pthread_mutex_unlock(&nd_pin_lock);
    ND_CUDA_TRY(e);
    return ND_OK;
}

static void nd_pinned_release_all(void)
{
    pthread_mutex_lock(&nd_pin_lock);
    for (int i = 0; i < ND_PINNED_SLOTS; i++)
        if (nd_pins[i].ptr && !nd_pins[i].busy) nd_pin_drop(&nd_pins[i]);
    pthread_mutex_unlock(&nd_pin_lock);
}

extern "C" nd_status nd_cuda_host_alloc(void **ptr, int64_t nbytes)
{
    *ptr = NULL;
    if (nbytes <= 0) return ND_OK;
    ND_CUDA_TRY(cudaHostAlloc(ptr, (size_t)nbytes, cudaHostAllocPortable));
    return ND_OK;
}

extern "C" void nd_cuda_host_free(void *ptr)
{
    if (ptr) cudaFreeHost(ptr);
}

extern "C" nd_status nd_cuda_empty_cache(void)
{
    int n = nd_cuda_device_count();
    if (n == 0) return ND_OK;
    /* cudaFree waits for the device, so queued kernels finish before their blocks go */
    pthread_mutex_lock(&nd_alloc_lock);
    for (int d = 0; d < n && d < ND_ALLOC_MAX_DEVICES; d++) nd_release_cached_locked(d);
    while (nd_spare_nodes) {
        nd_block *b = nd_spare_nodes;
        nd_spare_nodes = b->next;
        free(b);
    }
    pthread_mutex_unlock(&nd_alloc_lock);
    nd_pinned_release_all();
    ND_CUDA_TRY(cudaGetLastError());
    return ND_OK;
}
