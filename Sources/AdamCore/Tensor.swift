import CAdamCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// A registered tensor, its dtype, and the per-step coefficients its kernels take.

enum DType {
    case float32, float64

    init?(_ code: Int32) {
        switch code {
        case Int32(ADAMCORE_FLOAT32.rawValue): self = .float32
        case Int32(ADAMCORE_FLOAT64.rawValue): self = .float64
        default: return nil
        }
    }

    var cValue: adamcore_dtype { self == .float32 ? ADAMCORE_FLOAT32 : ADAMCORE_FLOAT64 }

    func range(_ p: UnsafeRawPointer?, _ count: Int) throws(AdamCoreError) -> ByteRange {
        self == .float32 ? try ByteRange(p, count: count, of: Float.self) : try ByteRange(p, count: count, of: Double.self)
    }

    /// A library-owned buffer of `count` elements set to `value` (see allocateOwnedBuffer), or nil when memory is
    /// short.
    func allocate(_ count: Int, filledWith value: Double) -> UnsafeMutableRawPointer? {
        guard let raw = allocateOwnedBuffer(bytes: count * (self == .float32 ? 4 : 8)) else { return nil }
        switch self {
        case .float32: fill(raw.bindMemory(to: Float.self, capacity: count), count: count, with: Float(value))
        case .float64: fill(raw.bindMemory(to: Double.self, capacity: count), count: count, with: value)
        }
        return raw
    }
}

/// Per-step scalars of one group, for both dtypes.
enum GroupCoefficients {
    case none
    case adam(AdamCoefficients<Float>, AdamCoefficients<Double>, AdamVariant)
    case sgd(SGDCoefficients<Float>, SGDCoefficients<Double>, SGDVariant)
    case rmsprop(RMSpropCoefficients<Float>, RMSpropCoefficients<Double>, RMSpropVariant)
    case adagrad(AdagradCoefficients<Float>, AdagradCoefficients<Double>, Bool)

    init(_ c: ValidConfig, step: Int64, updateV: Bool, gradScale: Double) {
        switch c.algorithm {
        case .adam, .adafix:
            let adafix = c.algorithm == .adafix
            let variant = AdamVariant(hasL2: hasL2(c), decoupled: hasDecoupledDecay(c), amsgrad: c.flags.contains(.amsgrad), updateV: updateV,
                                      trackStep: adafix, saveGradient: adafix && c.flags.contains(.adafixNextGradient))
            self = .adam(AdamCoefficients(c.raw, step: step, gradScale: gradScale),
                         AdamCoefficients(c.raw, step: step, gradScale: gradScale), variant)
        case .sgd:
            self = .sgd(SGDCoefficients(c.raw, gradScale: gradScale), SGDCoefficients(c.raw, gradScale: gradScale),
                        sgdVariant(c, step: step))
        case .rmsprop:
            self = .rmsprop(RMSpropCoefficients(c.raw, gradScale: gradScale),
                            RMSpropCoefficients(c.raw, gradScale: gradScale), rmspropVariant(c))
        case .adagrad:
            self = .adagrad(AdagradCoefficients(c.raw, step: step, gradScale: gradScale),
                            AdagradCoefficients(c.raw, step: step, gradScale: gradScale), hasL2(c))
        }
    }
}

struct Tensor {
    let dtype: DType
    let group: Int
    let count: Int
    let param: UnsafeMutableRawPointer
    let grad: UnsafeRawPointer?
    let s0, s1, s2: UnsafeMutableRawPointer?
    let ownsState: Bool
    /// Byte ranges of param and the state slots (empty when absent), and of the registered gradient, computed once
    /// at registration, for the overlap checks of later registrations, parameter moves and checkpoint buffers.
    let ownRanges: (ByteRange, ByteRange, ByteRange, ByteRange)
    let gradRange: ByteRange

    func slot(_ k: Int) -> UnsafeMutableRawPointer? { k == 0 ? s0 : k == 1 ? s1 : k == 2 ? s2 : nil }

    func withParam(_ p: UnsafeMutableRawPointer, range: ByteRange) -> Tensor {
        Tensor(dtype: dtype, group: group, count: count, param: p, grad: grad, s0: s0, s1: s1, s2: s2,
               ownsState: ownsState, ownRanges: (range, ownRanges.1, ownRanges.2, ownRanges.3), gradRange: gradRange)
    }

    /// Whether `r` overlaps any buffer registered for this tensor (param, state, registered gradient).
    func overlaps(_ r: ByteRange) -> Bool {
        ownRanges.0.overlaps(r) || ownRanges.1.overlaps(r) || ownRanges.2.overlaps(r) || ownRanges.3.overlaps(r)
            || gradRange.overlaps(r)
    }

    @inline(__always)
    private func streams<T: KernelScalar>(_ grad: UnsafeRawPointer, _: T.Type, from start: Int) -> Streams<T> {
        let p = param.assumingMemoryBound(to: T.self) + start
        return Streams(param: p, grad: grad.assumingMemoryBound(to: T.self) + start,
                       s0: s0.map { $0.assumingMemoryBound(to: T.self) + start } ?? p,
                       s1: s1.map { $0.assumingMemoryBound(to: T.self) + start } ?? p,
                       s2: s2.map { $0.assumingMemoryBound(to: T.self) + start } ?? p)
    }

    /// Runs this tensor's kernel on elements `range`; returns ||dx||^2 for AdaFix, else 0.
    @inline(__always)
    func update(_ grad: UnsafeRawPointer, _ c: GroupCoefficients, _ k: KernelSet, _ range: Range<Int>) -> Double {
        let n = range.count, at = range.lowerBound
        switch (c, dtype) {
        case (.none, _): return 0
        case let (.adam(c32, _, v), .float32): return k.adam32(streams(grad, Float.self, from: at), n, c32, v)
        case let (.adam(_, c64, v), .float64): return k.adam64(streams(grad, Double.self, from: at), n, c64, v)
        case let (.sgd(c32, _, v), .float32): return k.sgd32(streams(grad, Float.self, from: at), n, c32, v)
        case let (.sgd(_, c64, v), .float64): return k.sgd64(streams(grad, Double.self, from: at), n, c64, v)
        case let (.rmsprop(c32, _, v), .float32): return k.rmsprop32(streams(grad, Float.self, from: at), n, c32, v)
        case let (.rmsprop(_, c64, v), .float64): return k.rmsprop64(streams(grad, Double.self, from: at), n, c64, v)
        case let (.adagrad(c32, _, l2), .float32): return k.adagrad32(streams(grad, Float.self, from: at), n, c32, l2)
        case let (.adagrad(_, c64, l2), .float64): return k.adagrad64(streams(grad, Double.self, from: at), n, c64, l2)
        }
    }

    /// `update` for the Adam family, also measuring `stats`.
    @inline(__always)
    func updateWithStats(_ grad: UnsafeRawPointer, _ c: GroupCoefficients, _ k: KernelSet, _ range: Range<Int>,
                         _ stats: UnsafeMutablePointer<KernelStats>) -> Double {
        let n = range.count, at = range.lowerBound
        let result: Double
        switch (c, dtype) {
        case let (.adam(c32, _, v), .float32): result = k.adamStats32(streams(grad, Float.self, from: at), n, c32, v, stats)
        case let (.adam(_, c64, v), .float64): result = k.adamStats64(streams(grad, Double.self, from: at), n, c64, v, stats)
        default:
            stats.pointee = KernelStats()
            return update(grad, c, k, range)
        }
        if stats.pointee.nonFinite.isNaN { stats.pointee.nonFinite = nonFiniteCount(grad, k, range) }
        return result
    }

    func maxAbs(_ grad: UnsafeRawPointer, _ k: KernelSet, _ range: Range<Int>) -> Double {
        dtype == .float32 ? k.maxAbs32(grad.assumingMemoryBound(to: Float.self) + range.lowerBound, range.count)
            : k.maxAbs64(grad.assumingMemoryBound(to: Double.self) + range.lowerBound, range.count)
    }

    func nonFiniteCount(_ grad: UnsafeRawPointer, _ k: KernelSet, _ range: Range<Int>) -> Double {
        dtype == .float32 ? k.nonFiniteCount32(grad.assumingMemoryBound(to: Float.self) + range.lowerBound, range.count)
            : k.nonFiniteCount64(grad.assumingMemoryBound(to: Double.self) + range.lowerBound, range.count)
    }

    func diffNormSquared(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ k: KernelSet, _ range: Range<Int>) -> Double {
        let at = range.lowerBound, n = range.count
        return dtype == .float32
            ? k.diffNormSquared32(a.assumingMemoryBound(to: Float.self) + at, b.assumingMemoryBound(to: Float.self) + at, n)
            : k.diffNormSquared64(a.assumingMemoryBound(to: Double.self) + at, b.assumingMemoryBound(to: Double.self) + at, n)
    }
}
