/* Argument checks and output shapes of the nn kernels, shared by the CPU kernels (src/cpu) and
 * their CUDA twins (src/cuda, which call them through the symbols the host exports): one rule
 * and one message per check. `dev` is the device every tensor must be on. */
#include "nd_cpu_nn.h"

/* ---- convolution ---- */

static nd_status nd_conv_check_params(const char *op, const nd_conv2d_params *p)
{
    if (p->kh < 1 || p->kw < 1 || p->sh < 1 || p->sw < 1 || p->ph < 0 || p->pw < 0 || p->dh < 1 || p->dw < 1 ||
        p->groups < 1)
        return ND_ERROR(ND_ERR_ARG,
                        "%s: invalid parameters: kernel %lldx%lld, stride %lldx%lld, padding %lldx%lld, "
                        "dilation %lldx%lld, groups %lld (kernel, stride, dilation, groups >= 1; padding >= 0)",
                        op, (long long)p->kh, (long long)p->kw, (long long)p->sh, (long long)p->sw, (long long)p->ph,
                        (long long)p->pw, (long long)p->dh, (long long)p->dw, (long long)p->groups);
    return ND_OK;
}

nd_status nd_conv_check_image(nd_device_type dev, const char *op, nd_conv_geom *g, const nd_tensor *image,
                              const char *what, const nd_conv2d_params *p)
{
    char s[ND_SHAPE_STR_MAX];
    ND_TRY(nd_conv_check_params(op, p));
    ND_TRY(nd_nn_check_float_on(dev, op, what, image, -1));
    if (image->ndim != 3 && image->ndim != 4)
        return ND_ERROR(ND_ERR_SHAPE, "%s: expected a 3-d (C,H,W) or 4-d (N,C,H,W) %s, got %d-d (%s %s)", op, what,
                        image->ndim, what, nd_tensor_shape_str(image, s, sizeof s));
    int b = image->ndim == 4;
    g->N = b ? image->size[0] : 1;
    g->C = image->size[b];
    g->H = image->size[b + 1];
    g->W = image->size[b + 2];
    g->kh = p->kh, g->kw = p->kw, g->sh = p->sh, g->sw = p->sw, g->ph = p->ph, g->pw = p->pw;
    g->dh = p->dh, g->dw = p->dw, g->groups = p->groups;
    g->OH = nd_conv_out_size(g->H, p->kh, p->sh, p->ph, p->dh);
    g->OW = nd_conv_out_size(g->W, p->kw, p->sw, p->pw, p->dw);
    if (g->OH < 1 || g->OW < 1)
        return ND_ERROR(ND_ERR_SHAPE,
                        "%s: %s %s is too small for kernel %lldx%lld (dilation %lldx%lld, padding %lldx%lld): "
                        "the output would be %lldx%lld",
                        op, what, nd_tensor_shape_str(image, s, sizeof s), (long long)p->kh, (long long)p->kw,
                        (long long)p->dh, (long long)p->dw, (long long)p->ph, (long long)p->pw, (long long)g->OH,
                        (long long)g->OW);
    return ND_OK;
}

/* Checks weight against the image geometry and sets Cout. */
static nd_status nd_conv_check_weight(nd_device_type dev, const char *op, nd_conv_geom *g, const nd_tensor *weight,
                                      const char *what, const nd_tensor *image, const char *image_what)
{
    char s[ND_SHAPE_STR_MAX], s2[ND_SHAPE_STR_MAX];
    ND_TRY(nd_nn_check_float_on(dev, op, what, weight, (int)image->dtype));
    int64_t KK = g->kh * g->kw, Cg;
    if (weight->ndim == 4) {
        if (weight->size[2] != g->kh || weight->size[3] != g->kw)
            return ND_ERROR(ND_ERR_SHAPE, "%s: %s %s does not match the kernel size %lldx%lld", op, what,
                            nd_tensor_shape_str(weight, s, sizeof s), (long long)g->kh, (long long)g->kw);
        Cg = weight->size[1];
    } else if (weight->ndim == 2 && weight->size[1] % KK == 0) {
        Cg = weight->size[1] / KK;
    } else {
        return ND_ERROR(ND_ERR_SHAPE, "%s: expected a %s of shape (Cout, Cin/groups, %lld, %lld), got %s", op, what,
                        (long long)g->kh, (long long)g->kw, nd_tensor_shape_str(weight, s, sizeof s));
    }
    g->Cout = weight->size[0];
    if (g->Cout % g->groups != 0)
        return ND_ERROR(ND_ERR_SHAPE, "%s: %lld output planes cannot be split into %lld groups (%s %s)", op,
                        (long long)g->Cout, (long long)g->groups, what, nd_tensor_shape_str(weight, s, sizeof s));
    if (Cg * g->groups != g->C)
        return ND_ERROR(ND_ERR_SHAPE, "%s: expected %s of %lld planes, got %lld (%s %s, %s %s, groups %lld)", op,
                        image_what, (long long)(Cg * g->groups), (long long)g->C, image_what,
                        nd_tensor_shape_str(image, s, sizeof s), what, nd_tensor_shape_str(weight, s2, sizeof s2),
                        (long long)g->groups);
    return ND_OK;
}

int nd_conv_out_shape(const nd_conv_geom *g, int ndim, int64_t *size)
{
    int b = ndim == 4;
    if (b) size[0] = g->N;
    size[b] = g->Cout;
    size[b + 1] = g->OH;
    size[b + 2] = g->OW;
    return ndim;
}

nd_status nd_conv_check_forward(nd_device_type dev, const char *op, nd_conv_geom *g, const nd_tensor *out,
                                const nd_tensor *input, const nd_tensor *weight, const nd_tensor *bias,
                                const nd_conv2d_params *p, int contiguous, int64_t *bst)
{
    ND_TRY(nd_conv_check_image(dev, op, g, input, "input", p));
    ND_TRY(nd_conv_check_weight(dev, op, g, weight, "weight", input, "input"));
    int64_t size[4];
    int nd = nd_conv_out_shape(g, input->ndim, size);
    ND_TRY(nd_nn_check_out_on(dev, op, "output", out, input->dtype, nd, size, contiguous));
    ND_TRY(nd_nn_check_alias(op, "output", out, 0, 3, (const nd_tensor *[]){input, weight, bias}));
    *bst = 0;
    if (bias) ND_TRY(nd_nn_check_vec_on(dev, op, "bias", bias, input->dtype, g->Cout, bst));
    return ND_OK;
}

nd_status nd_conv_check_backward(nd_device_type dev, const char *op, nd_conv_geom *g, const nd_tensor *grad_input,
                                 const nd_tensor *grad_weight, const nd_tensor *grad_bias, const nd_tensor *input,
                                 const nd_tensor *grad_output, const nd_tensor *weight, const nd_conv2d_params *p,
                                 int contiguous, int64_t *gbst)
{
    const nd_tensor *image = input ? input : grad_input;
    const char *image_what = input ? "input" : "grad_input";
    ND_TRY(nd_conv_check_image(dev, op, g, image, image_what, p));
    const nd_tensor *wshape = weight ? weight : grad_weight;
    ND_TRY(nd_conv_check_weight(dev, op, g, wshape, weight ? "weight" : "grad_weight", image, image_what));
    int64_t size[4];
    int nd = nd_conv_out_shape(g, image->ndim, size);
    ND_TRY(nd_nn_check_float_on(dev, op, "grad_output", grad_output, (int)image->dtype));
    ND_TRY(nd_nn_check_out_on(dev, op, "grad_output", grad_output, image->dtype, nd, size, 0));
    if (grad_input)
        ND_TRY(nd_nn_check_out_on(dev, op, "grad_input", grad_input, image->dtype, image->ndim, image->size,
                                  contiguous));
    if (grad_weight)
        ND_TRY(nd_nn_check_out_on(dev, op, "grad_weight", grad_weight, image->dtype, wshape->ndim, wshape->size,
                                  contiguous));
    if (weight && grad_weight && nd_tensor_numel(weight) != nd_tensor_numel(grad_weight))
        return ND_ERROR(ND_ERR_SHAPE, "%s: grad_weight and weight differ in size", op);
    *gbst = 0;
    if (grad_bias) ND_TRY(nd_nn_check_vec_on(dev, op, "grad_bias", grad_bias, image->dtype, g->Cout, gbst));
    /* the gradients must not share memory with the inputs of the backward nor with each other */
    const nd_tensor *ins[5] = {input, grad_output, weight, grad_weight, grad_bias};
    ND_TRY(nd_nn_check_alias(op, "grad_input", grad_input, 0, 5, ins));
    ND_TRY(nd_nn_check_alias(op, "grad_weight", grad_weight, 0, 4,
                             (const nd_tensor *[]){input, grad_output, weight, grad_bias}));
    return nd_nn_check_alias(op, "grad_bias", grad_bias, 0, 4, ins);
}

nd_status nd_conv_check_im2col(nd_device_type dev, const char *op, nd_conv_geom *g, const nd_tensor *cols,
                               const nd_tensor *input, const nd_conv2d_params *p, int64_t *size)
{
    nd_conv2d_params q = *p;
    q.groups = 1;
    ND_TRY(nd_conv_check_image(dev, op, g, input, "input", &q));
    size[0] = g->C * g->kh * g->kw;
    size[1] = g->N * g->OH * g->OW;
    ND_TRY(nd_nn_check_out_on(dev, op, "cols", cols, input->dtype, 2, size, 1));
    return nd_nn_check_alias(op, "cols", cols, 0, 1, (const nd_tensor *[]){input});
}

nd_status nd_conv_check_col2im(nd_device_type dev, const char *op, nd_conv_geom *g, const nd_tensor *image,
                               const nd_tensor *cols, const nd_conv2d_params *p, int64_t *size)
{
    nd_conv2d_params q = *p;
    q.groups = 1;
    ND_TRY(nd_conv_check_image(dev, op, g, image, "image", &q));
    ND_TRY(nd_nn_check_out_on(dev, op, "image", image, image->dtype, image->ndim, image->size, 1));
    size[0] = g->C * g->kh * g->kw;
    size[1] = g->N * g->OH * g->OW;
    ND_TRY(nd_nn_check_float_on(dev, op, "cols", cols, (int)image->dtype));
    ND_TRY(nd_nn_check_out_on(dev, op, "cols", cols, image->dtype, 2, size, 0));
    return nd_nn_check_alias(op, "image", image, 0, 1, (const nd_tensor *[]){cols});
}

/* ---- pooling ---- */

/* Validates an image (3-d or 4-d) and the parameters; fills g (OH, OW from the parameters, or
 * left 0 for adaptive pooling when p == NULL). */
static nd_status nd_pool_check_image(nd_device_type dev, const char *op, nd_pool_geom *g, const nd_tensor *image,
                                     const char *what, const nd_pool2d_params *p)
{
    char s[ND_SHAPE_STR_MAX];
    ND_TRY(nd_nn_check_float_on(dev, op, what, image, -1));
    if (image->ndim != 3 && image->ndim != 4)
        return ND_ERROR(ND_ERR_SHAPE, "%s: expected a 3-d (C,H,W) or 4-d (N,C,H,W) %s, got %s", op, what,
                        nd_tensor_shape_str(image, s, sizeof s));
    int b = image->ndim == 4;
    g->planes = (b ? image->size[0] : 1) * image->size[b];
    g->H = image->size[b + 1];
    g->W = image->size[b + 2];
    g->OH = g->OW = 0;
    g->kh = g->kw = g->sh = g->sw = 1;
    g->ph = g->pw = 0;
    g->count_include_pad = 1;
    if (!p) return ND_OK;
    if (p->kh < 1 || p->kw < 1 || p->sh < 1 || p->sw < 1 || p->ph < 0 || p->pw < 0)
        return ND_ERROR(ND_ERR_ARG, "%s: invalid kernel %lldx%lld, stride %lldx%lld or padding %lldx%lld", op,
                        (long long)p->kh, (long long)p->kw, (long long)p->sh, (long long)p->sw, (long long)p->ph,
                        (long long)p->pw);
    if (2 * p->ph > p->kh || 2 * p->pw > p->kw)
        return ND_ERROR(ND_ERR_ARG, "%s: padding %lldx%lld must be at most half the kernel %lldx%lld", op,
                        (long long)p->ph, (long long)p->pw, (long long)p->kh, (long long)p->kw);
    g->kh = p->kh, g->kw = p->kw, g->sh = p->sh, g->sw = p->sw, g->ph = p->ph, g->pw = p->pw;
    g->count_include_pad = p->count_include_pad;
    g->OH = nd_pool_out_size(g->H, p->kh, p->sh, p->ph, p->ceil_mode);
    g->OW = nd_pool_out_size(g->W, p->kw, p->sw, p->pw, p->ceil_mode);
    if (g->OH < 1 || g->OW < 1)
        return ND_ERROR(ND_ERR_SHAPE, "%s: %s %s is too small for kernel %lldx%lld (padding %lldx%lld)", op, what,
                        nd_tensor_shape_str(image, s, sizeof s), (long long)p->kh, (long long)p->kw, (long long)p->ph,
                        (long long)p->pw);
    return ND_OK;
}

/* The pooled shape of an image-shaped tensor. */
static void nd_pool_out_shape(const nd_tensor *image, const nd_pool_geom *g, int64_t *size)
{
    for (int d = 0; d < image->ndim - 2; d++)
        size[d] = image->size[d];
    size[image->ndim - 2] = g->OH;
    size[image->ndim - 1] = g->OW;
}

nd_status nd_pool_check_fwd(nd_device_type dev, const char *op, nd_pool_geom *g, const nd_tensor *out,
                            const nd_tensor *indices, const nd_tensor *input, const nd_pool2d_params *p, int64_t *size)
{
    ND_TRY(nd_pool_check_image(dev, op, g, input, "input", p));
    nd_pool_out_shape(input, g, size);
    ND_TRY(nd_nn_check_out_on(dev, op, "output", out, input->dtype, input->ndim, size, 1));
    ND_TRY(nd_nn_check_alias(op, "output", out, 0, 1, (const nd_tensor *[]){input}));
    if (!indices) return ND_OK;
    ND_TRY(nd_nn_check_out_on(dev, op, "indices", indices, ND_DTYPE_I64, input->ndim, size, 1));
    return nd_nn_check_alias(op, "indices", indices, 0, 2, (const nd_tensor *[]){input, out});
}

nd_status nd_pool_check_bwd(nd_device_type dev, const char *op, nd_pool_geom *g, const nd_tensor *grad_input,
                            const nd_tensor *grad_output, const nd_tensor *indices, const nd_pool2d_params *p,
                            int64_t *size)
{
    ND_TRY(nd_pool_check_image(dev, op, g, grad_input, "grad_input", p));
    ND_TRY(nd_nn_check_out_on(dev, op, "grad_input", grad_input, grad_input->dtype, grad_input->ndim, grad_input->size,
                              1));
    ND_TRY(nd_nn_check_alias(op, "grad_input", grad_input, 0, 1, (const nd_tensor *[]){grad_output}));
    nd_pool_out_shape(grad_input, g, size);
    ND_TRY(nd_nn_check_out_on(dev, op, "grad_output", grad_output, grad_input->dtype, grad_input->ndim, size, 0));
    if (!indices) return ND_OK;
    return nd_nn_check_out_on(dev, op, "indices", indices, ND_DTYPE_I64, grad_input->ndim, size, 0);
}

/* Adaptive pooling: the output size comes from pooled (out or grad_output). */
static nd_status nd_pool_check_adaptive(nd_device_type dev, const char *op, nd_pool_geom *g, const nd_tensor *image,
                                        const char *what, const nd_tensor *pooled, const char *pooled_what)
{
    char a[ND_SHAPE_STR_MAX], b[ND_SHAPE_STR_MAX];
    ND_TRY(nd_pool_check_image(dev, op, g, image, what, NULL));
    int ok = pooled->ndim == image->ndim;
    for (int d = 0; ok && d < image->ndim - 2; d++)
        ok = pooled->size[d] == image->size[d];
    if (!ok || pooled->size[image->ndim - 2] < 1 || pooled->size[image->ndim - 1] < 1)
        return ND_ERROR(ND_ERR_SHAPE, "%s: %s %s does not fit %s %s", op, pooled_what,
                        nd_tensor_shape_str(pooled, a, sizeof a), what, nd_tensor_shape_str(image, b, sizeof b));
    g->OH = pooled->size[image->ndim - 2];
    g->OW = pooled->size[image->ndim - 1];
    return ND_OK;
}

nd_status nd_pool_check_adaptive_fwd(nd_device_type dev, const char *op, nd_pool_geom *g, const nd_tensor *out,
                                     const nd_tensor *input)
{
    ND_TRY(nd_pool_check_adaptive(dev, op, g, input, "input", out, "output"));
    ND_TRY(nd_nn_check_out_on(dev, op, "output", out, input->dtype, out->ndim, out->size, 1));
    return nd_nn_check_alias(op, "output", out, 0, 1, (const nd_tensor *[]){input});
}

nd_status nd_pool_check_adaptive_bwd(nd_device_type dev, const char *op, nd_pool_geom *g, const nd_tensor *grad_input,
                                     const nd_tensor *grad_output)
{
    ND_TRY(nd_pool_check_adaptive(dev, op, g, grad_input, "grad_input", grad_output, "grad_output"));
    ND_TRY(nd_nn_check_out_on(dev, op, "grad_input", grad_input, grad_input->dtype, grad_input->ndim, grad_input->size,
                              1));
    ND_TRY(nd_nn_check_alias(op, "grad_input", grad_input, 0, 1, (const nd_tensor *[]){grad_output}));
    return nd_nn_check_float_on(dev, op, "grad_output", grad_output, (int)grad_input->dtype);
}

/* ---- batch normalisation ---- */

static nd_status nd_bn_check_input(nd_device_type dev, const char *op, nd_bn_geom *g, const nd_tensor *t,
                                   const char *what)
{
    char s[ND_SHAPE_STR_MAX];
    ND_TRY(nd_nn_check_float_on(dev, op, what, t, -1));
    if (t->ndim < 2 || nd_tensor_numel(t) == 0)
        return ND_ERROR(ND_ERR_SHAPE, "%s: expected a non-empty (N,C) or (N,C,...) %s, got %s", op, what,
                        nd_tensor_shape_str(t, s, sizeof s));
    g->N = t->size[0];
    g->C = t->size[1];
    g->S = 1;
    for (int d = 2; d < t->ndim; d++)
        g->S *= t->size[d];
    return ND_OK;
}

/* An optional per-plane vector: NULL gives an absent one. */
static nd_status nd_bn_check_vec(nd_device_type dev, const char *op, const char *what, nd_bn_vec *v,
                                 const nd_tensor *t, nd_dtype dt, int64_t C)
{
    v->p = NULL;
    v->stride = 0;
    if (!t) return ND_OK;
    ND_TRY(nd_nn_check_vec_on(dev, op, what, t, dt, C, &v->stride));
    v->p = nd_tensor_data(t);
    return ND_OK;
}

nd_status nd_bn_check_forward_train(nd_device_type dev, const char *op, nd_bn_geom *g, const nd_tensor *out,
                                    const nd_tensor *save_mean, const nd_tensor *save_invstd, const nd_tensor *input,
                                    const nd_tensor *weight, const nd_tensor *bias, const nd_tensor *running_mean,
                                    const nd_tensor *running_var, double eps, nd_bn_vec *w, nd_bn_vec *b,
                                    nd_bn_vec *sm, nd_bn_vec *si, nd_bn_vec *rm, nd_bn_vec *rv)
{
    char s[ND_SHAPE_STR_MAX];
    ND_TRY(nd_bn_check_input(dev, op, g, input, "input"));
    nd_dtype dt = input->dtype;
    if (g->N * g->S < 2)
        return ND_ERROR(ND_ERR_SHAPE, "%s: expected more than 1 value per plane when training, got input %s", op,
                        nd_tensor_shape_str(input, s, sizeof s));
    if (!(eps > 0)) return ND_ERROR(ND_ERR_ARG, "%s: eps must be positive, got %g", op, eps);
    ND_TRY(nd_nn_check_out_on(dev, op, "output", out, dt, input->ndim, input->size, 1));
    ND_TRY(nd_nn_check_alias(op, "output", out, 1, 1, (const nd_tensor *[]){input}));
    ND_TRY(nd_bn_check_vec(dev, op, "weight", w, weight, dt, g->C));
    ND_TRY(nd_bn_check_vec(dev, op, "bias", b, bias, dt, g->C));
    ND_TRY(nd_bn_check_vec(dev, op, "save_mean", sm, save_mean, dt, g->C));
    ND_TRY(nd_bn_check_vec(dev, op, "save_invstd", si, save_invstd, dt, g->C));
    ND_TRY(nd_bn_check_vec(dev, op, "running_mean", rm, running_mean, dt, g->C));
    return nd_bn_check_vec(dev, op, "running_var", rv, running_var, dt, g->C);
}

nd_status nd_bn_check_forward_eval(nd_device_type dev, const char *op, nd_bn_geom *g, const nd_tensor *out,
                                   const nd_tensor *input, const nd_tensor *weight, const nd_tensor *bias,
                                   const nd_tensor *running_mean, const nd_tensor *running_var, nd_bn_vec *w,
                                   nd_bn_vec *b, nd_bn_vec *rm, nd_bn_vec *rv)
{
    ND_TRY(nd_bn_check_input(dev, op, g, input, "input"));
    nd_dtype dt = input->dtype;
    if (!running_mean || !running_var)
        return ND_ERROR(ND_ERR_ARG, "%s: evaluation needs running_mean and running_var", op);
    ND_TRY(nd_nn_check_out_on(dev, op, "output", out, dt, input->ndim, input->size, 1));
    ND_TRY(nd_nn_check_alias(op, "output", out, 1, 1, (const nd_tensor *[]){input}));
    ND_TRY(nd_bn_check_vec(dev, op, "weight", w, weight, dt, g->C));
    ND_TRY(nd_bn_check_vec(dev, op, "bias", b, bias, dt, g->C));
    ND_TRY(nd_bn_check_vec(dev, op, "running_mean", rm, running_mean, dt, g->C));
    return nd_bn_check_vec(dev, op, "running_var", rv, running_var, dt, g->C);
}

nd_status nd_bn_check_backward(nd_device_type dev, const char *op, nd_bn_geom *g, const nd_tensor *grad_input,
                               const nd_tensor *grad_weight, const nd_tensor *grad_bias, const nd_tensor *input,
                               const nd_tensor *grad_output, const nd_tensor *weight, const nd_tensor *save_mean,
                               const nd_tensor *save_invstd, const nd_tensor *running_mean,
                               const nd_tensor *running_var, int training, nd_bn_vec *gw, nd_bn_vec *gb, nd_bn_vec *w,
                               nd_bn_vec *mean, nd_bn_vec *inv)
{
    ND_TRY(nd_bn_check_input(dev, op, g, input, "input"));
    nd_dtype dt = input->dtype;
    ND_TRY(nd_nn_check_float_on(dev, op, "grad_output", grad_output, (int)dt));
    ND_TRY(nd_nn_check_out_on(dev, op, "grad_output", grad_output, dt, input->ndim, input->size, 0));
    if (grad_input) ND_TRY(nd_nn_check_out_on(dev, op, "grad_input", grad_input, dt, input->ndim, input->size, 1));
    ND_TRY(nd_nn_check_alias(op, "grad_input", grad_input, 1, 2, (const nd_tensor *[]){input, grad_output}));
    ND_TRY(nd_bn_check_vec(dev, op, "grad_weight", gw, grad_weight, dt, g->C));
    ND_TRY(nd_bn_check_vec(dev, op, "grad_bias", gb, grad_bias, dt, g->C));
    ND_TRY(nd_bn_check_vec(dev, op, "weight", w, weight, dt, g->C));
    const nd_tensor *mt = training ? save_mean : running_mean, *it = training ? save_invstd : running_var;
    if (!mt || !it)
        return ND_ERROR(ND_ERR_ARG, "%s: %s", op,
                        training ? "training mode needs save_mean and save_invstd"
                                 : "evaluation mode needs running_mean and running_var");
    ND_TRY(nd_bn_check_vec(dev, op, training ? "save_mean" : "running_mean", mean, mt, dt, g->C));
    return nd_bn_check_vec(dev, op, training ? "save_invstd" : "running_var", inv, it, dt, g->C);
}

/* ---- activations ---- */

nd_status nd_softmax_check_dims(nd_device_type dev, const char *op, const nd_tensor *t, int64_t *N, int64_t *C,
                                int64_t *S)
{
    char s[ND_SHAPE_STR_MAX];
    ND_TRY(nd_nn_check_float_on(dev, op, "input", t, -1));
    if (t->ndim < 1 || nd_tensor_numel(t) == 0)
        return ND_ERROR(ND_ERR_SHAPE, "%s: expected a non-empty (C), (N,C) or (N,C,...) input, got %s", op,
                        nd_tensor_shape_str(t, s, sizeof s));
    if (t->ndim == 1) {
        *N = 1, *C = t->size[0], *S = 1;
        return ND_OK;
    }
    *N = t->size[0];
    *C = t->size[1];
    *S = 1;
    for (int d = 2; d < t->ndim; d++)
        *S *= t->size[d];
    return ND_OK;
}

/* ---- losses ---- */

nd_status nd_loss_check_like(nd_device_type dev, const char *op, const char *what, const nd_tensor *t,
                             const nd_tensor *like)
{
    char a[ND_SHAPE_STR_MAX], b[ND_SHAPE_STR_MAX];
    ND_TRY(nd_nn_check_float_on(dev, op, what, t, (int)like->dtype));
    if (nd_tensor_numel(t) != nd_tensor_numel(like))
        return ND_ERROR(ND_ERR_SHAPE, "%s: %s %s and input %s differ in element count", op, what,
                        nd_tensor_shape_str(t, a, sizeof a), nd_tensor_shape_str(like, b, sizeof b));
    return ND_OK;
}

nd_status nd_nll_check_dims(nd_device_type dev, const char *op, const nd_tensor *shape_of, const nd_tensor *target,
                            const nd_tensor *class_weight, int64_t *N, int64_t *C, int64_t *sn, int64_t *sc,
                            int64_t *wst)
{
    char s[ND_SHAPE_STR_MAX], s2[ND_SHAPE_STR_MAX];
    if (shape_of->ndim == 1) {
        *N = 1, *C = shape_of->size[0], *sn = 0, *sc = shape_of->stride[0];
    } else if (shape_of->ndim == 2) {
        *N = shape_of->size[0], *C = shape_of->size[1], *sn = shape_of->stride[0], *sc = shape_of->stride[1];
    } else {
        return ND_ERROR(ND_ERR_SHAPE, "%s: expected a (N,C) or (C) input, got %s", op,
                        nd_tensor_shape_str(shape_of, s, sizeof s));
    }
    if (*C < 1)
        return ND_ERROR(ND_ERR_SHAPE, "%s: no classes in input %s", op, nd_tensor_shape_str(shape_of, s, sizeof s));
    const nd_device_type tdev = nd_tensor_device(target).type;
    if (target->dtype != ND_DTYPE_I64 || tdev != dev)
        return ND_ERROR(ND_ERR_DTYPE, "%s: target must be an int64 %s tensor, got %s%s", op,
                        dev == ND_DEVICE_CUDA ? "CUDA" : "CPU", nd_dtype_name(target->dtype),
                        tdev == dev ? "" : tdev == ND_DEVICE_CUDA ? " (CUDA)" : " (CPU)");
    if (nd_tensor_numel(target) != *N)
        return ND_ERROR(ND_ERR_SHAPE, "%s: expected %lld targets, got %s (input %s)", op, (long long)*N,
                        nd_tensor_shape_str(target, s, sizeof s), nd_tensor_shape_str(shape_of, s2, sizeof s2));
    *wst = 0;
    return class_weight ? nd_nn_check_vec_on(dev, op, "class weights", class_weight, shape_of->dtype, *C, wst) : ND_OK;
}
