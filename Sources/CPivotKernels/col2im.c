// The adjoint of im2col (the VJP of a convolution with respect to its input, after Wᵀ·gy). The other VJP
// kernels are vectorised in backward_simd.inc; the Winograd transform of flipped kernels is in kernels.c.
#include "pivot_kernels.h"

void pv_col2im(const float *col, float *x, long channels, long h, long w, long kh, long kw, long stride,
               long pad, long wo, long row0, long row1, long c0, long c1) {
    (void)channels;
    long ncols = (row1 - row0) * wo;
    for (long c = c0; c < c1; c++) {
        float *xc = x + c * h * w;
        for (long ky = 0; ky < kh; ky++) {
            for (long kx = 0; kx < kw; kx++) {
                const float *src = col + ((c * kh + ky) * kw + kx) * ncols;
                for (long oy = row0; oy < row1; oy++) {
                    long iy = oy * stride - pad + ky;
                    if (iy < 0 || iy >= h) continue;
                    const float *s = src + (oy - row0) * wo;
                    float *d = xc + iy * w;
                    for (long ox = 0; ox < wo; ox++) {
                        long ix = ox * stride - pad + kx;
                        if (ix >= 0 && ix < w) d[ix] += s[ox];
                    }
                }
            }
        }
    }
}

