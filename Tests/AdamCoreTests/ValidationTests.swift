import AdamCore
import CAdamCore
import XCTest

final class ValidationTests: XCTestCase {
    func expectStatus(_ status: adamcore_status, _ body: () throws -> Void, _ label: String,
                      file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), label, file: file, line: line) { error in
            XCTAssertEqual((error as? AdamCoreError)?.name, AdamCoreError(status).name, label, file: file, line: line)
        }
    }

    /// Each field out of range, or set where its algorithm does not use it, is named by its own status.
    func testEveryConfigFieldIsValidated() {
        typealias Edit = (inout adamcore_config) -> Void
        let cases: [(String, Algorithm, Edit, adamcore_status)] = [
            ("struct_size", .adam, { $0.struct_size = 8 }, ADAMCORE_E_STRUCT_SIZE),
            ("algorithm", .adam, { $0.algorithm = 99 }, ADAMCORE_E_ALGORITHM),
            ("reserved", .adam, { $0.reserved = 1 }, ADAMCORE_E_RESERVED),
            ("unknown flag", .adam, { $0.flags = 1 << 20 }, ADAMCORE_E_FLAGS),
            ("nesterov on adam", .adam, { $0.flags = Flags.nesterov.rawValue }, ADAMCORE_E_FLAGS),
            ("optax order without amsgrad", .adam, { $0.flags = Flags.amsgradOptaxOrder.rawValue }, ADAMCORE_E_FLAGS),
            ("amsgrad on adafix", .adafix, { $0.flags = Flags.amsgrad.rawValue }, ADAMCORE_E_FLAGS),
            ("lr < 0", .adam, { $0.lr = -1e-3 }, ADAMCORE_E_LR),
            ("lr NaN", .sgd, { $0.lr = .nan }, ADAMCORE_E_LR),
            ("lr inf", .rmsprop, { $0.lr = .infinity }, ADAMCORE_E_LR),
            ("beta1 = 1", .adam, { $0.beta1 = 1 }, ADAMCORE_E_BETA1),
            ("beta1 < 0", .adafix, { $0.beta1 = -0.1 }, ADAMCORE_E_BETA1),
            ("beta1 on sgd", .sgd, { $0.beta1 = 0.9 }, ADAMCORE_E_BETA1),
            ("beta2 = 1", .adam, { $0.beta2 = 1 }, ADAMCORE_E_BETA2),
            ("beta2 NaN", .adam, { $0.beta2 = .nan }, ADAMCORE_E_BETA2),
            ("eps < 0", .adam, { $0.eps = -1e-8 }, ADAMCORE_E_EPS),
            ("eps on sgd", .sgd, { $0.eps = 1e-8 }, ADAMCORE_E_EPS),
            ("eps_root inf", .adam, { $0.eps_root = .infinity }, ADAMCORE_E_EPS_ROOT),
            ("eps_root on adagrad", .adagrad, { $0.eps_root = 1 }, ADAMCORE_E_EPS_ROOT),
            ("weight_decay < 0", .adam, { $0.weight_decay = -0.1 }, ADAMCORE_E_WEIGHT_DECAY),
            ("momentum > 1", .sgd, { $0.momentum = 1.5 }, ADAMCORE_E_MOMENTUM),
            ("momentum on adam", .adam, { $0.momentum = 0.9 }, ADAMCORE_E_MOMENTUM),
            ("dampening > 1", .sgd, { $0.dampening = 2 }, ADAMCORE_E_DAMPENING),
            ("nesterov without momentum", .sgd, { $0.flags = Flags.nesterov.rawValue }, ADAMCORE_E_NESTEROV),
            ("nesterov with dampening", .sgd, { $0.flags = Flags.nesterov.rawValue; $0.momentum = 0.9; $0.dampening = 0.1 },
             ADAMCORE_E_DAMPENING),
            ("alpha > 1", .rmsprop, { $0.alpha = 1.01 }, ADAMCORE_E_ALPHA),
            ("alpha on adam", .adam, { $0.alpha = 0.99 }, ADAMCORE_E_ALPHA),
            ("lr_decay < 0", .adagrad, { $0.lr_decay = -1 }, ADAMCORE_E_LR_DECAY),
            ("initial accumulator NaN", .adagrad, { $0.initial_accumulator_value = .nan }, ADAMCORE_E_INITIAL_ACCUMULATOR),
            ("initial accumulator on sgd", .sgd, { $0.initial_accumulator_value = 1 }, ADAMCORE_E_INITIAL_ACCUMULATOR),
        ]
        for (label, algorithm, edit, status) in cases {
            var c = Config(algorithm)
            XCTAssertNoThrow(try c.validate(), "defaults of \(algorithm)")
            edit(&c.raw)
            expectStatus(status, { try c.validate() }, label)
            expectStatus(status, { _ = try Optimizer(c) }, label + " (optimizer)")
        }
    }

    /// Buffer misuse through the stateless API: each gets its status and leaves every buffer byte-identical.
    func testBufferMisuseIsRejectedWithoutWriting() throws {
        let n = 40
        let p = OwnedBuffer<Float>((0..<n).map { Double($0) }), g = OwnedBuffer<Float>(Array(repeating: 0.5, count: n))
        let m = OwnedBuffer<Float>(Array(repeating: 0.25, count: n)), v = OwnedBuffer<Float>(Array(repeating: 0.125, count: n))
        let extra = OwnedBuffer<Float>(Array(repeating: 1, count: n))
        let before = [p.values, g.values, m.values, v.values, extra.values]
        let adam = Config.adam(), ams = Config.adam(amsgrad: true)
        let pp = p.buffer.baseAddress!, gp = UnsafePointer(g.buffer.baseAddress!), mp = m.buffer.baseAddress!
        let vp = v.buffer.baseAddress!, ep = extra.buffer.baseAddress!
        let misaligned = UnsafeMutableRawPointer(mp).advanced(by: 1).assumingMemoryBound(to: Float.self)
        let cases: [(String, adamcore_status, () throws -> Void)] = [
            ("null param", ADAMCORE_E_NULL_POINTER, { try Step.adam(adam, step: 1, count: n, param: nil, grad: gp, expAvg: mp, expAvgSq: vp, maxExpAvgSq: nil) }),
            ("null grad", ADAMCORE_E_NULL_POINTER, { try Step.adam(adam, step: 1, count: n, param: pp, grad: nil, expAvg: mp, expAvgSq: vp, maxExpAvgSq: nil) }),
            ("null exp_avg_sq", ADAMCORE_E_NULL_POINTER, { try Step.adam(adam, step: 1, count: n, param: pp, grad: gp, expAvg: mp, expAvgSq: nil, maxExpAvgSq: nil) }),
            ("amsgrad without max", ADAMCORE_E_NULL_POINTER, { try Step.adam(ams, step: 1, count: n, param: pp, grad: gp, expAvg: mp, expAvgSq: vp, maxExpAvgSq: nil) }),
            ("max without amsgrad", ADAMCORE_E_STATE, { try Step.adam(adam, step: 1, count: n, param: pp, grad: gp, expAvg: mp, expAvgSq: vp, maxExpAvgSq: ep) }),
            ("step 0", ADAMCORE_E_STEP, { try Step.adam(adam, step: 0, count: n, param: pp, grad: gp, expAvg: mp, expAvgSq: vp, maxExpAvgSq: nil) }),
            ("step < 0", ADAMCORE_E_STEP, { try Step.adam(adam, step: -5, count: n, param: pp, grad: gp, expAvg: mp, expAvgSq: vp, maxExpAvgSq: nil) }),
            ("misaligned", ADAMCORE_E_MISALIGNED, { try Step.adam(adam, step: 1, count: n - 1, param: pp, grad: gp, expAvg: misaligned, expAvgSq: vp, maxExpAvgSq: nil) }),
            ("param aliases exp_avg", ADAMCORE_E_OVERLAP, { try Step.adam(adam, step: 1, count: n, param: pp, grad: gp, expAvg: pp, expAvgSq: vp, maxExpAvgSq: nil) }),
            ("partial overlap", ADAMCORE_E_OVERLAP, { try Step.adam(adam, step: 1, count: n / 2, param: pp, grad: gp, expAvg: mp, expAvgSq: mp + n / 4, maxExpAvgSq: nil) }),
            ("grad aliases param", ADAMCORE_E_OVERLAP, { try Step.adam(adam, step: 1, count: n, param: pp, grad: UnsafePointer(pp), expAvg: mp, expAvgSq: vp, maxExpAvgSq: nil) }),
            ("count wraps the address space", ADAMCORE_E_LENGTH, { try Step.adam(adam, step: 1, count: Int.max / 2, param: pp, grad: gp, expAvg: mp, expAvgSq: vp, maxExpAvgSq: nil) }),
            ("wrong algorithm", ADAMCORE_E_ALGORITHM, { try Step.sgd(adam, step: 1, count: n, param: pp, grad: gp, momentumBuffer: nil) }),
            ("sgd momentum without buffer", ADAMCORE_E_NULL_POINTER, { try Step.sgd(Config.sgd(momentum: 0.9), step: 1, count: n, param: pp, grad: gp, momentumBuffer: nil) }),
            ("sgd buffer without momentum", ADAMCORE_E_STATE, { try Step.sgd(Config.sgd(), step: 1, count: n, param: pp, grad: gp, momentumBuffer: mp) }),
            ("rmsprop grad_avg without centered", ADAMCORE_E_STATE, { try Step.rmsprop(Config.rmsprop(), step: 1, count: n, param: pp, grad: gp, squareAvg: mp, gradAvg: vp, momentumBuffer: nil) }),
            ("rmsprop centered without grad_avg", ADAMCORE_E_NULL_POINTER, { try Step.rmsprop(Config.rmsprop(centered: true), step: 1, count: n, param: pp, grad: gp, squareAvg: mp, gradAvg: nil, momentumBuffer: nil) }),
            ("adafix negative L", ADAMCORE_E_LIPSCHITZ, { _ = try Step.adafix(Config.adafix(), step: 1, count: n, param: pp, grad: gp, expAvg: mp, expAvgSq: vp, lipschitz: -1) }),
            ("adafix NaN L", ADAMCORE_E_LIPSCHITZ, { _ = try Step.adafix(Config.adafix(), step: 1, count: n, param: pp, grad: gp, expAvg: mp, expAvgSq: vp, lipschitz: .nan) }),
            ("adafix next-gradient is for the object", ADAMCORE_E_FLAGS, { _ = try Step.adafix(Config.adafix(nextGradient: true), step: 1, count: n, param: pp, grad: gp, expAvg: mp, expAvgSq: vp, lipschitz: 0) }),
            ("lipschitz non-finite ratio", ADAMCORE_E_NONFINITE, { _ = try Step.adafixLipschitz(count: n, grad: gp, newGrad: UnsafePointer(ep), stepNormSquared: .leastNonzeroMagnitude, lipschitz: 0) }),
            ("buffer lengths differ", ADAMCORE_E_LENGTH, { try Step.adam(Config.adam(), step: 1, param: p.buffer, grad: UnsafeBufferPointer(rebasing: g.buffer[0..<5]), expAvg: m.buffer, expAvgSq: v.buffer) }),
        ]
        for (label, status, call) in cases {
            expectStatus(status, call, label)
            XCTAssertEqual([p.values, g.values, m.values, v.values, extra.values], before, "\(label) wrote to a buffer")
        }
        XCTAssertNoThrow(try Step.adam(adam, step: 1, count: n, param: pp, grad: gp, expAvg: mp, expAvgSq: vp, maxExpAvgSq: nil))
        XCTAssertNotEqual(p.values, before[0], "a valid call does write")
    }

    /// Optimizer-object misuse: each gets its status and changes nothing (buffers, step count, L).
    func testOptimizerMisuseIsRejectedWithoutWriting() throws {
        let opt = try Optimizer(.adam(amsgrad: true))
        let a = OwnedBuffer<Float>([1, 2, 3]), ga = OwnedBuffer<Float>([0.1, 0.2, 0.3])
        let b = OwnedBuffer<Double>([4, 5]), gb = OwnedBuffer<Double>([0.4, 0.5])
        let other = OwnedBuffer<Float>([7, 8, 9])
        XCTAssertEqual(try opt.addTensor(a.buffer, grad: UnsafeBufferPointer(ga.buffer)), 0)
        XCTAssertEqual(try opt.addTensor(b.buffer), 1)
        let snapshot = { [a.values, ga.values, b.values, gb.values, other.values] }
        let before = snapshot()
        let pa = UnsafeMutableRawPointer(a.buffer.baseAddress!), po = UnsafeMutableRawPointer(other.buffer.baseAddress!)
        let grads: [UnsafeRawPointer?] = [UnsafeRawPointer(ga.buffer.baseAddress), UnsafeRawPointer(gb.buffer.baseAddress)]
        let cases: [(String, adamcore_status, () throws -> Void)] = [
            ("registered grad missing", ADAMCORE_E_NULL_POINTER, { try opt.step() }),
            ("too few grads", ADAMCORE_E_COUNT, { _ = try grads.withUnsafeBufferPointer { try opt.step(grads: $0.baseAddress, count: 1) } }),
            ("a grad aliases a param", ADAMCORE_E_OVERLAP, {
                let bad: [UnsafeRawPointer?] = [UnsafeRawPointer(pa), grads[1]]
                try bad.withUnsafeBufferPointer { try opt.step(grads: $0.baseAddress, count: 2) } }),
            ("a grad is NULL", ADAMCORE_E_NULL_POINTER, {
                let bad: [UnsafeRawPointer?] = [grads[0], nil]
                try bad.withUnsafeBufferPointer { try opt.step(grads: $0.baseAddress, count: 2) } }),
            ("tensor overlaps a registered one", ADAMCORE_E_OVERLAP, {
                _ = try opt.addTensor(group: 0, dtype: 1, param: pa, grad: nil, count: 3, state: nil, stateCount: 0) }),
            ("unknown dtype", ADAMCORE_E_DTYPE, {
                _ = try opt.addTensor(group: 0, dtype: 3, param: po, grad: nil, count: 3, state: nil, stateCount: 0) }),
            ("unknown group", ADAMCORE_E_INDEX, {
                _ = try opt.addTensor(group: 1, dtype: 1, param: po, grad: nil, count: 3, state: nil, stateCount: 0) }),
            ("wrong state count", ADAMCORE_E_STATE, {
                _ = try opt.addTensor(group: 0, dtype: 1, param: po, grad: nil, count: 3, state: nil, stateCount: 2) }),
            ("state buffer aliases its param", ADAMCORE_E_OVERLAP, {
                _ = try opt.addTensor(other.buffer, state: [other.buffer, other.buffer, other.buffer]) }),
            ("changed state layout", ADAMCORE_E_STATE, { try opt.setConfig(.adam(), forGroup: 0) }),
            ("other algorithm's group", ADAMCORE_E_ALGORITHM, { _ = try opt.addGroup(.sgd()) }),
            ("L of a non-AdaFix optimizer", ADAMCORE_E_ALGORITHM, { try opt.setLipschitz(1) }),
            ("observe on Adam", ADAMCORE_E_ALGORITHM, { try opt.adafixObserve(grads: nil, newGrads: nil, count: 2) }),
            ("negative step count", ADAMCORE_E_STEP, { try opt.setStepCount(-1) }),
            ("state slot out of range", ADAMCORE_E_INDEX, { _ = try opt.stateBuffer(tensor: 0, slot: 3) }),
            ("tensor out of range", ADAMCORE_E_INDEX, { _ = try opt.stateBuffer(tensor: 2, slot: 0) }),
        ]
        for (label, status, call) in cases {
            expectStatus(status, call, label)
            XCTAssertEqual(snapshot(), before, "\(label) wrote to a buffer")
            XCTAssertEqual(opt.stepCount, 0, label)
            XCTAssertEqual(opt.tensorCount, 2, label)
        }
        try opt.setStepCount(Int64.max)
        expectStatus(ADAMCORE_E_STEP, { _ = try grads.withUnsafeBufferPointer { try opt.step(grads: $0.baseAddress, count: 2) } },
                     "step count overflow")
        XCTAssertEqual(snapshot(), before)
        try opt.setStepCount(0)
        try grads.withUnsafeBufferPointer { try opt.step(grads: $0.baseAddress, count: 2) }
        XCTAssertEqual(opt.stepCount, 1)
        XCTAssertNotEqual(snapshot(), before)
    }

    /// Names and messages exist for every status, are distinct, match the enumerators, the list is the contiguous
    /// run OK, STEP_SKIPPED, -1, -2, ... with nothing left out, and unknown codes are named as such.
    func testEveryStatusHasANameAndMessage() {
        let codes = AdamCoreError.allCodes
        XCTAssertEqual(codes, [0, 1] + (1...Int32(codes.count - 2)).map { -$0 })
        XCTAssertEqual(codes.last, ADAMCORE_E_ISA.rawValue)
        let names = codes.map { AdamCoreError.describe($0).name }
        XCTAssertEqual(Set(names).count, names.count)
        XCTAssertFalse(names.contains("ADAMCORE_E_UNKNOWN"))
        XCTAssertTrue(codes.allSatisfy { AdamCoreError.describe($0).message.count > 5 })
        XCTAssertEqual(AdamCoreError.describe(codes.min()! - 1).name, "ADAMCORE_E_UNKNOWN")
        XCTAssertEqual(AdamCoreError.describe(2).name, "ADAMCORE_E_UNKNOWN")
        XCTAssertEqual(AdamCoreError.describe(ADAMCORE_E_MISMATCH.rawValue).name, "ADAMCORE_E_MISMATCH")
        XCTAssertEqual(AdamCoreError.describe(ADAMCORE_E_BETA1.rawValue).name, "ADAMCORE_E_BETA1")
        XCTAssertEqual(AdamCoreError(ADAMCORE_E_BETA1).description, "ADAMCORE_E_BETA1: " + AdamCoreError(ADAMCORE_E_BETA1).message)
    }

    /// The Swift version and the header's macros are one version.
    func testVersionMatchesTheHeader() {
        XCTAssertEqual(AdamCoreVersion.string.description, "\(ADAMCORE_VERSION_MAJOR).\(ADAMCORE_VERSION_MINOR).\(ADAMCORE_VERSION_PATCH)")
        XCTAssertEqual(AdamCoreVersion.string.description, ADAMCORE_VERSION_STRING)
    }
}
