// Plain float64 references, written from the published update rules (torch.optim's documentation, optax for
// eps_root and its AMSGrad order, seed 001's Algorithm 1 for AdaFix), one element at a time, in textbook form
// (beta * m + (1 - beta) * g rather than the kernels' lerp form). They share no code with the library.
import Foundation

struct RefOptions {
    var lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, epsRoot = 0.0, weightDecay = 0.0
    var decoupled = false, amsgrad = false, optaxOrder = false, maximize = false, biasCorrection = true
    var momentum = 0.0, dampening = 0.0, nesterov = false
    var alpha = 0.99, centered = false
    var lrDecay = 0.0, initialAccumulator = 0.0
}

/// Adam / AdamW / AMSGrad, and AdaFix's update when `updateV` is false.
struct RefAdam {
    var o: RefOptions
    var m: [Double], v: [Double], vmax: [Double]

    init(_ o: RefOptions, count: Int) {
        self.o = o
        m = Array(repeating: 0, count: count); v = m; vmax = m
    }

    mutating func step(_ p: inout [Double], _ grad: [Double], t: Int, updateV: Bool = true) {
        let bc1 = o.biasCorrection ? 1 - pow(o.beta1, Double(t)) : 1
        let bc2 = o.biasCorrection ? 1 - pow(o.beta2, Double(t)) : 1
        for i in p.indices {
            var g = o.maximize ? -grad[i] : grad[i]
            if o.weightDecay != 0 && !o.decoupled { g += o.weightDecay * p[i] }
            if o.decoupled { p[i] *= 1 - o.lr * o.weightDecay }
            m[i] = o.beta1 * m[i] + (1 - o.beta1) * g
            if updateV { v[i] = o.beta2 * v[i] + (1 - o.beta2) * g * g }
            let vhat: Double
            if o.amsgrad && o.optaxOrder {
                vmax[i] = max(vmax[i], v[i] / bc2); vhat = vmax[i]
            } else if o.amsgrad {
                vmax[i] = max(vmax[i], v[i]); vhat = vmax[i] / bc2
            } else {
                vhat = v[i] / bc2
            }
            p[i] -= o.lr * (m[i] / bc1) / ((vhat + o.epsRoot).squareRoot() + o.eps)
        }
    }
}

struct RefSGD {
    var o: RefOptions
    var buf: [Double]
    init(_ o: RefOptions, count: Int) { self.o = o; buf = Array(repeating: 0, count: count) }

    mutating func step(_ p: inout [Double], _ grad: [Double], t: Int) {
        for i in p.indices {
            var g = o.maximize ? -grad[i] : grad[i]
            if o.weightDecay != 0 { g += o.weightDecay * p[i] }
            if o.momentum != 0 {
                buf[i] = t == 1 ? g : o.momentum * buf[i] + (1 - o.dampening) * g
                g = o.nesterov ? g + o.momentum * buf[i] : buf[i]
            }
            p[i] -= o.lr * g
        }
    }
}

struct RefRMSprop {
    var o: RefOptions
    var sq: [Double], gavg: [Double], buf: [Double]
    init(_ o: RefOptions, count: Int) {
        self.o = o; sq = Array(repeating: 0, count: count); gavg = sq; buf = sq
    }

    mutating func step(_ p: inout [Double], _ grad: [Double], t: Int) {
        for i in p.indices {
            var g = o.maximize ? -grad[i] : grad[i]
            if o.weightDecay != 0 { g += o.weightDecay * p[i] }
            sq[i] = o.alpha * sq[i] + (1 - o.alpha) * g * g
            var avg: Double
            if o.centered {
                gavg[i] = o.alpha * gavg[i] + (1 - o.alpha) * g
                avg = max(sq[i] - gavg[i] * gavg[i], 0).squareRoot()
            } else {
                avg = sq[i].squareRoot()
            }
            avg += o.eps
            if o.momentum > 0 {
                buf[i] = o.momentum * buf[i] + g / avg
                p[i] -= o.lr * buf[i]
            } else {
                p[i] -= o.lr * g / avg
            }
        }
    }
}

struct RefAdagrad {
    var o: RefOptions
    var sum: [Double]
    init(_ o: RefOptions, count: Int) { self.o = o; sum = Array(repeating: o.initialAccumulator, count: count) }

    mutating func step(_ p: inout [Double], _ grad: [Double], t: Int) {
        let clr = o.lr / (1 + Double(t - 1) * o.lrDecay)
        for i in p.indices {
            var g = o.maximize ? -grad[i] : grad[i]
            if o.weightDecay != 0 { g += o.weightDecay * p[i] }
            sum[i] += g * g
            p[i] -= clr * g / (sum[i].squareRoot() + o.eps)
        }
    }
}

/// A deterministic generator (xorshift64*), so every failure reproduces.
struct Rng {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next() -> UInt64 {
        state ^= state >> 12; state ^= state << 25; state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
    /// Uniform in [-1, 1).
    mutating func symmetric() -> Double { Double(next() >> 11) / Double(1 << 52) - 1 }
    mutating func vector(_ n: Int, scale: Double = 1) -> [Double] { (0..<n).map { _ in scale * symmetric() } }
}
