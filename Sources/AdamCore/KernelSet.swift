import CAdamCore

/// One instruction set's compiled kernels. Every update kernel returns a Double: ||dx||^2 for AdaFix, else 0.
/// `baseline` is compiled in this module for the architecture's baseline; the C library adds AVX2+FMA and AVX-512
/// sets (modules AdamCoreAVX2, AdamCoreAVX512) and picks the best the CPU runs. Swift packages that depend
/// on AdamCore use `baseline` (a product consumed by version may carry no unsafe compiler flags). A class: passing
/// or copying one is a single reference, where a struct of seventeen closures retained and released each closure's
/// context (measured: 200 vs 115 ns per 64-element stateless C call).
@usableFromInline package final class KernelSet: @unchecked Sendable {
    @usableFromInline package let isa: adamcore_isa
    @usableFromInline package let adam32: (Streams<Float>, Int, AdamCoefficients<Float>, AdamVariant) -> Double
    @usableFromInline package let adam64: (Streams<Double>, Int, AdamCoefficients<Double>, AdamVariant) -> Double
    /// The Adam family with per-step statistics (the optimizer's diagnostics).
    @usableFromInline package let adamStats32: (Streams<Float>, Int, AdamCoefficients<Float>, AdamVariant, UnsafeMutablePointer<KernelStats>) -> Double
    @usableFromInline package let adamStats64: (Streams<Double>, Int, AdamCoefficients<Double>, AdamVariant, UnsafeMutablePointer<KernelStats>) -> Double
    @usableFromInline package let sgd32: (Streams<Float>, Int, SGDCoefficients<Float>, SGDVariant) -> Double
    @usableFromInline package let sgd64: (Streams<Double>, Int, SGDCoefficients<Double>, SGDVariant) -> Double
    @usableFromInline package let rmsprop32: (Streams<Float>, Int, RMSpropCoefficients<Float>, RMSpropVariant) -> Double
    @usableFromInline package let rmsprop64: (Streams<Double>, Int, RMSpropCoefficients<Double>, RMSpropVariant) -> Double
    @usableFromInline package let adagrad32: (Streams<Float>, Int, AdagradCoefficients<Float>, Bool) -> Double
    @usableFromInline package let adagrad64: (Streams<Double>, Int, AdagradCoefficients<Double>, Bool) -> Double
    @usableFromInline package let maxAbs32: (UnsafePointer<Float>, Int) -> Double
    @usableFromInline package let maxAbs64: (UnsafePointer<Double>, Int) -> Double
    @usableFromInline package let diffNormSquared32: (UnsafePointer<Float>, UnsafePointer<Float>, Int) -> Double
    @usableFromInline package let diffNormSquared64: (UnsafePointer<Double>, UnsafePointer<Double>, Int) -> Double
    @usableFromInline package let nonFiniteCount32: (UnsafePointer<Float>, Int) -> Double
    @usableFromInline package let nonFiniteCount64: (UnsafePointer<Double>, Int) -> Double
    /// The mixed-precision pass (Precision.swift) around a float32 kernel, and float32 views for the reductions.
    @usableFromInline package let staged: (MixedStreams, Int, (Streams<Float>, Int) -> Double) -> Double
    /// The Adam family on a mixed-precision tensor: fused for the common layouts, else staged.
    @usableFromInline package let mixedAdam: (MixedStreams, Int, AdamCoefficients<Float>, AdamVariant) -> Double
    @usableFromInline package let stagedRead: (UnsafeRawPointer, DType, UnsafeRawPointer?, DType, Int,
                            (UnsafePointer<Float>, UnsafePointer<Float>, Int) -> Void) -> Void

    /// Instantiates every kernel with policy P, in the module that calls this (and so with that module's flags).
    @inlinable
    package init<P: ArithmeticPolicy>(policy: P.Type, isa: adamcore_isa) {
        self.isa = isa
        adam32 = { adamKernel(P.self, $0, $1, $2, $3) }
        adam64 = { adamKernel(P.self, $0, $1, $2, $3) }
        adamStats32 = { adamStatsKernel(P.self, $0, $1, $2, $3, $4) }
        adamStats64 = { adamStatsKernel(P.self, $0, $1, $2, $3, $4) }
        sgd32 = { sgdKernel(P.self, $0, $1, $2, $3) }
        sgd64 = { sgdKernel(P.self, $0, $1, $2, $3) }
        rmsprop32 = { rmspropKernel(P.self, $0, $1, $2, $3) }
        rmsprop64 = { rmspropKernel(P.self, $0, $1, $2, $3) }
        adagrad32 = { adagradKernel(P.self, $0, $1, $2, hasL2: $3) }
        adagrad64 = { adagradKernel(P.self, $0, $1, $2, hasL2: $3) }
        maxAbs32 = { maxAbsKernel(P.self, $0, $1) }
        maxAbs64 = { maxAbsKernel(P.self, $0, $1) }
        diffNormSquared32 = { diffNormSquaredKernel(P.self, $0, $1, $2) }
        diffNormSquared64 = { diffNormSquaredKernel(P.self, $0, $1, $2) }
        nonFiniteCount32 = { nonFiniteCountKernel(P.self, $0, $1) }
        nonFiniteCount64 = { nonFiniteCountKernel(P.self, $0, $1) }
        staged = { stagedKernel(P.self, $0, $1, $2) }
        mixedAdam = { s, n, c, v in mixedAdamKernel(P.self, s, n, c, v) { adamKernel(P.self, $0, $1, c, v) } }
        stagedRead = { stagedReadKernel(P.self, $0, $1, $2, $3, $4, $5) }
    }

    /// The float32/float64 kernels of `streams` with the 16-bit layouts' kernels (mixed Adam, the staged pass and
    /// staged reads) of `sixteenBit`: for a CPU where the two do best on different tiers (CPUTuning). Tiers that
    /// fuse multiply-adds give the same bits, so a step's results do not depend on the split. Reports
    /// `streams`' tier.
    @usableFromInline package init(streams s: KernelSet, sixteenBit w: KernelSet) {
        isa = s.isa
        adam32 = s.adam32; adam64 = s.adam64; adamStats32 = s.adamStats32; adamStats64 = s.adamStats64
        sgd32 = s.sgd32; sgd64 = s.sgd64; rmsprop32 = s.rmsprop32; rmsprop64 = s.rmsprop64
        adagrad32 = s.adagrad32; adagrad64 = s.adagrad64; maxAbs32 = s.maxAbs32; maxAbs64 = s.maxAbs64
        diffNormSquared32 = s.diffNormSquared32; diffNormSquared64 = s.diffNormSquared64
        nonFiniteCount32 = s.nonFiniteCount32; nonFiniteCount64 = s.nonFiniteCount64
        staged = w.staged; mixedAdam = w.mixedAdam; stagedRead = w.stagedRead
    }

    /// The portable kernels: separate multiply and add, compiled for the baseline CPU.
    @usableFromInline package static let baseline = KernelSet(policy: UnfusedArithmetic.self, isa: ADAMCORE_ISA_BASELINE)
}

/// The element types of the one-dtype entry points (float32, float64): the kernels' compute types.
public protocol Steppable: BinaryFloatingPoint & StorageElement {}
extension Float: Steppable {}
extension Double: Steppable {}
