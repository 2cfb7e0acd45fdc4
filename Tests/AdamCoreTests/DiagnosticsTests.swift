@testable import AdamCore
import CAdamCore
import XCTest

/// Issue 7 from Swift: statistics never change the update, do not depend on the thread split, and respect seed
/// 000's bound; advice follows the seeds' conditions.
final class DiagnosticsTests: XCTestCase {
    override func tearDown() { try? Threading.setThreadCount(0) }

    func run(_ config: Config, stats: Bool, threads: Int) throws -> (bits: [UInt32], stats: StepStats, tensors: [StepStats]) {
        try Threading.setThreadCount(threads)
        let opt = try Optimizer(config)
        let big = OwnedBuffer<Float>(Problem(count: 40_001, seed: 1).start(as: Float.self))
        let small = OwnedBuffer<Float>(Problem(count: 13, seed: 2).start(as: Float.self))
        _ = try opt.addTensor(big.buffer)
        _ = try opt.addTensor(small.buffer)
        try opt.setCollectsStats(stats)
        for t in 1...25 {
            let g1 = OwnedBuffer<Float>(Problem(count: 40_001, seed: 1).gradient(t, as: Float.self))
            let g2 = OwnedBuffer<Float>(Problem(count: 13, seed: 2).gradient(t, as: Float.self))
            let pointers = [UnsafeRawPointer(g1.buffer.baseAddress), UnsafeRawPointer(g2.buffer.baseAddress)]
            try withExtendedLifetime((g1, g2)) {
                _ = try pointers.withUnsafeBufferPointer { try opt.step(grads: $0.baseAddress, count: 2) }
            }
        }
        let bits = big.buffer.map { $0.bitPattern } + small.buffer.map { $0.bitPattern }
        return (bits, opt.lastStats, Array(opt.lastTensorStats))
    }

    func testStatisticsChangeNoBitAndIgnoreTheThreadCount() throws {
        for (name, config) in configurations where config.algorithm == .adam || config.algorithm == .adafix {
            guard config.algorithm != .adafix || config.flags.contains(.adafixNextGradient) else { continue }
            let off = try run(config, stats: false, threads: 1)
            let on1 = try run(config, stats: true, threads: 1)
            let on2 = try run(config, stats: true, threads: 2)
            XCTAssert(off.bits == on1.bits && on1.bits == on2.bits, name)
            XCTAssertEqual(on1.stats, on2.stats, name)
            XCTAssertEqual(on1.tensors, on2.tensors, name)
            XCTAssertEqual(on1.stats.count, 40_014, name)
            XCTAssertEqual(on1.stats.step, 25, name)
            if config.algorithm == .adam, !config.flags.contains(.noBiasCorrection) {
                XCTAssertLessThanOrEqual(on1.stats.maxStepOverLR, on1.stats.stepBound * (1 + 1e-6), name)
            }
        }
    }

    /// The Swift advice codes and severities are the header's values, every one of them.
    func testAdviceCodesAreTheHeadersValues() {
        let header: [(Advisory.Code, adamcore_advice_code)] = [
            (.maxStep, ADAMCORE_ADVICE_MAX_STEP), (.flatCrossing, ADAMCORE_ADVICE_FLAT_CROSSING),
            (.beta1AboveSqrtBeta2, ADAMCORE_ADVICE_BETA1_ABOVE_SQRT_BETA2), (.smallBeta2, ADAMCORE_ADVICE_SMALL_BETA2),
            (.spikeRegime, ADAMCORE_ADVICE_SPIKE_REGIME), (.oscillationRegime, ADAMCORE_ADVICE_OSCILLATION_REGIME),
            (.divergenceRegime, ADAMCORE_ADVICE_DIVERGENCE_REGIME), (.epsUnderflow, ADAMCORE_ADVICE_EPS_UNDERFLOW),
        ]
        XCTAssertEqual(header.map(\.0), Advisory.Code.allCases)
        for (code, c) in header { XCTAssertEqual(UInt32(code.rawValue), c.rawValue, "\(code)") }
        XCTAssertEqual(Advisory.Severity.info.rawValue, Int32(ADAMCORE_ADVICE_INFO.rawValue))
        XCTAssertEqual(Advisory.Severity.notice.rawValue, Int32(ADAMCORE_ADVICE_NOTICE.rawValue))
        XCTAssertEqual(Advisory.Severity.warning.rawValue, Int32(ADAMCORE_ADVICE_WARNING.rawValue))
    }

    func testBoundsAndAdvice() throws {
        XCTAssertEqual(proposition1Bound(beta1: 0.9, beta2: 0.999), 7.2703, accuracy: 1e-4)
        XCTAssertEqual(proposition2Bound(beta1: 0.9, beta2: 0.999), 73.032, accuracy: 1e-3)
        XCTAssertEqual(proposition1Bound(beta1: 0.99, beta2: 0.9), .infinity)
        let defaults = try advise(.adam()).map { $0.code }
        XCTAssertEqual(defaults, [.maxStep, .flatCrossing, .spikeRegime])
        let broken = try advise(.adam(betas: (0.99, 0.5)), precision: .float16)
        XCTAssert(broken.contains { $0.code == .beta1AboveSqrtBeta2 && $0.severity == .warning })
        XCTAssert(broken.contains { $0.code == .smallBeta2 && $0.severity == .warning })
        XCTAssert(broken.contains { $0.code == .epsUnderflow && $0.severity == .warning })
        XCTAssertFalse(broken.contains { $0.code == .maxStep }, "no finite bound to report")
        XCTAssertEqual(try advise(.sgd()), [])
        XCTAssertThrowsError(try Optimizer(.sgd()).setCollectsStats(true))
    }
}
