/* IDX files (the MNIST format): a big-endian header, magic 0x0000 <type> <ndim>, ndim 32-bit
 * sizes, then the elements in row-major order. Only unsigned bytes (type 0x08) are read; zlib
 * reads raw and gzip'd files alike. */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "nd_data.h"
#include "nd_data_io.h"

#define ND_IDX_UBYTE 0x08
#define ND_IDX_MAX_BYTES ((int64_t)1 << 36) /* 64 GiB: a larger header is not a real data set */

static const char *nd_idx_type_name(int code)
{
    switch (code) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    default: return "unknown";
    }
}

/* Reads exactly n bytes; a short read is a truncated file. */
static nd_status nd_idx_gzread_all(gzFile gz, const char *path, void *buf, int64_t n, const char *what)
{
    char *p = buf;
    int64_t got = 0;
    while (got < n) {
        int64_t want = n - got;
        if (want > (1 << 30)) want = 1 << 30;
        int r = gzread(gz, p + got, (unsigned)want);
        if (r < 0) {
            int code;
            const char *msg = gzerror(gz, &code);
            return ND_ERROR(ND_ERR_IO, "%s: corrupt file (%s) while reading the %s", path,
                            code == Z_ERRNO ? strerror(errno) : msg, what);
        }
        if (r == 0) break;
        got += r;
    }
    if (got < n)
        return ND_ERROR(ND_ERR_IO, "%s: truncated IDX file: the %s need %lld bytes, only %lld left", path,
                        what, (long long)n, (long long)got);
    return ND_OK;
}

nd_status nd_idx_read(const char *path, int expect_ndim, nd_tensor *out)
{
    nd_tensor_init_empty(out, ND_DTYPE_U8);
    struct stat st;
    if (stat(path, &st) != 0) return ND_ERROR(ND_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return ND_ERROR(ND_ERR_IO, "%s: not a regular file", path);
    gzFile gz = gzopen(path, "rb");
    if (!gz) return ND_ERROR(ND_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    gzbuffer(gz, 1 << 17);

    nd_status s = ND_OK;
    unsigned char head[4 + 4 * ND_MAX_DIMS];
    int64_t size[ND_MAX_DIMS];
    int ndim = 0;
    if ((s = nd_idx_gzread_all(gz, path, head, 4, "magic number")) != ND_OK) goto done;
    uint32_t magic = nd_data_be32(head);
    ndim = head[3];
    if (head[0] != 0 || head[1] != 0 || ndim < 1 || ndim > ND_MAX_DIMS) {
        s = ND_ERROR(ND_ERR_IO, "%s: not an IDX file (magic 0x%08x)", path, (unsigned)magic);
        goto done;
    }
    if (head[2] != ND_IDX_UBYTE) {
        s = ND_ERROR(ND_ERR_IO, "%s: IDX element type 0x%02x (%s) is not supported, only unsigned bytes (0x08)",
                     path, head[2], nd_idx_type_name(head[2]));
        goto done;
    }
    if (expect_ndim > 0 && ndim != expect_ndim) {
        s = ND_ERROR(ND_ERR_IO, "%s: expected an IDX file of %d dims, got %d (magic 0x%08x)", path,
                     expect_ndim, ndim, (unsigned)magic);
        goto done;
    }
    if ((s = nd_idx_gzread_all(gz, path, head + 4, 4 * ndim, "header")) != ND_OK) goto done;
    int64_t total = 1;
    char shape[ND_SHAPE_STR_MAX];
    int pos = 0;
    for (int d = 0; d < ndim; d++) {
        size[d] = nd_data_be32(head + 4 + 4 * d);
        pos += snprintf(shape + pos, sizeof shape - pos, d ? "x%lld" : "%lld", (long long)size[d]);
        if (size[d] == 0 || size[d] > INT32_MAX) {
            s = ND_ERROR(ND_ERR_IO, "%s: IDX dimension %d has size %lld", path, d + 1, (long long)size[d]);
            goto done;
        }
        total *= size[d];
        if (total > ND_IDX_MAX_BYTES) {
            s = ND_ERROR(ND_ERR_IO, "%s: IDX header sizes (%s...) are too large to be real", path, shape);
            goto done;
        }
    }
    /* A raw file's size is known before reading: check it without allocating. */
    if (gzdirect(gz)) {
        int64_t have = (int64_t)st.st_size - 4 - 4 * ndim;
        if (have != total) {
            s = ND_ERROR(ND_ERR_IO, "%s: %s IDX file: the header says %s (%lld bytes of data), the file has %lld",
                         path, have < total ? "truncated" : "oversized", shape, (long long)total,
                         (long long)have);
            goto done;
        }
    }
    if ((s = nd_tensor_new(out, ND_DTYPE_U8, ndim, size, nd_cpu_device(), 0)) != ND_OK) goto done;
    if ((s = nd_idx_gzread_all(gz, path, nd_tensor_data(out), total, "data")) != ND_OK) goto done;
    unsigned char extra;
    int r = gzread(gz, &extra, 1);
    if (r != 0) {
        s = r < 0 ? ND_ERROR(ND_ERR_IO, "%s: corrupt file after the data", path)
                  : ND_ERROR(ND_ERR_IO, "%s: oversized IDX file: bytes after the %s elements", path, shape);
        goto done;
    }
done:
    gzclose(gz);
    if (s != ND_OK) nd_tensor_release(out);
    return s;
}

nd_status nd_idx_read_labels(const char *path, int64_t nclasses, nd_tensor *out)
{
    nd_tensor raw;
    nd_tensor_init_empty(out, ND_DTYPE_I64);
    ND_TRY(nd_idx_read(path, 1, &raw));
    int64_t n = raw.size[0];
    nd_status s = nd_tensor_new(out, ND_DTYPE_I64, 1, &n, nd_cpu_device(), 0);
    if (s == ND_OK) {
        const uint8_t *src = nd_tensor_data(&raw);
        int64_t *dst = nd_tensor_data(out);
        for (int64_t i = 0; i < n; i++) {
            if (nclasses > 0 && src[i] >= nclasses) {
                s = ND_ERROR(ND_ERR_IO, "%s: label %d of sample %lld is out of range for %lld classes", path,
                             src[i], (long long)i + 1, (long long)nclasses);
                break;
            }
            dst[i] = src[i];
        }
    }
    nd_tensor_release(&raw);
    if (s != ND_OK) nd_tensor_release(out);
    return s;
}

nd_status nd_idx_write(const char *path, const nd_tensor *t)
{
    if (t->dtype != ND_DTYPE_U8) return ND_ERROR(ND_ERR_DTYPE, "IDX write: expected a uint8 tensor, got %s", nd_dtype_name(t->dtype));
    if (t->ndim < 1 || t->ndim > 4) return ND_ERROR(ND_ERR_SHAPE, "IDX write: expected 1 to 4 dims, got %d", t->ndim);
    if (nd_tensor_device(t).type != ND_DEVICE_CPU) return ND_ERROR(ND_ERR_DEVICE, "IDX write: the tensor must be on the CPU");
    for (int d = 0; d < t->ndim; d++)
        if (t->size[d] > INT32_MAX) return ND_ERROR(ND_ERR_SHAPE, "IDX write: dimension %d too large", d + 1);
    size_t len = strlen(path);
    int gzip = len > 3 && strcmp(path + len - 3, ".gz") == 0;
    char tmp[4096];
    ND_TRY(nd_data_tmpname(path, tmp, sizeof tmp));
    nd_tensor c;
    ND_TRY(nd_tensor_contiguous(&c, t));
    nd_status s = ND_OK;
    gzFile gz = gzopen(tmp, gzip ? "wb6" : "wbT");
    if (!gz) {
        nd_tensor_release(&c);
        return ND_ERROR(ND_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    }
    unsigned char head[4 + 4 * 4] = {0, 0, ND_IDX_UBYTE, (unsigned char)t->ndim};
    for (int d = 0; d < t->ndim; d++) {
        uint32_t v = (uint32_t)t->size[d];
        head[4 + 4 * d] = v >> 24, head[5 + 4 * d] = v >> 16, head[6 + 4 * d] = v >> 8, head[7 + 4 * d] = v;
    }
    int bad = gzwrite(gz, head, 4 + 4 * t->ndim) != 4 + 4 * t->ndim;
    const char *p = nd_tensor_data(&c);
    int64_t n = nd_tensor_numel(&c);
    for (int64_t off = 0; !bad && off < n;) {
        int64_t k = n - off > (1 << 30) ? (1 << 30) : n - off;
        bad = gzwrite(gz, p + off, (unsigned)k) != (int)k;
        off += k;
    }
    int e = errno;
    if (gzclose(gz) != Z_OK) bad = 1;
    nd_tensor_release(&c);
    if (bad) {
        remove(tmp);
        return ND_ERROR(ND_ERR_IO, "cannot write %s: %s", path, strerror(e));
    }
    s = nd_data_tmp_rename(tmp, path);
    return s;
}
