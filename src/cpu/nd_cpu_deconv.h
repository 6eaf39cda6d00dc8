/* CPU kernels of network deconvolution (Ye et al., ICLR 2020), HEAD semantics of
 * docs/reference-spec.md sections 1-5: the Newton-Schulz inverse square root, the sampled and
 * block-regrouped im2col of FastDeconv, the mean/covariance statistics, the weight folding, and
 * the whole ChannelDeconv layer. The final convolution with the folded weights is the ordinary
 * conv of nd_cpu_nn.h; Delinear needs no gather (see below).
 *
 * Conventions shared by every function here:
 * - Stateless, returns an nd_status; messages name the op and the shapes.
 * - dtypes float32 and float64; all tensors of one call share the dtype. CPU tensors only.
 * - Inputs may have any strides (a contiguous copy is made at entry when needed).
 * - Outputs are either EMPTY (no storage: allocated here, contiguous; the caller owns the new
 *   reference) or already hold exactly the result shape, contiguous, and are overwritten.
 *   The one exception is nd_deconv_col2im_cpu, which ADDS into its image.
 * - Statistics are accumulated in double (float32 data: float32 BLAS on row chunks of at most
 *   ND_DECONV_CHUNK rows, each chunk's partial sum added into a double accumulator).
 * - OpenMP loops for the gathers; OpenBLAS is never called inside an OpenMP region.
 *
 * How the layers compose these kernels (the Lua side keeps every tensor named here):
 *   FastDeconv (groups g, block B, kernel k, effective sampling stride s = sampling * stride):
 *     X = im2col(x)  ->  mu, C = cov(X)  ->  D = isqrt(C)  ->  Wf, b = fold(W, b0, D, mu)
 *     ->  y = conv2d(x, Wf, b)
 *     backward: conv backward gives Gx_conv, GWf, Gb; fold backward gives GW, GD, Gmu (Gb0 = Gb);
 *     isqrt backward gives GC; cov backward gives GX; col2im adds GX into Gx.
 *   Delinear (in features, block B, contiguous blocks): X = x viewed (N*in/B, B) (contiguous
 *     chunks of each row ARE the rows of that view), then the same cov / isqrt / fold with
 *     ND_DECONV_CONTIGUOUS, y = x Wf^T + b; GX viewed (N, in) is the statistics part of Gx.
 *   ChannelDeconv: nd_channel_deconv_* below (own row layout, uncentred second moment). */
#ifndef ND_CPU_DECONV_H
#define ND_CPU_DECONV_H

#include "nd.h"

#define ND_DECONV_CHUNK 2048

/* ------------------------------------------------------------------------------------------
 * Newton-Schulz inverse square root (isqrt.c), spec sections 1 and 3.4
 * ------------------------------------------------------------------------------------------ */

/* Layout of `saved` for A of shape (d,d): (3n+2, d, d); for (g,d,d): (g, 3n+2, d, d), dtype of A,
 * with n = iters. Per matrix, slots (each d x d, row-major):
 *   slot k          (k = 0..n-1)  Y_k
 *   slot n + k      (k = 0..n)    Z_k   (Z_0 = I, Z_n = D * sqrt(s))
 *   slot 2n + 1 + k (k = 0..n-1)  T_k = (3I - Z_k Y_k) / 2
 *   slot 3n + 1                   element [0][0] = s = ||A||_F, the rest zero. */
int64_t nd_isqrt_saved_slots(int iters);

/* D ~ A^{-1/2} by `iters` (>= 0) coupled Newton-Schulz steps after normalising each matrix by
 * its Frobenius norm s: Y0 = A/s, Z0 = I, T = (3I - ZY)/2, Y <- YT, Z <- TZ, D = Z_n / sqrt(s).
 * A: (d,d) or (g,d,d), any strides. D: A's shape. saved: NULL (inference: nothing kept) or an
 * output of the shape documented above. Fails (ND_ERR_NUMERIC) when some s is 0 or not finite. */
nd_status nd_isqrt_forward_cpu(nd_tensor *D, nd_tensor *saved, const nd_tensor *A, int iters);

/* How large symmetric matrices are evaluated (isqrt.c): ND_ISQRT_AUTO (default; the
 * ND_ISQRT_METHOD environment variable, "ns" or "eig", sets the initial value) takes the eigen
 * basis for d >= 64: one symmetric eigendecomposition, D = Q^T diag(p(lam)) Q with p the scalar
 * Newton-Schulz recursion, and the backward through the Loewner matrix of p's divided
 * differences: the same function and gradient as the iterate products up to rounding, with 5
 * products instead of ~40. ND_ISQRT_NS forces the iterate products (the reference), ND_ISQRT_EIG
 * the eigen path from d = 25. Non-symmetric A always takes the products. Returns the previous
 * setting; method < 0 only reads it. The `saved` layout then differs (see isqrt.c) but keeps its
 * shape; the backward recognises which path filled it. */
enum { ND_ISQRT_AUTO = 0, ND_ISQRT_NS = 1, ND_ISQRT_EIG = 2 };
int nd_isqrt_set_method(int method);

/* GA = dL/dA from GD = dL/dD (spec 3.4, every Newton-Schulz step differentiated, A treated as a
 * general matrix: GA is NOT symmetrised). saved and A as given to / filled by the forward. */
nd_status nd_isqrt_backward_cpu(nd_tensor *GA, const nd_tensor *GD, const nd_tensor *saved, const nd_tensor *A,
                                int iters);

/* ------------------------------------------------------------------------------------------
 * FastDeconv sampled im2col and block regrouping (deconv.c), spec sections 2.2, 2.5, 3.7
 * ------------------------------------------------------------------------------------------ */

typedef struct nd_deconv_geom {
    int64_t k;      /* square kernel size */
    int64_t pad;    /* zero padding (ignored when k == 1) */
    int64_t dil;    /* dilation (ignored when k == 1) */
    int64_t s;      /* effective sampling stride = sampling_stride * conv stride (>= 1) */
    int64_t block;  /* B: channels per block; Cin % B == 0 */
    int64_t groups; /* conv groups; when > 1, B must equal Cin / groups */
} nd_deconv_geom;

/* Rows R0 of the sampled patch matrix for an input (N,Cin,H,W):
 *   k > 1: N * Lh * Lw with Lh = (H + 2 pad - dil (k-1) - 1) / s + 1 (same for Lw), patches at
 *          (i*s, j*s) of the padded image, anchored at the top-left corner;
 *   k == 1: ceil(N*H*W / s^2): the pixels 0, s^2, 2 s^2, ... of the NHWC raster order.
 * Returns -1 when the image is smaller than the (dilated) kernel. */
int64_t nd_deconv_sample_rows(int64_t N, int64_t H, int64_t W, const nd_deconv_geom *g);

/* X = the statistics matrix of FastDeconv.
 * x: (N,Cin,H,W), any strides. Let P (R0 x Cin*k*k) hold the sampled patches with the feature
 * index f = c*k*k + ki*k + kj (zero padding included), F = k*k*B.
 *   groups == 1: G = Cin/B, X is (R0*G, F): row r*G + g, column a = P[r][a*G + g] (strided).
 *   groups > 1:  X is (R0, groups*F) = P: group j's features are the contiguous columns
 *                j*F .. (j+1)*F-1 (channels j*B .. (j+1)*B-1, all taps).
 * In both cases X is (M, groups*F) as nd_deconv_cov_forward_cpu expects. */
nd_status nd_deconv_im2col_cpu(nd_tensor *X, const nd_tensor *x, const nd_deconv_geom *g);

/* The adjoint of nd_deconv_im2col_cpu: Gx (N,Cin,H,W) += the scatter of GX (X's shape, any
 * strides) back to the pixels each entry was read from; entries read from the padding are
 * dropped. Gx must be allocated (any strides). */
nd_status nd_deconv_col2im_cpu(nd_tensor *Gx, const nd_tensor *GX, const nd_deconv_geom *g);

/* ------------------------------------------------------------------------------------------
 * Statistics (deconv.c), spec 2.2 steps 4-5, 2.5, 3.5-3.6
 * ------------------------------------------------------------------------------------------ */

/* X: (M, groups*F), any strides. mu: (groups*F) = the column means of X. C: (F,F) when
 * groups == 1, else (groups,F,F): C_j = (1/M) Xc_j^T Xc_j + eps I with Xc = X - 1 mu^T and Xc_j
 * its columns j*F .. (j+1)*F-1 (biased: divides by M). Exactly symmetric. */
nd_status nd_deconv_cov_forward_cpu(nd_tensor *mu, nd_tensor *C, const nd_tensor *X, int64_t groups, double eps);

/* GX (X's shape) = Xc_j (GC_j + GC_j^T) / M on group j's columns, + Gmu / M on every row.
 * GC: C's shape; Gmu: mu's shape or NULL (zero). X and mu as in the forward. */
nd_status nd_deconv_cov_backward_cpu(nd_tensor *GX, const nd_tensor *GC, const nd_tensor *Gmu, const nd_tensor *X,
                                     const nd_tensor *mu, int64_t groups);

/* ------------------------------------------------------------------------------------------
 * Weight folding (deconv.c), spec 2.4, 2.5, 3.2-3.3, 5
 * ------------------------------------------------------------------------------------------ */

typedef enum nd_deconv_layout {
    ND_DECONV_STRIDED = 0,   /* block g, position a <-> feature a*G + g (FastDeconv, groups == 1) */
    ND_DECONV_CONTIGUOUS = 1 /* block g, position a <-> feature g*F + a (Delinear) */
} nd_deconv_layout;

/* W: (Cout, ...) with K = numel/Cout features per output (conv: Cin/groups*k*k, feature
 * c*k*k + ki*k + kj; linear: in). D: (F,F) or (groups,F,F); mu: (groups*F).
 *   groups == 1: G = K/F blocks per output, w_{o,g}[a] = W[o][map(g,a)], v_{o,g} = w_{o,g} D,
 *                Wf[o][map(g,a)] = v_{o,g}[a], b[o] = b0[o] - sum_g v_{o,g} . mu.
 *   groups > 1:  K must equal F; output o belongs to group j = o / (Cout/groups):
 *                v_o = W[o] D_j, b[o] = b0[o] - v_o . mu_j (layout irrelevant).
 * Wf: W's shape; b: (Cout). b0: (Cout) or NULL (zero). */
nd_status nd_deconv_fold_forward_cpu(nd_tensor *Wf, nd_tensor *b, const nd_tensor *W, const nd_tensor *b0,
                                     const nd_tensor *D, const nd_tensor *mu, int64_t groups, nd_deconv_layout layout);

/* The backward of the fold: from GWf (W's shape) and Gb ((Cout) or NULL = zero):
 *   GV = regroup(GWf) - Gb[o] mu^T, GW = scatter(GV D^T), GD = Wr^T GV (per group),
 *   Gmu = -sum_{o,g} Gb[o] v_{o,g}, Gb0 = Gb.
 * Any of GW, Gb0, GD, Gmu may be NULL (not computed). Shapes: W's, (Cout), D's, mu's. */
nd_status nd_deconv_fold_backward_cpu(nd_tensor *GW, nd_tensor *Gb0, nd_tensor *GD, nd_tensor *Gmu,
                                      const nd_tensor *GWf, const nd_tensor *Gb, const nd_tensor *W, const nd_tensor *D,
                                      const nd_tensor *mu, int64_t groups, nd_deconv_layout layout);

/* ------------------------------------------------------------------------------------------
 * ChannelDeconv (deconv.c), spec section 4
 * ------------------------------------------------------------------------------------------
 * x: (N,C,H,W) or (N,C) (= H = W = 1), any strides. c = floor(C/B)*B >= B channels are
 * whitened, cb = c/B. Column t = (j*N + n)*H*W + pix (j < cb) is the B-vector
 * (x[n][r*cb + j][pix])_{r<B}. Sampling (s > 1 and H >= s and W >= s): columns
 * 0, s^2, 2 s^2, ...; otherwise all columns; ns = their number.
 *   mean1 = mean of the sampled columns; cov = (1/ns) Xs Xs^T + eps I with the UNCENTRED
 *   sampled columns Xs (the HEAD quirk); D = isqrt(cov, iters); y column = D (x column - mean1).
 * Leftover channels c..C-1 (when C % B != 0): each sample's (C-c)*H*W values flattened, entries
 * 0, s^2, ... of each sample under the same condition; mean2 = their mean, var2 = their UNBIASED
 * variance (needs >= 2 entries), y = (x - mean2) / sqrt(var2 + eps). */

/* Training forward. Outputs: y (x's shape), mean1 (B), D (B,B), cov (B,B), saved (the isqrt
 * layout for a (B,B) matrix); *mean2, *var2 (set to 0 and 1 when there is no leftover). */
nd_status nd_channel_deconv_forward_cpu(nd_tensor *y, nd_tensor *mean1, nd_tensor *D, nd_tensor *cov, nd_tensor *saved,
                                        double *mean2, double *var2, const nd_tensor *x, int64_t B, double eps,
                                        int iters, int64_t s);

/* Applies given statistics (eval mode, running buffers): y = D (column - mean1) on the first
 * c channels, (x - mean2)/sqrt(var2 + eps) on the rest. B is D's size. */
nd_status nd_channel_deconv_apply_cpu(nd_tensor *y, const nd_tensor *x, const nd_tensor *mean1, const nd_tensor *D,
                                      double mean2, double var2, double eps);

/* Training backward: gx (x's shape, overwritten) from gy, through the centring, the uncentred
 * second moment, Newton-Schulz, D * column, and the leftover mean and variance. The other
 * arguments are the forward's inputs and outputs. */
nd_status nd_channel_deconv_backward_cpu(nd_tensor *gx, const nd_tensor *gy, const nd_tensor *x, const nd_tensor *mean1,
                                         const nd_tensor *D, const nd_tensor *cov, const nd_tensor *saved, double mean2,
                                         double var2, int64_t B, double eps, int iters, int64_t s);

/* ---- internal helpers shared by isqrt.c and deconv.c (not for other callers) ---- */
/* Device-neutral checks (deconv_check.c), also called by the CUDA twins with dev = ND_DEVICE_CUDA:
 * a present float tensor on dev (of dtype `dtype` when dtype >= 0), and the sizes of one deconv
 * im2col / col2im call validated from the image x (4-d) and g. */
typedef struct nd_deconv_dims {
    int64_t N, C, H, W, k, pad, dil, s;
    int64_t Gs;     /* rows per patch in X: Cin/B when groups == 1, else 1 */
    int64_t Lh, Lw; /* sampled grid (k > 1) */
    int64_t R0;     /* sampled patches */
} nd_deconv_dims;
nd_status nd_deconv_check_float_on(nd_device_type dev, const char *op, const char *what, const nd_tensor *t,
                                   int dtype);
nd_status nd_deconv_check_dims(nd_device_type dev, const char *op, nd_deconv_dims *d, const nd_tensor *x,
                               const char *what, const nd_deconv_geom *g);
/* Sizes of one channel-deconv call, validated from x ((N,C) or (N,C,H,W)), block B and sampling
 * stride s. */
typedef struct nd_cd_dims {
    int64_t N, C, HW, B, c, cb; /* c = floor(C/B)*B whitened channels, cb = c/B */
    int64_t ss;                 /* column (and leftover entry) step: s^2 when sampling, else 1 */
    int64_t ncol, ns;           /* columns, sampled columns */
    int64_t ns2;                /* sampled leftover entries (0 when c == C) */
} nd_cd_dims;
nd_status nd_cd_check_dims(nd_device_type dev, const char *op, nd_cd_dims *d, const nd_tensor *x, int64_t B,
                           int64_t s);
/* Weight folding: W (Cout, ...), D (F,F) or (groups,F,F), mu (groups*F) on dev; fills the sizes
 * (K features per output, G = K / F blocks per row). */
typedef struct nd_fold_dims {
    int64_t Cout, K, F, G, ng;
} nd_fold_dims;
nd_status nd_deconv_check_fold(nd_device_type dev, const char *op, nd_fold_dims *f, const nd_tensor *W,
                               const nd_tensor *D, const nd_tensor *mu, int64_t groups, nd_deconv_layout layout);
/* The statistics input X (M, groups*F) on dev: sets M and F. */
nd_status nd_deconv_check_X(nd_device_type dev, const char *op, const nd_tensor *X, int64_t groups, int64_t *M,
                            int64_t *F);
/* Shape of C / D for `groups` matrices of F x F: (F,F) or (groups,F,F); returns the dims. */
int nd_deconv_cov_shape(int64_t groups, int64_t F, int64_t *size);
/* channel_deconv's forward input: nd_cd_check_dims, and leftover channels (if any) need at
 * least 2 sampled values for their unbiased variance. */
nd_status nd_cd_check_forward(nd_device_type dev, const char *op, nd_cd_dims *d, const nd_tensor *x, int64_t B,
                              int64_t s);
/* channel_deconv_apply's operands: x, mean1 (B) and a square D (B,B) of x's dtype on dev. */
nd_status nd_cd_check_apply(nd_device_type dev, const char *op, nd_cd_dims *d, const nd_tensor *x,
                            const nd_tensor *mean1, const nd_tensor *D);
/* A present float CPU tensor; of dtype `dtype` when dtype >= 0. */
nd_status nd_deconv_check_float_(const char *op, const char *what, const nd_tensor *t, int dtype);
nd_status nd_deconv_check_shape_(const char *op, const char *what, const nd_tensor *t, int ndim, const int64_t *size);
/* An empty out is allocated (contiguous); otherwise it must be contiguous with this shape and dtype. */
nd_status nd_deconv_prepare_out_(const char *op, const char *what, nd_tensor *out, nd_dtype dt, int ndim,
                                 const int64_t *size);

#endif
