/* Matrix products on the GPU: gemm, batched gemm, gemv, ger (all one cuBLAS gemm path) and dot;
 * contracts: nd_cpu_linalg.h (same checks and messages), GPU differences: nd_cuda_math.h.
 *
 * cuBLAS is column-major. A row-major matrix with row stride ld is, read column-major with the
 * same ld, its own transpose; so a row-major C = A B is computed as C^T = B^T A^T, and a
 * column-major C directly. Operands with stride 1 in either dimension (transposed and narrowed
 * views) are passed in place with the matching op and leading dimension; others (expanded,
 * arbitrary strides) through contiguous copies. A result that cuBLAS cannot write in place, or
 * that shares storage with an operand, is computed in a temporary and copied back.
 * float32 runs with CUBLAS_COMPUTE_32F (strict float32 under the handle's default math mode) or,
 * when switched on, CUBLAS_COMPUTE_32F_FAST_TF32; float64 with CUBLAS_COMPUTE_64F. int64 and
 * uint8 use a plain kernel (one thread per result element, int64 accumulation, wrapping).
 * gemv and ger are gemms with n = 1 and k = 1 (views of the vectors as matrices). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "math_common.cuh"

#define SHAPE(t, buf) nd_tensor_shape_str((t), (buf), (int)sizeof(buf))

/* ---- TF32 switch ---- */

static int nd_tf32 = -1; /* -1: not read from the environment yet */

extern "C" int nd_cuda_get_tf32(void)
{
    if (nd_tf32 < 0) {
        const char *e = getenv("ND_CUDA_TF32");
        nd_tf32 = e && *e && strcmp(e, "0") != 0;
    }
    return nd_tf32;
}

extern "C" int nd_cuda_set_tf32(int on)
{
    int prev = nd_cuda_get_tf32();
    nd_tf32 = on != 0;
    return prev;
}

/* ---- helpers ---- */

/* Shared with blas.c (src/cpu/math_check.c). */
#define same_view nd_linalg_same_view
#define shares_storage nd_linalg_shares_storage
#define load_c nd_linalg_load_c
#define check_dtypes nd_linalg_check_dtypes

extern "C" nd_status nd_cuda_linalg_prepare_out(const char *op, nd_tensor *out, nd_dtype dt, int ndim,
                                                const int64_t *size, nd_device dev)
{
    if (out->ndim == 0) return nd_tensor_new(out, dt, ndim, size, dev, 0);
    nd_device od = nd_tensor_device(out);
    if (od.type != ND_DEVICE_CUDA || od.index != dev.index)
        return ND_ERROR(ND_ERR_DEVICE, "%s: the result tensor is not on cuda:%d with the operands", op, dev.index);
    return nd_linalg_check_out_shape(op, out, dt, ndim, size);
}

/* How cuBLAS can read the matrix in dims (d, d + 1): the CPU's rule (nd_linalg_mat_layout). */
#define mat_layout nd_linalg_mat_layout

/* A batched operand (3-d, d = 1) also needs a usable batch stride. */
static int op_layout(const nd_tensor *t, int d, int *trans, int64_t *ld)
{
    if (!mat_layout(t, d, trans, ld)) return 0;
    return d == 0 || t->size[0] == 1 || t->stride[0] >= 0;
}

/* t = beta * t (beta == 0 writes zeros whatever t held; integers scale by trunc(beta)). */
static nd_status scale(nd_tensor *t, double beta)
{
    if (beta == 1) return ND_OK;
    if (beta == 0) return nd_fill_cuda(t, 0);
    return nd_unary_cuda(t, t, ND_UNARY_MUL, nd_dtype_is_float(t->dtype) ? beta : (double)(int64_t)beta, 0);
}

/* ---- integer kernel ---- */

typedef struct igemm_args {
    int64_t batch, m, n, k, alpha, beta;
    const char *a, *b;
    char *c;
    int64_t as[3], bs[3], cs[3]; /* batch, row, column strides */
} igemm_args;

template <typename T> __global__ void igemm_kernel(igemm_args g)
{
    int64_t total = g.batch * g.m * g.n;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)blockDim.x * gridDim.x) {
        int64_t j = e % g.n, i = (e / g.n) % g.m, q = e / g.n / g.m;
        const T *A = (const T *)g.a + q * g.as[0] + i * g.as[1];
        const T *B = (const T *)g.b + q * g.bs[0] + j * g.bs[2];
        int64_t acc = 0;
        for (int64_t p = 0; p < g.k; p++)
            acc = (int64_t)((uint64_t)acc + (uint64_t)((int64_t)A[p * g.as[2]] * (int64_t)B[p * g.bs[1]]));
        T *o = (T *)g.c + q * g.cs[0] + i * g.cs[1] + j * g.cs[2];
        *o = g.beta == 0 ? (T)(g.alpha * acc) : (T)(g.beta * (int64_t)*o + g.alpha * acc);
    }
}

/* ---- the product ---- */

/* target (batch x m x n, or m x n when d == 0) = beta * target + alpha * a @ b; target does not
 * share storage with a or b and, for floats, has a cuBLAS layout. */
static nd_status gemm_kernel(const char *op, nd_tensor *t, double beta, double alpha, const nd_tensor *a,
                             const nd_tensor *b, int d)
{
    int64_t batch = d ? t->size[0] : 1, m = a->size[d], k = a->size[d + 1], n = b->size[d + 1];
    if (!nd_dtype_is_float(t->dtype)) {
        if (t->dtype != ND_DTYPE_I64 && t->dtype != ND_DTYPE_U8)
            return ND_ERROR(ND_ERR_DTYPE, "%s: unsupported dtype", op);
        igemm_args g;
        memset(&g, 0, sizeof g);
        g.batch = batch, g.m = m, g.n = n, g.k = k, g.alpha = (int64_t)alpha, g.beta = (int64_t)beta;
        g.a = (const char *)nd_tensor_data(a), g.b = (const char *)nd_tensor_data(b), g.c = (char *)nd_tensor_data(t);
        for (int i = 0; i < 2; i++) {
            g.as[i + 1] = a->stride[d + i];
            g.bs[i + 1] = b->stride[d + i];
            g.cs[i + 1] = t->stride[d + i];
        }
        if (d) g.as[0] = a->stride[0], g.bs[0] = b->stride[0], g.cs[0] = t->stride[0];
        unsigned nb = nd_cm_blocks(batch * m * n);
        if (t->dtype == ND_DTYPE_I64)
            igemm_kernel<int64_t><<<nb, ND_CM_THREADS, 0, nd_cuda_stream()>>>(g);
        else
            igemm_kernel<uint8_t><<<nb, ND_CM_THREADS, 0, nd_cuda_stream()>>>(g);
        ND_CUDA_LAUNCH_CHECK();
        return ND_OK;
    }
    if (k == 0) return scale(t, beta);
    if (m >= INT_MAX || n >= INT_MAX || k >= INT_MAX || batch >= INT_MAX)
        return ND_ERROR(ND_ERR_ARG, "%s: sizes %lld, %lld, %lld exceed the cuBLAS integer range", op, (long long)m,
                        (long long)n, (long long)k);
    nd_tensor ac, bc;
    nd_tensor_init_empty(&ac, a->dtype);
    nd_tensor_init_empty(&bc, b->dtype);
    int ta, tb, tt;
    int64_t lda, ldb, ldt;
    nd_status st = ND_OK;
    if (!op_layout(a, d, &ta, &lda)) {
        ND_TRY(nd_tensor_clone(&ac, a, a->dtype));
        a = &ac;
        mat_layout(a, d, &ta, &lda);
    }
    if (!op_layout(b, d, &tb, &ldb)) {
        st = nd_tensor_clone(&bc, b, b->dtype);
        if (st != ND_OK) goto done;
        b = &bc;
        mat_layout(b, d, &tb, &ldb);
    }
    mat_layout(t, d, &tt, &ldt);
    {
        cublasHandle_t h;
        st = nd_cuda_cublas(&h);
        if (st != ND_OK) goto done;
        int f32 = t->dtype == ND_DTYPE_F32;
        cudaDataType_t dt = f32 ? CUDA_R_32F : CUDA_R_64F;
        cublasComputeType_t ct = !f32                 ? CUBLAS_COMPUTE_64F
                                 : nd_cuda_get_tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                      : CUBLAS_COMPUTE_32F;
        float fa = (float)alpha, fb = (float)beta;
        const void *pa = f32 ? (const void *)&fa : (const void *)&alpha;
        const void *pb = f32 ? (const void *)&fb : (const void *)&beta;
        long long sa = d ? a->stride[0] : 0, sb = d ? b->stride[0] : 0, sc = d ? t->stride[0] : 0;
        /* X, Y: the first and second operands of the column-major product, trX / trY their ops */
        const void *X, *Y;
        cublasOperation_t opX, opY;
        int64_t ldx, ldy, rows, cols;
        long long sx, sy;
        if (!tt) { /* C row-major: C^T (n x m) = B^T A^T */
            X = nd_tensor_data(b), Y = nd_tensor_data(a), ldx = ldb, ldy = lda, sx = sb, sy = sa;
            opX = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
            opY = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
            rows = n, cols = m;
        } else { /* C column-major: C (m x n) = A B */
            X = nd_tensor_data(a), Y = nd_tensor_data(b), ldx = lda, ldy = ldb, sx = sa, sy = sb;
            opX = ta ? CUBLAS_OP_N : CUBLAS_OP_T;
            opY = tb ? CUBLAS_OP_N : CUBLAS_OP_T;
            rows = m, cols = n;
        }
        /* the handle is shared: host scalars and the default math mode (no implicit TF32) for
         * this call, the previous settings restored after it */
        cublasPointerMode_t old_ptr = CUBLAS_POINTER_MODE_HOST;
        cublasMath_t old_math = CUBLAS_DEFAULT_MATH;
        cublasGetPointerMode(h, &old_ptr);
        cublasGetMathMode(h, &old_math);
        cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST);
        cublasSetMathMode(h, CUBLAS_DEFAULT_MATH);
        cublasStatus_t cs;
        if (batch == 1)
            cs = cublasGemmEx(h, opX, opY, (int)rows, (int)cols, (int)k, pa, X, dt, (int)ldx, Y, dt, (int)ldy, pb,
                              nd_tensor_data(t), dt, (int)ldt, ct, CUBLAS_GEMM_DEFAULT);
        else
            cs = cublasGemmStridedBatchedEx(h, opX, opY, (int)rows, (int)cols, (int)k, pa, X, dt, (int)ldx, sx, Y, dt,
                                            (int)ldy, sy, pb, nd_tensor_data(t), dt, (int)ldt, sc, (int)batch, ct,
                                            CUBLAS_GEMM_DEFAULT);
        cublasSetPointerMode(h, old_ptr);
        cublasSetMathMode(h, old_math);
        if (cs != CUBLAS_STATUS_SUCCESS) {
            char s1[ND_SHAPE_STR_MAX], s2[ND_SHAPE_STR_MAX];
            st = ND_ERROR(ND_ERR_DEVICE, "%s: cuBLAS gemm failed for %s and %s: %s", op, SHAPE(a, s1), SHAPE(b, s2),
                          cublasGetStatusString(cs));
        }
    }
done:
    nd_tensor_release(&ac);
    nd_tensor_release(&bc);
    return st;
}

/* Chooses the target (out or a temporary), loads c, runs the product, copies back. d: 0 for
 * matrices, 1 for batches. out is prepared (shape, dtype, device). */
static nd_status gemm_run(const char *op, nd_tensor *out, double beta, const nd_tensor *c, double alpha,
                          const nd_tensor *a, const nd_tensor *b, int d, nd_device dev)
{
    if (nd_tensor_numel(out) == 0) return ND_OK;
    int tt;
    int64_t ldt;
    int use_tmp = shares_storage(out, a) || shares_storage(out, b) ||
                  (nd_dtype_is_float(out->dtype) && !op_layout(out, d, &tt, &ldt));
    nd_tensor tmp, *target = out;
    if (use_tmp) {
        ND_TRY(nd_tensor_new(&tmp, out->dtype, out->ndim, out->size, dev, 0));
        target = &tmp;
    }
    nd_status st = ND_OK;
    if (beta != 0) st = load_c(op, target, c, out);
    if (st == ND_OK) st = gemm_kernel(op, target, beta, alpha, a, b, d);
    if (use_tmp) {
        if (st == ND_OK) st = nd_tensor_copy(out, &tmp);
        nd_tensor_release(&tmp);
    }
    return st;
}

extern "C" nd_status nd_gemm_cuda(nd_tensor *out, double beta, const nd_tensor *c, double alpha, const nd_tensor *a,
                                  const nd_tensor *b)
{
    const char *op = "addmm";
    ND_TRY(nd_linalg_check_gemm(op, a, b));
    const nd_tensor *ts[4] = {a, b, beta != 0 ? c : NULL, out};
    nd_device dev;
    ND_TRY(nd_cuda_math_enter(op, 4, ts, &dev));
    int64_t size[2] = {a->size[0], b->size[1]};
    ND_TRY(nd_cuda_linalg_prepare_out(op, out, a->dtype, 2, size, dev));
    return gemm_run(op, out, beta, c, alpha, a, b, 0, dev);
}

extern "C" nd_status nd_bgemm_cuda(nd_tensor *out, double beta, const nd_tensor *c, double alpha, const nd_tensor *a,
                                   const nd_tensor *b)
{
    const char *op = "baddbmm";
    ND_TRY(nd_linalg_check_bgemm(op, a, b));
    const nd_tensor *ts[4] = {a, b, beta != 0 ? c : NULL, out};
    nd_device dev;
    ND_TRY(nd_cuda_math_enter(op, 4, ts, &dev));
    int64_t size[3] = {a->size[0], a->size[1], b->size[2]};
    ND_TRY(nd_cuda_linalg_prepare_out(op, out, a->dtype, 3, size, dev));
    return gemm_run(op, out, beta, c, alpha, a, b, 1, dev);
}

/* v (1-d, any strides) seen as a column (rows x 1) or a row (1 x cols): a borrowed view. */
static nd_tensor as_column(const nd_tensor *v)
{
    nd_tensor r = *v;
    r.ndim = 2;
    r.size[1] = 1;
    r.stride[1] = 1;
    return r;
}
static nd_tensor as_row(const nd_tensor *v)
{
    nd_tensor r = *v;
    r.ndim = 2;
    r.size[0] = 1;
    r.stride[0] = v->size[0] > 0 ? v->size[0] * (v->stride[0] > 0 ? v->stride[0] : 1) : 1;
    r.size[1] = v->size[0];
    r.stride[1] = v->stride[0];
    return r;
}

extern "C" nd_status nd_gemv_cuda(nd_tensor *out, double beta, const nd_tensor *c, double alpha, const nd_tensor *a,
                                  const nd_tensor *x)
{
    const char *op = "addmv";
    char s1[ND_SHAPE_STR_MAX], s2[ND_SHAPE_STR_MAX];
    ND_TRY(nd_linalg_check_gemv(op, a, x));
    const nd_tensor *ts[4] = {a, x, beta != 0 ? c : NULL, out};
    nd_device dev;
    ND_TRY(nd_cuda_math_enter(op, 4, ts, &dev));
    int64_t m = a->size[0];
    ND_TRY(nd_cuda_linalg_prepare_out(op, out, a->dtype, 1, &m, dev));
    if (m == 0) return ND_OK;
    /* out (m) = beta c + alpha a x as the m x 1 gemm out2 = beta c2 + alpha a @ x2 */
    nd_tensor out2 = as_column(out), x2 = as_column(x), c2, cv;
    const nd_tensor *cp = NULL;
    nd_tensor_init_empty(&cv, a->dtype);
    if (beta != 0 && c) {
        nd_tensor_view_of(&cv, c);
        if (nd_tensor_expand(&cv, 1, &m) != ND_OK) {
            nd_tensor_release(&cv);
            return ND_ERROR(ND_ERR_SHAPE, "%s: the added tensor %s does not broadcast to the result %s", op,
                            SHAPE(c, s1), SHAPE(out, s2));
        }
        c2 = as_column(&cv);
        cp = &c2;
    }
    nd_status st = gemm_run(op, &out2, beta, cp, alpha, a, &x2, 0, dev);
    nd_tensor_release(&cv);
    return st;
}

extern "C" nd_status nd_ger_cuda(nd_tensor *out, double beta, const nd_tensor *c, double alpha, const nd_tensor *x,
                                 const nd_tensor *y)
{
    const char *op = "addr";
    ND_TRY(nd_linalg_check_ger(op, x, y));
    const nd_tensor *ts[4] = {x, y, beta != 0 ? c : NULL, out};
    nd_device dev;
    ND_TRY(nd_cuda_math_enter(op, 4, ts, &dev));
    int64_t size[2] = {x->size[0], y->size[0]};
    ND_TRY(nd_cuda_linalg_prepare_out(op, out, x->dtype, 2, size, dev));
    nd_tensor x2 = as_column(x), y2 = as_row(y);
    return gemm_run(op, out, beta, c, alpha, &x2, &y2, 0, dev);
}

extern "C" nd_status nd_dot_cuda(const nd_tensor *a, const nd_tensor *b, double *result)
{
    int64_t n = nd_tensor_numel(a);
    *result = 0;
    ND_TRY(nd_linalg_check_dot(a, b));
    const nd_tensor *ts[2] = {a, b};
    nd_device dev;
    ND_TRY(nd_cuda_math_enter("dot", 2, ts, &dev));
    if (n == 0) return ND_OK;
    /* 1-d operands with positive strides go in place; others through contiguous copies, both then
     * read in row-major order */
    int direct = a->ndim == 1 && b->ndim == 1 && a->stride[0] > 0 && b->stride[0] > 0 && a->stride[0] < INT_MAX &&
                 b->stride[0] < INT_MAX;
    nd_tensor ac, bc;
    nd_status st = ND_OK;
    if (direct) {
        nd_tensor_view_of(&ac, a);
        nd_tensor_view_of(&bc, b);
    } else {
        ND_TRY(nd_tensor_contiguous(&ac, a));
        st = nd_tensor_contiguous(&bc, b);
        if (st != ND_OK) {
            nd_tensor_release(&ac);
            return st;
        }
    }
    const nd_tensor *pa = &ac, *pb = &bc;
    int64_t inca = direct ? a->stride[0] : 1, incb = direct ? b->stride[0] : 1;
    if (nd_dtype_is_float(a->dtype) && n < INT_MAX) {
        cublasHandle_t h;
        st = nd_cuda_cublas(&h);
        cublasPointerMode_t old_ptr = CUBLAS_POINTER_MODE_HOST;
        if (st == ND_OK) {
            cublasGetPointerMode(h, &old_ptr);
            cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST); /* the result comes back to the host */
        }
        cublasStatus_t cs = CUBLAS_STATUS_SUCCESS;
        if (st == ND_OK && a->dtype == ND_DTYPE_F32) {
            float r = 0;
            cs = cublasSdot(h, (int)n, (const float *)nd_tensor_data(pa), (int)inca, (const float *)nd_tensor_data(pb),
                            (int)incb, &r);
            *result = r;
        } else if (st == ND_OK) {
            cs = cublasDdot(h, (int)n, (const double *)nd_tensor_data(pa), (int)inca,
                            (const double *)nd_tensor_data(pb), (int)incb, result);
        }
        if (st == ND_OK) cublasSetPointerMode(h, old_ptr);
        if (st == ND_OK && cs != CUBLAS_STATUS_SUCCESS) {
            char s1[ND_SHAPE_STR_MAX], s2[ND_SHAPE_STR_MAX];
            st = ND_ERROR(ND_ERR_DEVICE, "dot: cuBLAS failed for %s and %s: %s", SHAPE(a, s1), SHAPE(b, s2),
                          cublasGetStatusString(cs));
        }
    } else if (st == ND_OK) {             /* integers (and huge float vectors): products, then an exact sum */
        nd_tensor a1 = ac, b1 = bc, prod; /* borrowed n-element views */
        a1.ndim = b1.ndim = 1;
        a1.size[0] = b1.size[0] = n;
        a1.stride[0] = inca;
        b1.stride[0] = incb;
        nd_tensor_init_empty(&prod, nd_dtype_is_float(a->dtype) ? ND_DTYPE_F64 : ND_DTYPE_I64);
        st = nd_binary_cuda(&prod, &a1, &b1, ND_BINARY_MUL, 1);
        nd_scalar r;
        if (st == ND_OK) st = nd_reduce_all_cuda(&r, &prod, ND_REDUCE_SUM, 0);
        if (st == ND_OK) *result = r.is_int ? (double)r.i : r.f;
        nd_tensor_release(&prod);
    }
    nd_tensor_release(&ac);
    nd_tensor_release(&bc);
    return st;
}
