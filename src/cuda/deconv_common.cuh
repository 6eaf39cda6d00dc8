/* Internal helpers of the CUDA deconvolution kernels (isqrt.cu, deconv.cu, channel_deconv.cu),
 * defined in deconv_common.cu; not part of the API. Everything queues work on nd_cuda_stream();
 * pointers are device pointers of element type dt (float32 or float64) unless said otherwise. */
#ifndef ND_CUDA_DECONV_COMMON_CUH
#define ND_CUDA_DECONV_COMMON_CUH

#include "common.cuh"
#include "nd_cuda_deconv.h"

extern "C" {

/* A float tensor on a GPU with storage; of dtype `dtype` when dtype >= 0. */
nd_status nd_dc_check_float_(const char *op, const char *what, const nd_tensor *t, int dtype);
/* An empty out is allocated contiguous on dev; otherwise it must be on dev, contiguous, of this
 * shape and dtype. */
nd_status nd_dc_prepare_out_(const char *op, const char *what, nd_tensor *out, nd_dtype dt, int ndim,
                             const int64_t *size, nd_device dev);
/* Row-major strided-batched product: C_i (m x n) = alpha op(A_i) op(B_i) + beta C_i for
 * i < batch, op = transpose when ta / tb, leading dimensions in elements, sA/sB/sC the element
 * distance between consecutive matrices. Default (non-TF32) cuBLAS math, host scalars. */
nd_status nd_dc_gemm_(nd_dtype dt, int ta, int tb, int64_t m, int64_t n, int64_t k, double alpha, const void *A,
                      int64_t lda, int64_t sA, const void *B, int64_t ldb, int64_t sB, double beta, void *C,
                      int64_t ldc, int64_t sC, int64_t batch);
/* sum[c] (double, device) = sign * the sum over r < rows of X[r*ld + c], c < cols (fixed
 * order: deterministic). */
nd_status nd_dc_colsum_(nd_dtype dt, double *sum, const void *X, int64_t rows, int64_t ld, int64_t cols, double sign);
/* C_j (ng x F x F, contiguous, dt) = A_j^T A_j / div + eps I with A_j (rows x F) the columns
 * j*F .. of A (row stride ld): cuBLAS products on chunks of ND_DECONV_CHUNK rows, summed in
 * double; exactly symmetric (the upper triangle mirrored). */
nd_status nd_dc_gram_(nd_dtype dt, void *C, const void *A, int64_t rows, int64_t ld, int64_t ng, int64_t F, double div,
                      double eps);
/* Scratch device memory of n bytes (the caching allocator); nd_dc_free_ is stream-ordered safe
 * right after the last queued use. */
nd_status nd_dc_alloc_(void **p, int64_t nbytes);
void nd_dc_free_(void *p, int64_t nbytes);

/* Temporaries of one call, released together: contiguous stand-ins of inputs (views when
 * already contiguous) and raw scratch buffers. Zero-initialise, then nd_dc_scratch_release. */
#define ND_DC_SCRATCH_MAX 12
typedef struct nd_dc_scratch {
    nd_tensor t[ND_DC_SCRATCH_MAX];
    int nt;
    void *buf[ND_DC_SCRATCH_MAX];
    int64_t bytes[ND_DC_SCRATCH_MAX];
    int nb;
} nd_dc_scratch;

/* *out = src when contiguous, else a contiguous device copy owned by sc; NULL or empty src
 * gives *out = NULL. */
static inline nd_status nd_dc_contig(nd_dc_scratch *sc, const nd_tensor *src, const nd_tensor **out)
{
    *out = NULL;
    if (!src || !src->storage) return ND_OK;
    if (nd_tensor_is_contiguous(src)) {
        *out = src;
        return ND_OK;
    }
    if (sc->nt >= ND_DC_SCRATCH_MAX) return ND_ERROR(ND_ERR_MEMORY, "deconv (cuda): too many temporaries");
    nd_status st = nd_tensor_contiguous(&sc->t[sc->nt], src);
    if (st != ND_OK) return st;
    *out = &sc->t[sc->nt++];
    return ND_OK;
}

/* A scratch buffer of nbytes (>= 1) owned by sc. */
static inline nd_status nd_dc_buffer(nd_dc_scratch *sc, void **p, int64_t nbytes)
{
    *p = NULL;
    if (sc->nb >= ND_DC_SCRATCH_MAX) return ND_ERROR(ND_ERR_MEMORY, "deconv (cuda): too many scratch buffers");
    if (nbytes < 1) nbytes = 1;
    nd_status st = nd_dc_alloc_(p, nbytes);
    if (st != ND_OK) return st;
    sc->buf[sc->nb] = *p;
    sc->bytes[sc->nb++] = nbytes;
    return ND_OK;
}

static inline void nd_dc_scratch_release(nd_dc_scratch *sc)
{
    for (int i = 0; i < sc->nt; i++)
        nd_tensor_release(&sc->t[i]);
    for (int i = 0; i < sc->nb; i++)
        nd_dc_free_(sc->buf[i], sc->bytes[i]);
    sc->nt = sc->nb = 0;
}
}

/* Runs `call` (an nd_status expression) on the device of tensor t, restoring the current device;
 * returns its status. */
#define ND_DC_ON_DEVICE(t, call)                                                                                       \
    do {                                                                                                               \
        const int prev_ =                                                                                              \
            nd_cuda_device_enter((t) && (t)->storage ? nd_tensor_device(t).index : nd_cuda_current_device());          \
        const nd_status st_ = (call);                                                                                  \
        nd_cuda_device_restore(prev_);                                                                                 \
        return st_;                                                                                                    \
    } while (0)

#define ND_DC_THREADS 256 /* threads per block of the grid-stride kernels */

#endif
