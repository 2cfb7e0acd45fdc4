import CAdamCore
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Checkpoints in the safetensors format: an 8-byte little-endian header length, a JSON header, then the raw
// little-endian buffers. Any safetensors reader (the `safetensors` package, or numpy with a few lines) can read
// one. The header's "__metadata__" holds everything that is not a buffer, as strings (the format's rule):
//
//   format "adamcore-optimizer", version "3", algorithm, step, skipped_steps, rounding_seed, groups (count),
//   group.<g> (every config field as name=value;...), tensors (count), tensor.<i>.group, tensor.<i>.step,
//   tensor.<i>.layout (param=BF16;grad=BF16;state=F32;master=1;copy=none;stochastic=0), and for AdaFix lipschitz,
//   v_updated and step_norm_sq ("none" when no estimate awaits it).
//
// Version 1 (0.1.0) had one step count for all tensors and no tensor.<i>.step; it loads with every tensor's step
// set to it, which is what 0.1.0 used, so a 0.1.0 checkpoint continues bit for bit. Versions 1 and 2 had only
// float32 and float64 tensors (layout: every buffer of one type) and no rounding seed (0).
//
// Tensors are named tensor.<i>.<slot> with torch's slot names (tensor.0.exp_avg), stored in the state's dtype, then
// tensor.<i>.master (F32) for master weights; in that order.
// Doubles are written in Swift's shortest round-trip form, so every value comes back bit for bit.

#if !_endian(little)
#error("checkpoints store little-endian buffers by copying memory; a big-endian port must swap bytes")
#endif

extension Optimizer {
    static let checkpointFormat = "adamcore-optimizer"
    static let checkpointVersion = "3"
    /// The versions this library reads: every one it ever wrote.
    static let readableVersions: Set<String> = ["1", "2", "3"]
    /// safetensors' own limit on the header, which also bounds what a hostile file can make us parse.
    static let maxHeaderBytes = 100_000_000

    // MARK: Writing

    /// The JSON header (space-padded to a multiple of 8, so the buffers start 8-byte aligned) and the byte size of
    /// the data that follows it.
    func checkpointHeader() -> (header: [UInt8], dataBytes: Int) {
        var metadata: [(String, String)] = [
            ("format", Self.checkpointFormat), ("version", Self.checkpointVersion),
            ("algorithm", algorithm.checkpointName), ("step", String(stepCount)),
            ("skipped_steps", String(skippedSteps)), ("rounding_seed", String(roundingSeed)),
            ("groups", String(groups.count)),
        ]
        for (g, c) in groups.enumerated() { metadata.append(("group.\(g)", Self.encode(c.raw))) }
        metadata.append(("tensors", String(tensors.count)))
        for (i, t) in tensors.enumerated() {
            metadata.append(("tensor.\(i).group", String(t.group)))
            metadata.append(("tensor.\(i).step", String(tensorSteps[i])))
            metadata.append(("tensor.\(i).layout", t.layout.checkpointText))
        }
        if algorithm == .adafix {
            metadata.append(("lipschitz", String(lipschitz)))
            metadata.append(("v_updated", vUpdated ? "1" : "0"))
            metadata.append(("step_norm_sq", lastStepNormSquared.map { String($0) } ?? "none"))
        }
        var json = "{\"__metadata__\":{"
        json += metadata.map { "\(JSON.quote($0.0)):\(JSON.quote($0.1))" }.joined(separator: ",")
        json += "}"
        var offset = 0
        for (i, t) in tensors.enumerated() {
            for b in t.checkpointBuffers(groups[t.group]) {
                let bytes = t.count * b.dtype.byteSize
                json += ",\(JSON.quote("tensor.\(i).\(b.name)")):{\"dtype\":\"\(b.dtype.checkpointName)\",\"shape\":[\(t.count)],"
                json += "\"data_offsets\":[\(offset),\(offset + bytes)]}"
                offset += bytes
            }
        }
        json += "}"
        var header = Array(json.utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        return (header, offset)
    }

    /// Calls `sink` with the checkpoint's bytes in order: the length prefix, the header, then each state buffer.
    func writeCheckpoint(_ sink: (UnsafeRawBufferPointer) throws(AdamCoreError) -> Void) throws(AdamCoreError) {
        let (header, _) = checkpointHeader()
        let prefix = (0..<8).map { UInt8(truncatingIfNeeded: UInt64(header.count) >> (8 * $0)) }  // little-endian
        try (prefix + header).withTypedUnsafeBytes(sink)
        for t in tensors {
            for b in t.checkpointBuffers(groups[t.group]) {
                try sink(UnsafeRawBufferPointer(start: b.pointer, count: t.count * b.dtype.byteSize))
            }
        }
    }

    /// The size in bytes of the checkpoint `checkpointBytes` would return.
    public var checkpointSize: Int {
        let (header, data) = checkpointHeader()
        return 8 + header.count + data
    }

    /// Writes the checkpoint into `buffer`, which must hold `checkpointSize` bytes and not overlap a registered
    /// buffer; returns the bytes written.
    public func saveCheckpoint(into buffer: UnsafeMutableRawBufferPointer) throws(AdamCoreError) -> Int {
        guard let base = buffer.baseAddress else { throw fail(ADAMCORE_E_NULL_POINTER) }
        let range = try ByteRange(base, count: buffer.count, elementSize: 1)
        guard !tensors.contains(where: { $0.overlaps(range) }) else { throw fail(ADAMCORE_E_OVERLAP) }
        guard checkpointSize <= buffer.count else { throw fail(ADAMCORE_E_LENGTH) }
        var at = 0
        try writeCheckpoint { (chunk) throws(AdamCoreError) in
            if chunk.count > 0 { (base + at).copyMemory(from: chunk.baseAddress!, byteCount: chunk.count) }
            at += chunk.count
        }
        return at
    }

    /// The checkpoint as bytes.
    public func checkpointBytes() -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(checkpointSize)
        try? writeCheckpoint { (chunk) throws(AdamCoreError) in bytes.append(contentsOf: chunk) }
        return bytes
    }

    /// Writes the checkpoint to `path` through a temporary file in the same directory that is synced and then
    /// renamed over `path`, so a crash at any moment leaves either the old file or the new one, never a torn one.
    public func saveCheckpoint(toFile path: String) throws(AdamCoreError) {
        try saveCheckpoint(toFile: Array(path.utf8CString))
    }

    /// The same for a NUL-terminated path of bytes, used as given (the C API's, which need not be UTF-8).
    public func saveCheckpoint(toFile path: [CChar]) throws(AdamCoreError) {
        guard let end = path.firstIndex(of: 0), end > 0 else { throw fail(ADAMCORE_E_IO) }
        let name = Array(path[..<end])
        let temporary = name + Array(".tmp.\(getpid()).\(Self.saveCounter.add(1, ordering: .relaxed).newValue)".utf8CString)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw fail(ADAMCORE_E_IO) }
        var ok = false
        defer {
            if !ok { unlink(temporary) }
        }
        do {
            try writeCheckpoint { (chunk) throws(AdamCoreError) in
                var done = 0
                while done < chunk.count {
                    let n = write(fd, chunk.baseAddress! + done, chunk.count - done)
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else { throw fail(ADAMCORE_E_IO) }
                    done += n
                }
            }
        } catch {
            close(fd)
            throw error
        }
        guard fsync(fd) == 0 else { close(fd); throw fail(ADAMCORE_E_IO) }
        guard close(fd) == 0, rename(temporary, name + [0]) == 0 else { throw fail(ADAMCORE_E_IO) }
        ok = true
        // Make the rename itself durable (best effort: some file systems refuse to fsync a directory).
        let slash = name.lastIndex(of: CChar(UInt8(ascii: "/")))
        let directory: [CChar] = slash.map { $0 == 0 ? [CChar(UInt8(ascii: "/")), 0] : Array(name[..<$0]) + [0] }
            ?? [CChar(UInt8(ascii: ".")), 0]
        let dirfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirfd >= 0 { _ = fsync(dirfd); close(dirfd) }
    }

    /// Distinguishes the temporary files of concurrent saves in one process.
    static let saveCounter = Atomic<UInt64>(0)

    // MARK: Reading

    /// Restores everything from a checkpoint made by an optimizer with the same algorithm, groups and tensors
    /// (count, dtype, group). Every byte is validated first; on any error the optimizer is unchanged.
    public func loadCheckpoint(_ bytes: UnsafeRawBufferPointer) throws(AdamCoreError) {
        guard let base = bytes.baseAddress else { throw fail(bytes.count == 0 ? ADAMCORE_E_FORMAT : ADAMCORE_E_NULL_POINTER) }
        let range = try ByteRange(base, count: bytes.count, elementSize: 1)
        guard !tensors.contains(where: { $0.overlaps(range) }) else { throw fail(ADAMCORE_E_OVERLAP) }
        let plan = try CheckpointPlan(bytes, for: self)
        // Nothing below can fail.
        for (g, c) in plan.groups.enumerated() { groups[g] = c }
        for copy in plan.copies {
            copy.destination.copyMemory(from: base + copy.offset, byteCount: copy.bytes)
        }
        stepCount = plan.step
        for i in tensorSteps.indices { tensorSteps[i] = plan.tensorSteps[i] }
        skippedSteps = plan.skippedSteps
        roundingSeed = plan.roundingSeed
        if algorithm == .adafix {
            lipschitz = plan.lipschitz
            vUpdated = plan.vUpdated
            lastStepNormSquared = plan.stepNormSquared
        }
    }

    public func loadCheckpoint(_ bytes: [UInt8]) throws(AdamCoreError) {
        try bytes.withTypedUnsafeBytes { (p) throws(AdamCoreError) in try loadCheckpoint(p) }
    }

    /// Reads and restores the checkpoint at `path` (see `loadCheckpoint(_:)`).
    public func loadCheckpoint(fromFile path: String) throws(AdamCoreError) {
        try loadCheckpoint(fromFile: Array(path.utf8CString))
    }

    /// The same for a NUL-terminated path of bytes, used as given.
    public func loadCheckpoint(fromFile path: [CChar]) throws(AdamCoreError) {
        guard path.contains(0) else { throw fail(ADAMCORE_E_IO) }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw fail(ADAMCORE_E_IO) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { throw fail(ADAMCORE_E_IO) }
        let size = Int(info.st_size)
        guard let buffer = malloc(Swift.max(size, 1)) else { throw fail(ADAMCORE_E_NO_MEMORY) }
        defer { free(buffer) }
        var done = 0
        while done < size {
            let n = read(fd, buffer + done, size - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw fail(ADAMCORE_E_IO) }
            done += n
        }
        try loadCheckpoint(UnsafeRawBufferPointer(start: buffer, count: size))
    }

    static func encode(_ c: adamcore_config) -> String {
        let fields: [(String, Double)] = [
            ("lr", c.lr), ("beta1", c.beta1), ("beta2", c.beta2), ("eps", c.eps), ("eps_root", c.eps_root),
            ("weight_decay", c.weight_decay), ("momentum", c.momentum), ("dampening", c.dampening),
            ("alpha", c.alpha), ("lr_decay", c.lr_decay), ("initial_accumulator_value", c.initial_accumulator_value),
        ]
        return (["flags=\(c.flags)"] + fields.map { "\($0.0)=\($0.1)" }).joined(separator: ";")
    }

    /// The config a group string describes, for `algorithm`; nil if the string is not exactly encode's form.
    static func decode(_ s: String, algorithm: Algorithm) -> adamcore_config? {
        var c = Config(algorithm).raw
        let parts = s.split(separator: ";", omittingEmptySubsequences: false)
        let names = ["flags", "lr", "beta1", "beta2", "eps", "eps_root", "weight_decay", "momentum", "dampening", "alpha",
                     "lr_decay", "initial_accumulator_value"]
        guard parts.count == names.count else { return nil }
        for (part, name) in zip(parts, names) {
            let pair = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard pair.count == 2, pair[0] == name else { return nil }
            if name == "flags" {
                guard let flags = UInt32(pair[1]) else { return nil }
                c.flags = flags
                continue
            }
            guard let value = Double(pair[1]) else { return nil }
            switch name {
            case "lr": c.lr = value
            case "beta1": c.beta1 = value
            case "beta2": c.beta2 = value
            case "eps": c.eps = value
            case "eps_root": c.eps_root = value
            case "weight_decay": c.weight_decay = value
            case "momentum": c.momentum = value
            case "dampening": c.dampening = value
            case "alpha": c.alpha = value
            case "lr_decay": c.lr_decay = value
            default: c.initial_accumulator_value = value
            }
        }
        return c
    }
}

/// A checkpoint checked against an optimizer: everything `loadCheckpoint` will write, decided before it writes.
struct CheckpointPlan {
    struct Copy { let destination: UnsafeMutableRawPointer; let offset: Int; let bytes: Int }
    var groups: [ValidConfig] = []
    var copies: [Copy] = []
    var step: Int64 = 0
    var tensorSteps: [Int64] = []
    var skippedSteps: Int64 = 0
    var roundingSeed: UInt64 = 0
    var lipschitz = 0.0
    var vUpdated = true
    var stepNormSquared: Double?

    init(_ bytes: UnsafeRawBufferPointer, for optimizer: Optimizer) throws(AdamCoreError) {
        let format = fail(ADAMCORE_E_FORMAT), mismatch = fail(ADAMCORE_E_MISMATCH)
        guard bytes.count >= 8 else { throw format }
        let declared = bytes.loadUnaligned(as: UInt64.self).littleEndian
        guard declared <= UInt64(Optimizer.maxHeaderBytes), Int(declared) <= bytes.count - 8 else { throw format }
        let headerBytes = Int(declared)
        let dataStart = 8 + headerBytes
        let header: JSON
        do {
            header = try JSON.parse(UnsafeRawBufferPointer(rebasing: bytes[8..<dataStart]))
        } catch {
            throw format
        }
        guard case let .object(entries) = header, let metaValue = header["__metadata__"],
              case let .object(metaEntries) = metaValue else { throw format }
        var meta: [String: String] = [:]
        for (key, value) in metaEntries {
            guard let s = value.string else { throw format }
            meta[key] = s
        }
        guard meta["format"] == Optimizer.checkpointFormat, let version = meta["version"], Optimizer.readableVersions.contains(version),
              let algorithmName = meta["algorithm"], let algorithm = Algorithm(checkpointName: algorithmName),
              let step = meta["step"].flatMap({ Int64($0) }), step >= 0,
              let skipped = meta["skipped_steps"].flatMap({ Int64($0) }), skipped >= 0,
              let groupCount = meta["groups"].flatMap({ Int($0) }),
              let tensorCount = meta["tensors"].flatMap({ Int($0) }) else { throw format }
        guard algorithm == optimizer.algorithm, groupCount == optimizer.groups.count,
              tensorCount == optimizer.tensors.count else { throw mismatch }
        self.step = step
        skippedSteps = skipped
        if version != "1" && version != "2" {
            guard let seed = meta["rounding_seed"].flatMap({ UInt64($0) }) else { throw format }
            roundingSeed = seed
        }

        for g in 0..<groupCount {
            guard let text = meta["group.\(g)"], let raw = Optimizer.decode(text, algorithm: algorithm) else { throw format }
            guard (try? ValidConfig(raw)) != nil else { throw format }
            guard let c = try? optimizer.replacement(Config(raw: raw), forGroup: g) else { throw mismatch }
            groups.append(c)
        }
        if algorithm == .adafix {
            guard let l = meta["lipschitz"].flatMap({ Double($0) }), l.isFinite, l >= 0,
                  let v = meta["v_updated"], v == "0" || v == "1", let norm = meta["step_norm_sq"] else { throw format }
            lipschitz = l
            vUpdated = v == "1"
            if norm != "none" {
                guard let n = Double(norm), n.isFinite, n >= 0 else { throw format }
                stepNormSquared = n
            }
        }

        // Every tensor entry: well formed, then matching a registered buffer; together they tile the data exactly.
        let dataBytes = bytes.count - dataStart
        var expected: [String: (pointer: UnsafeMutableRawPointer, dtype: DType, count: Int)] = [:]
        for (i, t) in optimizer.tensors.enumerated() {
            guard meta["tensor.\(i).group"].flatMap({ Int($0) }) == t.group else {
                throw meta["tensor.\(i).group"].flatMap({ Int($0) }) == nil ? format : mismatch
            }
            if version == "1" {
                tensorSteps.append(step)
            } else {
                guard let s = meta["tensor.\(i).step"].flatMap({ Int64($0) }), s >= 0 else { throw format }
                tensorSteps.append(s)
            }
            if version == "1" || version == "2" {
                guard t.layout.isPlain else { throw mismatch }   // those versions had nothing else
            } else {
                guard let text = meta["tensor.\(i).layout"] else { throw format }
                guard text == t.layout.checkpointText else { throw mismatch }
            }
            for b in t.checkpointBuffers(optimizer.groups[t.group]) { expected["tensor.\(i).\(b.name)"] = (b.pointer, b.dtype, t.count) }
        }
        var spans: [(start: Int, end: Int)] = []
        var matched = 0
        for (name, value) in entries where name != "__metadata__" {
            guard let dtypeName = value["dtype"]?.string, let size = safetensorsElementSize[dtypeName],
                  case let .array(shape)? = value["shape"], case let .array(offsets)? = value["data_offsets"],
                  offsets.count == 2, case let .integer(start) = offsets[0], case let .integer(end) = offsets[1],
                  start >= 0, start <= end, end <= Int64(dataBytes) else { throw format }
            if case let .object(fields) = value, fields.count != 3 { throw format }
            var elements: Int64 = 1
            for dimension in shape {
                guard case let .integer(d) = dimension, d >= 0 else { throw format }
                let (product, overflow) = elements.multipliedReportingOverflow(by: d)
                guard !overflow else { throw format }
                elements = product
            }
            guard elements.multipliedReportingOverflow(by: size) == (end - start, false) else { throw format }
            spans.append((Int(start), Int(end)))
            guard let buffer = expected[name] else { throw mismatch }
            guard DType(checkpointName: dtypeName) == buffer.dtype, shape == [.integer(Int64(buffer.count))] else {
                throw mismatch
            }
            copies.append(Copy(destination: buffer.pointer, offset: dataStart + Int(start), bytes: Int(end - start)))
            matched += 1
        }
        // safetensors' rule: the buffers cover the data exactly, without holes or overlaps.
        spans.sort { $0.start < $1.start || ($0.start == $1.start && $0.end < $1.end) }
        var covered = 0
        for span in spans {
            guard span.start == covered else { throw format }
            covered = span.end
        }
        guard covered == dataBytes else { throw format }
        guard matched == expected.count else { throw mismatch }
    }
}

extension Array where Element == UInt8 {
    /// withUnsafeBytes for a body that throws AdamCoreError (the standard one rethrows `any Error`).
    func withTypedUnsafeBytes(_ body: (UnsafeRawBufferPointer) throws(AdamCoreError) -> Void) throws(AdamCoreError) {
        var failure: AdamCoreError?
        withUnsafeBytes { p in
            do throws(AdamCoreError) { try body(p) } catch { failure = error }
        }
        if let failure { throw failure }
    }
}

/// Element sizes of every dtype the safetensors format defines: a file with an F16 tensor is well formed, it just
/// does not fit an optimizer of float32 and float64 buffers.
let safetensorsElementSize: [String: Int64] = [
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
]

extension Algorithm {
    var checkpointName: String {
        switch self {
        case .adam: return "adam"
        case .adafix: return "adafix"
        case .sgd: return "sgd"
        case .rmsprop: return "rmsprop"
        case .adagrad: return "adagrad"
        }
    }

    init?(checkpointName: String) {
        guard let match = Algorithm.allCases.first(where: { $0.checkpointName == checkpointName }) else { return nil }
        self = match
    }
}

extension DType {
    var checkpointName: String {
        switch self {
        case .float32: return "F32"
        case .float64: return "F64"
        case .bfloat16: return "BF16"
        case .float16: return "F16"
        }
    }

    init?(checkpointName: String) {
        guard let match = DType.allCases.first(where: { $0.checkpointName == checkpointName }) else { return nil }
        self = match
    }
}

extension TensorLayout {
    /// The layout as a checkpoint records it; a checkpoint loads only into a tensor of the same text.
    var checkpointText: String {
        "param=\(param.checkpointName);grad=\(grad.checkpointName);state=\(state.checkpointName);"
            + "master=\(masterWeights ? 1 : 0);copy=\(copy?.checkpointName ?? "none");stochastic=\(stochasticRounding.rawValue)"
    }
}

extension Tensor {
    /// What a checkpoint stores of this tensor, in order: its state slots (torch's names, the state's dtype) and
    /// its master weights.
    func checkpointBuffers(_ config: ValidConfig) -> [(name: String, pointer: UnsafeMutableRawPointer, dtype: DType)] {
        var list = (0..<config.stateCount).map { (config.slot($0).rawValue, state[$0]!, layout.state) }
        if let master { list.append(("master", UnsafeMutableRawPointer(master), .float32)) }
        return list
    }
}
