import CAdamCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@usableFromInline package struct RMSpropCoefficients<T: KernelScalar> {
    @usableFromInline package var sign: T
    @usableFromInline package var l2: T
    @usableFromInline package var alpha: T
    @usableFromInline package var oneMinusAlpha: T
    @usableFromInline package var eps: T
    @usableFromInline package var momentum: T
    @usableFromInline package var negLr: T

    /// `gradScale`: the gradients arrive multiplied by it (AMP); the sign factor divides it out first.
    @inlinable
    package init(_ c: adamcore_config, gradScale: Double = 1) {
        sign = T(((c.flags & ADAMCORE_FLAG_MAXIMIZE.rawValue) != 0 ? -1 : 1) / gradScale)
        l2 = T(c.weight_decay)
        alpha = T(c.alpha)
        oneMinusAlpha = T(1 - c.alpha)
        eps = T(c.eps)
        momentum = T(c.momentum)
        negLr = T(-c.lr)
    }
}

@usableFromInline package struct RMSpropVariant: Equatable, Sendable {
    @usableFromInline package var hasL2: Bool
    @usableFromInline package var centered: Bool
    @usableFromInline package var momentum: Bool
    @usableFromInline package init(hasL2: Bool, centered: Bool, momentum: Bool) {
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
package func rmspropKernel<T: KernelScalar, P: ArithmeticPolicy>(
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
