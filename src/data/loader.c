/* The batch loader: one worker thread per epoch prepares float32 batches (shuffle, crop, flip,
 * normalise) into a queue of two slots while the consumer trains on the previous batch.
 *
 * Threading: the worker touches only the loader's immutable fields (dataset views, options, lut)
 * and its own locals; the queue, the flags and the error travel under `mu`. Batches are fresh
 * tensors handed over with their reference, so a consumer may keep them. The worker never waits
 * on anything but queue space, and stop() wakes it, so stop/join cannot hang. Determinism: one
 * worker draws from one generator in a fixed order (the permutation, then per sample in batch
 * order: crop y offset, crop x offset, flip), seeded from (seed, epoch) only. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nd_data.h"

#define ND_LOADER_SLOTS 2

struct nd_loader {
    /* immutable after nd_loader_new */
    nd_tensor images; /* contiguous uint8 N x C x H x W (or N x H x W) */
    nd_tensor labels; /* contiguous int64 N */
    int64_t n, c, h, w, nbatches;
    nd_loader_opts o;
    float *lut; /* C x 256 */

    /* under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running;  /* a worker thread exists (not yet joined) */
    int stop;     /* asks the worker to quit */
    int finished; /* the worker produced its last batch or failed */
    nd_status err;
    char errmsg[1024];
    nd_tensor qx[ND_LOADER_SLOTS], qy[ND_LOADER_SLOTS];
    int qhead, qcount;
    int64_t epoch;
    pthread_t thread;
};

void nd_loader_opts_default(nd_loader_opts *o)
{
    memset(o, 0, sizeof *o);
    o->batch_size = 128;
    o->normalize = 1;
    o->nmean = 1;
    o->mean[0] = 0.0;
    o->std[0] = 1.0;
}

int64_t nd_loader_num_batches(const nd_loader *l) { return l->nbatches; }
int64_t nd_loader_num_samples(const nd_loader *l) { return l->n; }

nd_status nd_loader_new(nd_loader **out, const nd_tensor *images, const nd_tensor *labels, const nd_loader_opts *o)
{
    *out = NULL;
    char s1[ND_SHAPE_STR_MAX], s2[ND_SHAPE_STR_MAX];
    if (images->dtype != ND_DTYPE_U8 || (images->ndim != 3 && images->ndim != 4))
        return ND_ERROR(ND_ERR_SHAPE, "loader: expected uint8 images of N x C x H x W or N x H x W, got %s %s",
                        nd_dtype_name(images->dtype), nd_tensor_shape_str(images, s1, sizeof s1));
    if (labels->dtype != ND_DTYPE_I64 || labels->ndim != 1 || labels->size[0] != images->size[0])
        return ND_ERROR(ND_ERR_SHAPE, "loader: expected int64 labels of %lld, got %s %s (images %s)",
                        (long long)images->size[0], nd_dtype_name(labels->dtype),
                        nd_tensor_shape_str(labels, s2, sizeof s2), nd_tensor_shape_str(images, s1, sizeof s1));
    if (nd_tensor_device(images).type != ND_DEVICE_CPU || nd_tensor_device(labels).type != ND_DEVICE_CPU)
        return ND_ERROR(ND_ERR_DEVICE, "loader: the data set must be on the CPU");
    int64_t n = images->size[0];
    int64_t c = images->ndim == 4 ? images->size[1] : 1;
    int64_t h = images->size[images->ndim - 2], w = images->size[images->ndim - 1];
    if (n < 1 || c < 1 || h < 1 || w < 1)
        return ND_ERROR(ND_ERR_SHAPE, "loader: empty data set (%s)", nd_tensor_shape_str(images, s1, sizeof s1));
    if (o->batch_size < 1) return ND_ERROR(ND_ERR_ARG, "loader: batch size must be >= 1, got %lld", (long long)o->batch_size);
    if (o->crop_pad < 0 || o->crop_pad > 4096)
        return ND_ERROR(ND_ERR_ARG, "loader: crop padding must be in 0..4096, got %lld", (long long)o->crop_pad);
    if (o->normalize && (o->nmean < 1 || o->nmean > ND_LOADER_MAX_CHANNELS))
        return ND_ERROR(ND_ERR_ARG, "loader: %d means/stds", o->nmean);
    if (o->drop_last && n < o->batch_size)
        return ND_ERROR(ND_ERR_ARG, "loader: %lld samples make no full batch of %lld (drop_last)", (long long)n,
                        (long long)o->batch_size);

    nd_loader *l = calloc(1, sizeof *l);
    if (!l) return ND_ERROR(ND_ERR_MEMORY, "out of memory");
    l->lut = malloc(sizeof(float) * 256 * (size_t)c);
    if (!l->lut) {
        free(l);
        return ND_ERROR(ND_ERR_MEMORY, "out of memory");
    }
    nd_status s = nd_augment_lut(l->lut, c, o->normalize, o->nmean, o->mean, o->std);
    if (s != ND_OK) {
        free(l->lut);
        free(l);
        return s;
    }
    nd_tensor_init_empty(&l->images, ND_DTYPE_U8);
    nd_tensor_init_empty(&l->labels, ND_DTYPE_I64);
    for (int i = 0; i < ND_LOADER_SLOTS; i++) {
        nd_tensor_init_empty(&l->qx[i], ND_DTYPE_F32);
        nd_tensor_init_empty(&l->qy[i], ND_DTYPE_I64);
    }
    if ((s = nd_tensor_contiguous(&l->images, images)) != ND_OK ||
        (s = nd_tensor_contiguous(&l->labels, labels)) != ND_OK) {
        nd_tensor_release(&l->images);
        nd_tensor_release(&l->labels);
        free(l->lut);
        free(l);
        return s;
    }
    l->n = n, l->c = c, l->h = h, l->w = w;
    l->o = *o;
    l->nbatches = o->drop_last ? n / o->batch_size : (n + o->batch_size - 1) / o->batch_size;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    *out = l;
    return ND_OK;
}

/* The generator of one epoch: a function of (seed, epoch) only. */
static void nd_loader_seed(nd_rng *r, uint64_t seed, int64_t epoch)
{
    nd_rng base;
    nd_rng_seed(&base, seed);
    nd_rng_seed(r, nd_rng_next(&base) ^ ((uint64_t)epoch * 0xD1B54A32D192ED03ULL));
}

/* Fills one batch from samples order[0..b). */
static nd_status nd_loader_fill(const nd_loader *l, nd_rng *r, const int64_t *order, int64_t b, nd_tensor *x,
                                nd_tensor *y)
{
    int64_t xs[4] = {b, l->c, l->h, l->w};
    ND_TRY(nd_tensor_new(x, ND_DTYPE_F32, 4, xs, nd_cpu_device(), 0));
    ND_TRY(nd_tensor_new(y, ND_DTYPE_I64, 1, &b, nd_cpu_device(), 0));
    int64_t per = l->c * l->h * l->w, pad = l->o.crop_pad;
    const uint8_t *img = nd_tensor_data(&l->images);
    const int64_t *lab = nd_tensor_data(&l->labels);
    float *xd = nd_tensor_data(x);
    int64_t *yd = nd_tensor_data(y);
    for (int64_t i = 0; i < b; i++) {
        int64_t oy = pad, ox = pad;
        int flip = 0;
        if (pad > 0) {
            oy = nd_rng_below(r, 2 * pad + 1);
            ox = nd_rng_below(r, 2 * pad + 1);
        }
        if (l->o.flip) flip = nd_rng_uniform(r) < 0.5;
        int64_t j = order[i];
        nd_augment_sample(img + j * per, l->c, l->h, l->w, pad, ox, oy, flip, l->lut, xd + i * per);
        yd[i] = lab[j];
    }
    return ND_OK;
}

static void *nd_loader_worker(void *arg)
{
    nd_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    int64_t epoch = l->epoch;
    pthread_mutex_unlock(&l->mu);

    nd_status s = ND_OK;
    nd_rng r;
    nd_loader_seed(&r, l->o.seed, epoch);
    int64_t *order = malloc(sizeof(int64_t) * (size_t)l->n);
    if (!order) s = ND_ERROR(ND_ERR_MEMORY, "loader: out of memory for the sample order");
    else {
        for (int64_t i = 0; i < l->n; i++) order[i] = i;
        if (l->o.shuffle)
            for (int64_t i = l->n - 1; i > 0; i--) { /* Fisher-Yates */
                int64_t j = nd_rng_below(&r, i + 1), t = order[i];
                order[i] = order[j], order[j] = t;
            }
    }
    for (int64_t bi = 0; s == ND_OK && bi < l->nbatches; bi++) {
        pthread_mutex_lock(&l->mu);
        while (l->qcount == ND_LOADER_SLOTS && !l->stop) pthread_cond_wait(&l->cv, &l->mu);
        int stop = l->stop;
        pthread_mutex_unlock(&l->mu);
        if (stop) break;

        int64_t first = bi * l->o.batch_size;
        int64_t b = l->n - first < l->o.batch_size ? l->n - first : l->o.batch_size;
        nd_tensor x, y;
        nd_tensor_init_empty(&x, ND_DTYPE_F32);
        nd_tensor_init_empty(&y, ND_DTYPE_I64);
        s = nd_loader_fill(l, &r, order + first, b, &x, &y);
        pthread_mutex_lock(&l->mu);
        if (s == ND_OK && !l->stop) {
            int slot = (l->qhead + l->qcount) % ND_LOADER_SLOTS;
            l->qx[slot] = x, l->qy[slot] = y; /* the references move into the queue */
            l->qcount++;
            pthread_cond_broadcast(&l->cv);
        } else {
            nd_tensor_release(&x);
            nd_tensor_release(&y);
        }
        pthread_mutex_unlock(&l->mu);
    }
    free(order);
    pthread_mutex_lock(&l->mu);
    if (s != ND_OK) {
        l->err = s;
        snprintf(l->errmsg, sizeof l->errmsg, "%s", nd_error_message()); /* thread-local: copy it out */
    }
    l->finished = 1;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

void nd_loader_stop(nd_loader *l)
{
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    int running = l->running;
    l->stop = 1;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    if (running) pthread_join(l->thread, NULL);
    pthread_mutex_lock(&l->mu);
    l->running = 0;
    for (int i = 0; i < ND_LOADER_SLOTS; i++) {
        nd_tensor_release(&l->qx[i]);
        nd_tensor_release(&l->qy[i]);
    }
    l->qhead = l->qcount = 0;
    pthread_mutex_unlock(&l->mu);
}

nd_status nd_loader_start(nd_loader *l, int64_t epoch)
{
    nd_loader_stop(l);
    pthread_mutex_lock(&l->mu);
    l->stop = 0;
    l->finished = 0;
    l->err = ND_OK;
    l->errmsg[0] = 0;
    l->epoch = epoch;
    int rc = pthread_create(&l->thread, NULL, nd_loader_worker, l);
    l->running = rc == 0;
    if (rc != 0) l->finished = 1;
    pthread_mutex_unlock(&l->mu);
    if (rc != 0) return ND_ERROR(ND_ERR_MEMORY, "loader: cannot start the worker thread (error %d)", rc);
    return ND_OK;
}

nd_status nd_loader_next(nd_loader *l, nd_tensor *x, nd_tensor *y, int *done)
{
    nd_tensor_init_empty(x, ND_DTYPE_F32);
    nd_tensor_init_empty(y, ND_DTYPE_I64);
    *done = 0;
    pthread_mutex_lock(&l->mu);
    if (!l->running) {
        pthread_mutex_unlock(&l->mu);
        return ND_ERROR(ND_ERR_ARG, "loader: no epoch running (start one first)");
    }
    while (l->qcount == 0 && !l->finished) pthread_cond_wait(&l->cv, &l->mu);
    nd_status s = ND_OK;
    if (l->qcount > 0) {
        *x = l->qx[l->qhead], *y = l->qy[l->qhead];
        nd_tensor_init_empty(&l->qx[l->qhead], ND_DTYPE_F32);
        nd_tensor_init_empty(&l->qy[l->qhead], ND_DTYPE_I64);
        l->qhead = (l->qhead + 1) % ND_LOADER_SLOTS;
        l->qcount--;
        pthread_cond_broadcast(&l->cv);
    } else if (l->err != ND_OK) {
        s = nd_error_set(l->err, __FILE__, __LINE__, "%s", l->errmsg);
    } else {
        *done = 1;
    }
    pthread_mutex_unlock(&l->mu);
    return s;
}

void nd_loader_free(nd_loader *l)
{
    if (!l) return;
    nd_loader_stop(l);
    nd_tensor_release(&l->images);
    nd_tensor_release(&l->labels);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l->lut);
    free(l);
}
