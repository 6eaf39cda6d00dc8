/* PNG read and write through libpng. libpng reports errors by longjmp to the setjmp of the call
 * in progress: that is confined to nd_png_decode / nd_png_encode, which keep all their state in
 * a struct reached through an unchanging pointer (no volatile locals needed) and turn the jump
 * into a status. */
#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "nd_data.h"
#include "nd_data_io.h"

#define ND_PNG_MAX_BYTES ((int64_t)1 << 34) /* decoded size limit: 16 GiB */

typedef struct nd_png_state {
    FILE *f;
    png_structp png;
    png_infop info;
    uint8_t *pixels; /* H x W x C, interleaved */
    png_bytep *rows;
    uint32_t w, h;
    int channels;
    char msg[256];
} nd_png_state;

static void nd_png_on_error(png_structp png, png_const_charp msg)
{
    nd_png_state *st = png_get_error_ptr(png);
    snprintf(st->msg, sizeof st->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void nd_png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg; /* warnings (unknown chunks, bad ancillary CRCs) do not change the pixels */
}

/* Decodes st->f into st->pixels; 0 on success, 1 with st->msg set. */
static int nd_png_decode(nd_png_state *st)
{
    if (setjmp(png_jmpbuf(st->png))) return 1;
    png_init_io(st->png, st->f);
    png_set_sig_bytes(st->png, 8);
    png_read_info(st->png, st->info);
    png_uint_32 w, h;
    int depth, color, interlace;
    png_get_IHDR(st->png, st->info, &w, &h, &depth, &color, &interlace, NULL, NULL);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(st->png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(st->png);
    if (png_get_valid(st->png, st->info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(st->png);
    if (depth == 16) png_set_strip_16(st->png);
    png_set_interlace_handling(st->png);
    png_read_update_info(st->png, st->info);
    st->w = w;
    st->h = h;
    st->channels = png_get_channels(st->png, st->info);
    size_t rowbytes = png_get_rowbytes(st->png, st->info);
    if (rowbytes != (size_t)w * (size_t)st->channels || st->channels < 1 || st->channels > 4) {
        snprintf(st->msg, sizeof st->msg, "unexpected PNG layout after expansion (%d channels, %zu bytes per row)",
                 st->channels, rowbytes);
        return 1;
    }
    if ((int64_t)rowbytes * (int64_t)h > ND_PNG_MAX_BYTES) {
        snprintf(st->msg, sizeof st->msg, "image of %u x %u is too large", (unsigned)w, (unsigned)h);
        return 1;
    }
    st->pixels = malloc(rowbytes * h > 0 ? rowbytes * h : 1);
    st->rows = malloc(sizeof(png_bytep) * (h ? h : 1));
    if (!st->pixels || !st->rows) {
        snprintf(st->msg, sizeof st->msg, "out of memory for a %u x %u image", (unsigned)w, (unsigned)h);
        return 1;
    }
    for (png_uint_32 y = 0; y < h; y++) st->rows[y] = st->pixels + (size_t)y * rowbytes;
    png_read_image(st->png, st->rows);
    png_read_end(st->png, NULL);
    return 0;
}

nd_status nd_png_read(const char *path, nd_tensor *out)
{
    nd_tensor_init_empty(out, ND_DTYPE_U8);
    nd_png_state st = {0};
    st.f = fopen(path, "rb");
    if (!st.f) return ND_ERROR(ND_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    unsigned char sig[8];
    if (fread(sig, 1, 8, st.f) != 8 || png_sig_cmp(sig, 0, 8) != 0) {
        fclose(st.f);
        return ND_ERROR(ND_ERR_IO, "%s: not a PNG file (bad signature)", path);
    }
    nd_status s = ND_OK;
    st.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &st, nd_png_on_error, nd_png_on_warning);
    if (st.png) st.info = png_create_info_struct(st.png);
    if (!st.png || !st.info) s = ND_ERROR(ND_ERR_MEMORY, "out of memory creating a PNG reader");
    else {
        png_set_benign_errors(st.png, 0); /* data fidelity: a damaged stream is an error */
        if (nd_png_decode(&st) != 0) s = ND_ERROR(ND_ERR_IO, "%s: bad PNG file: %s", path, st.msg);
    }
    if (st.png) png_destroy_read_struct(&st.png, st.info ? &st.info : NULL, NULL);
    fclose(st.f);
    if (s == ND_OK) {
        int64_t c = st.channels, h = st.h, w = st.w;
        int64_t size[3] = {c, h, w};
        s = nd_tensor_new(out, ND_DTYPE_U8, 3, size, nd_cpu_device(), 0);
        if (s == ND_OK) {
            uint8_t *dst = nd_tensor_data(out);
            const uint8_t *src = st.pixels;
            int64_t plane = h * w;
            if (c == 1) memcpy(dst, src, (size_t)plane);
            else
                for (int64_t i = 0; i < plane; i++)
                    for (int64_t k = 0; k < c; k++) dst[k * plane + i] = src[i * c + k];
        }
    }
    free(st.pixels);
    free(st.rows);
    return s;
}

static int nd_png_encode(nd_png_state *st)
{
    static const int types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                 PNG_COLOR_TYPE_RGB_ALPHA};
    if (setjmp(png_jmpbuf(st->png))) return 1;
    png_init_io(st->png, st->f);
    png_set_IHDR(st->png, st->info, st->w, st->h, 8, types[st->channels], PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(st->png, st->info);
    png_write_image(st->png, st->rows);
    png_write_end(st->png, NULL);
    return 0;
}

nd_status nd_png_write(const char *path, const nd_tensor *img)
{
    char shape[ND_SHAPE_STR_MAX];
    int gray2d = img->ndim == 2;
    if (img->dtype != ND_DTYPE_U8 || !(gray2d || (img->ndim == 3 && img->size[0] >= 1 && img->size[0] <= 4)))
        return ND_ERROR(ND_ERR_SHAPE, "PNG write: expected a uint8 tensor of C x H x W (C 1 to 4) or H x W, got %s %s",
                        nd_dtype_name(img->dtype), nd_tensor_shape_str(img, shape, sizeof shape));
    if (nd_tensor_device(img).type != ND_DEVICE_CPU) return ND_ERROR(ND_ERR_DEVICE, "PNG write: the image must be on the CPU");
    int64_t c = gray2d ? 1 : img->size[0], h = img->size[gray2d ? 0 : 1], w = img->size[gray2d ? 1 : 2];
    int64_t sc = gray2d ? 0 : img->stride[0], sh = img->stride[gray2d ? 0 : 1], sw = img->stride[gray2d ? 1 : 2];
    if (h < 1 || w < 1 || h > 1000000 || w > 1000000)
        return ND_ERROR(ND_ERR_SHAPE, "PNG write: image of %lld x %lld pixels cannot be written", (long long)h, (long long)w);
    nd_png_state st = {0};
    st.w = (uint32_t)w, st.h = (uint32_t)h, st.channels = (int)c;
    st.pixels = malloc((size_t)(c * h * w));
    st.rows = malloc(sizeof(png_bytep) * (size_t)h);
    if (!st.pixels || !st.rows) {
        free(st.pixels);
        free(st.rows);
        return ND_ERROR(ND_ERR_MEMORY, "PNG write: out of memory");
    }
    const uint8_t *src = nd_tensor_data(img);
    for (int64_t y = 0; y < h; y++) {
        uint8_t *row = st.pixels + y * w * c;
        st.rows[y] = row;
        for (int64_t x = 0; x < w; x++)
            for (int64_t k = 0; k < c; k++) row[x * c + k] = src[k * sc + y * sh + x * sw];
    }
    char tmp[4096];
    nd_status s = nd_data_tmp_open(path, tmp, sizeof tmp, &st.f);
    if (s == ND_OK) {
        st.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &st, nd_png_on_error, nd_png_on_warning);
        if (st.png) st.info = png_create_info_struct(st.png);
        if (!st.png || !st.info) s = ND_ERROR(ND_ERR_MEMORY, "out of memory creating a PNG writer");
        else if (nd_png_encode(&st) != 0) s = ND_ERROR(ND_ERR_IO, "cannot write %s: %s", path, st.msg);
        if (st.png) png_destroy_write_struct(&st.png, st.info ? &st.info : NULL);
        if (s == ND_OK) s = nd_data_tmp_commit(st.f, tmp, path);
        else nd_data_tmp_abort(st.f, tmp);
    }
    free(st.pixels);
    free(st.rows);
    return s;
}
