/* Argument checks of the deconvolution kernels that do not depend on the device: shared by
 * isqrt.c / deconv.c and their CUDA twins (deconv_common.cu, deconv.cu), which call them through
 * the symbols the host exports. Same rules, same messages on both. */
#include "nd_cpu_deconv.h"

nd_status nd_deconv_check_float_on(nd_device_type dev, const char *op, const char *what, const nd_tensor *t,
                                   int dtype)
{
    char s[ND_SHAPE_STR_MAX];
    if (!t || !t->storage || t->ndim == 0) return ND_ERROR(ND_ERR_ARG, "%s: %s is missing or empty", op, what);
    if (nd_tensor_device(t).type != dev)
        return dev == ND_DEVICE_CUDA ? ND_ERROR(ND_ERR_DEVICE, "%s: %s must be a CUDA tensor, got a CPU tensor (%s)", op,
                                                what, nd_tensor_shape_str(t, s, sizeof s))
                                     : ND_ERROR(ND_ERR_DEVICE, "%s: %s must be a CPU tensor (%s)", op, what,
                                                nd_tensor_shape_str(t, s, sizeof s));
    if (!nd_dtype_is_float(t->dtype))
        return ND_ERROR(ND_ERR_DTYPE, "%s: %s must be float32 or float64, got %s (%s)", op, what,
                        nd_dtype_name(t->dtype), nd_tensor_shape_str(t, s, sizeof s));
    if (dtype >= 0 && (int)t->dtype != dtype)
        return ND_ERROR(ND_ERR_DTYPE, "%s: %s is %s but the other operands are %s (%s)", op, what,
                        nd_dtype_name(t->dtype), nd_dtype_name((nd_dtype)dtype), nd_tensor_shape_str(t, s, sizeof s));
    return ND_OK;
}

nd_status nd_deconv_check_dims(nd_device_type dev, const char *op, nd_deconv_dims *d, const nd_tensor *x,
                               const char *what, const nd_deconv_geom *g)
{
    char s[ND_SHAPE_STR_MAX];
    ND_TRY(nd_deconv_check_float_on(dev, op, what, x, -1));
    if (x->ndim != 4)
        return ND_ERROR(ND_ERR_SHAPE, "%s: expected a 4-d (N,C,H,W) %s, got %s", op, what,
                        nd_tensor_shape_str(x, s, sizeof s));
    if (g->k < 1 || g->s < 1 || g->dil < 1 || g->pad < 0 || g->block < 1 || g->groups < 1)
        return ND_ERROR(ND_ERR_ARG,
                        "%s: invalid parameters: kernel %lld, padding %lld, dilation %lld, sampling stride %lld, "
                        "block %lld, groups %lld",
                        op, (long long)g->k, (long long)g->pad, (long long)g->dil, (long long)g->s, (long long)g->block,
                        (long long)g->groups);
    d->N = x->size[0], d->C = x->size[1], d->H = x->size[2], d->W = x->size[3];
    d->k = g->k, d->pad = g->pad, d->dil = g->dil, d->s = g->s;
    if (d->C % g->block != 0 || (g->groups > 1 && g->block * g->groups != d->C))
        return ND_ERROR(ND_ERR_SHAPE, "%s: block %lld and groups %lld do not fit %lld input planes (%s %s)", op,
                        (long long)g->block, (long long)g->groups, (long long)d->C, what,
                        nd_tensor_shape_str(x, s, sizeof s));
    d->Gs = g->groups == 1 ? d->C / g->block : 1;
    d->R0 = nd_deconv_sample_rows(d->N, d->H, d->W, g);
    if (d->R0 < 0)
        return ND_ERROR(ND_ERR_SHAPE, "%s: %s %s is smaller than the kernel %lld (padding %lld, dilation %lld)", op,
                        what, nd_tensor_shape_str(x, s, sizeof s), (long long)g->k, (long long)g->pad,
                        (long long)g->dil);
    d->Lh = d->Lw = 1;
    if (g->k > 1) {
        d->Lh = (d->H + 2 * g->pad - g->dil * (g->k - 1) - 1) / g->s + 1;
        d->Lw = (d->W + 2 * g->pad - g->dil * (g->k - 1) - 1) / g->s + 1;
    }
    if (d->R0 == 0)
        return ND_ERROR(ND_ERR_SHAPE, "%s: %s %s gives no sampled rows", op, what, nd_tensor_shape_str(x, s, sizeof s));
    return ND_OK;
}

nd_status nd_cd_check_dims(nd_device_type dev, const char *op, nd_cd_dims *d, const nd_tensor *x, int64_t B,
                           int64_t s)
{
    char sh[ND_SHAPE_STR_MAX];
    ND_TRY(nd_deconv_check_float_on(dev, op, "input", x, -1));
    if (x->ndim != 2 && x->ndim != 4)
        return ND_ERROR(ND_ERR_SHAPE, "%s: expected a 2-d (N,C) or 4-d (N,C,H,W) input, got %s", op,
                        nd_tensor_shape_str(x, sh, sizeof sh));
    d->N = x->size[0];
    d->C = x->size[1];
    const int64_t H = x->ndim == 4 ? x->size[2] : 1, W = x->ndim == 4 ? x->size[3] : 1;
    d->HW = H * W;
    if (B < 1 || B > d->C || s < 1)
        return ND_ERROR(ND_ERR_ARG, "%s: block %lld must be in 1..C and sampling stride %lld >= 1 (input %s)", op,
                        (long long)B, (long long)s, nd_tensor_shape_str(x, sh, sizeof sh));
    d->B = B;
    d->cb = d->C / B;
    d->c = d->cb * B;
    d->ss = (s > 1 && H >= s && W >= s) ? s * s : 1;
    d->ncol = d->cb * d->N * d->HW;
    d->ns = (d->ncol + d->ss - 1) / d->ss;
    const int64_t L = (d->C - d->c) * d->HW;
    d->ns2 = d->N * ((L + d->ss - 1) / d->ss);
    if (d->ncol < 1) return ND_ERROR(ND_ERR_SHAPE, "%s: empty input %s", op, nd_tensor_shape_str(x, sh, sizeof sh));
    return ND_OK;
}

nd_status nd_deconv_check_fold(nd_device_type dev, const char *op, nd_fold_dims *f, const nd_tensor *W,
                               const nd_tensor *D, const nd_tensor *mu, int64_t groups, nd_deconv_layout layout)
{
    char s1[ND_SHAPE_STR_MAX], s2[ND_SHAPE_STR_MAX], s3[ND_SHAPE_STR_MAX];
    ND_TRY(nd_deconv_check_float_on(dev, op, "W", W, -1));
    ND_TRY(nd_deconv_check_float_on(dev, op, "D", D, (int)W->dtype));
    ND_TRY(nd_deconv_check_float_on(dev, op, "mu", mu, (int)W->dtype));
    if (layout != ND_DECONV_STRIDED && layout != ND_DECONV_CONTIGUOUS)
        return ND_ERROR(ND_ERR_ARG, "%s: unknown block layout %d", op, (int)layout);
    f->ng = groups;
    f->Cout = W->size[0];
    f->K = f->Cout > 0 ? nd_tensor_numel(W) / f->Cout : 0;
    f->F = D->size[D->ndim - 1];
    int ok = groups >= 1 && f->Cout > 0 && f->F > 0 && D->ndim == (groups == 1 ? 2 : 3) &&
             D->size[D->ndim - 2] == f->F && (groups == 1 || D->size[0] == groups) && mu->ndim == 1 &&
             mu->size[0] == groups * f->F && f->K % f->F == 0;
    if (ok && groups > 1) ok = f->K == f->F && f->Cout % groups == 0;
    if (!ok)
        return ND_ERROR(ND_ERR_SHAPE,
                        "%s: shapes do not fit: W %s, D %s, mu %s, groups %lld (expected D (F,F) or (groups,F,F), "
                        "mu (groups*F), W (Cout, ...) with a multiple of F features per output, exactly F when "
                        "groups > 1)",
                        op, nd_tensor_shape_str(W, s1, sizeof s1), nd_tensor_shape_str(D, s2, sizeof s2),
                        nd_tensor_shape_str(mu, s3, sizeof s3), (long long)groups);
    f->G = f->K / f->F;
    return ND_OK;
}

nd_status nd_deconv_check_X(nd_device_type dev, const char *op, const nd_tensor *X, int64_t groups, int64_t *M,
                            int64_t *F)
{
    char s[ND_SHAPE_STR_MAX];
    ND_TRY(nd_deconv_check_float_on(dev, op, "X", X, -1));
    if (groups < 1 || X->ndim != 2 || X->size[1] % groups != 0 || X->size[0] < 1 || X->size[1] < groups)
        return ND_ERROR(ND_ERR_SHAPE, "%s: expected X of shape (M, groups*F) with M >= 1, got %s (groups %lld)", op,
                        nd_tensor_shape_str(X, s, sizeof s), (long long)groups);
    *M = X->size[0];
    *F = X->size[1] / groups;
    return ND_OK;
}

int nd_deconv_cov_shape(int64_t groups, int64_t F, int64_t *size)
{
    if (groups == 1) {
        size[0] = size[1] = F;
        return 2;
    }
    size[0] = groups;
    size[1] = size[2] = F;
    return 3;
}

nd_status nd_cd_check_apply(nd_device_type dev, const char *op, nd_cd_dims *d, const nd_tensor *x,
                            const nd_tensor *mean1, const nd_tensor *D)
{
    char sh[ND_SHAPE_STR_MAX];
    ND_TRY(nd_deconv_check_float_on(dev, op, "D", D, -1));
    if (D->ndim != 2 || D->size[0] != D->size[1])
        return ND_ERROR(ND_ERR_SHAPE, "%s: expected a square D, got %s", op, nd_tensor_shape_str(D, sh, sizeof sh));
    const int64_t B = D->size[0], bs[1] = {B};
    ND_TRY(nd_cd_check_dims(dev, op, d, x, B, 1));
    ND_TRY(nd_deconv_check_float_on(dev, op, "D", D, (int)x->dtype));
    ND_TRY(nd_deconv_check_float_on(dev, op, "mean1", mean1, (int)x->dtype));
    return nd_deconv_check_shape_(op, "mean1", mean1, 1, bs);
}

nd_status nd_cd_check_forward(nd_device_type dev, const char *op, nd_cd_dims *d, const nd_tensor *x, int64_t B,
                              int64_t s)
{
    char sh[ND_SHAPE_STR_MAX];
    ND_TRY(nd_cd_check_dims(dev, op, d, x, B, s));
    if (d->c < d->C && d->ns2 < 2)
        return ND_ERROR(ND_ERR_SHAPE,
                        "%s: the %lld leftover channels of input %s give %lld sampled values (need 2 for "
                        "the unbiased variance)",
                        op, (long long)(d->C - d->c), nd_tensor_shape_str(x, sh, sizeof sh), (long long)d->ns2);
    return ND_OK;
}
