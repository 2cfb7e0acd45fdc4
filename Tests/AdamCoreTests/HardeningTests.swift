@testable import AdamCore
import CAdamCore
import XCTest

/// The Swift face of issue 6: the guard and AMP options, checkpoints, and the header parser that reads untrusted bytes.
final class HardeningTests: XCTestCase {
    /// An optimizer over two tensors (float32 and float64) with registered gradients set by `gradients(t)`.
    final class Model {
        let opt: Optimizer
        let p32 = OwnedBuffer<Float>(Problem(count: 37, seed: 3).start(as: Float.self))
        let p64 = OwnedBuffer<Double>(Problem(count: 300, seed: 4).start(as: Double.self))
        let g32 = OwnedBuffer<Float>(Array(repeating: 0, count: 37))
        let g64 = OwnedBuffer<Double>(Array(repeating: 0, count: 300))

        init(_ config: Config) throws {
            opt = try Optimizer(config)
            _ = try opt.addTensor(p32.buffer, grad: UnsafeBufferPointer(g32.buffer))
            _ = try opt.addGroup(config)
            _ = try opt.addTensor(p64.buffer, grad: UnsafeBufferPointer(g64.buffer), group: 1)
        }

        func gradients(_ t: Int, scale: Double = 1) {
            let a = Problem(count: 37, seed: 3).gradient(t, as: Float.self)
            let b = Problem(count: 300, seed: 4).gradient(t, as: Double.self)
            for i in 0..<37 { g32.buffer[i] = Float(a[i] * scale) }
            for i in 0..<300 { g64.buffer[i] = b[i] * scale }
        }

        func steps(_ range: ClosedRange<Int>) throws {
            for t in range {
                gradients(t)
                try opt.step()
            }
        }

        var bits: [UInt64] { p32.values.map { Float($0).bitPattern }.map(UInt64.init) + p64.values.map { $0.bitPattern } }
    }

    /// A checkpoint's buffers (everything after the header).
    func stateBytes(_ checkpoint: [UInt8]) -> ArraySlice<UInt8> {
        checkpoint[(8 + Int(checkpoint[0]) + Int(checkpoint[1]) << 8)...]
    }

    func testGuardSkipsEverythingAndCounts() throws {
        let model = try Model(.adam(lr: 1e-2, weightDecay: 0.1))
        model.opt.guardsNonFinite = true
        try model.steps(1...3)
        let before = model.bits, checkpoint = model.opt.checkpointBytes()
        model.gradients(4)
        model.g64.buffer[299] = .nan
        model.g32.buffer[0] = -.infinity
        XCTAssertEqual(try model.opt.step(), .skipped)
        XCTAssertEqual(model.bits, before)
        XCTAssert(stateBytes(model.opt.checkpointBytes()) == stateBytes(checkpoint), "no state changed")
        XCTAssertEqual(model.opt.stepCount, 3)
        XCTAssertEqual(model.opt.skippedSteps, 1)
        XCTAssertEqual(model.opt.lastNonFiniteCount, 2)
        XCTAssertEqual(try model.opt.step(StepOptions(foundInf: true)), .skipped)
        XCTAssertEqual(model.opt.skippedSteps, 2)
        XCTAssertThrowsError(try model.opt.step(StepOptions(gradScale: -2))) {
            XCTAssertEqual($0 as? AdamCoreError, AdamCoreError(ADAMCORE_E_GRAD_SCALE))
        }
    }

    func testGradScaleIsExactForEveryAlgorithm() throws {
        for (name, config) in configurations where config.algorithm != .adafix {
            let plain = try Model(config), scaled = try Model(config)
            for t in 1...15 {
                plain.gradients(t)
                try plain.opt.step()
                scaled.gradients(t, scale: 4096)
                try scaled.opt.step(StepOptions(gradScale: 4096))
            }
            XCTAssert(plain.bits == scaled.bits, name)
        }
    }

    func testCheckpointContinuesBitIdenticallyForEveryConfiguration() throws {
        for (name, config) in configurations {
            guard config.algorithm != .adafix || config.flags.contains(.adafixNextGradient) else { continue }
            let straight = try Model(config)
            try straight.steps(1...20)
            let first = try Model(config)
            try first.steps(1...10)
            let bytes = first.opt.checkpointBytes()
            XCTAssertEqual(bytes.count, first.opt.checkpointSize)
            let resumed = try Model(config)
            for i in 0..<37 { resumed.p32.buffer[i] = first.p32.buffer[i] }
            for i in 0..<300 { resumed.p64.buffer[i] = first.p64.buffer[i] }
            try resumed.opt.loadCheckpoint(bytes)
            try resumed.steps(11...20)
            XCTAssert(straight.bits == resumed.bits, name)
            XCTAssert(straight.opt.checkpointBytes() == resumed.opt.checkpointBytes(), name)
        }
    }

    func testCheckpointFileIsReplacedAtomically() throws {
        let model = try Model(.adam())
        try model.steps(1...2)
        let path = NSTemporaryDirectory() + "adamcore-swift-\(getpid()).safetensors"
        defer { unlink(path) }
        try model.opt.saveCheckpoint(toFile: path)
        try model.steps(3...3)
        try model.opt.saveCheckpoint(toFile: path)
        let other = try Model(.adam())
        try other.opt.loadCheckpoint(fromFile: path)
        XCTAssertEqual(other.opt.stepCount, 3)
        XCTAssertThrowsError(try other.opt.loadCheckpoint(fromFile: path + ".missing")) {
            XCTAssertEqual($0 as? AdamCoreError, AdamCoreError(ADAMCORE_E_IO))
        }
    }

    func testJSONParserAcceptsTheGrammarAndNothingElse() throws {
        func parse(_ s: String) -> JSON? { Array(s.utf8).withUnsafeBytes { try? JSON.parse($0) } }
        XCTAssertEqual(parse(#" {"a" : [1, -2, 3.5e2, true, false, null, "x\u00e9\ud83d\ude00\n"]} "#),
                       .object([("a", .array([.integer(1), .integer(-2), .number, .bool(true), .bool(false), .null,
                                              .string("xé😀\n")]))]))
        XCTAssertEqual(parse("9223372036854775807"), .integer(.max))
        XCTAssertEqual(parse("9223372036854775808"), .number, "too large for a size, still well formed")
        let refused = [
            "", "{", "{\"a\":1,}", "[1,]", "{\"a\":1 \"b\":2}", "{\"a\":1,\"a\":2}", "01", "-", "1.", "1e", ".5",
            "\"\\ud800\"", "\"\\udc00\"", "\"\\x\"", "\"a\u{01}\"", "\"abc", "tru", "nul", "{} {}", "[1] x",
            "{1:2}", "\"\\u12\"", String(repeating: "[", count: 40) + String(repeating: "]", count: 40),
        ]
        for text in refused { XCTAssertNil(parse(text), text) }
        XCTAssertNil([UInt8]([0x22, 0xFF, 0x22]).withUnsafeBytes { try? JSON.parse($0) }, "invalid UTF-8")
        XCTAssertEqual(JSON.quote("a\"\\\n\u{01}"), #""a\"\\\n\u0001""#)
    }

    func testEveryTruncationAndSingleByteChangeOfTheHeaderIsHandled() throws {
        let model = try Model(.adam(amsgrad: true))
        try model.steps(1...2)
        let good = model.opt.checkpointBytes()
        let headerEnd = 8 + Int(good[0]) + Int(good[1]) << 8
        var refused = 0
        for cut in 0..<good.count {
            XCTAssertThrowsError(try model.opt.loadCheckpoint(Array(good[..<cut])))
            refused += 1
        }
        for position in 0..<headerEnd {
            for value: UInt8 in [0, 0x22, 0x30, 0x39, 0x7B, 0x7D, 0xFF] where value != good[position] {
                var bad = good
                bad[position] = value
                do {
                    try model.opt.loadCheckpoint(bad)
                    try model.opt.loadCheckpoint(good)   // a harmless change (whitespace to a digit cannot be one)
                } catch let error as AdamCoreError {
                    XCTAssert([ADAMCORE_E_FORMAT, ADAMCORE_E_MISMATCH].map { $0.rawValue }.contains(error.code))
                    refused += 1
                }
            }
        }
        XCTAssert(model.opt.checkpointBytes() == good, "refused loads changed nothing")
        XCTAssertGreaterThan(refused, good.count)
    }
}
