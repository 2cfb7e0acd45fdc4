import AdamCore
import CAdamCore
import XCTest

final class ThreadTests: XCTestCase {
    override func tearDown() { try? Threading.setThreadCount(0) }

    /// Runs 12 steps of `config` over one large tensor (threads engage) and 300 small ones (split as runs), f32 and
    /// f64, and returns every parameter, state buffer and scalar, bit for bit.
    func run(_ config: Config, threads: Int) throws -> [[UInt64]] {
        try Threading.setThreadCount(threads)
        let opt = try Optimizer(config)
        let sizes = [70_001] + (0..<300).map { 1 + $0 % 97 }
        let params32 = sizes.map { OwnedBuffer<Float>(Problem(count: $0, seed: UInt64($0)).start(as: Float.self)) }
        let params64 = sizes.prefix(50).map { OwnedBuffer<Double>(Problem(count: $0, seed: UInt64($0 + 1)).start(as: Double.self)) }
        for p in params32 { _ = try opt.addTensor(p.buffer) }
        for p in params64 { _ = try opt.addTensor(p.buffer) }
        for t in 1...12 {
            let g32 = sizes.map { OwnedBuffer<Float>(Problem(count: $0, seed: UInt64($0)).gradient(t, as: Float.self)) }
            let g64 = sizes.prefix(50).map { OwnedBuffer<Double>(Problem(count: $0, seed: UInt64($0 + 1)).gradient(t, as: Double.self)) }
            let pointers = g32.map { UnsafeRawPointer($0.buffer.baseAddress) } + g64.map { UnsafeRawPointer($0.buffer.baseAddress) }
            try withExtendedLifetime((g32, g64)) {
                try pointers.withUnsafeBufferPointer { try opt.step(grads: $0.baseAddress, count: $0.count) }
                if config.algorithm == .adafix && !config.flags.contains(.adafixNextGradient) {
                    // g' = 1.5 g: a fixed, deterministic "new point" gradient
                    let fresh32 = g32.map { OwnedBuffer<Float>($0.values.map { 1.5 * $0 }) }
                    let fresh64 = g64.map { OwnedBuffer<Double>($0.values.map { 1.5 * $0 }) }
                    let newPointers = fresh32.map { UnsafeRawPointer($0.buffer.baseAddress) }
                        + fresh64.map { UnsafeRawPointer($0.buffer.baseAddress) }
                    try withExtendedLifetime((fresh32, fresh64)) {
                        try pointers.withUnsafeBufferPointer { old in
                            try newPointers.withUnsafeBufferPointer { new in
                                try opt.adafixObserve(grads: old.baseAddress, newGrads: new.baseAddress, count: old.count)
                            }
                        }
                    }
                }
            }
        }
        var bits = params32.map { $0.values.map { $0.bitPattern } } + params64.map { $0.values.map { $0.bitPattern } }
        bits += try stateBits(opt, config)
        bits.append([opt.lipschitz.bitPattern, UInt64(opt.stepCount), opt.vUpdated ? 1 : 0])
        return withExtendedLifetime((params32, params64)) { bits }
    }

    func testEveryConfigurationGivesTheSameBitsForEveryThreadCount() throws {
        let before = WorkerPool.shared.parallelJobs
        for (name, config) in configurations + [("adafix next-gradient", .adafix(lr: 1e-2, nextGradient: true))] {
            let one = try run(config, threads: 1)
            XCTAssertEqual(try run(config, threads: 2), one, "\(name): 2 threads")
            XCTAssertEqual(try run(config, threads: 3), one, "\(name): 3 threads (more than CPUs is allowed)")
        }
        XCTAssertGreaterThan(WorkerPool.shared.parallelJobs, before, "the parallel path must have run")
    }

    func testSingleThreadedRunsStayOnTheCaller() throws {
        let before = WorkerPool.shared.parallelJobs
        _ = try run(.adam(), threads: 1)
        XCTAssertEqual(WorkerPool.shared.parallelJobs, before)
    }

    /// The stateless AdaFix step sums ||dx||^2 over the same fixed chunks as the object, so the two agree bit for
    /// bit on a buffer larger than one chunk, with any thread count.
    func testChunkedStatelessAdaFixMatchesTheObject() throws {
        let n = 3 * chunkElements + 123
        let problem = Problem(count: n, seed: 8)
        for threads in [1, 2] {
            try Threading.setThreadCount(threads)
            let a = OwnedBuffer<Float>(problem.start(as: Float.self)), m = OwnedBuffer<Float>(Array(repeating: 0, count: n))
            let v = OwnedBuffer<Float>(Array(repeating: 0, count: n))
            let b = OwnedBuffer<Float>(problem.start(as: Float.self))
            let opt = try Optimizer(.adafix(lr: 1e-2))
            _ = try opt.addTensor(b.buffer)
            try withExtendedLifetime((a, m, v, b)) {
                for t in 1...5 {
                    let g = OwnedBuffer<Float>(problem.gradient(t, as: Float.self))
                    let r = try withExtendedLifetime(g) { () throws -> AdaFixResult in
                        var list: [UnsafeRawPointer?] = [UnsafeRawPointer(g.buffer.baseAddress)]
                        defer { list.removeAll() }
                        try list.withUnsafeBufferPointer { try opt.step(grads: $0.baseAddress, count: 1) }
                        return try Step.adafix(Config.adafix(lr: 1e-2), step: Int64(t), param: a.buffer,
                                               grad: UnsafeBufferPointer(g.buffer), expAvg: m.buffer, expAvgSq: v.buffer,
                                               lipschitz: 0)
                    }
                    XCTAssertEqual(r.stepNormSquared.bitPattern, opt.lastStepNormSquared?.bitPattern, "step \(t), \(threads) threads")
                }
                XCTAssertEqual(a.values, b.values)
            }
        }
    }

    func testThreadCountValidation() throws {
        XCTAssertThrowsError(try Threading.setThreadCount(-1)) { XCTAssertEqual($0 as? AdamCoreError, AdamCoreError(ADAMCORE_E_THREADS)) }
        XCTAssertThrowsError(try Threading.setThreadCount(257))
        try Threading.setThreadCount(3)
        XCTAssertEqual(Threading.threadCount, 3)
        try Threading.setThreadCount(0)
        XCTAssertGreaterThanOrEqual(Threading.threadCount, 1)
    }
}
