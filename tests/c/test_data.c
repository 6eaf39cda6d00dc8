/* Data tests on small generated files in a temp folder: IDX / CIFAR / PNG round trips, truncated
 * and foreign files, augmentation on a known image, and the threaded loader (coverage of every
 * sample, determinism, partial last batch, stopping mid-epoch). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nd.h"
#include "nd_data.h"
#include "nd_test.h"

static char dir[64];

static const char *tpath(const char *name)
{
    static char buf[4][400];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static nd_tensor new_u8(int ndim, const int64_t *size, int seed)
{
    nd_tensor t;
    nd_tensor_new(&t, ND_DTYPE_U8, ndim, size, nd_cpu_device(), 0);
    uint8_t *p = nd_tensor_data(&t);
    for (int64_t i = 0; i < nd_tensor_numel(&t); i++) p[i] = (uint8_t)(i * 7 + seed * 31 + (i >> 3));
    return t;
}

static nd_tensor new_i64(int64_t n, int64_t mod, int64_t mul)
{
    nd_tensor t;
    nd_tensor_new(&t, ND_DTYPE_I64, 1, &n, nd_cpu_device(), 0);
    int64_t *p = nd_tensor_data(&t);
    for (int64_t i = 0; i < n; i++) p[i] = (i * mul) % mod;
    return t;
}

static int same_bytes(const nd_tensor *a, const nd_tensor *b)
{
    if (!nd_tensor_same_shape(a, b) || a->dtype != b->dtype) return 0;
    return memcmp(nd_tensor_data(a), nd_tensor_data(b), (size_t)nd_tensor_numel(a) * nd_dtype_size(a->dtype)) == 0;
}

static long file_size(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

/* Copies the first n bytes of src to dst (n < 0: all but -n). */
static void copy_prefix(const char *src, const char *dst, long n)
{
    long size = file_size(src);
    if (n < 0) n = size + n;
    FILE *f = fopen(src, "rb"), *g = fopen(dst, "wb");
    for (long i = 0; i < n; i++) fputc(fgetc(f), g);
    fclose(f);
    fclose(g);
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    fwrite(p, 1, n, f);
    fclose(f);
}

static int msg_has(const char *s) { return strstr(nd_error_message(), s) != NULL; }

static void test_idx(void)
{
    int64_t size[3] = {3, 4, 5};
    nd_tensor img = new_u8(3, size, 1), back;
    ND_CHECK_OK(nd_idx_write(tpath("img.idx"), &img));
    ND_CHECK(file_size(tpath("img.idx")) == 16 + 60);
    ND_CHECK_OK(nd_idx_read(tpath("img.idx"), 3, &back));
    ND_CHECK(same_bytes(&img, &back));
    nd_tensor_release(&back);

    /* gzip'd, and a non-contiguous source */
    nd_tensor tr;
    nd_tensor_view_of(&tr, &img);
    nd_tensor_transpose(&tr, 1, 2); /* 3 x 5 x 4 */
    ND_CHECK_OK(nd_idx_write(tpath("tr.idx.gz"), &tr));
    ND_CHECK_OK(nd_idx_read(tpath("tr.idx.gz"), 0, &back));
    nd_tensor trc;
    nd_tensor_contiguous(&trc, &tr);
    ND_CHECK(back.size[1] == 5 && same_bytes(&trc, &back));
    nd_tensor_release(&back);
    nd_tensor_release(&trc);
    nd_tensor_release(&tr);

    /* labels */
    int64_t n = 7;
    nd_tensor lab = new_u8(1, &n, 0);
    uint8_t *lp = nd_tensor_data(&lab);
    for (int i = 0; i < 7; i++) lp[i] = (uint8_t)(i % 3);
    ND_CHECK_OK(nd_idx_write(tpath("lab.idx"), &lab));
    nd_tensor l64;
    ND_CHECK_OK(nd_idx_read_labels(tpath("lab.idx"), 3, &l64));
    ND_CHECK(l64.dtype == ND_DTYPE_I64 && l64.size[0] == 7 && ((int64_t *)nd_tensor_data(&l64))[5] == 2);
    nd_tensor_release(&l64);
    ND_CHECK(nd_idx_read_labels(tpath("lab.idx"), 2, &l64) == ND_ERR_IO && msg_has("out of range for 2 classes"));
    ND_CHECK(l64.storage == NULL);
    ND_CHECK(nd_idx_read_labels(tpath("img.idx"), 0, &l64) == ND_ERR_IO && msg_has("expected an IDX file of 1 dims, got 3"));

    /* truncated, oversized, foreign, missing files */
    copy_prefix(tpath("img.idx"), tpath("short.idx"), -1);
    ND_CHECK(nd_idx_read(tpath("short.idx"), 3, &back) == ND_ERR_IO && msg_has("truncated"));
    ND_CHECK(back.storage == NULL);
    copy_prefix(tpath("img.idx"), tpath("head.idx"), 10);
    ND_CHECK(nd_idx_read(tpath("head.idx"), 3, &back) == ND_ERR_IO && msg_has("truncated"));
    copy_prefix(tpath("tr.idx.gz"), tpath("short.idx.gz"), -12);
    ND_CHECK(nd_idx_read(tpath("short.idx.gz"), 3, &back) == ND_ERR_IO);
    ND_CHECK(back.storage == NULL);
    FILE *f = fopen(tpath("long.idx"), "wb");
    FILE *g = fopen(tpath("img.idx"), "rb");
    for (int c; (c = fgetc(g)) != EOF;) fputc(c, f);
    fputc(0, f);
    fclose(g);
    fclose(f);
    ND_CHECK(nd_idx_read(tpath("long.idx"), 3, &back) == ND_ERR_IO && msg_has("oversized"));
    write_bytes(tpath("foreign.txt"), "hello, world, not idx", 21);
    ND_CHECK(nd_idx_read(tpath("foreign.txt"), 3, &back) == ND_ERR_IO && msg_has("not an IDX file"));
    const unsigned char fl[] = {0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0};
    write_bytes(tpath("float.idx"), fl, sizeof fl);
    ND_CHECK(nd_idx_read(tpath("float.idx"), 1, &back) == ND_ERR_IO && msg_has("float"));
    const unsigned char huge[] = {0, 0, 8, 3, 0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff};
    write_bytes(tpath("huge.idx"), huge, sizeof huge);
    ND_CHECK(nd_idx_read(tpath("huge.idx"), 3, &back) == ND_ERR_IO && msg_has("too large"));
    ND_CHECK(nd_idx_read(tpath("absent.idx"), 3, &back) == ND_ERR_IO && msg_has("cannot open"));
    ND_CHECK(nd_idx_read(dir, 3, &back) == ND_ERR_IO && msg_has("not a regular file"));
    nd_tensor wrong;
    nd_tensor_new(&wrong, ND_DTYPE_F32, 1, &n, nd_cpu_device(), 1);
    ND_CHECK(nd_idx_write(tpath("x.idx"), &wrong) == ND_ERR_DTYPE);
    nd_tensor_release(&wrong);
    nd_tensor_release(&lab);
    nd_tensor_release(&img);
}

static void test_cifar(void)
{
    int64_t s1[4] = {5, 3, 32, 32}, s2[4] = {3, 3, 32, 32};
    nd_tensor a = new_u8(4, s1, 2), b = new_u8(4, s2, 3);
    nd_tensor la = new_i64(5, 10, 3), lb = new_i64(3, 10, 7);
    ND_CHECK_OK(nd_cifar_write(tpath("a.bin"), 1, &a, &la, NULL));
    ND_CHECK_OK(nd_cifar_write(tpath("b.bin"), 1, &b, &lb, NULL));
    ND_CHECK(file_size(tpath("a.bin")) == 5 * 3073);
    const char *paths[2] = {tpath("a.bin"), tpath("b.bin")};
    nd_tensor img, lab, coarse;
    ND_CHECK_OK(nd_cifar_read(paths, 2, 1, &img, &lab, NULL));
    ND_CHECK(img.ndim == 4 && img.size[0] == 8 && lab.size[0] == 8);
    ND_CHECK(memcmp(nd_tensor_data(&img), nd_tensor_data(&a), 5 * 3072) == 0);
    ND_CHECK(memcmp((uint8_t *)nd_tensor_data(&img) + 5 * 3072, nd_tensor_data(&b), 3 * 3072) == 0);
    int64_t *lp = nd_tensor_data(&lab);
    ND_CHECK(lp[1] == 3 && lp[4] == 2 && lp[5] == 0 && lp[6] == 7 && lp[7] == 4);
    nd_tensor_release(&img);
    nd_tensor_release(&lab);

    /* the record layout: label byte, then R, G, B planes row-major */
    FILE *f = fopen(tpath("a.bin"), "rb");
    unsigned char rec[3073];
    fseek(f, 3073, SEEK_SET);
    ND_CHECK(fread(rec, 1, 3073, f) == 3073);
    fclose(f);
    const uint8_t *ap = nd_tensor_data(&a);
    ND_CHECK(rec[0] == 3 && rec[1 + 1024 + 32 * 5 + 7] == ap[3072 + 1024 + 32 * 5 + 7]);

    /* CIFAR-100: coarse + fine */
    nd_tensor fine = new_i64(5, 100, 37), co = new_i64(5, 20, 9);
    ND_CHECK_OK(nd_cifar_write(tpath("c100.bin"), 2, &a, &fine, &co));
    ND_CHECK(file_size(tpath("c100.bin")) == 5 * 3074);
    const char *p100 = tpath("c100.bin");
    ND_CHECK_OK(nd_cifar_read(&p100, 1, 2, &img, &lab, &coarse));
    ND_CHECK(same_bytes(&img, &a) && same_bytes(&lab, &fine) && same_bytes(&coarse, &co));
    nd_tensor_release(&img);
    nd_tensor_release(&lab);
    nd_tensor_release(&coarse);
    ND_CHECK(nd_cifar_write(tpath("x.bin"), 2, &a, &fine, NULL) == ND_ERR_ARG);
    nd_tensor bad = new_i64(5, 100, 37);
    ND_CHECK(nd_cifar_write(tpath("x.bin"), 1, &a, &bad, NULL) == ND_ERR_ARG && msg_has("outside 0..9"));
    ND_CHECK(access(tpath("x.bin"), F_OK) != 0);

    /* truncated, foreign, wrong layout */
    copy_prefix(tpath("a.bin"), tpath("short.bin"), -100);
    const char *ps = tpath("short.bin");
    ND_CHECK(nd_cifar_read(&ps, 1, 1, &img, &lab, NULL) == ND_ERR_IO && msg_has("not a whole number"));
    ND_CHECK(img.storage == NULL && lab.storage == NULL);
    const char *pc = tpath("c100.bin");
    ND_CHECK(nd_cifar_read(&pc, 1, 1, &img, &lab, NULL) == ND_ERR_IO); /* 5 * 3074 is not k * 3073 */
    const char *pf = tpath("foreign.txt");
    ND_CHECK(nd_cifar_read(&pf, 1, 1, &img, &lab, NULL) == ND_ERR_IO && msg_has("CIFAR-10"));
    /* right size, but labels out of range: 3073 records of 3074 bytes read as CIFAR-100 */
    nd_tensor big, bigl;
    int64_t s3[4] = {3074, 3, 32, 32};
    big = new_u8(4, s3, 1);
    bigl = new_i64(3074, 10, 1);
    ND_CHECK_OK(nd_cifar_write(tpath("big.bin"), 1, &big, &bigl, NULL));
    const char *pb = tpath("big.bin");
    ND_CHECK(nd_cifar_read(&pb, 1, 2, &img, &lab, &coarse) == ND_ERR_IO && msg_has("not a CIFAR-100 batch"));
    ND_CHECK(img.storage == NULL && coarse.storage == NULL);
    const char *two[2] = {tpath("a.bin"), tpath("absent.bin")};
    ND_CHECK(nd_cifar_read(two, 2, 1, &img, &lab, NULL) == ND_ERR_IO && msg_has("absent.bin"));
    ND_CHECK(nd_cifar_write(tpath("x.bin"), 1, &la, &la, NULL) == ND_ERR_SHAPE);
    nd_tensor_release(&big);
    nd_tensor_release(&bigl);
    nd_tensor_release(&bad);
    nd_tensor_release(&fine);
    nd_tensor_release(&co);
    nd_tensor_release(&a);
    nd_tensor_release(&b);
    nd_tensor_release(&la);
    nd_tensor_release(&lb);
}

static void test_png(void)
{
    for (int c = 1; c <= 4; c++) {
        int64_t size[3] = {c, 5, 7};
        nd_tensor img = new_u8(3, size, c), back;
        char name[32];
        snprintf(name, sizeof name, "c%d.png", c);
        ND_CHECK_OK(nd_png_write(tpath(name), &img));
        ND_CHECK_OK(nd_png_read(tpath(name), &back));
        ND_CHECK(same_bytes(&img, &back));
        nd_tensor_release(&back);
        nd_tensor_release(&img);
    }
    /* H x W gray, and a non-contiguous RGB view */
    int64_t s2[2] = {6, 9};
    nd_tensor gray = new_u8(2, s2, 4), back;
    ND_CHECK_OK(nd_png_write(tpath("gray.png"), &gray));
    ND_CHECK_OK(nd_png_read(tpath("gray.png"), &back));
    ND_CHECK(back.ndim == 3 && back.size[0] == 1 && back.size[1] == 6 && back.size[2] == 9);
    ND_CHECK(memcmp(nd_tensor_data(&back), nd_tensor_data(&gray), 54) == 0);
    nd_tensor_release(&back);
    int64_t s3[3] = {8, 3, 4}; /* W x C x H, permuted to C x H x W */
    nd_tensor raw = new_u8(3, s3, 5), v, vc;
    nd_tensor_view_of(&v, &raw);
    int perm[3] = {1, 2, 0};
    nd_tensor_permute(&v, perm);
    ND_CHECK_OK(nd_png_write(tpath("perm.png"), &v));
    ND_CHECK_OK(nd_png_read(tpath("perm.png"), &back));
    nd_tensor_contiguous(&vc, &v);
    ND_CHECK(same_bytes(&vc, &back));
    nd_tensor_release(&back);
    nd_tensor_release(&vc);
    nd_tensor_release(&v);
    nd_tensor_release(&raw);

    /* overwrite in place (atomic rename), truncated and foreign files, bad tensors */
    ND_CHECK_OK(nd_png_write(tpath("gray.png"), &gray));
    copy_prefix(tpath("c3.png"), tpath("short.png"), -30);
    ND_CHECK(nd_png_read(tpath("short.png"), &back) == ND_ERR_IO && msg_has("bad PNG"));
    ND_CHECK(back.storage == NULL);
    copy_prefix(tpath("c3.png"), tpath("sig.png"), 12);
    ND_CHECK(nd_png_read(tpath("sig.png"), &back) == ND_ERR_IO);
    ND_CHECK(nd_png_read(tpath("img.idx"), &back) == ND_ERR_IO && msg_has("not a PNG"));
    ND_CHECK(nd_png_read(tpath("absent.png"), &back) == ND_ERR_IO && msg_has("cannot open"));
    int64_t s5[3] = {5, 2, 2};
    nd_tensor five = new_u8(3, s5, 0);
    ND_CHECK(nd_png_write(tpath("five.png"), &five) == ND_ERR_SHAPE);
    ND_CHECK(nd_png_write("/nonexistent-dir/x.png", &gray) == ND_ERR_IO);
    nd_tensor_release(&five);
    nd_tensor_release(&gray);

    /* no temp files left behind by any writer */
    DIR *d = opendir(dir);
    int tmps = 0;
    for (struct dirent *e; (e = readdir(d));) tmps += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    ND_CHECK(tmps == 0);
}

static void test_augment(void)
{
    /* a 2-channel 3 x 4 image with distinct bytes */
    uint8_t src[24];
    for (int i = 0; i < 24; i++) src[i] = (uint8_t)(10 + i);
    float lut[512];
    double mean[2] = {0.5, 0.25}, std[2] = {0.5, 2.0};
    ND_CHECK_OK(nd_augment_lut(lut, 2, 1, 2, mean, std));
    ND_CHECK_NEAR(lut[255], 1.0, 1e-6);
    ND_CHECK_NEAR(lut[256 + 51], (0.2 - 0.25) / 2.0, 1e-6);
    ND_CHECK(nd_augment_lut(lut, 3, 1, 2, mean, std) == ND_ERR_ARG);
    double zero[1] = {0.0};
    ND_CHECK(nd_augment_lut(lut, 1, 1, 1, mean, zero) == ND_ERR_ARG);
    float ident[512];
    ND_CHECK_OK(nd_augment_lut(ident, 2, 0, 1, NULL, NULL)); /* b / 255 */
    for (int i = 0; i < 512; i++) ident[i] = (float)(i % 256); /* identity table: outputs are bytes */

    float out[24];
    nd_augment_sample(src, 2, 3, 4, 0, 0, 0, 0, ident, out);
    int ok = 1;
    for (int i = 0; i < 24; i++) ok &= out[i] == src[i];
    ND_CHECK(ok);
    nd_augment_sample(src, 2, 3, 4, 0, 0, 0, 1, ident, out); /* flip */
    ok = 1;
    for (int c = 0; c < 2; c++)
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 4; x++) ok &= out[c * 12 + y * 4 + x] == src[c * 12 + y * 4 + 3 - x];
    ND_CHECK(ok);
    /* pad 2, offsets (oy 0, ox 3): out(y, x) = src(y - 2, x + 1) or 0 */
    nd_augment_sample(src, 2, 3, 4, 2, 3, 0, 0, ident, out);
    ok = 1;
    for (int c = 0; c < 2; c++)
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 4; x++) {
                int sy = y - 2, sx = x + 1;
                float want = (sy >= 0 && sy < 3 && sx < 4) ? src[c * 12 + sy * 4 + sx] : 0.0f;
                ok &= out[c * 12 + y * 4 + x] == want;
            }
    ND_CHECK(ok);
    ND_CHECK(out[0] == 0.0f && out[2 * 4 + 0] == src[1] && out[2 * 4 + 3] == 0.0f);
    /* crop then flip: out(y, x) = crop(y, W-1-x) */
    nd_augment_sample(src, 2, 3, 4, 2, 3, 0, 1, ident, out);
    ND_CHECK(out[2 * 4 + 0] == 0.0f && out[2 * 4 + 3] == src[1] && out[2 * 4 + 1] == src[3]);
    /* the padded bytes go through the table too: normalised zero */
    nd_augment_sample(src, 2, 3, 4, 1, 0, 0, 0, lut, out);
    ND_CHECK_NEAR(out[0], (0.0 - 0.5) / 0.5, 1e-6);
    ND_CHECK_NEAR(out[12], (0.0 - 0.25) / 2.0, 1e-6);
    ND_CHECK_NEAR(out[1 * 4 + 1], lut[src[0]], 1e-6);
}

/* A data set of n single-channel h x w images whose pixels encode the sample index. */
static void make_set(int64_t n, int64_t h, int64_t w, nd_tensor *images, nd_tensor *labels)
{
    int64_t size[4] = {n, 1, h, w};
    nd_tensor_new(images, ND_DTYPE_U8, 4, size, nd_cpu_device(), 0);
    uint8_t *p = nd_tensor_data(images);
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < h * w; k++) p[i * h * w + k] = (uint8_t)(k == 0 ? i % 256 : 1 + (i + k) % 250);
    *labels = new_i64(n, n, 1); /* label = sample index */
}

/* Runs one epoch; returns the number of batches, fills labels seen (in order) and sizes. */
static int64_t run_epoch(nd_loader *l, int64_t epoch, int64_t *seen, int64_t *sizes, float *firstx, int64_t nfirst)
{
    if (nd_loader_start(l, epoch) != ND_OK) return -1;
    int64_t nb = 0, k = 0;
    for (;;) {
        nd_tensor x, y;
        int done;
        if (nd_loader_next(l, &x, &y, &done) != ND_OK) return -1;
        if (done) break;
        if (nb == 0 && firstx) memcpy(firstx, nd_tensor_data(&x), sizeof(float) * (size_t)nfirst);
        for (int64_t i = 0; i < y.size[0]; i++) seen[k++] = ((int64_t *)nd_tensor_data(&y))[i];
        if (sizes) sizes[nb] = y.size[0];
        nb++;
        nd_tensor_release(&x);
        nd_tensor_release(&y);
    }
    return nb;
}

static void test_loader(void)
{
    nd_tensor images, labels;
    make_set(10, 3, 4, &images, &labels);
    nd_loader_opts o;
    nd_loader_opts_default(&o);
    o.batch_size = 4;
    o.shuffle = 1;
    o.seed = 42;
    nd_loader *l = NULL;
    ND_CHECK_OK(nd_loader_new(&l, &images, &labels, &o));
    ND_CHECK(nd_loader_num_batches(l) == 3 && nd_loader_num_samples(l) == 10);

    int64_t seen[10], seen2[10], sizes[3];
    ND_CHECK(run_epoch(l, 1, seen, sizes, NULL, 0) == 3);
    ND_CHECK(sizes[0] == 4 && sizes[1] == 4 && sizes[2] == 2);
    int count[10] = {0}, inorder = 1;
    for (int i = 0; i < 10; i++) count[seen[i]]++, inorder &= seen[i] == i;
    int once = 1;
    for (int i = 0; i < 10; i++) once &= count[i] == 1;
    ND_CHECK(once && !inorder);
    ND_CHECK(run_epoch(l, 1, seen2, NULL, NULL, 0) == 3);
    ND_CHECK(memcmp(seen, seen2, sizeof seen) == 0); /* same seed and epoch */
    ND_CHECK(run_epoch(l, 2, seen2, NULL, NULL, 0) == 3);
    ND_CHECK(memcmp(seen, seen2, sizeof seen) != 0); /* another epoch, another order */
    /* the global generator plays no part */
    nd_rng_seed(nd_rng_global(), 12345);
    ND_CHECK(run_epoch(l, 1, seen2, NULL, NULL, 0) == 3);
    ND_CHECK(memcmp(seen, seen2, sizeof seen) == 0);

    /* stop mid-epoch (the worker is blocked on a full queue), restart, free while running */
    nd_tensor x, y;
    int done;
    ND_CHECK_OK(nd_loader_start(l, 3));
    ND_CHECK_OK(nd_loader_next(l, &x, &y, &done));
    ND_CHECK(!done && x.size[0] == 4 && x.ndim == 4 && x.size[1] == 1 && x.dtype == ND_DTYPE_F32);
    nd_tensor_release(&x);
    nd_tensor_release(&y);
    nd_loader_stop(l);
    nd_loader_stop(l);
    ND_CHECK(nd_loader_next(l, &x, &y, &done) == ND_ERR_ARG && msg_has("no epoch running"));
    ND_CHECK_OK(nd_loader_start(l, 1));
    ND_CHECK_OK(nd_loader_start(l, 1));
    nd_loader_free(l);
    nd_loader_free(NULL);

    /* no augmentation, no shuffle: x is exactly the normalised image, in order */
    o.shuffle = 0;
    o.nmean = 1, o.mean[0] = 0.5, o.std[0] = 0.25;
    ND_CHECK_OK(nd_loader_new(&l, &images, &labels, &o));
    float first[48];
    ND_CHECK(run_epoch(l, 1, seen, NULL, first, 48) == 3);
    const uint8_t *ip = nd_tensor_data(&images);
    int ok = 1;
    for (int i = 0; i < 48; i++) ok &= first[i] == ((float)ip[i] / 255.0f - 0.5f) / 0.25f;
    ND_CHECK(ok && seen[0] == 0 && seen[9] == 9);
    nd_loader_free(l);

    /* crop + flip: each output image is one of the (2p+1)^2 * 2 transforms of its source */
    nd_loader_opts_default(&o);
    o.batch_size = 10, o.crop_pad = 1, o.flip = 1, o.normalize = 0, o.seed = 7;
    ND_CHECK_OK(nd_loader_new(&l, &images, &labels, &o));
    float xs[10 * 12];
    int matched = 1, moved = 0;
    for (int64_t e = 1; e <= 3; e++) {
        ND_CHECK(run_epoch(l, e, seen, NULL, xs, 120) == 1);
        float lut[256], cand[12];
        nd_augment_lut(lut, 1, 0, 1, NULL, NULL);
        for (int i = 0; i < 10; i++) {
            int found = 0;
            for (int oy = 0; oy <= 2 && !found; oy++)
                for (int ox = 0; ox <= 2 && !found; ox++)
                    for (int f = 0; f <= 1 && !found; f++) {
                        nd_augment_sample(ip + seen[i] * 12, 1, 3, 4, 1, ox, oy, f, lut, cand);
                        found = memcmp(cand, xs + i * 12, sizeof cand) == 0;
                        if (found && (ox != 1 || oy != 1 || f)) moved++;
                    }
            matched &= found;
        }
    }
    ND_CHECK(matched && moved > 10);
    nd_loader_free(l);

    /* drop_last, and a dataset of N x H x W */
    int64_t s3[3] = {10, 3, 4};
    nd_tensor im3;
    nd_tensor_view_of(&im3, &images);
    nd_tensor_view(&im3, 3, s3);
    nd_loader_opts_default(&o);
    o.batch_size = 4, o.drop_last = 1;
    ND_CHECK_OK(nd_loader_new(&l, &im3, &labels, &o));
    ND_CHECK(nd_loader_num_batches(l) == 2 && run_epoch(l, 1, seen, sizes, NULL, 0) == 2 && sizes[1] == 4);
    nd_loader_free(l);

    /* bad arguments */
    o.drop_last = 0;
    ND_CHECK(nd_loader_new(&l, &labels, &labels, &o) == ND_ERR_SHAPE && l == NULL);
    nd_tensor short_lab = new_i64(9, 9, 1);
    ND_CHECK(nd_loader_new(&l, &images, &short_lab, &o) == ND_ERR_SHAPE);
    o.batch_size = 0;
    ND_CHECK(nd_loader_new(&l, &images, &labels, &o) == ND_ERR_ARG);
    o.batch_size = 4, o.nmean = 3;
    ND_CHECK(nd_loader_new(&l, &images, &labels, &o) == ND_ERR_ARG && msg_has("3 means/stds for 1 channels"));
    nd_tensor_release(&short_lab);
    nd_tensor_release(&im3);
    nd_tensor_release(&images);
    nd_tensor_release(&labels);

    /* the reference's CIFAR epoch: 50000 / 128 -> 391 batches, the last of 80 */
    int64_t big[4] = {50000, 1, 1, 1};
    nd_tensor bi;
    nd_tensor_new(&bi, ND_DTYPE_U8, 4, big, nd_cpu_device(), 1);
    nd_tensor bl = new_i64(50000, 50000, 1);
    nd_loader_opts_default(&o);
    o.shuffle = 1;
    ND_CHECK_OK(nd_loader_new(&l, &bi, &bl, &o));
    int64_t *bseen = malloc(sizeof(int64_t) * 50000), bsizes[391];
    ND_CHECK(run_epoch(l, 1, bseen, bsizes, NULL, 0) == 391 && bsizes[390] == 80 && bsizes[0] == 128);
    char *hit = calloc(50000, 1);
    int all = 1;
    for (int i = 0; i < 50000; i++) all &= !hit[bseen[i]]++;
    ND_CHECK(all);
    free(hit);
    free(bseen);
    nd_loader_free(l);
    nd_tensor_release(&bi);
    nd_tensor_release(&bl);
}

static void cleanup(void)
{
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) remove(tpath(e->d_name));
    closedir(d);
    rmdir(dir);
}

void nd_test_data(void)
{
    snprintf(dir, sizeof dir, "/tmp/nd-test-data-XXXXXX");
    if (!mkdtemp(dir)) {
        ND_CHECK(!"cannot create a temp folder");
        return;
    }
    int64_t before = nd_storage_bytes_cpu();
    test_idx();
    test_cifar();
    test_png();
    test_augment();
    test_loader();
    ND_CHECK(nd_storage_bytes_cpu() == before); /* every tensor and batch released */
    cleanup();
}
