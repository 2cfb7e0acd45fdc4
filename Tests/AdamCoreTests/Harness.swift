import AdamCore
import AdamCoreAVX2
import AdamCoreAVX512
import CAdamCore
import XCTest

/// The kernel sets this machine can run, lowest tier first: baseline always, AVX2+FMA and AVX-512 when the CPU
/// has them (each built only after its cpuid check, as the C library does).
let availableKernelSets: [KernelSet] = {
    var sets: [KernelSet] = [.baseline]
    #if arch(x86_64)
    if adamcore_shim_cpu_has_avx2_fma() != 0 { sets.append(makeAVX2Kernels()) }
    if adamcore_shim_cpu_has_avx512() != 0 {
        sets.append(makeAVX512Kernels())
        // The C library's default on a CPU that double-pumps 512-bit operations: AVX2 for float32/float64,
        // AVX-512 for the 16-bit layouts. Every test over the tiers covers it too.
        sets.append(KernelSet(streams: sets[1], sixteenBit: sets[2]))
    }
    #endif
    return sets
}()

func kernelSet(_ isa: adamcore_isa) -> KernelSet? { availableKernelSets.first { $0.isa == isa } }

func isaName(_ k: KernelSet) -> String {
    let name = k.isa == ADAMCORE_ISA_AVX512 ? "avx512" : k.isa == ADAMCORE_ISA_AVX2_FMA ? "avx2" : "baseline"
    return k === kernelSet(k.isa) ? name : name + "+avx512 (16-bit)"
}

/// Test problem: parameters and per-step gradients, identical for kernel and reference. Gradient scales span
/// 1e-4...1 across elements so that eps, eps_root and small second moments all matter.
struct Problem {
    let count: Int
    let seed: UInt64
    let initial: [Double]
    let scales: [Double]

    init(count: Int, seed: UInt64) {
        self.count = count
        self.seed = seed
        var rng = Rng(seed: seed)
        initial = rng.vector(count)
        scales = (0..<count).map { i in pow(10, -4 * Double(i % 5) / 4) }
    }

    /// The gradient at step t (1-based), rounded to T so both sides see the same values. Its envelope decays
    /// (1 at the start, 1/6 at step 1000), so AdaFix's gate opens early and closes later.
    func gradient<T: BinaryFloatingPoint>(_ t: Int, as _: T.Type) -> [Double] {
        var rng = Rng(seed: seed &* 31 &+ UInt64(t))
        let envelope = 1 / (1 + Double(t) / 200)
        return (0..<count).map { Double(T(envelope * scales[$0] * rng.symmetric())) }
    }

    /// AdaFix's g': the same minibatch's gradient at the new point, for a loss of curvature `curvature` along the
    /// step (so the Lipschitz estimate is exactly that curvature, and with lr 1e-2 the gate's threshold is 0.3).
    static let curvature = 30.0
    static func newPointGradient(_ g: [Double], before: [Double], after: [Double]) -> [Double] {
        g.indices.map { g[$0] + curvature * (after[$0] - before[$0]) }
    }

    func start<T: BinaryFloatingPoint>(as _: T.Type) -> [Double] { initial.map { Double(T($0)) } }
}

/// What a run ends with: parameters and every state buffer, as Double.
struct RunResult: Equatable {
    var param: [Double]
    var state: [[Double]]
}

/// Runs `steps` stateless steps of `config` on T buffers with kernel set `kernels`.
/// `chunk`: take each step as calls of `chunk` elements each (not AdaFix, whose decision is over the whole tensor).
func runKernel<T: Steppable>(_ config: Config, _ problem: Problem, steps: Int, as _: T.Type,
                             kernels: KernelSet = .baseline, chunk: Int? = nil,
                             offsets: [Int] = [0, 0, 0, 0, 0]) throws -> RunResult {
    let total = problem.count
    precondition(chunk == nil || config.algorithm != .adafix)
    let p = OwnedBuffer<T>(problem.start(as: T.self), offset: offsets[0])
    let slots = try config.stateSlots().count
    let initialState = config.algorithm == .adagrad ? config.raw.initial_accumulator_value : 0
    let state = (0..<3).map { OwnedBuffer<T>(Array(repeating: initialState, count: total), offset: offsets[2 + $0]) }
    let c = config.raw
    var lipschitz = 0.0
    for t in 1...steps {
        let g = OwnedBuffer<T>(problem.gradient(t, as: T.self), offset: offsets[1])
        let next = OwnedBuffer<T>(Array(repeating: 0, count: total))
        // Raw pointers do not keep their object alive: pin the gradients until the step has run.
        try withExtendedLifetime((g, next)) {
        for start in stride(from: 0, to: Swift.max(total, 1), by: chunk ?? Swift.max(total, 1)) {
        let n = Swift.min(chunk ?? total, total - start)
        func slot(_ k: Int) -> UnsafeMutablePointer<T>? {
            k < slots ? state[k].buffer.baseAddress.map { $0 + start } : nil
        }
        let pp = p.buffer.baseAddress.map { $0 + start }
        let gp = UnsafePointer(g.buffer.baseAddress.map { $0 + start })
        // The raw paths, as the C exports call them (the typed Swift forms are these with the baseline kernels:
        // testSwiftFormsMatchTheRawPath).
        let param = UnsafeMutableRawPointer(pp), grad = UnsafeRawPointer(gp)
        func raw(_ k: Int) -> UnsafeMutableRawPointer? { UnsafeMutableRawPointer(slot(k)) }
        switch config.algorithm! {
        case .adam, .sgd, .adagrad:
            try Step.plainUpdate(c, config.algorithm!, Int64(t), n, T.storage, param, grad, StateSlots(raw(0), raw(1), raw(2)), kernels)
        case .adafix:
            let before = p.values
            let r = try Step.plainAdafix(c, Int64(t), n, T.storage, param, grad, StateSlots(raw(0), raw(1)), lipschitz, kernels)
            for (i, x) in Problem.newPointGradient(g.values, before: before, after: p.values).enumerated() {
                next.buffer[i] = T(x)
            }
            lipschitz = try Step.plainLipschitz(n, T.storage, grad, UnsafeRawPointer(next.buffer.baseAddress),
                                                r.stepNormSquared, lipschitz, kernels)
        case .rmsprop:
            let centered = config.flags.contains(.centered), momentum = c.momentum > 0
            try Step.plainRMSprop(c, Int64(t), n, T.storage, param, grad, raw(0), centered ? raw(1) : nil,
                                  momentum ? raw(centered ? 2 : 1) : nil, kernels)
        }
        }
        }
    }
    return RunResult(param: p.values, state: (0..<slots).map { state[$0].values })
}

/// The reference's options for a config.
func referenceOptions(_ config: Config) -> RefOptions {
    let c = config.raw, f = config.flags
    var o = RefOptions()
    o.lr = c.lr; o.beta1 = c.beta1; o.beta2 = c.beta2; o.eps = c.eps; o.epsRoot = c.eps_root
    o.weightDecay = c.weight_decay; o.decoupled = f.contains(.decoupledWeightDecay); o.amsgrad = f.contains(.amsgrad)
    o.optaxOrder = f.contains(.amsgradOptaxOrder); o.maximize = f.contains(.maximize)
    o.biasCorrection = !f.contains(.noBiasCorrection); o.momentum = c.momentum; o.dampening = c.dampening
    o.nesterov = f.contains(.nesterov); o.alpha = c.alpha; o.centered = f.contains(.centered)
    o.lrDecay = c.lr_decay; o.initialAccumulator = c.initial_accumulator_value
    return o
}

/// Every state buffer of every tensor of `opt`, as bit patterns (for bitwise comparisons of two runs).
func stateBits(_ opt: Optimizer, _ config: Config) throws -> [[UInt64]] {
    var bits: [[UInt64]] = []
    for i in 0..<opt.tensorCount {
        let (n, dtype) = try opt.tensorInfo(i)
        for slot in 0..<(try config.stateSlots().count) {
            let raw = try opt.stateBuffer(tensor: i, slot: slot)
            bits.append(dtype == .float32
                ? (0..<n).map { UInt64(raw.assumingMemoryBound(to: Float.self)[$0].bitPattern) }
                : (0..<n).map { raw.assumingMemoryBound(to: Double.self)[$0].bitPattern })
        }
    }
    return bits
}

/// The float64 reference run of the same config and problem, with gradients rounded as T's run sees them.
func runReference<T: BinaryFloatingPoint>(_ config: Config, _ problem: Problem, steps: Int, as _: T.Type) -> RunResult {
    let o = referenceOptions(config)
    let n = problem.count
    var p = problem.start(as: T.self)
    switch config.algorithm! {
    case .adam:
        var r = RefAdam(o, count: n)
        for t in 1...steps { r.step(&p, problem.gradient(t, as: T.self), t: t) }
        return RunResult(param: p, state: [r.m, r.v] + (o.amsgrad ? [r.vmax] : []))
    case .adafix:
        // Seed 001, Algorithm 1, on a single buffer: gate on max|g| >= L*lr, then L = max(L, |g'-g|/|dx|).
        var r = RefAdam(o, count: n)
        var lipschitz = 0.0
        for t in 1...steps {
            let g = problem.gradient(t, as: T.self)
            let before = p
            r.step(&p, g, t: t, updateV: g.map(abs).max()! >= lipschitz * o.lr)
            let next = Problem.newPointGradient(g, before: before, after: p)
            let dx = zip(p, before).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
            let dg = zip(next, g).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
            if dx > 0 { lipschitz = max(lipschitz, dg / dx) }
        }
        return RunResult(param: p, state: [r.m, r.v])
    case .sgd:
        var r = RefSGD(o, count: n)
        for t in 1...steps { r.step(&p, problem.gradient(t, as: T.self), t: t) }
        return RunResult(param: p, state: o.momentum > 0 ? [r.buf] : [])
    case .rmsprop:
        var r = RefRMSprop(o, count: n)
        for t in 1...steps { r.step(&p, problem.gradient(t, as: T.self), t: t) }
        return RunResult(param: p, state: [r.sq] + (o.centered ? [r.gavg] : []) + (o.momentum > 0 ? [r.buf] : []))
    case .adagrad:
        var r = RefAdagrad(o, count: n)
        for t in 1...steps { r.step(&p, problem.gradient(t, as: T.self), t: t) }
        return RunResult(param: p, state: [r.sum])
    }
}

/// Each step adds at most a few roundings (of size epsilon times the vector's scale) to every value, and nothing
/// in these updates amplifies an earlier error by more than a constant, so after N steps
/// |x - ref| <= 4 * N * epsilon * (|ref| + max|ref|). The margin is the bound, not a fudge factor: for float64 it is
/// about 1e-12 of scale, so any difference in the formula is caught; for float32 about 5e-4 of scale, while the
/// configs under test move every value by far more than that per term.
func assertClose(_ actual: RunResult, _ expected: RunResult, steps: Int, epsilon: Double, _ label: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    for problem in closenessViolations(actual, expected, steps: steps, epsilon: epsilon) {
        XCTFail("\(label) \(problem)", file: file, line: line)
    }
}

/// The values that break the bound above, worst first per buffer; empty when all are within it.
func closenessViolations(_ actual: RunResult, _ expected: RunResult, steps: Int, epsilon: Double) -> [String] {
    guard actual.state.count == expected.state.count else { return ["state count \(actual.state.count)"] }
    var problems: [String] = []
    let pairs = [(actual.param, expected.param, "param")]
        + zip(actual.state, expected.state).enumerated().map { ($1.0, $1.1, "state[\($0)]") }
    for (a, e, name) in pairs {
        let scale = e.map(abs).max() ?? 0
        var worst = 0.0, worstIndex = -1
        for i in e.indices {
            let tolerance = 4 * Double(steps) * epsilon * (abs(e[i]) + scale)
            let excess = abs(a[i] - e[i]) / Swift.max(tolerance, .leastNonzeroMagnitude)
            if !(excess <= 1) && !(excess < worst) { worst = excess; worstIndex = i }
        }
        if worstIndex >= 0 {
            problems.append("\(name)[\(worstIndex)]: \(a[worstIndex]) vs reference \(e[worstIndex]) "
                            + "(\(worst)x the tolerance)")
        }
    }
    return problems
}

/// Every configuration under test: each option of each algorithm on its own and in the combinations that share
/// code paths, with values chosen so every term matters.
let configurations: [(String, Config)] = {
    var list: [(String, Config)] = []
    func add(_ name: String, _ c: Config) { list.append((name, c)) }
    add("adam", .adam(lr: 1e-2))
    add("adam eps=1e-3", .adam(lr: 1e-2, eps: 1e-3))
    add("adam betas", .adam(lr: 1e-2, betas: (0.5, 0.9)))
    add("adam l2", .adam(lr: 1e-2, weightDecay: 0.1))
    add("adam maximize", .adam(lr: 1e-2, maximize: true))
    add("adam eps_root", .adam(lr: 1e-2, epsRoot: 1e-4))
    add("adam no-bias-correction", .adam(lr: 1e-2, flags: .noBiasCorrection))
    add("adamw", .adamW(lr: 1e-2, weightDecay: 0.1))
    add("amsgrad", .adam(lr: 1e-2, amsgrad: true))
    add("amsgrad l2", .adam(lr: 1e-2, weightDecay: 0.1, amsgrad: true))
    add("amsgrad optax", .adam(lr: 1e-2, amsgrad: true, epsRoot: 1e-4, flags: .amsgradOptaxOrder))
    add("amsgradw maximize", .adamW(lr: 1e-2, weightDecay: 0.1, amsgrad: true, maximize: true))
    add("adafix", .adafix(lr: 1e-2))
    add("adafix l2", .adafix(lr: 1e-2, weightDecay: 0.1))
    add("adafix decoupled maximize", .adafix(lr: 1e-2, weightDecay: 0.1, maximize: true, flags: .decoupledWeightDecay))
    add("sgd", .sgd(lr: 1e-2))
    add("sgd l2 maximize", .sgd(lr: 1e-2, weightDecay: 0.1, maximize: true))
    add("sgd momentum", .sgd(lr: 1e-2, momentum: 0.9))
    add("sgd momentum dampening l2", .sgd(lr: 1e-2, momentum: 0.9, dampening: 0.3, weightDecay: 0.1))
    add("sgd nesterov", .sgd(lr: 1e-2, momentum: 0.9, nesterov: true))
    add("sgd nesterov l2", .sgd(lr: 1e-2, momentum: 0.8, weightDecay: 0.1, nesterov: true))
    add("rmsprop", .rmsprop())
    add("rmsprop eps l2", .rmsprop(eps: 1e-3, weightDecay: 0.1))
    add("rmsprop centered", .rmsprop(centered: true))
    add("rmsprop momentum", .rmsprop(momentum: 0.9))
    add("rmsprop centered momentum maximize", .rmsprop(alpha: 0.9, momentum: 0.5, centered: true, maximize: true))
    add("adagrad", .adagrad())
    add("adagrad decay l2 init", .adagrad(lrDecay: 0.01, weightDecay: 0.1, initialAccumulatorValue: 0.1))
    add("adagrad maximize eps", .adagrad(eps: 1e-3, maximize: true))
    return list
}()

/// A heap buffer with a stable address for as long as the object lives (what the optimizer object registers).
/// Swift may end an object's life right after its last use: whoever hands `buffer` to the library keeps the
/// object alive across that call (withExtendedLifetime, or a later use).
final class OwnedBuffer<T: BinaryFloatingPoint> {
    let buffer: UnsafeMutableBufferPointer<T>
    private let storage: UnsafeMutableBufferPointer<T>
    /// `offset`: the values start that many elements into the allocation (to place them at any alignment).
    init(_ values: [Double], offset: Int = 0) {
        storage = UnsafeMutableBufferPointer<T>.allocate(capacity: Swift.max(values.count + offset, 1))
        storage.initialize(repeating: 0)
        for (i, v) in values.enumerated() { storage[offset + i] = T(v) }
        buffer = UnsafeMutableBufferPointer(rebasing: storage[offset..<offset + values.count])
    }
    var values: [Double] { buffer.map { Double($0) } }
    deinit { storage.deallocate() }
}
