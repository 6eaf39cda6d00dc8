/* Matrix products on the CPU: gemm (plain reference and OpenBLAS), batched gemm, gemv, ger, dot,
 * and the thread count shared by OpenBLAS and our OpenMP loops. Contracts: nd_cpu_linalg.h. */
#include <cblas.h>
#include <limits.h>
#include <omp.h>
#include <string.h>

#include "nd_cpu_linalg.h"

#define SHAPE(t, buf) nd_tensor_shape_str((t), (buf), (int)sizeof(buf))

/* ---- helpers shared by the products ---- */

#define same_view nd_linalg_same_view
#define shares_storage nd_linalg_shares_storage
#define load_c nd_linalg_load_c

static nd_status check_cpu(const char *op, const nd_tensor *t)
{
    if (t->storage && t->storage->device.type != ND_DEVICE_CPU)
        return ND_ERROR(ND_ERR_DEVICE, "%s: CPU kernel given a GPU tensor", op);
    return ND_OK;
}

/* Both operands on the CPU (after the shared shape and dtype checks of math_check.c). */
static nd_status check_cpu2(const char *op, const nd_tensor *a, const nd_tensor *b)
{
    ND_TRY(check_cpu(op, a));
    return check_cpu(op, b);
}

nd_status nd_linalg_prepare_out(const char *op, nd_tensor *out, nd_dtype dt, int ndim, const int64_t *size)
{
    if (out->ndim == 0) return nd_tensor_new(out, dt, ndim, size, nd_cpu_device(), 0);
    ND_TRY(check_cpu(op, out));
    return nd_linalg_check_out_shape(op, out, dt, ndim, size);
}

/* t = beta * t for any dtype (integers use beta truncated to an integer, as Torch7 casts scalars
 * to the tensor's type); beta == 0 writes zeros, whatever t held (NaN included). */
#define SCALE_FLOAT(T)                                                                                                 \
    while (nd_iter_next(&it)) {                                                                                        \
        T *p = (T *)it.ptr[0];                                                                                         \
        for (int64_t i = 0; i < it.inner; i++)                                                                         \
            p[i * it.istride[0]] = beta == 0 ? (T)0 : (T)(beta * p[i * it.istride[0]]);                                \
    }
#define SCALE_INT(T)                                                                                                   \
    while (nd_iter_next(&it)) {                                                                                        \
        T *p = (T *)it.ptr[0];                                                                                         \
        for (int64_t i = 0; i < it.inner; i++)                                                                         \
            p[i * it.istride[0]] = (T)(ib * (int64_t)p[i * it.istride[0]]);                                            \
    }
static void scale_cpu(nd_tensor *t, double beta)
{
    if (beta == 1) return;
    nd_iter it;
    const nd_tensor *ops[1] = {t};
    nd_iter_init(&it, 1, ops);
    int64_t ib = (int64_t)beta;
    switch (t->dtype) {
    case ND_DTYPE_F32:
        SCALE_FLOAT(float) break;
    case ND_DTYPE_F64:
        SCALE_FLOAT(double) break;
    case ND_DTYPE_I64:
        SCALE_INT(int64_t) break;
    case ND_DTYPE_U8:
        SCALE_INT(uint8_t) break;
    default:
        break;
    }
}

/* How BLAS can read a 2-d view (nd_linalg_mat_layout on dims 0, 1). */
static int mat_layout(const nd_tensor *t, int *trans, int64_t *ld) { return nd_linalg_mat_layout(t, 0, trans, ld); }

/* A vector's BLAS increment (> 0), or 0 when BLAS cannot read it in place. */
static int64_t vec_inc(const nd_tensor *t)
{
    if (t->size[0] <= 1) return 1;
    return t->stride[0] > 0 && t->stride[0] < INT_MAX ? t->stride[0] : 0;
}

static nd_status check_int_sizes(const char *op, int64_t m, int64_t n, int64_t k)
{
    if (m >= INT_MAX || n >= INT_MAX || k >= INT_MAX)
        return ND_ERROR(ND_ERR_ARG, "%s: sizes %lld, %lld, %lld exceed the BLAS integer range", op, (long long)m,
                        (long long)n, (long long)k);
    return ND_OK;
}

/* ---- gemm ---- */

/* target (m x n) = beta * target + alpha * a @ b with plain loops; target does not overlap a or b.
 * Single-threaded on purpose: an OpenMP region here leaves libgomp workers spinning while the
 * next OpenBLAS call starts its own threads, and on 2 cores both lose (measured: 78% of the test
 * time spent spinning in libgomp). */
#define GEMM_REF_LOOP(T, ACC, SCALE_A, SCALE_B, ZERO_B)                                                                \
    {                                                                                                                  \
        const T *A = (const T *)nd_tensor_data(a), *B = (const T *)nd_tensor_data(b);                                  \
        T *C = (T *)nd_tensor_data(t);                                                                                 \
        int64_t as0 = a->stride[0], as1 = a->stride[1], bs0 = b->stride[0], bs1 = b->stride[1];                        \
        int64_t cs0 = t->stride[0], cs1 = t->stride[1];                                                                \
        for (int64_t i = 0; i < m; i++)                                                                                \
            for (int64_t j = 0; j < n; j++) {                                                                          \
                ACC acc = 0;                                                                                           \
                for (int64_t p = 0; p < k; p++)                                                                        \
                    acc += (ACC)A[i * as0 + p * as1] * (ACC)B[p * bs0 + j * bs1];                                      \
                T *o = &C[i * cs0 + j * cs1];                                                                          \
                *o = ZERO_B ? (T)(SCALE_A * acc) : (T)(SCALE_B * (ACC)*o + SCALE_A * acc);                             \
            }                                                                                                          \
    }

static nd_status gemm_ref_kernel(nd_tensor *t, double beta, double alpha, const nd_tensor *a, const nd_tensor *b)
{
    int64_t m = a->size[0], k = a->size[1], n = b->size[1];
    int64_t ia = (int64_t)alpha, ib = (int64_t)beta;
    switch (t->dtype) {
    case ND_DTYPE_F32:
        GEMM_REF_LOOP(float, double, alpha, beta, beta == 0) break;
    case ND_DTYPE_F64:
        GEMM_REF_LOOP(double, double, alpha, beta, beta == 0) break;
    case ND_DTYPE_I64:
        GEMM_REF_LOOP(int64_t, int64_t, ia, ib, ib == 0) break;
    case ND_DTYPE_U8:
        GEMM_REF_LOOP(uint8_t, int64_t, ia, ib, ib == 0) break;
    default:
        return ND_ERROR(ND_ERR_DTYPE, "addmm: unsupported dtype");
    }
    return ND_OK;
}

/* Same contract with OpenBLAS: a and b are passed in place when BLAS can read them (else
 * through contiguous copies); target is row- or column-major (the driver makes sure). */
static nd_status gemm_blas_kernel(nd_tensor *t, double beta, double alpha, const nd_tensor *a, const nd_tensor *b)
{
    int64_t m = a->size[0], k = a->size[1], n = b->size[1];
    if (k == 0) {
        scale_cpu(t, beta);
        return ND_OK;
    }
    ND_TRY(check_int_sizes("addmm", m, n, k));
    nd_tensor ac, bc;
    nd_tensor_init_empty(&ac, a->dtype);
    nd_tensor_init_empty(&bc, b->dtype);
    int ta, tb, tt;
    int64_t lda, ldb, ldt;
    if (!mat_layout(a, &ta, &lda)) {
        ND_TRY(nd_tensor_clone(&ac, a, a->dtype));
        a = &ac;
        ta = 0;
        lda = k;
    }
    if (!mat_layout(b, &tb, &ldb)) {
        nd_status st = nd_tensor_clone(&bc, b, b->dtype);
        if (st != ND_OK) {
            nd_tensor_release(&ac);
            return st;
        }
        b = &bc;
        tb = 0;
        ldb = n;
    }
    mat_layout(t, &tt, &ldt);
    const enum CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
    const enum CBLAS_TRANSPOSE NTA = ta ? CblasNoTrans : CblasTrans, NTB = tb ? CblasNoTrans : CblasTrans;
    /* beta == 0: OpenBLAS overwrites C without reading it (NaNs too; the tests check this) */
    if (t->dtype == ND_DTYPE_F32) {
        const float *A = nd_tensor_data(a), *B = nd_tensor_data(b);
        float *C = nd_tensor_data(t);
        if (!tt) /* C = op(A) op(B) */
            cblas_sgemm(CblasRowMajor, TA, TB, (int)m, (int)n, (int)k, (float)alpha, A, (int)lda, B, (int)ldb,
                        (float)beta, C, (int)ldt);
        else /* C column-major: C^T = op(B)^T op(A)^T, row-major */
            cblas_sgemm(CblasRowMajor, NTB, NTA, (int)n, (int)m, (int)k, (float)alpha, B, (int)ldb, A, (int)lda,
                        (float)beta, C, (int)ldt);
    } else {
        const double *A = nd_tensor_data(a), *B = nd_tensor_data(b);
        double *C = nd_tensor_data(t);
        if (!tt)
            cblas_dgemm(CblasRowMajor, TA, TB, (int)m, (int)n, (int)k, alpha, A, (int)lda, B, (int)ldb, beta, C,
                        (int)ldt);
        else
            cblas_dgemm(CblasRowMajor, NTB, NTA, (int)n, (int)m, (int)k, alpha, B, (int)ldb, A, (int)lda, beta, C,
                        (int)ldt);
    }
    nd_tensor_release(&ac);
    nd_tensor_release(&bc);
    return ND_OK;
}

static nd_status gemm_check(const char *op, const nd_tensor *a, const nd_tensor *b)
{
    ND_TRY(nd_linalg_check_gemm(op, a, b));
    return check_cpu2(op, a, b);
}

/* Shapes checked, out prepared: chooses the target (out or a temporary), loads c, runs the kernel. */
static nd_status gemm_run(const char *op, nd_tensor *out, double beta, const nd_tensor *c, double alpha,
                          const nd_tensor *a, const nd_tensor *b, int fast)
{
    if (out->size[0] == 0 || out->size[1] == 0) return ND_OK;
    int blas = fast && nd_dtype_is_float(out->dtype);
    int tt;
    int64_t ldt;
    int use_tmp = shares_storage(out, a) || shares_storage(out, b) || (blas && !mat_layout(out, &tt, &ldt));
    nd_tensor tmp, *target = out;
    if (use_tmp) {
        ND_TRY(nd_tensor_new(&tmp, out->dtype, 2, out->size, nd_cpu_device(), 0));
        target = &tmp;
    }
    nd_status st = ND_OK;
    if (beta != 0) st = load_c(op, target, c, out);
    if (st == ND_OK)
        st = blas ? gemm_blas_kernel(target, beta, alpha, a, b) : gemm_ref_kernel(target, beta, alpha, a, b);
    if (use_tmp) {
        if (st == ND_OK) st = nd_tensor_copy(out, &tmp);
        nd_tensor_release(&tmp);
    }
    return st;
}

static nd_status gemm_common(const char *op, nd_tensor *out, double beta, const nd_tensor *c, double alpha,
                             const nd_tensor *a, const nd_tensor *b, int fast)
{
    ND_TRY(gemm_check(op, a, b));
    int64_t size[2] = {a->size[0], b->size[1]};
    ND_TRY(nd_linalg_prepare_out(op, out, a->dtype, 2, size));
    return gemm_run(op, out, beta, c, alpha, a, b, fast);
}

nd_status nd_gemm_cpu(nd_tensor *out, double beta, const nd_tensor *c, double alpha, const nd_tensor *a,
                      const nd_tensor *b)
{
    return gemm_common("addmm", out, beta, c, alpha, a, b, 1);
}

nd_status nd_gemm_ref_cpu(nd_tensor *out, double beta, const nd_tensor *c, double alpha, const nd_tensor *a,
                          const nd_tensor *b)
{
    return gemm_common("addmm", out, beta, c, alpha, a, b, 0);
}

nd_status nd_bgemm_cpu(nd_tensor *out, double beta, const nd_tensor *c, double alpha, const nd_tensor *a,
                       const nd_tensor *b)
{
    const char *op = "baddbmm";
    char s1[ND_SHAPE_STR_MAX], s2[ND_SHAPE_STR_MAX];
    ND_TRY(nd_linalg_check_bgemm(op, a, b));
    ND_TRY(check_cpu2(op, a, b));
    int64_t size[3] = {a->size[0], a->size[1], b->size[2]};
    ND_TRY(nd_linalg_prepare_out(op, out, a->dtype, 3, size));
    nd_tensor cv;
    const nd_tensor *cb = c ? c : out;
    nd_tensor_view_of(&cv, cb);
    if (beta != 0 && nd_tensor_expand(&cv, 3, size) != ND_OK) {
        nd_tensor_release(&cv);
        return ND_ERROR(ND_ERR_SHAPE, "%s: the added tensor %s does not broadcast to the result %s", op, SHAPE(cb, s1),
                        SHAPE(out, s2));
    }
    nd_status st = ND_OK;
    for (int64_t i = 0; i < size[0] && st == ND_OK; i++) {
        nd_tensor o, x, y, z;
        nd_tensor_view_of(&o, out);
        nd_tensor_view_of(&x, a);
        nd_tensor_view_of(&y, b);
        nd_tensor_view_of(&z, &cv);
        nd_tensor_select(&o, 0, i);
        nd_tensor_select(&x, 0, i);
        nd_tensor_select(&y, 0, i);
        if (beta != 0) nd_tensor_select(&z, 0, i);
        st = gemm_run(op, &o, beta, beta != 0 ? &z : NULL, alpha, &x, &y, 1);
        nd_tensor_release(&o);
        nd_tensor_release(&x);
        nd_tensor_release(&y);
        nd_tensor_release(&z);
    }
    nd_tensor_release(&cv);
    return st;
}

/* ---- gemv ---- */

#define GEMV_LOOP(T, ACC, SA, SB, ZERO_B)                                                                              \
    {                                                                                                                  \
        const T *A = nd_tensor_data(a), *X = nd_tensor_data(x);                                                        \
        T *Y = nd_tensor_data(t);                                                                                      \
        for (int64_t i = 0; i < m; i++) {                                                                              \
            ACC acc = 0;                                                                                               \
            for (int64_t j = 0; j < n; j++)                                                                            \
                acc += (ACC)A[i * a->stride[0] + j * a->stride[1]] * (ACC)X[j * x->stride[0]];                         \
            T *o = &Y[i * t->stride[0]];                                                                               \
            *o = ZERO_B ? (T)(SA * acc) : (T)(SB * (ACC)*o + SA * acc);                                                \
        }                                                                                                              \
    }

static nd_status gemv_kernel(nd_tensor *t, double beta, double alpha, const nd_tensor *a, const nd_tensor *x)
{
    int64_t m = a->size[0], n = a->size[1];
    if (!nd_dtype_is_float(t->dtype)) {
        int64_t ia = (int64_t)alpha, ib = (int64_t)beta;
        if (t->dtype == ND_DTYPE_I64)
            GEMV_LOOP(int64_t, int64_t, ia, ib, ib == 0)
        else
            GEMV_LOOP(uint8_t, int64_t, ia, ib, ib == 0)
        return ND_OK;
    }
    if (n == 0) {
        scale_cpu(t, beta);
        return ND_OK;
    }
    ND_TRY(check_int_sizes("addmv", m, n, 1));
    nd_tensor ac, xc;
    nd_tensor_init_empty(&ac, a->dtype);
    nd_tensor_init_empty(&xc, x->dtype);
    int ta;
    int64_t lda, incx = vec_inc(x), incy = vec_inc(t);
    if (!mat_layout(a, &ta, &lda)) {
        ND_TRY(nd_tensor_clone(&ac, a, a->dtype));
        a = &ac;
        ta = 0;
        lda = n;
    }
    if (!incx) {
        nd_status st = nd_tensor_clone(&xc, x, x->dtype);
        if (st != ND_OK) {
            nd_tensor_release(&ac);
            return st;
        }
        x = &xc;
        incx = 1;
    }
    if (beta == 0) scale_cpu(t, 0);
    /* row-major a: y = A x; column-major a is the row-major n x m matrix A^T: y = (A^T)^T x */
    enum CBLAS_TRANSPOSE tr = ta ? CblasTrans : CblasNoTrans;
    int rows = ta ? (int)n : (int)m, cols = ta ? (int)m : (int)n;
    if (t->dtype == ND_DTYPE_F32)
        cblas_sgemv(CblasRowMajor, tr, rows, cols, (float)alpha, nd_tensor_data(a), (int)lda, nd_tensor_data(x),
                    (int)incx, (float)beta, nd_tensor_data(t), (int)incy);
    else
        cblas_dgemv(CblasRowMajor, tr, rows, cols, alpha, nd_tensor_data(a), (int)lda, nd_tensor_data(x), (int)incx,
                    beta, nd_tensor_data(t), (int)incy);
    nd_tensor_release(&ac);
    nd_tensor_release(&xc);
    return ND_OK;
}

nd_status nd_gemv_cpu(nd_tensor *out, double beta, const nd_tensor *c, double alpha, const nd_tensor *a,
                      const nd_tensor *x)
{
    const char *op = "addmv";
    ND_TRY(nd_linalg_check_gemv(op, a, x));
    ND_TRY(check_cpu2(op, a, x));
    int64_t m = a->size[0];
    ND_TRY(nd_linalg_prepare_out(op, out, a->dtype, 1, &m));
    if (m == 0) return ND_OK;
    int use_tmp = shares_storage(out, a) || shares_storage(out, x) || !vec_inc(out);
    nd_tensor tmp, *target = out;
    if (use_tmp) {
        ND_TRY(nd_tensor_new(&tmp, out->dtype, 1, &m, nd_cpu_device(), 0));
        target = &tmp;
    }
    nd_status st = ND_OK;
    if (beta != 0) st = load_c(op, target, c, out);
    if (st == ND_OK) st = gemv_kernel(target, beta, alpha, a, x);
    if (use_tmp) {
        if (st == ND_OK) st = nd_tensor_copy(out, &tmp);
        nd_tensor_release(&tmp);
    }
    return st;
}

/* ---- ger ---- */

#define GER_LOOP(T)                                                                                                    \
    {                                                                                                                  \
        const T *X = nd_tensor_data(x), *Y = nd_tensor_data(y);                                                        \
        T *A = nd_tensor_data(t);                                                                                      \
        for (int64_t i = 0; i < m; i++)                                                                                \
            for (int64_t j = 0; j < n; j++) {                                                                          \
                T *o = &A[i * t->stride[0] + j * t->stride[1]];                                                        \
                *o = (T)((int64_t)*o + ia * (int64_t)X[i * x->stride[0]] * (int64_t)Y[j * y->stride[0]]);              \
            }                                                                                                          \
    }

nd_status nd_ger_cpu(nd_tensor *out, double beta, const nd_tensor *c, double alpha, const nd_tensor *x,
                     const nd_tensor *y)
{
    const char *op = "addr";
    ND_TRY(nd_linalg_check_ger(op, x, y));
    ND_TRY(check_cpu2(op, x, y));
    int64_t size[2] = {x->size[0], y->size[0]}, m = size[0], n = size[1];
    ND_TRY(nd_linalg_prepare_out(op, out, x->dtype, 2, size));
    if (m == 0 || n == 0) return ND_OK;
    ND_TRY(check_int_sizes(op, m, n, 1));
    int tt;
    int64_t ldt;
    int blas = nd_dtype_is_float(out->dtype);
    int use_tmp = shares_storage(out, x) || shares_storage(out, y) || (blas && !mat_layout(out, &tt, &ldt));
    nd_tensor tmp, *target = out;
    if (use_tmp) {
        ND_TRY(nd_tensor_new(&tmp, out->dtype, 2, size, nd_cpu_device(), 0));
        target = &tmp;
    }
    nd_status st = ND_OK;
    if (beta != 0) st = load_c(op, target, c, out);
    if (st == ND_OK) scale_cpu(target, beta);
    nd_tensor xc, yc;
    nd_tensor_init_empty(&xc, x->dtype);
    nd_tensor_init_empty(&yc, y->dtype);
    int64_t incx = vec_inc(x), incy = vec_inc(y);
    if (st == ND_OK && blas && !incx && (st = nd_tensor_clone(&xc, x, x->dtype)) == ND_OK) {
        x = &xc;
        incx = 1;
    }
    if (st == ND_OK && blas && !incy && (st = nd_tensor_clone(&yc, y, y->dtype)) == ND_OK) {
        y = &yc;
        incy = 1;
    }
    if (st == ND_OK) {
        if (blas) {
            mat_layout(target, &tt, &ldt);
            /* row-major A += alpha x y^T; column-major: A^T += alpha y x^T */
            const void *u = tt ? nd_tensor_data(y) : nd_tensor_data(x), *v = tt ? nd_tensor_data(x) : nd_tensor_data(y);
            int rows = (int)(tt ? n : m), cols = (int)(tt ? m : n), incu = (int)(tt ? incy : incx),
                incv = (int)(tt ? incx : incy);
            if (target->dtype == ND_DTYPE_F32)
                cblas_sger(CblasRowMajor, rows, cols, (float)alpha, u, incu, v, incv, nd_tensor_data(target), (int)ldt);
            else
                cblas_dger(CblasRowMajor, rows, cols, alpha, u, incu, v, incv, nd_tensor_data(target), (int)ldt);
        } else {
            int64_t ia = (int64_t)alpha;
            nd_tensor *t = target;
            if (t->dtype == ND_DTYPE_I64)
                GER_LOOP(int64_t)
            else
                GER_LOOP(uint8_t)
        }
    }
    nd_tensor_release(&xc);
    nd_tensor_release(&yc);
    if (use_tmp) {
        if (st == ND_OK) st = nd_tensor_copy(out, &tmp);
        nd_tensor_release(&tmp);
    }
    return st;
}

/* ---- dot ---- */

nd_status nd_dot_cpu(const nd_tensor *a, const nd_tensor *b, double *result)
{
    int64_t n = nd_tensor_numel(a);
    *result = 0;
    ND_TRY(nd_linalg_check_dot(a, b));
    ND_TRY(check_cpu2("dot", a, b));
    if (n == 0) return ND_OK;
    nd_tensor ac, bc;
    int64_t inca = 1, incb = 1;
    /* 1-d operands with positive strides go in place; anything else through contiguous views/copies */
    int direct = a->ndim == 1 && b->ndim == 1 && vec_inc(a) && vec_inc(b) && n < INT_MAX;
    if (direct) {
        inca = vec_inc(a);
        incb = vec_inc(b);
        nd_tensor_view_of(&ac, a);
        nd_tensor_view_of(&bc, b);
    } else {
        ND_TRY(nd_tensor_contiguous(&ac, a));
        nd_status st = nd_tensor_contiguous(&bc, b);
        if (st != ND_OK) {
            nd_tensor_release(&ac);
            return st;
        }
    }
    const void *pa = nd_tensor_data(&ac), *pb = nd_tensor_data(&bc);
    switch (a->dtype) {
    case ND_DTYPE_F32:
        if (n < INT_MAX)
            *result = cblas_sdot((int)n, pa, (int)inca, pb, (int)incb);
        else {
            double acc = 0;
            for (int64_t i = 0; i < n; i++)
                acc += (double)((const float *)pa)[i] * ((const float *)pb)[i];
            *result = acc;
        }
        break;
    case ND_DTYPE_F64:
        if (n < INT_MAX)
            *result = cblas_ddot((int)n, pa, (int)inca, pb, (int)incb);
        else {
            double acc = 0;
            for (int64_t i = 0; i < n; i++)
                acc += ((const double *)pa)[i] * ((const double *)pb)[i];
            *result = acc;
        }
        break;
    case ND_DTYPE_I64: {
        int64_t acc = 0;
        for (int64_t i = 0; i < n; i++)
            acc += ((const int64_t *)pa)[i * inca] * ((const int64_t *)pb)[i * incb];
        *result = (double)acc;
        break;
    }
    case ND_DTYPE_U8: {
        int64_t acc = 0;
        for (int64_t i = 0; i < n; i++)
            acc += (int64_t)((const uint8_t *)pa)[i * inca] * ((const uint8_t *)pb)[i * incb];
        *result = (double)acc;
        break;
    }
    default:
        break;
    }
    nd_tensor_release(&ac);
    nd_tensor_release(&bc);
    return ND_OK;
}

/* ---- threads ---- */

void nd_blas_set_threads(int n)
{
    if (n < 1) n = 1;
    openblas_set_num_threads(n);
    omp_set_num_threads(n);
}

int nd_blas_get_threads(void)
{
    return openblas_get_num_threads();
}

const char *nd_blas_config(void)
{
    return openblas_get_config();
}
