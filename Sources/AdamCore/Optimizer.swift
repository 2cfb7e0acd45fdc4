import CAdamCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An optimizer: hyperparameter groups, the step count, AdaFix's Lipschitz estimate, and registered tensors that
/// one `step` call updates together.
///
/// Not thread-safe: calls on one optimizer must not overlap in time; distinct optimizers are independent.
/// Registered buffers are the caller's: they must stay alive and unmoved while the optimizer can step them.
public final class Optimizer {
    package let kernels: KernelSet
    public let algorithm: Algorithm
    var groups: ContiguousArray<ValidConfig>
    /// Recomputed each step: one entry per distinct (group, tensor step) among the stepped tensors.
    private var coefficients: ContiguousArray<GroupCoefficients> = []
    private var coefficientKeys: ContiguousArray<CoefficientKey> = []
    private(set) var tensors: ContiguousArray<Tensor> = []
    private var items: ContiguousArray<WorkItem> = []               // fixed split of the work, see WorkItem
    private let job: StepJob
    /// Every registered parameter and state buffer, for the gradients' overlap check.
    private var written = DisjointRanges()
    /// During a step, per tensor: its gradient (nil: not stepped this time) and its entry in `coefficients`.
    /// Sized at registration, so a step allocates nothing.
    /// Allocated in init after validation: a throwing init frees no raw memory.
    private var stepGrads: UnsafeMutablePointer<UnsafeRawPointer?>
    private var coefficientIndex: UnsafeMutablePointer<Int>
    private var perTensorCapacity = 1
    /// Swift-owned storage registered through `TensorStorage`, kept alive for as long as the optimizer steps it.
    private var retainedStorage: [AnyObject] = []

    /// Step calls applied (each stepping all tensors or a subset); `setStepCount` sets it and every tensor's.
    public internal(set) var stepCount: Int64 = 0
    /// Each tensor's own step count (torch's per-parameter state['step']), used for its bias correction and
    /// first-step rules: a step of a subset advances only the tensors in it, and a tensor added later starts at 0.
    public internal(set) var tensorSteps: ContiguousArray<Int64> = []
    /// AdaFix's Lipschitz estimate L; 0 before any estimate.
    public internal(set) var lipschitz: Double = 0
    /// Whether the last AdaFix step updated v.
    public internal(set) var vUpdated = true
    /// AdaFix: ||x_{t+1} - x_t||^2 of the last step, while a Lipschitz estimate may still use it.
    public internal(set) var lastStepNormSquared: Double?
    /// The non-finite guard: when on, every step first counts NaN and +-Inf values in all gradients and, if there
    /// are any, skips the whole step (nothing is written, the step count stays).
    public var guardsNonFinite = false
    /// The seed of stochastic rounding: each rounded value depends only on (seed, the tensor's step, tensor index,
    /// element index), so a run is reproducible from it with any thread count and ISA. Checkpoints keep it.
    public var roundingSeed: UInt64 = 0
    /// Steps skipped by the guard or by `StepOptions.foundInf`.
    public internal(set) var skippedSteps: Int64 = 0
    /// NaN and +-Inf values the guard counted in the last step's gradients (0 when the guard is off).
    public private(set) var lastNonFiniteCount = 0
    /// Every how many steps `StepStats` are measured inside the update pass (Adam, AMSGrad, AdaFix): 0 never (the
    /// default), 1 every step, k on steps divisible by k (to spread the measuring cost; see docs/PERFORMANCE.md).
    public private(set) var statsInterval = 0
    public var collectsStats: Bool { statsInterval > 0 }
    /// The whole optimizer's figures of the last applied step with statistics on.
    public var lastStats: StepStats { publishStats(); return publishedStats }
    /// The same per tensor, in registration order.
    public var lastTensorStats: ContiguousArray<StepStats> { publishStats(); return publishedTensorStats }
    private var publishedStats = StepStats()
    private var publishedTensorStats: ContiguousArray<StepStats> = []
    private var kernelStats: ContiguousArray<KernelStats> = []      // per tensor, merged from the items' segments
    /// A stats step's figures wait in the job's segments until asked for: the step only measures. What they need
    /// from the step is kept here (the configs as they were, in case a scheduler changes them before the read).
    private var pendingStats: (step: Int64, frozen: Bool, lipschitz: Double)?
    private var statsConfigs: ContiguousArray<adamcore_config> = []
    private var statsSteps: ContiguousArray<Int64> = []             // per tensor: its step in the measured step (0: not in it)

    /// An optimizer of `config`'s algorithm, its first group `config`.
    public convenience init(_ config: Config) throws(AdamCoreError) { try self.init(config, kernels: .baseline) }

    /// The same on a kernel tier (the C library passes the CPU's best).
    package init(_ config: Config, kernels: KernelSet) throws(AdamCoreError) {
        let c = try ValidConfig(config.raw)
        self.kernels = kernels
        algorithm = c.algorithm
        groups = [c]
        statsConfigs = [c.raw]
        job = StepJob(kernels: kernels)
        stepGrads = .allocate(capacity: 1)
        stepGrads.initialize(to: nil)
        coefficientIndex = .allocate(capacity: 1)
        reserveCoefficients()
    }

    deinit {
        for t in tensors {
            if t.ownsState { for k in 0..<t.stateCount { free(t.state[k]) } }
            if t.ownsMaster { free(t.master) }
        }
        stepGrads.deallocate()
        coefficientIndex.deallocate()
    }

    // MARK: Groups

    public var groupCount: Int { groups.count }

    /// Adds a hyperparameter group of the optimizer's algorithm; returns its index.
    public func addGroup(_ config: Config) throws(AdamCoreError) -> Int {
        let c = try ValidConfig(config.raw)
        guard c.algorithm == algorithm else { throw fail(ADAMCORE_E_ALGORITHM) }
        if algorithm == .adafix, c.flags.contains(.adafixNextGradient) != groups[0].flags.contains(.adafixNextGradient) {
            throw fail(ADAMCORE_E_FLAGS) // one Lipschitz protocol per optimizer
        }
        groups.append(c)
        statsConfigs.append(c.raw)
        reserveCoefficients()
        job.reserve(items: items.count, groups: groups.count)
        return groups.count - 1
    }

    public func config(ofGroup group: Int) throws(AdamCoreError) -> Config {
        guard groups.indices.contains(group) else { throw fail(ADAMCORE_E_INDEX) }
        return Config(raw: groups[group].raw)
    }

    /// Replaces a group's hyperparameters; the state layout must stay the same.
    public func setConfig(_ config: Config, forGroup group: Int) throws(AdamCoreError) {
        groups[group] = try replacement(config, forGroup: group)
    }

    /// `config` validated as group `group`'s next hyperparameters.
    func replacement(_ config: Config, forGroup group: Int) throws(AdamCoreError) -> ValidConfig {
        guard groups.indices.contains(group) else { throw fail(ADAMCORE_E_INDEX) }
        let c = try ValidConfig(config.raw)
        guard c.algorithm == algorithm else { throw fail(ADAMCORE_E_ALGORITHM) }
        guard c.hasSameLayout(as: groups[group]) else { throw fail(ADAMCORE_E_STATE) }
        if algorithm == .adafix, c.flags.contains(.adafixNextGradient) != groups[0].flags.contains(.adafixNextGradient) {
            throw fail(ADAMCORE_E_FLAGS)
        }
        return c
    }

    // MARK: Tensors

    public var tensorCount: Int { tensors.count }

    /// Registers a tensor (the C API's adamcore_optimizer_add_tensor: every buffer float32, or every one float64);
    /// returns its index. `state` NULL: the library allocates the state (zeroed; AdaGrad's filled with
    /// initial_accumulator_value).
    package func addTensor(group: Int, dtype: Int32, param: UnsafeMutableRawPointer?, grad: UnsafeRawPointer?,
                          count: Int, state: UnsafePointer<UnsafeMutableRawPointer?>?, stateCount: Int)
        throws(AdamCoreError) -> Int {
        guard let kind = DType(dtype), kind == .float32 || kind == .float64 else { throw fail(ADAMCORE_E_DTYPE) }
        return try addTensor(group: group, layout: .plain(kind), param: param, grad: grad, count: count, state: state,
                             stateCount: stateCount)
    }

    /// Registers a tensor of any layout (the C API's adamcore_optimizer_add_tensor_desc); returns its index.
    /// `state` NULL: library-allocated state of `layout.state`. `master` (layout.masterWeights): the caller's
    /// float32 master weights, or NULL for a copy the library makes from `param`. `copy` (layout.copy): the buffer
    /// that receives the float32 parameter's rounded copy at every step.
    public func addTensor(group: Int, layout: TensorLayout, param: UnsafeMutableRawPointer?, grad: UnsafeRawPointer?,
                          count: Int, state: UnsafePointer<UnsafeMutableRawPointer?>?, stateCount: Int,
                          master: UnsafeMutablePointer<Float>? = nil, copy: UnsafeMutableRawPointer? = nil)
        throws(AdamCoreError) -> Int {
        guard groups.indices.contains(group) else { throw fail(ADAMCORE_E_INDEX) }
        let config = groups[group]
        let slots = config.stateCount
        let callerState = state.map { StateSlots($0, count: stateCount) }
        let b = try TensorBuffers(layout: layout, count: count, param: param, grad: grad, state: callerState,
                                  stateCount: stateCount, slots: slots, master: master, masterRequired: false, copy: copy)
        for k in 0..<TensorBuffers.count {
            for t in tensors where t.overlaps(b.range(k)) { throw fail(ADAMCORE_E_OVERLAP) }
        }
        let paramRange = b.param, gradRange = b.grad, copyRange = b.copy
        var given = callerState ?? StateSlots()   // TensorBuffers checked: stateCount == slots
        let owns = state == nil && slots > 0
        if owns {
            for k in 0..<slots {
                guard let buffer = layout.state.allocate(count, filledWith: config.initialStateValue) else {
                    for j in 0..<k { free(given[j]) }
                    throw fail(ADAMCORE_E_NO_MEMORY)
                }
                given[k] = buffer
            }
        }
        var masterWeights = master
        let ownsMaster = layout.masterWeights && master == nil
        if ownsMaster {
            guard let raw = allocateOwnedBuffer(bytes: count * 4) else {
                if owns { for k in 0..<slots { free(given[k]) } }
                throw fail(ADAMCORE_E_NO_MEMORY)
            }
            let m = raw.bindMemory(to: Float.self, capacity: count)
            var at = 0
            kernels.stagedRead(UnsafeRawPointer(param!), layout.param, nil, layout.param, count) { block, _, n in
                (m + at).initialize(from: block, count: n)
                at += n
            }
            masterWeights = m
        }
        // Every buffer was validated above (or allocated here), so these ranges cannot fail.
        let range = { (p: UnsafeMutableRawPointer?) in p.flatMap { try? layout.state.range($0, count) } ?? ByteRange.empty }
        let ownMaster = masterWeights.flatMap { try? DType.float32.range($0, count) } ?? ByteRange.empty
        let tensor = Tensor(layout: layout, group: group, count: count, param: param!, grad: grad,
                            state: given, master: masterWeights, copy: copy,
                            stateCount: slots, ownsState: owns, ownsMaster: ownsMaster,
                            ownRanges: (paramRange, range(given[0]), range(given[1]), range(given[2]), ownMaster, copyRange),
                            gradRange: gradRange)
        // A measured step's figures still wait in segments laid out for the old split: publish them first.
        publishStats()
        reservePerTensor(tensors.count + 1)
        tensors.append(tensor)
        tensorSteps.append(0)
        statsSteps.append(0)
        let o = tensor.ownRanges
        for r in [o.0, o.1, o.2, o.3, o.4, o.5] { written.insert(r) }
        reserveCoefficients()
        items = WorkItem.split(tensors)
        job.reserve(items: items.count, groups: groups.count)
        job.layOutSegments(items)
        kernelStats.append(KernelStats())
        publishedTensorStats.append(StepStats())
        return tensors.count - 1
    }

    /// Registers a tensor whose state the library allocates, or the caller provides as `state`.
    public func addTensor<T: Steppable>(_ param: UnsafeMutableBufferPointer<T>, grad: UnsafeBufferPointer<T>? = nil,
                                        group: Int = 0, state: [UnsafeMutableBufferPointer<T>]? = nil)
        throws(AdamCoreError) -> Int {
        if let grad, grad.count != param.count { throw fail(ADAMCORE_E_LENGTH) }
        guard let state else {
            return try addTensor(group: group, layout: .plain(T.storage), param: UnsafeMutableRawPointer(param.baseAddress),
                                 grad: UnsafeRawPointer(grad?.baseAddress), count: param.count, state: nil, stateCount: 0)
        }
        guard state.allSatisfy({ $0.count == param.count }) else { throw fail(ADAMCORE_E_LENGTH) }
        let raw = state.map { UnsafeMutableRawPointer($0.baseAddress) }
        return try raw.withUnsafeBufferPointer { (buffer) throws(AdamCoreError) -> Int in
            try addTensor(group: group, layout: .plain(T.storage), param: UnsafeMutableRawPointer(param.baseAddress),
                          grad: UnsafeRawPointer(grad?.baseAddress), count: param.count, state: buffer.baseAddress,
                          stateCount: raw.count)
        }
    }

    public func tensorInfo(_ tensor: Int) throws(AdamCoreError) -> (count: Int, dtype: DType) {
        guard tensors.indices.contains(tensor) else { throw fail(ADAMCORE_E_INDEX) }
        return (tensors[tensor].count, tensors[tensor].dtype)
    }

    /// What a registered tensor is: its layout, element count, buffers (master weights: the library's or the
    /// caller's, nil without) and number of state slots.
    public struct Description {
        public let layout: TensorLayout
        public let count: Int
        public let param: UnsafeMutableRawPointer
        public let grad: UnsafeRawPointer?
        public let master: UnsafeMutablePointer<Float>?
        public let copy: UnsafeMutableRawPointer?
        public let stateCount: Int
    }

    public func tensorLayout(_ tensor: Int) throws(AdamCoreError) -> Description {
        guard tensors.indices.contains(tensor) else { throw fail(ADAMCORE_E_INDEX) }
        let t = tensors[tensor]
        return Description(layout: t.layout, count: t.count, param: t.param, grad: t.grad, master: t.master,
                           copy: t.copy, stateCount: t.stateCount)
    }

    /// The state buffer in `slot` of `tensor` (library- or caller-owned).
    public func stateBuffer(tensor: Int, slot: Int) throws(AdamCoreError) -> UnsafeMutableRawPointer {
        guard tensors.indices.contains(tensor) else { throw fail(ADAMCORE_E_INDEX) }
        let t = tensors[tensor]
        guard slot >= 0, slot < groups[t.group].stateCount, let buffer = t.state[slot] else { throw fail(ADAMCORE_E_INDEX) }
        return buffer
    }

    // MARK: Scalars

    public func setStepCount(_ step: Int64) throws(AdamCoreError) {
        guard step >= 0 else { throw fail(ADAMCORE_E_STEP) }
        stepCount = step
        for i in tensorSteps.indices { tensorSteps[i] = step }
        lastStepNormSquared = nil
    }

    /// Sets one tensor's step count (>= 0), e.g. to restart its state as torch does after `del state[p]`.
    public func setStepCount(_ step: Int64, ofTensor tensor: Int) throws(AdamCoreError) {
        guard tensors.indices.contains(tensor) else { throw fail(ADAMCORE_E_INDEX) }
        guard step >= 0 else { throw fail(ADAMCORE_E_STEP) }
        tensorSteps[tensor] = step
    }

    /// Points a tensor at new parameter memory (torch's `p.data = ...`): same dtype and element count, aligned,
    /// and overlapping no other buffer of the optimizer. State and step count are kept.
    public func setParam(_ param: UnsafeMutableRawPointer?, ofTensor tensor: Int) throws(AdamCoreError) {
        guard tensors.indices.contains(tensor) else { throw fail(ADAMCORE_E_INDEX) }
        let old = tensors[tensor]
        let r = try old.dtype.range(param, old.count)
        written.remove(old.ownRanges.0)
        defer { written.insert(tensors[tensor].ownRanges.0) }
        for (j, t) in tensors.enumerated() where j != tensor && t.overlaps(r) { throw fail(ADAMCORE_E_OVERLAP) }
        // The old parameter itself may be overlapped: it is the one being replaced.
        if old.overlapsBesidesParam(r) { throw fail(ADAMCORE_E_OVERLAP) }
        tensors[tensor] = old.withParam(param!, range: r)
    }

    func retain(_ storage: AnyObject...) { retainedStorage.append(contentsOf: storage) }

    private func reserveCoefficients() {
        coefficients.reserveCapacity(tensors.count + groups.count)
        coefficientKeys.reserveCapacity(tensors.count + groups.count)
    }

    /// Per-tensor scratch sized for `n` tensors.
    private func reservePerTensor(_ n: Int) {
        guard n > perTensorCapacity else { return }
        let capacity = Swift.max(n, 2 * perTensorCapacity)
        stepGrads.deallocate()
        coefficientIndex.deallocate()
        stepGrads = .allocate(capacity: capacity)
        stepGrads.initialize(repeating: nil, count: capacity)
        coefficientIndex = .allocate(capacity: capacity)
        perTensorCapacity = capacity
    }

    /// Restores `lastStepNormSquared` (nil: none), e.g. from a checkpoint, after `setStepCount`.
    public func setLastStepNormSquared(_ value: Double?) throws(AdamCoreError) {
        guard algorithm == .adafix else { throw fail(ADAMCORE_E_ALGORITHM) }
        if let value { guard value.isFinite, value >= 0 else { throw fail(ADAMCORE_E_NONFINITE) } }
        lastStepNormSquared = value
    }

    public func setLipschitz(_ value: Double) throws(AdamCoreError) {
        guard algorithm == .adafix else { throw fail(ADAMCORE_E_ALGORITHM) }
        guard value.isFinite, value >= 0 else { throw fail(ADAMCORE_E_LIPSCHITZ) }
        lipschitz = value
    }

    // MARK: Statistics

    /// Turns the in-pass statistics on or off. ADAMCORE_E_ALGORITHM for SGD, RMSprop and AdaGrad, whose steps have
    /// no second-moment bound to report.
    public func setCollectsStats(_ on: Bool) throws(AdamCoreError) { try setStatsInterval(on ? 1 : 0) }

    /// Statistics on steps divisible by `interval` (0: off).
    public func setStatsInterval(_ interval: Int) throws(AdamCoreError) {
        guard interval >= 0 else { throw fail(ADAMCORE_E_INDEX) }
        guard interval == 0 || algorithm == .adam || algorithm == .adafix else { throw fail(ADAMCORE_E_ALGORITHM) }
        statsInterval = interval
    }

    /// Turns the segments' raw figures into `lastTensorStats` and `lastStats` (no allocation: the arrays were sized
    /// at registration).
    private func publishStats() {
        guard let (t, frozen, lipschitz) = pendingStats else { return }
        pendingStats = nil
        for i in kernelStats.indices { kernelStats[i] = KernelStats() }
        for (itemIndex, w) in items.enumerated() {
            let base = job.segmentStart[itemIndex]
            for index in w.first..<w.last { kernelStats[index].merge(job.segments[base + index - w.first]) }
        }
        var total = StepStats(step: t)
        var meanWeighted = 0.0, m2 = 0.0, v2 = 0.0, d2 = 0.0
        total.minEffectiveLR = .infinity
        for i in tensors.indices {
            let c = statsConfigs[tensors[i].group]
            let figures = statsSteps[i] == 0 ? StepStats()  // not in the measured step
                : StepStats(kernelStats[i], config: c, step: statsSteps[i], frozen: frozen, lipschitz: lipschitz)
            publishedTensorStats[i] = figures
            total.count += figures.count
            total.nonFiniteGradients += figures.nonFiniteGradients
            total.maxStepOverLR = Swift.max(total.maxStepOverLR, figures.maxStepOverLR)
            total.stepBound = Swift.max(total.stepBound, figures.stepBound)
            if figures.count > 0 {
                total.minEffectiveLR = Swift.min(total.minEffectiveLR, figures.minEffectiveLR)
                total.maxEffectiveLR = Swift.max(total.maxEffectiveLR, figures.maxEffectiveLR)
            }
            meanWeighted += figures.meanEffectiveLR * Double(figures.count)
            m2 += kernelStats[i].mSquared
            v2 += kernelStats[i].vSquared
            d2 += kernelStats[i].stepSquared
        }
        if total.count == 0 { total.minEffectiveLR = 0 }
        total.meanEffectiveLR = total.count > 0 ? meanWeighted / Double(total.count) : 0
        total.mNorm = m2.squareRoot()
        total.vNorm = v2.squareRoot()
        total.stepNorm = d2.squareRoot()
        total.adafixVFrozen = frozen
        total.lipschitz = lipschitz
        publishedStats = total
    }

    // MARK: Stepping

    /// One step of every tensor with its registered gradient.
    @discardableResult
    public func step(_ options: StepOptions = StepOptions()) throws(AdamCoreError) -> StepOutcome {
        try step(grads: nil, count: tensors.count, options: options)
    }

    /// One step of every tensor; `grads` holds one gradient pointer per tensor in registration order (nil: the
    /// registered ones). Returns `.skipped` (and writes nothing) when `options.foundInf` is set or the guard finds
    /// a non-finite value.
    @discardableResult
    public func step(grads: UnsafePointer<UnsafeRawPointer?>?, count: Int,
                     options: StepOptions = StepOptions()) throws(AdamCoreError) -> StepOutcome {
        guard count == tensors.count else { throw fail(ADAMCORE_E_COUNT) }
        defer { clearSelection() }
        for i in tensors.indices { try select(i, grads.map { $0[i] } ?? tensors[i].grad) }
        return try stepSelected(count: count, options: options)
    }

    /// One step of the tensors listed in `tensors` (indices, each at most once, in any order) with `grads` (one
    /// per listed tensor; nil: their registered gradients). The others are not touched and keep their step
    /// counts, as torch skips a parameter whose grad is None. AdaFix steps all of its tensors or none: its gate
    /// and Lipschitz estimate are global (ADAMCORE_E_ALGORITHM for a proper subset).
    @discardableResult
    public func step(tensors list: UnsafePointer<Int>?, grads: UnsafePointer<UnsafeRawPointer?>?, count: Int,
                     options: StepOptions = StepOptions()) throws(AdamCoreError) -> StepOutcome {
        guard count >= 0, count <= tensors.count else { throw fail(count < 0 ? ADAMCORE_E_COUNT : ADAMCORE_E_INDEX) }
        guard count == 0 || list != nil else { throw fail(ADAMCORE_E_NULL_POINTER) }
        if algorithm == .adafix, count != tensors.count { throw fail(ADAMCORE_E_ALGORITHM) }
        defer { clearSelection() }
        for k in 0..<count {
            let i = list![k]
            guard tensors.indices.contains(i), stepGrads[i] == nil else { throw fail(ADAMCORE_E_INDEX) }
            try select(i, grads.map { $0[k] } ?? tensors[i].grad)
        }
        return try stepSelected(count: count, options: options)
    }

    /// Validates tensor `i`'s gradient for this step and marks the tensor as stepped (`forStep` false: only read,
    /// as AdaFix's observe reads gradients, so its step count does not matter).
    @inline(__always)
    private func select(_ i: Int, _ grad: UnsafeRawPointer?, forStep: Bool = true) throws(AdamCoreError) {
        let tensor = tensors[i]
        guard let grad else { throw fail(ADAMCORE_E_NULL_POINTER) }
        let range = try tensor.layout.grad.range(grad, tensor.count)
        // A gradient is only read, but reading memory that this step writes (any tensor's parameter or state)
        // would make the result depend on the order of the work.
        if written.overlaps(range) { throw fail(ADAMCORE_E_OVERLAP) }
        guard !forStep || tensorSteps[i] < Int64.max else { throw fail(ADAMCORE_E_STEP) }
        stepGrads[i] = grad
    }

    private func clearSelection() {
        for i in tensors.indices { stepGrads[i] = nil }
    }

    /// The step of the tensors selected in `stepGrads` (validated), `count` of them.
    private func stepSelected(count: Int, options: StepOptions) throws(AdamCoreError) -> StepOutcome {
        guard stepCount < Int64.max else { throw fail(ADAMCORE_E_STEP) }
        try options.validate(for: algorithm)
        lastNonFiniteCount = 0
        if options.foundInf {
            skippedSteps += 1
            return .skipped
        }
        if guardsNonFinite {
            lastNonFiniteCount = Int(runJob(.nonFinite))
            if lastNonFiniteCount > 0 {
                skippedSteps += 1
                return .skipped
            }
        }
        let isAdaFix = algorithm == .adafix
        let nextGradient = isAdaFix && groups[0].flags.contains(.adafixNextGradient)

        // AdaFix, everything that decides the step before anything is written.
        var newLipschitz = lipschitz
        var updateV = true
        if isAdaFix {
            if nextGradient, let previous = lastStepNormSquared {
                let diff = runJob(.differenceFromPrevious)
                newLipschitz = try raiseLipschitz(lipschitz, diffNormSquared: diff, stepNormSquared: previous)
            }
            if newLipschitz > 0 {
                for g in groups.indices { job.thresholds[g] = newLipschitz * groups[g].raw.lr }
                updateV = runJob(.gate) > 0
            }
        }

        prepareCoefficients(updateV: updateV, gradScale: options.gradScale)
        let t = stepCount + 1
        let measure = statsInterval > 0 && t % Int64(statsInterval) == 0
        let stepNormSquared = coefficients.withUnsafeBufferPointer { c in
            job.coefficients = c.baseAddress
            defer { job.coefficients = nil }
            return runJob(measure ? .updateWithStats : .update)
        }
        stepCount = t
        for i in tensors.indices where stepGrads[i] != nil { tensorSteps[i] += 1 }
        if isAdaFix {
            lipschitz = newLipschitz
            vUpdated = updateV
            lastStepNormSquared = stepNormSquared
        }
        if measure {
            for g in groups.indices { statsConfigs[g] = groups[g].raw }
            for i in tensors.indices { statsSteps[i] = stepGrads[i] != nil ? tensorSteps[i] : 0 }
            pendingStats = (t, !updateV, lipschitz)
        }
        return .applied
    }

    /// One coefficient entry per distinct (group, step, compute type) among the stepped tensors, and each tensor's
    /// index into them. Usually every tensor of a group shares its step and type, so this computes one entry per
    /// group; capacity for
    /// one per tensor was reserved at registration, so it never allocates.
    private func prepareCoefficients(updateV: Bool, gradScale: Double) {
        coefficients.removeAll(keepingCapacity: true)
        coefficientKeys.removeAll(keepingCapacity: true)
        var previous = CoefficientKey(group: -1, step: 0, inDouble: false)
        var last = -1
        for i in tensors.indices where stepGrads[i] != nil {
            let key = CoefficientKey(group: tensors[i].group, step: tensorSteps[i] + 1,
                                     inDouble: tensors[i].computesInDouble)
            if key != previous {
                // A short search of the newest entries covers groups whose tensors alternate; past it, append.
                last = -1
                for j in Swift.max(0, coefficientKeys.count - 8)..<coefficientKeys.count where coefficientKeys[j] == key {
                    last = j
                }
                if last < 0 {
                    coefficients.append(GroupCoefficients(groups[key.group], step: key.step, updateV: updateV,
                                                          gradScale: gradScale, inDouble: key.inDouble))
                    coefficientKeys.append(key)
                    last = coefficients.count - 1
                }
                previous = key
            }
            coefficientIndex[i] = last
        }
    }

    /// AdaFix (exact mode): L = max(L, ||g' - g|| / ||x_{t+1} - x_t||) with the gradients of the last step (`grads`,
    /// nil: the registered ones) and of the same minibatch at the new point (`newGrads`).
    public func adafixObserve(grads: UnsafePointer<UnsafeRawPointer?>?, newGrads: UnsafePointer<UnsafeRawPointer?>?,
                              count: Int) throws(AdamCoreError) {
        guard algorithm == .adafix else { throw fail(ADAMCORE_E_ALGORITHM) }
        guard !groups[0].flags.contains(.adafixNextGradient), let stepNorm = lastStepNormSquared else {
            throw fail(ADAMCORE_E_SEQUENCE)
        }
        guard let newGrads else { throw fail(ADAMCORE_E_NULL_POINTER) }
        guard count == tensors.count else { throw fail(ADAMCORE_E_COUNT) }
        defer { clearSelection() }
        for i in tensors.indices { try select(i, newGrads[i], forStep: false) }  // validates g'
        for i in tensors.indices { stepGrads[i] = nil }
        for i in tensors.indices { try select(i, grads.map { $0[i] } ?? tensors[i].grad, forStep: false) }
        job.others = newGrads
        defer { job.others = nil }
        let diff = runJob(.difference)
        lipschitz = try raiseLipschitz(lipschitz, diffNormSquared: diff, stepNormSquared: stepNorm)
        lastStepNormSquared = nil
    }

    // MARK: Internals

    /// Runs one phase over every work item for the tensors selected in `stepGrads` (StepJob.execute: the items'
    /// results combined in item order, independent of the thread count).
    private func runJob(_ phase: StepJob.Phase) -> Double {
        var elements = 0
        for i in tensors.indices where stepGrads[i] != nil { elements += tensors[i].count }
        job.roundingSeed = roundingSeed
        return tensors.withUnsafeBufferPointer { t in
            items.withUnsafeBufferPointer { w in
                tensorSteps.withUnsafeBufferPointer { steps in
                    job.grads = UnsafePointer(stepGrads)
                    job.coefficientIndex = UnsafePointer(coefficientIndex)
                    job.tensors = t.baseAddress
                    job.items = w.baseAddress
                    job.itemCount = w.count
                    job.tensorSteps = steps.baseAddress
                    defer {
                        job.tensors = nil; job.items = nil; job.grads = nil; job.coefficientIndex = nil
                        job.tensorSteps = nil
                    }
                    return job.execute(phase, elements: elements)
                }
            }
        }
    }
}

/// What a coefficient entry was computed for.
struct CoefficientKey: Equatable {
    let group: Int
    let step: Int64
    let inDouble: Bool
}
