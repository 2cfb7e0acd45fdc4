import CAdamCore

/// The optimization algorithms (the header's `adamcore_algorithm`).
public enum Algorithm: Int32, CaseIterable, Sendable {
    case adam = 1, adafix = 2, sgd = 3, rmsprop = 4, adagrad = 5
}

/// The option bits (the header's `adamcore_flag`).
public struct Flags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let maximize = Flags(rawValue: ADAMCORE_FLAG_MAXIMIZE.rawValue)
    public static let amsgrad = Flags(rawValue: ADAMCORE_FLAG_AMSGRAD.rawValue)
    public static let amsgradOptaxOrder = Flags(rawValue: ADAMCORE_FLAG_AMSGRAD_OPTAX_ORDER.rawValue)
    public static let decoupledWeightDecay = Flags(rawValue: ADAMCORE_FLAG_DECOUPLED_WEIGHT_DECAY.rawValue)
    public static let noBiasCorrection = Flags(rawValue: ADAMCORE_FLAG_NO_BIAS_CORRECTION.rawValue)
    public static let nesterov = Flags(rawValue: ADAMCORE_FLAG_NESTEROV.rawValue)
    public static let centered = Flags(rawValue: ADAMCORE_FLAG_CENTERED.rawValue)
    public static let adafixNextGradient = Flags(rawValue: ADAMCORE_FLAG_ADAFIX_NEXT_GRADIENT.rawValue)

    /// The flags each algorithm accepts.
    static func allowed(for algorithm: Algorithm) -> Flags {
        switch algorithm {
        case .adam: return [.maximize, .amsgrad, .amsgradOptaxOrder, .decoupledWeightDecay, .noBiasCorrection]
        case .adafix: return [.maximize, .decoupledWeightDecay, .noBiasCorrection, .adafixNextGradient]
        case .sgd: return [.maximize, .nesterov]
        case .rmsprop: return [.maximize, .centered]
        case .adagrad: return [.maximize]
        }
    }
}

/// The kinds of per-tensor state, with torch's names.
public enum StateSlot: String, CaseIterable, Sendable {
    case expAvg = "exp_avg", expAvgSq = "exp_avg_sq", maxExpAvgSq = "max_exp_avg_sq"
    case momentumBuffer = "momentum_buffer", squareAvg = "square_avg", gradAvg = "grad_avg", sum = "sum"
    case prevGrad = "prev_grad"

    /// The name as a static C string.
    public var cName: StaticString {
        switch self {
        case .expAvg: return "exp_avg"
        case .expAvgSq: return "exp_avg_sq"
        case .maxExpAvgSq: return "max_exp_avg_sq"
        case .momentumBuffer: return "momentum_buffer"
        case .squareAvg: return "square_avg"
        case .gradAvg: return "grad_avg"
        case .sum: return "sum"
        case .prevGrad: return "prev_grad"
        }
    }
}

/// Hyperparameters of one algorithm: the header's `adamcore_config`, with torch's defaults and Swift names.
/// A field an algorithm does not use must stay 0 (`validate` says which is wrong).
public struct Config: Sendable, Equatable {
    /// The C struct, shared with the C API.
    @usableFromInline package var raw: adamcore_config

    /// torch's defaults for `algorithm`.
    public init(_ algorithm: Algorithm) {
        var c = adamcore_config()
        c.struct_size = UInt32(MemoryLayout<adamcore_config>.size)
        c.algorithm = algorithm.rawValue
        switch algorithm {
        case .adam, .adafix:
            c.lr = 1e-3; c.beta1 = 0.9; c.beta2 = 0.999; c.eps = 1e-8
        case .sgd:
            c.lr = 1e-3
        case .rmsprop:
            c.lr = 1e-2; c.alpha = 0.99; c.eps = 1e-8
        case .adagrad:
            c.lr = 1e-2; c.eps = 1e-10
        }
        raw = c
    }

    /// Wraps a C config as it is (validate before use).
    package init(raw: adamcore_config) { self.raw = raw }

    /// Adam (torch.optim.Adam), or AMSGrad with `amsgrad: true`.
    public static func adam(lr: Double = 1e-3, betas: (Double, Double) = (0.9, 0.999), eps: Double = 1e-8,
                            weightDecay: Double = 0, amsgrad: Bool = false, maximize: Bool = false,
                            epsRoot: Double = 0, flags: Flags = []) -> Config {
        var c = Config(.adam)
        c.raw.lr = lr; c.raw.beta1 = betas.0; c.raw.beta2 = betas.1; c.raw.eps = eps
        c.raw.weight_decay = weightDecay; c.raw.eps_root = epsRoot
        c.flags = flags.union(amsgrad ? .amsgrad : []).union(maximize ? .maximize : [])
        return c
    }

    /// AdamW (torch.optim.AdamW): Adam with decoupled weight decay, default 1e-2.
    public static func adamW(lr: Double = 1e-3, betas: (Double, Double) = (0.9, 0.999), eps: Double = 1e-8,
                             weightDecay: Double = 1e-2, amsgrad: Bool = false, maximize: Bool = false) -> Config {
        adam(lr: lr, betas: betas, eps: eps, weightDecay: weightDecay, amsgrad: amsgrad, maximize: maximize,
             flags: .decoupledWeightDecay)
    }

    /// AdaFix (seed 001, Algorithm 1); `nextGradient: true` estimates L from the next step's gradient.
    public static func adafix(lr: Double = 1e-3, betas: (Double, Double) = (0.9, 0.999), eps: Double = 1e-8,
                              weightDecay: Double = 0, maximize: Bool = false, nextGradient: Bool = false,
                              flags: Flags = []) -> Config {
        var c = Config(.adafix)
        c.raw.lr = lr; c.raw.beta1 = betas.0; c.raw.beta2 = betas.1; c.raw.eps = eps; c.raw.weight_decay = weightDecay
        c.flags = flags.union(maximize ? .maximize : []).union(nextGradient ? .adafixNextGradient : [])
        return c
    }

    /// SGD (torch.optim.SGD).
    public static func sgd(lr: Double = 1e-3, momentum: Double = 0, dampening: Double = 0, weightDecay: Double = 0,
                           nesterov: Bool = false, maximize: Bool = false) -> Config {
        var c = Config(.sgd)
        c.raw.lr = lr; c.raw.momentum = momentum; c.raw.dampening = dampening; c.raw.weight_decay = weightDecay
        c.flags = (nesterov ? Flags.nesterov : []).union(maximize ? .maximize : [])
        return c
    }

    /// RMSprop (torch.optim.RMSprop).
    public static func rmsprop(lr: Double = 1e-2, alpha: Double = 0.99, eps: Double = 1e-8, weightDecay: Double = 0,
                               momentum: Double = 0, centered: Bool = false, maximize: Bool = false) -> Config {
        var c = Config(.rmsprop)
        c.raw.lr = lr; c.raw.alpha = alpha; c.raw.eps = eps; c.raw.weight_decay = weightDecay; c.raw.momentum = momentum
        c.flags = (centered ? Flags.centered : []).union(maximize ? .maximize : [])
        return c
    }

    /// AdaGrad (torch.optim.Adagrad).
    public static func adagrad(lr: Double = 1e-2, lrDecay: Double = 0, weightDecay: Double = 0,
                               initialAccumulatorValue: Double = 0, eps: Double = 1e-10,
                               maximize: Bool = false) -> Config {
        var c = Config(.adagrad)
        c.raw.lr = lr; c.raw.lr_decay = lrDecay; c.raw.weight_decay = weightDecay
        c.raw.initial_accumulator_value = initialAccumulatorValue; c.raw.eps = eps
        c.flags = maximize ? .maximize : []
        return c
    }

    /// The algorithm, or nil when the raw value is not one.
    public var algorithm: Algorithm? { Algorithm(rawValue: raw.algorithm) }
    public var flags: Flags {
        get { Flags(rawValue: raw.flags) }
        set { raw.flags = newValue.rawValue }
    }
    public var lr: Double {
        get { raw.lr }
        set { raw.lr = newValue }
    }
    /// Adam, AdaFix: the moments' decay rates.
    public var beta1: Double {
        get { raw.beta1 }
        set { raw.beta1 = newValue }
    }
    public var beta2: Double {
        get { raw.beta2 }
        set { raw.beta2 = newValue }
    }
    /// Added to the denominator (Adam, AdaFix, RMSprop, AdaGrad).
    public var eps: Double {
        get { raw.eps }
        set { raw.eps = newValue }
    }
    /// Adam: added inside the square root (optax's eps_root).
    public var epsRoot: Double {
        get { raw.eps_root }
        set { raw.eps_root = newValue }
    }
    /// L2 penalty, or with `.decoupledWeightDecay` AdamW's decoupled decay.
    public var weightDecay: Double {
        get { raw.weight_decay }
        set { raw.weight_decay = newValue }
    }
    /// SGD, RMSprop.
    public var momentum: Double {
        get { raw.momentum }
        set { raw.momentum = newValue }
    }
    /// SGD.
    public var dampening: Double {
        get { raw.dampening }
        set { raw.dampening = newValue }
    }
    /// RMSprop: the square average's smoothing constant.
    public var alpha: Double {
        get { raw.alpha }
        set { raw.alpha = newValue }
    }
    /// AdaGrad.
    public var lrDecay: Double {
        get { raw.lr_decay }
        set { raw.lr_decay = newValue }
    }
    public var initialAccumulatorValue: Double {
        get { raw.initial_accumulator_value }
        set { raw.initial_accumulator_value = newValue }
    }

    /// The same bytes: every field equal (+0 and -0 differ, as they would in a checkpoint).
    public static func == (a: Config, b: Config) -> Bool {
        withUnsafeBytes(of: a.raw) { x in withUnsafeBytes(of: b.raw) { y in x.elementsEqual(y) } }
    }

    /// Throws the first problem found, in the order of the header's fields.
    public func validate() throws(AdamCoreError) { _ = try ValidConfig(raw) }

    /// The state buffers a tensor needs with this config, in slot order.
    public func stateSlots() throws(AdamCoreError) -> [StateSlot] {
        let v = try ValidConfig(raw)
        return (0..<v.stateCount).map { v.slot($0) }
    }
}

/// A config that passed validation, with its algorithm and flags decoded. Everything that steps takes one.
@usableFromInline package struct ValidConfig: Sendable {
    @usableFromInline package let raw: adamcore_config
    @usableFromInline package let algorithm: Algorithm
    @usableFromInline package let flags: Flags

    @usableFromInline package init(_ c: adamcore_config) throws(AdamCoreError) {
        guard c.struct_size == UInt32(MemoryLayout<adamcore_config>.size) else { throw fail(ADAMCORE_E_STRUCT_SIZE) }
        guard let algorithm = Algorithm(rawValue: c.algorithm) else { throw fail(ADAMCORE_E_ALGORITHM) }
        guard c.reserved == 0 else { throw fail(ADAMCORE_E_RESERVED) }
        let flags = Flags(rawValue: c.flags)
        guard Flags.allowed(for: algorithm).isSuperset(of: flags) else { throw fail(ADAMCORE_E_FLAGS) }
        if flags.contains(.amsgradOptaxOrder) && !flags.contains(.amsgrad) { throw fail(ADAMCORE_E_FLAGS) }

        let isAdam = algorithm == .adam || algorithm == .adafix
        func check(_ x: Double, used: Bool, _ ok: (Double) -> Bool, _ status: adamcore_status) throws(AdamCoreError) {
            if used { guard x.isFinite && ok(x) else { throw fail(status) } } else { guard x == 0 else { throw fail(status) } }
        }
        let nonNegative: (Double) -> Bool = { $0 >= 0 }
        let unitOpen: (Double) -> Bool = { $0 >= 0 && $0 < 1 }
        let unitClosed: (Double) -> Bool = { $0 >= 0 && $0 <= 1 }
        try check(c.lr, used: true, nonNegative, ADAMCORE_E_LR)
        try check(c.beta1, used: isAdam, unitOpen, ADAMCORE_E_BETA1)
        try check(c.beta2, used: isAdam, unitOpen, ADAMCORE_E_BETA2)
        try check(c.eps, used: algorithm != .sgd, nonNegative, ADAMCORE_E_EPS)
        try check(c.eps_root, used: isAdam, nonNegative, ADAMCORE_E_EPS_ROOT)
        try check(c.weight_decay, used: true, nonNegative, ADAMCORE_E_WEIGHT_DECAY)
        try check(c.momentum, used: algorithm == .sgd || algorithm == .rmsprop, unitClosed, ADAMCORE_E_MOMENTUM)
        try check(c.dampening, used: algorithm == .sgd, unitClosed, ADAMCORE_E_DAMPENING)
        if flags.contains(.nesterov) {
            guard c.momentum > 0 else { throw fail(ADAMCORE_E_NESTEROV) }
            guard c.dampening == 0 else { throw fail(ADAMCORE_E_DAMPENING) }
        }
        try check(c.alpha, used: algorithm == .rmsprop, unitClosed, ADAMCORE_E_ALPHA)
        try check(c.lr_decay, used: algorithm == .adagrad, nonNegative, ADAMCORE_E_LR_DECAY)
        try check(c.initial_accumulator_value, used: algorithm == .adagrad, nonNegative, ADAMCORE_E_INITIAL_ACCUMULATOR)
        raw = c
        self.algorithm = algorithm
        self.flags = flags
    }

    /// Number of state buffers per tensor.
    @inlinable package var stateCount: Int {
        switch algorithm {
        case .adam: return flags.contains(.amsgrad) ? 3 : 2
        case .adafix: return flags.contains(.adafixNextGradient) ? 3 : 2
        case .sgd: return raw.momentum > 0 ? 1 : 0
        case .rmsprop: return 1 + (flags.contains(.centered) ? 1 : 0) + (raw.momentum > 0 ? 1 : 0)
        case .adagrad: return 1
        }
    }

    /// What slot `index` (< stateCount) holds.
    @usableFromInline package func slot(_ index: Int) -> StateSlot {
        switch algorithm {
        case .adam: return [.expAvg, .expAvgSq, .maxExpAvgSq][index]
        case .adafix: return [.expAvg, .expAvgSq, .prevGrad][index]
        case .sgd: return .momentumBuffer
        case .rmsprop:
            let slots: [StateSlot] = [.squareAvg] + (flags.contains(.centered) ? [.gradAvg] : [])
                + (raw.momentum > 0 ? [.momentumBuffer] : [])
            return slots[index]
        case .adagrad: return .sum
        }
    }

    /// The value a library-allocated state buffer starts with.
    @usableFromInline package var initialStateValue: Double { algorithm == .adagrad ? raw.initial_accumulator_value : 0 }

    /// Whether `other` can replace this config without changing any tensor's state layout.
    @usableFromInline package func hasSameLayout(as other: ValidConfig) -> Bool {
        guard algorithm == other.algorithm, stateCount == other.stateCount else { return false }
        return (0..<stateCount).allSatisfy { slot($0) == other.slot($0) }
    }
}
