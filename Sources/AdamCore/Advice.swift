import CAdamCore

/// Hyperparameter advice from the seeds' analyses: what a configuration implies before a single step is taken.
public struct Advisory: Sendable, Equatable {
    public enum Severity: Int32, Sendable, Comparable {
        case info = 0, notice = 1, warning = 2
        public static func < (a: Severity, b: Severity) -> Bool { a.rawValue < b.rawValue }
    }
    /// What the advisory is about (the C API's adamcore_advice_code, same values).
    public enum Code: Int32, Sendable, CaseIterable {
        case maxStep = 1, flatCrossing, beta1AboveSqrtBeta2, smallBeta2, spikeRegime, oscillationRegime,
             divergenceRegime, epsUnderflow
    }
    public let code: Code
    public let severity: Severity
    /// The figure the advisory is about (a bound in multiples of lr, a ratio, an eps).
    public let value: Double
    /// One sentence with the reason and the source; static storage (the C API returns it).
    public let message: StaticString

    public static func == (a: Advisory, b: Advisory) -> Bool {
        a.code == b.code && a.severity == b.severity && a.value.bitPattern == b.value.bitPattern
    }
}

/// The precision a run keeps its optimizer state in, for the eps advisory (the library computes in float32 and
/// float64; half precisions are what a caller may cast to).
public enum StatePrecision: Int32, Sendable {
    case float32 = 1, float64 = 2, float16 = 3, bfloat16 = 4

    /// The smallest positive value, below which eps rounds to 0, and the smallest normal one.
    var smallest: (subnormal: Double, normal: Double) {
        switch self {
        case .float16: return (0x1p-24, 0x1p-14)
        case .bfloat16: return (0x1p-133, 0x1p-126)
        case .float32: return (0x1p-149, 0x1p-126)
        case .float64: return (0x1p-1074, 0x1p-1022)
        }
    }
}

/// Advice for `config` (validated first). Adam and AdaFix get every advisory; RMSprop (Adam with beta1 = 0,
/// beta2 = alpha) the step bound and eps; SGD and AdaGrad only eps where they use it.
public func advise(_ config: Config, precision: StatePrecision = .float32) throws(AdamCoreError) -> [Advisory] {
    let c = try ValidConfig(config.raw)
    var out: [Advisory] = []
    func add(_ code: Advisory.Code, _ severity: Advisory.Severity, _ value: Double, _ message: StaticString) {
        out.append(Advisory(code: code, severity: severity, value: value, message: message))
    }
    let raw = c.raw
    let adamFamily = c.algorithm == .adam || c.algorithm == .adafix
    if adamFamily || c.algorithm == .rmsprop {
        let b1 = adamFamily ? raw.beta1 : 0, b2 = adamFamily ? raw.beta2 : raw.alpha
        let bound = proposition1Bound(beta1: b1, beta2: b2)
        if bound.isFinite {
            add(.maxStep, .info, bound,
                "largest possible step per element, in multiples of lr (seed 000, Proposition 1; 7.27 for the defaults)")
        }
        if adamFamily {
            let flat = proposition2Bound(beta1: b1, beta2: b2)
            if flat.isFinite {
                add(.flatCrossing, .info, flat,
                    "farthest distance crossed on a flat after the gradient vanishes, in multiples of lr (seed 000, Proposition 2; 73 for the defaults)")
            }
            if b1 >= b2.squareRoot() {
                add(.beta1AboveSqrtBeta2, .warning, b1 / b2.squareRoot(),
                    "beta1 >= sqrt(beta2): the step bounds of seed 000 (Propositions 1-2) are infinite and seed 002's convergence condition beta1 < sqrt(beta2) fails; value is beta1/sqrt(beta2)")
            }
            if b2 < 0.9 {
                add(.smallBeta2, .warning, b2,
                    "small beta2: seed 002's divergence region (its bound grows with 1-beta2; Reddi's problem diverges at beta2 <= 0.1 here); tune beta2 up first, then beta1 < sqrt(beta2)")
            } else if b2 < 0.99 {
                add(.smallBeta2, .notice, b2,
                    "beta2 below 0.99: seed 002's convergence neighbourhood grows with 1-beta2; consider 0.999 (tune beta2 first)")
            }
            if raw.lr > 0 {
                let a = (1 - b2) / raw.lr, b = (1 - b1) / raw.lr   // seed 003: the rates of v and m per unit of time
                let ratio = b / a
                if ratio >= 10 {
                    add(.spikeRegime, .notice, ratio,
                        "b = (1-beta1)/lr is 10x or more a = (1-beta2)/lr: seed 003's spike regime (loss spikes once converged); value is b/a")
                } else if ratio <= 0.1 {
                    add(.divergenceRegime, .warning, ratio,
                        "a = (1-beta2)/lr is 10x or more b = (1-beta1)/lr: seed 003's divergence regime (may diverge after a while); value is b/a")
                } else {
                    add(.oscillationRegime, .info, ratio,
                        "a = (1-beta2)/lr and b = (1-beta1)/lr within 10x: seed 003's oscillation regime (small, stable loss); value is b/a")
                }
            }
        }
    }
    if c.algorithm != .sgd {
        let eps = raw.eps
        if eps > 0 && eps < precision.smallest.subnormal / 2 {
            add(.epsUnderflow, .warning, eps,
                "eps rounds to 0 in this precision: a zero second moment divides by zero (fp16 needs eps >= 6e-8, better >= 1e-4)")
        } else if eps > 0 && eps < precision.smallest.normal {
            add(.epsUnderflow, .notice, eps,
                "eps is subnormal in this precision (fp16: below 6.1e-5): it keeps only a few bits and is slow on some hardware")
        }
    }
    return out
}
