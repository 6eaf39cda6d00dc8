#include "nd_storage.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static _Atomic int64_t nd_bytes_cpu;
static _Atomic int64_t nd_bytes_gpu;
static _Atomic int64_t nd_peak_cpu;
static nd_device_allocator nd_dev_alloc[2];

void nd_storage_set_allocator(nd_device_type type, const nd_device_allocator *a)
{
    if ((unsigned)type < 2) nd_dev_alloc[type] = *a;
}

nd_status nd_storage_new(nd_storage **out, int64_t nbytes, nd_device device, int zero)
{
    *out = NULL;
    if (nbytes < 0) return ND_ERROR(ND_ERR_ARG, "negative storage size %lld", (long long)nbytes);
    nd_storage *s = calloc(1, sizeof *s);
    if (!s) return ND_ERROR(ND_ERR_MEMORY, "out of memory allocating a storage header");
    s->nbytes = nbytes;
    s->device = device;
    s->refcount = 1;
    if (nbytes > 0) {
        if (device.type == ND_DEVICE_CPU) {
            size_t rounded = ((size_t)nbytes + 63) & ~(size_t)63;
            s->data = aligned_alloc(64, rounded);
            if (!s->data) {
                free(s);
                return ND_ERROR(ND_ERR_MEMORY, "out of memory allocating %lld bytes", (long long)nbytes);
            }
            if (zero) memset(s->data, 0, (size_t)nbytes);
            int64_t now = atomic_fetch_add(&nd_bytes_cpu, nbytes) + nbytes;
            int64_t peak = atomic_load(&nd_peak_cpu);
            while (now > peak && !atomic_compare_exchange_weak(&nd_peak_cpu, &peak, now)) {}
        } else {
            const nd_device_allocator *a = &nd_dev_alloc[ND_DEVICE_CUDA];
            if (!a->alloc) {
                free(s);
                return ND_ERROR(ND_ERR_DEVICE, "no GPU backend in this build");
            }
            nd_status st = a->alloc(&s->data, nbytes, device.index);
            if (st == ND_OK && zero) st = a->memset0(s->data, nbytes, device.index);
            if (st != ND_OK) {
                if (s->data) a->free(s->data, nbytes, device.index);
                free(s);
                return st;
            }
            atomic_fetch_add(&nd_bytes_gpu, nbytes);
        }
    }
    *out = s;
    return ND_OK;
}

void nd_storage_retain(nd_storage *s)
{
    if (s) atomic_fetch_add(&s->refcount, 1);
}

void nd_storage_release(nd_storage *s)
{
    if (!s) return;
    if (atomic_fetch_sub(&s->refcount, 1) != 1) return;
    if (s->data) {
        if (s->device.type == ND_DEVICE_CPU) {
            free(s->data);
            atomic_fetch_sub(&nd_bytes_cpu, s->nbytes);
        } else {
            nd_dev_alloc[ND_DEVICE_CUDA].free(s->data, s->nbytes, s->device.index);
            atomic_fetch_sub(&nd_bytes_gpu, s->nbytes);
        }
    }
    free(s);
}

int64_t nd_storage_bytes_cpu(void) { return atomic_load(&nd_bytes_cpu); }
int64_t nd_storage_bytes_gpu(void) { return atomic_load(&nd_bytes_gpu); }
int64_t nd_storage_peak_cpu(void) { return atomic_load(&nd_peak_cpu); }
