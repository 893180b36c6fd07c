// Fused bf16 attention (AVX512_BF16): softmax(Q Kᵀ · scale) V for a range of query rows of one head, with a
// streaming softmax over steps of 8 keys, so no score matrix is stored. The flash-attention recurrence (Dao et
// al. 2022): per query row a running maximum m, a running sum l of exp(s − m) and a running output
// o = Σ exp(s − m)·v, rescaled when m changes; the result is o / l.
//
// Layout, chosen so the softmax needs no horizontal reductions: 16 query rows sit in the 16 lanes of a
// vector. A step's 8 score vectors (one per key) are 8 independent vdpbf16ps chains over the head width,
// each with the key's bf16 pair broadcast from memory; their maximum, exponentials and sums are lane-wise.
// The probabilities of two keys are interleaved into bf16 pairs per lane, so P·V is again vdpbf16ps with the
// two keys' values of one column broadcast; o lives in an L1-resident [d, 16] block.
//
// Two economies: the scale is folded into Q (times log2 e) so exponentials are exp2; and the running
// maximum is raised lazily, only when a lane's new maximum exceeds it by more than 8 (log2 units): until then
// probabilities up to 2^8 are accumulated unnormalised (exact in fp32, in range for bf16), so the rescale of
// o — d multiplications per lane — happens a few times per row instead of at every step.
#include "pivot_kernels.h"

#include <math.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#define ROWS 16  // query rows per block, one per vector lane
#define KEYS 8   // keys per step

long pv_flash_keys_padded(long nk) { return (nk + KEYS - 1) / KEYS * KEYS; }

static inline uint16_t bf16_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  // NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

void pv_flash_pack_values(const float *v, long nk, long width, uint32_t *vp, long jp0, long jp1) {
    for (long jp = jp0; jp < jp1; jp++) {
        uint32_t *row = vp + jp * width;
        const long j0 = 2 * jp, j1 = 2 * jp + 1;
        for (long c = 0; c < width; c++) {
            uint32_t lo = j0 < nk ? bf16_of(v[j0 * width + c]) : 0, hi = j1 < nk ? bf16_of(v[j1 * width + c]) : 0;
            row[c] = lo | (hi << 16);
        }
    }
}

int pv_flash_bf16_supported(void) {
#if defined(__x86_64__)
    unsigned a, b, c, d;
    __builtin_cpu_init();
    if (pv_isa_cap() < 2 || !__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw")) return 0;
    return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5));
#else
    return 0;
#endif
}

#if defined(__x86_64__)
#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))

// 2^x for x ≤ 2^8 (0 below −127 up to a denormal): x = n + f, |f| ≤ ½, 2^f by its degree-6 Taylor polynomial
// (relative error < 2e-7), then scaled by 2^n.
static inline TGT __m512 exp2_512(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-127.0f));
    const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(x, n);
    __m512 p = _mm512_set1_ps(1.5403530393381606e-4f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558146428443e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291076284772e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504108664821580e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022650695910071e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718055994531e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

static inline TGT __m512 dot(__m512 acc, __m512i a, __m512i b) {
    return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b);
}

static inline TGT __m512i bcast(const void *p) {
    int32_t x;
    memcpy(&x, p, 4);
    return _mm512_set1_epi32(x);
}

// The probabilities of keys j and j+1 as bf16 pairs per lane: (p0[r], p1[r]) in 32-bit lane r.
static inline TGT __m512i pairs(__m512 p0, __m512 p1, __m512i interleave) {
    return _mm512_permutexvar_epi16(interleave, (__m512i)_mm512_cvtne2ps_pbh(p1, p0));
}

static TGT void flash_rows(const float *q, long ldq, const uint16_t *kp, long ldk, const uint32_t *vp, long ldv,
                           long nk, long d, float scale, long r0, long r1, float *out, long ldo) {
    uint32_t qp[128 * ROWS] __attribute__((aligned(64)));  // [d / 2, 16] bf16 pairs of (scaled) Q
    float o[256 * ROWS] __attribute__((aligned(64)));      // [d, 16] running output
    float tile[ROWS] __attribute__((aligned(64)));
    const long pairs_d = d / 2, nkp = pv_flash_keys_padded(nk);
    const float qscale = scale * 1.4426950408889634f;  // exp(x) = 2^(x log2 e)
    const __m512 threshold = _mm512_set1_ps(8.0f), floor = _mm512_set1_ps(-1e30f);
    uint16_t order[32];
    for (int r = 0; r < 16; r++) order[2 * r] = (uint16_t)r, order[2 * r + 1] = (uint16_t)(16 + r);
    const __m512i interleave = _mm512_loadu_si512(order);
    for (long rb = r0; rb < r1; rb += ROWS) {
        const long rows = r1 - rb < ROWS ? r1 - rb : ROWS;
        for (long r = 0; r < ROWS; r++) {
            for (long p = 0; p < pairs_d; p++) qp[p * ROWS + r] = 0;
            if (r >= rows) continue;
            const float *qr = q + (rb + r) * ldq;
            for (long p = 0; p < pairs_d; p++) {
                qp[p * ROWS + r] = (uint32_t)bf16_of(qr[2 * p] * qscale) | ((uint32_t)bf16_of(qr[2 * p + 1] * qscale) << 16);
            }
        }
        memset(o, 0, sizeof(float) * (size_t)(d * ROWS));
        __m512 m = floor, l = _mm512_setzero_ps();
        for (long jb = 0; jb < nkp; jb += KEYS) {
            const uint16_t *kb = kp + jb * ldk;
            __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
            for (long p = 0; p < pairs_d; p++) {
                const __m512i qv = _mm512_load_si512(qp + p * ROWS);
                const uint16_t *kc = kb + 2 * p;
                s0 = dot(s0, qv, bcast(kc));
                s1 = dot(s1, qv, bcast(kc + ldk));
                s2 = dot(s2, qv, bcast(kc + 2 * ldk));
                s3 = dot(s3, qv, bcast(kc + 3 * ldk));
                s4 = dot(s4, qv, bcast(kc + 4 * ldk));
                s5 = dot(s5, qv, bcast(kc + 5 * ldk));
                s6 = dot(s6, qv, bcast(kc + 6 * ldk));
                s7 = dot(s7, qv, bcast(kc + 7 * ldk));
            }
            if (jb + KEYS > nk) {  // padding keys score nothing
                const long valid = nk - jb;
                if (valid <= 1) s1 = floor;
                if (valid <= 2) s2 = floor;
                if (valid <= 3) s3 = floor;
                if (valid <= 4) s4 = floor;
                if (valid <= 5) s5 = floor;
                if (valid <= 6) s6 = floor;
                if (valid <= 7) s7 = floor;
            }
            const __m512 mx = _mm512_max_ps(_mm512_max_ps(_mm512_max_ps(s0, s1), _mm512_max_ps(s2, s3)),
                                            _mm512_max_ps(_mm512_max_ps(s4, s5), _mm512_max_ps(s6, s7)));
            const __mmask16 grow = _mm512_cmp_ps_mask(mx, _mm512_add_ps(m, threshold), _CMP_GT_OQ);
            if (grow) {
                const __m512 mnew = _mm512_mask_blend_ps(grow, m, mx);
                const __m512 corr = exp2_512(_mm512_sub_ps(m, mnew));  // exactly 1 where m stays
                l = _mm512_mul_ps(l, corr);
                for (long c = 0; c < d; c++) _mm512_store_ps(o + c * ROWS, _mm512_mul_ps(_mm512_load_ps(o + c * ROWS), corr));
                m = mnew;
            }
            const __m512 p0 = exp2_512(_mm512_sub_ps(s0, m)), p1 = exp2_512(_mm512_sub_ps(s1, m));
            const __m512 p2 = exp2_512(_mm512_sub_ps(s2, m)), p3 = exp2_512(_mm512_sub_ps(s3, m));
            const __m512 p4 = exp2_512(_mm512_sub_ps(s4, m)), p5 = exp2_512(_mm512_sub_ps(s5, m));
            const __m512 p6 = exp2_512(_mm512_sub_ps(s6, m)), p7 = exp2_512(_mm512_sub_ps(s7, m));
            l = _mm512_add_ps(l, _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(p0, p1), _mm512_add_ps(p2, p3)),
                                               _mm512_add_ps(_mm512_add_ps(p4, p5), _mm512_add_ps(p6, p7))));
            const __m512i a01 = pairs(p0, p1, interleave), a23 = pairs(p2, p3, interleave);
            const __m512i a45 = pairs(p4, p5, interleave), a67 = pairs(p6, p7, interleave);
            const uint32_t *vb = vp + (jb / 2) * ldv;
            for (long c = 0; c < d; c++) {
                __m512 acc = _mm512_load_ps(o + c * ROWS);
                acc = dot(acc, a01, bcast(vb + c));
                acc = dot(acc, a23, bcast(vb + ldv + c));
                acc = dot(acc, a45, bcast(vb + 2 * ldv + c));
                acc = dot(acc, a67, bcast(vb + 3 * ldv + c));
                _mm512_store_ps(o + c * ROWS, acc);
            }
        }
        const __m512 inv = _mm512_div_ps(_mm512_set1_ps(1.0f), l);
        for (long c = 0; c < d; c++) {
            _mm512_store_ps(tile, _mm512_mul_ps(_mm512_load_ps(o + c * ROWS), inv));
            for (long r = 0; r < rows; r++) out[(rb + r) * ldo + c] = tile[r];
        }
    }
}
#endif

int pv_flash_attention_bf16(const float *q, long ldq, const uint16_t *kp, long ldk, const uint32_t *vp, long ldv,
                            long nk, long d, float scale, long r0, long r1, float *out, long ldo) {
#if defined(__x86_64__)
    if (!pv_flash_bf16_supported() || d % 2 != 0 || d < 2 || d > 256 || nk < 1) return -1;
    flash_rows(q, ldq, kp, ldk, vp, ldv, nk, d, scale, r0, r1, out, ldo);
    return 0;
#else
    (void)q, (void)ldq, (void)kp, (void)ldk, (void)vp, (void)ldv, (void)nk, (void)d, (void)scale;
    (void)r0, (void)r1, (void)out, (void)ldo;
    return -1;
#endif
}
