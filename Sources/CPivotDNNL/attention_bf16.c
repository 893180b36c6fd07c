// Fused attention for bf16 (AVX512_BF16): softmax(Q Kᵀ · scale) V for a range of query rows of one head, with
// an online (streaming) softmax over blocks of 64 keys, so that no score matrix is ever stored: each block's
// scores live in registers, its probabilities in a 512-byte buffer. Products use vdpbf16ps (bf16 pairs,
// fp32 accumulation); the softmax is fp32. Keys and values are packed once per head into bf16 pairs (along
// the head width for keys, along the keys for values). The flash-attention recurrence (Dao et al. 2022):
// per row, m = running max, l = running sum of exp(s − m), o = running Σ exp(s − m)·v, rescaled by
// exp(m_old − m_new) whenever the max grows; the output is o / l.
#include "pivot_dnnl.h"

#include <math.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#define KB 64  // keys per block
#define RB 4   // query rows per block

static inline uint16_t bf16_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline uint32_t pair_of(float lo, float hi) { return (uint32_t)bf16_of(lo) | ((uint32_t)bf16_of(hi) << 16); }

long pv_attn_keys_padded(long nk) { return (nk + KB - 1) / KB * KB; }
long pv_attn_width_padded(long d) { return (d + 15) / 16 * 16; }

void pv_attn_pack_keys(const float *k, long ldk, long nk, long d, uint32_t *kp) {
    long nkp = pv_attn_keys_padded(nk);
    for (long p = 0; p < d / 2; p++) {
        uint32_t *row = kp + p * nkp;
        for (long j = 0; j < nk; j++) row[j] = pair_of(k[j * ldk + 2 * p], k[j * ldk + 2 * p + 1]);
        for (long j = nk; j < nkp; j++) row[j] = 0;
    }
}

void pv_attn_pack_values(const float *v, long ldv, long nk, long d, uint32_t *vp) {
    long nkp = pv_attn_keys_padded(nk), dp = pv_attn_width_padded(d);
    for (long jp = 0; jp < nkp / 2; jp++) {
        uint32_t *row = vp + jp * dp;
        long j0 = 2 * jp, j1 = 2 * jp + 1;
        for (long c = 0; c < d; c++) {
            float lo = j0 < nk ? v[j0 * ldv + c] : 0, hi = j1 < nk ? v[j1 * ldv + c] : 0;
            row[c] = pair_of(lo, hi);
        }
        for (long c = d; c < dp; c++) row[c] = 0;
    }
}

int pv_attention_bf16_supported(void) {
#if defined(__x86_64__)
    unsigned a, b, c, dd;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw")) return 0;
    return __get_cpuid_count(7, 1, &a, &b, &c, &dd) && (a & (1u << 5));
#else
    return 0;
#endif
}

#if defined(__x86_64__)
#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))

// exp(x) for x ≤ 0 (≈ 2 ulp; 0 below −87.3), the polynomial of CPivotKernels' v_exp.
static inline TGT __m512 exp512(__m512 x0) {
    __m512 x = _mm512_max_ps(x0, _mm512_set1_ps(-87.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    __m512 y = _mm512_mul_ps(p, _mm512_castsi512_ps(e));
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x0, _mm512_set1_ps(-87.33f), _CMP_LT_OQ), y, _mm512_setzero_ps());
}

static inline TGT __m512 dp(__m512 acc, __m512i a, __m512i b) {
    return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b);
}

static TGT void rows_kernel(const float *q, long ldq, const uint32_t *kp, const uint32_t *vp, long nk, long d,
                            float scale, long causal, long r0, long r1, float *out, long ldo) {
    const long nkp = pv_attn_keys_padded(nk), dp16 = pv_attn_width_padded(d) / 16, pairs = d / 2;
    uint32_t qpair[RB][128];
    float acc[RB][256] __attribute__((aligned(64)));
    uint16_t prob[RB][KB] __attribute__((aligned(64)));
    for (long rb = r0; rb < r1; rb += RB) {
        const long rows = r1 - rb < RB ? r1 - rb : RB;
        float m[RB], l[RB];
        for (long r = 0; r < RB; r++) {
            m[r] = -INFINITY; l[r] = 0;
            const float *qr = q + (rb + (r < rows ? r : 0)) * ldq;
            for (long p = 0; p < pairs; p++) qpair[r][p] = pair_of(qr[2 * p], qr[2 * p + 1]);
            memset(acc[r], 0, sizeof(float) * 16 * dp16);
        }
        // keys beyond the last row's causal limit are never needed
        long kend = causal >= 0 ? (rb + rows - 1 + causal + 1 < nk ? rb + rows - 1 + causal + 1 : nk) : nk;
        for (long jb = 0; jb < kend; jb += KB) {
            __m512 s[RB][4];
            for (long r = 0; r < RB; r++) for (int i = 0; i < 4; i++) s[r][i] = _mm512_setzero_ps();
            for (long p = 0; p < pairs; p++) {
                const uint32_t *kr = kp + p * nkp + jb;
                __m512i k0 = _mm512_loadu_si512(kr), k1 = _mm512_loadu_si512(kr + 16);
                __m512i k2 = _mm512_loadu_si512(kr + 32), k3 = _mm512_loadu_si512(kr + 48);
                for (long r = 0; r < RB; r++) {
                    __m512i qb = _mm512_set1_epi32((int)qpair[r][p]);
                    s[r][0] = dp(s[r][0], qb, k0); s[r][1] = dp(s[r][1], qb, k1);
                    s[r][2] = dp(s[r][2], qb, k2); s[r][3] = dp(s[r][3], qb, k3);
                }
            }
            for (long r = 0; r < rows; r++) {
                long limit = causal >= 0 ? rb + r + causal + 1 : nk;  // keys j < limit are visible
                if (limit > nk) limit = nk;
                __m512 bmax = _mm512_set1_ps(-INFINITY);
                for (int i = 0; i < 4; i++) {
                    long j0 = jb + 16 * i;
                    __mmask16 valid = j0 >= limit ? 0 : (limit - j0 >= 16 ? 0xffff : (__mmask16)((1u << (limit - j0)) - 1));
                    s[r][i] = _mm512_mask_blend_ps(valid, _mm512_set1_ps(-INFINITY), _mm512_mul_ps(s[r][i], _mm512_set1_ps(scale)));
                    bmax = _mm512_max_ps(bmax, s[r][i]);
                }
                float mb = _mm512_reduce_max_ps(bmax);
                float mnew = mb > m[r] ? mb : m[r];
                if (mnew == -INFINITY) {  // nothing visible yet in this block
                    memset(prob[r], 0, sizeof(prob[r]));
                    continue;
                }
                float corr = m[r] == -INFINITY ? 0 : expf(m[r] - mnew);
                __m512 mv = _mm512_set1_ps(mnew), sum = _mm512_setzero_ps();
                for (int i = 0; i < 4; i += 2) {
                    __m512 e0 = exp512(_mm512_sub_ps(s[r][i], mv)), e1 = exp512(_mm512_sub_ps(s[r][i + 1], mv));
                    sum = _mm512_add_ps(sum, _mm512_add_ps(e0, e1));
                    _mm512_store_si512((__m512i *)(prob[r] + 16 * i), (__m512i)_mm512_cvtne2ps_pbh(e1, e0));
                }
                l[r] = l[r] * corr + _mm512_reduce_add_ps(sum);
                m[r] = mnew;
                if (corr != 1.0f) {
                    __m512 cv = _mm512_set1_ps(corr);
                    for (long c = 0; c < dp16; c++) _mm512_store_ps(acc[r] + 16 * c, _mm512_mul_ps(_mm512_load_ps(acc[r] + 16 * c), cv));
                }
            }
            for (long r = rows; r < RB; r++) memset(prob[r], 0, sizeof(prob[r]));
            // acc[r] += P[r, block] · V[block]
            const uint32_t *vb = vp + (jb / 2) * dp16 * 16;
            for (long c = 0; c < dp16; c++) {
                __m512 a0 = _mm512_load_ps(acc[0] + 16 * c), a1 = _mm512_load_ps(acc[1] + 16 * c);
                __m512 a2 = _mm512_load_ps(acc[2] + 16 * c), a3 = _mm512_load_ps(acc[3] + 16 * c);
                const uint32_t *p0 = (const uint32_t *)prob[0], *p1 = (const uint32_t *)prob[1];
                const uint32_t *p2 = (const uint32_t *)prob[2], *p3 = (const uint32_t *)prob[3];
                for (long jp = 0; jp < KB / 2; jp++) {
                    __m512i v = _mm512_loadu_si512(vb + jp * dp16 * 16 + 16 * c);
                    a0 = dp(a0, _mm512_set1_epi32((int)p0[jp]), v);
                    a1 = dp(a1, _mm512_set1_epi32((int)p1[jp]), v);
                    a2 = dp(a2, _mm512_set1_epi32((int)p2[jp]), v);
                    a3 = dp(a3, _mm512_set1_epi32((int)p3[jp]), v);
                }
                _mm512_store_ps(acc[0] + 16 * c, a0); _mm512_store_ps(acc[1] + 16 * c, a1);
                _mm512_store_ps(acc[2] + 16 * c, a2); _mm512_store_ps(acc[3] + 16 * c, a3);
            }
        }
        for (long r = 0; r < rows; r++) {
            float inv = l[r] > 0 ? 1.0f / l[r] : 0;
            float *o = out + (rb + r) * ldo;
            for (long c = 0; c < d; c++) o[c] = acc[r][c] * inv;
        }
    }
}
#endif

int pv_attention_bf16_rows(const float *q, long ldq, const uint32_t *kp, const uint32_t *vp, long nk, long d,
                           float scale, long causal_offset, long r0, long r1, float *out, long ldo) {
#if defined(__x86_64__)
    if (!pv_attention_bf16_supported() || d % 2 != 0 || d > 256 || d < 2) return -1;
    rows_kernel(q, ldq, kp, vp, nk, d, scale, causal_offset, r0, r1, out, ldo);
    return 0;
#else
    return -1;
#endif
}
