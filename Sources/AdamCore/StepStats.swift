import CAdamCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One step's figures (seed 000's and 001's quantities), for a tensor or the whole optimizer.
public struct StepStats: Sendable, Equatable {
    /// The step these figures describe (0: none yet).
    public var step: Int64 = 0
    public var count = 0
    /// NaN and +-Inf values among the step's gradients.
    public var nonFiniteGradients = 0
    /// max |dp| / lr of the adaptive part of the step, |m_hat / (sqrt(v_hat) + eps)| (weight decay excluded).
    public var maxStepOverLR = 0.0
    /// Seed 000's Proposition 1 bound on that ratio: sqrt(b2)(1-b1)/sqrt((1-b2)(b2-b1^2)), +inf if b1^2 >= b2. It
    /// holds at every step with bias correction (the correction factor is <= 1, by AM-GM), not for AdaFix once v
    /// is frozen.
    public var stepBound = 0.0
    /// lr / (sqrt(v_hat) + eps) over the elements: smallest, largest and mean (the mean of float32 tensors sums the
    /// CPU's reciprocal estimate, within 4e-4 relative).
    public var minEffectiveLR = 0.0, maxEffectiveLR = 0.0, meanEffectiveLR = 0.0
    /// ||m||, ||v|| (the state after the step) and ||p_new - p_old|| (the whole step).
    public var mNorm = 0.0, vNorm = 0.0, stepNorm = 0.0
    /// AdaFix: whether this step held v fixed, and L after the step.
    public var adafixVFrozen = false
    public var lipschitz = 0.0

    public init(step: Int64 = 0) { self.step = step }

    init(_ k: KernelStats, config c: adamcore_config, step t: Int64, frozen: Bool, lipschitz: Double) {
        self.step = t
        count = Int(k.count)
        nonFiniteGradients = Int(k.nonFinite)
        let bias = (c.flags & ADAMCORE_FLAG_NO_BIAS_CORRECTION.rawValue) == 0
        let bc1 = bias ? 1 - pow(c.beta1, Double(t)) : 1
        maxStepOverLR = k.maxAbsDirection / bc1
        stepBound = proposition1Bound(beta1: c.beta1, beta2: c.beta2)
        if count > 0 {
            minEffectiveLR = c.lr / k.maxDenom
            maxEffectiveLR = c.lr / k.minDenom
            meanEffectiveLR = c.lr * k.inverseDenomSum / k.count
        }
        mNorm = k.mSquared.squareRoot()
        vNorm = k.vSquared.squareRoot()
        stepNorm = k.stepSquared.squareRoot()
        adafixVFrozen = frozen
        self.lipschitz = lipschitz
    }
}

/// Seed 000, Proposition 1: the largest step of Adam as a multiple of lr, sqrt(b2)(1-b1)/sqrt((1-b2)(b2-b1^2)).
public func proposition1Bound(beta1 b1: Double, beta2 b2: Double) -> Double {
    guard b1 * b1 < b2 else { return .infinity }
    return b2.squareRoot() * (1 - b1) / ((1 - b2) * (b2 - b1 * b1)).squareRoot()
}

/// Seed 000, Proposition 2: the farthest Adam travels across a flat, as a multiple of lr,
/// b2(1-b1) / ((sqrt(b2)-b1) sqrt((1-b2)(b2-b1^2))).
public func proposition2Bound(beta1 b1: Double, beta2 b2: Double) -> Double {
    guard b1 * b1 < b2 else { return .infinity }
    return b2 * (1 - b1) / ((b2.squareRoot() - b1) * ((1 - b2) * (b2 - b1 * b1)).squareRoot())
}
