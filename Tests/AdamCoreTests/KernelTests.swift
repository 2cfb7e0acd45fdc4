@testable import AdamCore
import CAdamCore
import XCTest

final class KernelTests: XCTestCase {
    let steps = 1000

    /// Every algorithm and option, float32 and float64, every kernel set, 1000 steps, against float64.
    func testEveryConfigurationMatchesTheFloat64Reference() throws {
        let problem = Problem(count: 67, seed: 7)
        for (name, config) in configurations {
            for kernels in availableKernelSets {
                let label = "\(name) [\(isaName(kernels))]"
                assertClose(try runKernel(config, problem, steps: steps, as: Double.self, kernels: kernels),
                            runReference(config, problem, steps: steps, as: Double.self),
                            steps: steps, epsilon: Double.ulpOfOne, label + " f64")
                assertClose(try runKernel(config, problem, steps: steps, as: Float.self, kernels: kernels),
                            runReference(config, problem, steps: steps, as: Float.self),
                            steps: steps, epsilon: Double(Float.ulpOfOne), label + " f32")
            }
        }
    }

    /// The tolerance is tight enough to see a wrong rule: the same comparison against a reference with one
    /// detail changed must fail (so the test above cannot pass vacuously).
    func testTheComparisonDetectsSmallRuleChanges() throws {
        let problem = Problem(count: 67, seed: 7)
        let pairs: [(Config, Config)] = [
            (.adam(lr: 1e-2), .adam(lr: 1e-2, flags: .noBiasCorrection)),
            (.adam(lr: 1e-2, eps: 1e-3), .adam(lr: 1e-2, eps: 1e-3, epsRoot: 1e-6)),
            (.adam(lr: 1e-2, amsgrad: true), .adam(lr: 1e-2, amsgrad: true, flags: .amsgradOptaxOrder)),
            (.adam(lr: 1e-2, weightDecay: 0.1), .adamW(lr: 1e-2, weightDecay: 0.1)),
            (.sgd(lr: 1e-2, momentum: 0.9), .sgd(lr: 1e-2, momentum: 0.9, dampening: 0.01)),
            (.rmsprop(), .rmsprop(centered: true)),
        ]
        for (actual, other) in pairs {
            let kernel = try runKernel(actual, problem, steps: steps, as: Float.self)
            let wrong = runReference(other, problem, steps: steps, as: Float.self)
            XCTAssertFalse(closenessViolations(kernel, wrong, steps: steps, epsilon: Double(Float.ulpOfOne)).isEmpty,
                           "a different rule must not pass the float32 tolerance")
        }
    }

    /// Every tail length: element i's result never depends on how many elements follow it, bit for bit.
    func testEveryTailLengthGivesTheSameResultsAsTheBody() throws {
        let big = Problem(count: 67, seed: 11)
        for (name, config) in configurations where config.algorithm != .adafix { // AdaFix's gate is global
            for kernels in availableKernelSets {
                let full32 = try runKernel(config, big, steps: 3, as: Float.self, kernels: kernels)
                let full64 = try runKernel(config, big, steps: 3, as: Double.self, kernels: kernels)
                for n in 0...67 {
                    let small = Problem(count: n, seed: 11)
                    let r32 = try runKernel(config, small, steps: 3, as: Float.self, kernels: kernels)
                    let r64 = try runKernel(config, small, steps: 3, as: Double.self, kernels: kernels)
                    XCTAssertEqual(r32.param, Array(full32.param.prefix(n)), "\(name) f32 n=\(n)")
                    XCTAssertEqual(r64.param, Array(full64.param.prefix(n)), "\(name) f64 n=\(n)")
                    XCTAssertEqual(r32.state, full32.state.map { Array($0.prefix(n)) }, "\(name) f32 state n=\(n)")
                    XCTAssertEqual(r64.state, full64.state.map { Array($0.prefix(n)) }, "\(name) f64 state n=\(n)")
                }
            }
        }
    }

    /// AVX2+FMA against baseline: fused multiply-adds round once instead of twice, so one step differs by at most
    /// one rounding per fused operation: within 4 ulps of each value's scale (README: "Instruction sets").
    /// Over many steps both stay within the reference tolerance (tested above).
    func testAVX2AndBaselineDifferByAtMostAFewUlpsPerStep() throws {
        guard let avx2 = kernelSet(ADAMCORE_ISA_AVX2_FMA) else { throw XCTSkip("this CPU has no AVX2+FMA") }
        let problem = Problem(count: 67, seed: 5)
        var differed = false
        for (name, config) in configurations {
            for steps in [1, 2, 10] {
                let a = try runKernel(config, problem, steps: steps, as: Float.self, kernels: .baseline)
                let b = try runKernel(config, problem, steps: steps, as: Float.self, kernels: avx2)
                differed = differed || a != b
                for (x, y) in zip([a.param] + a.state, [b.param] + b.state) {
                    let scale = Float(x.map(abs).max() ?? 0)
                    for i in x.indices {
                        XCTAssertLessThanOrEqual(abs(x[i] - y[i]), Double(4 * Float(steps) * scale.ulp),
                                                 "\(name), \(steps) steps, element \(i)")
                    }
                }
            }
        }
        XCTAssertTrue(differed, "the AVX2 set must really be the fused one")
    }

    /// AVX-512 against AVX2+FMA: the same operations with the same roundings (fused multiply-adds in both,
    /// correctly rounded square roots and divisions, no reassociation), so every update is bitwise the same: every
    /// configuration, both dtypes, 300 steps, sizes around the vector widths (tails included), compared as bit
    /// patterns. (The statistics' mean effective lr uses the CPU's reciprocal estimate, which differs by tier.)
    func testAVX512AndAVX2GiveBitwiseTheSameUpdates() throws {
        guard let avx2 = kernelSet(ADAMCORE_ISA_AVX2_FMA), let avx512 = kernelSet(ADAMCORE_ISA_AVX512) else {
            throw XCTSkip("this CPU has no AVX-512")
        }
        for (name, config) in configurations {
            for n in [0, 1, 7, 15, 16, 17, 31, 33, 40, 67, 1000] {
                let problem = Problem(count: n, seed: UInt64(n) &+ 3)
                let steps = n == 67 ? 300 : 5
                func bits(_ r: RunResult) -> [[UInt64]] { ([r.param] + r.state).map { $0.map(\.bitPattern) } }
                XCTAssertEqual(bits(try runKernel(config, problem, steps: steps, as: Float.self, kernels: avx512)),
                               bits(try runKernel(config, problem, steps: steps, as: Float.self, kernels: avx2)),
                               "\(name) f32 n=\(n)")
                XCTAssertEqual(bits(try runKernel(config, problem, steps: steps, as: Double.self, kernels: avx512)),
                               bits(try runKernel(config, problem, steps: steps, as: Double.self, kernels: avx2)),
                               "\(name) f64 n=\(n)")
            }
        }
    }

    /// The plain loops first run the elements before the next cache-line boundary through the tail's code
    /// (`alignmentPeel`): buffers at every alignment, and at different alignments from each other (param, grad and
    /// the three state slots each at its own offset: the peel aligns one of them), give the bits of the aligned
    /// run, for every configuration and tier, both dtypes, sizes around one vector and a few hundred vectors, over
    /// several steps.
    func testEveryAlignmentGivesTheSameBits() throws {
        let sizes = [1, 15, 16, 17, 33, 1000, 4099]
        for (name, config) in configurations {
            for kernels in availableKernelSets {
                for n in sizes {
                    let problem = Problem(count: n, seed: UInt64(n))
                    func bits(_ r: RunResult) -> [[UInt64]] { ([r.param] + r.state).map { $0.map(\.bitPattern) } }
                    let aligned32 = bits(try runKernel(config, problem, steps: 3, as: Float.self, kernels: kernels))
                    let aligned64 = bits(try runKernel(config, problem, steps: 3, as: Double.self, kernels: kernels))
                    for shift in 1..<16 {
                        let offsets = (0..<5).map { (shift * (2 * $0 + 1)) % 16 }
                        XCTAssertEqual(bits(try runKernel(config, problem, steps: 3, as: Float.self, kernels: kernels,
                                                          offsets: offsets)), aligned32,
                                       "\(name) [\(isaName(kernels))] f32 n=\(n) offsets \(offsets)")
                        XCTAssertEqual(bits(try runKernel(config, problem, steps: 3, as: Double.self, kernels: kernels,
                                                          offsets: offsets.map { $0 % 8 })), aligned64,
                                       "\(name) [\(isaName(kernels))] f64 n=\(n) offsets \(offsets)")
                    }
                }
            }
        }
    }

    /// A step over enough elements to stream from memory runs its loops with software prefetch: the same bits as
    /// the loops without it. A 4M-element stateless step (which prefetches) against the same steps taken in calls of
    /// 8192 elements (which do not; every element's update is its own): one configuration per loop shape and
    /// state count (4M-element buffers are slow to make; all configurations would take minutes), both dtypes, every
    /// tier. Then the loops that prefetch through a call (AdaFix's summing loop, the statistics kernels), called
    /// directly with and without prefetch: the same buffers, sums and statistics, bit for bit.
    func testPrefetchingLoopsGiveTheSameBits() throws {
        let n = 1 << 22
        // Whether this CPU's row prefetches or not, force it on for the whole-tensor runs.
        prefetchOverride.store(2, ordering: .relaxed)
        defer { prefetchOverride.store(0, ordering: .relaxed) }
        XCTAssertTrue(prefetchesAhead(elements: n))
        XCTAssertFalse(prefetchesAhead(elements: chunkElements))
        let problem = Problem(count: n, seed: 11)
        let shapes = ["adamw", "amsgrad", "sgd nesterov", "rmsprop centered momentum maximize", "adagrad decay l2 init"]
        XCTAssertEqual(configurations.filter { shapes.contains($0.0) }.count, shapes.count)
        for (name, config) in configurations where shapes.contains(name) {
            for kernels in availableKernelSets {
                func bits(_ r: RunResult) -> [[UInt64]] { ([r.param] + r.state).map { $0.map(\.bitPattern) } }
                let label = "\(name) [\(isaName(kernels))]"
                XCTAssertEqual(bits(try runKernel(config, problem, steps: 2, as: Float.self, kernels: kernels)),
                               bits(try runKernel(config, problem, steps: 2, as: Float.self, kernels: kernels,
                                                  chunk: chunkElements)), label + " f32")
                XCTAssertEqual(bits(try runKernel(config, problem, steps: 2, as: Double.self, kernels: kernels)),
                               bits(try runKernel(config, problem, steps: 2, as: Double.self, kernels: kernels,
                                                  chunk: chunkElements)), label + " f64")
            }
        }
        let small = Problem(count: 3001, seed: 5)
        let coefficients = AdamCoefficients<Float>(Config.adam(lr: 1e-2, weightDecay: 0.1).raw, step: 3)
        for kernels in availableKernelSets {
            for trackStep in [true, false] {
                let variant = AdamVariant(hasL2: true, decoupled: false, amsgrad: !trackStep, updateV: true,
                                          trackStep: trackStep, saveGradient: false)
                var results: [[[UInt64]]] = []
                for prefetch in [false, true] {
                    let buffers = [small.start(as: Float.self), small.gradient(1, as: Float.self),
                                   small.gradient(2, as: Float.self), small.gradient(3, as: Float.self).map { abs($0) },
                                   small.gradient(4, as: Float.self).map { abs($0) }].map { OwnedBuffer<Float>($0) }
                    let b = buffers.map { $0.buffer.baseAddress! }
                    let s = Streams(param: b[0], grad: b[1], s0: b[2], s1: b[3], s2: b[4], prefetchAhead: prefetch)
                    var stats = KernelStats()
                    let sum = trackStep ? kernels.adam32(s, small.count, coefficients, variant)
                                        : kernels.adamStats32(s, small.count, coefficients, variant, &stats)
                    let measured = [stats.count, stats.nonFinite, stats.maxAbsDirection, stats.minDenom, stats.maxDenom,
                                    stats.inverseDenomSum, stats.mSquared, stats.vSquared, stats.stepSquared,
                                    sum].map(\.bitPattern)
                    results.append(buffers.map { $0.values.map(\.bitPattern) } + [measured])
                }
                XCTAssertEqual(results[0], results[1], "\(isaName(kernels)) trackStep=\(trackStep)")
            }
        }
    }

    /// The two entry levels run the same kernels: the optimizer object equals per-tensor stateless steps bit for
    /// bit, with several tensors, both dtypes, two groups and library-allocated state.
    func testOptimizerObjectMatchesStatelessSteps() throws {
        let sizes = [1, 16, 37, 100]
        let problems = sizes.map { Problem(count: $0, seed: UInt64($0)) }
        for (name, config) in configurations where config.algorithm != .adafix {
            for kernels in availableKernelSets {
                var second = config
                second.lr = config.lr * 0.5
                let opt = try Optimizer(config, kernels: kernels)
                XCTAssertEqual(try opt.addGroup(second), 1)
                let params32 = problems.map { OwnedBuffer<Float>($0.start(as: Float.self)) }
                let params64 = problems.map { OwnedBuffer<Double>($0.start(as: Double.self)) }
                for i in sizes.indices {
                    XCTAssertEqual(try opt.addTensor(params32[i].buffer, group: i % 2), 2 * i)
                    XCTAssertEqual(try opt.addTensor(params64[i].buffer, group: i % 2), 2 * i + 1)
                }
                for t in 1...20 {
                    let grads32 = problems.map { OwnedBuffer<Float>($0.gradient(t, as: Float.self)) }
                    let grads64 = problems.map { OwnedBuffer<Double>($0.gradient(t, as: Double.self)) }
                    let pointers: [UnsafeRawPointer?] = sizes.indices.flatMap {
                        [UnsafeRawPointer(grads32[$0].buffer.baseAddress), UnsafeRawPointer(grads64[$0].buffer.baseAddress)]
                    }
                    try withExtendedLifetime((grads32, grads64)) {
                        try pointers.withUnsafeBufferPointer { try opt.step(grads: $0.baseAddress, count: $0.count) }
                    }
                }
                XCTAssertEqual(opt.stepCount, 20)
                for i in sizes.indices {
                    let groupConfig = i % 2 == 0 ? config : second
                    let expected32 = try runKernel(groupConfig, problems[i], steps: 20, as: Float.self, kernels: kernels)
                    let expected64 = try runKernel(groupConfig, problems[i], steps: 20, as: Double.self, kernels: kernels)
                    XCTAssertEqual(params32[i].values, expected32.param, "\(name) f32 tensor \(i)")
                    XCTAssertEqual(params64[i].values, expected64.param, "\(name) f64 tensor \(i)")
                    for slot in expected32.state.indices {
                        let raw32 = try opt.stateBuffer(tensor: 2 * i, slot: slot).assumingMemoryBound(to: Float.self)
                        let raw64 = try opt.stateBuffer(tensor: 2 * i + 1, slot: slot).assumingMemoryBound(to: Double.self)
                        XCTAssertEqual((0..<sizes[i]).map { Double(raw32[$0]) }, expected32.state[slot], "\(name) state")
                        XCTAssertEqual((0..<sizes[i]).map { raw64[$0] }, expected64.state[slot], "\(name) state")
                    }
                }
            }
        }
    }

    /// The Swift array and buffer-pointer forms (which call the typed pointer forms) run the raw path the C exports
    /// call (`runKernel`): same bits, every configuration.
    func testSwiftFormsMatchTheRawPath() throws {
        let problem = Problem(count: 29, seed: 17)
        for (name, config) in configurations {
            var p = problem.start(as: Float.self).map { Float($0) }
            var state = try Step.makeState(for: config, count: 29, as: Float.self)
            var lipschitz = 0.0
            for t in 1...50 {
                let g = problem.gradient(t, as: Float.self).map { Float($0) }
                if config.algorithm == .adafix {
                    let before = p.map { Double($0) }
                    let r = try Step.adafix(config, step: Int64(t), param: &p, grad: g, state: &state, lipschitz: lipschitz)
                    let next = Problem.newPointGradient(g.map { Double($0) }, before: before, after: p.map { Double($0) })
                        .map { Float($0) }
                    lipschitz = try Step.adafixLipschitz(count: 29, grad: g, newGrad: next, stepNormSquared: r.stepNormSquared,
                                                         lipschitz: lipschitz)
                } else {
                    try Step.step(config, step: Int64(t), param: &p, grad: g, state: &state)
                }
            }
            let expected = try runKernel(config, problem, steps: 50, as: Float.self)
            XCTAssertEqual(p.map { Double($0) }, expected.param, name)
            XCTAssertEqual(state.map { $0.map { Double($0) } }, expected.state, name)
            let buffers = try bufferFormRun(config, problem, steps: 50)
            XCTAssertEqual(buffers.param, expected.param, "\(name), buffer forms")
            XCTAssertEqual(buffers.state, expected.state, "\(name), buffer forms")
        }
        var p: [Double] = [1, 2], state = try Step.makeState(for: .adam(), count: 2, as: Double.self)
        XCTAssertThrowsError(try Step.step(.adam(), step: 1, param: &p, grad: [1], state: &state))
        XCTAssertThrowsError(try Step.step(.adam(amsgrad: true), step: 1, param: &p, grad: [1, 1], state: &state))
        XCTAssertEqual(p, [1, 2], "rejected calls leave the arrays alone")
    }

    /// `steps` steps of `config` through the buffer-pointer forms, float32.
    private func bufferFormRun(_ config: Config, _ problem: Problem, steps: Int) throws -> RunResult {
        let n = problem.count, slots = try config.stateSlots()
        let p = OwnedBuffer<Float>(problem.start(as: Float.self))
        let s = try Step.makeState(for: config, count: n, as: Float.self).map { OwnedBuffer<Float>($0.map { Double($0) }) }
        func slot(_ name: StateSlot) -> UnsafeMutableBufferPointer<Float>? { slots.firstIndex(of: name).map { s[$0].buffer } }
        var lipschitz = 0.0
        for t in 1...steps {
            let g = OwnedBuffer<Float>(problem.gradient(t, as: Float.self)), grad = UnsafeBufferPointer(g.buffer)
            let step = Int64(t)
            switch config.algorithm! {
            case .adam:
                try Step.adam(config, step: step, param: p.buffer, grad: grad, expAvg: s[0].buffer, expAvgSq: s[1].buffer,
                              maxExpAvgSq: slot(.maxExpAvgSq))
            case .adafix:
                let before = p.values
                let r = try Step.adafix(config, step: step, param: p.buffer, grad: grad, expAvg: s[0].buffer,
                                        expAvgSq: s[1].buffer, lipschitz: lipschitz)
                let next = OwnedBuffer<Float>(Problem.newPointGradient(g.values, before: before, after: p.values))
                lipschitz = try Step.adafixLipschitz(count: n, grad: grad.baseAddress, newGrad: UnsafePointer(next.buffer.baseAddress),
                                                     stepNormSquared: r.stepNormSquared, lipschitz: lipschitz)
            case .sgd:
                try Step.sgd(config, step: step, param: p.buffer, grad: grad, momentumBuffer: slot(.momentumBuffer))
            case .rmsprop:
                try Step.rmsprop(config, step: step, param: p.buffer, grad: grad, squareAvg: s[0].buffer,
                                 gradAvg: slot(.gradAvg), momentumBuffer: slot(.momentumBuffer))
            case .adagrad:
                try Step.adagrad(config, step: step, param: p.buffer, grad: grad, stateSum: s[0].buffer)
            }
        }
        return RunResult(param: p.values, state: s.map(\.values))
    }

    /// NaN rules of the vector max: AMSGrad's running max propagates a NaN (torch.maximum), touching only its own
    /// element; AdaFix's max|g| ignores NaN (the gate decides on the finite values).
    func testNaNRulesOfTheVectorMax() throws {
        for kernels in availableKernelSets {
            var gradient = [Double](repeating: 0.5, count: 20)
            gradient[3] = .nan
            let p = OwnedBuffer<Float>(Array(repeating: 1, count: 20)), g = OwnedBuffer<Float>(gradient)
            let state = (0..<3).map { _ in OwnedBuffer<Float>(Array(repeating: 0, count: 20)) }
            func raw(_ b: OwnedBuffer<Float>) -> UnsafeMutableRawPointer? { UnsafeMutableRawPointer(b.buffer.baseAddress) }
            // The raw path, which takes the tier (the array form runs the baseline).
            try Step.plainUpdate(Config.adam(amsgrad: true).raw, .adam, 1, 20, .float32, raw(p), UnsafeRawPointer(raw(g)),
                                 StateSlots(raw(state[0]), raw(state[1]), raw(state[2])), kernels)
            XCTAssertTrue(state[2].buffer[3].isNaN && p.buffer[3].isNaN, isaName(kernels))
            XCTAssertEqual(state[2].buffer.enumerated().filter { $0.element.isNaN }.map(\.offset), [3])
            XCTAssertEqual(T(p.buffer[4]), T(p.buffer[19]))
            var q = [Float](repeating: 1, count: 20), fixState = try Step.makeState(for: .adafix(), count: 20, as: Float.self)
            let r = try Step.adafix(.adafix(lr: 0.1), step: 1, param: &q, grad: Array(g.buffer), state: &fixState, lipschitz: 1)
            XCTAssertEqual(r.maxAbsGrad, 0.5, "NaN ignored by the gate's max")
        }
    }

    private func T(_ x: Float) -> UInt32 { x.bitPattern }
}
