// Vector-Jacobian products of the elementwise and normalisation kernels (inputs only; weights are constant).
#include "pivot_kernels.h"

#include <math.h>
#include <string.h>

static inline float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

void pv_silu_backward(const float *x, const float *gy, float *gx, long n) {
    for (long i = 0; i < n; i++) {
        float s = sigmoid(x[i]);
        gx[i] = gy[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}

void pv_quick_gelu_backward(const float *x, const float *gy, float *gx, long n) {
    for (long i = 0; i < n; i++) {
        float s = sigmoid(1.702f * x[i]);
        gx[i] = gy[i] * (s + 1.702f * x[i] * s * (1.0f - s));
    }
}

static inline float gelu_grad(float v) {
    const float inv_sqrt2 = 0.70710678118654752f, inv_sqrt2pi = 0.39894228040143268f;
    return 0.5f * (1.0f + erff(v * inv_sqrt2)) + v * inv_sqrt2pi * expf(-0.5f * v * v);
}

void pv_gelu_backward(const float *x, const float *gy, float *gx, long n) {
    for (long i = 0; i < n; i++) gx[i] = gy[i] * gelu_grad(x[i]);
}

void pv_geglu_backward(const float *x, const float *gy, float *gx, long rows, long f) {
    const float inv_sqrt2 = 0.70710678118654752f;
    for (long r = 0; r < rows; r++) {
        const float *a = x + r * 2 * f, *g = a + f, *dy = gy + r * f;
        float *da = gx + r * 2 * f, *dg = da + f;
        for (long j = 0; j < f; j++) {
            float gelu = 0.5f * g[j] * (1.0f + erff(g[j] * inv_sqrt2));
            da[j] = dy[j] * gelu;
            dg[j] = dy[j] * a[j] * gelu_grad(g[j]);
        }
    }
}

static void stats(const float *x, long n, float eps, float *mean, float *rstd) {
    double s = 0;
    for (long i = 0; i < n; i++) s += x[i];
    double m = s / (double)n, v = 0;
    for (long i = 0; i < n; i++) { double d = x[i] - m; v += d * d; }
    *mean = (float)m;
    *rstd = (float)(1.0 / sqrt(v / (double)n + (double)eps));
}

// Normalisation VJP: with xhat = (x - mean) * rstd and gxhat = dL/dxhat,
// gx = rstd * (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat)) over each normalised set.
void pv_group_norm_backward(const float *x, const float *gy, float *gx, long channels, long hw, long groups,
                            const float *gamma, const float *beta, float eps, int silu) {
    long cpg = channels / groups, n = cpg * hw;
    for (long g = 0; g < groups; g++) {
        const float *xg = x + g * n, *gyg = gy + g * n;
        float *gxg = gx + g * n;
        float mean, rstd;
        stats(xg, n, eps, &mean, &rstd);
        double s1 = 0, s2 = 0;  // sums of gxhat and gxhat * xhat
        for (long c = 0; c < cpg; c++) {
            long ch = g * cpg + c;
            float ga = gamma[ch], be = beta[ch];
            for (long i = 0; i < hw; i++) {
                long k = c * hw + i;
                float xh = (xg[k] - mean) * rstd;
                float gu = gyg[k];
                if (silu) {
                    float u = xh * ga + be, s = sigmoid(u);
                    gu *= s * (1.0f + u * (1.0f - s));
                }
                float gxh = gu * ga;
                gxg[k] = gxh;  // stash; finished below
                s1 += gxh;
                s2 += (double)gxh * xh;
            }
        }
        float m1 = (float)(s1 / (double)n), m2 = (float)(s2 / (double)n);
        for (long k = 0; k < n; k++) {
            float xh = (xg[k] - mean) * rstd;
            gxg[k] = rstd * (gxg[k] - m1 - xh * m2);
        }
    }
}

void pv_layer_norm_backward(const float *x, const float *gy, float *gx, long rows, long d, const float *gamma,
                            float eps) {
    for (long r = 0; r < rows; r++) {
        const float *xr = x + r * d, *gyr = gy + r * d;
        float *gxr = gx + r * d;
        float mean, rstd;
        stats(xr, d, eps, &mean, &rstd);
        double s1 = 0, s2 = 0;
        for (long i = 0; i < d; i++) {
            float xh = (xr[i] - mean) * rstd, gxh = gyr[i] * gamma[i];
            gxr[i] = gxh;
            s1 += gxh;
            s2 += (double)gxh * xh;
        }
        float m1 = (float)(s1 / (double)d), m2 = (float)(s2 / (double)d);
        for (long i = 0; i < d; i++) {
            float xh = (xr[i] - mean) * rstd;
            gxr[i] = rstd * (gxr[i] - m1 - xh * m2);
        }
    }
}

void pv_softmax_backward_rows(const float *p, float *dp, long rows, long cols, long ld) {
    for (long r = 0; r < rows; r++) {
        const float *pr = p + r * ld;
        float *dr = dp + r * ld;
        float dot = 0;
        for (long c = 0; c < cols; c++) dot += pr[c] * dr[c];
        for (long c = 0; c < cols; c++) dr[c] = pr[c] * (dr[c] - dot);
    }
}

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
