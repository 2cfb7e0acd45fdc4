import CAdamCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The update kernels. Each is generic over the element type T and an arithmetic policy P and is `@inlinable`, so
// the module that instantiates it compiles it with its own CPU flags (baseline here, AVX2+FMA in AdamCoreAVX2).
// Inside a kernel, options are compile-time constants of one specialization: no per-element branches.
//
// Every element, in the body or in the tail, goes through the same vector code, so an element's result depends
// only on its own inputs: never on the count, its position, or which elements share a register.

/// The buffers of one tensor. `grad` is only read. Unused state slots point at `param` and are never touched.
public struct Streams<T: KernelScalar> {
    public var param: UnsafeMutablePointer<T>
    public var grad: UnsafePointer<T>
    public var s0: UnsafeMutablePointer<T>
    public var s1: UnsafeMutablePointer<T>
    public var s2: UnsafeMutablePointer<T>

    @inlinable @inline(__always)
    public init(param: UnsafeMutablePointer<T>, grad: UnsafePointer<T>, s0: UnsafeMutablePointer<T>,
                s1: UnsafeMutablePointer<T>, s2: UnsafeMutablePointer<T>) {
        self.param = param; self.grad = grad; self.s0 = s0; self.s1 = s1; self.s2 = s2
    }
}

@inlinable @inline(__always)
func load<T: KernelScalar>(_ p: UnsafePointer<T>, _ i: Int) -> T.Vector {
    UnsafeRawPointer(p + i).loadUnaligned(as: T.Vector.self)
}

@inlinable @inline(__always)
func load<T: KernelScalar>(_ p: UnsafeMutablePointer<T>, _ i: Int) -> T.Vector {
    UnsafeRawPointer(p + i).loadUnaligned(as: T.Vector.self)
}

@inlinable @inline(__always)
func store<T: KernelScalar>(_ p: UnsafeMutablePointer<T>, _ i: Int, _ v: T.Vector) {
    UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: T.Vector.self)
}

/// Elements per reduction block: partial sums are kept in T for a block, then added in Double, in a fixed order.
public let reductionBlock = 1024

/// Runs `body(streams, index, validLanes)` over every vector of `count` elements and returns the Double sum of what
/// it returns (when `accumulate`; otherwise the results are dropped, which keeps a zero accumulator out of the hot
/// loop). `validLanes` is the lane count except in the tail, where only the first `validLanes` lanes are real.
/// The last partial vector goes through the same body on zero-padded stack copies; only its first lanes are
/// copied back (param, unless `readOnly`, and the first `states` state slots) and summed.
@inlinable @inline(__always)
func forEachVector<T: KernelScalar, P: ArithmeticPolicy>(
    _: P.Type, _ s: Streams<T>, count n: Int, states: Int, readOnly: Bool = false, accumulate: Bool = false,
    _ body: (Streams<T>, Int, Int) -> T.Vector
) -> Double {
    let lanes = T.Vector.scalarCount
    let fullEnd = n &- n % lanes
    var total = 0.0
    var i = 0
    if !accumulate {
        while i < fullEnd {
            _ = body(s, i, lanes)
            i &+= lanes
        }
    }
    while i < fullEnd {
        let blockEnd = Swift.min(i &+ reductionBlock, fullEnd)
        var partial = T.Vector()
        while i < blockEnd {
            partial += body(s, i, lanes)
            i &+= lanes
        }
        total += laneSum(partial, lanes: lanes)
    }
    let rest = n &- fullEnd
    guard rest > 0 else { return total }
    return withUnsafeTemporaryAllocation(of: T.self, capacity: 5 * lanes) { scratch -> Double in
        let base = scratch.baseAddress!
        base.initialize(repeating: 0, count: 5 * lanes)
        let t = Streams(param: base, grad: UnsafePointer(base + lanes), s0: base + 2 * lanes, s1: base + 3 * lanes,
                        s2: base + 4 * lanes)
        for k in 0..<(2 + states) { t.slot(k).update(from: s.slot(k) + fullEnd, count: rest) }
        let contribution = body(t, 0, rest)
        for k in 0..<(2 + states) where k != 1 && !(readOnly && k == 0) {
            (s.slot(k) + fullEnd).update(from: t.slot(k), count: rest)
        }
        guard accumulate else { return 0 }
        var tail = 0.0
        for lane in 0..<rest { tail += Double(contribution[lane]) }
        return total + tail
    }
}

extension Streams {
    /// The same buffers from element `offset` on.
    @inlinable @inline(__always)
    public func advanced(by offset: Int) -> Streams {
        Streams(param: param + offset, grad: grad + offset, s0: s0 + offset, s1: s1 + offset, s2: s2 + offset)
    }

    /// Buffers by position: 0 param, 1 grad (never written through this pointer), 2... state slots.
    @inlinable @inline(__always)
    func slot(_ k: Int) -> UnsafeMutablePointer<T> {
        switch k {
        case 0: return param
        case 1: return UnsafeMutablePointer(mutating: grad)
        case 2: return s0
        case 3: return s1
        default: return s2
        }
    }
}

/// Sum of the lanes in lane order (not `sum()`, whose order is unspecified and could differ between builds).
@inlinable @inline(__always)
func laneSum<V: SIMD>(_ v: V, lanes: Int) -> Double where V.Scalar: BinaryFloatingPoint {
    var s = 0.0
    for lane in 0..<lanes { s += Double(v[lane]) }
    return s
}

// MARK: - Adam, AMSGrad, AdaFix

/// Per-step scalars of the Adam family, rounded once to T. The maximize sign is folded into them: with
/// h = g + s*wd*p (s = -1 to maximize), m <- beta1*m + s*(1-beta1)*h and v <- beta2*v + (1-beta2)*h^2 are exactly the
/// updates with the negated gradient (negation is exact), at no per-element cost.
public struct AdamCoefficients<T: KernelScalar> {
    public var signedL2: T             // s * weight_decay (L2 mode)
    public var decay: T                // 1 - lr*wd (decoupled mode)
    public var beta1: T
    public var signedOneMinusBeta1: T  // s * (1 - beta1)
    public var beta2: T
    public var oneMinusBeta2: T
    public var amsScale: T             // AMSGrad: max(vmax, v * amsScale); 1/bc2 in optax's order, 1 in torch's
    public var denomScale: T           // sqrt(v' * denomScale + epsRoot) + eps
    public var epsRoot: T
    public var eps: T
    public var negStepSize: T          // -lr / bc1

    /// `gradScale`: the gradients arrive multiplied by it (AMP's loss scale). With h' = g + s*wd*scale*p = scale*h,
    /// the updates take (1-beta1)/scale and (1-beta2)/scale^2 instead: for a power of two (every AMP scaler's) each
    /// product is exactly the one with the unscaled gradient, so the step is bitwise the unscaled step.
    @inlinable
    public init(_ c: adamcore_config, step: Int64, gradScale: Double = 1) {
        let t = Double(step)
        let inverse = 1 / gradScale
        let bias = (c.flags & ADAMCORE_FLAG_NO_BIAS_CORRECTION.rawValue) == 0
        let bc1 = bias ? 1 - pow(c.beta1, t) : 1
        let bc2 = bias ? 1 - pow(c.beta2, t) : 1
        let optaxOrder = (c.flags & ADAMCORE_FLAG_AMSGRAD_OPTAX_ORDER.rawValue) != 0
        let sign: Double = (c.flags & ADAMCORE_FLAG_MAXIMIZE.rawValue) != 0 ? -1 : 1
        signedL2 = T(sign * c.weight_decay * gradScale)
        decay = T(1 - c.lr * c.weight_decay)
        beta1 = T(c.beta1)
        signedOneMinusBeta1 = T(sign * (1 - c.beta1) * inverse)
        beta2 = T(c.beta2)
        oneMinusBeta2 = T(1 - c.beta2) * T(inverse * inverse)
        amsScale = optaxOrder ? T(1 / bc2) : 1
        denomScale = optaxOrder ? 1 : T(1 / bc2)
        epsRoot = T(c.eps_root)
        eps = T(c.eps)
        negStepSize = T(-(c.lr / bc1))
    }
}

/// Which Adam loop to run. `hasL2` / `decoupled`: the weight-decay form (at most one); `updateV: false` holds v
/// fixed (AdaFix's frozen second moment); `trackStep` makes the kernel return ||p_new - p_old||^2; `saveGradient`
/// copies the gradient into slot 2 (AdaFix's next-gradient mode).
public struct AdamVariant: Equatable, Sendable {
    public var hasL2: Bool
    public var decoupled: Bool
    public var amsgrad: Bool
    public var updateV: Bool
    public var trackStep: Bool
    public var saveGradient: Bool
    public init(hasL2: Bool, decoupled: Bool, amsgrad: Bool, updateV: Bool, trackStep: Bool, saveGradient: Bool) {
        self.hasL2 = hasL2; self.decoupled = decoupled; self.amsgrad = amsgrad; self.updateV = updateV
        self.trackStep = trackStep; self.saveGradient = saveGradient
    }
}

@inlinable @inline(__always)
func adamLoop<T: KernelScalar, P: ArithmeticPolicy, A: StatsSink>(
    _: P.Type, _ s: Streams<T>, _ n: Int, _ c: AdamCoefficients<T>,
    hasL2: Bool, decoupled: Bool, amsgrad: Bool, updateV: Bool, trackStep: Bool, saveGradient: Bool,
    stats _: A.Type
) -> (Double, KernelStats) where A.Scalar == T {
    let collect = A.collects
    typealias V = T.Vector
    let signedL2 = V(repeating: c.signedL2), decay = V(repeating: c.decay), beta1 = V(repeating: c.beta1)
    let signedOneMinusBeta1 = V(repeating: c.signedOneMinusBeta1), beta2 = V(repeating: c.beta2)
    let oneMinusBeta2 = V(repeating: c.oneMinusBeta2), amsScale = V(repeating: c.amsScale)
    let denomScale = V(repeating: c.denomScale), epsRoot = V(repeating: c.epsRoot), eps = V(repeating: c.eps)
    let negStepSize = V(repeating: c.negStepSize)
    let states = amsgrad || saveGradient ? 3 : 2
    // The accumulator is this function's own local, never the caller's memory: stores to the data buffers might
    // alias that, and every vector would then reload and store the accumulators (measured: statistics tripled the
    // cost of an in-cache AVX-512 step); a local the compiler sees whole stays in registers.
    var sink = A()
    let result = forEachVector(P.self, s, count: n, states: states, accumulate: trackStep) { s, i, valid in
        let g: V = load(s.grad, i)
        let old: V = load(s.param, i)
        let h = hasL2 ? P.multiplyAdd(signedL2, old, g) : g
        var p = decoupled ? old * decay : old
        let m = P.multiplyAdd(signedOneMinusBeta1, h, load(s.s0, i) * beta1)   // beta1*m + (1-beta1)*g
        store(s.s0, i, m)
        var v: V = load(s.s1, i)
        if updateV {
            v = P.multiplyAdd(oneMinusBeta2 * h, h, v * beta2)                  // beta2*v + (1-beta2)*g*g
            store(s.s1, i, v)
        }
        var vUsed = v
        if amsgrad {
            vUsed = T.vectorMaximum(load(s.s2, i), v * amsScale)
            store(s.s2, i, vUsed)
        }
        let denom = T.vectorSqrt(P.multiplyAdd(vUsed, denomScale, epsRoot)) + eps
        let direction = m / denom
        p = P.multiplyAdd(negStepSize, direction, p)
        store(s.param, i, p)
        if saveGradient { store(s.s2, i, g) }
        if collect {
            sink.add(P.self, direction: direction, denom: denom, m: m, v: v, step: p - old, grad: g, valid: valid)
        }
        if trackStep {
            let d = p - old
            return d * d
        }
        return V()
    }
    return (result, sink.finish(count: n))
}

/// What a stats-collecting kernel measured over its elements, in Double; items merge in a fixed order.
public struct KernelStats: Sendable {
    public var count = 0.0
    public var nonFinite = 0.0            // NaN and +-Inf gradient values (NaN from a kernel: "some", to be counted)
    public var maxAbsDirection = 0.0      // max |m / denom|: the step is lr / bc1 times this (NaN ignored)
    public var minDenom = Double.infinity // denom = sqrt(v_hat) + eps: the effective lr is lr / denom
    public var maxDenom = 0.0
    public var inverseDenomSum = 0.0      // sum of 1 / denom (for the mean effective lr)
    public var mSquared = 0.0, vSquared = 0.0, stepSquared = 0.0

    public init() {}

    public mutating func merge(_ o: KernelStats) {
        count += o.count
        nonFinite += o.nonFinite
        maxAbsDirection = Swift.max(maxAbsDirection, o.maxAbsDirection)
        minDenom = Swift.min(minDenom, o.minDenom)
        maxDenom = Swift.max(maxDenom, o.maxDenom)
        inverseDenomSum += o.inverseDenomSum
        mSquared += o.mSquared
        vSquared += o.vSquared
        stepSquared += o.stepSquared
    }
}

/// Where an Adam loop sends its per-vector figures: `NoStats` (compiled away) or `StatsAccumulator`. A value the
/// loop owns (inout), so the accumulator lives in registers; through a pointer it would be reloaded and stored
/// around every store to the data buffers, which the compiler cannot prove it does not alias.
public protocol StatsSink {
    associatedtype Scalar: KernelScalar
    static var collects: Bool { get }
    init()
    /// The figures of the `count` elements seen.
    mutating func finish(count: Int) -> KernelStats
    mutating func add<P: ArithmeticPolicy>(_: P.Type, direction: Scalar.Vector, denom: Scalar.Vector, m: Scalar.Vector,
                                           v: Scalar.Vector, step: Scalar.Vector, grad: Scalar.Vector, valid: Int)
}

public struct NoStats<Scalar: KernelScalar>: StatsSink {
    @inlinable public static var collects: Bool { false }
    @inlinable public init() {}
    @inlinable @inline(__always)
    public mutating func finish(count: Int) -> KernelStats { KernelStats() }
    @inlinable @inline(__always)
    public mutating func add<P: ArithmeticPolicy>(_: P.Type, direction: Scalar.Vector, denom: Scalar.Vector, m: Scalar.Vector,
                                                  v: Scalar.Vector, step: Scalar.Vector, grad: Scalar.Vector, valid: Int) {}
}

/// How the statistics fold each vector into their running per-lane values: into half-width accumulators
/// (`HalfLanes`: seven registers, for ISAs with 16 vector registers, where each 512-bit value is two registers
/// anyway) or full-width ones (`FullLanes`: no extracts and no split of the update's vectors, for AVX-512's 32
/// registers). Max and min ignore NaN lanes of the vector; sums are added in a fixed order.
public protocol StatsLanes {
    associatedtype Scalar: KernelScalar
    associatedtype Lanes: SIMD where Lanes.Scalar == Scalar
    static func max(_ acc: Lanes, _ x: Scalar.Vector) -> Lanes
    static func min(_ acc: Lanes, _ x: Scalar.Vector) -> Lanes
    static func add(_ acc: Lanes, _ x: Scalar.Vector) -> Lanes
    static func addSquares(_ acc: Lanes, _ x: Scalar.Vector) -> Lanes
    static func sum(_ acc: Lanes) -> Double
    static func reduceMax(_ acc: Lanes) -> Double
    static func reduceMin(_ acc: Lanes) -> Double
}

public enum HalfLanes<Scalar: KernelScalar>: StatsLanes {
    public typealias Lanes = Scalar.Half
    @inlinable @inline(__always) public static func max(_ a: Lanes, _ x: Scalar.Vector) -> Lanes { Scalar.foldMax(a, x) }
    @inlinable @inline(__always) public static func min(_ a: Lanes, _ x: Scalar.Vector) -> Lanes { Scalar.foldMin(a, x) }
    @inlinable @inline(__always) public static func add(_ a: Lanes, _ x: Scalar.Vector) -> Lanes { Scalar.foldAdd(a, x) }
    @inlinable @inline(__always)
    public static func addSquares(_ a: Lanes, _ x: Scalar.Vector) -> Lanes { Scalar.foldSquares(a, x) }
    @inlinable @inline(__always) public static func sum(_ a: Lanes) -> Double { Scalar.halfSum(a) }
    @inlinable @inline(__always) public static func reduceMax(_ a: Lanes) -> Double { Scalar.halfMax(a) }
    @inlinable @inline(__always) public static func reduceMin(_ a: Lanes) -> Double { Scalar.halfMin(a) }
}

public enum FullLanes<Scalar: KernelScalar>: StatsLanes {
    public typealias Lanes = Scalar.Vector
    @inlinable @inline(__always) public static func max(_ a: Lanes, _ x: Lanes) -> Lanes { Scalar.keepMax(a, x) }
    @inlinable @inline(__always) public static func min(_ a: Lanes, _ x: Lanes) -> Lanes { Scalar.keepMin(a, x) }
    @inlinable @inline(__always) public static func add(_ a: Lanes, _ x: Lanes) -> Lanes { a + x }
    @inlinable @inline(__always) public static func addSquares(_ a: Lanes, _ x: Lanes) -> Lanes { a + x * x }
    @inlinable @inline(__always)
    public static func sum(_ a: Lanes) -> Double { Scalar.halfSum(Scalar.foldAdd(Scalar.Half(), a)) }
    @inlinable @inline(__always)
    public static func reduceMax(_ a: Lanes) -> Double { Scalar.halfMax(Scalar.foldMax(Scalar.Half(repeating: -.infinity), a)) }
    @inlinable @inline(__always)
    public static func reduceMin(_ a: Lanes) -> Double { Scalar.halfMin(Scalar.foldMin(Scalar.Half(repeating: .infinity), a)) }
}

/// Vector-lane running statistics of one kernel call: extremes per lane, sums per lane flushed to Double every 64
/// vectors (as the reductions are blocked), the tail's real lanes added one by one. Every method is inlined: a
/// call that takes `self`'s address would keep the accumulator in memory, loaded and stored around every vector
/// (measured: statistics tripled the cost of an in-cache AVX-512 step).
public struct StatsAccumulator<L: StatsLanes>: StatsSink {
    public typealias Scalar = L.Scalar
    public typealias T = L.Scalar
    @inlinable public static var collects: Bool { true }
    @usableFromInline typealias V = T.Vector
    @usableFromInline typealias H = L.Lanes
    @usableFromInline var maxDirection: H, minDenom: H, maxDenom: H
    /// Sums. A NaN or +-Inf gradient value makes m, hence the sum of m^2, non-finite: that (rare) case is flagged
    /// and the exact count is taken afterwards by a pass over that gradient only.
    @usableFromInline var inverse: H, mSquared: H, vSquared: H, stepSquared: H
    @usableFromInline var vectors: Int
    @usableFromInline var total: KernelStats

    /// Every field set here, in the specialized caller (stored-property defaults of a generic struct would be
    /// evaluated through runtime metadata on every construction).
    @inlinable @inline(__always)
    public init() {
        maxDirection = H(); minDenom = H(repeating: T.infinity); maxDenom = H()
        inverse = H(); mSquared = H(); vSquared = H(); stepSquared = H()
        vectors = 0
        total = KernelStats()
    }

    @inlinable @inline(__always)
    public mutating func add<P: ArithmeticPolicy>(_: P.Type, direction: T.Vector, denom: T.Vector, m: T.Vector, v: T.Vector,
                                                  step: T.Vector, grad: T.Vector, valid: Int) {
        guard valid == V.scalarCount else { return addLanes(direction: direction, denom: denom, m: m, v: v, step: step, grad: grad, valid: valid) }
        maxDirection = L.max(maxDirection, T.vectorAbs(direction))
        minDenom = L.min(minDenom, denom)
        maxDenom = L.max(maxDenom, denom)
        inverse = L.add(inverse, T.vectorReciprocalEstimate(denom))
        mSquared = L.addSquares(mSquared, m)
        vSquared = L.addSquares(vSquared, v)
        stepSquared = L.addSquares(stepSquared, step)
        vectors &+= 1
        if vectors == 64 { flush() }
    }

    @inlinable @inline(__always)
    mutating func addLanes(direction: V, denom: V, m: V, v: V, step: V, grad: V, valid: Int) {
        for lane in 0..<valid {
            let d = Double(denom[lane]), u = Double(direction[lane])
            if !u.isNaN { total.maxAbsDirection = Swift.max(total.maxAbsDirection, abs(u)) }
            if !d.isNaN {
                total.minDenom = Swift.min(total.minDenom, d)
                total.maxDenom = Swift.max(total.maxDenom, d)
            }
            total.inverseDenomSum += 1 / d   // exact in the tail (a few lanes per call)
            total.mSquared += Double(m[lane]) * Double(m[lane])
            total.vSquared += Double(v[lane]) * Double(v[lane])
            total.stepSquared += Double(step[lane]) * Double(step[lane])
            if !Double(grad[lane]).isFinite { total.nonFinite = .nan }
        }
    }

    @inlinable @inline(__always)
    mutating func flush() {
        total.inverseDenomSum += L.sum(inverse)
        let m2 = L.sum(mSquared)
        if !m2.isFinite { total.nonFinite = .nan }
        total.mSquared += m2
        total.vSquared += L.sum(vSquared)
        total.stepSquared += L.sum(stepSquared)
        inverse = H(); mSquared = H(); vSquared = H(); stepSquared = H()
        vectors = 0
    }

    @inlinable @inline(__always)
    public mutating func finish(count: Int) -> KernelStats {
        if vectors > 0 { flush() }
        total.maxAbsDirection = Swift.max(total.maxAbsDirection, L.reduceMax(maxDirection))
        total.minDenom = Swift.min(total.minDenom, L.reduceMin(minDenom))
        total.maxDenom = Swift.max(total.maxDenom, L.reduceMax(maxDenom))
        total.count = Double(count)
        return total
    }
}

/// The Adam-family update with statistics (`adamKernel` with the same variant, writing `stats`): same bits.
@inlinable
public func adamStatsKernel<T: KernelScalar, P: ArithmeticPolicy>(
    _: P.Type, _ s: Streams<T>, _ n: Int, _ c: AdamCoefficients<T>, _ v: AdamVariant,
    _ out: UnsafeMutablePointer<KernelStats>
) -> Double {
    let (result, stats) = P.fullWidthStatistics
        ? adamDispatch(P.self, s, n, c, v, StatsAccumulator<FullLanes<T>>.self)
        : adamDispatch(P.self, s, n, c, v, StatsAccumulator<HalfLanes<T>>.self)
    out.pointee = stats
    return result
}

/// One Adam-family update of `n` elements; returns ||p_new - p_old||^2 when `variant.trackStep`, else 0.
/// Only the combinations Adam and AdaFix use are instantiated; each is one specialization of adamLoop.
@inlinable
public func adamKernel<T: KernelScalar, P: ArithmeticPolicy>(
    _: P.Type, _ s: Streams<T>, _ n: Int, _ c: AdamCoefficients<T>, _ v: AdamVariant
) -> Double {
    adamDispatch(P.self, s, n, c, v, NoStats<T>.self).0
}

/// The variant's specialization of adamLoop, measuring with a sink of type `stats` (NoStats: nothing, compiled away);
/// returns the kernel result and the figures.
@inlinable
func adamDispatch<T: KernelScalar, P: ArithmeticPolicy, A: StatsSink>(
    _: P.Type, _ s: Streams<T>, _ n: Int, _ c: AdamCoefficients<T>, _ v: AdamVariant, _ stats: A.Type
) -> (Double, KernelStats) where A.Scalar == T {
    if !v.trackStep {
        // Adam / AdamW / AMSGrad
        switch (v.hasL2, v.decoupled, v.amsgrad) {
        case (false, false, false): return adamLoop(P.self, s, n, c, hasL2: false, decoupled: false, amsgrad: false, updateV: true, trackStep: false, saveGradient: false, stats: stats)
        case (false, false, true): return adamLoop(P.self, s, n, c, hasL2: false, decoupled: false, amsgrad: true, updateV: true, trackStep: false, saveGradient: false, stats: stats)
        case (true, _, false): return adamLoop(P.self, s, n, c, hasL2: true, decoupled: false, amsgrad: false, updateV: true, trackStep: false, saveGradient: false, stats: stats)
        case (true, _, true): return adamLoop(P.self, s, n, c, hasL2: true, decoupled: false, amsgrad: true, updateV: true, trackStep: false, saveGradient: false, stats: stats)
        case (false, true, false): return adamLoop(P.self, s, n, c, hasL2: false, decoupled: true, amsgrad: false, updateV: true, trackStep: false, saveGradient: false, stats: stats)
        case (false, true, true): return adamLoop(P.self, s, n, c, hasL2: false, decoupled: true, amsgrad: true, updateV: true, trackStep: false, saveGradient: false, stats: stats)
        }
    }
    // AdaFix: weight-decay form x gate decision x next-gradient mode
    switch (v.hasL2, v.decoupled, v.updateV, v.saveGradient) {
    case (false, false, false, false): return adamLoop(P.self, s, n, c, hasL2: false, decoupled: false, amsgrad: false, updateV: false, trackStep: true, saveGradient: false, stats: stats)
    case (false, false, true, false): return adamLoop(P.self, s, n, c, hasL2: false, decoupled: false, amsgrad: false, updateV: true, trackStep: true, saveGradient: false, stats: stats)
    case (false, false, false, true): return adamLoop(P.self, s, n, c, hasL2: false, decoupled: false, amsgrad: false, updateV: false, trackStep: true, saveGradient: true, stats: stats)
    case (false, false, true, true): return adamLoop(P.self, s, n, c, hasL2: false, decoupled: false, amsgrad: false, updateV: true, trackStep: true, saveGradient: true, stats: stats)
    case (true, _, false, false): return adamLoop(P.self, s, n, c, hasL2: true, decoupled: false, amsgrad: false, updateV: false, trackStep: true, saveGradient: false, stats: stats)
    case (true, _, true, false): return adamLoop(P.self, s, n, c, hasL2: true, decoupled: false, amsgrad: false, updateV: true, trackStep: true, saveGradient: false, stats: stats)
    case (true, _, false, true): return adamLoop(P.self, s, n, c, hasL2: true, decoupled: false, amsgrad: false, updateV: false, trackStep: true, saveGradient: true, stats: stats)
    case (true, _, true, true): return adamLoop(P.self, s, n, c, hasL2: true, decoupled: false, amsgrad: false, updateV: true, trackStep: true, saveGradient: true, stats: stats)
    case (false, true, false, false): return adamLoop(P.self, s, n, c, hasL2: false, decoupled: true, amsgrad: false, updateV: false, trackStep: true, saveGradient: false, stats: stats)
    case (false, true, true, false): return adamLoop(P.self, s, n, c, hasL2: false, decoupled: true, amsgrad: false, updateV: true, trackStep: true, saveGradient: false, stats: stats)
    case (false, true, false, true): return adamLoop(P.self, s, n, c, hasL2: false, decoupled: true, amsgrad: false, updateV: false, trackStep: true, saveGradient: true, stats: stats)
    case (false, true, true, true): return adamLoop(P.self, s, n, c, hasL2: false, decoupled: true, amsgrad: false, updateV: true, trackStep: true, saveGradient: true, stats: stats)
    }
}

// MARK: - SGD

public struct SGDCoefficients<T: KernelScalar> {
    public var sign: T
    public var l2: T
    public var momentum: T
    public var oneMinusDampening: T
    public var negLr: T

    /// `gradScale`: the gradients arrive multiplied by it (AMP); the sign factor divides it out first.
    @inlinable
    public init(_ c: adamcore_config, gradScale: Double = 1) {
        sign = T(((c.flags & ADAMCORE_FLAG_MAXIMIZE.rawValue) != 0 ? -1 : 1) / gradScale)
        l2 = T(c.weight_decay)
        momentum = T(c.momentum)
        oneMinusDampening = T(1 - c.dampening)
        negLr = T(-c.lr)
    }
}

public struct SGDVariant: Equatable, Sendable {
    public var hasL2: Bool
    public var momentum: Bool
    public var firstStep: Bool     // torch's first step: the buffer becomes a copy of the gradient
    public var nesterov: Bool
    public init(hasL2: Bool, momentum: Bool, firstStep: Bool, nesterov: Bool) {
        self.hasL2 = hasL2; self.momentum = momentum; self.firstStep = firstStep; self.nesterov = nesterov
    }
}

@inlinable @inline(__always)
func sgdLoop<T: KernelScalar, P: ArithmeticPolicy>(
    _: P.Type, _ s: Streams<T>, _ n: Int, _ c: SGDCoefficients<T>,
    hasL2: Bool, momentum: Bool, firstStep: Bool, nesterov: Bool
) -> Double {
    typealias V = T.Vector
    let sign = V(repeating: c.sign), l2 = V(repeating: c.l2), mu = V(repeating: c.momentum)
    let oneMinusDampening = V(repeating: c.oneMinusDampening), negLr = V(repeating: c.negLr)
    return forEachVector(P.self, s, count: n, states: momentum ? 1 : 0) { s, i, _ in
        var p: V = load(s.param, i)
        var g: V = load(s.grad, i) * sign
        if hasL2 { g = P.multiplyAdd(l2, p, g) }
        if momentum {
            let buf: V = firstStep ? g : P.multiplyAdd(oneMinusDampening, g, load(s.s0, i) * mu)
            store(s.s0, i, buf)
            g = nesterov ? P.multiplyAdd(mu, buf, g) : buf
        }
        p = P.multiplyAdd(negLr, g, p)
        store(s.param, i, p)
        return V()
    }
}

@inlinable
public func sgdKernel<T: KernelScalar, P: ArithmeticPolicy>(
    _: P.Type, _ s: Streams<T>, _ n: Int, _ c: SGDCoefficients<T>, _ v: SGDVariant
) -> Double {
    switch (v.hasL2, v.momentum, v.firstStep, v.nesterov) {
    case (false, false, _, _): _ = sgdLoop(P.self, s, n, c, hasL2: false, momentum: false, firstStep: false, nesterov: false)
    case (true, false, _, _): _ = sgdLoop(P.self, s, n, c, hasL2: true, momentum: false, firstStep: false, nesterov: false)
    case (false, true, false, false): _ = sgdLoop(P.self, s, n, c, hasL2: false, momentum: true, firstStep: false, nesterov: false)
    case (false, true, false, true): _ = sgdLoop(P.self, s, n, c, hasL2: false, momentum: true, firstStep: false, nesterov: true)
    case (false, true, true, false): _ = sgdLoop(P.self, s, n, c, hasL2: false, momentum: true, firstStep: true, nesterov: false)
    case (false, true, true, true): _ = sgdLoop(P.self, s, n, c, hasL2: false, momentum: true, firstStep: true, nesterov: true)
    case (true, true, false, false): _ = sgdLoop(P.self, s, n, c, hasL2: true, momentum: true, firstStep: false, nesterov: false)
    case (true, true, false, true): _ = sgdLoop(P.self, s, n, c, hasL2: true, momentum: true, firstStep: false, nesterov: true)
    case (true, true, true, false): _ = sgdLoop(P.self, s, n, c, hasL2: true, momentum: true, firstStep: true, nesterov: false)
    case (true, true, true, true): _ = sgdLoop(P.self, s, n, c, hasL2: true, momentum: true, firstStep: true, nesterov: true)
    }
    return 0
}

// MARK: - RMSprop

public struct RMSpropCoefficients<T: KernelScalar> {
    public var sign: T
    public var l2: T
    public var alpha: T
    public var oneMinusAlpha: T
    public var eps: T
    public var momentum: T
    public var negLr: T

    /// `gradScale`: the gradients arrive multiplied by it (AMP); the sign factor divides it out first.
    @inlinable
    public init(_ c: adamcore_config, gradScale: Double = 1) {
        sign = T(((c.flags & ADAMCORE_FLAG_MAXIMIZE.rawValue) != 0 ? -1 : 1) / gradScale)
        l2 = T(c.weight_decay)
        alpha = T(c.alpha)
        oneMinusAlpha = T(1 - c.alpha)
        eps = T(c.eps)
        momentum = T(c.momentum)
        negLr = T(-c.lr)
    }
}

public struct RMSpropVariant: Equatable, Sendable {
    public var hasL2: Bool
    public var centered: Bool
    public var momentum: Bool
    public init(hasL2: Bool, centered: Bool, momentum: Bool) {
        self.hasL2 = hasL2; self.centered = centered; self.momentum = momentum
    }
}

@inlinable @inline(__always)
func rmspropLoop<T: KernelScalar, P: ArithmeticPolicy>(
    _: P.Type, _ s: Streams<T>, _ n: Int, _ c: RMSpropCoefficients<T>, hasL2: Bool, centered: Bool, momentum: Bool
) -> Double {
    typealias V = T.Vector
    let sign = V(repeating: c.sign), l2 = V(repeating: c.l2), alpha = V(repeating: c.alpha)
    let oneMinusAlpha = V(repeating: c.oneMinusAlpha), eps = V(repeating: c.eps), mu = V(repeating: c.momentum)
    let negLr = V(repeating: c.negLr), zero = V()
    let states = 1 + (centered ? 1 : 0) + (momentum ? 1 : 0)
    return forEachVector(P.self, s, count: n, states: states) { s, i, _ in
        var p: V = load(s.param, i)
        var g: V = load(s.grad, i) * sign
        if hasL2 { g = P.multiplyAdd(l2, p, g) }
        var sq: V = load(s.s0, i)
        sq = P.multiplyAdd(oneMinusAlpha * g, g, sq * alpha)     // square_avg * alpha + (1 - alpha) * g * g
        store(s.s0, i, sq)
        var avg: V
        if centered {
            var ga: V = load(s.s1, i)
            ga = P.multiplyAdd(oneMinusAlpha, g - ga, ga)          // grad_avg.lerp_(grad, 1 - alpha)
            store(s.s1, i, ga)
            // sq >= ga^2 in exact arithmetic; clamp the rounding residue so it cannot become sqrt(negative) = NaN.
            avg = T.vectorSqrt(T.vectorMaximum(P.multiplyAdd(zero - ga, ga, sq), zero))
        } else {
            avg = T.vectorSqrt(sq)
        }
        avg += eps
        if momentum {
            let bufPtr = centered ? s.s2 : s.s1
            let buf = P.multiplyAdd(load(bufPtr, i), mu, g / avg)   // buf * momentum + grad / avg
            store(bufPtr, i, buf)
            p = P.multiplyAdd(negLr, buf, p)
        } else {
            p = P.multiplyAdd(negLr, g / avg, p)
        }
        store(s.param, i, p)
        return V()
    }
}

@inlinable
public func rmspropKernel<T: KernelScalar, P: ArithmeticPolicy>(
    _: P.Type, _ s: Streams<T>, _ n: Int, _ c: RMSpropCoefficients<T>, _ v: RMSpropVariant
) -> Double {
    switch (v.hasL2, v.centered, v.momentum) {
    case (false, false, false): _ = rmspropLoop(P.self, s, n, c, hasL2: false, centered: false, momentum: false)
    case (false, false, true): _ = rmspropLoop(P.self, s, n, c, hasL2: false, centered: false, momentum: true)
    case (false, true, false): _ = rmspropLoop(P.self, s, n, c, hasL2: false, centered: true, momentum: false)
    case (false, true, true): _ = rmspropLoop(P.self, s, n, c, hasL2: false, centered: true, momentum: true)
    case (true, false, false): _ = rmspropLoop(P.self, s, n, c, hasL2: true, centered: false, momentum: false)
    case (true, false, true): _ = rmspropLoop(P.self, s, n, c, hasL2: true, centered: false, momentum: true)
    case (true, true, false): _ = rmspropLoop(P.self, s, n, c, hasL2: true, centered: true, momentum: false)
    case (true, true, true): _ = rmspropLoop(P.self, s, n, c, hasL2: true, centered: true, momentum: true)
    }
    return 0
}

// MARK: - AdaGrad

public struct AdagradCoefficients<T: KernelScalar> {
    public var sign: T
    public var l2: T
    public var eps: T
    public var negClr: T            // -lr / (1 + (step - 1) * lr_decay)

    /// `gradScale`: the gradients arrive multiplied by it (AMP); the sign factor divides it out first.
    @inlinable
    public init(_ c: adamcore_config, step: Int64, gradScale: Double = 1) {
        sign = T(((c.flags & ADAMCORE_FLAG_MAXIMIZE.rawValue) != 0 ? -1 : 1) / gradScale)
        l2 = T(c.weight_decay)
        eps = T(c.eps)
        let decayed: Double = 1 + Double(step - 1) * c.lr_decay
        negClr = T(-(c.lr / decayed))
    }
}

@inlinable @inline(__always)
func adagradLoop<T: KernelScalar, P: ArithmeticPolicy>(
    _: P.Type, _ s: Streams<T>, _ n: Int, _ c: AdagradCoefficients<T>, hasL2: Bool
) -> Double {
    typealias V = T.Vector
    let sign = V(repeating: c.sign), l2 = V(repeating: c.l2), eps = V(repeating: c.eps)
    let negClr = V(repeating: c.negClr)
    return forEachVector(P.self, s, count: n, states: 1) { s, i, _ in
        var p: V = load(s.param, i)
        var g: V = load(s.grad, i) * sign
        if hasL2 { g = P.multiplyAdd(l2, p, g) }
        let sum = P.multiplyAdd(g, g, load(s.s0, i))               // state_sum.addcmul_(grad, grad)
        store(s.s0, i, sum)
        p = P.multiplyAdd(negClr, g / (T.vectorSqrt(sum) + eps), p)
        store(s.param, i, p)
        return V()
    }
}

@inlinable
public func adagradKernel<T: KernelScalar, P: ArithmeticPolicy>(
    _: P.Type, _ s: Streams<T>, _ n: Int, _ c: AdagradCoefficients<T>, hasL2: Bool
) -> Double {
    hasL2 ? adagradLoop(P.self, s, n, c, hasL2: true) : adagradLoop(P.self, s, n, c, hasL2: false)
}

// MARK: - Reductions (AdaFix's gate and Lipschitz estimate)

/// max |a[i]|; NaN values are ignored.
@inlinable
public func maxAbsKernel<T: KernelScalar, P: ArithmeticPolicy>(_: P.Type, _ a: UnsafePointer<T>, _ n: Int) -> Double {
    let lanes = T.Vector.scalarCount
    let fullEnd = n &- n % lanes
    var best = T.Vector()
    var i = 0
    while i < fullEnd {
        let x: T.Vector = load(a, i)
        best = T.vectorMaxIgnoringNaN(best, T.vectorAbs(x))
        i &+= lanes
    }
    var result = 0.0
    for lane in 0..<lanes { result = Swift.max(result, Double(best[lane])) }
    while i < n {
        result = Swift.max(result, Double(abs(a[i])))
        i &+= 1
    }
    return result
}

/// The number of NaN and +-Inf values in a[0..<n] (the non-finite guard's pass).
@inlinable
public func nonFiniteCountKernel<T: KernelScalar, P: ArithmeticPolicy>(_: P.Type, _ a: UnsafePointer<T>, _ n: Int) -> Double {
    let s = Streams(param: UnsafeMutablePointer(mutating: a), grad: a, s0: UnsafeMutablePointer(mutating: a),
                    s1: UnsafeMutablePointer(mutating: a), s2: UnsafeMutablePointer(mutating: a))
    return forEachVector(P.self, s, count: n, states: 0, readOnly: true, accumulate: true) { s, i, _ in
        T.vectorNonFinite(load(s.grad, i))
    }
}

/// sum (a[i] - b[i])^2, in the same blocked order as the update kernels.
@inlinable
public func diffNormSquaredKernel<T: KernelScalar, P: ArithmeticPolicy>(
    _: P.Type, _ a: UnsafePointer<T>, _ b: UnsafePointer<T>, _ n: Int
) -> Double {
    // Both inputs travel in read-only positions: `b` as param with readOnly, so neither is ever written.
    let s = Streams(param: UnsafeMutablePointer(mutating: b), grad: a, s0: UnsafeMutablePointer(mutating: b),
                    s1: UnsafeMutablePointer(mutating: b), s2: UnsafeMutablePointer(mutating: b))
    return forEachVector(P.self, s, count: n, states: 0, readOnly: true, accumulate: true) { s, i, _ in
        let d: T.Vector = load(s.grad, i) - load(s.param, i)
        return P.multiplyAdd(d, d, T.Vector())
    }
}
