/* Data sets for the nd engine: file readers (IDX, CIFAR binary batches, PNG), a PNG writer and
 * the batch loader that prepares augmented float32 batches on a background thread.
 *
 * Everything here is plain C over nd_tensor (no Lua). Every reader validates what it reads (magic
 * numbers, dims, counts, file sizes, label ranges): a truncated or foreign file gives an
 * ND_ERR_IO status with a message naming the file, never a crash. Class labels are 0-based, as
 * stored in the files; the Lua binding converts them to 1-based.
 * Writers are atomic: they write `<path>.tmp.<pid>` and rename it over `path`. */
#ifndef ND_DATA_H
#define ND_DATA_H

#include <stdint.h>

#include "nd.h"

/* ---- IDX (LeCun's MNIST format), raw or gzip-compressed (detected from the content) ---- */

/* Reads an unsigned-byte IDX file (magic 0x0000 08 <ndim>) into `out`: a new contiguous uint8
 * tensor with the file's dims. expect_ndim > 0 requires that many dims (3 for images). */
nd_status nd_idx_read(const char *path, int expect_ndim, nd_tensor *out);
/* Reads a 1-d IDX label file into a new int64 tensor `out` (N). nclasses > 0 checks every label
 * is in [0, nclasses). */
nd_status nd_idx_read_labels(const char *path, int64_t nclasses, nd_tensor *out);
/* Writes `t` (uint8, 1..4 dims, any strides) as an IDX file; gzip-compressed when path ends in
 * ".gz". Atomic. */
nd_status nd_idx_write(const char *path, const nd_tensor *t);

/* ---- CIFAR-10 / CIFAR-100 binary batches ---- */

#define ND_CIFAR_PIXELS 3072 /* 3 planes of 32 x 32, row-major: R then G then B */

/* Reads n batch files and concatenates them. label_bytes 1: CIFAR-10 records (label < 10, then
 * the pixels); 2: CIFAR-100 records (coarse < 20, fine < 100, then the pixels).
 * images: new uint8 N x 3 x 32 x 32; labels: new int64 N (the CIFAR-10 class or the CIFAR-100
 * fine class); coarse: new int64 N of coarse classes, only with label_bytes 2 (may be NULL). */
nd_status nd_cifar_read(const char *const *paths, int n, int label_bytes, nd_tensor *images,
                        nd_tensor *labels, nd_tensor *coarse);
/* Writes a batch file. images: uint8 N x 3 x 32 x 32 (any strides); labels: int64 N; coarse:
 * int64 N, required when label_bytes == 2, ignored otherwise. Atomic. */
nd_status nd_cifar_write(const char *path, int label_bytes, const nd_tensor *images,
                         const nd_tensor *labels, const nd_tensor *coarse);

/* ---- PNG (libpng) ---- */

/* Reads a PNG into a new uint8 C x H x W tensor: C = 1 (gray), 2 (gray + alpha), 3 (RGB) or 4
 * (RGBA). Palettes and 1/2/4-bit gray are expanded to 8 bits, transparency chunks become an
 * alpha channel, 16-bit samples are reduced to their high byte; no gamma correction. */
nd_status nd_png_read(const char *path, nd_tensor *out);
/* Writes img (uint8 C x H x W with C in 1..4, or H x W for gray; any strides) as an 8-bit PNG.
 * Atomic. */
nd_status nd_png_write(const char *path, const nd_tensor *img);

/* ---- augmentation (augment.c) ---- */

/* One sample: src is a contiguous uint8 C x H x W image, dst a float32 C x H x W output.
 * The output pixel (c, y, x) reads the source pixel (c, y + oy - pad, x' + ox - pad) with
 * x' = W - 1 - x when flip (else x), a zero byte when that lies outside the image (the random
 * crop of the image zero-padded by `pad`, then the horizontal flip); every byte b becomes
 * lut[c * 256 + b]. ox, oy in [0, 2 * pad]. */
void nd_augment_sample(const uint8_t *src, int64_t c, int64_t h, int64_t w, int64_t pad,
                       int64_t ox, int64_t oy, int flip, const float *lut, float *dst);
/* lut (C x 256) for channel means and stds: lut[c * 256 + b] = (b / 255 - mean[c]) / std[c],
 * computed in float32 like ToTensor + Normalize; with normalize == 0, b / 255. nmean is 1
 * (broadcast) or c. */
nd_status nd_augment_lut(float *lut, int64_t c, int normalize, int nmean, const double *mean,
                         const double *std);

/* ---- the batch loader (loader.c) ---- */

#define ND_LOADER_MAX_CHANNELS 64

typedef struct nd_loader_opts {
    int64_t batch_size; /* > 0 */
    int shuffle;        /* a fresh permutation every epoch */
    int64_t crop_pad;   /* > 0: random crop of the original size from the zero-padded image */
    int flip;           /* random horizontal flip with probability 1/2 */
    int normalize;      /* 1: (x / 255 - mean[c]) / std[c]; 0: x / 255 */
    int drop_last;      /* 0: the last partial batch is kept */
    int nmean;          /* 1 (broadcast to all channels) or C */
    double mean[ND_LOADER_MAX_CHANNELS];
    double std[ND_LOADER_MAX_CHANNELS];
    uint64_t seed;
} nd_loader_opts;

typedef struct nd_loader nd_loader;

/* batch 128, no shuffle/crop/flip, normalize with mean 0 std 1, keep the last batch, seed 0 */
void nd_loader_opts_default(nd_loader_opts *o);
/* A loader over images (uint8 N x C x H x W, or N x H x W read as C = 1; made contiguous) and
 * labels (int64 N, copied into the batches as they are). It keeps references to both. */
nd_status nd_loader_new(nd_loader **out, const nd_tensor *images, const nd_tensor *labels,
                        const nd_loader_opts *o);
int64_t nd_loader_num_batches(const nd_loader *l);
int64_t nd_loader_num_samples(const nd_loader *l);
/* Stops a running epoch and starts a worker thread preparing the batches of `epoch`, two ahead
 * (double buffering). The epoch's shuffle and augmentation come from the loader's own generator
 * seeded from (seed, epoch): the same seed and epoch give the same batches. */
nd_status nd_loader_start(nd_loader *l, int64_t epoch);
/* The next batch of the running epoch, waiting for the worker if needed. x: new float32
 * B x C x H x W, y: new int64 B (caller owns both). After the last batch *done = 1 and x, y are
 * left empty. A failure in the worker is reported here. */
nd_status nd_loader_next(nd_loader *l, nd_tensor *x, nd_tensor *y, int *done);
/* Stops the worker (it stops at its next check; nothing waits on the consumer) and joins it;
 * idempotent. */
void nd_loader_stop(nd_loader *l);
/* Stops and frees the loader and its references; NULL is ignored. */
void nd_loader_free(nd_loader *l);

#endif
