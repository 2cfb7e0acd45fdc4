import CAdamCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Reductions over gradients: AdaFix's gate and Lipschitz estimate, the non-finite guard.

/// max |a[i]|; NaN values are ignored.
@inlinable
package func maxAbsKernel<T: KernelScalar, P: ArithmeticPolicy>(_: P.Type, _ a: UnsafePointer<T>, _ n: Int) -> Double {
    let lanes = T.Vector.scalarCount
    let fullEnd = n &- n % lanes
    var best = T.Vector()
    var i = 0
    while i < fullEnd {
        let x: T.Vector = load(a, i)
        best = T.keepMax(best, T.vectorAbs(x))  // a NaN |x| keeps best
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
package func nonFiniteCountKernel<T: KernelScalar, P: ArithmeticPolicy>(_: P.Type, _ a: UnsafePointer<T>, _ n: Int) -> Double {
    let s = Streams(param: UnsafeMutablePointer(mutating: a), grad: a, s0: UnsafeMutablePointer(mutating: a),
                    s1: UnsafeMutablePointer(mutating: a), s2: UnsafeMutablePointer(mutating: a))
    return forEachVector(P.self, s, count: n, states: 0, readOnly: true, accumulate: true) { s, i, _ in
        T.vectorNonFinite(load(s.grad, i))
    }
}

/// sum (a[i] - b[i])^2, in the same blocked order as the update kernels.
@inlinable
package func diffNormSquaredKernel<T: KernelScalar, P: ArithmeticPolicy>(
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
