import CAdamCore

// Storage types and mixed precision. A tensor whose buffers are all float32 (or all float64) runs the kernels on
// them directly. Any other layout (16-bit parameters, gradients or state, fp32 master weights, a 16-bit copy-out)
// computes in float32 and is read and written once, at its storage width (the lever out of cache, where every fp32
// step meets the DRAM roofline), in one of two forms that give the same bits:
//   - fused (the Adam family's common layouts): the kernel loop reads and writes through `CodecStreams`, which
//     convert each vector in registers;
//   - staged (everything else): each 16-bit stream is widened into an L1-resident float32 block of
//     `stageElements`, the float32 kernel updates the block, and what it wrote is rounded back.
// Every conversion is in the shim (adamcore_shim_widen_* / round_*), reached through the `LaneCodec` types.

/// How a buffer's elements are stored.
public enum DType: Sendable, Equatable, CaseIterable {
    case float32, float64, bfloat16, float16

    /// The type of a C dtype code (adamcore_dtype), or nil.
    public init?(code: Int32) { self.init(code) }

    init?(_ code: Int32) {
        switch code {
        case Int32(ADAMCORE_FLOAT32.rawValue): self = .float32
        case Int32(ADAMCORE_FLOAT64.rawValue): self = .float64
        case Int32(ADAMCORE_BFLOAT16.rawValue): self = .bfloat16
        case Int32(ADAMCORE_FLOAT16.rawValue): self = .float16
        default: return nil
        }
    }

    package var cValue: adamcore_dtype {
        switch self {
        case .float32: return ADAMCORE_FLOAT32
        case .float64: return ADAMCORE_FLOAT64
        case .bfloat16: return ADAMCORE_BFLOAT16
        case .float16: return ADAMCORE_FLOAT16
        }
    }

    public var byteSize: Int {
        switch self {
        case .float32: return 4
        case .float64: return 8
        case .bfloat16, .float16: return 2
        }
    }

    public var isSixteenBit: Bool { byteSize == 2 }

    /// Validates a buffer of `count` elements of this type: not NULL, aligned to its element size, in range.
    @inline(__always)
    func range(_ p: UnsafeRawPointer?, _ count: Int) throws(AdamCoreError) -> ByteRange {
        try ByteRange(p, count: count, elementSize: byteSize)   // each type is aligned to its size
    }

    /// A library-owned buffer of `count` elements set to `value` rounded to this type (see allocateOwnedBuffer),
    /// or nil when memory is short.
    func allocate(_ count: Int, filledWith value: Double) -> UnsafeMutableRawPointer? {
        guard let raw = allocateOwnedBuffer(bytes: count * byteSize) else { return nil }
        switch self {
        case .float32: fill(raw.bindMemory(to: Float.self, capacity: count), count: count, with: Float(value))
        case .float64: fill(raw.bindMemory(to: Double.self, capacity: count), count: count, with: value)
        case .bfloat16, .float16:
            fill(raw.bindMemory(to: UInt16.self, capacity: count), count: count, with: roundedBits(Float(value)))
        }
        return raw
    }

    /// `x` rounded to nearest even in this 16-bit type, as its bit pattern.
    func roundedBits(_ x: Float) -> UInt16 {
        let v = SIMD16<Float>(repeating: x)
        return self == .bfloat16 ? adamcore_shim_round_bf16(v)[0] : adamcore_shim_round_f16(v)[0]
    }
}

/// Which 16-bit writes round stochastically (bfloat16 only); all others round to nearest even.
public struct StochasticRounding: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// The bfloat16 parameter (or bfloat16 copy-out).
    public static let parameters = StochasticRounding(rawValue: 1)
    /// bfloat16 state.
    public static let state = StochasticRounding(rawValue: 2)
}

/// The storage of one tensor's streams. The arithmetic runs in Double for float64 tensors, else in Float.
public struct TensorLayout: Sendable, Equatable {
    public var param: DType
    public var grad: DType
    public var state: DType
    /// The optimizer steps a float32 copy of a 16-bit parameter and writes the parameter as its rounded copy, so
    /// updates smaller than the 16-bit ulp accumulate instead of being lost.
    public var masterWeights: Bool
    /// The offload form: the float32 parameter is the master, and each step also writes its rounded copy of this
    /// type into a separate buffer. nil: no copy.
    public var copy: DType?
    public var stochasticRounding: StochasticRounding

    public init(param: DType, grad: DType? = nil, state: DType? = nil, masterWeights: Bool = false, copy: DType? = nil,
                stochasticRounding: StochasticRounding = []) {
        self.param = param
        self.grad = grad ?? param
        self.state = state ?? (param.isSixteenBit ? .float32 : param)
        self.masterWeights = masterWeights
        self.copy = copy
        self.stochasticRounding = stochasticRounding
    }

    /// Every buffer of type `t`: the layout of the first release.
    public static func plain(_ t: DType) -> TensorLayout { TensorLayout(param: t, state: t) }

    /// Runs the kernels on the buffers themselves (no conversion pass).
    var isPlain: Bool {
        (param == .float32 || param == .float64) && grad == param && state == param && !masterWeights && copy == nil
    }

    /// The combinations the library implements (ADAMCORE_E_DTYPE for the rest): float64 parameters keep float64
    /// everything; gradients are the parameter's type or float32 (any 16-bit type for float32 parameters); state is
    /// float32, bfloat16 or the parameter's type; master weights need a 16-bit parameter, a copy a float32 one;
    /// stochastic rounding needs a bfloat16 write to apply to.
    func validate() throws(AdamCoreError) {
        let bad = AdamCoreError(ADAMCORE_E_DTYPE)
        if param == .float64 {
            guard self == .plain(.float64) else { throw bad }
            return
        }
        guard grad == param || grad == .float32 || (param == .float32 && grad.isSixteenBit) else { throw bad }
        guard state == .float32 || state == .bfloat16 || state == param else { throw bad }
        guard !masterWeights || param.isSixteenBit else { throw bad }
        if let copy { guard param == .float32, copy.isSixteenBit else { throw bad } }
        if stochasticRounding.contains(.parameters) { guard param == .bfloat16 || copy == .bfloat16 else { throw bad } }
        if stochasticRounding.contains(.state) { guard state == .bfloat16 else { throw bad } }
        guard stochasticRounding.isSubset(of: [.parameters, .state]) else { throw bad }
    }
}

/// Elements converted at a time: float32 blocks of five streams (20 KiB) stay in L1. A multiple of 16 and of the
/// reduction block's partial sums, so a staged run adds exactly what a direct one would.
@usableFromInline package let stageElements = reductionBlock

/// One mixed-precision tensor's buffers from element `first` of the tensor on (pointers at that element).
@usableFromInline package struct MixedStreams {
    @usableFromInline package var param: UnsafeMutableRawPointer
    @usableFromInline package var grad: UnsafeRawPointer
    @usableFromInline package var state: StateSlots
    @usableFromInline package var master: UnsafeMutablePointer<Float>?
    @usableFromInline package var copy: UnsafeMutableRawPointer?
    @usableFromInline package var layout: TensorLayout
    @usableFromInline package var stateCount: Int
    /// The stochastic-rounding key of (seed, step, tensor); each buffer mixes in its own number.
    @usableFromInline package var key: UInt64
    /// The tensor's element index of element 0 (the generator's counter); a multiple of 16.
    @usableFromInline package var first: Int
    /// As Streams.prefetchAhead.
    @usableFromInline package var prefetchAhead: Bool

    @usableFromInline package init(param: UnsafeMutableRawPointer, grad: UnsafeRawPointer, state: StateSlots,
                master: UnsafeMutablePointer<Float>?, copy: UnsafeMutableRawPointer?, layout: TensorLayout,
                stateCount: Int, key: UInt64, first: Int, prefetchAhead: Bool = false) {
        self.param = param; self.grad = grad; self.state = state; self.master = master
        self.copy = copy; self.layout = layout; self.stateCount = stateCount; self.key = key; self.first = first
        self.prefetchAhead = prefetchAhead
    }
}

/// The generator key of one tensor's step: splitmix64 over seed, step and tensor index.
@usableFromInline package func roundingKey(seed: UInt64, step: Int64, tensor: Int) -> UInt64 {
    adamcore_shim_mix64(seed ^ adamcore_shim_mix64(UInt64(bitPattern: step) &+ adamcore_shim_mix64(UInt64(tensor))))
}

@inlinable @inline(__always)
func loadBits(_ p: UnsafeRawPointer, _ i: Int) -> SIMD16<UInt16> {
    p.loadUnaligned(fromByteOffset: 2 * i, as: SIMD16<UInt16>.self)
}

/// How a stream's elements are stored, converted 16 at a time in registers (the shim's conversions).
/// `store` rounds to nearest even, or stochastically with the generator at (key, counter of lane 0) when asked
/// (bfloat16 only; the layout's validation guarantees that).
@usableFromInline package protocol LaneCodec {
    static var bytes: Int { get }
    static func load(_ p: UnsafeRawPointer, _ i: Int) -> SIMD16<Float>
    static func store(_ p: UnsafeMutableRawPointer, _ i: Int, _ v: SIMD16<Float>, stochastic: Bool, key: UInt64,
                      counter: Int)
}

@usableFromInline package enum Float32Codec: LaneCodec {
    @inlinable package static var bytes: Int { 4 }
    @inlinable @inline(__always)
    package static func load(_ p: UnsafeRawPointer, _ i: Int) -> SIMD16<Float> {
        p.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
    }
    @inlinable @inline(__always)
    package static func store(_ p: UnsafeMutableRawPointer, _ i: Int, _ v: SIMD16<Float>, stochastic: Bool, key: UInt64,
                             counter: Int) {
        p.storeBytes(of: v, toByteOffset: 4 * i, as: SIMD16<Float>.self)
    }
}

@usableFromInline package enum BFloat16Codec: LaneCodec {
    @inlinable package static var bytes: Int { 2 }
    @inlinable @inline(__always)
    package static func load(_ p: UnsafeRawPointer, _ i: Int) -> SIMD16<Float> { adamcore_shim_widen_bf16(loadBits(p, i)) }
    @inlinable @inline(__always)
    package static func store(_ p: UnsafeMutableRawPointer, _ i: Int, _ v: SIMD16<Float>, stochastic: Bool, key: UInt64,
                             counter: Int) {
        let bits = stochastic
            ? adamcore_shim_round_bf16_stochastic(v, adamcore_shim_random_u32x16(key, UInt64(counter)))
            : adamcore_shim_round_bf16(v)
        p.storeBytes(of: bits, toByteOffset: 2 * i, as: SIMD16<UInt16>.self)
    }
}

@usableFromInline package enum Float16Codec: LaneCodec {
    @inlinable package static var bytes: Int { 2 }
    @inlinable @inline(__always)
    package static func load(_ p: UnsafeRawPointer, _ i: Int) -> SIMD16<Float> { adamcore_shim_widen_f16(loadBits(p, i)) }
    @inlinable @inline(__always)
    package static func store(_ p: UnsafeMutableRawPointer, _ i: Int, _ v: SIMD16<Float>, stochastic: Bool, key: UInt64,
                             counter: Int) {
        p.storeBytes(of: adamcore_shim_round_f16(v), toByteOffset: 2 * i, as: SIMD16<UInt16>.self)
    }
}

/// float32 copies of `n` values stored by C at `src`; the last partial vector goes through the same conversion on
/// a zero-padded copy.
@inlinable @inline(__always)
func widen<C: LaneCodec>(_: C.Type, _ src: UnsafeRawPointer, _ n: Int, into dst: UnsafeMutablePointer<Float>) {
    let full = n & ~15
    var i = 0
    while i < full { store(dst, i, C.load(src, i)); i &+= 16 }
    guard i < n else { return }
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16 * C.bytes) { scratch in
        let t = UnsafeMutableRawPointer(scratch.baseAddress!)
        t.initializeMemory(as: UInt8.self, repeating: 0, count: 16 * C.bytes)
        t.copyMemory(from: src + i * C.bytes, byteCount: (n &- i) * C.bytes)
        let wide = C.load(t, 0)
        for lane in 0..<(n &- i) { dst[i &+ lane] = wide[lane] }
    }
}

/// `n` float32 values at `src` rounded into storage C at `dst`; element `first` is the first's generator counter.
@inlinable @inline(__always)
func narrow<C: LaneCodec>(_: C.Type, _ src: UnsafePointer<Float>, _ n: Int, into dst: UnsafeMutableRawPointer,
                          stochastic: Bool, key: UInt64, first: Int) {
    let full = n & ~15
    var i = 0
    while i < full { C.store(dst, i, load(src, i), stochastic: stochastic, key: key, counter: first &+ i); i &+= 16 }
    guard i < n else { return }
    var wide = SIMD16<Float>()
    for lane in 0..<(n &- i) { wide[lane] = src[i &+ lane] }
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16 * C.bytes) { scratch in
        let t = UnsafeMutableRawPointer(scratch.baseAddress!)
        C.store(t, 0, wide, stochastic: stochastic, key: key, counter: first &+ i)
        (dst + i * C.bytes).copyMemory(from: t, byteCount: (n &- i) * C.bytes)
    }
}

/// `widen` and `narrow` for a 16-bit type known at run time (the switch is outside the loops).
@inlinable @inline(__always)
func widen(_ src: UnsafeRawPointer, _ type: DType, _ n: Int, into dst: UnsafeMutablePointer<Float>) {
    if type == .bfloat16 { widen(BFloat16Codec.self, src, n, into: dst) } else { widen(Float16Codec.self, src, n, into: dst) }
}

@inlinable @inline(__always)
func narrow(_ src: UnsafePointer<Float>, _ type: DType, _ n: Int, into dst: UnsafeMutableRawPointer, stochastic: Bool,
            key: UInt64, first: Int) {
    if type == .bfloat16 {
        narrow(BFloat16Codec.self, src, n, into: dst, stochastic: stochastic, key: key, first: first)
    } else {
        narrow(Float16Codec.self, src, n, into: dst, stochastic: false, key: key, first: first)
    }
}

/// The generator keys of a tensor step's buffers: the parameter (and its copy) and each state slot.
@inlinable @inline(__always)
func parameterKey(_ key: UInt64) -> UInt64 { adamcore_shim_mix64(key ^ 1) }
@inlinable @inline(__always)
func stateKey(_ key: UInt64, _ k: Int) -> UInt64 { adamcore_shim_mix64(key ^ UInt64(2 + k)) }

/// The mixed-precision pass: for each block, a float32 view of every stream (the buffer itself when it is
/// float32, else a widened copy), `body` (a float32 kernel) on the views, then every 16-bit buffer the kernel
/// wrote rounded back. With master weights the kernel steps the master and the parameter is written as its
/// rounded copy; with a copy-out the float32 parameter's rounded copy also goes to `copy`. Returns the sum of the
/// body's results in block order (AdaFix's ||dx||^2, computed on the float32 values).
@inlinable
package func stagedKernel<P: ArithmeticPolicy>(_: P.Type, _ s: MixedStreams, _ n: Int,
                                              _ body: (Streams<Float>, Int) -> Double) -> Double {
    let layout = s.layout
    let stochasticParam = layout.stochasticRounding.contains(.parameters)
    let stochasticState = layout.stochasticRounding.contains(.state)
    return withUnsafeTemporaryAllocation(of: Float.self, capacity: 5 * stageElements) { scratch -> Double in
        let base = scratch.baseAddress!
        var total = 0.0
        var at = 0
        while at < n {
            let b = Swift.min(stageElements, n &- at)
            let p: UnsafeMutablePointer<Float>
            if let master = s.master {
                p = master + at
            } else if layout.param == .float32 {
                p = s.param.assumingMemoryBound(to: Float.self) + at
            } else {
                p = base
                widen(s.param + 2 * at, layout.param, b, into: p)
            }
            let g: UnsafePointer<Float>
            if layout.grad == .float32 {
                g = UnsafePointer(s.grad.assumingMemoryBound(to: Float.self) + at)
            } else {
                widen(s.grad + 2 * at, layout.grad, b, into: base + stageElements)
                g = UnsafePointer(base + stageElements)
            }
            var views = (p, p, p)
            for k in 0..<s.stateCount {
                let view: UnsafeMutablePointer<Float>
                if layout.state == .float32 {
                    view = s.state[k]!.assumingMemoryBound(to: Float.self) + at
                } else {
                    view = base + (2 + k) * stageElements
                    widen(s.state[k]! + 2 * at, layout.state, b, into: view)
                }
                if k == 0 { views.0 = view } else if k == 1 { views.1 = view } else { views.2 = view }
            }
            total += body(Streams(param: p, grad: g, s0: views.0, s1: views.1, s2: views.2), b)
            let counter = s.first &+ at
            if layout.param.isSixteenBit {
                narrow(p, layout.param, b, into: s.param + 2 * at, stochastic: stochasticParam,
                       key: parameterKey(s.key), first: counter)
            }
            if let copy = s.copy, let type = layout.copy {
                narrow(p, type, b, into: copy + 2 * at, stochastic: stochasticParam, key: parameterKey(s.key),
                       first: counter)
            }
            if layout.state.isSixteenBit {
                for k in 0..<s.stateCount {
                    let view = k == 0 ? views.0 : k == 1 ? views.1 : views.2
                    narrow(view, layout.state, b, into: s.state[k]! + 2 * at, stochastic: stochasticState,
                           key: stateKey(s.key, k), first: counter)
                }
            }
            at &+= b
        }
        return total
    }
}

/// float32 views of one or two read-only streams (two: AdaFix's g and g', or g and the saved gradient), block by
/// block, for the reductions (max |g|, the non-finite count, ||g' - g||^2); `body` gets each block's views and
/// length. A float32 stream is its own view; when every stream is float32, `body` sees all `n` elements at once.
/// (Blocks are multiples of the reductions' own blocks, so sums come out the same either way.)
@inlinable
package func stagedReadKernel<P: ArithmeticPolicy>(_: P.Type, _ a: UnsafeRawPointer, _ aType: DType, _ b: UnsafeRawPointer?,
                                            _ bType: DType, _ n: Int,
                                            _ body: (UnsafePointer<Float>, UnsafePointer<Float>, Int) -> Void) {
    if aType == .float32 && (b == nil || bType == .float32) {
        let fa = a.assumingMemoryBound(to: Float.self)
        body(fa, b?.assumingMemoryBound(to: Float.self) ?? fa, n)
        return
    }
    withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * stageElements) { scratch in
        let base = scratch.baseAddress!
        @inline(__always) func view(_ p: UnsafeRawPointer, _ type: DType, _ at: Int, _ count: Int,
                                    _ into: UnsafeMutablePointer<Float>) -> UnsafePointer<Float> {
            if type == .float32 { return p.assumingMemoryBound(to: Float.self) + at }
            widen(p + 2 * at, type, count, into: into)
            return UnsafePointer(into)
        }
        var at = 0
        while at < n {
            let count = Swift.min(stageElements, n &- at)
            let va = view(a, aType, at, count, base)
            let vb = b.map { view($0, bType, at, count, base + stageElements) } ?? va
            body(va, vb, count)
            at &+= count
        }
    }
}

/// The fused form of the mixed-precision pass, for the Adam family: the kernel loop itself reads each 16-bit
/// stream, converts in registers and rounds what it writes, so nothing is staged. Same operations and roundings as
/// the staged pass (tested bit for bit). `PC`, `GC`, `SC`: the parameter's, gradient's and state's storage.
@usableFromInline package struct CodecStreams<PC: LaneCodec, GC: LaneCodec, SC: LaneCodec>: VectorStreams {
    @usableFromInline package typealias Scalar = Float
    @usableFromInline package var param: UnsafeMutableRawPointer
    @usableFromInline package var grad: UnsafeRawPointer
    @usableFromInline package var s0, s1, s2: UnsafeMutableRawPointer
    @usableFromInline package var master: UnsafeMutablePointer<Float>?
    @usableFromInline package var copy: UnsafeMutableRawPointer?
    @usableFromInline package var copyIsBFloat16: Bool
    @usableFromInline package var stochasticParam, stochasticState: Bool
    @usableFromInline package var paramKey: UInt64
    @usableFromInline package var stateKeys: (UInt64, UInt64, UInt64)
    /// The tensor's element index of element 0 (the generator's counter); a multiple of 16.
    @usableFromInline package var first: Int
    @usableFromInline package var prefetchAhead: Bool

    @inlinable @inline(__always)
    package init(_ s: MixedStreams) {
        param = s.param
        grad = s.grad
        s0 = s.state[0] ?? s.param; s1 = s.state[1] ?? s.param; s2 = s.state[2] ?? s.param   // unused: never touched
        master = s.master
        copy = s.copy
        copyIsBFloat16 = s.layout.copy == .bfloat16
        stochasticParam = s.layout.stochasticRounding.contains(.parameters)
        stochasticState = s.layout.stochasticRounding.contains(.state)
        paramKey = parameterKey(s.key)
        stateKeys = (stateKey(s.key, 0), stateKey(s.key, 1), stateKey(s.key, 2))
        first = s.first
        prefetchAhead = s.prefetchAhead
    }

    @inlinable @inline(__always)
    package func prefetch(_ i: Int, states: Int) {
        let ahead = i &+ prefetchElements
        adamcore_shim_prefetch(param + ahead * PC.bytes)
        adamcore_shim_prefetch(grad + ahead * GC.bytes)
        if states > 0 { adamcore_shim_prefetch(s0 + ahead * SC.bytes) }
        if states > 1 { adamcore_shim_prefetch(s1 + ahead * SC.bytes) }
        if states > 2 { adamcore_shim_prefetch(s2 + ahead * SC.bytes) }
        if let master { adamcore_shim_prefetch(master + ahead) }
        if let copy { adamcore_shim_prefetch(copy + ahead * 2) }   // written only, but its lines are read first
    }

    @inlinable @inline(__always)
    func slot(_ k: Int) -> UnsafeMutableRawPointer { k == 0 ? s0 : k == 1 ? s1 : s2 }

    @inlinable @inline(__always)
    package func param(_ i: Int) -> SIMD16<Float> {
        if let master { return load(master, i) }
        return PC.load(param, i)
    }

    @inlinable @inline(__always)
    package func setParam(_ i: Int, _ v: SIMD16<Float>) {
        if let master { store(master, i, v) }
        PC.store(param, i, v, stochastic: stochasticParam, key: paramKey, counter: first &+ i)
        if let copy {
            if copyIsBFloat16 {
                BFloat16Codec.store(copy, i, v, stochastic: stochasticParam, key: paramKey, counter: first &+ i)
            } else {
                Float16Codec.store(copy, i, v, stochastic: false, key: paramKey, counter: first &+ i)
            }
        }
    }

    @inlinable @inline(__always)
    package func grad(_ i: Int) -> SIMD16<Float> { GC.load(grad, i) }

    @inlinable @inline(__always)
    package func state(_ k: Int, _ i: Int) -> SIMD16<Float> { SC.load(slot(k), i) }

    @inlinable @inline(__always)
    package func setState(_ k: Int, _ i: Int, _ v: SIMD16<Float>) {
        let key = k == 0 ? stateKeys.0 : k == 1 ? stateKeys.1 : stateKeys.2
        SC.store(slot(k), i, v, stochastic: stochasticState, key: key, counter: first &+ i)
    }

    @inlinable @inline(__always)
    package func tail<R>(from start: Int, count rest: Int, states: Int, readOnly: Bool,
                        _ body: (CodecStreams) -> R) -> R {
        // One zero-padded vector (64 bytes at most) of each stream: param, grad, three slots, master, copy.
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 64 * 7) { scratch -> R in
            let base = UnsafeMutableRawPointer(scratch.baseAddress!)
            base.initializeMemory(as: UInt8.self, repeating: 0, count: 64 * 7)
            var t = self
            t.param = base; t.grad = UnsafeRawPointer(base + 64)
            t.s0 = base + 128; t.s1 = base + 192; t.s2 = base + 256
            t.master = master == nil ? nil : (base + 320).assumingMemoryBound(to: Float.self)
            t.copy = copy == nil ? nil : base + 384
            t.first = first &+ start
            func move(_ from: UnsafeRawPointer, _ to: UnsafeMutableRawPointer, _ width: Int) {
                to.copyMemory(from: from, byteCount: rest * width)
            }
            move(param + start * PC.bytes, t.param, PC.bytes)
            move(grad + start * GC.bytes, base + 64, GC.bytes)
            for k in 0..<states { move(slot(k) + start * SC.bytes, t.slot(k), SC.bytes) }
            if let master { move(master + start, base + 320, 4) }
            let result = body(t)
            if !readOnly {
                move(t.param, param + start * PC.bytes, PC.bytes)
                if let master { move(base + 320, UnsafeMutableRawPointer(master + start), 4) }
                if let copy { move(base + 384, copy + start * 2, 2) }
            }
            for k in 0..<states { move(t.slot(k), slot(k) + start * SC.bytes, SC.bytes) }
            return result
        }
    }
}

/// The Adam family on a mixed-precision tensor: the fused loop for the common layouts (16-bit parameters and
/// gradients with float32 or their own state; float32 parameters with 16-bit gradients, the offload form), the
/// staged pass around `fallback` (the float32 kernel) for the rest and for AdaFix.
@inlinable
package func mixedAdamKernel<P: ArithmeticPolicy>(_: P.Type, _ s: MixedStreams, _ n: Int, _ c: AdamCoefficients<Float>,
                                                 _ v: AdamVariant, fallback: (Streams<Float>, Int) -> Double) -> Double {
    @inline(__always) func fused<PC: LaneCodec, GC: LaneCodec, SC: LaneCodec>(_: PC.Type, _: GC.Type, _: SC.Type) -> Double {
        adamFamilyDispatch(P.self, CodecStreams<PC, GC, SC>(s), n, c, v, NoStats<Float>.self).0
    }
    guard !v.trackStep else { return stagedKernel(P.self, s, n, fallback) }
    switch (s.layout.param, s.layout.grad, s.layout.state) {
    case (.bfloat16, .bfloat16, .float32): return fused(BFloat16Codec.self, BFloat16Codec.self, Float32Codec.self)
    case (.bfloat16, .bfloat16, .bfloat16): return fused(BFloat16Codec.self, BFloat16Codec.self, BFloat16Codec.self)
    case (.float16, .float16, .float32): return fused(Float16Codec.self, Float16Codec.self, Float32Codec.self)
    case (.float16, .float16, .float16): return fused(Float16Codec.self, Float16Codec.self, Float16Codec.self)
    case (.float32, .bfloat16, .float32): return fused(Float32Codec.self, BFloat16Codec.self, Float32Codec.self)
    case (.float32, .float16, .float32): return fused(Float32Codec.self, Float16Codec.self, Float32Codec.self)
    default: return stagedKernel(P.self, s, n, fallback)
    }
}

/// bfloat16 storage for Swift callers: float32's upper 16 bits. `init(_:)` rounds to nearest even, as the kernels'
/// writes do; `float` widens exactly.
@frozen
public struct BFloat16: Sendable, Equatable, Hashable {
    public var bitPattern: UInt16
    @inlinable public init(bitPattern: UInt16) { self.bitPattern = bitPattern }
    public init(_ x: Float) { bitPattern = DType.bfloat16.roundedBits(x) }
    @inlinable public var float: Float { Float(bitPattern: UInt32(bitPattern) << 16) }
}

/// An element type a Swift caller's buffer can hold: Float, Double, Float16 (where Swift has it) and BFloat16.
public protocol StorageElement: BitwiseCopyable {
    static var storage: DType { get }
}
extension Float: StorageElement { @inlinable public static var storage: DType { .float32 } }
extension Double: StorageElement { @inlinable public static var storage: DType { .float64 } }
extension BFloat16: StorageElement { @inlinable public static var storage: DType { .bfloat16 } }
#if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
extension Float16: StorageElement { @inlinable public static var storage: DType { .float16 } }
#endif

extension Optimizer {
    /// Registers a tensor of any storage types from typed buffers: `grad` may hold another type than `param` (see
    /// TensorLayout.validate), the state (library-owned) is `state`'s type (nil: float32 for 16-bit parameters,
    /// else the parameter's), and `masterWeights` keeps a float32 master of a 16-bit parameter.
    public func addTensor<P: StorageElement, G: StorageElement>(
        _ param: UnsafeMutableBufferPointer<P>, grad: UnsafeBufferPointer<G>, group: Int = 0, state: DType? = nil,
        masterWeights: Bool = false, stochasticRounding: StochasticRounding = []
    ) throws(AdamCoreError) -> Int {
        guard grad.count == param.count else { throw fail(ADAMCORE_E_LENGTH) }
        let layout = TensorLayout(param: P.storage, grad: G.storage, state: state, masterWeights: masterWeights,
                                  stochasticRounding: stochasticRounding)
        return try addTensor(group: group, layout: layout, param: UnsafeMutableRawPointer(param.baseAddress),
                             grad: UnsafeRawPointer(grad.baseAddress), count: param.count, state: nil, stateCount: 0)
    }
}

/// A tensor's buffers checked against its layout: each not NULL, aligned to its element and in range, the state
/// slots exactly `slots` (when given), master weights given exactly when the layout has them and `masterRequired`,
/// a copy exactly when it has one, and no two overlapping (the gradient is only read, but a read of memory the step
/// writes would make the result depend on the order of the work). No allocation: the stateless step runs it on
/// every call.
struct TensorBuffers {
    /// param, grad, three state slots, master, copy; `.empty` where absent.
    private(set) var ranges: (ByteRange, ByteRange, ByteRange, ByteRange, ByteRange, ByteRange, ByteRange) =
        (.empty, .empty, .empty, .empty, .empty, .empty, .empty)
    static let count = 7

    func range(_ k: Int) -> ByteRange {
        switch k {
        case 0: return ranges.0
        case 1: return ranges.1
        case 2: return ranges.2
        case 3: return ranges.3
        case 4: return ranges.4
        case 5: return ranges.5
        default: return ranges.6
        }
    }
    var param: ByteRange { ranges.0 }
    var grad: ByteRange { ranges.1 }
    var master: ByteRange { ranges.5 }
    var copy: ByteRange { ranges.6 }

    init(layout: TensorLayout, count: Int, param: UnsafeMutableRawPointer?, grad: UnsafeRawPointer?,
         state: StateSlots?, stateCount: Int, slots: Int,
         master: UnsafeMutablePointer<Float>?, masterRequired: Bool, copy: UnsafeMutableRawPointer?)
        throws(AdamCoreError) {
        try layout.validate()
        guard layout.masterWeights || master == nil, layout.copy != nil || copy == nil else { throw fail(ADAMCORE_E_DTYPE) }
        ranges.0 = try layout.param.range(param, count)
        if grad != nil { ranges.1 = try layout.grad.range(grad, count) }
        if let state {
            guard stateCount == slots else { throw fail(ADAMCORE_E_STATE) }
            if slots > 0 { ranges.2 = try layout.state.range(state[0], count) }
            if slots > 1 { ranges.3 = try layout.state.range(state[1], count) }
            if slots > 2 { ranges.4 = try layout.state.range(state[2], count) }
        } else {
            guard stateCount == 0 || stateCount == slots else { throw fail(ADAMCORE_E_STATE) }
        }
        if layout.masterWeights && masterRequired && master == nil { throw fail(ADAMCORE_E_NULL_POINTER) }
        if master != nil { ranges.5 = try DType.float32.range(master, count) }
        if let type = layout.copy { ranges.6 = try type.range(copy, count) }
        for i in 0..<Self.count {
            for j in (i + 1)..<Self.count where range(i).overlaps(range(j)) { throw fail(ADAMCORE_E_OVERLAP) }
        }
    }
}
