/* Core tests: allocation, refcounts, views, view/reshape strides, copy across dtypes, iteration, rng. */
#include <string.h>

#include "nd.h"
#include "nd_test.h"

static nd_tensor arange_f32(int ndim, const int64_t *size)
{
    nd_tensor t;
    nd_tensor_new(&t, ND_DTYPE_F32, ndim, size, nd_cpu_device(), 0);
    float *p = (float *)nd_tensor_data(&t);
    for (int64_t i = 0; i < nd_tensor_numel(&t); i++) p[i] = (float)i;
    return t;
}

static float at2(const nd_tensor *t, int64_t i, int64_t j)
{
    return ((float *)nd_tensor_data(t))[i * t->stride[0] + j * t->stride[1]];
}

static void test_refcount(void)
{
    int64_t before = nd_storage_bytes_cpu();
    int64_t size[2] = {3, 4};
    nd_tensor a = arange_f32(2, size), v;
    ND_CHECK(nd_storage_bytes_cpu() - before == 48);
    nd_tensor_view_of(&v, &a);
    ND_CHECK(a.storage->refcount == 2);
    nd_tensor_release(&a);
    ND_CHECK(v.storage->refcount == 1);
    ND_CHECK(at2(&v, 2, 3) == 11.0f);
    nd_tensor_release(&v);
    nd_tensor_release(&v); /* idempotent */
    ND_CHECK(nd_storage_bytes_cpu() == before);
}

static void test_views(void)
{
    int64_t size[2] = {3, 4};
    nd_tensor a = arange_f32(2, size), v;
    nd_tensor_view_of(&v, &a);
    ND_CHECK_OK(nd_tensor_transpose(&v, 0, 1));
    ND_CHECK(v.size[0] == 4 && v.size[1] == 3 && !nd_tensor_is_contiguous(&v));
    ND_CHECK(at2(&v, 3, 2) == 11.0f && at2(&v, 1, 0) == 1.0f);
    ND_CHECK_OK(nd_tensor_narrow(&v, 0, 1, 2)); /* rows 1..2 of the transpose */
    ND_CHECK(at2(&v, 0, 0) == 1.0f && at2(&v, 1, 2) == 10.0f);
    ND_CHECK(nd_tensor_narrow(&v, 0, 1, 5) == ND_ERR_INDEX);
    ND_CHECK(strstr(nd_error_message(), "out of bounds") != NULL);
    ND_CHECK_OK(nd_tensor_select(&v, 1, 2)); /* column 2 -> 1-d {9, 10} */
    ND_CHECK(v.ndim == 1 && v.size[0] == 2 && ((float *)nd_tensor_data(&v))[v.stride[0]] == 10.0f);
    nd_tensor_release(&v);

    /* view: merging and splitting contiguous dims, refusing a transposed view */
    int64_t s3[3] = {2, 3, 4};
    nd_tensor b = arange_f32(3, s3);
    nd_tensor_view_of(&v, &b);
    int64_t flat[2] = {6, -1};
    ND_CHECK_OK(nd_tensor_view(&v, 2, flat));
    ND_CHECK(v.size[1] == 4 && v.stride[0] == 4);
    ND_CHECK_OK(nd_tensor_transpose(&v, 0, 1));
    int64_t bad[1] = {24};
    ND_CHECK(nd_tensor_view(&v, 1, bad) == ND_ERR_SHAPE);
    int64_t split[3] = {4, 3, 2}; /* splitting the (non-contiguous) second dim is fine */
    ND_CHECK_OK(nd_tensor_view(&v, 3, split));
    ND_CHECK(v.stride[0] == 1 && v.stride[1] == 8 && v.stride[2] == 4);
    nd_tensor_release(&v);
    /* a narrowed view can merge its inner dims but not across the gap */
    nd_tensor_view_of(&v, &b);
    ND_CHECK_OK(nd_tensor_narrow(&v, 1, 0, 2)); /* 2x2x4, strides 12,4,1 */
    int64_t m[2] = {2, 8};
    ND_CHECK_OK(nd_tensor_view(&v, 2, m));
    int64_t all[1] = {16};
    ND_CHECK(nd_tensor_view(&v, 1, all) == ND_ERR_SHAPE);
    nd_tensor_release(&v);

    /* expand, unsqueeze, squeeze, permute, unfold */
    int64_t s1[1] = {3};
    nd_tensor c = arange_f32(1, s1);
    nd_tensor_view_of(&v, &c);
    ND_CHECK_OK(nd_tensor_unsqueeze(&v, 0));
    int64_t e[2] = {4, 3};
    ND_CHECK_OK(nd_tensor_expand(&v, 2, e));
    ND_CHECK(v.stride[0] == 0 && at2(&v, 3, 2) == 2.0f);
    int64_t e2[2] = {4, 5};
    ND_CHECK(nd_tensor_expand(&v, 2, e2) == ND_ERR_SHAPE);
    nd_tensor_release(&v);
    nd_tensor_view_of(&v, &b);
    int perm[3] = {2, 0, 1};
    ND_CHECK_OK(nd_tensor_permute(&v, perm));
    ND_CHECK(v.size[0] == 4 && v.size[1] == 2 && v.size[2] == 3 && v.stride[0] == 1);
    int bad_perm[3] = {0, 0, 1};
    ND_CHECK(nd_tensor_permute(&v, bad_perm) == ND_ERR_ARG);
    nd_tensor_release(&v);
    nd_tensor_view_of(&v, &c);
    ND_CHECK_OK(nd_tensor_unfold(&v, 0, 2, 1)); /* {{0,1},{1,2}} */
    ND_CHECK(v.ndim == 2 && v.size[0] == 2 && v.size[1] == 2 && at2(&v, 1, 1) == 2.0f);
    nd_tensor_release(&v);
    nd_tensor_release(&a);
    nd_tensor_release(&b);
    nd_tensor_release(&c);
}

static void test_copy(void)
{
    int64_t size[2] = {3, 4};
    nd_tensor a = arange_f32(2, size), t, d;
    nd_tensor_view_of(&t, &a);
    nd_tensor_transpose(&t, 0, 1);
    ND_CHECK_OK(nd_tensor_clone(&d, &t, ND_DTYPE_F64)); /* 4x3 contiguous doubles */
    ND_CHECK(nd_tensor_is_contiguous(&d));
    const double *p = (const double *)nd_tensor_data(&d);
    int ok = 1;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) ok &= p[i * 3 + j] == (double)(j * 4 + i);
    ND_CHECK(ok);
    /* copy between different shapes with the same count, row-major */
    nd_tensor l;
    int64_t s1[1] = {12};
    nd_tensor_new(&l, ND_DTYPE_I64, 1, s1, nd_cpu_device(), 0);
    ND_CHECK_OK(nd_tensor_copy(&l, &t));
    ND_CHECK(((int64_t *)nd_tensor_data(&l))[1] == 4 && ((int64_t *)nd_tensor_data(&l))[11] == 11);
    nd_tensor u8;
    nd_tensor_new(&u8, ND_DTYPE_U8, 1, s1, nd_cpu_device(), 1);
    ND_CHECK_OK(nd_tensor_copy(&u8, &a));
    ND_CHECK(((uint8_t *)nd_tensor_data(&u8))[7] == 7);
    int64_t s5[1] = {5};
    nd_tensor small;
    nd_tensor_new(&small, ND_DTYPE_F32, 1, s5, nd_cpu_device(), 0);
    ND_CHECK(nd_tensor_copy(&small, &a) == ND_ERR_SHAPE);
    ND_CHECK(strstr(nd_error_message(), "5") && strstr(nd_error_message(), "3x4"));
    nd_tensor_release(&a);
    nd_tensor_release(&t);
    nd_tensor_release(&d);
    nd_tensor_release(&l);
    nd_tensor_release(&u8);
    nd_tensor_release(&small);
}

static void test_iter(void)
{
    /* a narrowed 3-d view: merged dims still visit every element once, in row-major order */
    int64_t size[3] = {4, 5, 6};
    nd_tensor a = arange_f32(3, size), v;
    nd_tensor_view_of(&v, &a);
    nd_tensor_narrow(&v, 1, 1, 3);
    nd_tensor_narrow(&v, 2, 2, 4);
    nd_iter it;
    const nd_tensor *ops[1] = {&v};
    nd_iter_init(&it, 1, ops);
    double sum = 0, expect = 0;
    int64_t count = 0, runs = 0;
    float last = -1;
    int ordered = 1;
    while (nd_iter_next(&it)) {
        runs++;
        for (int64_t i = 0; i < it.inner; i++) {
            float x = ((float *)it.ptr[0])[i * it.istride[0]];
            ordered &= x > last;
            last = x;
            sum += x;
            count++;
        }
    }
    for (int i = 0; i < 4; i++)
        for (int j = 1; j < 4; j++)
            for (int k = 2; k < 6; k++) expect += i * 30 + j * 6 + k;
    ND_CHECK(count == 48 && sum == expect && ordered && runs == 12);
    nd_tensor_release(&v);
    /* fully contiguous: one run */
    nd_iter_init(&it, 1, (const nd_tensor *[]){&a});
    runs = 0;
    while (nd_iter_next(&it)) runs++;
    ND_CHECK(runs == 1 && it.inner == 120);
    nd_tensor_release(&a);
}

static void test_rng(void)
{
    nd_rng r1, r2;
    nd_rng_seed(&r1, 42);
    nd_rng_seed(&r2, 42);
    int same = 1;
    for (int i = 0; i < 100; i++) same &= nd_rng_next(&r1) == nd_rng_next(&r2);
    ND_CHECK(same);
    double m = 0, s = 0;
    int n = 20000;
    for (int i = 0; i < n; i++) {
        double x = nd_rng_normal(&r1);
        m += x;
        s += x * x;
    }
    m /= n;
    s = s / n - m * m;
    ND_CHECK(fabs(m) < 0.03 && fabs(s - 1) < 0.05);
    nd_tensor p;
    ND_CHECK_OK(nd_rng_permutation(&r1, &p, 50));
    int seen[50] = {0}, okp = 1;
    for (int i = 0; i < 50; i++) {
        int64_t x = ((int64_t *)nd_tensor_data(&p))[i];
        okp &= x >= 0 && x < 50 && !seen[x];
        if (x >= 0 && x < 50) seen[x] = 1;
    }
    ND_CHECK(okp);
    nd_tensor_release(&p);
}

static void test_errors(void)
{
    nd_tensor t;
    int64_t neg[2] = {2, -1};
    ND_CHECK(nd_tensor_new(&t, ND_DTYPE_F32, 2, neg, nd_cpu_device(), 0) == ND_ERR_ARG);
    ND_CHECK(t.storage == NULL);
    int64_t big[2] = {INT64_MAX / 2, 4};
    ND_CHECK(nd_tensor_new(&t, ND_DTYPE_F32, 2, big, nd_cpu_device(), 0) != ND_OK);
    nd_device gpu = {ND_DEVICE_CUDA, 0};
    int64_t s[1] = {4};
    ND_CHECK(nd_tensor_new(&t, ND_DTYPE_F32, 1, s, gpu, 0) == ND_ERR_DEVICE);
}

void nd_test_core(void)
{
    test_refcount();
    test_views();
    test_copy();
    test_iter();
    test_rng();
    test_errors();
}
