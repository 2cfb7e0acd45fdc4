// The AdamCore kernels compiled for x86-64 with AVX2 and FMA (this target's flags in Package.swift). Only the
// C library uses this module, and only after a cpuid check: code here must never run on an older CPU.
import AdamCore
import CAdamCore

#if arch(x86_64)
/// Fused multiply-add: one rounding. Declared here, not in AdamCore, so that every kernel specialized with it has
/// a symbol name of its own and the linker can never merge it with a baseline specialization.
package enum AVX2FusedArithmetic: ArithmeticPolicy {
    @inlinable @inline(__always)
    package static func multiplyAdd<V: SIMD>(_ a: V, _ b: V, _ c: V) -> V where V.Scalar: FloatingPoint {
        c.addingProduct(a, b)
    }
}

/// The kernels for AVX2+FMA. Everything here is compiled for AVX2, this function included: call it only after
/// the CPU check (`adamcore_shim_cpu_has_avx2_fma`), made in baseline code.
package func makeAVX2Kernels() -> KernelSet {
    KernelSet(policy: AVX2FusedArithmetic.self, isa: ADAMCORE_ISA_AVX2_FMA)
}
#endif
