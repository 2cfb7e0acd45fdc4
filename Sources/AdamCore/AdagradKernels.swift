import CAdamCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@usableFromInline package struct AdagradCoefficients<T: KernelScalar> {
    @usableFromInline package var sign: T
    @usableFromInline package var l2: T
    @usableFromInline package var eps: T
    @usableFromInline package var negClr: T            // -lr / (1 + (step - 1) * lr_decay)

    /// `gradScale`: the gradients arrive multiplied by it (AMP); the sign factor divides it out first.
    @inlinable
    package init(_ c: adamcore_config, step: Int64, gradScale: Double = 1) {
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
package func adagradKernel<T: KernelScalar, P: ArithmeticPolicy>(
    _: P.Type, _ s: Streams<T>, _ n: Int, _ c: AdagradCoefficients<T>, hasL2: Bool
) -> Double {
    hasL2 ? adagradLoop(P.self, s, n, c, hasL2: true) : adagradLoop(P.self, s, n, c, hasL2: false)
}
