/* Per-sample augmentation as in torchvision's CIFAR recipe: RandomCrop(size, padding=p) (zero
 * padding), RandomHorizontalFlip, ToTensor, Normalize; here one pass from bytes to floats through
 * a per-channel lookup table. */
#include "nd_data.h"

nd_status nd_augment_lut(float *lut, int64_t c, int normalize, int nmean, const double *mean, const double *std)
{
    if (normalize && nmean != 1 && nmean != c)
        return ND_ERROR(ND_ERR_ARG, "normalisation: %d means/stds for %lld channels (give 1 or %lld)", nmean,
                        (long long)c, (long long)c);
    for (int64_t k = 0; k < c; k++) {
        float m = 0.0f, s = 1.0f;
        if (normalize) {
            m = (float)mean[nmean == 1 ? 0 : k];
            s = (float)std[nmean == 1 ? 0 : k];
            if (!(s > 0.0f)) return ND_ERROR(ND_ERR_ARG, "normalisation: std of channel %lld must be > 0", (long long)k + 1);
        }
        for (int b = 0; b < 256; b++) {
            float v = (float)b / 255.0f;
            lut[k * 256 + b] = normalize ? (v - m) / s : v;
        }
    }
    return ND_OK;
}

void nd_augment_sample(const uint8_t *src, int64_t c, int64_t h, int64_t w, int64_t pad, int64_t ox, int64_t oy,
                       int flip, const float *lut, float *dst)
{
    for (int64_t k = 0; k < c; k++) {
        const float *tab = lut + k * 256;
        const uint8_t *plane = src + k * h * w;
        float *out = dst + k * h * w;
        float zero = tab[0];
        /* output columns [x0, x1) read inside the image; the rest is padding */
        int64_t dx = ox - pad, dy = oy - pad;
        for (int64_t y = 0; y < h; y++) {
            float *orow = out + y * w;
            int64_t sy = y + dy;
            if (sy < 0 || sy >= h) {
                for (int64_t x = 0; x < w; x++) orow[x] = zero;
                continue;
            }
            const uint8_t *irow = plane + sy * w;
            for (int64_t x = 0; x < w; x++) {
                int64_t xs = (flip ? w - 1 - x : x) + dx;
                orow[x] = (xs >= 0 && xs < w) ? tab[irow[xs]] : zero;
            }
        }
    }
}
