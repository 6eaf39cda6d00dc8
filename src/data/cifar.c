/* CIFAR-10 and CIFAR-100 binary batches: fixed-size records of label byte(s) then 3072 pixel
 * bytes (R, G, B planes of 32 x 32, row-major). No header: the file size and the label ranges
 * are what tell a real batch from a foreign file. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nd_data.h"
#include "nd_data_io.h"

#define ND_CIFAR_CHUNK 1024 /* records per read */

static const char *nd_cifar_name(int label_bytes) { return label_bytes == 1 ? "CIFAR-10" : "CIFAR-100"; }

/* Record count of one file from its size. */
static nd_status nd_cifar_count(const char *path, int label_bytes, int64_t *count)
{
    struct stat st;
    int64_t rec = label_bytes + ND_CIFAR_PIXELS;
    if (stat(path, &st) != 0) return ND_ERROR(ND_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return ND_ERROR(ND_ERR_IO, "%s: not a regular file", path);
    if (st.st_size == 0 || st.st_size % rec != 0)
        return ND_ERROR(ND_ERR_IO, "%s: not a %s binary batch: its %lld bytes are not a whole number of %lld-byte records%s",
                        path, nd_cifar_name(label_bytes), (long long)st.st_size, (long long)rec,
                        st.st_size % rec != 0 && st.st_size > rec ? " (truncated or foreign file)" : "");
    *count = st.st_size / rec;
    return ND_OK;
}

/* Reads `count` records of one file into the tensors from record `first` on. */
static nd_status nd_cifar_read_one(const char *path, int label_bytes, int64_t first, int64_t count, uint8_t *buf,
                                   uint8_t *pix, int64_t *fine, int64_t *coarse)
{
    int64_t rec = label_bytes + ND_CIFAR_PIXELS;
    FILE *f = fopen(path, "rb");
    if (!f) return ND_ERROR(ND_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    nd_status s = ND_OK;
    for (int64_t i = 0; i < count && s == ND_OK;) {
        int64_t k = count - i < ND_CIFAR_CHUNK ? count - i : ND_CIFAR_CHUNK;
        size_t got = fread(buf, (size_t)rec, (size_t)k, f);
        if ((int64_t)got != k) {
            s = ND_ERROR(ND_ERR_IO, "%s: truncated %s batch: record %lld of %lld is missing (%s)", path,
                         nd_cifar_name(label_bytes), (long long)(i + (int64_t)got + 1), (long long)count,
                         ferror(f) ? strerror(errno) : "file shrank while reading");
            break;
        }
        for (int64_t j = 0; j < k; j++) {
            const uint8_t *r = buf + j * rec;
            int64_t idx = first + i + j;
            if (label_bytes == 1) {
                if (r[0] >= 10) {
                    s = ND_ERROR(ND_ERR_IO, "%s: not a CIFAR-10 batch: record %lld has label %d (expected 0..9)",
                                 path, (long long)(i + j + 1), r[0]);
                    break;
                }
                fine[idx] = r[0];
            } else {
                if (r[0] >= 20 || r[1] >= 100) {
                    s = ND_ERROR(ND_ERR_IO, "%s: not a CIFAR-100 batch: record %lld has labels %d, %d (expected coarse 0..19, fine 0..99)",
                                 path, (long long)(i + j + 1), r[0], r[1]);
                    break;
                }
                if (coarse) coarse[idx] = r[0];
                fine[idx] = r[1];
            }
            memcpy(pix + idx * ND_CIFAR_PIXELS, r + label_bytes, ND_CIFAR_PIXELS);
        }
        i += k;
    }
    fclose(f);
    return s;
}

nd_status nd_cifar_read(const char *const *paths, int n, int label_bytes, nd_tensor *images, nd_tensor *labels,
                        nd_tensor *coarse)
{
    nd_tensor_init_empty(images, ND_DTYPE_U8);
    nd_tensor_init_empty(labels, ND_DTYPE_I64);
    if (coarse) nd_tensor_init_empty(coarse, ND_DTYPE_I64);
    if (label_bytes != 1 && label_bytes != 2)
        return ND_ERROR(ND_ERR_ARG, "CIFAR read: label_bytes must be 1 (CIFAR-10) or 2 (CIFAR-100), got %d", label_bytes);
    if (n < 1) return ND_ERROR(ND_ERR_ARG, "CIFAR read: no files given");
    int64_t *counts = calloc((size_t)n, sizeof *counts);
    if (!counts) return ND_ERROR(ND_ERR_MEMORY, "out of memory");
    int64_t total = 0;
    nd_status s = ND_OK;
    for (int i = 0; i < n && s == ND_OK; i++) {
        s = nd_cifar_count(paths[i], label_bytes, &counts[i]);
        total += counts[i];
    }
    uint8_t *buf = NULL;
    if (s == ND_OK) {
        int64_t isz[4] = {total, 3, 32, 32};
        s = nd_tensor_new(images, ND_DTYPE_U8, 4, isz, nd_cpu_device(), 0);
        if (s == ND_OK) s = nd_tensor_new(labels, ND_DTYPE_I64, 1, &total, nd_cpu_device(), 0);
        if (s == ND_OK && coarse && label_bytes == 2) s = nd_tensor_new(coarse, ND_DTYPE_I64, 1, &total, nd_cpu_device(), 0);
        if (s == ND_OK && !(buf = malloc((size_t)ND_CIFAR_CHUNK * (label_bytes + ND_CIFAR_PIXELS))))
            s = ND_ERROR(ND_ERR_MEMORY, "out of memory");
    }
    int64_t first = 0;
    for (int i = 0; i < n && s == ND_OK; i++) {
        s = nd_cifar_read_one(paths[i], label_bytes, first, counts[i], buf, nd_tensor_data(images),
                              nd_tensor_data(labels), coarse && label_bytes == 2 ? nd_tensor_data(coarse) : NULL);
        first += counts[i];
    }
    free(buf);
    free(counts);
    if (s != ND_OK) {
        nd_tensor_release(images);
        nd_tensor_release(labels);
        if (coarse) nd_tensor_release(coarse);
    }
    return s;
}

/* Label i of a 1-d int64 tensor of any stride. */
static inline int64_t nd_cifar_label(const nd_tensor *t, int64_t i)
{
    return ((const int64_t *)nd_tensor_data(t))[i * t->stride[0]];
}

static nd_status nd_cifar_check_labels(const nd_tensor *t, int64_t n, int64_t limit, const char *what)
{
    if (t->dtype != ND_DTYPE_I64 || t->ndim != 1 || t->size[0] != n)
        return ND_ERROR(ND_ERR_SHAPE, "CIFAR write: %s must be an int64 tensor of %lld labels", what, (long long)n);
    if (nd_tensor_device(t).type != ND_DEVICE_CPU) return ND_ERROR(ND_ERR_DEVICE, "CIFAR write: %s must be on the CPU", what);
    for (int64_t i = 0; i < n; i++) {
        int64_t v = nd_cifar_label(t, i);
        if (v < 0 || v >= limit)
            return ND_ERROR(ND_ERR_ARG, "CIFAR write: %s %lld of sample %lld is outside 0..%lld", what, (long long)v,
                            (long long)i + 1, (long long)limit - 1);
    }
    return ND_OK;
}

nd_status nd_cifar_write(const char *path, int label_bytes, const nd_tensor *images, const nd_tensor *labels,
                         const nd_tensor *coarse)
{
    if (label_bytes != 1 && label_bytes != 2)
        return ND_ERROR(ND_ERR_ARG, "CIFAR write: label_bytes must be 1 or 2, got %d", label_bytes);
    char shape[ND_SHAPE_STR_MAX];
    if (images->dtype != ND_DTYPE_U8 || images->ndim != 4 || images->size[1] != 3 || images->size[2] != 32 ||
        images->size[3] != 32 || images->size[0] < 1)
        return ND_ERROR(ND_ERR_SHAPE, "CIFAR write: expected uint8 images of N x 3 x 32 x 32, got %s %s",
                        nd_dtype_name(images->dtype), nd_tensor_shape_str(images, shape, sizeof shape));
    if (nd_tensor_device(images).type != ND_DEVICE_CPU) return ND_ERROR(ND_ERR_DEVICE, "CIFAR write: images must be on the CPU");
    int64_t n = images->size[0];
    ND_TRY(nd_cifar_check_labels(labels, n, label_bytes == 1 ? 10 : 100, "labels"));
    if (label_bytes == 2) {
        if (!coarse) return ND_ERROR(ND_ERR_ARG, "CIFAR write: CIFAR-100 records need coarse labels");
        ND_TRY(nd_cifar_check_labels(coarse, n, 20, "coarse labels"));
    }
    nd_tensor c;
    ND_TRY(nd_tensor_contiguous(&c, images));
    char tmp[4096];
    FILE *f = NULL;
    nd_status s = nd_data_tmp_open(path, tmp, sizeof tmp, &f);
    if (s != ND_OK) {
        nd_tensor_release(&c);
        return s;
    }
    const uint8_t *pix = nd_tensor_data(&c);
    int bad = 0;
    for (int64_t i = 0; i < n && !bad; i++) {
        uint8_t lab[2];
        if (label_bytes == 1) lab[0] = (uint8_t)nd_cifar_label(labels, i);
        else lab[0] = (uint8_t)nd_cifar_label(coarse, i), lab[1] = (uint8_t)nd_cifar_label(labels, i);
        bad = fwrite(lab, 1, (size_t)label_bytes, f) != (size_t)label_bytes ||
              fwrite(pix + i * ND_CIFAR_PIXELS, 1, ND_CIFAR_PIXELS, f) != ND_CIFAR_PIXELS;
    }
    nd_tensor_release(&c);
    if (bad) {
        int e = errno;
        nd_data_tmp_abort(f, tmp);
        return ND_ERROR(ND_ERR_IO, "cannot write %s: %s", path, strerror(e));
    }
    return nd_data_tmp_commit(f, tmp, path);
}
