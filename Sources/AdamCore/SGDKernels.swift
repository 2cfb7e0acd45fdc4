import CAdamCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@usableFromInline package struct SGDCoefficients<T: KernelScalar> {
    @usableFromInline package var sign: T
    @usableFromInline package var l2: T
    @usableFromInline package var momentum: T
    @usableFromInline package var oneMinusDampening: T
    @usableFromInline package var negLr: T

    /// `gradScale`: the gradients arrive multiplied by it (AMP); the sign factor divides it out first.
    @inlinable
    package init(_ c: adamcore_config, gradScale: Double = 1) {
        sign = T(((c.flags & ADAMCORE_FLAG_MAXIMIZE.rawValue) != 0 ? -1 : 1) / gradScale)
        l2 = T(c.weight_decay)
        momentum = T(c.momentum)
        oneMinusDampening = T(1 - c.dampening)
        negLr = T(-c.lr)
    }
}

@usableFromInline package struct SGDVariant: Equatable, Sendable {
    @usableFromInline package var hasL2: Bool
    @usableFromInline package var momentum: Bool
    @usableFromInline package var firstStep: Bool     // torch's first step: the buffer becomes a copy of the gradient
    @usableFromInline package var nesterov: Bool
    @usableFromInline package init(hasL2: Bool, momentum: Bool, firstStep: Bool, nesterov: Bool) {
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
package func sgdKernel<T: KernelScalar, P: ArithmeticPolicy>(
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
