import AdamCore
import CAdamCore
import XCTest

// Mixed precision against the float64 references of Reference.swift, rounding at the same points: each step
// starts from the library's own stored values (so a 1-ulp difference never compounds), the reference computes
// in float64 and rounds every stored value to its storage type, and the library's stored bits must equal that
// within one ulp of the 16-bit type (float32 buffers: within float32 arithmetic error). The codecs here are
// plain code of the tests', not the library's conversions.

/// bfloat16 and binary16 by the book: to nearest, ties to even (bfloat16 through Float: at most one ulp off the
/// correctly rounded value, which the tolerance covers).
func bits16(_ x: Double, _ type: DType) -> UInt16 {
    switch type {
    case .bfloat16:
        let f = Float(x)
        if f.isNaN { return 0x7fc0 }
        let b = f.bitPattern
        let lsb = (b >> 16) & 1
        return UInt16(truncatingIfNeeded: (UInt64(b) + 0x7fff + UInt64(lsb)) >> 16)
    case .float16: return Float16(x).bitPattern
    default: fatalError("not a 16-bit type")
    }
}

func value16(_ bits: UInt16, _ type: DType) -> Double {
    type == .bfloat16 ? Double(Float(bitPattern: UInt32(bits) << 16)) : Double(Float16(bitPattern: bits))
}

/// Distance in ulps of two 16-bit patterns of `type` (sign-magnitude made monotonic); two NaNs are equal.
func ulps(_ a: UInt16, _ b: UInt16, _ type: DType = .bfloat16) -> Int {
    if value16(a, type).isNaN && value16(b, type).isNaN { return 0 }
    func ordered(_ x: UInt16) -> Int { x & 0x8000 != 0 ? -Int(x & 0x7fff) : Int(x) }
    return abs(ordered(a) - ordered(b))
}

/// A 64-byte-aligned buffer of `count` values stored as `type`.
final class TypedBuffer {
    let type: DType
    let count: Int
    let raw: UnsafeMutableRawPointer

    init(_ type: DType, _ values: [Double]) {
        self.type = type
        count = values.count
        raw = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(1, values.count * type.byteSize), alignment: 64)
        write(values)
    }
    deinit { raw.deallocate() }

    func write(_ values: [Double]) {
        for (i, x) in values.enumerated() {
            switch type {
            case .float32: raw.storeBytes(of: Float(x), toByteOffset: 4 * i, as: Float.self)
            case .float64: raw.storeBytes(of: x, toByteOffset: 8 * i, as: Double.self)
            case .bfloat16, .float16: raw.storeBytes(of: bits16(x, type), toByteOffset: 2 * i, as: UInt16.self)
            }
        }
    }

    var values: [Double] { (0..<count).map { value(at: $0) } }
    var bits: [UInt64] {
        (0..<count).map { i in
            switch type {
            case .float32: UInt64(raw.load(fromByteOffset: 4 * i, as: UInt32.self))
            case .float64: raw.load(fromByteOffset: 8 * i, as: UInt64.self)
            case .bfloat16, .float16: UInt64(raw.load(fromByteOffset: 2 * i, as: UInt16.self))
            }
        }
    }

    func value(at i: Int) -> Double {
        switch type {
        case .float32: Double(raw.load(fromByteOffset: 4 * i, as: Float.self))
        case .float64: raw.load(fromByteOffset: 8 * i, as: Double.self)
        case .bfloat16, .float16: value16(raw.load(fromByteOffset: 2 * i, as: UInt16.self), type)
        }
    }
}

/// A view of library-owned memory (state, master) as a TypedBuffer-like reader.
func readValues(_ p: UnsafeRawPointer, _ type: DType, _ n: Int) -> [Double] {
    (0..<n).map { i in
        switch type {
        case .float32: Double(p.load(fromByteOffset: 4 * i, as: Float.self))
        case .float64: p.load(fromByteOffset: 8 * i, as: Double.self)
        case .bfloat16, .float16: value16(p.load(fromByteOffset: 2 * i, as: UInt16.self), type)
        }
    }
}

func readBits16(_ p: UnsafeRawPointer, _ n: Int) -> [UInt16] { (0..<n).map { p.load(fromByteOffset: 2 * $0, as: UInt16.self) } }

/// One float64 reference step of `config` from the given values; `state` in the library's slot order.
func referenceStep(_ config: Config, t: Int, p: inout [Double], g: [Double], state: inout [[Double]]) {
    let o = referenceOptions(config), n = p.count
    switch config.algorithm! {
    case .adam, .adafix:
        var r = RefAdam(o, count: n)
        r.m = state[0]; r.v = state[1]
        if o.amsgrad { r.vmax = state[2] }
        r.step(&p, g, t: t)
        state = [r.m, r.v] + (o.amsgrad ? [r.vmax] : [])
    case .sgd:
        var r = RefSGD(o, count: n)
        if o.momentum != 0 { r.buf = state[0] }
        r.step(&p, g, t: t)
        if o.momentum != 0 { state = [r.buf] }
    case .rmsprop:
        var r = RefRMSprop(o, count: n)
        var k = 0
        r.sq = state[k]; k += 1
        if o.centered { r.gavg = state[k]; k += 1 }
        if o.momentum > 0 { r.buf = state[k] }
        r.step(&p, g, t: t)
        state = [r.sq] + (o.centered ? [r.gavg] : []) + (o.momentum > 0 ? [r.buf] : [])
    case .adagrad:
        var r = RefAdagrad(o, count: n)
        r.sum = state[0]
        r.step(&p, g, t: t)
        state = [r.sum]
    }
}

/// The layouts every configuration runs in.
let mixedLayouts: [(String, TensorLayout)] = [
    ("bf16 params+grads, fp32 state", TensorLayout(param: .bfloat16)),
    ("all bf16", TensorLayout(param: .bfloat16, state: .bfloat16)),
    ("fp16 params+grads, fp32 state", TensorLayout(param: .float16)),
    ("all fp16", TensorLayout(param: .float16, state: .float16)),
    ("fp16 params, bf16 state", TensorLayout(param: .float16, state: .bfloat16)),
    ("bf16 params, fp32 grads", TensorLayout(param: .bfloat16, grad: .float32)),
    ("bf16 + fp32 master", TensorLayout(param: .bfloat16, masterWeights: true)),
    ("fp16 + fp32 master, bf16 state", TensorLayout(param: .float16, state: .bfloat16, masterWeights: true)),
    ("offload: fp32 master, bf16 grads, bf16 copy", TensorLayout(param: .float32, grad: .bfloat16, copy: .bfloat16)),
    ("offload: fp32, fp16 grads, bf16 state, fp16 copy",
     TensorLayout(param: .float32, grad: .float16, state: .bfloat16, copy: .float16)),
    ("fp32 params, bf16 state", TensorLayout(param: .float32, state: .bfloat16)),
]

/// A registered mixed tensor and the buffers the test owns for it.
struct MixedCase {
    let layout: TensorLayout
    let count: Int
    let param: TypedBuffer
    let copy: TypedBuffer?
    let index: Int

    /// The values the update computes on: the master (library's) if any, else the parameter.
    func computeValues(_ opt: Optimizer) throws -> [Double] {
        if let master = try opt.tensorLayout(index).master { return readValues(master, .float32, count) }
        return param.values
    }

    func state(_ opt: Optimizer, slots: Int) throws -> [[Double]] {
        try (0..<slots).map { readValues(try opt.stateBuffer(tensor: index, slot: $0), layout.state, count) }
    }
}

final class MixedPrecisionTests: XCTestCase {
    override func tearDown() { try? Threading.setThreadCount(0) }

    func register(_ opt: Optimizer, _ layout: TensorLayout, _ start: [Double]) throws -> MixedCase {
        let param = TypedBuffer(layout.param, start)
        let copy = layout.copy.map { TypedBuffer($0, Array(repeating: 0, count: start.count)) }
        let index = try opt.addTensor(group: 0, layout: layout, param: param.raw, grad: nil, count: start.count,
                                      state: nil, stateCount: 0, copy: copy?.raw)
        return MixedCase(layout: layout, count: start.count, param: param, copy: copy, index: index)
    }

    /// Every configuration (but AdaFix, whose gate needs the exact protocol) in every layout, 300 steps, odd sizes
    /// across the conversion blocks and the vector tails, each step checked against the rounded float64 step.
    func testEveryLayoutMatchesTheRoundedFloat64StepOver300Steps() throws {
        let sizes = [1037, 5]
        var checked = 0, inexact = 0
        for (name, config) in configurations where config.algorithm != .adafix {
            let slots = try config.stateSlots().count
            for (layoutName, layout) in mixedLayouts {
                let opt = try Optimizer(config)
                let problems = sizes.map { Problem(count: $0, seed: UInt64($0) &+ 11) }
                let cases = try problems.map { try register(opt, layout, $0.start(as: Float.self)) }
                for t in 1...300 {
                    // The gradient as the library sees it, rounded to its storage. binary16 state cannot hold the
                    // second moments of the problem's smallest gradients (1e-4: v ~ 1e-11 is below its smallest
                    // subnormal), and from a flushed v the step is ill-conditioned (centered RMSprop's sq - gavg^2
                    // cancels): there every |g| gets 0.05 added, as a loss scale would.
                    let lift = layout.state == .float16 ? 0.05 : 0
                    let grads = problems.map {
                        TypedBuffer(layout.grad, $0.gradient(t, as: Float.self).map { $0 + ($0 < 0 ? -lift : lift) })
                    }
                    var expected: [(p: [Double], state: [[Double]])] = []
                    for (k, c) in cases.enumerated() {
                        var p = try c.computeValues(opt)
                        var state = try c.state(opt, slots: slots)
                        referenceStep(config, t: t, p: &p, g: grads[k].values, state: &state)
                        expected.append((p, state))
                    }
                    try withExtendedLifetime(grads) {
                        let pointers = grads.map { UnsafeRawPointer($0.raw) as UnsafeRawPointer? }
                        try pointers.withUnsafeBufferPointer { _ = try opt.step(grads: $0.baseAddress, count: $0.count) }
                    }
                    for (k, c) in cases.enumerated() {
                        let where_ = "\(name), \(layoutName), n=\(c.count), step \(t)"
                        func compare(_ got: UnsafeRawPointer, _ type: DType, _ want: [Double], _ what: String) {
                            if type.isSixteenBit {
                                let bits = readBits16(got, c.count)
                                // Where a sum cancels (m = beta1 m + (1 - beta1) g near 0) float32 and float64 differ
                                // by the float32 error of the terms, which can be many ulps of a tiny result: an
                                // absolute floor at the float32 error of the buffer's scale covers that.
                                let floor = 1e-5 * (want.filter(\.isFinite).map { abs($0) }.max() ?? 0)
                                for i in 0..<c.count {
                                    let d = ulps(bits[i], bits16(want[i], type), type)
                                    checked += 1
                                    if d != 0 { inexact += 1 }
                                    if d > 1 && !(abs(value16(bits[i], type) - want[i]) <= floor) {
                                        XCTFail("\(where_): \(what)[\(i)] = \(value16(bits[i], type)), reference \(want[i])")
                                        return
                                    }
                                }
                            } else {
                                let got = readValues(got, type, c.count)
                                let scale = want.filter(\.isFinite).map { abs($0) }.max() ?? 0
                                for i in 0..<c.count where !(abs(got[i] - want[i]) <= 1e-5 * scale + 1e-30)
                                    && !(got[i].isNaN && want[i].isNaN) && got[i] != want[i] {
                                    XCTFail("\(where_): \(what)[\(i)] = \(got[i]), reference \(want[i])")
                                    return
                                }
                            }
                        }
                        let info = try opt.tensorLayout(c.index)
                        if let master = info.master {
                            compare(master, .float32, expected[k].p, "master")
                        }
                        compare(c.param.raw, layout.param, expected[k].p, "param")
                        if let copy = c.copy { compare(copy.raw, copy.type, expected[k].p, "copy") }
                        for s in 0..<slots {
                            compare(try opt.stateBuffer(tensor: c.index, slot: s), layout.state, expected[k].state[s], "state \(s)")
                        }
                    }
                    if testRun.map({ $0.failureCount > 0 }) ?? false { return }
                }
            }
        }
        // Rounded alike, the two sides disagree only where float32 and float64 fall on either side of a rounding
        // boundary: rare.
        XCTAssertLessThan(Double(inexact), 0.002 * Double(checked), "\(inexact) of \(checked) 16-bit values off by one ulp")
    }

    /// The mixed pass on every ISA tier: AVX2 and AVX-512 give the same bits (the same roundings), the baseline
    /// (separate multiply and add) within one 16-bit ulp per step of them.
    func testMixedLayoutsGiveTheSameBitsOnAVX2AndAVX512() throws {
        guard let avx2 = kernelSet(ADAMCORE_ISA_AVX2_FMA), let avx512 = kernelSet(ADAMCORE_ISA_AVX512) else {
            throw XCTSkip("this CPU has no AVX-512")
        }
        for (name, config) in configurations {
            for (layoutName, var layout) in mixedLayouts {
                if layout.state == .bfloat16 { layout.stochasticRounding.insert(.state) }
                if layout.param == .bfloat16 || layout.copy == .bfloat16 { layout.stochasticRounding.insert(.parameters) }
                XCTAssertEqual(try run(config, layout, kernels: avx512, steps: 20), try run(config, layout, kernels: avx2, steps: 20),
                               "\(name), \(layoutName)")
            }
        }
    }

    /// The fused Adam loop (16-bit conversions in registers) and the staged pass around the float32 kernel do the
    /// same operations in the same order: bit for bit the same, on every tier, for every fused layout with and
    /// without master weights, copy-out and stochastic rounding, at sizes around the vector width and the blocks;
    /// the fused loop with software prefetch (as large steps run it) too.
    func testFusedAdamEqualsTheStagedPassBitForBit() throws {
        let layouts: [TensorLayout] = [
            TensorLayout(param: .bfloat16), TensorLayout(param: .bfloat16, state: .bfloat16),
            TensorLayout(param: .bfloat16, state: .bfloat16, stochasticRounding: [.parameters, .state]),
            TensorLayout(param: .bfloat16, masterWeights: true), TensorLayout(param: .float16),
            TensorLayout(param: .float16, state: .float16), TensorLayout(param: .float16, masterWeights: true),
            TensorLayout(param: .float32, grad: .bfloat16, copy: .bfloat16),
            TensorLayout(param: .float32, grad: .bfloat16, copy: .bfloat16, stochasticRounding: .parameters),
            TensorLayout(param: .float32, grad: .float16, copy: .float16),
        ]
        let configs = configurations.filter { $0.1.algorithm == .adam }
        for kernels in availableKernelSets {
            for layout in layouts {
                for (name, config) in configs {
                    for n in [5, 16, 17, 1037, 3000] {
                        let problem = Problem(count: n, seed: UInt64(n) &+ 2)
                        let slots = try config.stateSlots().count
                        func buffers() -> [TypedBuffer] {
                            [TypedBuffer(layout.param, problem.start(as: Float.self)),
                             TypedBuffer(layout.grad, problem.gradient(3, as: Float.self))]
                                + (0..<3).map { k in TypedBuffer(layout.state, problem.gradient(10 + k, as: Float.self).map { abs($0) }) }
                                + [TypedBuffer(.float32, problem.start(as: Float.self).map { $0 + 1e-3 }),
                                   TypedBuffer(layout.copy ?? .bfloat16, Array(repeating: 0, count: n))]
                        }
                        let a = buffers(), b = buffers(), c = buffers()
                        func streams(_ x: [TypedBuffer], prefetch: Bool = false) -> MixedStreams {
                            MixedStreams(param: x[0].raw, grad: UnsafeRawPointer(x[1].raw),
                                         state: StateSlots(slots > 0 ? x[2].raw : nil, slots > 1 ? x[3].raw : nil,
                                                           slots > 2 ? x[4].raw : nil),
                                         master: layout.masterWeights ? x[5].raw.assumingMemoryBound(to: Float.self) : nil,
                                         copy: layout.copy == nil ? nil : x[6].raw, layout: layout, stateCount: slots,
                                         key: 99, first: 0, prefetchAhead: prefetch)
                        }
                        let coefficients = AdamCoefficients<Float>(config.raw, step: 3)
                        let variant = AdamVariant(hasL2: config.raw.weight_decay != 0 && !config.flags.contains(.decoupledWeightDecay),
                                                  decoupled: config.flags.contains(.decoupledWeightDecay),
                                                  amsgrad: config.flags.contains(.amsgrad), updateV: true, trackStep: false,
                                                  saveGradient: false)
                        _ = kernels.mixedAdam(streams(a), n, coefficients, variant)
                        _ = kernels.staged(streams(b), n) { kernels.adam32($0, $1, coefficients, variant) }
                        _ = kernels.mixedAdam(streams(c, prefetch: true), n, coefficients, variant)
                        XCTAssertEqual(a.map(\.bits), b.map(\.bits), "\(isaName(kernels)) \(layout) \(name) n=\(n)")
                        XCTAssertEqual(a.map(\.bits), c.map(\.bits), "prefetch \(isaName(kernels)) \(layout) \(name) n=\(n)")
                    }
                }
            }
        }
    }

    /// Runs `steps` steps of tensors of `sizes` elements; returns every stored bit.
    func run(_ config: Config, _ layout: TensorLayout, kernels: KernelSet = .baseline, steps: Int, seed: UInt64 = 7,
             threads: Int = 1, sizes: [Int] = [1037, 40]) throws -> [[UInt64]] {
        try Threading.setThreadCount(threads)
        let opt = try Optimizer(config, kernels: kernels)
        opt.roundingSeed = seed
        let problems = sizes.map { Problem(count: $0, seed: UInt64($0)) }
        let cases = try problems.map { try register(opt, layout, $0.start(as: Float.self)) }
        for t in 1...steps {
            let grads = problems.map { TypedBuffer(layout.grad, $0.gradient(t, as: Float.self)) }
            try withExtendedLifetime(grads) {
                let pointers = grads.map { UnsafeRawPointer($0.raw) as UnsafeRawPointer? }
                try pointers.withUnsafeBufferPointer { _ = try opt.step(grads: $0.baseAddress, count: $0.count) }
                if config.algorithm == .adafix && !config.flags.contains(.adafixNextGradient) {
                    let fresh = problems.indices.map { TypedBuffer(layout.grad, grads[$0].values.map { 1.5 * $0 }) }
                    try withExtendedLifetime(fresh) {
                        let newPointers = fresh.map { UnsafeRawPointer($0.raw) as UnsafeRawPointer? }
                        try pointers.withUnsafeBufferPointer { old in
                            try newPointers.withUnsafeBufferPointer { new in
                                try opt.adafixObserve(grads: old.baseAddress, newGrads: new.baseAddress, count: old.count)
                            }
                        }
                    }
                }
            }
        }
        var bits: [[UInt64]] = []
        let slots = try config.stateSlots().count
        for c in cases {
            bits.append(c.param.bits)
            if let copy = c.copy { bits.append(copy.bits) }
            if let master = try opt.tensorLayout(c.index).master { bits.append(TypedBufferView(master, .float32, c.count).bits) }
            for s in 0..<slots { bits.append(TypedBufferView(try opt.stateBuffer(tensor: c.index, slot: s), layout.state, c.count).bits) }
        }
        bits.append([opt.lipschitz.bitPattern, UInt64(opt.stepCount)])
        return bits
    }

    /// Stochastic rounding is a function of (seed, step, tensor, element): the same bits for every thread count
    /// and on a rerun, different bits for another seed.
    func testStochasticRoundingIsReproducibleAcrossThreadCountsAndDiffersBySeed() throws {
        let layout = TensorLayout(param: .bfloat16, state: .bfloat16, stochasticRounding: [.parameters, .state])
        for (name, config) in [("adamw", Config.adamW(lr: 1e-2, weightDecay: 0.1)), ("sgd momentum", .sgd(lr: 1e-2, momentum: 0.9))] {
            let sizes = [70_001, 1037, 40]   // the first large enough for the steps to split across threads
            let one = try run(config, layout, steps: 6, seed: 42, threads: 1, sizes: sizes)
            let before = WorkerPool.shared.parallelJobs
            XCTAssertEqual(try run(config, layout, steps: 6, seed: 42, threads: 2, sizes: sizes), one, "\(name): 2 threads")
            XCTAssertGreaterThan(WorkerPool.shared.parallelJobs, before, "the parallel path must have run")
            XCTAssertEqual(try run(config, layout, steps: 6, seed: 42, threads: 3, sizes: sizes), one, "\(name): 3 threads")
            XCTAssertEqual(try run(config, layout, steps: 6, seed: 42, threads: 1, sizes: sizes), one, "\(name): rerun")
            let other = try run(config, layout, steps: 6, seed: 43, threads: 1, sizes: sizes)
            XCTAssertNotEqual(other[0], one[0], "\(name): another seed must round differently")
            // ... but only in the rounding: within one ulp of the same step.
            let nearest = try run(config, TensorLayout(param: .bfloat16, state: .bfloat16), steps: 1, seed: 42)
            let stochastic = try run(config, layout, steps: 1, seed: 42)
            for (a, b) in zip(nearest[0], stochastic[0]) { XCTAssertLessThanOrEqual(ulps(UInt16(a), UInt16(b)), 1) }
        }
    }

    /// Unbiased: x rounded stochastically many times (SGD steps of a constant tiny gradient, each below the
    /// bfloat16 ulp) moves on average as the exact sum does, where round-to-nearest does not move at all.
    func testStochasticRoundingIsUnbiasedWhereNearestStalls() throws {
        let n = 4096, steps = 64
        let delta = 1.0 / 128 / 24   // 1/24 of the bfloat16 ulp in [1, 2): round-to-nearest drops it
        func run(_ rounding: StochasticRounding) throws -> [Double] {
            let opt = try Optimizer(.sgd(lr: 1))
            opt.roundingSeed = 9
            let p = TypedBuffer(.bfloat16, Array(repeating: 1, count: n))
            let g = TypedBuffer(.float32, Array(repeating: -delta, count: n))
            _ = try opt.addTensor(group: 0, layout: TensorLayout(param: .bfloat16, grad: .float32, stochasticRounding: rounding),
                                  param: p.raw, grad: UnsafeRawPointer(g.raw), count: n, state: nil, stateCount: 0)
            for _ in 0..<steps { try opt.step() }
            return withExtendedLifetime(g) { p.values }
        }
        XCTAssertEqual(Set(try run([])), [1], "round-to-nearest loses every update below half an ulp")
        let values = try run(.parameters)
        let exact = 1 + Double(steps) * delta
        let mean = values.reduce(0, +) / Double(n)
        // Each step adds delta in expectation; an element's 64 rounding errors (each of variance <= ulp^2 / 4, ulp
        // = 2^-7 throughout [1, 2)) sum to a standard deviation of at most 4 ulp, so the mean of n elements is within
        // 5 sigma = 5 * 4 ulp / sqrt(n) of the exact value.
        let ulp = 1.0 / 128
        XCTAssertEqual(mean, exact, accuracy: 5 * 4 * ulp / Double(n).squareRoot())
        XCTAssertGreaterThan(mean, 1 + 0.5 * Double(steps) * delta, "stochastic rounding must move the parameter")
    }

    /// The generator's rounding itself, on fixed values: the mean of a million rounded copies of x is x within 5
    /// standard errors, for values at several fractions of an ulp and both signs.
    func testStochasticRoundingOfOneValueIsUnbiased() throws {
        let n = 1 << 20
        for x in [1.0 + 0.25 / 128, -3.0 - 0.9 / 64, 1e-3 * (1 + 0.5 / 128), 0.1] {
            let opt = try Optimizer(.sgd(lr: 1))
            let p = TypedBuffer(.bfloat16, Array(repeating: 0, count: n))
            let g = TypedBuffer(.float32, Array(repeating: -x, count: n))
            _ = try opt.addTensor(group: 0, layout: TensorLayout(param: .bfloat16, grad: .float32, stochasticRounding: .parameters),
                                  param: p.raw, grad: UnsafeRawPointer(g.raw), count: n, state: nil, stateCount: 0)
            try opt.step()   // p = 0 - 1 * (-x) = x, rounded stochastically per element
            let values = withExtendedLifetime(g) { p.values }
            let mean = values.reduce(0, +) / Double(n)
            let xf = Double(Float(x))
            let below = value16(UInt16(Float(xf).bitPattern >> 16), .bfloat16)
            let above = value16(UInt16(Float(xf).bitPattern >> 16) + 1, .bfloat16)
            XCTAssertEqual(Set(values).subtracting([below, above]), [], "only the two neighbours")
            let f = (abs(xf) - abs(below)) / (abs(above) - abs(below))
            let sigma = abs(above - below) * (f * (1 - f) / Double(n)).squareRoot()
            XCTAssertEqual(mean, xf, accuracy: 5 * sigma + 1e-12, "x = \(x)")
        }
    }

    /// Master weights: with lr 1e-5 and small gradients a bfloat16 parameter follows the float64 run (within
    /// half a bfloat16 ulp of it), where bfloat16 parameters and state without a master stall.
    func testMasterWeightsFollowFloat64WherePlainBF16Stalls() throws {
        let n = 1000, steps = 300
        let problem = Problem(count: n, seed: 5)
        let config = Config.adam(lr: 1e-5)
        // Small gradients of a steady sign, so each element drifts about lr per step: 3e-3 in all, a few bfloat16
        // ulps for most values, but each step far below half an ulp.
        func gradient(_ t: Int) -> [Double] {
            problem.gradient(t, as: Float.self).map { value16(bits16(1e-3 * (1 + 0.5 * $0), .bfloat16), .bfloat16) }
        }
        func run(_ layout: TensorLayout) throws -> [Double] {
            let opt = try Optimizer(config)
            let c = try register(opt, layout, problem.start(as: Float.self).map { value16(bits16($0, .bfloat16), .bfloat16) })
            for t in 1...steps {
                let g = TypedBuffer(layout.grad, gradient(t))
                try withExtendedLifetime(g) {
                    try [UnsafeRawPointer(g.raw) as UnsafeRawPointer?].withUnsafeBufferPointer {
                        _ = try opt.step(grads: $0.baseAddress, count: 1)
                    }
                }
            }
            return c.param.values
        }
        var reference = problem.start(as: Float.self).map { value16(bits16($0, .bfloat16), .bfloat16) }
        let start = reference
        var ref = RefAdam(referenceOptions(config), count: n)
        for t in 1...steps {
            ref.step(&reference, gradient(t), t: t)
        }
        let master = try run(TensorLayout(param: .bfloat16, masterWeights: true))
        for i in 0..<n {
            let ulp = value16(bits16(abs(reference[i]), .bfloat16) + 1, .bfloat16) - value16(bits16(abs(reference[i]), .bfloat16), .bfloat16)
            // Half an ulp, plus the float32 master's own drift from float64 (300 roundings of 2^-24 relative at
            // most: under 1% of an ulp).
            XCTAssertLessThanOrEqual(abs(master[i] - reference[i]), 0.5 * ulp * 1.01, "element \(i)")
        }
        let moved = zip(reference, start).filter { bits16($0, .bfloat16) != bits16($1, .bfloat16) }.count
        XCTAssertGreaterThan(moved, n / 10, "the float64 run must move the bfloat16 value of many elements")
        let plain = try run(TensorLayout(param: .bfloat16, state: .bfloat16))
        let plainMoved = zip(plain, start).filter { $0 != $1 }.count
        XCTAssertLessThan(plainMoved, moved / 10, "without a master, updates below half an ulp are lost")
    }

    /// Every combination the table refuses, and misaligned 16-bit buffers: an error, nothing registered.
    func testLayoutsThatDoNotFitAreRefused() throws {
        let opt = try Optimizer(.adam())
        let p = TypedBuffer(.bfloat16, Array(repeating: 0, count: 64))
        let m = TypedBuffer(.float32, Array(repeating: 0, count: 64))
        let refused: [(String, TensorLayout)] = [
            ("fp64 with bf16 grads", TensorLayout(param: .float64, grad: .bfloat16)),
            ("fp64 with fp32 state", TensorLayout(param: .float64, state: .float32)),
            ("bf16 with fp16 grads", TensorLayout(param: .bfloat16, grad: .float16)),
            ("fp16 with bf16 grads", TensorLayout(param: .float16, grad: .bfloat16)),
            ("bf16 with fp64 grads", TensorLayout(param: .bfloat16, grad: .float64)),
            ("bf16 with fp16 state", TensorLayout(param: .bfloat16, state: .float16)),
            ("fp32 with fp16 state", TensorLayout(param: .float32, state: .float16)),
            ("master on fp32", TensorLayout(param: .float32, masterWeights: true)),
            ("copy from bf16", TensorLayout(param: .bfloat16, copy: .bfloat16)),
            ("fp32 copy", TensorLayout(param: .float32, copy: .float32)),
            ("stochastic fp16 params", TensorLayout(param: .float16, stochasticRounding: .parameters)),
            ("stochastic fp32 state", TensorLayout(param: .bfloat16, stochasticRounding: .state)),
            ("unknown rounding bit", TensorLayout(param: .bfloat16, stochasticRounding: StochasticRounding(rawValue: 4))),
        ]
        for (name, layout) in refused {
            XCTAssertThrowsError(try opt.addTensor(group: 0, layout: layout, param: p.raw, grad: nil, count: 64, state: nil,
                                                   stateCount: 0, copy: layout.copy == nil ? nil : m.raw), name) {
                XCTAssertEqual($0 as? AdamCoreError, AdamCoreError(ADAMCORE_E_DTYPE), name)
            }
        }
        XCTAssertThrowsError(try opt.addTensor(group: 0, layout: TensorLayout(param: .bfloat16), param: p.raw + 1, grad: nil,
                                               count: 8, state: nil, stateCount: 0)) {
            XCTAssertEqual($0 as? AdamCoreError, AdamCoreError(ADAMCORE_E_MISALIGNED))
        }
        XCTAssertThrowsError(try opt.addTensor(group: 0, layout: TensorLayout(param: .bfloat16), param: p.raw, grad: nil,
                                               count: 64, state: nil, stateCount: 0, master: m.raw.assumingMemoryBound(to: Float.self)),
                             "a master for a layout without master weights") {
            XCTAssertEqual($0 as? AdamCoreError, AdamCoreError(ADAMCORE_E_DTYPE))
        }
        XCTAssertThrowsError(try opt.addTensor(group: 0, layout: TensorLayout(param: .float32, copy: .bfloat16),
                                               param: m.raw, grad: nil, count: 64, state: nil, stateCount: 0, copy: nil)) {
            XCTAssertEqual($0 as? AdamCoreError, AdamCoreError(ADAMCORE_E_NULL_POINTER))
        }
        XCTAssertThrowsError(try opt.addTensor(group: 0, layout: TensorLayout(param: .float32, copy: .bfloat16),
                                               param: m.raw, grad: nil, count: 64, state: nil, stateCount: 0,
                                               copy: m.raw + 64), "the copy overlaps the parameter") {
            XCTAssertEqual($0 as? AdamCoreError, AdamCoreError(ADAMCORE_E_OVERLAP))
        }
        XCTAssertEqual(opt.tensorCount, 0)
        XCTAssertEqual(p.bits, Array(repeating: 0, count: 64))
    }

    /// Checkpoints record every dtype, the master weights and the rounding seed: a checkpoint continues bit for
    /// bit in a new optimizer of the same layout, and a differently typed optimizer refuses it with nothing changed.
    func testCheckpointsKeepDtypesMasterWeightsAndSeed() throws {
        let layout = TensorLayout(param: .bfloat16, state: .bfloat16, masterWeights: true, stochasticRounding: [.parameters, .state])
        let problem = Problem(count: 1037, seed: 21)
        func make(_ layout: TensorLayout, seed: UInt64) throws -> (Optimizer, MixedCase) {
            let opt = try Optimizer(.adamW(lr: 1e-2, weightDecay: 0.1))
            opt.roundingSeed = seed
            return (opt, try register(opt, layout, problem.start(as: Float.self)))
        }
        func step(_ opt: Optimizer, _ t: Int) throws {
            let g = TypedBuffer(.bfloat16, problem.gradient(t, as: Float.self))
            try withExtendedLifetime(g) {
                try [UnsafeRawPointer(g.raw) as UnsafeRawPointer?].withUnsafeBufferPointer { _ = try opt.step(grads: $0.baseAddress, count: 1) }
            }
        }
        let (a, ca) = try make(layout, seed: 77)
        for t in 1...5 { try step(a, t) }
        let saved = a.checkpointBytes()
        let paramAtSave = ca.param.values
        for t in 6...10 { try step(a, t) }
        let (b, cb) = try make(layout, seed: 1)
        try b.loadCheckpoint(saved)
        XCTAssertEqual(b.roundingSeed, 77)
        // The parameter itself is the caller's: a resumed run starts from the parameter it had at the save.
        cb.param.write(paramAtSave)
        for t in 6...10 { try step(b, t) }
        XCTAssertEqual(cb.param.bits, ca.param.bits)
        XCTAssertEqual(TypedBufferView(try b.tensorLayout(0).master!, .float32, 1037).bits,
                       TypedBufferView(try a.tensorLayout(0).master!, .float32, 1037).bits)
        XCTAssertEqual(try b.stateBuffer(tensor: 0, slot: 1).load(as: UInt16.self), try a.stateBuffer(tensor: 0, slot: 1).load(as: UInt16.self))
        for other in [TensorLayout(param: .bfloat16, state: .bfloat16, stochasticRounding: [.parameters, .state]),
                      TensorLayout(param: .bfloat16, masterWeights: true, stochasticRounding: [.parameters]),
                      TensorLayout(param: .float16, state: .bfloat16, masterWeights: true),
                      TensorLayout(param: .bfloat16, state: .bfloat16, masterWeights: true)] {
            let (d, cd) = try make(other, seed: 5)
            let before = (cd.param.bits, d.checkpointBytes())
            XCTAssertThrowsError(try d.loadCheckpoint(saved)) {
                XCTAssertEqual($0 as? AdamCoreError, AdamCoreError(ADAMCORE_E_MISMATCH), "\(other)")
            }
            XCTAssertEqual(cd.param.bits, before.0)
            XCTAssertEqual(d.checkpointBytes(), before.1, "nothing changed")
        }
    }

    /// The stateless mixed step (C's adamcore_step_desc) is the optimizer object's step of one tensor, bit for bit:
    /// every layout and configuration but AdaFix, 12 steps, a tensor large enough to split across 2 threads.
    func testStatelessMixedStepEqualsTheOptimizerObject() throws {
        for threads in [1, 2] {
            try Threading.setThreadCount(threads)
            for (name, config) in configurations where config.algorithm != .adafix {
                let slots = try config.stateSlots().count
                let initial = config.algorithm == .adagrad ? config.raw.initial_accumulator_value : 0
                for (layoutName, var layout) in mixedLayouts {
                    if layout.state == .bfloat16 { layout.stochasticRounding.insert(.state) }
                    let n = threads == 2 ? 70_001 : 1037
                    let problem = Problem(count: n, seed: 8)
                    let opt = try Optimizer(config)
                    opt.roundingSeed = 5
                    let c = try register(opt, layout, problem.start(as: Float.self))
                    let p = TypedBuffer(layout.param, problem.start(as: Float.self))
                    let state = (0..<slots).map { _ in TypedBuffer(layout.state, Array(repeating: initial, count: n)) }
                    let master = TypedBuffer(.float32, p.values)
                    let copy = layout.copy.map { TypedBuffer($0, Array(repeating: 0, count: n)) }
                    for t in 1...12 {
                        let g = TypedBuffer(layout.grad, problem.gradient(t, as: Float.self))
                        try withExtendedLifetime(g) {
                            try [UnsafeRawPointer(g.raw) as UnsafeRawPointer?].withUnsafeBufferPointer {
                                _ = try opt.step(grads: $0.baseAddress, count: 1)
                            }
                            try state.map { Optional($0.raw) }.withUnsafeBufferPointer { s in
                                try Step.update(config, step: Int64(t), layout: layout, count: n, param: p.raw,
                                               grad: UnsafeRawPointer(g.raw), state: slots > 0 ? s.baseAddress : nil,
                                               stateCount: slots,
                                               master: layout.masterWeights ? master.raw.assumingMemoryBound(to: Float.self) : nil,
                                               copy: copy?.raw, seed: 5)
                            }
                        }
                    }
                    let what = "\(name), \(layoutName), \(threads) threads"
                    XCTAssertEqual(p.bits, c.param.bits, what)
                    if let copy { XCTAssertEqual(copy.bits, c.copy!.bits, what) }
                    for k in 0..<slots {
                        XCTAssertEqual(state[k].bits, TypedBufferView(try opt.stateBuffer(tensor: 0, slot: k), layout.state, n).bits, what)
                    }
                }
            }
        }
        XCTAssertThrowsError(try Step.update(Config.adafix(lr: 1e-2), step: 1, layout: TensorLayout(param: .bfloat16),
                                            count: 0, param: nil, grad: nil, state: nil, stateCount: 0)) {
            XCTAssertEqual($0 as? AdamCoreError, AdamCoreError(ADAMCORE_E_ALGORITHM))
        }
    }

    /// The binary16 conversions this test module compiles are the baseline's integer ones (no F16C here): every
    /// one of the 65536 patterns widens to Swift's Float(Float16), and every float32 whose low 8 bits are zero (16.7M
    /// values, every rounding tie and both sides of it among them, subnormal results, overflow, Inf and NaN)
    /// rounds to Swift's Float16(Float).
    func testBinary16ConversionsAgreeWithSwiftsOnEveryValue() {
        var wrong = 0
        for base in stride(from: 0, to: 65536, by: 16) {
            var v = SIMD16<UInt16>()
            for lane in 0..<16 { v[lane] = UInt16(base + lane) }
            let wide = adamcore_shim_widen_f16(v)
            for lane in 0..<16 {
                let h = Float16(bitPattern: v[lane])
                if h.isNaN ? !wide[lane].isNaN : wide[lane].bitPattern != Float(h).bitPattern { wrong += 1 }
            }
        }
        XCTAssertEqual(wrong, 0, "widening")
        for base in stride(from: UInt64(0), to: 1 << 32, by: 16 << 8) {
            var v = SIMD16<Float>()
            for lane in 0..<16 { v[lane] = Float(bitPattern: UInt32(base + UInt64(lane) << 8)) }
            let narrow = adamcore_shim_round_f16(v)
            for lane in 0..<16 {
                let want = Float16(v[lane])
                if want.isNaN ? !Float16(bitPattern: narrow[lane]).isNaN : narrow[lane] != want.bitPattern { wrong += 1 }
            }
        }
        XCTAssertEqual(wrong, 0, "rounding")
    }

    /// The Swift face: typed Float16 and BFloat16 buffers register and step as the raw layout does.
    func testTypedSwiftBuffersOfFloat16AndBFloat16() throws {
        XCTAssertEqual(BFloat16(1.00390625).bitPattern, bits16(1.00390625, .bfloat16), "a tie rounds to even")
        XCTAssertEqual(BFloat16(-3.1).float, Float(value16(bits16(-3.1, .bfloat16), .bfloat16)))
        let n = 40
        let problem = Problem(count: n, seed: 4)
        let p16 = UnsafeMutableBufferPointer<Float16>.allocate(capacity: n)
        let g16 = UnsafeMutableBufferPointer<Float16>.allocate(capacity: n)
        let pb = UnsafeMutableBufferPointer<BFloat16>.allocate(capacity: n)
        let gb = UnsafeMutableBufferPointer<BFloat16>.allocate(capacity: n)
        defer { p16.deallocate(); g16.deallocate(); pb.deallocate(); gb.deallocate() }
        for (i, x) in problem.start(as: Float.self).enumerated() { p16[i] = Float16(x); pb[i] = BFloat16(Float(x)) }
        for (i, x) in problem.gradient(1, as: Float.self).enumerated() { g16[i] = Float16(x); gb[i] = BFloat16(Float(x)) }
        let opt = try Optimizer(.adamW(lr: 1e-2, weightDecay: 0.1))
        XCTAssertEqual(try opt.addTensor(p16, grad: UnsafeBufferPointer(g16)), 0)
        XCTAssertEqual(try opt.addTensor(pb, grad: UnsafeBufferPointer(gb), masterWeights: true), 1)
        try opt.step()
        // Against the raw-pointer registration of the same layouts.
        let other = try Optimizer(.adamW(lr: 1e-2, weightDecay: 0.1))
        let c16 = try register(other, TensorLayout(param: .float16), problem.start(as: Float.self))
        let cb = try register(other, TensorLayout(param: .bfloat16, masterWeights: true), problem.start(as: Float.self))
        let grads = [TypedBuffer(.float16, problem.gradient(1, as: Float.self)), TypedBuffer(.bfloat16, problem.gradient(1, as: Float.self))]
        try withExtendedLifetime(grads) {
            try grads.map { UnsafeRawPointer($0.raw) as UnsafeRawPointer? }.withUnsafeBufferPointer {
                _ = try other.step(grads: $0.baseAddress, count: 2)
            }
        }
        XCTAssertEqual(p16.map { UInt64($0.bitPattern) }, c16.param.bits)
        XCTAssertEqual(pb.map { UInt64($0.bitPattern) }, cb.param.bits)
        XCTAssertThrowsError(try opt.addTensor(pb, grad: UnsafeBufferPointer(g16))) {   // bf16 with fp16 gradients
            XCTAssertEqual($0 as? AdamCoreError, AdamCoreError(ADAMCORE_E_DTYPE))
        }
    }

    /// The non-finite guard, AMP's grad_scale and the statistics on 16-bit gradients.
    func testGuardGradScaleAndStatisticsWorkOnSixteenBitTensors() throws {
        let layout = TensorLayout(param: .bfloat16)
        let problem = Problem(count: 1037, seed: 3)
        func make() throws -> (Optimizer, MixedCase) {
            let opt = try Optimizer(.adam(lr: 1e-2))
            return (opt, try register(opt, layout, problem.start(as: Float.self)))
        }
        // grad_scale 1024: the same bits as the unscaled step.
        let (a, ca) = try make(), (b, cb) = try make()
        let g = TypedBuffer(.bfloat16, problem.gradient(1, as: Float.self))
        let scaled = TypedBuffer(.bfloat16, g.values.map { 1024 * $0 })
        try withExtendedLifetime((g, scaled)) {
            try [UnsafeRawPointer(g.raw) as UnsafeRawPointer?].withUnsafeBufferPointer { _ = try a.step(grads: $0.baseAddress, count: 1) }
            try [UnsafeRawPointer(scaled.raw) as UnsafeRawPointer?].withUnsafeBufferPointer {
                _ = try b.step(grads: $0.baseAddress, count: 1, options: StepOptions(gradScale: 1024))
            }
        }
        XCTAssertEqual(ca.param.bits, cb.param.bits)
        // The guard counts a bfloat16 NaN and Inf and skips the step.
        a.guardsNonFinite = true
        let before = ca.param.bits
        var bad = g.values
        bad[3] = .nan; bad[1000] = .infinity
        let poisoned = TypedBuffer(.bfloat16, bad)
        let outcome = try withExtendedLifetime(poisoned) {
            try [UnsafeRawPointer(poisoned.raw) as UnsafeRawPointer?].withUnsafeBufferPointer { try a.step(grads: $0.baseAddress, count: 1) }
        }
        XCTAssertEqual(outcome, .skipped)
        XCTAssertEqual(a.lastNonFiniteCount, 2)
        XCTAssertEqual(ca.param.bits, before)
        // Statistics: the same step with and without them, and the count of elements.
        let (c, cc) = try make(), (d, cd) = try make()
        try c.setCollectsStats(true)
        try withExtendedLifetime(g) {
            try [UnsafeRawPointer(g.raw) as UnsafeRawPointer?].withUnsafeBufferPointer {
                _ = try c.step(grads: $0.baseAddress, count: 1)
                _ = try d.step(grads: $0.baseAddress, count: 1)
            }
        }
        XCTAssertEqual(cc.param.bits, cd.param.bits)
        XCTAssertEqual(c.lastStats.count, 1037)
        XCTAssertEqual(c.lastStats.maxStepOverLR, 1, accuracy: 1e-3, "Adam's first step is lr per element")
    }
}

/// Bits of library-owned memory.
struct TypedBufferView {
    let bits: [UInt64]
    init(_ p: UnsafeRawPointer, _ type: DType, _ n: Int) {
        bits = (0..<n).map { i in
            switch type {
            case .float32: UInt64(p.load(fromByteOffset: 4 * i, as: UInt32.self))
            case .float64: p.load(fromByteOffset: 8 * i, as: UInt64.self)
            case .bfloat16, .float16: UInt64(p.load(fromByteOffset: 2 * i, as: UInt16.self))
            }
        }
    }
}
