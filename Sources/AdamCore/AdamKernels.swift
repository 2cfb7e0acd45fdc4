import CAdamCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The Adam family (Adam, AdamW, AMSGrad, AdaFix): coefficients, the loop, its variants. Statistics: StatsKernels.swift.

/// Per-step scalars of the Adam family, rounded once to T. The maximize sign is folded into them: with
/// h = g + s*wd*p (s = -1 to maximize), m <- beta1*m + s*(1-beta1)*h and v <- beta2*v + (1-beta2)*h^2 are exactly the
/// updates with the negated gradient (negation is exact), at no per-element cost.
@usableFromInline package struct AdamCoefficients<T: KernelScalar> {
    @usableFromInline package var signedL2: T             // s * weight_decay (L2 mode)
    @usableFromInline package var decay: T                // 1 - lr*wd (decoupled mode)
    @usableFromInline package var beta1: T
    @usableFromInline package var signedOneMinusBeta1: T  // s * (1 - beta1)
    @usableFromInline package var beta2: T
    @usableFromInline package var oneMinusBeta2: T
    @usableFromInline package var amsScale: T             // AMSGrad: max(vmax, v * amsScale); 1/bc2 in optax's order, 1 in torch's
    @usableFromInline package var denomScale: T           // sqrt(v' * denomScale + epsRoot) + eps
    @usableFromInline package var epsRoot: T
    @usableFromInline package var eps: T
    @usableFromInline package var negStepSize: T          // -lr / bc1

    /// `gradScale`: the gradients arrive multiplied by it (AMP's loss scale). With h' = g + s*wd*scale*p = scale*h,
    /// the updates take (1-beta1)/scale and (1-beta2)/scale^2 instead: for a power of two (every AMP scaler's) each
    /// product is exactly the one with the unscaled gradient, so the step is bitwise the unscaled step.
    @inlinable
    package init(_ c: adamcore_config, step: Int64, gradScale: Double = 1) {
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
@usableFromInline package struct AdamVariant: Equatable, Sendable {
    @usableFromInline package var hasL2: Bool
    @usableFromInline package var decoupled: Bool
    @usableFromInline package var amsgrad: Bool
    @usableFromInline package var updateV: Bool
    @usableFromInline package var trackStep: Bool
    @usableFromInline package var saveGradient: Bool
    @usableFromInline package init(hasL2: Bool, decoupled: Bool, amsgrad: Bool, updateV: Bool, trackStep: Bool, saveGradient: Bool) {
        self.hasL2 = hasL2; self.decoupled = decoupled; self.amsgrad = amsgrad; self.updateV = updateV
        self.trackStep = trackStep; self.saveGradient = saveGradient
    }
}

@inlinable @inline(__always)
func adamLoop<S: VectorStreams, T: KernelScalar, P: ArithmeticPolicy, A: StatsSink>(
    _: P.Type, _ s: S, _ n: Int, _ c: AdamCoefficients<T>,
    hasL2: Bool, decoupled: Bool, amsgrad: Bool, updateV: Bool, trackStep: Bool, saveGradient: Bool,
    stats _: A.Type
) -> (Double, KernelStats) where A.Scalar == T, S.Scalar == T {
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
    let result = forEachVector(P.self, s, count: n, states: states, accumulate: trackStep, statistics: collect) {
        s, i, valid in
        let g = s.grad(i)
        let old = s.param(i)
        let h = hasL2 ? P.multiplyAdd(signedL2, old, g) : g
        var p = decoupled ? old * decay : old
        let m = P.multiplyAdd(signedOneMinusBeta1, h, s.state(0, i) * beta1)   // beta1*m + (1-beta1)*g
        s.setState(0, i, m)
        var v = s.state(1, i)
        if updateV {
            v = P.multiplyAdd(oneMinusBeta2 * h, h, v * beta2)                  // beta2*v + (1-beta2)*g*g
            s.setState(1, i, v)
        }
        var vUsed = v
        if amsgrad {
            vUsed = T.vectorMaximum(s.state(2, i), v * amsScale)
            s.setState(2, i, vUsed)
        }
        let denom = T.vectorSqrt(P.multiplyAdd(vUsed, denomScale, epsRoot)) + eps
        let direction = m / denom
        p = P.multiplyAdd(negStepSize, direction, p)
        s.setParam(i, p)
        if saveGradient { s.setState(2, i, g) }
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

/// The Adam-family update with statistics (`adamKernel` with the same variant, writing `stats`): same bits.
@inlinable
package func adamStatsKernel<T: KernelScalar, P: ArithmeticPolicy>(
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
package func adamKernel<T: KernelScalar, P: ArithmeticPolicy>(
    _: P.Type, _ s: Streams<T>, _ n: Int, _ c: AdamCoefficients<T>, _ v: AdamVariant
) -> Double {
    adamDispatch(P.self, s, n, c, v, NoStats<T>.self).0
}

/// The variant's specialization of adamLoop, measuring with a sink of type `stats` (NoStats: nothing, compiled away);
/// returns the kernel result and the figures.
@inlinable
func adamDispatch<S: VectorStreams, T: KernelScalar, P: ArithmeticPolicy, A: StatsSink>(
    _: P.Type, _ s: S, _ n: Int, _ c: AdamCoefficients<T>, _ v: AdamVariant, _ stats: A.Type
) -> (Double, KernelStats) where A.Scalar == T, S.Scalar == T {
    v.trackStep ? adafixDispatch(P.self, s, n, c, v, stats) : adamFamilyDispatch(P.self, s, n, c, v, stats)
}

/// Adam / AdamW / AMSGrad: the six specializations without AdaFix's step tracking (`v.trackStep` false).
@inlinable
func adamFamilyDispatch<S: VectorStreams, T: KernelScalar, P: ArithmeticPolicy, A: StatsSink>(
    _: P.Type, _ s: S, _ n: Int, _ c: AdamCoefficients<T>, _ v: AdamVariant, _ stats: A.Type
) -> (Double, KernelStats) where A.Scalar == T, S.Scalar == T {
    switch (v.hasL2, v.decoupled, v.amsgrad) {
    case (false, false, false): return adamLoop(P.self, s, n, c, hasL2: false, decoupled: false, amsgrad: false, updateV: true, trackStep: false, saveGradient: false, stats: stats)
    case (false, false, true): return adamLoop(P.self, s, n, c, hasL2: false, decoupled: false, amsgrad: true, updateV: true, trackStep: false, saveGradient: false, stats: stats)
    case (true, _, false): return adamLoop(P.self, s, n, c, hasL2: true, decoupled: false, amsgrad: false, updateV: true, trackStep: false, saveGradient: false, stats: stats)
    case (true, _, true): return adamLoop(P.self, s, n, c, hasL2: true, decoupled: false, amsgrad: true, updateV: true, trackStep: false, saveGradient: false, stats: stats)
    case (false, true, false): return adamLoop(P.self, s, n, c, hasL2: false, decoupled: true, amsgrad: false, updateV: true, trackStep: false, saveGradient: false, stats: stats)
    case (false, true, true): return adamLoop(P.self, s, n, c, hasL2: false, decoupled: true, amsgrad: true, updateV: true, trackStep: false, saveGradient: false, stats: stats)
    }
}

/// AdaFix: weight-decay form x gate decision x next-gradient mode (`v.trackStep` true).
@inlinable
func adafixDispatch<S: VectorStreams, T: KernelScalar, P: ArithmeticPolicy, A: StatsSink>(
    _: P.Type, _ s: S, _ n: Int, _ c: AdamCoefficients<T>, _ v: AdamVariant, _ stats: A.Type
) -> (Double, KernelStats) where A.Scalar == T, S.Scalar == T {
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
