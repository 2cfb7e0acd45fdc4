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
@usableFromInline package struct Streams<T: KernelScalar> {
    @usableFromInline package var param: UnsafeMutablePointer<T>
    @usableFromInline package var grad: UnsafePointer<T>
    @usableFromInline package var s0: UnsafeMutablePointer<T>
    @usableFromInline package var s1: UnsafeMutablePointer<T>
    @usableFromInline package var s2: UnsafeMutablePointer<T>
    /// Whether the loops prefetch ahead of these buffers (the step streams from memory: prefetchesAhead(elements:)).
    @usableFromInline package var prefetchAhead: Bool

    @inlinable @inline(__always)
    package init(param: UnsafeMutablePointer<T>, grad: UnsafePointer<T>, s0: UnsafeMutablePointer<T>,
                s1: UnsafeMutablePointer<T>, s2: UnsafeMutablePointer<T>, prefetchAhead: Bool = false) {
        self.param = param; self.grad = grad; self.s0 = s0; self.s1 = s1; self.s2 = s2
        self.prefetchAhead = prefetchAhead
    }
}

/// How far ahead the loops prefetch, in elements: the same for every stream of a loop, so 2 KiB of a 32-bit
/// stream (1 KiB of a 16-bit one, 4 KiB of float64). 1 and 4 KiB measured about the same at 16M; 2 KiB best.
@usableFromInline package let prefetchElements = 512

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
@usableFromInline package let reductionBlock = 1024

/// What a kernel loop reads and writes, a vector at a time: `Streams` (buffers of the compute type itself) or, for
/// the fused mixed-precision Adam loop, `CodecStreams` (16-bit storage converted in registers, Precision.swift).
/// State slot `k` is a constant of each call site, so the switch over it folds away.
@usableFromInline package protocol VectorStreams {
    associatedtype Scalar: KernelScalar
    func param(_ i: Int) -> Scalar.Vector
    func setParam(_ i: Int, _ v: Scalar.Vector)
    func grad(_ i: Int) -> Scalar.Vector
    func state(_ k: Int, _ i: Int) -> Scalar.Vector
    func setState(_ k: Int, _ i: Int, _ v: Scalar.Vector)
    /// `body` on zero-padded copies of elements [start, start + count) (count < one vector), whose param (unless
    /// `readOnly`) and first `states` state slots are copied back afterwards.
    func tail<R>(from start: Int, count: Int, states: Int, readOnly: Bool, _ body: (Self) -> R) -> R
    /// Whether `forEachVector` calls `prefetch` before each vector.
    var prefetchAhead: Bool { get }
    /// Prefetches element i + prefetchElements of every stream the loop reads (param, grad, the first `states`
    /// slots, and whatever else these streams read).
    func prefetch(_ i: Int, states: Int)
    /// Elements (fewer than a vector) to run through `tail` first so that the vectors after them are 64-byte
    /// aligned (a cache line: an unaligned 64-byte access touches two); 0 where that cannot help.
    func alignmentPeel() -> Int
}

extension VectorStreams {
    @inlinable @inline(__always) package func alignmentPeel() -> Int { 0 }
}

extension Streams: VectorStreams {
    @usableFromInline package typealias Scalar = T
    @inlinable @inline(__always) package func param(_ i: Int) -> T.Vector { load(param, i) }
    @inlinable @inline(__always) package func setParam(_ i: Int, _ v: T.Vector) { store(param, i, v) }
    @inlinable @inline(__always) package func grad(_ i: Int) -> T.Vector { load(grad, i) }
    @inlinable @inline(__always) package func state(_ k: Int, _ i: Int) -> T.Vector { load(slot(2 + k), i) }
    @inlinable @inline(__always) package func setState(_ k: Int, _ i: Int, _ v: T.Vector) { store(slot(2 + k), i, v) }

    @inlinable @inline(__always)
    package func prefetch(_ i: Int, states: Int) {
        let ahead = i &+ prefetchElements
        adamcore_shim_prefetch(param + ahead)
        adamcore_shim_prefetch(grad + ahead)
        if states > 0 { adamcore_shim_prefetch(s0 + ahead) }
        if states > 1 { adamcore_shim_prefetch(s1 + ahead) }
        if states > 2 { adamcore_shim_prefetch(s2 + ahead) }
    }

    /// Aligns the first state slot (the parameter when there is none: absent slots point at it). numpy places every
    /// array of 16K elements or more 16 bytes past a page, as glibc's large allocations do, so a stateless call's
    /// buffers usually share one offset and all become aligned; library-owned state is aligned already.
    @inlinable @inline(__always)
    package func alignmentPeel() -> Int {
        let offset = Int(bitPattern: UnsafeRawPointer(s0)) & 63
        guard offset % MemoryLayout<T>.stride == 0 else { return 0 }
        return ((64 &- offset) & 63) / MemoryLayout<T>.stride
    }

    @inlinable @inline(__always)
    package func tail<R>(from start: Int, count rest: Int, states: Int, readOnly: Bool, _ body: (Streams<T>) -> R) -> R {
        let lanes = T.Vector.scalarCount
        return withUnsafeTemporaryAllocation(of: T.self, capacity: 5 * lanes) { scratch -> R in
            let base = scratch.baseAddress!
            base.initialize(repeating: 0, count: 5 * lanes)
            let t = Streams(param: base, grad: UnsafePointer(base + lanes), s0: base + 2 * lanes, s1: base + 3 * lanes,
                            s2: base + 4 * lanes)
            for k in 0..<(2 + states) { t.slot(k).update(from: slot(k) + start, count: rest) }
            let result = body(t)
            for k in 0..<(2 + states) where k != 1 && !(readOnly && k == 0) {
                (slot(k) + start).update(from: t.slot(k), count: rest)
            }
            return result
        }
    }
}

/// Runs `body(streams, index, validLanes)` over every vector of `count` elements and returns the Double sum of what
/// it returns (when `accumulate`; otherwise the results are dropped, which keeps a zero accumulator out of the hot
/// loop, and the loop prefetches when the streams' prefetchAhead says so). `validLanes` is the lane count except in
/// the tail, where only the first `validLanes` lanes are real.
/// The last partial vector goes through the same body on zero-padded copies (`VectorStreams.tail`); only its first
/// lanes are copied back (param, unless `readOnly`, and the first `states` state slots) and summed. The plain loop
/// (no sum, no statistics: nothing depends on which elements share a vector) first runs the few elements before
/// the next cache-line boundary the same way (`alignmentPeel`), so its vectors never straddle lines.
@inlinable @inline(__always)
func forEachVector<S: VectorStreams, P: ArithmeticPolicy>(
    _: P.Type, _ s: S, count n: Int, states: Int, readOnly: Bool = false, accumulate: Bool = false,
    statistics: Bool = false, _ body: (S, Int, Int) -> S.Scalar.Vector
) -> Double {
    let lanes = S.Scalar.Vector.scalarCount
    var total = 0.0
    var i = 0
    if !accumulate && !statistics && n > lanes {
        let peel = Swift.min(s.alignmentPeel(), n)
        if peel > 0 {
            s.tail(from: 0, count: peel, states: states, readOnly: readOnly) { t in _ = body(t, 0, peel) }
            i = peel
        }
    }
    let fullEnd = n &- (n &- i) % lanes
    // Prefetch when the streams ask for it, with one loop-invariant test per vector. Inline in the plain loop of the
    // plain kernels; where the body is large (`statistics`: it feeds a sink) and in the summing loop, through
    // one call: inline there too, the prefetches made the kernels too large for the inliner, which then outlined
    // adamLoop with its options as runtime flags. (The call costs nothing that shows from DRAM, the only place
    // the streams ask for prefetch.)
    let prefetch = s.prefetchAhead
    if !accumulate {
        while i < fullEnd {
            if prefetch {
                if statistics { prefetchOutOfLine(s, i, states) } else { s.prefetch(i, states: states) }
            }
            _ = body(s, i, lanes)
            i &+= lanes
        }
    }
    while i < fullEnd {
        let blockEnd = Swift.min(i &+ reductionBlock, fullEnd)
        var partial = S.Scalar.Vector()
        while i < blockEnd {
            if prefetch { prefetchOutOfLine(s, i, states) }
            partial += body(s, i, lanes)
            i &+= lanes
        }
        total += laneSum(partial, lanes: lanes)
    }
    let rest = n &- fullEnd
    guard rest > 0 else { return total }
    return s.tail(from: fullEnd, count: rest, states: states, readOnly: readOnly) { t -> Double in
        let contribution = body(t, 0, rest)
        guard accumulate else { return 0 }
        var tail = 0.0
        for lane in 0..<rest { tail += Double(contribution[lane]) }
        return total + tail
    }
}

/// `s.prefetch(i, states:)` as a call (see forEachVector).
@inlinable @inline(never)
func prefetchOutOfLine<S: VectorStreams>(_ s: S, _ i: Int, _ states: Int) { s.prefetch(i, states: states) }

extension Streams {
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
