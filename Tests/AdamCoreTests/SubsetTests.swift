import AdamCore
import CAdamCore
import XCTest

/// Per-tensor step counts and steps of a subset of the tensors (torch's grad-None rule), through the Swift API:
/// `step(tensors:grads:count:options:)`, `tensorSteps`, `setStepCount(_:ofTensor:)` and `setParam(_:ofTensor:)`,
/// against the float64 reference (Reference.swift) in which every tensor counts only its own steps.
final class SubsetTests: XCTestCase {
    override func tearDown() { try? Threading.setThreadCount(0) }

    // MARK: Helpers


    private func pointer<T>(_ b: OwnedBuffer<T>) -> UnsafeRawPointer? { UnsafeRawPointer(b.buffer.baseAddress) }

    /// Tensor `i`'s parameter (in `param`) and state slots, as Double.
    private func result<T: Steppable>(_ opt: Optimizer, _ i: Int, _ param: OwnedBuffer<T>, slots: Int) throws -> RunResult {
        let n = param.buffer.count
        var state: [[Double]] = []
        for k in 0..<slots {
            let raw = try opt.stateBuffer(tensor: i, slot: k).assumingMemoryBound(to: T.self)
            state.append((0..<n).map { Double(raw[$0]) })
        }
        return RunResult(param: param.values, state: state)
    }

    /// One step of the listed tensors (`grads` one per listed tensor, or nil for the registered ones).
    @discardableResult
    private func step(_ opt: Optimizer, _ list: [Int], _ grads: [UnsafeRawPointer?]?,
                      _ options: StepOptions = StepOptions()) throws -> StepOutcome {
        try list.withUnsafeBufferPointer { l in
            guard let grads else { return try opt.step(tensors: l.baseAddress, grads: nil, count: l.count, options: options) }
            return try grads.withUnsafeBufferPointer { g in
                try opt.step(tensors: l.baseAddress, grads: g.baseAddress, count: l.count, options: options)
            }
        }
    }

    private func adamState(_ r: RefAdam, _ o: RefOptions) -> [[Double]] { [r.m, r.v] + (o.amsgrad ? [r.vmax] : []) }

    // MARK: Adam with a tensor that skips every third step

    func testAdamWithATensorThatSkipsEveryThirdStepMatchesItsOwnCountReference() throws {
        let configs: [(String, Config)] = [
            ("adam l2", .adam(lr: 1e-2, weightDecay: 0.1)),
            ("amsgradw", .adamW(lr: 1e-2, weightDecay: 0.1, amsgrad: true)),
            ("adam betas eps_root", .adam(lr: 1e-2, betas: (0.5, 0.9), epsRoot: 1e-4)),
        ]
        for (name, config) in configs {
            try skipEveryThird(config, as: Double.self, epsilon: Double.ulpOfOne, "\(name) f64")
            try skipEveryThird(config, as: Float.self, epsilon: Double(Float.ulpOfOne), "\(name) f32")
        }
    }

    /// Tensor A steps on every call; tensor B is left out of every third (t = 3, 6, ...), so after 300 calls A has
    /// taken 300 steps and B 200, and B's bias correction must use 1...200, not the call number.
    private func skipEveryThird<T: Steppable>(_ config: Config, as _: T.Type, epsilon: Double, _ label: String) throws {
        let steps = 300
        let pa = Problem(count: 67, seed: 21), pb = Problem(count: 45, seed: 22)
        let opt = try Optimizer(config)
        let a = OwnedBuffer<T>(pa.start(as: T.self)), b = OwnedBuffer<T>(pb.start(as: T.self))
        XCTAssertEqual(try opt.addTensor(a.buffer), 0)
        XCTAssertEqual(try opt.addTensor(b.buffer), 1)
        let o = referenceOptions(config)
        var ra = RefAdam(o, count: pa.count), rb = RefAdam(o, count: pb.count), rbByCall = RefAdam(o, count: pb.count)
        var xa = pa.start(as: T.self), xb = pb.start(as: T.self), xbByCall = xb
        var countB = 0
        for t in 1...steps {
            let skipB = t % 3 == 0
            let ga = OwnedBuffer<T>(pa.gradient(t, as: T.self)), gb = OwnedBuffer<T>(pb.gradient(t, as: T.self))
            // Both orders of the list: B first on odd calls.
            let list = skipB ? [0] : t % 2 == 1 ? [1, 0] : [0, 1]
            let grads = list.map { $0 == 0 ? pointer(ga) : pointer(gb) }
            try withExtendedLifetime((ga, gb)) { XCTAssertEqual(try step(opt, list, grads), .applied, label) }
            ra.step(&xa, ga.values, t: t)
            if !skipB {
                countB += 1
                rb.step(&xb, gb.values, t: countB)
                rbByCall.step(&xbByCall, gb.values, t: t)
            }
        }
        XCTAssertEqual(countB, 200)
        XCTAssertEqual(Array(opt.tensorSteps), [300, 200], label)
        XCTAssertEqual(opt.stepCount, 300, label)
        let slots = try config.stateSlots().count
        let gotA = try result(opt, 0, a, slots: slots), gotB = try result(opt, 1, b, slots: slots)
        assertClose(gotA, RunResult(param: xa, state: adamState(ra, o)), steps: steps, epsilon: epsilon, "\(label) A")
        assertClose(gotB, RunResult(param: xb, state: adamState(rb, o)), steps: countB, epsilon: epsilon,
                    "\(label) B (its own count)")
        // The comparison can tell the counts apart: a B stepped with the call numbers is far outside the bound.
        XCTAssertFalse(closenessViolations(gotB, RunResult(param: xbByCall, state: adamState(rbByCall, o)),
                                           steps: countB, epsilon: epsilon).isEmpty,
                       "\(label): B must not also match a reference that uses the call number")
        withExtendedLifetime((a, b)) {}
    }

    // MARK: SGD momentum restart

    /// setStepCount(0, ofTensor:) with a zeroed momentum buffer restarts that tensor as a fresh one: its next step
    /// takes torch's first-step rule again (buffer = gradient, no dampening), while the other tensor carries on.
    func testSGDMomentumRestartsAfterSetStepCountZeroAndAZeroedBuffer() throws {
        let configs: [(String, Config)] = [
            ("sgd momentum dampening l2", .sgd(lr: 1e-2, momentum: 0.9, dampening: 0.3, weightDecay: 0.1)),
            ("sgd momentum dampening maximize", .sgd(lr: 1e-2, momentum: 0.8, dampening: 0.5, maximize: true)),
        ]
        for (name, config) in configs {
            try restart(config, as: Double.self, epsilon: Double.ulpOfOne, "\(name) f64")
            try restart(config, as: Float.self, epsilon: Double(Float.ulpOfOne), "\(name) f32")
        }
    }

    private func restart<T: Steppable>(_ config: Config, as _: T.Type, epsilon: Double, _ label: String) throws {
        let p0 = Problem(count: 53, seed: 31), p1 = Problem(count: 20, seed: 32)
        let opt = try Optimizer(config)
        let a = OwnedBuffer<T>(p0.start(as: T.self)), b = OwnedBuffer<T>(p1.start(as: T.self))
        _ = try opt.addTensor(a.buffer)
        _ = try opt.addTensor(b.buffer)
        let o = referenceOptions(config)
        var ra = RefSGD(o, count: p0.count), rb = RefSGD(o, count: p1.count)
        var xa = p0.start(as: T.self), xb = p1.start(as: T.self)
        func stepBoth(_ t: Int) throws -> ([Double], [Double]) {
            let ga = OwnedBuffer<T>(p0.gradient(t, as: T.self)), gb = OwnedBuffer<T>(p1.gradient(t, as: T.self))
            let grads = [pointer(ga), pointer(gb)]
            try withExtendedLifetime((ga, gb)) {
                _ = try grads.withUnsafeBufferPointer { try opt.step(grads: $0.baseAddress, count: 2) }
            }
            return (ga.values, gb.values)
        }
        for t in 1...10 {
            let (ga, gb) = try stepBoth(t)
            ra.step(&xa, ga, t: t)
            rb.step(&xb, gb, t: t)
        }
        try opt.setStepCount(0, ofTensor: 0)
        XCTAssertEqual(Array(opt.tensorSteps), [0, 10], label)
        XCTAssertEqual(opt.stepCount, 10, "\(label): the call count is not a tensor's")
        let buffer = try opt.stateBuffer(tensor: 0, slot: 0).assumingMemoryBound(to: T.self)
        for i in 0..<p0.count { buffer[i] = 0 }
        ra = RefSGD(o, count: p0.count)          // a fresh tensor: empty buffer, count 0
        var zeroedOnly = ra, xaZeroedOnly = xa   // the control: zeroed buffer but the count carried on
        for t in 11...20 {
            let (ga, gb) = try stepBoth(t)
            ra.step(&xa, ga, t: t - 10)
            zeroedOnly.step(&xaZeroedOnly, ga, t: t)
            rb.step(&xb, gb, t: t)
        }
        XCTAssertEqual(Array(opt.tensorSteps), [10, 20], label)
        XCTAssertEqual(opt.stepCount, 20, label)
        let gotA = try result(opt, 0, a, slots: 1), gotB = try result(opt, 1, b, slots: 1)
        assertClose(gotA, RunResult(param: xa, state: [ra.buf]), steps: 20, epsilon: epsilon, "\(label) restarted tensor")
        assertClose(gotB, RunResult(param: xb, state: [rb.buf]), steps: 20, epsilon: epsilon, "\(label) other tensor")
        XCTAssertFalse(closenessViolations(gotA, RunResult(param: xaZeroedOnly, state: [zeroedOnly.buf]), steps: 20,
                                           epsilon: epsilon).isEmpty,
                       "\(label): the restart must be the first-step rule, not only a zeroed buffer")
        withExtendedLifetime((a, b)) {}
    }

    // MARK: Threads

    /// A subset step splits the same fixed items whatever the thread count: bitwise equal with 1 and 2 threads, with
    /// subsets that include a tensor large enough for the pool (> 32768 elements), subsets whose only large tensor
    /// is the float64 one, and subsets below the threshold (run on the caller).
    func testSubsetStepsGiveTheSameBitsForEveryThreadCount() throws {
        let before = WorkerPool.shared.parallelJobs
        let configs: [(String, Config)] = [
            ("adam l2", .adam(lr: 1e-2, weightDecay: 0.1)),
            ("amsgradw", .adamW(lr: 1e-2, weightDecay: 0.1, amsgrad: true)),
            ("sgd momentum dampening", .sgd(lr: 1e-2, momentum: 0.9, dampening: 0.2)),
            ("adagrad decay", .adagrad(lrDecay: 0.01, initialAccumulatorValue: 0.1)),
        ]
        for kernels in availableKernelSets {
            for (name, config) in configs {
                let one = try subsetRun(config, kernels: kernels, threads: 1)
                XCTAssertEqual(try subsetRun(config, kernels: kernels, threads: 2), one, "\(name) [\(isaName(kernels))]")
            }
        }
        XCTAssertGreaterThan(WorkerPool.shared.parallelJobs, before, "the parallel path must have run")
    }

    private func subsetRun(_ config: Config, kernels: KernelSet, threads: Int) throws -> [[UInt64]] {
        try Threading.setThreadCount(threads)
        let opt = try Optimizer(config, kernels: kernels)
        let sizes32 = [70_001] + (1...12).map { 7 * $0 + 1 }
        let sizes64 = [40_003, 17, 300]
        let params32 = sizes32.map { OwnedBuffer<Float>(Problem(count: $0, seed: UInt64($0)).start(as: Float.self)) }
        let params64 = sizes64.map { OwnedBuffer<Double>(Problem(count: $0, seed: UInt64($0 + 1)).start(as: Double.self)) }
        for p in params32 { _ = try opt.addTensor(p.buffer) }
        for p in params64 { _ = try opt.addTensor(p.buffer) }
        let count = sizes32.count + sizes64.count, big32 = 0, big64 = sizes32.count
        for t in 1...12 {
            let list: [Int]
            switch t % 4 {
            case 0: list = Array((0..<count).filter { $0 % 2 == 0 }.reversed())   // big32 and every other one
            case 1: list = (0..<count).filter { $0 != big32 }                      // big64 alone above the threshold
            case 2: list = (0..<count).filter { $0 != big32 && $0 != big64 }       // below the threshold
            default: list = Array(0..<count)
            }
            let g32 = sizes32.map { OwnedBuffer<Float>(Problem(count: $0, seed: UInt64($0)).gradient(t, as: Float.self)) }
            let g64 = sizes64.map { OwnedBuffer<Double>(Problem(count: $0, seed: UInt64($0 + 1)).gradient(t, as: Double.self)) }
            let all = g32.map { pointer($0) } + g64.map { pointer($0) }
            try withExtendedLifetime((g32, g64)) { XCTAssertEqual(try step(opt, list, list.map { all[$0] }), .applied) }
        }
        var bits = params32.map { $0.values.map { Float($0).bitPattern }.map(UInt64.init) }
            + params64.map { $0.values.map { $0.bitPattern } }
        bits += try stateBits(opt, config)
        bits.append(opt.tensorSteps.map { UInt64($0) } + [UInt64(opt.stepCount)])
        return withExtendedLifetime((params32, params64)) { bits }
    }

    // MARK: A tensor added later, setParam

    /// A tensor added after 5 steps starts at count 0; setParam moves the updates to the new memory (its values are
    /// used from then on), leaves the old memory alone and keeps state and count.
    func testALateTensorStartsAtZeroAndSetParamMovesTheUpdates() throws {
        let config = Config.adam(lr: 1e-2, weightDecay: 0.05)
        let o = referenceOptions(config)
        let pa = Problem(count: 40, seed: 41), pb = Problem(count: 25, seed: 42)
        let opt = try Optimizer(config)
        let a = OwnedBuffer<Double>(pa.start(as: Double.self)), b = OwnedBuffer<Double>(pb.start(as: Double.self))
        var ra = RefAdam(o, count: pa.count), rb = RefAdam(o, count: pb.count)
        var xa = pa.start(as: Double.self), xb = pb.start(as: Double.self)
        XCTAssertEqual(try opt.addTensor(a.buffer), 0)
        var target = a
        func run(_ range: ClosedRange<Int>, both: Bool) throws {
            for t in range {
                let ga = OwnedBuffer<Double>(pa.gradient(t, as: Double.self)), gb = OwnedBuffer<Double>(pb.gradient(t, as: Double.self))
                try withExtendedLifetime((ga, gb)) {
                    XCTAssertEqual(try step(opt, both ? [1, 0] : [0], both ? [pointer(gb), pointer(ga)] : [pointer(ga)]), .applied)
                }
                ra.step(&xa, ga.values, t: t)
                if both { rb.step(&xb, gb.values, t: t - 5) }
            }
        }
        try run(1...5, both: false)
        XCTAssertEqual(try opt.addTensor(b.buffer), 1)
        XCTAssertEqual(Array(opt.tensorSteps), [5, 0], "a tensor added later starts at 0")
        XCTAssertEqual(opt.stepCount, 5)
        try run(6...10, both: true)
        XCTAssertEqual(Array(opt.tensorSteps), [10, 5])
        assertClose(try result(opt, 0, a, slots: 2), RunResult(param: xa, state: [ra.m, ra.v]), steps: 10,
                    epsilon: Double.ulpOfOne, "first tensor")
        assertClose(try result(opt, 1, b, slots: 2), RunResult(param: xb, state: [rb.m, rb.v]), steps: 5,
                    epsilon: Double.ulpOfOne, "late tensor, steps 1...5")

        let moved = OwnedBuffer<Double>(a.values.map { 1.5 * $0 - 0.125 })
        xa = moved.values                        // the reference continues from the new memory's values
        let old = a.values
        try opt.setParam(UnsafeMutableRawPointer(moved.buffer.baseAddress), ofTensor: 0)
        XCTAssertEqual(Array(opt.tensorSteps), [10, 5], "setParam keeps the count")
        target = moved
        try run(11...15, both: true)
        XCTAssertEqual(a.values, old, "the old parameter memory must not be written")
        assertClose(try result(opt, 0, target, slots: 2), RunResult(param: xa, state: [ra.m, ra.v]), steps: 15,
                    epsilon: Double.ulpOfOne, "rebound tensor")
        assertClose(try result(opt, 1, b, slots: 2), RunResult(param: xb, state: [rb.m, rb.v]), steps: 10,
                    epsilon: Double.ulpOfOne, "late tensor, steps 1...10")
        // The new memory is a registered buffer now: no gradient may overlap it.
        XCTAssertThrowsError(try step(opt, [1], [UnsafeRawPointer(moved.buffer.baseAddress! + 3)])) {
            XCTAssertEqual($0 as? AdamCoreError, AdamCoreError(ADAMCORE_E_OVERLAP))
        }
        withExtendedLifetime((a, b, moved)) {}
    }

    // MARK: Refused calls

    /// Every refused call throws its status and changes nothing: parameters, state, counts (the checkpoint bytes).
    func testRefusedSubsetCallsThrowAndChangeNothing() throws {
        let opt = try Optimizer(.adam(lr: 1e-2))
        let a = OwnedBuffer<Float>(Problem(count: 37, seed: 51).start(as: Float.self))
        let b = OwnedBuffer<Float>(Problem(count: 37, seed: 52).start(as: Float.self))
        let ga = OwnedBuffer<Float>(Problem(count: 37, seed: 51).gradient(1, as: Float.self))
        let gb = OwnedBuffer<Float>(Problem(count: 37, seed: 52).gradient(1, as: Float.self))
        let spare = OwnedBuffer<Float>(Array(repeating: 0.5, count: 38))
        _ = try opt.addTensor(a.buffer, grad: UnsafeBufferPointer(ga.buffer))
        _ = try opt.addTensor(b.buffer, grad: UnsafeBufferPointer(gb.buffer))
        try step(opt, [0, 1], nil)
        try step(opt, [1], [pointer(gb)])
        XCTAssertEqual(Array(opt.tensorSteps), [1, 2])
        let checkpoint = opt.checkpointBytes(), valuesA = a.values, valuesB = b.values
        let stateA0 = UnsafeRawPointer(try opt.stateBuffer(tensor: 0, slot: 0))
        let stateB1 = UnsafeRawPointer(try opt.stateBuffer(tensor: 1, slot: 1))
        func expect(_ status: adamcore_status, _ label: String, _ body: () throws -> Void) {
            XCTAssertThrowsError(try body(), label) { XCTAssertEqual($0 as? AdamCoreError, AdamCoreError(status), label) }
            XCTAssertEqual(a.values, valuesA, label)
            XCTAssertEqual(b.values, valuesB, label)
            XCTAssert(opt.checkpointBytes() == checkpoint, "\(label): the optimizer changed")
        }
        expect(ADAMCORE_E_INDEX, "index out of range") { try step(opt, [2], [pointer(ga)]) }
        expect(ADAMCORE_E_INDEX, "negative index") { try step(opt, [0, -1], nil) }
        expect(ADAMCORE_E_INDEX, "duplicate index") { try step(opt, [1, 1], [pointer(gb), pointer(gb)]) }
        expect(ADAMCORE_E_INDEX, "more indices than tensors") { try step(opt, [0, 1, 0], nil) }
        expect(ADAMCORE_E_NULL_POINTER, "nil list with a count") { try opt.step(tensors: nil, grads: nil, count: 1) }
        expect(ADAMCORE_E_OVERLAP, "A's gradient over B's parameter") { try step(opt, [0], [UnsafeRawPointer(b.buffer.baseAddress)]) }
        expect(ADAMCORE_E_OVERLAP, "A's gradient over B's state") { try step(opt, [0], [stateB1 + 8]) }
        expect(ADAMCORE_E_OVERLAP, "B's gradient over A's state, A's valid") { try step(opt, [0, 1], [pointer(ga), stateA0]) }
        expect(ADAMCORE_E_OVERLAP, "whole step: B's gradient over A's state") {
            let grads = [pointer(ga), stateA0]
            _ = try grads.withUnsafeBufferPointer { try opt.step(grads: $0.baseAddress, count: 2) }
        }
        expect(ADAMCORE_E_OVERLAP, "setParam over B's parameter") {
            try opt.setParam(UnsafeMutableRawPointer(b.buffer.baseAddress! + 4), ofTensor: 0)
        }
        expect(ADAMCORE_E_OVERLAP, "setParam over B's gradient") {
            try opt.setParam(UnsafeMutableRawPointer(gb.buffer.baseAddress), ofTensor: 0)
        }
        expect(ADAMCORE_E_OVERLAP, "setParam over B's state") { try opt.setParam(UnsafeMutableRawPointer(mutating: stateB1), ofTensor: 0) }
        expect(ADAMCORE_E_OVERLAP, "setParam over its own state") { try opt.setParam(UnsafeMutableRawPointer(mutating: stateA0), ofTensor: 0) }
        expect(ADAMCORE_E_MISALIGNED, "setParam misaligned") {
            try opt.setParam(UnsafeMutableRawPointer(spare.buffer.baseAddress!) + 2, ofTensor: 0)
        }
        expect(ADAMCORE_E_NULL_POINTER, "setParam nil") { try opt.setParam(nil, ofTensor: 0) }
        expect(ADAMCORE_E_INDEX, "setParam bad index") { try opt.setParam(UnsafeMutableRawPointer(spare.buffer.baseAddress), ofTensor: 2) }
        expect(ADAMCORE_E_STEP, "negative tensor count") { try opt.setStepCount(-1, ofTensor: 0) }
        expect(ADAMCORE_E_INDEX, "tensor count, bad index") { try opt.setStepCount(1, ofTensor: 2) }
        // After the refused moves A's parameter is still registered: a gradient over it is still refused.
        expect(ADAMCORE_E_OVERLAP, "B's gradient over A's parameter") { try step(opt, [1], [UnsafeRawPointer(a.buffer.baseAddress)]) }
        XCTAssertEqual(Array(opt.tensorSteps), [1, 2])
        XCTAssertEqual(opt.stepCount, 2)
        // found_inf skips without advancing any count.
        XCTAssertEqual(try step(opt, [0], nil, StepOptions(foundInf: true)), .skipped)
        XCTAssertEqual(Array(opt.tensorSteps), [1, 2])
        XCTAssertEqual(opt.stepCount, 2)
        XCTAssertEqual(a.values, valuesA)

        // AdaFix's gate is global: a proper subset is refused, every tensor in any order is a step.
        let fix = try Optimizer(.adafix(lr: 1e-2))
        let c = OwnedBuffer<Double>(Problem(count: 10, seed: 53).start(as: Double.self))
        let d = OwnedBuffer<Double>(Problem(count: 12, seed: 54).start(as: Double.self))
        let gc = OwnedBuffer<Double>(Problem(count: 10, seed: 53).gradient(1, as: Double.self))
        let gd = OwnedBuffer<Double>(Problem(count: 12, seed: 54).gradient(1, as: Double.self))
        _ = try fix.addTensor(c.buffer, grad: UnsafeBufferPointer(gc.buffer))
        _ = try fix.addTensor(d.buffer, grad: UnsafeBufferPointer(gd.buffer))
        let startC = c.values
        for list in [[0], [1], []] {
            XCTAssertThrowsError(try step(fix, list, nil), "AdaFix \(list)") {
                XCTAssertEqual($0 as? AdamCoreError, AdamCoreError(ADAMCORE_E_ALGORITHM))
            }
        }
        XCTAssertEqual(c.values, startC)
        XCTAssertEqual(fix.stepCount, 0)
        XCTAssertEqual(try step(fix, [1, 0], nil), .applied)
        XCTAssertEqual(Array(fix.tensorSteps), [1, 1])
        withExtendedLifetime((a, b, ga, gb, spare, c, d, gc, gd)) {}
    }
}
