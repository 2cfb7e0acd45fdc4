// The AdamCore kernels compiled for x86-64-v4 (AVX-512 F/BW/CD/DQ/VL; this target's flags in Package.swift): one
// 512-bit register per SIMD16<Float> / SIMD8<Double>, 32 vector registers, masked tails. Only the C library uses
// this module, and only after a cpuid check: code here must never run on a CPU without AVX-512.
import AdamCore
import CAdamCore

#if arch(x86_64)
/// Fused multiply-add, as in the AVX2 tier (so the two tiers' updates round alike: bit for bit, tested). Declared
/// here so that every kernel specialized with it has a symbol of its own, never merged with another tier's.
package enum AVX512FusedArithmetic: ArithmeticPolicy {
    @inlinable @inline(__always)
    package static func multiplyAdd<V: SIMD>(_ a: V, _ b: V, _ c: V) -> V where V.Scalar: FloatingPoint {
        c.addingProduct(a, b)
    }
    /// 32 vector registers hold the statistics' seven accumulators at full width.
    @inlinable package static var fullWidthStatistics: Bool { true }
}

/// The kernels for AVX-512. Everything here is compiled for AVX-512, this function included: call it only after
/// the CPU check (`adamcore_shim_cpu_has_avx512`), made in baseline code.
package func makeAVX512Kernels() -> KernelSet {
    KernelSet(policy: AVX512FusedArithmetic.self, isa: ADAMCORE_ISA_AVX512)
}
#endif
