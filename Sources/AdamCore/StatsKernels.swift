import CAdamCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// What the Adam loop measures when statistics are on (seed 000's and 001's figures), per vector, in registers.

/// What a stats-collecting kernel measured over its elements, in Double; items merge in a fixed order.
@usableFromInline package struct KernelStats: Sendable {
    @usableFromInline package var count = 0.0
    @usableFromInline package var nonFinite = 0.0            // NaN and +-Inf gradient values (NaN from a kernel: "some", to be counted)
    @usableFromInline package var maxAbsDirection = 0.0      // max |m / denom|: the step is lr / bc1 times this (NaN ignored)
    @usableFromInline package var minDenom = Double.infinity // denom = sqrt(v_hat) + eps: the effective lr is lr / denom
    @usableFromInline package var maxDenom = 0.0
    @usableFromInline package var inverseDenomSum = 0.0      // sum of 1 / denom (for the mean effective lr)
    @usableFromInline package var mSquared = 0.0, vSquared = 0.0, stepSquared = 0.0

    @usableFromInline package init() {}

    @usableFromInline package mutating func merge(_ o: KernelStats) {
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

/// Where an Adam loop sends its per-vector figures: `NoStats` (compiled away) or `StatsAccumulator`. The loop
/// creates its sink as a local and returns `finish`'s figures, so the accumulator lives in registers; through a
/// pointer it would be reloaded and stored around every store to the data buffers, which may alias it.
@usableFromInline package protocol StatsSink {
    associatedtype Scalar: KernelScalar
    static var collects: Bool { get }
    init()
    /// The figures of the `count` elements seen.
    mutating func finish(count: Int) -> KernelStats
    mutating func add<P: ArithmeticPolicy>(_: P.Type, direction: Scalar.Vector, denom: Scalar.Vector, m: Scalar.Vector,
                                           v: Scalar.Vector, step: Scalar.Vector, grad: Scalar.Vector, valid: Int)
}

@usableFromInline package struct NoStats<Scalar: KernelScalar>: StatsSink {
    @inlinable package static var collects: Bool { false }
    @inlinable package init() {}
    @inlinable @inline(__always)
    package mutating func finish(count: Int) -> KernelStats { KernelStats() }
    @inlinable @inline(__always)
    package mutating func add<P: ArithmeticPolicy>(_: P.Type, direction: Scalar.Vector, denom: Scalar.Vector, m: Scalar.Vector,
                                                  v: Scalar.Vector, step: Scalar.Vector, grad: Scalar.Vector, valid: Int) {}
}

/// How the statistics fold each vector into their running per-lane values: into half-width accumulators
/// (`HalfLanes`: seven registers, for ISAs with 16 vector registers, where each 512-bit value is two registers
/// anyway) or full-width ones (`FullLanes`: no extracts and no split of the update's vectors, for AVX-512's 32
/// registers). Max and min ignore NaN lanes of the vector; sums are added in a fixed order.
@usableFromInline package protocol StatsLanes {
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

@usableFromInline package enum HalfLanes<Scalar: KernelScalar>: StatsLanes {
    @usableFromInline package typealias Lanes = Scalar.Half
    @inlinable @inline(__always) package static func max(_ a: Lanes, _ x: Scalar.Vector) -> Lanes { Scalar.foldMax(a, x) }
    @inlinable @inline(__always) package static func min(_ a: Lanes, _ x: Scalar.Vector) -> Lanes { Scalar.foldMin(a, x) }
    @inlinable @inline(__always) package static func add(_ a: Lanes, _ x: Scalar.Vector) -> Lanes { Scalar.foldAdd(a, x) }
    @inlinable @inline(__always)
    package static func addSquares(_ a: Lanes, _ x: Scalar.Vector) -> Lanes { Scalar.foldSquares(a, x) }
    @inlinable @inline(__always) package static func sum(_ a: Lanes) -> Double { Scalar.halfSum(a) }
    @inlinable @inline(__always) package static func reduceMax(_ a: Lanes) -> Double { Scalar.halfMax(a) }
    @inlinable @inline(__always) package static func reduceMin(_ a: Lanes) -> Double { Scalar.halfMin(a) }
}

@usableFromInline package enum FullLanes<Scalar: KernelScalar>: StatsLanes {
    @usableFromInline package typealias Lanes = Scalar.Vector
    @inlinable @inline(__always) package static func max(_ a: Lanes, _ x: Lanes) -> Lanes { Scalar.keepMax(a, x) }
    @inlinable @inline(__always) package static func min(_ a: Lanes, _ x: Lanes) -> Lanes { Scalar.keepMin(a, x) }
    @inlinable @inline(__always) package static func add(_ a: Lanes, _ x: Lanes) -> Lanes { a + x }
    @inlinable @inline(__always) package static func addSquares(_ a: Lanes, _ x: Lanes) -> Lanes { a + x * x }
    @inlinable @inline(__always)
    package static func sum(_ a: Lanes) -> Double { Scalar.halfSum(Scalar.foldAdd(Scalar.Half(), a)) }
    @inlinable @inline(__always)
    package static func reduceMax(_ a: Lanes) -> Double { Scalar.halfMax(Scalar.foldMax(Scalar.Half(repeating: -.infinity), a)) }
    @inlinable @inline(__always)
    package static func reduceMin(_ a: Lanes) -> Double { Scalar.halfMin(Scalar.foldMin(Scalar.Half(repeating: .infinity), a)) }
}

/// Vector-lane running statistics of one kernel call: extremes per lane, sums per lane flushed to Double every 64
/// vectors (as the reductions are blocked), the tail's real lanes added one by one. Every method is inlined: a
/// call that takes `self`'s address would keep the accumulator in memory, loaded and stored around every vector
/// (measured: statistics tripled the cost of an in-cache AVX-512 step).
@usableFromInline package struct StatsAccumulator<L: StatsLanes>: StatsSink {
    @usableFromInline package typealias Scalar = L.Scalar
    @usableFromInline package typealias T = L.Scalar
    @inlinable package static var collects: Bool { true }
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
    package init() {
        maxDirection = H(); minDenom = H(repeating: T.infinity); maxDenom = H()
        inverse = H(); mSquared = H(); vSquared = H(); stepSquared = H()
        vectors = 0
        total = KernelStats()
    }

    @inlinable @inline(__always)
    package mutating func add<P: ArithmeticPolicy>(_: P.Type, direction: T.Vector, denom: T.Vector, m: T.Vector, v: T.Vector,
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
    package mutating func finish(count: Int) -> KernelStats {
        if vectors > 0 { flush() }
        total.maxAbsDirection = Swift.max(total.maxAbsDirection, L.reduceMax(maxDirection))
        total.minDenom = Swift.min(total.minDenom, L.reduceMin(minDenom))
        total.maxDenom = Swift.max(total.maxDenom, L.reduceMax(maxDenom))
        total.count = Double(count)
        return total
    }
}
