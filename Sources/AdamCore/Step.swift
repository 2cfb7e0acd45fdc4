import CAdamCore

/// What an AdaFix step decided and measured (the C API's adamcore_adafix_result).
public struct AdaFixResult: Sendable, Equatable {
    /// max |g| over the buffer: the gate's left side.
    public var maxAbsGrad: Double
    /// ||x_{t+1} - x_t||^2, as the parameters actually moved.
    public var stepNormSquared: Double
    /// Whether v was updated (max|g| >= L * lr) or held fixed.
    public var vUpdated: Bool

    public init(maxAbsGrad: Double, stepNormSquared: Double, vUpdated: Bool) {
        self.maxAbsGrad = maxAbsGrad; self.stepNormSquared = stepNormSquared; self.vUpdated = vUpdated
    }

    /// The C struct (reserved field zero).
    package var raw: adamcore_adafix_result {
        adamcore_adafix_result(max_abs_grad: maxAbsGrad, step_norm_sq: stepNormSquared, v_updated: vUpdated ? 1 : 0,
                               reserved: 0)
    }
}

/// Stateless steps: one in-place update of one caller-owned buffer set. Every function validates all of its
/// arguments before it writes anything, and throws the header's status on any problem (nothing has been modified
/// then). A call is a plan of one tensor on the optimizer's executor (`StepJob.runOne`): its buffers are checked as
/// a registration's are (`TensorBuffers`), and the coefficients, kernels and work items are the optimizer's, so a
/// stateless step gives the optimizer object's bits.
///
/// The pointer forms mirror the C API (whose exports call the same raw paths, `plainUpdate` and its siblings, with
/// the CPU's kernel tier); the buffer-pointer forms check that all buffers have the gradient's length; the array
/// forms take the state as the config's slots in order (`makeState`).
public enum Step {
    // MARK: Any layout

    /// One step of a tensor of any layout (the C API's adamcore_step_desc): Adam, AdamW, AMSGrad, SGD, RMSprop,
    /// AdaGrad. `state` holds the config's slots, in its state dtype; master weights are the caller's. `seed` keys
    /// stochastic rounding with `step` (tensor index 0). AdaFix needs its gate and L across calls: the optimizer.
    public static func update(_ config: Config, step: Int64, layout: TensorLayout, count: Int,
                              param: UnsafeMutableRawPointer?, grad: UnsafeRawPointer?,
                              state: UnsafePointer<UnsafeMutableRawPointer?>?, stateCount: Int,
                              master: UnsafeMutablePointer<Float>? = nil, copy: UnsafeMutableRawPointer? = nil,
                              seed: UInt64 = 0) throws(AdamCoreError) {
        try update(config.raw, step: step, layout: layout, count: count, param: param, grad: grad, state: state,
                   stateCount: stateCount, master: master, copy: copy, seed: seed, kernels: .baseline)
    }

    /// The same with a C config and a kernel tier: the C API's path.
    package static func update(_ config: adamcore_config, step: Int64, layout: TensorLayout, count: Int,
                              param: UnsafeMutableRawPointer?, grad: UnsafeRawPointer?,
                              state: UnsafePointer<UnsafeMutableRawPointer?>?, stateCount: Int,
                              master: UnsafeMutablePointer<Float>? = nil, copy: UnsafeMutableRawPointer? = nil,
                              seed: UInt64, kernels: KernelSet) throws(AdamCoreError) {
        let c = try ValidConfig(config)
        guard c.algorithm != .adafix else { throw fail(ADAMCORE_E_ALGORITHM) }
        guard step >= 1 else { throw fail(ADAMCORE_E_STEP) }
        guard grad != nil else { throw fail(ADAMCORE_E_NULL_POINTER) }
        guard c.stateCount == 0 || state != nil else { throw fail(ADAMCORE_E_STATE) }
        let tensor = try callerTensor(layout, count, param, grad, state: state.map { StateSlots($0, count: stateCount) },
                                      stateCount: stateCount, slots: c.stateCount, master: master, copy: copy)
        _ = StepJob.runOne(.update, tensor, grad: grad!, coefficients: coefficients(c, step, tensor), step: step,
                           seed: seed, kernels: kernels)
    }

    // MARK: Pointer forms (one dtype)
    // Inlinable wrappers that only convert pointers for the portable kernels; everything else is the non-generic
    // raw path below (an unspecialized generic call costs metadata lookups on every call), which the C exports call
    // with the CPU's kernel tier.

    /// Adam / AdamW / AMSGrad (`maxExpAvgSq` exactly when the config has `.amsgrad`).
    @inlinable
    public static func adam<T: Steppable>(
        _ config: Config, step: Int64, count: Int, param: UnsafeMutablePointer<T>?, grad: UnsafePointer<T>?,
        expAvg: UnsafeMutablePointer<T>?, expAvgSq: UnsafeMutablePointer<T>?, maxExpAvgSq: UnsafeMutablePointer<T>?
    ) throws(AdamCoreError) {
        try plainUpdate(config.raw, .adam, step, count, T.storage, UnsafeMutableRawPointer(param), UnsafeRawPointer(grad),
                        StateSlots(expAvg, expAvgSq, maxExpAvgSq), .baseline)
    }

    /// AdaFix on a buffer set that is the whole model: v is updated only if max|grad| >= lipschitz * lr.
    @inlinable
    public static func adafix<T: Steppable>(
        _ config: Config, step: Int64, count: Int, param: UnsafeMutablePointer<T>?, grad: UnsafePointer<T>?,
        expAvg: UnsafeMutablePointer<T>?, expAvgSq: UnsafeMutablePointer<T>?, lipschitz: Double
    ) throws(AdamCoreError) -> AdaFixResult {
        try plainAdafix(config.raw, step, count, T.storage, UnsafeMutableRawPointer(param), UnsafeRawPointer(grad),
                        StateSlots(expAvg, expAvgSq), lipschitz, .baseline)
    }

    /// L = max(L, ||newGrad - grad|| / sqrt(stepNormSquared)); unchanged when stepNormSquared is 0.
    @inlinable
    public static func adafixLipschitz<T: Steppable>(
        count: Int, grad: UnsafePointer<T>?, newGrad: UnsafePointer<T>?, stepNormSquared: Double, lipschitz: Double
    ) throws(AdamCoreError) -> Double {
        try plainLipschitz(count, T.storage, UnsafeRawPointer(grad), UnsafeRawPointer(newGrad), stepNormSquared,
                           lipschitz, .baseline)
    }

    /// SGD (`momentumBuffer` exactly when momentum > 0; at step 1 it is overwritten with the gradient).
    @inlinable
    public static func sgd<T: Steppable>(
        _ config: Config, step: Int64, count: Int, param: UnsafeMutablePointer<T>?, grad: UnsafePointer<T>?,
        momentumBuffer: UnsafeMutablePointer<T>?
    ) throws(AdamCoreError) {
        try plainUpdate(config.raw, .sgd, step, count, T.storage, UnsafeMutableRawPointer(param), UnsafeRawPointer(grad),
                        StateSlots(momentumBuffer), .baseline)
    }

    /// RMSprop (`gradAvg` exactly when centered, `momentumBuffer` exactly when momentum > 0).
    @inlinable
    public static func rmsprop<T: Steppable>(
        _ config: Config, step: Int64, count: Int, param: UnsafeMutablePointer<T>?, grad: UnsafePointer<T>?,
        squareAvg: UnsafeMutablePointer<T>?, gradAvg: UnsafeMutablePointer<T>?, momentumBuffer: UnsafeMutablePointer<T>?
    ) throws(AdamCoreError) {
        try plainRMSprop(config.raw, step, count, T.storage, UnsafeMutableRawPointer(param), UnsafeRawPointer(grad),
                         UnsafeMutableRawPointer(squareAvg), UnsafeMutableRawPointer(gradAvg),
                         UnsafeMutableRawPointer(momentumBuffer), .baseline)
    }

    /// AdaGrad.
    @inlinable
    public static func adagrad<T: Steppable>(
        _ config: Config, step: Int64, count: Int, param: UnsafeMutablePointer<T>?, grad: UnsafePointer<T>?,
        stateSum: UnsafeMutablePointer<T>?
    ) throws(AdamCoreError) {
        try plainUpdate(config.raw, .adagrad, step, count, T.storage, UnsafeMutableRawPointer(param), UnsafeRawPointer(grad),
                        StateSlots(stateSum), .baseline)
    }

    // MARK: Buffer-pointer forms (Swift)

    public static func adam<T: Steppable>(
        _ config: Config, step: Int64, param: UnsafeMutableBufferPointer<T>, grad: UnsafeBufferPointer<T>,
        expAvg: UnsafeMutableBufferPointer<T>, expAvgSq: UnsafeMutableBufferPointer<T>,
        maxExpAvgSq: UnsafeMutableBufferPointer<T>? = nil
    ) throws(AdamCoreError) {
        try sameLength(grad.count, param.count, expAvg.count, expAvgSq.count, maxExpAvgSq?.count)
        try adam(config, step: step, count: grad.count, param: param.baseAddress, grad: grad.baseAddress,
                 expAvg: expAvg.baseAddress, expAvgSq: expAvgSq.baseAddress, maxExpAvgSq: maxExpAvgSq?.baseAddress)
    }

    public static func sgd<T: Steppable>(
        _ config: Config, step: Int64, param: UnsafeMutableBufferPointer<T>, grad: UnsafeBufferPointer<T>,
        momentumBuffer: UnsafeMutableBufferPointer<T>? = nil
    ) throws(AdamCoreError) {
        try sameLength(grad.count, param.count, momentumBuffer?.count)
        try sgd(config, step: step, count: grad.count, param: param.baseAddress, grad: grad.baseAddress,
                momentumBuffer: momentumBuffer?.baseAddress)
    }

    public static func rmsprop<T: Steppable>(
        _ config: Config, step: Int64, param: UnsafeMutableBufferPointer<T>, grad: UnsafeBufferPointer<T>,
        squareAvg: UnsafeMutableBufferPointer<T>, gradAvg: UnsafeMutableBufferPointer<T>? = nil,
        momentumBuffer: UnsafeMutableBufferPointer<T>? = nil
    ) throws(AdamCoreError) {
        try sameLength(grad.count, param.count, squareAvg.count, gradAvg?.count, momentumBuffer?.count)
        try rmsprop(config, step: step, count: grad.count, param: param.baseAddress, grad: grad.baseAddress,
                    squareAvg: squareAvg.baseAddress, gradAvg: gradAvg?.baseAddress,
                    momentumBuffer: momentumBuffer?.baseAddress)
    }

    public static func adagrad<T: Steppable>(
        _ config: Config, step: Int64, param: UnsafeMutableBufferPointer<T>, grad: UnsafeBufferPointer<T>,
        stateSum: UnsafeMutableBufferPointer<T>
    ) throws(AdamCoreError) {
        try sameLength(grad.count, param.count, stateSum.count)
        try adagrad(config, step: step, count: grad.count, param: param.baseAddress, grad: grad.baseAddress,
                    stateSum: stateSum.baseAddress)
    }

    public static func adafix<T: Steppable>(
        _ config: Config, step: Int64, param: UnsafeMutableBufferPointer<T>, grad: UnsafeBufferPointer<T>,
        expAvg: UnsafeMutableBufferPointer<T>, expAvgSq: UnsafeMutableBufferPointer<T>, lipschitz: Double
    ) throws(AdamCoreError) -> AdaFixResult {
        try sameLength(grad.count, param.count, expAvg.count, expAvgSq.count)
        return try adafix(config, step: step, count: grad.count, param: param.baseAddress,
                          grad: grad.baseAddress, expAvg: expAvg.baseAddress, expAvgSq: expAvgSq.baseAddress,
                          lipschitz: lipschitz)
    }

    // MARK: Array forms (Swift)

    /// Fresh state for `config`: one array per slot, in slot order (zeros; AdaGrad's initial_accumulator_value).
    public static func makeState<T: Steppable>(for config: Config, count: Int, as _: T.Type = T.self)
        throws(AdamCoreError) -> [[T]] {
        let c = try ValidConfig(config.raw)
        return Array(repeating: Array(repeating: T(c.initialStateValue), count: count), count: c.stateCount)
    }

    /// One step of any algorithm but AdaFix on arrays; `state` holds the config's slots in order (`makeState`).
    public static func step<T: Steppable>(
        _ config: Config, step: Int64, param: inout [T], grad: [T], state: inout [[T]]
    ) throws(AdamCoreError) {
        let c = try ValidConfig(config.raw)
        guard c.algorithm != .adafix else { throw fail(ADAMCORE_E_ALGORITHM) }  // use adafix(_:step:param:...)
        guard state.count == c.stateCount else { throw fail(ADAMCORE_E_STATE) }
        try sameLength(grad.count, param.count)
        for slot in state where slot.count != grad.count { throw fail(ADAMCORE_E_LENGTH) }
        let outcome: Result<Void, AdamCoreError> = withArrays(&param, grad, &state) { (p, g, s) throws(AdamCoreError) in
            try plainUpdate(config.raw, c.algorithm, step, grad.count, T.storage, p, g, s, .baseline)
        }
        try outcome.get()
    }

    /// AdaFix on arrays that are the whole model (state: exp_avg, exp_avg_sq); see the pointer form.
    public static func adafix<T: Steppable>(
        _ config: Config, step: Int64, param: inout [T], grad: [T], state: inout [[T]], lipschitz: Double
    ) throws(AdamCoreError) -> AdaFixResult {
        guard state.count == 2 else { throw fail(ADAMCORE_E_STATE) }
        try sameLength(grad.count, param.count, state[0].count, state[1].count)
        let outcome: Result<AdaFixResult, AdamCoreError> = withArrays(&param, grad, &state) { (p, g, s) throws(AdamCoreError) in
            try plainAdafix(config.raw, step, grad.count, T.storage, p, g, s, lipschitz, .baseline)
        }
        return try outcome.get()
    }

    /// Runs `body` with the base addresses of param, grad and up to three state arrays (nil for absent slots).
    private static func withArrays<T, R>(
        _ param: inout [T], _ grad: [T], _ state: inout [[T]],
        _ body: (UnsafeMutableRawPointer?, UnsafeRawPointer?, StateSlots) throws(AdamCoreError) -> R
    ) -> Result<R, AdamCoreError> {
        func call(_ s: StateSlots) -> Result<R, AdamCoreError> {
            param.withUnsafeMutableBytes { p in
                grad.withUnsafeBytes { g in
                    do throws(AdamCoreError) { return .success(try body(p.baseAddress, g.baseAddress, s)) } catch {
                        return .failure(error)
                    }
                }
            }
        }
        return state.withUnsafeMutableBufferPointer { slots in
            func nest(_ k: Int, _ s: StateSlots) -> Result<R, AdamCoreError> {
                guard k < slots.count else { return call(s) }
                return slots[k].withUnsafeMutableBytes { bytes in
                    var next = s
                    next[k] = bytes.baseAddress
                    return nest(k + 1, next)
                }
            }
            return nest(0, StateSlots())
        }
    }

    // MARK: The one-tensor plan

    /// adafixLipschitz's raw path: both gradients are only read, so they may overlap; they must be valid buffers.
    @usableFromInline
    package static func plainLipschitz(_ count: Int, _ dtype: DType, _ grad: UnsafeRawPointer?, _ newGrad: UnsafeRawPointer?,
                               _ stepNormSquared: Double, _ lipschitz: Double, _ kernels: KernelSet)
        throws(AdamCoreError) -> Double {
        guard lipschitz.isFinite, lipschitz >= 0 else { throw fail(ADAMCORE_E_LIPSCHITZ) }
        guard stepNormSquared.isFinite, stepNormSquared >= 0 else { throw fail(ADAMCORE_E_NONFINITE) }
        _ = try dtype.range(grad, count)
        _ = try dtype.range(newGrad, count)
        let diff = StepJob.runOne(.difference, readTensor(dtype, count, grad!), grad: grad!, other: newGrad!,
                                  kernels: kernels)
        return try raiseLipschitz(lipschitz, diffNormSquared: diff, stepNormSquared: stepNormSquared)
    }

    /// rmsprop's raw path: the one place the named buffers become slots (square_avg, then grad_avg when centered,
    /// then the momentum buffer: ValidConfig.slot). Each must be given exactly when the config uses it.
    @usableFromInline
    package static func plainRMSprop(
        _ config: adamcore_config, _ step: Int64, _ count: Int, _ dtype: DType, _ param: UnsafeMutableRawPointer?,
        _ grad: UnsafeRawPointer?, _ squareAvg: UnsafeMutableRawPointer?, _ gradAvg: UnsafeMutableRawPointer?,
        _ momentumBuffer: UnsafeMutableRawPointer?, _ kernels: KernelSet
    ) throws(AdamCoreError) {
        let c = try validated(config, for: .rmsprop, step: step)
        let centered = c.flags.contains(.centered), momentum = config.momentum > 0
        guard squareAvg != nil, gradAvg != nil || !centered, momentumBuffer != nil || !momentum else {
            throw fail(ADAMCORE_E_NULL_POINTER)
        }
        guard gradAvg == nil || centered, momentumBuffer == nil || momentum else { throw fail(ADAMCORE_E_STATE) }
        let slots = centered ? StateSlots(squareAvg, gradAvg, momentumBuffer) : StateSlots(squareAvg, momentumBuffer)
        try plainUpdate(config, .rmsprop, step, count, dtype, param, grad, slots, kernels)
    }

    /// A typed call of `algorithm` (any but AdaFix): the config, then the buffers (`plainTensor`), then the update.
    @usableFromInline
    package static func plainUpdate(
        _ config: adamcore_config, _ algorithm: Algorithm, _ step: Int64, _ count: Int, _ dtype: DType,
        _ param: UnsafeMutableRawPointer?, _ grad: UnsafeRawPointer?, _ slots: StateSlots, _ kernels: KernelSet
    ) throws(AdamCoreError) {
        let c = try validated(config, for: algorithm, step: step)
        let tensor = try plainTensor(c, count, dtype, param, grad, slots)
        _ = StepJob.runOne(.update, tensor, grad: grad!, coefficients: coefficients(c, step, tensor), kernels: kernels)
    }

    /// A typed AdaFix call: the gate (max|g| against L * lr, seed 001 Algorithm 1 line 4), then the update, which
    /// holds v when the gate is closed and measures ||dx||^2.
    @usableFromInline
    package static func plainAdafix(
        _ config: adamcore_config, _ step: Int64, _ count: Int, _ dtype: DType, _ param: UnsafeMutableRawPointer?,
        _ grad: UnsafeRawPointer?, _ slots: StateSlots, _ lipschitz: Double, _ kernels: KernelSet
    ) throws(AdamCoreError) -> AdaFixResult {
        let c = try validated(config, for: .adafix, step: step)
        // The next-gradient mode needs the optimizer object, which keeps the previous gradient.
        guard !c.flags.contains(.adafixNextGradient) else { throw fail(ADAMCORE_E_FLAGS) }
        guard lipschitz.isFinite, lipschitz >= 0 else { throw fail(ADAMCORE_E_LIPSCHITZ) }
        let tensor = try plainTensor(c, count, dtype, param, grad, slots)
        let maxAbs = StepJob.runOne(.maxAbs, tensor, grad: grad!, kernels: kernels)
        let update = adafixGate(maxAbsGrad: maxAbs, lipschitz: lipschitz, lr: config.lr)
        let norm = StepJob.runOne(.update, tensor, grad: grad!,
                                  coefficients: coefficients(c, step, tensor, updateV: update), kernels: kernels)
        return AdaFixResult(maxAbsGrad: maxAbs, stepNormSquared: norm, vUpdated: update)
    }

    /// The buffers of a typed call: param and grad given, exactly the config's first stateCount slots given (a
    /// missing one is NULL_POINTER, an extra one STATE), then every check of a registration.
    private static func plainTensor(_ c: ValidConfig, _ count: Int, _ dtype: DType, _ param: UnsafeMutableRawPointer?,
                                    _ grad: UnsafeRawPointer?, _ slots: StateSlots) throws(AdamCoreError) -> Tensor {
        guard param != nil, grad != nil else { throw fail(ADAMCORE_E_NULL_POINTER) }
        func check(_ k: Int, _ slot: UnsafeMutableRawPointer?) throws(AdamCoreError) {
            if (k < c.stateCount) != (slot != nil) { throw fail(slot != nil ? ADAMCORE_E_STATE : ADAMCORE_E_NULL_POINTER) }
        }
        for k in 0..<StateSlots.capacity { try check(k, slots[k]) }
        return try callerTensor(.plain(dtype), count, param, grad, state: slots, stateCount: c.stateCount,
                                slots: c.stateCount, master: nil, copy: nil)
    }

    /// A caller-owned tensor for one call, its buffers checked by TensorBuffers (master weights required when the
    /// layout has them).
    private static func callerTensor(
        _ layout: TensorLayout, _ count: Int, _ param: UnsafeMutableRawPointer?, _ grad: UnsafeRawPointer?,
        state: StateSlots?, stateCount: Int, slots: Int, master: UnsafeMutablePointer<Float>?,
        copy: UnsafeMutableRawPointer?
    ) throws(AdamCoreError) -> Tensor {
        let b = try TensorBuffers(layout: layout, count: count, param: param, grad: grad, state: state,
                                  stateCount: stateCount, slots: slots, master: master, masterRequired: true, copy: copy)
        return Tensor(layout: layout, group: 0, count: count, param: param!, grad: grad, state: state ?? StateSlots(),
                      master: master, copy: copy, stateCount: slots, ownsState: false, ownsMaster: false,
                      ownRanges: (b.param, b.range(2), b.range(3), b.range(4), b.master, b.copy), gradRange: b.grad)
    }

    /// A tensor that a reduction only reads: `data` (its parameter field is never written through).
    private static func readTensor(_ dtype: DType, _ count: Int, _ data: UnsafeRawPointer) -> Tensor {
        Tensor(layout: .plain(dtype), group: 0, count: count, param: UnsafeMutableRawPointer(mutating: data), grad: data,
               state: StateSlots(), master: nil, copy: nil, stateCount: 0, ownsState: false, ownsMaster: false,
               ownRanges: (.empty, .empty, .empty, .empty, .empty, .empty), gradRange: .empty)
    }

    private static func coefficients(_ c: ValidConfig, _ step: Int64, _ tensor: Tensor, updateV: Bool = true)
        -> GroupCoefficients {
        GroupCoefficients(c, step: step, updateV: updateV, gradScale: 1, inDouble: tensor.computesInDouble)
    }

    // MARK: Shared checks

    /// The prologue of every typed stateless step: a valid config of `algorithm`, and step >= 1.
    static func validated(_ config: adamcore_config, for algorithm: Algorithm, step: Int64)
        throws(AdamCoreError) -> ValidConfig {
        let c = try ValidConfig(config)
        guard c.algorithm == algorithm else { throw fail(ADAMCORE_E_ALGORITHM) }
        guard step >= 1 else { throw fail(ADAMCORE_E_STEP) }
        return c
    }

    /// Throws ADAMCORE_E_LENGTH unless every optional count is nil or equal to `count`.
    static func sameLength(_ count: Int, _ a: Int?, _ b: Int? = nil, _ c: Int? = nil, _ d: Int? = nil)
        throws(AdamCoreError) {
        func same(_ x: Int?) -> Bool { x == nil || x == count }
        guard same(a), same(b), same(c), same(d) else { throw fail(ADAMCORE_E_LENGTH) }
    }
}

// MARK: - Rules shared by the stateless functions and the optimizer object

@inlinable
func hasL2(_ c: ValidConfig) -> Bool {
    c.raw.weight_decay != 0 && !c.flags.contains(.decoupledWeightDecay)
}

@inlinable
func hasDecoupledDecay(_ c: ValidConfig) -> Bool {
    c.raw.weight_decay != 0 && c.flags.contains(.decoupledWeightDecay)
}

@inlinable
func sgdVariant(_ c: ValidConfig, step: Int64) -> SGDVariant {
    SGDVariant(hasL2: hasL2(c), momentum: c.raw.momentum > 0, firstStep: step == 1,
               nesterov: c.flags.contains(.nesterov))
}

@inlinable
func rmspropVariant(_ c: ValidConfig) -> RMSpropVariant {
    RMSpropVariant(hasL2: hasL2(c), centered: c.flags.contains(.centered), momentum: c.raw.momentum > 0)
}

/// AdaFix's gate (seed 001, Algorithm 1, line 4): update v iff max|g| >= L * lr. With L = 0 it always passes.
@inlinable
public func adafixGate(maxAbsGrad: Double, lipschitz: Double, lr: Double) -> Bool {
    maxAbsGrad >= lipschitz * lr
}

/// AdaFix's estimate (lines 11-12): max(L, ||g' - g|| / ||dx||), skipped when the step was zero.
@inlinable
public func raiseLipschitz(_ lipschitz: Double, diffNormSquared: Double, stepNormSquared: Double)
    throws(AdamCoreError) -> Double {
    guard stepNormSquared > 0 else { return lipschitz }
    let l = (diffNormSquared / stepNormSquared).squareRoot()
    guard l.isFinite else { throw fail(ADAMCORE_E_NONFINITE) }
    return Swift.max(lipschitz, l)
}
