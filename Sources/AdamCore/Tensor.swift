import CAdamCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// A registered tensor, its dtype, and the per-step coefficients its kernels take.

/// Per-step scalars of one group's algorithm in compute type T, with the variant of its loop.
enum Coefficients<T: KernelScalar> {
    case adam(AdamCoefficients<T>, AdamVariant)
    case sgd(SGDCoefficients<T>, SGDVariant)
    case rmsprop(RMSpropCoefficients<T>, RMSpropVariant)
    case adagrad(AdagradCoefficients<T>, Bool)

    init(_ c: ValidConfig, step: Int64, updateV: Bool, gradScale: Double) {
        switch c.algorithm {
        case .adam, .adafix:
            let adafix = c.algorithm == .adafix
            let variant = AdamVariant(hasL2: hasL2(c), decoupled: hasDecoupledDecay(c), amsgrad: c.flags.contains(.amsgrad),
                                      updateV: updateV, trackStep: adafix,
                                      saveGradient: adafix && c.flags.contains(.adafixNextGradient))
            self = .adam(AdamCoefficients(c.raw, step: step, gradScale: gradScale), variant)
        case .sgd:
            self = .sgd(SGDCoefficients(c.raw, gradScale: gradScale), sgdVariant(c, step: step))
        case .rmsprop:
            self = .rmsprop(RMSpropCoefficients(c.raw, gradScale: gradScale), rmspropVariant(c))
        case .adagrad:
            self = .adagrad(AdagradCoefficients(c.raw, step: step, gradScale: gradScale), hasL2(c))
        }
    }
}

/// A (group, step)'s coefficients in the compute type of the tensors that take them (Tensor.computesInDouble):
/// computed only for that type.
enum GroupCoefficients {
    case float32(Coefficients<Float>)
    case float64(Coefficients<Double>)

    init(_ c: ValidConfig, step: Int64, updateV: Bool, gradScale: Double, inDouble: Bool) {
        self = inDouble ? .float64(Coefficients(c, step: step, updateV: updateV, gradScale: gradScale))
            : .float32(Coefficients(c, step: step, updateV: updateV, gradScale: gradScale))
    }

    /// Whether the update returns a sum over its elements (AdaFix's ||dx||^2), which is added per work item in a
    /// fixed order; every other update returns 0 and may run any span of elements in one pass.
    var sumsPerElement: Bool {
        switch self {
        case let .float32(.adam(_, v)): return v.trackStep
        case let .float64(.adam(_, v)): return v.trackStep
        default: return false
        }
    }
}

struct Tensor {
    let layout: TensorLayout
    let group: Int
    let count: Int
    let param: UnsafeMutableRawPointer
    let grad: UnsafeRawPointer?
    let state: StateSlots
    /// The float32 master weights (library- or caller-owned) and the offload form's 16-bit copy-out, when the
    /// layout has them.
    let master: UnsafeMutablePointer<Float>?
    let copy: UnsafeMutableRawPointer?
    let stateCount: Int
    let ownsState: Bool
    let ownsMaster: Bool
    /// Byte ranges of param, the state slots, master and copy (empty when absent), and of the registered gradient,
    /// computed once at registration, for the overlap checks of later registrations, parameter moves and
    /// checkpoint buffers.
    let ownRanges: (ByteRange, ByteRange, ByteRange, ByteRange, ByteRange, ByteRange)
    let gradRange: ByteRange

    var dtype: DType { layout.param }
    /// float64 tensors compute in float64; every other layout in float32.
    var computesInDouble: Bool { layout.param == .float64 }

    func withParam(_ p: UnsafeMutableRawPointer, range: ByteRange) -> Tensor {
        let r = ownRanges
        return Tensor(layout: layout, group: group, count: count, param: p, grad: grad, state: state,
                      master: master, copy: copy, stateCount: stateCount, ownsState: ownsState, ownsMaster: ownsMaster,
                      ownRanges: (range, r.1, r.2, r.3, r.4, r.5), gradRange: gradRange)
    }

    /// Whether `r` overlaps any buffer registered for this tensor (param, state, master, copy, registered gradient).
    func overlaps(_ r: ByteRange) -> Bool {
        let o = ownRanges
        return o.0.overlaps(r) || o.1.overlaps(r) || o.2.overlaps(r) || o.3.overlaps(r) || o.4.overlaps(r)
            || o.5.overlaps(r) || gradRange.overlaps(r)
    }

    /// Whether `r` overlaps a buffer other than the parameter (setParam's check: the old parameter is replaced).
    func overlapsBesidesParam(_ r: ByteRange) -> Bool {
        let o = ownRanges
        return o.1.overlaps(r) || o.2.overlaps(r) || o.3.overlaps(r) || o.4.overlaps(r) || o.5.overlaps(r)
            || gradRange.overlaps(r)
    }

    @inline(__always)
    private func streams<T: KernelScalar>(_ grad: UnsafeRawPointer, _: T.Type, from start: Int,
                                          prefetch: Bool) -> Streams<T> {
        let p = param.assumingMemoryBound(to: T.self) + start
        // Absent slots point at the parameter: the kernels never touch them.
        func slot(_ k: Int) -> UnsafeMutablePointer<T> { state[k].map { $0.assumingMemoryBound(to: T.self) + start } ?? p }
        return Streams(param: p, grad: grad.assumingMemoryBound(to: T.self) + start, s0: slot(0), s1: slot(1),
                       s2: slot(2), prefetchAhead: prefetch)
    }

    @inline(__always)
    private func mixed(_ grad: UnsafeRawPointer, from at: Int, key: UInt64, prefetch: Bool) -> MixedStreams {
        MixedStreams(param: param + at * layout.param.byteSize, grad: grad + at * layout.grad.byteSize,
                     state: state.advanced(by: at * layout.state.byteSize), master: master.map { $0 + at },
                     copy: copy.map { $0 + 2 * at }, layout: layout, stateCount: stateCount, key: key, first: at,
                     prefetchAhead: prefetch)
    }

    /// Runs this tensor's kernel on elements `range`; returns ||dx||^2 for AdaFix, else 0. `c` is in this tensor's
    /// compute type; `key`: the stochastic-rounding key of this tensor's step (see roundingKey); `prefetch`: whether
    /// the loops prefetch ahead (the step streams from memory: prefetchesAhead(elements:)).
    @inline(__always)
    func update(_ grad: UnsafeRawPointer, _ c: GroupCoefficients, _ k: KernelSet, _ range: Range<Int>,
                key: UInt64, prefetch: Bool) -> Double {
        let n = range.count, at = range.lowerBound
        switch c {
        case let .float64(c64):
            let s = streams(grad, Double.self, from: at, prefetch: prefetch)
            switch c64 {
            case let .adam(c, v): return k.adam64(s, n, c, v)
            case let .sgd(c, v): return k.sgd64(s, n, c, v)
            case let .rmsprop(c, v): return k.rmsprop64(s, n, c, v)
            case let .adagrad(c, l2): return k.adagrad64(s, n, c, l2)
            }
        case let .float32(c32) where layout.isPlain:
            let s = streams(grad, Float.self, from: at, prefetch: prefetch)
            switch c32 {
            case let .adam(c, v): return k.adam32(s, n, c, v)
            case let .sgd(c, v): return k.sgd32(s, n, c, v)
            case let .rmsprop(c, v): return k.rmsprop32(s, n, c, v)
            case let .adagrad(c, l2): return k.adagrad32(s, n, c, l2)
            }
        case let .float32(c32):
            let s = mixed(grad, from: at, key: key, prefetch: prefetch)
            switch c32 {
            case let .adam(c, v): return k.mixedAdam(s, n, c, v)
            case let .sgd(c, v): return k.staged(s, n) { k.sgd32($0, $1, c, v) }
            case let .rmsprop(c, v): return k.staged(s, n) { k.rmsprop32($0, $1, c, v) }
            case let .adagrad(c, l2): return k.staged(s, n) { k.adagrad32($0, $1, c, l2) }
            }
        }
    }

    /// `update` for the Adam family, also measuring `stats`.
    @inline(__always)
    func updateWithStats(_ grad: UnsafeRawPointer, _ c: GroupCoefficients, _ k: KernelSet, _ range: Range<Int>,
                         _ stats: UnsafeMutablePointer<KernelStats>, key: UInt64, prefetch: Bool) -> Double {
        let n = range.count, at = range.lowerBound
        let result: Double
        switch c {
        case let .float64(.adam(c64, v)):
            result = k.adamStats64(streams(grad, Double.self, from: at, prefetch: prefetch), n, c64, v, stats)
        case let .float32(.adam(c32, v)) where layout.isPlain:
            result = k.adamStats32(streams(grad, Float.self, from: at, prefetch: prefetch), n, c32, v, stats)
        case let .float32(.adam(c32, v)):
            var merged = KernelStats()
            result = k.staged(mixed(grad, from: at, key: key, prefetch: prefetch), n) { s, b in
                var block = KernelStats()
                let r = k.adamStats32(s, b, c32, v, &block)
                merged.merge(block)
                return r
            }
            stats.pointee = merged
        default:
            stats.pointee = KernelStats()
            return update(grad, c, k, range, key: key, prefetch: prefetch)
        }
        if stats.pointee.nonFinite.isNaN { stats.pointee.nonFinite = nonFiniteCount(grad, k, range) }
        return result
    }

    // The reductions: float64 gradients directly, every other type through float32 views (stagedRead: the buffer
    // itself for float32, widened blocks for 16-bit types).

    func maxAbs(_ grad: UnsafeRawPointer, _ k: KernelSet, _ range: Range<Int>) -> Double {
        let at = range.lowerBound, n = range.count
        if layout.grad == .float64 { return k.maxAbs64(grad.assumingMemoryBound(to: Double.self) + at, n) }
        var m = 0.0
        k.stagedRead(grad + at * layout.grad.byteSize, layout.grad, nil, layout.grad, n) { a, _, b in
            m = Swift.max(m, k.maxAbs32(a, b))
        }
        return m
    }

    func nonFiniteCount(_ grad: UnsafeRawPointer, _ k: KernelSet, _ range: Range<Int>) -> Double {
        let at = range.lowerBound, n = range.count
        if layout.grad == .float64 { return k.nonFiniteCount64(grad.assumingMemoryBound(to: Double.self) + at, n) }
        var total = 0.0
        k.stagedRead(grad + at * layout.grad.byteSize, layout.grad, nil, layout.grad, n) { a, _, b in
            total += k.nonFiniteCount32(a, b)
        }
        return total
    }

    /// ||a - b||^2 over `range`: a gradient (grad's type) and g' (grad's type) or the saved gradient (`bIsState`:
    /// the state's type).
    func diffNormSquared(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ k: KernelSet, _ range: Range<Int>,
                         bIsState: Bool = false) -> Double {
        let at = range.lowerBound, n = range.count
        if layout.grad == .float64 {
            return k.diffNormSquared64(a.assumingMemoryBound(to: Double.self) + at, b.assumingMemoryBound(to: Double.self) + at, n)
        }
        let bType = bIsState ? layout.state : layout.grad
        var total = 0.0
        k.stagedRead(a + at * layout.grad.byteSize, layout.grad, b + at * bType.byteSize, bType, n) { x, y, c in
            total += k.diffNormSquared32(x, y, c)
        }
        return total
    }
}
