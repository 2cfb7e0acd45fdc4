import CAdamCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Per-call options of `Optimizer.step` (the C API's adamcore_step_options).
public struct StepOptions: Sendable, Equatable {
    /// The gradients are the true gradients times this (AMP's loss scale); the step divides it out. Finite, > 0;
    /// exact for powers of two. Not for AdaFix, whose Lipschitz estimate compares gradients across steps.
    public var gradScale: Double
    /// Skip this step (AMP found an inf or NaN while unscaling): nothing is written, the step count stays.
    public var foundInf: Bool

    public init(gradScale: Double = 1, foundInf: Bool = false) {
        self.gradScale = gradScale
        self.foundInf = foundInf
    }

    func validate(for algorithm: Algorithm) throws(AdamCoreError) {
        guard gradScale.isFinite, gradScale > 0 else { throw fail(ADAMCORE_E_GRAD_SCALE) }
        if gradScale != 1, algorithm == .adafix { throw fail(ADAMCORE_E_ALGORITHM) }
    }
}

/// What a step did.
public enum StepOutcome: Sendable, Equatable {
    case applied
    /// Nothing was written: `StepOptions.foundInf` was set, or the guard found NaN or +-Inf in a gradient.
    case skipped
}
