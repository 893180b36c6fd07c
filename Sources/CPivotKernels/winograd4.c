// Winograd F(4×4, 3×3) transforms (Lavin & Gray 2016, interpolation points 0, ±1, ±2, ∞): a 4×4 output tile
// from a 6×6 input tile in 36 products per channel pair instead of 144, against F(2×2, 3×3)'s 16 per 2×2 tile
// (2.25 against 4 multiplications per output). The matrices, for y = Aᵀ [(G g Gᵀ) ∘ (Bᵀ d B)] A:
//
//   G = [ 1/4     0     0  ]   Bᵀ = [ 4  0 −5  0  1  0 ]   Aᵀ = [ 1  1  1  1  1  0 ]
//       [−1/6  −1/6  −1/6  ]        [ 0 −4 −4  1  1  0 ]        [ 0  1 −1  2 −2  0 ]
//       [−1/6   1/6  −1/6  ]        [ 0  4 −4 −1  1  0 ]        [ 0  1  1  4  4  0 ]
//       [1/24  1/12   1/6  ]        [ 0 −2 −1  2  1  0 ]        [ 0  1 −1  8 −8  1 ]
//       [1/24 −1/12   1/6  ]        [ 0  2 −1 −2  1  0 ]
//       [  0     0     1   ]        [ 0  4  0 −5  0  1 ]
//
// Layouts as the F(2×2) kernels in kernels.c, with 36 planes: weights [36, O, C], input tiles [36, C, P],
// products [36, O, P], P tiles of a band of tile rows (tile origin (4 ty − 1, 4 tx − 1): padding 1).
#include "pivot_kernels.h"

#include <stdlib.h>
#include <string.h>

static const float G4[6][3] = {
    {0.25f, 0.0f, 0.0f},
    {-1.0f / 6, -1.0f / 6, -1.0f / 6},
    {-1.0f / 6, 1.0f / 6, -1.0f / 6},
    {1.0f / 24, 1.0f / 12, 1.0f / 6},
    {1.0f / 24, -1.0f / 12, 1.0f / 6},
    {0.0f, 0.0f, 1.0f},
};

#define PV_W4_BLOCK 64  // kernels transformed together: a [9, 64] block in, a [36, 64] block out

// Rows [r0, r1) of u [36, rows, cols]; kernel (r, col) is g + (r * cols + col) * 9 (or, flipped, kernel
// (col, r) rotated by 180°: g + (col * rows + r) * 9). U = G k Gᵀ is linear in k: plane t = 6 i + j is
// Σ_e coef[t][e] k[e] with coef[t][3 a + b] = G[i][a] G[j][b], so 64 kernels at a time are one small product
// [36, 9] · [9, 64] (vectorised over the kernels); writes stay contiguous, 64 columns of a row per plane.
static void weight_planes4(const float *g, float *u, long rows, long cols, long r0, long r1, int flipped) {
    float coef[36][9];
    for (int t = 0; t < 36; t++) {
        for (int e = 0; e < 9; e++) coef[t][e] = G4[t / 6][e / 3] * G4[t % 6][e % 3];
    }
    float in[9][PV_W4_BLOCK], out[36][PV_W4_BLOCK];
    const long plane = rows * cols;
    for (long r = r0; r < r1; r++) {
        for (long c0 = 0; c0 < cols; c0 += PV_W4_BLOCK) {
            const long n = cols - c0 < PV_W4_BLOCK ? cols - c0 : PV_W4_BLOCK;
            for (long i = 0; i < n; i++) {
                const long col = c0 + i;
                const float *k = flipped ? g + (col * rows + r) * 9 : g + (r * cols + col) * 9;
                for (int e = 0; e < 9; e++) in[e][i] = k[flipped ? 8 - e : e];
            }
            for (long i = n; i < PV_W4_BLOCK; i++) {
                for (int e = 0; e < 9; e++) in[e][i] = 0;
            }
            for (int t = 0; t < 36; t++) {
                for (long i = 0; i < PV_W4_BLOCK; i++) out[t][i] = coef[t][0] * in[0][i];
                for (int e = 1; e < 9; e++) {
                    for (long i = 0; i < PV_W4_BLOCK; i++) out[t][i] += coef[t][e] * in[e][i];
                }
            }
            for (int t = 0; t < 36; t++) memcpy(u + t * plane + r * cols + c0, out[t], (size_t)n * sizeof(float));
        }
    }
}

void pv_winograd4_weights(const float *g, float *u, long out_channels, long in_channels, long o0, long o1) {
    weight_planes4(g, u, out_channels, in_channels, o0, o1, 0);
}

void pv_winograd4_weights_flipped(const float *g, float *u, long out_channels, long in_channels, long c0, long c1) {
    weight_planes4(g, u, in_channels, out_channels, c0, c1, 1);
}

// Bᵀ applied to six values (a column or a row of a tile).
#define PV_BT(d0, d1, d2, d3, d4, d5, t, s)          \
    do {                                             \
        t[0 * s] = 4 * d0 - 5 * d2 + d4;             \
        t[1 * s] = -4 * d1 - 4 * d2 + d3 + d4;       \
        t[2 * s] = 4 * d1 - 4 * d2 - d3 + d4;        \
        t[3 * s] = -2 * d1 - d2 + 2 * d3 + d4;       \
        t[4 * s] = 2 * d1 - d2 - 2 * d3 + d4;        \
        t[5 * s] = 4 * d1 - 5 * d3 + d5;             \
    } while (0)

void pv_winograd4_input(const float *x, float *v, long channels, long h, long w, long ty0, long ty1, long c0, long c1) {
    const long tw = (w + 3) / 4, p = (ty1 - ty0) * tw, cp = channels * p;
    const long pw = 4 * tw + 2;  // padded row: one zero column left, zeros past the right edge
    float *rows = malloc((size_t)(6 * pw + 36 * tw) * sizeof(float));
    if (!rows) return;
    float *tmp = rows + 6 * pw;  // [36, tw]
    for (long c = c0; c < c1; c++) {
        const float *xc = x + c * h * w;
        for (long ty = ty0; ty < ty1; ty++) {
            const long y0 = 4 * ty - 1;
            for (int i = 0; i < 6; i++) {
                float *r = rows + i * pw;
                const long yy = y0 + i;
                memset(r, 0, (size_t)pw * sizeof(float));
                if (yy >= 0 && yy < h) memcpy(r + 1, xc + yy * w, (size_t)w * sizeof(float));
            }
            for (long tx = 0; tx < tw; tx++) {
                const long x0 = 4 * tx;
                float t[6][6];  // Bᵀ d: t[i][j]
                for (int j = 0; j < 6; j++) {
                    const float d0 = rows[x0 + j], d1 = rows[pw + x0 + j], d2 = rows[2 * pw + x0 + j];
                    const float d3 = rows[3 * pw + x0 + j], d4 = rows[4 * pw + x0 + j], d5 = rows[5 * pw + x0 + j];
                    float *col = &t[0][j];
                    PV_BT(d0, d1, d2, d3, d4, d5, col, 6);
                }
                for (int i = 0; i < 6; i++) {  // (Bᵀ d) B
                    float *dst = tmp + (6 * i) * tw + tx;
                    PV_BT(t[i][0], t[i][1], t[i][2], t[i][3], t[i][4], t[i][5], dst, tw);
                }
            }
            float *dst = v + c * p + (ty - ty0) * tw;
            for (int k = 0; k < 36; k++) memcpy(dst + k * cp, tmp + k * tw, (size_t)tw * sizeof(float));
        }
    }
    free(rows);
}

void pv_winograd4_output(const float *m, float *y, const float *bias, long out_channels, long h, long w, long ty0,
                         long ty1, long o0, long o1) {
    const long tw = (w + 3) / 4, p = (ty1 - ty0) * tw, op = out_channels * p;
    float *tmp = malloc((size_t)(36 * tw + 16 * tw) * sizeof(float));
    if (!tmp) return;
    float *out = tmp + 36 * tw;  // four output rows of width 4 tw
    for (long o = o0; o < o1; o++) {
        const float b = bias ? bias[o] : 0.0f;
        float *yo = y + o * h * w;
        for (long ty = ty0; ty < ty1; ty++) {
            const float *mrow = m + o * p + (ty - ty0) * tw;
            for (int k = 0; k < 36; k++) memcpy(tmp + k * tw, mrow + k * op, (size_t)tw * sizeof(float));
            for (long tx = 0; tx < tw; tx++) {
                float t[4][6];  // Aᵀ s
                for (int j = 0; j < 6; j++) {
                    const float s0 = tmp[j * tw + tx], s1 = tmp[(6 + j) * tw + tx], s2 = tmp[(12 + j) * tw + tx];
                    const float s3 = tmp[(18 + j) * tw + tx], s4 = tmp[(24 + j) * tw + tx], s5 = tmp[(30 + j) * tw + tx];
                    t[0][j] = s0 + s1 + s2 + s3 + s4;
                    t[1][j] = s1 - s2 + 2 * (s3 - s4);
                    t[2][j] = s1 + s2 + 4 * (s3 + s4);
                    t[3][j] = s1 - s2 + 8 * (s3 - s4) + s5;
                }
                for (int i = 0; i < 4; i++) {  // (Aᵀ s) A
                    float *row = out + i * 4 * tw + 4 * tx;
                    row[0] = t[i][0] + t[i][1] + t[i][2] + t[i][3] + t[i][4] + b;
                    row[1] = t[i][1] - t[i][2] + 2 * (t[i][3] - t[i][4]) + b;
                    row[2] = t[i][1] + t[i][2] + 4 * (t[i][3] + t[i][4]) + b;
                    row[3] = t[i][1] - t[i][2] + 8 * (t[i][3] - t[i][4]) + t[i][5] + b;
                }
            }
            for (int i = 0; i < 4 && 4 * ty + i < h; i++) memcpy(yo + (4 * ty + i) * w, out + i * 4 * tw, (size_t)w * sizeof(float));
        }
    }
    free(tmp);
}
