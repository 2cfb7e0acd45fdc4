/* Internal helpers the Swift kernels need and Swift cannot express (not part of the public API). */
#ifndef ADAMCORE_SHIM_H
#define ADAMCORE_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include "../../include/adamcore.h"

/* adamcore_status_name and adamcore_strerror, generated from the header's ADAMCORE_STATUS_MAP; "ADAMCORE_E_UNKNOWN"
 * for a value it does not list. Static strings. */
static inline const char *_Nonnull adamcore_shim_status_name(int status) {
    switch (status) {
#define ADAMCORE_SHIM_NAME_(name, value, message) case value: return "ADAMCORE_" #name;
    ADAMCORE_STATUS_MAP(ADAMCORE_SHIM_NAME_)
#undef ADAMCORE_SHIM_NAME_
    default: return "ADAMCORE_E_UNKNOWN";
    }
}
static inline const char *_Nonnull adamcore_shim_status_message(int status) {
    switch (status) {
#define ADAMCORE_SHIM_MESSAGE_(name, value, message) case value: return message;
    ADAMCORE_STATUS_MAP(ADAMCORE_SHIM_MESSAGE_)
#undef ADAMCORE_SHIM_MESSAGE_
    default: return "unknown status code";
    }
}
/* The index-th status of the list (in its order), or 0 with index past the end (*code untouched). */
static inline int adamcore_shim_status_at(int index, int *_Nonnull code) {
#define ADAMCORE_SHIM_CODE_(name, value, message) value,
    static const int codes[] = {ADAMCORE_STATUS_MAP(ADAMCORE_SHIM_CODE_)};
#undef ADAMCORE_SHIM_CODE_
    if (index < 0 || index >= (int)(sizeof codes / sizeof codes[0])) return 0;
    *code = codes[index];
    return 1;
}

/* Swift imports these as SIMD16<Float> and SIMD8<Double>. Swift's own squareRoot() lowers to per-lane sqrtss
 * plus a libm errno fallback on Linux; the clang builtin gives one sqrtps/vsqrtps per register. */
typedef float adamcore_shim_f32x16 __attribute__((ext_vector_type(16)));
typedef double adamcore_shim_f64x8 __attribute__((ext_vector_type(8)));

static inline adamcore_shim_f32x16 adamcore_shim_sqrt_f32x16(adamcore_shim_f32x16 x) {
    return __builtin_elementwise_sqrt(x);
}
static inline adamcore_shim_f64x8 adamcore_shim_sqrt_f64x8(adamcore_shim_f64x8 x) {
    return __builtin_elementwise_sqrt(x);
}

/* A read prefetch into every cache level (prefetcht0; it never faults, so it may point past a buffer's end).
 * From DRAM the update loops ran 10-18% faster with one per stream and vector 2 KiB ahead (Zen 5, 1 thread). */
static inline void adamcore_shim_prefetch(const void *_Nonnull address) { __builtin_prefetch(address, 0, 3); }

/* Swift's generic pointwiseMax does not lower to vmaxps (measured: AMSGrad ran 20x slower than Adam).
 * maximum: IEEE 754-2019, a NaN in either operand gives NaN (as torch.maximum). (Maxima that ignore NaN: keep_max.) */
static inline adamcore_shim_f32x16 adamcore_shim_maximum_f32x16(adamcore_shim_f32x16 a, adamcore_shim_f32x16 b) {
    return __builtin_elementwise_maximum(a, b);
}
static inline adamcore_shim_f64x8 adamcore_shim_maximum_f64x8(adamcore_shim_f64x8 a, adamcore_shim_f64x8 b) {
    return __builtin_elementwise_maximum(a, b);
}
static inline adamcore_shim_f32x16 adamcore_shim_abs_f32x16(adamcore_shim_f32x16 x) { return __builtin_elementwise_abs(x); }
static inline adamcore_shim_f64x8 adamcore_shim_abs_f64x8(adamcore_shim_f64x8 x) { return __builtin_elementwise_abs(x); }

/* 1 in the lanes holding NaN or +-Inf, else 0 (|x| <= max fails for both): a count, not a mask, so a kernel can
 * sum it like any other vector. */
typedef int32_t adamcore_shim_i32x16 __attribute__((ext_vector_type(16)));
typedef int64_t adamcore_shim_i64x8 __attribute__((ext_vector_type(8)));
static inline adamcore_shim_f32x16 adamcore_shim_nonfinite_f32x16(adamcore_shim_f32x16 x) {
    adamcore_shim_i32x16 finite = __builtin_elementwise_abs(x) <= 3.40282346638528859812e+38f; /* -1 or 0 */
    return __builtin_convertvector(finite + 1, adamcore_shim_f32x16);
}
static inline adamcore_shim_f64x8 adamcore_shim_nonfinite_f64x8(adamcore_shim_f64x8 x) {
    adamcore_shim_i64x8 finite = __builtin_elementwise_abs(x) <= 1.79769313486231570815e+308;
    return __builtin_convertvector(finite + 1, adamcore_shim_f64x8);
}

/* The step statistics (StatsKernels.swift). On ISAs with 16 vector registers their running values live in
 * half-width registers (HalfLanes): each 16-lane (8-lane) value is folded into an 8-lane (4-lane) accumulator,
 * halves first, so seven accumulators take seven registers instead of fourteen; the AVX-512 tier keeps them at full
 * width (FullLanes, keep_max/keep_min below). Max and min ignore NaN lanes; sums are added in a fixed order. */
typedef float adamcore_shim_f32x8 __attribute__((ext_vector_type(8)));
typedef float adamcore_shim_f32x4 __attribute__((ext_vector_type(4)));
typedef double adamcore_shim_f64x4 __attribute__((ext_vector_type(4)));

/* 1/x for the mean effective lr. float: the hardware's reciprocal estimate (relative error at most 1.5 * 2^-12;
 * rcp(0) = inf and rcp(inf) = 0 exactly), which runs beside the update instead of queueing behind its square root
 * and division on the divider; the estimate's low bits differ between CPU vendors. double: exact. */
static inline adamcore_shim_f32x16 adamcore_shim_reciprocal_estimate_f32x16(adamcore_shim_f32x16 x) {
#if defined(__AVX512F__)
    return __builtin_ia32_rcp14ps512_mask(x, x, 0xffff); /* relative error at most 2^-14 */
#elif defined(__AVX__)
    adamcore_shim_f32x8 lo = __builtin_ia32_rcpps256(x.lo), hi = __builtin_ia32_rcpps256(x.hi);
    return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#elif defined(__SSE__)
    adamcore_shim_f32x4 a = __builtin_ia32_rcpps(x.s0123), b = __builtin_ia32_rcpps(x.s4567);
    adamcore_shim_f32x4 c = __builtin_ia32_rcpps(x.s89ab), d = __builtin_ia32_rcpps(x.scdef);
    adamcore_shim_f32x8 lo = __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7);
    adamcore_shim_f32x8 hi = __builtin_shufflevector(c, d, 0, 1, 2, 3, 4, 5, 6, 7);
    return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#else
    return 1.0f / x;
#endif
}
static inline adamcore_shim_f64x8 adamcore_shim_reciprocal_estimate_f64x8(adamcore_shim_f64x8 x) { return 1.0 / x; }

/* Max and min that ignore NaN in v: a comparison with NaN is false, so each select keeps the accumulator, which
 * starts finite or infinite and so never takes a NaN. Written as selects (one maxps/minps each) rather
 * than fmax's NaN rules, which cost a compare and a blend more per fold. */
#define ADAMCORE_SHIM_KEEP_MAX_(a, b) ((a) > (b) ? (a) : (b))
#define ADAMCORE_SHIM_KEEP_MIN_(a, b) ((a) < (b) ? (a) : (b))
static inline adamcore_shim_f32x16 adamcore_shim_keep_max_f32x16(adamcore_shim_f32x16 acc, adamcore_shim_f32x16 v) {
    return ADAMCORE_SHIM_KEEP_MAX_(v, acc);
}
static inline adamcore_shim_f64x8 adamcore_shim_keep_max_f64x8(adamcore_shim_f64x8 acc, adamcore_shim_f64x8 v) {
    return ADAMCORE_SHIM_KEEP_MAX_(v, acc);
}
static inline adamcore_shim_f32x16 adamcore_shim_keep_min_f32x16(adamcore_shim_f32x16 acc, adamcore_shim_f32x16 v) {
    return ADAMCORE_SHIM_KEEP_MIN_(v, acc);
}
static inline adamcore_shim_f64x8 adamcore_shim_keep_min_f64x8(adamcore_shim_f64x8 acc, adamcore_shim_f64x8 v) {
    return ADAMCORE_SHIM_KEEP_MIN_(v, acc);
}
static inline adamcore_shim_f32x8 adamcore_shim_fold_max_f32x16(adamcore_shim_f32x8 acc, adamcore_shim_f32x16 v) {
    adamcore_shim_f32x8 lo = v.lo, hi = v.hi, kept = ADAMCORE_SHIM_KEEP_MAX_(lo, acc);
    return ADAMCORE_SHIM_KEEP_MAX_(hi, kept);
}
static inline adamcore_shim_f64x4 adamcore_shim_fold_max_f64x8(adamcore_shim_f64x4 acc, adamcore_shim_f64x8 v) {
    adamcore_shim_f64x4 lo = v.lo, hi = v.hi, kept = ADAMCORE_SHIM_KEEP_MAX_(lo, acc);
    return ADAMCORE_SHIM_KEEP_MAX_(hi, kept);
}
static inline adamcore_shim_f32x8 adamcore_shim_fold_min_f32x16(adamcore_shim_f32x8 acc, adamcore_shim_f32x16 v) {
    adamcore_shim_f32x8 lo = v.lo, hi = v.hi, kept = ADAMCORE_SHIM_KEEP_MIN_(lo, acc);
    return ADAMCORE_SHIM_KEEP_MIN_(hi, kept);
}
static inline adamcore_shim_f64x4 adamcore_shim_fold_min_f64x8(adamcore_shim_f64x4 acc, adamcore_shim_f64x8 v) {
    adamcore_shim_f64x4 lo = v.lo, hi = v.hi, kept = ADAMCORE_SHIM_KEEP_MIN_(lo, acc);
    return ADAMCORE_SHIM_KEEP_MIN_(hi, kept);
}
static inline adamcore_shim_f32x8 adamcore_shim_fold_add_f32x16(adamcore_shim_f32x8 acc, adamcore_shim_f32x16 v) {
    return acc + (v.lo + v.hi);
}
static inline adamcore_shim_f64x4 adamcore_shim_fold_add_f64x8(adamcore_shim_f64x4 acc, adamcore_shim_f64x8 v) {
    return acc + (v.lo + v.hi);
}
static inline adamcore_shim_f32x8 adamcore_shim_fold_squares_f32x16(adamcore_shim_f32x8 acc, adamcore_shim_f32x16 v) {
    return acc + v.lo * v.lo + v.hi * v.hi;
}
static inline adamcore_shim_f64x4 adamcore_shim_fold_squares_f64x8(adamcore_shim_f64x4 acc, adamcore_shim_f64x8 v) {
    return acc + v.lo * v.lo + v.hi * v.hi;
}
static inline double adamcore_shim_sum_f32x8(adamcore_shim_f32x8 v) {
    adamcore_shim_f32x4 b = v.lo + v.hi;
    return (double)(b.x + b.z) + (double)(b.y + b.w);
}
static inline double adamcore_shim_sum_f64x4(adamcore_shim_f64x4 v) { return (v.x + v.z) + (v.y + v.w); }
static inline double adamcore_shim_reduce_max_f32x8(adamcore_shim_f32x8 v) { return __builtin_reduce_max(v); }
static inline double adamcore_shim_reduce_max_f64x4(adamcore_shim_f64x4 v) { return __builtin_reduce_max(v); }
static inline double adamcore_shim_reduce_min_f32x8(adamcore_shim_f32x8 v) { return __builtin_reduce_min(v); }
static inline double adamcore_shim_reduce_min_f64x4(adamcore_shim_f64x4 v) { return __builtin_reduce_min(v); }

/* 16-bit storage. Every conversion between the kernels' float32 and bfloat16 / IEEE binary16 storage is here, 16
 * lanes at a time; Swift sees the 16-bit values as SIMD16<UInt16> bit patterns. Compiled with the calling module's
 * flags: F16C's vcvtph2ps/vcvtps2ph in the AVX2 and AVX-512 tiers, compiler-rt's conversions in the baseline. */
typedef uint16_t adamcore_shim_u16x16 __attribute__((ext_vector_type(16)));
typedef uint32_t adamcore_shim_u32x16 __attribute__((ext_vector_type(16)));
typedef _Float16 adamcore_shim_f16x16 __attribute__((ext_vector_type(16)));

/* bfloat16 is float32's upper half: widening is exact. */
static inline adamcore_shim_f32x16 adamcore_shim_widen_bf16(adamcore_shim_u16x16 x) {
    return (adamcore_shim_f32x16)(__builtin_convertvector(x, adamcore_shim_u32x16) << 16);
}
/* To bfloat16, round to nearest, ties to even (overflow gives +-Inf, as IEEE rounding does); NaN stays NaN (quieted,
 * sign kept), where adding the rounding bias could carry a NaN into Inf. */
static inline adamcore_shim_u16x16 adamcore_shim_round_bf16(adamcore_shim_f32x16 x) {
    adamcore_shim_u32x16 bits = (adamcore_shim_u32x16)x;
    adamcore_shim_u32x16 rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
    adamcore_shim_u32x16 nan = (adamcore_shim_u32x16)(x != x);
    return __builtin_convertvector((rounded & ~nan) | (((bits >> 16) | 0x40u) & nan), adamcore_shim_u16x16);
}
/* To bfloat16, rounding up with probability (distance to the value below) / ulp: adding 16 uniform random bits
 * below the kept ones, then truncating. Unbiased: E[result] = x for every x between two finite bfloat16 values. */
static inline adamcore_shim_u16x16 adamcore_shim_round_bf16_stochastic(adamcore_shim_f32x16 x, adamcore_shim_u32x16 random) {
    adamcore_shim_u32x16 bits = (adamcore_shim_u32x16)x;
    adamcore_shim_u32x16 rounded = (bits + (random & 0xffffu)) >> 16;
    adamcore_shim_u32x16 nan = (adamcore_shim_u32x16)(x != x);
    return __builtin_convertvector((rounded & ~nan) | (((bits >> 16) | 0x40u) & nan), adamcore_shim_u16x16);
}
/* binary16 <-> float32: widening is exact; narrowing rounds to nearest even. With F16C (the AVX2 and AVX-512 tiers)
 * one vcvtph2ps / vcvtps2ph; without it (the x86-64 baseline) the same results by integer arithmetic on the bit
 * patterns, vectorized (the compiler's own fallback is one library call per lane). NaN stays NaN, quieted, with
 * the payload's top bits, as vcvtps2ph keeps them. Elsewhere (ARM's FCVT) the compiler's vector conversion. */
#if defined(__F16C__) || !defined(__x86_64__)
static inline adamcore_shim_f32x16 adamcore_shim_widen_f16(adamcore_shim_u16x16 x) {
    return __builtin_convertvector((adamcore_shim_f16x16)x, adamcore_shim_f32x16);
}
static inline adamcore_shim_u16x16 adamcore_shim_round_f16(adamcore_shim_f32x16 x) {
    return (adamcore_shim_u16x16)__builtin_convertvector(x, adamcore_shim_f16x16);
}
#else
static inline adamcore_shim_f32x16 adamcore_shim_widen_f16(adamcore_shim_u16x16 x) {
    adamcore_shim_u32x16 h = __builtin_convertvector(x, adamcore_shim_u32x16);
    adamcore_shim_u32x16 sign = (h & 0x8000u) << 16, em = h & 0x7fffu;
    adamcore_shim_u32x16 wide = (em << 13) + 0x38000000u;                 /* exponent rebiased by 127 - 15 */
    wide += 0x38000000u & (adamcore_shim_u32x16)(em >= 0x7c00u);          /* Inf and NaN: exponent all ones */
    adamcore_shim_u32x16 subnormal = (adamcore_shim_u32x16)(em < 0x400u);
    adamcore_shim_f32x16 small = __builtin_convertvector(em, adamcore_shim_f32x16) * 5.9604644775390625e-08f; /* 2^-24 */
    return (adamcore_shim_f32x16)(sign | (wide & ~subnormal) | ((adamcore_shim_u32x16)small & subnormal));
}
static inline adamcore_shim_u16x16 adamcore_shim_round_f16(adamcore_shim_f32x16 x) {
    adamcore_shim_u32x16 b = (adamcore_shim_u32x16)x;
    adamcore_shim_u32x16 sign = (b >> 16) & 0x8000u, a = b & 0x7fffffffu;
    /* Normal results: rebias and round the 13 dropped bits to nearest even; a carry past 0x7bff gives Inf. */
    adamcore_shim_u32x16 normal = (a - 0x38000000u + 0xfffu + ((a >> 13) & 1u)) >> 13;
    /* Subnormal results (|x| < 2^-14): adding 0.5 leaves |x| in units of 2^-24, rounded to nearest even. */
    adamcore_shim_f32x16 shifted = (adamcore_shim_f32x16)a + 0.5f;
    adamcore_shim_u32x16 subnormal = (adamcore_shim_u32x16)shifted - 0x3f000000u;
    adamcore_shim_u32x16 tiny = (adamcore_shim_u32x16)(a < 0x38800000u);
    adamcore_shim_u32x16 h = (normal & ~tiny) | (subnormal & tiny);
    adamcore_shim_u32x16 big = (adamcore_shim_u32x16)(a >= 0x47800000u), nan = (adamcore_shim_u32x16)(a > 0x7f800000u);
    h = (h & ~big) | (0x7c00u & big);
    h = (h & ~nan) | ((0x7e00u | ((a >> 13) & 0x3ffu)) & nan);
    return __builtin_convertvector(h | sign, adamcore_shim_u16x16);
}
#endif

/* The stochastic-rounding generator: counter based, so a value depends only on (key, element index), never on the
 * thread, the ISA or the order of the work. Two rounds of a 32-bit integer hash (Wellons' lowbias32 finaliser,
 * bias 0.17) over the element index, keyed by `key`, which carries the seed, the step, the tensor and the buffer
 * (mixed by the caller). Lanes are elements first ... first + 15; first must be a multiple of 16 (no carry into
 * the high word). */
#define ADAMCORE_SHIM_HASH_(x) \
    (x ^= x >> 16, x *= 0x7feb352du, x ^= x >> 15, x *= 0x846ca68bu, x ^= x >> 16) /* a macro: no vector-ABI call */
/* always_inline: a C function of the shim has no tier in its name, so an out-of-line copy would be a tier's code
 * under a neutral symbol (check_isa refuses that). */
static inline __attribute__((always_inline)) adamcore_shim_u32x16 adamcore_shim_random_u32x16(uint64_t key, uint64_t first) {
    const adamcore_shim_u32x16 lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    adamcore_shim_u32x16 x = (lane + (uint32_t)first) ^ (uint32_t)key;
    ADAMCORE_SHIM_HASH_(x);
    x ^= (uint32_t)(first >> 32) ^ (uint32_t)(key >> 32);
    ADAMCORE_SHIM_HASH_(x);
    return x;
}
/* splitmix64's finaliser: mixes the scalar parts of a generator key. */
static inline uint64_t adamcore_shim_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#if defined(__x86_64__)
#include <cpuid.h>
/* 1 if the CPU has AVX2, FMA and F16C and the OS saves the YMM registers, else 0. */
static inline int adamcore_shim_cpu_has_avx2_fma(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const unsigned fma = 1u << 12, osxsave = 1u << 27, avx = 1u << 28, f16c = 1u << 29; /* x86-64-v3 has F16C */
    if ((c & (fma | osxsave | avx | f16c)) != (fma | osxsave | avx | f16c)) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6u) != 6u) return 0; /* XMM and YMM state enabled by the OS */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (b & (1u << 5)) != 0; /* AVX2 */
}
/* 1 if the CPU has what x86-64-v4 code uses (AVX-512 F, CD, BW, DQ, VL, on top of AVX2 and FMA) and the OS saves
 * the opmask and ZMM registers, else 0. */
static inline int adamcore_shim_cpu_has_avx512(void) {
    if (!adamcore_shim_cpu_has_avx2_fma()) return 0;
    unsigned lo, hi, a, b, c, d;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0xe6u) != 0xe6u) return 0; /* XMM, YMM, opmask, ZMM0-15 upper halves, ZMM16-31 */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    const unsigned f = 1u << 16, dq = 1u << 17, cd = 1u << 28, bw = 1u << 30, vl = 1u << 31;
    return (b & (f | dq | cd | bw | vl)) == (f | dq | cd | bw | vl);
}
/* The CPU's vendor (1 AMD, 2 Intel, 0 other) and its display family and model, as the vendors' manuals define them
 * (family = base + extended when the base is 15; model extended for families 6 and >= 15): the tuning table's key. */
static inline void adamcore_shim_cpu_signature(int *_Nonnull vendor, int *_Nonnull family, int *_Nonnull model) {
    unsigned a, b, c, d;
    *vendor = 0; *family = 0; *model = 0;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return;
    if (b == 0x68747541u && d == 0x69746e65u && c == 0x444d4163u) *vendor = 1;      /* "AuthenticAMD" */
    else if (b == 0x756e6547u && d == 0x49656e69u && c == 0x6c65746eu) *vendor = 2; /* "GenuineIntel" */
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    unsigned base = (a >> 8) & 0xf, extended = (a >> 20) & 0xff, low = (a >> 4) & 0xf, high = (a >> 16) & 0xf;
    *family = (int)(base == 0xf ? base + extended : base);
    *model = (int)(base == 0xf || base == 6 ? (high << 4) | low : low);
}
#else
static inline int adamcore_shim_cpu_has_avx2_fma(void) { return 0; }
static inline int adamcore_shim_cpu_has_avx512(void) { return 0; }
static inline void adamcore_shim_cpu_signature(int *_Nonnull vendor, int *_Nonnull family, int *_Nonnull model) {
    *vendor = 0; *family = 0; *model = 0;
}
#endif

#include <unistd.h>
#if defined(__linux__)
#include <sys/mman.h>
#include <sys/syscall.h>
#endif

/* Asks Linux for transparent huge pages over [p, p + bytes) (2 MiB aligned). Advice only: a kernel without THP,
 * or with THP "never", refuses it and the memory works as before. */
static inline void adamcore_shim_advise_huge_pages(void *_Nonnull p, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    (void)madvise(p, bytes, MADV_HUGEPAGE);
#else
    (void)p; (void)bytes;
#endif
}
/* CPUs this process may run on (its affinity mask; containers and taskset narrow it), at least 1. The raw
 * syscall needs no _GNU_SOURCE, which a module header cannot set reliably. */
static inline int adamcore_shim_available_cpus(void) {
#if defined(__linux__) && defined(SYS_sched_getaffinity)
    unsigned long mask[64] = {0};
    long bytes = syscall(SYS_sched_getaffinity, 0, sizeof mask, mask);
    if (bytes > 0) {
        int n = 0;
        for (long i = 0; i < bytes / (long)sizeof(unsigned long); i++) n += __builtin_popcountl(mask[i]);
        if (n > 0) return n;
    }
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

#endif
