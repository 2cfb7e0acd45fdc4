import CAdamCore

/// Stateless steps: one in-place update of one buffer set. Every function validates all of its arguments before
/// it writes anything, and throws the header's status on any problem (nothing has been modified then).
///
/// The pointer forms mirror the C API (and back it); the buffer-pointer forms below check that all buffers have
/// the gradient's length.
public enum Step {
    // MARK: Pointer forms

    /// Adam / AdamW / AMSGrad (`maxExpAvgSq` exactly when the config has `.amsgrad`).
    @inlinable
    public static func adam<T: Steppable>(
        _ config: adamcore_config, step: Int64, count: Int, param: UnsafeMutablePointer<T>?, grad: UnsafePointer<T>?,
        expAvg: UnsafeMutablePointer<T>?, expAvgSq: UnsafeMutablePointer<T>?, maxExpAvgSq: UnsafeMutablePointer<T>?,
        kernels: KernelSet = .baseline
    ) throws(AdamCoreError) {
        let c = try validated(config, for: .adam, step: step)
        let amsgrad = c.flags.contains(.amsgrad)
        let s = try streams(count, param, grad, expAvg, expAvgSq, maxExpAvgSq, required: amsgrad ? 3 : 2)
        let variant = AdamVariant(hasL2: hasL2(c), decoupled: hasDecoupledDecay(c), amsgrad: amsgrad, updateV: true, trackStep: false, saveGradient: false)
        let coefficients = AdamCoefficients<T>(config, step: step)
        _ = chunked(count, inline: T.adam(kernels)(s, count, coefficients, variant),
                    UpdateChunk(kernel: T.adam(kernels), s: s, c: coefficients, v: variant))
    }

    /// AdaFix on a buffer set that is the whole model: v is updated only if max|grad| >= lipschitz * lr.
    @inlinable
    public static func adafix<T: Steppable>(
        _ config: adamcore_config, step: Int64, count: Int, param: UnsafeMutablePointer<T>?, grad: UnsafePointer<T>?,
        expAvg: UnsafeMutablePointer<T>?, expAvgSq: UnsafeMutablePointer<T>?, lipschitz: Double,
        kernels: KernelSet = .baseline
    ) throws(AdamCoreError) -> adamcore_adafix_result {
        let c = try validated(config, for: .adafix, step: step)
        // The next-gradient mode needs the optimizer object, which keeps the previous gradient.
        guard !c.flags.contains(.adafixNextGradient) else { throw fail(ADAMCORE_E_FLAGS) }
        guard lipschitz.isFinite, lipschitz >= 0 else { throw fail(ADAMCORE_E_LIPSCHITZ) }
        let s = try streams(count, param, grad, expAvg, expAvgSq, nil, required: 2)
        let maxAbs = chunked(count, inline: T.maxAbs(kernels)(s.grad, count), MaxAbsChunk(kernel: T.maxAbs(kernels), a: s.grad))
        let update = adafixGate(maxAbsGrad: maxAbs, lipschitz: lipschitz, lr: config.lr)
        let variant = AdamVariant(hasL2: hasL2(c), decoupled: hasDecoupledDecay(c), amsgrad: false, updateV: update, trackStep: true, saveGradient: false)
        let coefficients = AdamCoefficients<T>(config, step: step)
        let norm = chunked(count, inline: T.adam(kernels)(s, count, coefficients, variant),
                           UpdateChunk(kernel: T.adam(kernels), s: s, c: coefficients, v: variant))
        return adamcore_adafix_result(max_abs_grad: maxAbs, step_norm_sq: norm, v_updated: update ? 1 : 0, reserved: 0)
    }

    /// L = max(L, ||newGrad - grad|| / sqrt(stepNormSquared)); unchanged when stepNormSquared is 0.
    @inlinable
    public static func adafixLipschitz<T: Steppable>(
        count: Int, grad: UnsafePointer<T>?, newGrad: UnsafePointer<T>?, stepNormSquared: Double, lipschitz: Double,
        kernels: KernelSet = .baseline
    ) throws(AdamCoreError) -> Double {
        guard lipschitz.isFinite, lipschitz >= 0 else { throw fail(ADAMCORE_E_LIPSCHITZ) }
        guard stepNormSquared.isFinite, stepNormSquared >= 0 else { throw fail(ADAMCORE_E_NONFINITE) }
        // Both are only read, so they may overlap; they must be valid buffers.
        _ = try ByteRange(grad, count: count, of: T.self)
        _ = try ByteRange(newGrad, count: count, of: T.self)
        let diff = chunked(count, inline: T.diffNormSquared(kernels)(grad!, newGrad!, count),
                           DifferenceChunk(kernel: T.diffNormSquared(kernels), a: grad!, b: newGrad!))
        return try raiseLipschitz(lipschitz, diffNormSquared: diff, stepNormSquared: stepNormSquared)
    }

    /// SGD (`momentumBuffer` exactly when momentum > 0; at step 1 it is overwritten with the gradient).
    @inlinable
    public static func sgd<T: Steppable>(
        _ config: adamcore_config, step: Int64, count: Int, param: UnsafeMutablePointer<T>?, grad: UnsafePointer<T>?,
        momentumBuffer: UnsafeMutablePointer<T>?, kernels: KernelSet = .baseline
    ) throws(AdamCoreError) {
        let c = try validated(config, for: .sgd, step: step)
        let s = try streams(count, param, grad, momentumBuffer, nil, nil, required: c.stateCount)
        let coefficients = SGDCoefficients<T>(config), variant = sgdVariant(c, step: step)
        _ = chunked(count, inline: T.sgd(kernels)(s, count, coefficients, variant),
                    UpdateChunk(kernel: T.sgd(kernels), s: s, c: coefficients, v: variant))
    }

    /// RMSprop (`gradAvg` exactly when centered, `momentumBuffer` exactly when momentum > 0).
    @inlinable
    public static func rmsprop<T: Steppable>(
        _ config: adamcore_config, step: Int64, count: Int, param: UnsafeMutablePointer<T>?, grad: UnsafePointer<T>?,
        squareAvg: UnsafeMutablePointer<T>?, gradAvg: UnsafeMutablePointer<T>?, momentumBuffer: UnsafeMutablePointer<T>?,
        kernels: KernelSet = .baseline
    ) throws(AdamCoreError) {
        let c = try validated(config, for: .rmsprop, step: step)
        let centered = c.flags.contains(.centered), momentum = config.momentum > 0
        // The named C arguments, checked for presence, then packed into the kernel's slot order.
        guard squareAvg != nil, gradAvg != nil || !centered, momentumBuffer != nil || !momentum else {
            throw fail(ADAMCORE_E_NULL_POINTER)
        }
        guard gradAvg == nil || centered, momentumBuffer == nil || momentum else { throw fail(ADAMCORE_E_STATE) }
        let s = try streams(count, param, grad, squareAvg, centered ? gradAvg : momentumBuffer,
                            centered ? momentumBuffer : nil, required: c.stateCount)
        let coefficients = RMSpropCoefficients<T>(config), variant = rmspropVariant(c)
        _ = chunked(count, inline: T.rmsprop(kernels)(s, count, coefficients, variant),
                    UpdateChunk(kernel: T.rmsprop(kernels), s: s, c: coefficients, v: variant))
    }

    /// AdaGrad.
    @inlinable
    public static func adagrad<T: Steppable>(
        _ config: adamcore_config, step: Int64, count: Int, param: UnsafeMutablePointer<T>?, grad: UnsafePointer<T>?,
        stateSum: UnsafeMutablePointer<T>?, kernels: KernelSet = .baseline
    ) throws(AdamCoreError) {
        let c = try validated(config, for: .adagrad, step: step)
        let s = try streams(count, param, grad, stateSum, nil, nil, required: 1)
        let coefficients = AdagradCoefficients<T>(config, step: step), l2 = hasL2(c)
        _ = chunked(count, inline: T.adagrad(kernels)(s, count, coefficients, l2),
                    UpdateChunk(kernel: T.adagrad(kernels), s: s, c: coefficients, v: l2))
    }

    // MARK: Buffer-pointer forms (Swift)

    public static func adam<T: Steppable>(
        _ config: Config, step: Int, param: UnsafeMutableBufferPointer<T>, grad: UnsafeBufferPointer<T>,
        expAvg: UnsafeMutableBufferPointer<T>, expAvgSq: UnsafeMutableBufferPointer<T>,
        maxExpAvgSq: UnsafeMutableBufferPointer<T>? = nil, kernels: KernelSet = .baseline
    ) throws(AdamCoreError) {
        try sameLength(grad.count, param.count, expAvg.count, expAvgSq.count, maxExpAvgSq?.count)
        try adam(config.raw, step: Int64(step), count: grad.count, param: param.baseAddress, grad: grad.baseAddress,
                 expAvg: expAvg.baseAddress, expAvgSq: expAvgSq.baseAddress, maxExpAvgSq: maxExpAvgSq?.baseAddress,
                 kernels: kernels)
    }

    public static func sgd<T: Steppable>(
        _ config: Config, step: Int, param: UnsafeMutableBufferPointer<T>, grad: UnsafeBufferPointer<T>,
        momentumBuffer: UnsafeMutableBufferPointer<T>? = nil, kernels: KernelSet = .baseline
    ) throws(AdamCoreError) {
        try sameLength(grad.count, param.count, momentumBuffer?.count)
        try sgd(config.raw, step: Int64(step), count: grad.count, param: param.baseAddress, grad: grad.baseAddress,
                momentumBuffer: momentumBuffer?.baseAddress, kernels: kernels)
    }

    public static func rmsprop<T: Steppable>(
        _ config: Config, step: Int, param: UnsafeMutableBufferPointer<T>, grad: UnsafeBufferPointer<T>,
        squareAvg: UnsafeMutableBufferPointer<T>, gradAvg: UnsafeMutableBufferPointer<T>? = nil,
        momentumBuffer: UnsafeMutableBufferPointer<T>? = nil, kernels: KernelSet = .baseline
    ) throws(AdamCoreError) {
        try sameLength(grad.count, param.count, squareAvg.count, gradAvg?.count, momentumBuffer?.count)
        try rmsprop(config.raw, step: Int64(step), count: grad.count, param: param.baseAddress, grad: grad.baseAddress,
                    squareAvg: squareAvg.baseAddress, gradAvg: gradAvg?.baseAddress,
                    momentumBuffer: momentumBuffer?.baseAddress, kernels: kernels)
    }

    public static func adagrad<T: Steppable>(
        _ config: Config, step: Int, param: UnsafeMutableBufferPointer<T>, grad: UnsafeBufferPointer<T>,
        stateSum: UnsafeMutableBufferPointer<T>, kernels: KernelSet = .baseline
    ) throws(AdamCoreError) {
        try sameLength(grad.count, param.count, stateSum.count)
        try adagrad(config.raw, step: Int64(step), count: grad.count, param: param.baseAddress, grad: grad.baseAddress,
                    stateSum: stateSum.baseAddress, kernels: kernels)
    }

    public static func adafix<T: Steppable>(
        _ config: Config, step: Int, param: UnsafeMutableBufferPointer<T>, grad: UnsafeBufferPointer<T>,
        expAvg: UnsafeMutableBufferPointer<T>, expAvgSq: UnsafeMutableBufferPointer<T>, lipschitz: Double,
        kernels: KernelSet = .baseline
    ) throws(AdamCoreError) -> adamcore_adafix_result {
        try sameLength(grad.count, param.count, expAvg.count, expAvgSq.count)
        return try adafix(config.raw, step: Int64(step), count: grad.count, param: param.baseAddress,
                          grad: grad.baseAddress, expAvg: expAvg.baseAddress, expAvgSq: expAvgSq.baseAddress,
                          lipschitz: lipschitz, kernels: kernels)
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
        _ config: Config, step: Int, param: inout [T], grad: [T], state: inout [[T]], kernels: KernelSet = .baseline
    ) throws(AdamCoreError) {
        let c = try ValidConfig(config.raw)
        guard c.algorithm != .adafix else { throw fail(ADAMCORE_E_ALGORITHM) } // use adafix(_:step:param:...)
        guard state.count == c.stateCount else { throw fail(ADAMCORE_E_STATE) }
        try sameLength(grad.count, param.count)
        for slot in state where slot.count != grad.count { throw fail(ADAMCORE_E_LENGTH) }
        let n = grad.count, t = Int64(step), raw = config.raw
        let outcome: AdamCoreError? = withSlots(&state) { s in
            param.withUnsafeMutableBufferPointer { p in
                grad.withUnsafeBufferPointer { g in
                    do throws(AdamCoreError) {
                        switch c.algorithm {
                        case .adam:
                            try adam(raw, step: t, count: n, param: p.baseAddress, grad: g.baseAddress, expAvg: s[0],
                                     expAvgSq: s[1], maxExpAvgSq: s[2], kernels: kernels)
                        case .sgd:
                            try sgd(raw, step: t, count: n, param: p.baseAddress, grad: g.baseAddress, momentumBuffer: s[0],
                                    kernels: kernels)
                        case .rmsprop:
                            let centered = c.flags.contains(.centered), momentum = raw.momentum > 0
                            try rmsprop(raw, step: t, count: n, param: p.baseAddress, grad: g.baseAddress, squareAvg: s[0],
                                        gradAvg: centered ? s[1] : nil,
                                        momentumBuffer: momentum ? s[centered ? 2 : 1] : nil, kernels: kernels)
                        case .adagrad:
                            try adagrad(raw, step: t, count: n, param: p.baseAddress, grad: g.baseAddress, stateSum: s[0],
                                        kernels: kernels)
                        case .adafix:
                            break
                        }
                        return nil
                    } catch {
                        return error
                    }
                }
            }
        }
        if let outcome { throw outcome }
    }

    /// AdaFix on arrays that are the whole model (state: exp_avg, exp_avg_sq); see the pointer form.
    public static func adafix<T: Steppable>(
        _ config: Config, step: Int, param: inout [T], grad: [T], state: inout [[T]], lipschitz: Double,
        kernels: KernelSet = .baseline
    ) throws(AdamCoreError) -> adamcore_adafix_result {
        guard state.count == 2 else { throw fail(ADAMCORE_E_STATE) }
        try sameLength(grad.count, param.count, state[0].count, state[1].count)
        let n = grad.count, raw = config.raw
        let outcome: Result<adamcore_adafix_result, AdamCoreError> = withSlots(&state) { s in
            param.withUnsafeMutableBufferPointer { p in
                grad.withUnsafeBufferPointer { g in
                    do throws(AdamCoreError) {
                        return .success(try adafix(raw, step: Int64(step), count: n, param: p.baseAddress,
                                                   grad: g.baseAddress, expAvg: s[0], expAvgSq: s[1], lipschitz: lipschitz,
                                                   kernels: kernels))
                    } catch {
                        return .failure(error)
                    }
                }
            }
        }
        return try outcome.get()
    }

    /// Runs `body` with base pointers of up to three state arrays (nil for absent slots).
    static func withSlots<T, R>(_ state: inout [[T]], _ body: ([UnsafeMutablePointer<T>?]) -> R) -> R {
        state.withUnsafeMutableBufferPointer { slots in
            func nest(_ k: Int, _ pointers: [UnsafeMutablePointer<T>?]) -> R {
                guard k < slots.count else { return body(pointers + Array(repeating: nil, count: 3 - pointers.count)) }
                return slots[k].withUnsafeMutableBufferPointer { nest(k + 1, pointers + [$0.baseAddress]) }
            }
            return nest(0, [])
        }
    }

    // MARK: Shared checks

    /// The prologue of every stateless step: a valid config of `algorithm`, and step >= 1.
    @inlinable
    static func validated(_ config: adamcore_config, for algorithm: Algorithm, step: Int64)
        throws(AdamCoreError) -> ValidConfig {
        let c = try ValidConfig(config)
        guard c.algorithm == algorithm else { throw fail(ADAMCORE_E_ALGORITHM) }
        guard step >= 1 else { throw fail(ADAMCORE_E_STEP) }
        return c
    }

    /// Validates param, grad and the state pointers (the first `required` non-NULL, the rest NULL), their sizes,
    /// alignment and disjointness, and packs them for a kernel. Allocation-free: it runs on every call.
    @inlinable
    static func streams<T: KernelScalar>(
        _ count: Int, _ param: UnsafeMutablePointer<T>?, _ grad: UnsafePointer<T>?,
        _ s0: UnsafeMutablePointer<T>?, _ s1: UnsafeMutablePointer<T>?, _ s2: UnsafeMutablePointer<T>?,
        required: Int
    ) throws(AdamCoreError) -> Streams<T> {
        guard let param, let grad else { throw fail(ADAMCORE_E_NULL_POINTER) }
        func check(_ slot: Int, _ isPresent: Bool) throws(AdamCoreError) {
            if (slot < required) != isPresent { throw fail(isPresent ? ADAMCORE_E_STATE : ADAMCORE_E_NULL_POINTER) }
        }
        try check(0, s0 != nil)
        try check(1, s1 != nil)
        try check(2, s2 != nil)
        let p = try ByteRange(param, count: count, of: T.self), g = try ByteRange(grad, count: count, of: T.self)
        let r0 = required > 0 ? try ByteRange(s0, count: count, of: T.self) : nil
        let r1 = required > 1 ? try ByteRange(s1, count: count, of: T.self) : nil
        let r2 = required > 2 ? try ByteRange(s2, count: count, of: T.self) : nil
        let all = (p, g, r0, r1, r2)
        func at(_ k: Int) -> ByteRange? {
            switch k { case 0: return all.0; case 1: return all.1; case 2: return all.2; case 3: return all.3
            default: return all.4 }
        }
        for i in 0..<5 {
            for j in (i + 1)..<5 {
                if let a = at(i), let b = at(j), a.overlaps(b) { throw fail(ADAMCORE_E_OVERLAP) }
            }
        }
        return Streams(param: param, grad: grad, s0: s0 ?? param, s1: s1 ?? param, s2: s2 ?? param)
    }

    /// Throws ADAMCORE_E_LENGTH unless every optional count is nil or equal to `count`.
    static func sameLength(_ count: Int, _ a: Int?, _ b: Int? = nil, _ c: Int? = nil, _ d: Int? = nil)
        throws(AdamCoreError) {
        func same(_ x: Int?) -> Bool { x == nil || x == count }
        guard same(a), same(b), same(c), same(d) else { throw fail(ADAMCORE_E_LENGTH) }
    }
}

// MARK: - Chunking

/// One kernel call over a sub-range of a buffer set, with its combination rule (sum, or max for maxima).
@usableFromInline
protocol ChunkBody {
    func callAsFunction(_ range: Range<Int>) -> Double
    static var combinesByMax: Bool { get }
}

extension ChunkBody {
    @inlinable static var combinesByMax: Bool { false }
}

/// Runs `body` over [0, count) in the optimizer's fixed chunks (in parallel when large) and combines the chunks'
/// results in chunk order, so a one-buffer step gives the optimizer object's bits for any thread count.
/// Up to one chunk runs inline and allocates nothing.
/// `inline` is the same call on the whole buffer, evaluated for small buffers (no job object, no allocation).
@inlinable
func chunked<B: ChunkBody>(_ count: Int, inline: @autoclosure () -> Double, _ body: @autoclosure () -> B) -> Double {
    guard count > chunkElements else { return inline() }
    let job = RangeJob(count: count, body: body())
    WorkerPool.shared.run(job, threads: count >= Threading.minimumElements ? Threading.threadCount : 1)
    return job.combined()
}

@usableFromInline
final class RangeJob<B: ChunkBody>: ParallelTask {
    @usableFromInline let itemCount: Int
    @usableFromInline let count: Int
    @usableFromInline let body: B
    @usableFromInline let results: UnsafeMutablePointer<Double>

    @inlinable
    init(count: Int, body: B) {
        self.count = count
        self.body = body
        itemCount = (count + chunkElements - 1) / chunkElements
        results = .allocate(capacity: itemCount)
    }

    @inlinable
    deinit { results.deallocate() }

    @inlinable
    func run(item: Int) {
        let start = item * chunkElements
        results[item] = body(start..<Swift.min(start + chunkElements, count))
    }

    @inlinable
    func combined() -> Double {
        var total = results[0]
        for i in 1..<itemCount { total = B.combinesByMax ? Swift.max(total, results[i]) : total + results[i] }
        return total
    }
}

/// An update kernel (any algorithm's: coefficients C, variant V) over a sub-range of one buffer set.
@usableFromInline
struct UpdateChunk<T: KernelScalar, C, V>: ChunkBody {
    @usableFromInline let kernel: (Streams<T>, Int, C, V) -> Double
    @usableFromInline let s: Streams<T>
    @usableFromInline let c: C
    @usableFromInline let v: V
    @inlinable init(kernel: @escaping (Streams<T>, Int, C, V) -> Double, s: Streams<T>, c: C, v: V) {
        self.kernel = kernel; self.s = s; self.c = c; self.v = v
    }
    @inlinable func callAsFunction(_ r: Range<Int>) -> Double { kernel(s.advanced(by: r.lowerBound), r.count, c, v) }
}

@usableFromInline
struct MaxAbsChunk<T: KernelScalar>: ChunkBody {
    @usableFromInline let kernel: (UnsafePointer<T>, Int) -> Double
    @usableFromInline let a: UnsafePointer<T>
    @inlinable init(kernel: @escaping (UnsafePointer<T>, Int) -> Double, a: UnsafePointer<T>) { self.kernel = kernel; self.a = a }
    @inlinable func callAsFunction(_ r: Range<Int>) -> Double { kernel(a + r.lowerBound, r.count) }
    @inlinable static var combinesByMax: Bool { true }
}

@usableFromInline
struct DifferenceChunk<T: KernelScalar>: ChunkBody {
    @usableFromInline let kernel: (UnsafePointer<T>, UnsafePointer<T>, Int) -> Double
    @usableFromInline let a: UnsafePointer<T>
    @usableFromInline let b: UnsafePointer<T>
    @inlinable init(kernel: @escaping (UnsafePointer<T>, UnsafePointer<T>, Int) -> Double, a: UnsafePointer<T>,
                    b: UnsafePointer<T>) { self.kernel = kernel; self.a = a; self.b = b }
    @inlinable func callAsFunction(_ r: Range<Int>) -> Double { kernel(a + r.lowerBound, b + r.lowerBound, r.count) }
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
