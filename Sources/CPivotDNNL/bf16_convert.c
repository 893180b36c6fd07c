// fp32 → bf16 conversion, round to nearest even, with run-time dispatch: AVX512_BF16's vcvtneps2bf16 where
// the processor has it, else integer rounding written for the compiler to vectorise (AVX-512 BW / AVX2 /
// baseline). Both give the same bits for every normal value and keep NaNs NaN (quiet); the instruction flushes
// subnormal inputs to zero, which the integer path rounds instead (|x| < 1.2e-38: irrelevant to networks).
#include "pivot_dnnl.h"
#include "pivot_kernels.h"

#include <stdio.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

int pv_cpu_has_bf16(void) {
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (pv_isa_cap() < 2) return 0;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return pv_cpu_has_amx_bf16();
    return (a & (1u << 5)) != 0 || pv_cpu_has_amx_bf16();  // CPUID.(7,1):EAX bit 5 = AVX512_BF16
#else
    return 0;
#endif
}

int pv_cpu_has_amx_bf16(void) {
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (pv_isa_cap() < 2 || !__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (d & (1u << 22)) != 0;  // CPUID.(7,0):EDX bit 22 = AMX-BF16
#else
    return 0;
#endif
}

static inline uint16_t round_one(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  // NaN: quiet, keep sign
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

#define CONVERT_BODY                                                                                         \
    for (size_t i = 0; i < n; i++) dst[i] = round_one(src[i]);

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
static void convert_bf16ni(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256bh v = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + i));
        _mm256_storeu_si256((__m256i *)(dst + i), (__m256i)v);
    }
    for (; i < n; i++) dst[i] = round_one(src[i]);
}
__attribute__((target("avx512f,avx512bw,avx512vl")))
static void convert_avx512(const float *src, uint16_t *dst, size_t n) { CONVERT_BODY }
__attribute__((target("avx2")))
static void convert_avx2(const float *src, uint16_t *dst, size_t n) { CONVERT_BODY }
#endif
static void convert_base(const float *src, uint16_t *dst, size_t n) { CONVERT_BODY }

typedef void (*convert_fn)(const float *, uint16_t *, size_t);
static convert_fn pick(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    unsigned a, b, c, d;
    int cap = pv_isa_cap();
    int bf16 = __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5));
    if (cap >= 2 && bf16 && __builtin_cpu_supports("avx512bw")) return convert_bf16ni;
    if (cap >= 2 && __builtin_cpu_supports("avx512bw")) return convert_avx512;
    if (cap >= 1 && __builtin_cpu_supports("avx2")) return convert_avx2;
#endif
    return convert_base;
}

static convert_fn chosen;

void pv_f32_to_bf16(const float *src, uint16_t *dst, size_t n) {
    if (!chosen) chosen = pick();  // idempotent: a race stores the same pointer
    chosen(src, dst, n);
}

void pv_f32_to_bf16_2d(const float *src, size_t lds, uint16_t *dst, size_t ldd, size_t rows, size_t cols) {
    if (!chosen) chosen = pick();
    for (size_t r = 0; r < rows; r++) chosen(src + r * lds, dst + r * ldd, cols);
}

void pv_bf16_to_f32(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)src[i] << 16;
        memcpy(dst + i, &u, 4);
    }
}
