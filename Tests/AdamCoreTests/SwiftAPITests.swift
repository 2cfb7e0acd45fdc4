import XCTest
import AdamCore
import CAdamCore

/// The Swift face's own types: storage the optimizer retains, and Config's Swift fields.
final class SwiftAPITests: XCTestCase {
    /// A registration of TensorStorage steps exactly as one of the same memory through buffer pointers: float32,
    /// and bfloat16 parameters with float32 gradients and master weights.
    func testStorageRegistrationStepsAsTheBufferForm() throws {
        let problem = Problem(count: 37, seed: 3)
        for (name, config) in configurations where config.algorithm != .adafix || !config.flags.contains(.adafixNextGradient) {
            let viaStorage = try Optimizer(config), viaBuffers = try Optimizer(config)
            let p = TensorStorage(problem.start(as: Float.self).map { Float($0) })
            let g = TensorStorage(repeating: Float(0), count: problem.count)
            let p2 = OwnedBuffer<Float>(problem.start(as: Float.self)), g2 = OwnedBuffer<Float>(Array(repeating: 0, count: problem.count))
            XCTAssertEqual(try viaStorage.addTensor(p, grad: g), 0)
            _ = try viaBuffers.addTensor(p2.buffer, grad: UnsafeBufferPointer(g2.buffer))
            for t in 1...30 {
                let gradient = problem.gradient(t, as: Float.self)
                for i in 0..<problem.count { g[i] = Float(gradient[i]); g2.buffer[i] = Float(gradient[i]) }
                _ = try viaStorage.step()
                _ = try viaBuffers.step()
            }
            XCTAssertEqual(p.array.map(\.bitPattern), p2.buffer.map(\.bitPattern), name)
            XCTAssertEqual(try stateBits(viaStorage, config), try stateBits(viaBuffers, config), name)
        }

        let opt = try Optimizer(.adamW(lr: 1e-2)), reference = try Optimizer(.adamW(lr: 1e-2))
        let start = (0..<100).map { BFloat16(Float($0) / 7 - 3) }
        let p = TensorStorage(start), g = TensorStorage(repeating: Float(0.25), count: 100)
        let p2 = UnsafeMutableBufferPointer<BFloat16>.allocate(capacity: 100), g2 = UnsafeMutableBufferPointer<Float>.allocate(capacity: 100)
        defer { p2.deallocate(); g2.deallocate() }
        _ = p2.initialize(from: start); g2.initialize(repeating: 0.25)
        _ = try opt.addTensor(p, grad: g, masterWeights: true)
        _ = try reference.addTensor(p2, grad: UnsafeBufferPointer(g2), masterWeights: true)
        for _ in 0..<10 { _ = try opt.step(); _ = try reference.step() }
        XCTAssertEqual(p.array, Array(p2))
        XCTAssertNotEqual(p.array, start, "the step moved the bfloat16 parameters")
    }

    /// The optimizer keeps registered storage alive after the caller drops it, and lets it go when it goes; a
    /// rejected registration retains nothing.
    func testOptimizerRetainsStorage() throws {
        weak var param: TensorStorage<Float>?, grad: TensorStorage<Float>?, rejected: TensorStorage<Float>?
        var opt: Optimizer? = try Optimizer(.sgd(lr: 0.5))
        do {
            let p = TensorStorage(repeating: Float(1), count: 8), g = TensorStorage(repeating: Float(2), count: 8)
            param = p; grad = g
            _ = try opt!.addTensor(p, grad: g)
            let short = TensorStorage(repeating: Float(1), count: 7)
            rejected = short
            XCTAssertThrowsError(try opt!.addTensor(short, grad: g)) {
                XCTAssertEqual($0 as? AdamCoreError, AdamCoreError(ADAMCORE_E_LENGTH))
            }
        }
        XCTAssertNil(rejected, "a rejected registration retains nothing")
        XCTAssertNotNil(param)
        XCTAssertNotNil(grad)
        _ = try opt!.step()
        XCTAssertEqual(param?.array, Array(repeating: 0, count: 8), "1 - 0.5 * 2, in the storage the caller dropped")
        opt = nil
        XCTAssertNil(param, "released with the optimizer")
        XCTAssertNil(grad)
    }

    /// setParam with storage: checked like the pointer form, and the new storage is the one stepped and retained.
    func testSetParamWithStorage() throws {
        let opt = try Optimizer(.sgd(lr: 1))
        let g = TensorStorage(repeating: Float(1), count: 4)
        _ = try opt.addTensor(TensorStorage(repeating: Float(0), count: 4), grad: g)
        XCTAssertThrowsError(try opt.setParam(TensorStorage(repeating: Float(0), count: 5), ofTensor: 0)) {
            XCTAssertEqual($0 as? AdamCoreError, AdamCoreError(ADAMCORE_E_LENGTH))
        }
        XCTAssertThrowsError(try opt.setParam(TensorStorage(repeating: Double(0), count: 4), ofTensor: 0)) {
            XCTAssertEqual($0 as? AdamCoreError, AdamCoreError(ADAMCORE_E_DTYPE))
        }
        XCTAssertThrowsError(try opt.setParam(g, ofTensor: 0)) {
            XCTAssertEqual($0 as? AdamCoreError, AdamCoreError(ADAMCORE_E_OVERLAP))
        }
        XCTAssertThrowsError(try opt.setParam(TensorStorage(repeating: Float(0), count: 4), ofTensor: 1)) {
            XCTAssertEqual($0 as? AdamCoreError, AdamCoreError(ADAMCORE_E_INDEX))
        }
        weak var replaced: TensorStorage<Float>?
        do {
            let p = TensorStorage<Float>([10, 20, 30, 40])
            replaced = p
            try opt.setParam(p, ofTensor: 0)
        }
        _ = try opt.step()
        XCTAssertEqual(replaced?.array, [9, 19, 29, 39])
    }

    /// Each Swift field of Config is its own C field, read and written.
    func testConfigFieldsAreTheCFields() {
        var c = Config(.adam)
        let fields: [(WritableKeyPath<Config, Double>, KeyPath<adamcore_config, Double>)] = [
            (\.lr, \.lr), (\.beta1, \.beta1), (\.beta2, \.beta2), (\.eps, \.eps), (\.epsRoot, \.eps_root),
            (\.weightDecay, \.weight_decay), (\.momentum, \.momentum), (\.dampening, \.dampening), (\.alpha, \.alpha),
            (\.lrDecay, \.lr_decay), (\.initialAccumulatorValue, \.initial_accumulator_value),
        ]
        for (k, (swift, _)) in fields.enumerated() { c[keyPath: swift] = Double(k + 1) / 64 }
        for (k, (swift, cField)) in fields.enumerated() {
            XCTAssertEqual(c.raw[keyPath: cField], Double(k + 1) / 64, "\(cField)")
            XCTAssertEqual(c[keyPath: swift], Double(k + 1) / 64)
        }
        XCTAssertEqual(Config.adam(lr: 0.5, betas: (0.8, 0.95), eps: 1e-6, weightDecay: 0.25).beta2, 0.95)
        XCTAssertEqual(Config.adam(), Config.adam())
        XCTAssertNotEqual(Config.adam(), Config.adam(eps: 1e-7))
    }

    /// AdamCoreError.Status is the header's list of errors: same order, values and names (camelCase of the
    /// enumerator), and a thrown error carries its status.
    func testErrorStatusesAreTheHeaders() {
        XCTAssertEqual(AdamCoreError.Status.allCases.map(\.rawValue), AdamCoreError.allCodes.filter { $0 < 0 })
        for status in AdamCoreError.Status.allCases {
            var snake = ""
            for ch in "\(status)" { snake += ch.isUppercase ? "_" + String(ch) : ch.uppercased() }
            XCTAssertEqual("ADAMCORE_E_" + snake, AdamCoreError.describe(status.rawValue).name)
        }
        XCTAssertThrowsError(try Optimizer(.adam(betas: (1, 0.999)))) {
            XCTAssertEqual(($0 as? AdamCoreError)?.status, .beta1)
        }
        XCTAssertNil(AdamCoreError.Status(rawValue: 0), "success is not an error")
    }
}
