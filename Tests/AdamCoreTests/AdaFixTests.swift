import AdamCore
import CAdamCore
import XCTest

final class AdaFixTests: XCTestCase {
    /// A case worked by hand: f(x) = x^2 (g = 2x, true L = 2), lr 0.1, betas (0.9, 0.999), eps 0, x0 = 0.05.
    ///   step 1: L = 0, so the gate passes (0.1 >= 0). m = 0.01, v = 1e-5, m^ = 0.1, v^ = 0.01, x1 = 0.05 - 0.1 = -0.05.
    ///   observe g' = 2 * x1 = -0.1: L = |-0.1 - 0.1| / |-0.05 - 0.05| = 2.
    ///   step 2: g = -0.1, |g| = 0.1 < L * lr = 0.2, so v stays 1e-5 exactly. m = 0.9 * 0.01 - 0.01 = -0.001,
    ///           m^ = -0.001 / 0.19, v^ = 1e-5 / 0.001999, x2 = -0.05 + 0.1 * (0.001 / 0.19) / sqrt(1e-5 / 0.001999).
    func testGateAndLipschitzOnAHandWorkedCase() throws {
        let opt = try Optimizer(.adafix(lr: 0.1, eps: 0))
        let x = OwnedBuffer<Double>([0.05]), g = OwnedBuffer<Double>([0]), gNew = OwnedBuffer<Double>([0])
        _ = try opt.addTensor(x.buffer, grad: UnsafeBufferPointer(g.buffer))
        try withExtendedLifetime((x, g, gNew)) {
        let v = try opt.stateBuffer(tensor: 0, slot: 1).assumingMemoryBound(to: Double.self)
        func observe() throws {
            gNew.buffer[0] = 2 * x.buffer[0]
            var list: [UnsafeRawPointer?] = [UnsafeRawPointer(gNew.buffer.baseAddress)]
            try list.withUnsafeMutableBufferPointer { try opt.adafixObserve(grads: nil, newGrads: $0.baseAddress, count: 1) }
            list.removeAll()
        }

        g.buffer[0] = 2 * x.buffer[0]
        try opt.step()
        XCTAssertTrue(opt.vUpdated)
        XCTAssertEqual(x.buffer[0], -0.05, accuracy: 1e-15)
        XCTAssertEqual(v[0], 1e-5, accuracy: 1e-18) // (1 - 0.999) is not exactly 0.001 in binary
        try observe()
        XCTAssertEqual(opt.lipschitz, 2, accuracy: 1e-12)

        let vAfterStep1 = v[0]
        g.buffer[0] = 2 * x.buffer[0]
        try opt.step()
        XCTAssertFalse(opt.vUpdated)
        XCTAssertEqual(v[0], vAfterStep1, "a frozen v keeps its bits")
        let expected = -0.05 + 0.1 * (0.001 / 0.19) / (1e-5 / 0.001999).squareRoot()
        XCTAssertEqual(x.buffer[0], expected, accuracy: 1e-12)
        try observe()
        XCTAssertEqual(opt.lipschitz, 2, accuracy: 1e-9, "a quadratic never shows more than its true L")

        XCTAssertThrowsError(try opt.adafixObserve(grads: nil, newGrads: nil, count: 1)) {
            XCTAssertEqual($0 as? AdamCoreError, AdamCoreError(ADAMCORE_E_SEQUENCE), "observe twice for one step")
        }
        }
    }

    /// One decision for the whole optimizer: a tensor whose own gradients are tiny still gets its v updated when
    /// another tensor's max|g| passes the gate, and no tensor's v changes when none does.
    func testTheGateIsOneDecisionOverAllTensors() throws {
        for kernels in availableKernelSets {
            let opt = try Optimizer(.adafix(lr: 0.1), kernels: kernels)
            let a = OwnedBuffer<Float>([1, 1, 1]), b = OwnedBuffer<Double>([1, 1])
            let ga = OwnedBuffer<Float>([0, 0, 0]), gb = OwnedBuffer<Double>([0, 0])
            _ = try opt.addTensor(a.buffer, grad: UnsafeBufferPointer(ga.buffer))
            _ = try opt.addTensor(b.buffer, grad: UnsafeBufferPointer(gb.buffer))
            try withExtendedLifetime((a, b, ga, gb)) {
            try opt.setLipschitz(10)                       // threshold L * lr = 1
            let vb = try opt.stateBuffer(tensor: 1, slot: 1).assumingMemoryBound(to: Double.self)

            for i in 0..<3 { ga.buffer[i] = 0.5 }          // below the threshold everywhere
            for i in 0..<2 { gb.buffer[i] = 1e-3 }
            try opt.step()
            XCTAssertFalse(opt.vUpdated)
            XCTAssertEqual(vb[0], 0, "no v moves when the gate is closed")

            ga.buffer[1] = -1.5                            // one coordinate of the other tensor passes
            try opt.step()
            XCTAssertTrue(opt.vUpdated)
            XCTAssertEqual(vb[0], 0.001 * 1e-6, accuracy: 1e-15, "b's v is updated by the global decision")
            }
        }
    }

    /// The next-gradient mode: L comes from consecutive steps' gradients, with no extra evaluation; checked
    /// against a float64 reference of the same approximation.
    func testNextGradientModeMatchesItsReference() throws {
        let problem = Problem(count: 23, seed: 3)
        let config = Config.adafix(lr: 1e-2, nextGradient: true)
        let opt = try Optimizer(config)
        let p = OwnedBuffer<Double>(problem.start(as: Double.self))
        let g = OwnedBuffer<Double>(Array(repeating: 0, count: 23))
        _ = try opt.addTensor(p.buffer, grad: UnsafeBufferPointer(g.buffer))
        XCTAssertEqual(try config.stateSlots(), [.expAvg, .expAvgSq, .prevGrad])
        try withExtendedLifetime((p, g)) {

        var o = RefOptions(); o.lr = 1e-2
        var ref = RefAdam(o, count: 23)
        var x = problem.start(as: Double.self)
        var lipschitz = 0.0, lastStep = 0.0, previous: [Double]? = nil
        var frozen = 0
        for t in 1...300 {
            let grad = problem.gradient(t, as: Double.self)
            for i in 0..<23 { g.buffer[i] = grad[i] }
            try opt.step()
            if let previous, lastStep > 0 {
                let dg = zip(grad, previous).map { ($0 - $1) * ($0 - $1) }.reduce(0, +)
                lipschitz = max(lipschitz, (dg / lastStep).squareRoot())
            }
            let update = grad.map(abs).max()! >= lipschitz * o.lr
            frozen += update ? 0 : 1
            let before = x
            ref.step(&x, grad, t: t, updateV: update)
            lastStep = zip(x, before).map { ($0 - $1) * ($0 - $1) }.reduce(0, +)
            previous = grad
            XCTAssertEqual(opt.vUpdated, update, "step \(t)")
        }
        XCTAssertGreaterThan(frozen, 0, "the test must exercise a closed gate")
        XCTAssertLessThan(frozen, 300, "and an open one")
        XCTAssertEqual(opt.lipschitz, lipschitz, accuracy: 1e-9 * lipschitz)
        for i in 0..<23 { XCTAssertEqual(p.buffer[i], x[i], accuracy: 1e-10) }
        }
    }

    /// The float64 comparison of the exact mode (testEveryConfigurationMatchesTheFloat64Reference) is only
    /// meaningful if its problem opens and closes the gate: check that it does.
    func testTheReferenceProblemExercisesBothGateDecisions() throws {
        let problem = Problem(count: 67, seed: 7)
        var lipschitz = 0.0, opened = 0, closed = 0
        let x = OwnedBuffer<Float>(problem.start(as: Float.self))
        let m = OwnedBuffer<Float>(Array(repeating: 0, count: 67)), v = OwnedBuffer<Float>(Array(repeating: 0, count: 67))
        for t in 1...1000 {
            let g = OwnedBuffer<Float>(problem.gradient(t, as: Float.self))
            let before = x.values
            try withExtendedLifetime(g) {
                let r = try Step.adafix(Config.adafix(lr: 1e-2), step: Int64(t), param: x.buffer,
                                        grad: UnsafeBufferPointer(g.buffer), expAvg: m.buffer, expAvgSq: v.buffer,
                                        lipschitz: lipschitz)
                if r.vUpdated { opened += 1 } else { closed += 1 }
                let next = OwnedBuffer<Float>(Problem.newPointGradient(g.values, before: before, after: x.values))
                lipschitz = try withExtendedLifetime(next) {
                    try Step.adafixLipschitz(count: 67, grad: g.buffer.baseAddress, newGrad: next.buffer.baseAddress,
                                             stepNormSquared: r.stepNormSquared, lipschitz: lipschitz)
                }
            }
        }
        XCTAssertEqual(lipschitz, Problem.curvature, accuracy: 1e-3, "L recovers the problem's curvature")
        XCTAssertGreaterThan(opened, 10)
        XCTAssertGreaterThan(closed, 10)
    }
}
