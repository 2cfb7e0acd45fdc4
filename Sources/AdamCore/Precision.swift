import CAdamCore

// Storage types and mixed precision. A tensor whose buffers are all float32 (or all float64) runs the kernels on
// them directly. Any other layout (16-bit parameters, gradients or state, fp32 master weights, a 16-bit copy-out)
// runs the same float32 kernels through one pass per block of `stageElements`: each 16-bit stream is widened into
// an L1-resident float32 block, the kernel updates the block, and what it wrote is rounded back. Memory is read and
// written once, at the storage width: the lever out of cache, where every fp32 step meets the DRAM roofline. Every
// conversion is in the shim (adamcore_shim_widen_* / round_*); this file only moves blocks.

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

    public var cValue: adamcore_dtype {
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
    func range(_ p: UnsafeRawPointer?, _ count: Int) throws(AdamCoreError) -> ByteRange {
        switch self {
        case .float32: return try ByteRange(p, count: count, of: Float.self)
        case .float64: return try ByteRange(p, count: count, of: Double.self)
        case .bfloat16, .float16: return try ByteRange(p, count: count, of: UInt16.self)
        }
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
public let stageElements = reductionBlock

/// One mixed-precision tensor's buffers from element `first` of the tensor on (pointers at that element).
public struct MixedStreams {
    public var param: UnsafeMutableRawPointer
    public var grad: UnsafeRawPointer
    public var s0, s1, s2: UnsafeMutableRawPointer?
    public var master: UnsafeMutablePointer<Float>?
    public var copy: UnsafeMutableRawPointer?
    public var layout: TensorLayout
    public var stateCount: Int
    /// The stochastic-rounding key of (seed, step, tensor); each buffer mixes in its own number.
    public var key: UInt64
    /// The tensor's element index of element 0 (the generator's counter); a multiple of 16.
    public var first: Int

    public init(param: UnsafeMutableRawPointer, grad: UnsafeRawPointer, s0: UnsafeMutableRawPointer?,
                s1: UnsafeMutableRawPointer?, s2: UnsafeMutableRawPointer?, master: UnsafeMutablePointer<Float>?,
                copy: UnsafeMutableRawPointer?, layout: TensorLayout, stateCount: Int, key: UInt64, first: Int) {
        self.param = param; self.grad = grad; self.s0 = s0; self.s1 = s1; self.s2 = s2; self.master = master
        self.copy = copy; self.layout = layout; self.stateCount = stateCount; self.key = key; self.first = first
    }

    @inlinable @inline(__always)
    public func state(_ k: Int) -> UnsafeMutableRawPointer? { k == 0 ? s0 : k == 1 ? s1 : s2 }
}

/// The generator key of one tensor's step: splitmix64 over seed, step and tensor index.
public func roundingKey(seed: UInt64, step: Int64, tensor: Int) -> UInt64 {
    adamcore_shim_mix64(seed ^ adamcore_shim_mix64(UInt64(bitPattern: step) &+ adamcore_shim_mix64(UInt64(tensor))))
}

@inlinable @inline(__always)
func loadBits(_ p: UnsafeRawPointer, _ i: Int) -> SIMD16<UInt16> {
    p.loadUnaligned(fromByteOffset: 2 * i, as: SIMD16<UInt16>.self)
}

/// float32 copies of `n` 16-bit values of `type` at `src`. The last partial vector goes through the same
/// conversion on a zero-padded copy.
@inlinable @inline(__always)
func widen<P: ArithmeticPolicy>(_: P.Type, _ src: UnsafeRawPointer, _ type: DType, _ n: Int,
                                into dst: UnsafeMutablePointer<Float>) {
    @inline(__always) func convert(_ x: SIMD16<UInt16>) -> SIMD16<Float> {
        type == .bfloat16 ? adamcore_shim_widen_bf16(x) : adamcore_shim_widen_f16(x)
    }
    let full = n & ~15
    var i = 0
    if type == .bfloat16 {
        while i < full { store(dst, i, adamcore_shim_widen_bf16(loadBits(src, i))); i &+= 16 }
    } else {
        while i < full { store(dst, i, adamcore_shim_widen_f16(loadBits(src, i))); i &+= 16 }
    }
    guard i < n else { return }
    var bits = SIMD16<UInt16>()
    for lane in 0..<(n &- i) { bits[lane] = src.load(fromByteOffset: 2 * (i &+ lane), as: UInt16.self) }
    let wide = convert(bits)
    for lane in 0..<(n &- i) { dst[i &+ lane] = wide[lane] }
}

/// `n` float32 values at `src` rounded into `type` at `dst`: to nearest even, or stochastically with the
/// generator at `key` when `stochastic` (bfloat16 only), element `first` being the first's counter.
@inlinable @inline(__always)
func narrow<P: ArithmeticPolicy>(_: P.Type, _ src: UnsafePointer<Float>, _ type: DType, _ n: Int,
                                 into dst: UnsafeMutableRawPointer, stochastic: Bool, key: UInt64, first: Int) {
    @inline(__always) func convert(_ x: SIMD16<Float>, _ at: Int) -> SIMD16<UInt16> {
        if type == .float16 { return adamcore_shim_round_f16(x) }
        if stochastic { return adamcore_shim_round_bf16_stochastic(x, adamcore_shim_random_u32x16(key, UInt64(first &+ at))) }
        return adamcore_shim_round_bf16(x)
    }
    let full = n & ~15
    var i = 0
    if type == .float16 {
        while i < full { dst.storeBytes(of: adamcore_shim_round_f16(load(src, i)), toByteOffset: 2 * i, as: SIMD16<UInt16>.self); i &+= 16 }
    } else if stochastic {
        while i < full {
            let r = adamcore_shim_random_u32x16(key, UInt64(first &+ i))
            dst.storeBytes(of: adamcore_shim_round_bf16_stochastic(load(src, i), r), toByteOffset: 2 * i, as: SIMD16<UInt16>.self)
            i &+= 16
        }
    } else {
        while i < full { dst.storeBytes(of: adamcore_shim_round_bf16(load(src, i)), toByteOffset: 2 * i, as: SIMD16<UInt16>.self); i &+= 16 }
    }
    guard i < n else { return }
    var wide = SIMD16<Float>()
    for lane in 0..<(n &- i) { wide[lane] = src[i &+ lane] }
    let bits = convert(wide, i)
    for lane in 0..<(n &- i) { dst.storeBytes(of: bits[lane], toByteOffset: 2 * (i &+ lane), as: UInt16.self) }
}

/// The mixed-precision pass: for each block, a float32 view of every stream (the buffer itself when it is
/// float32, else a widened copy), `body` (a float32 kernel) on the views, then every 16-bit buffer the kernel
/// wrote rounded back. With master weights the kernel steps the master and the parameter is written as its
/// rounded copy; with a copy-out the float32 parameter's rounded copy also goes to `copy`. Returns the sum of the
/// body's results in block order (AdaFix's ||dx||^2, computed on the float32 values).
@inlinable
public func stagedKernel<P: ArithmeticPolicy>(_: P.Type, _ s: MixedStreams, _ n: Int,
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
                widen(P.self, s.param + 2 * at, layout.param, b, into: p)
            }
            let g: UnsafePointer<Float>
            if layout.grad == .float32 {
                g = UnsafePointer(s.grad.assumingMemoryBound(to: Float.self) + at)
            } else {
                widen(P.self, s.grad + 2 * at, layout.grad, b, into: base + stageElements)
                g = UnsafePointer(base + stageElements)
            }
            var views = (p, p, p)
            for k in 0..<s.stateCount {
                let view: UnsafeMutablePointer<Float>
                if layout.state == .float32 {
                    view = s.state(k)!.assumingMemoryBound(to: Float.self) + at
                } else {
                    view = base + (2 + k) * stageElements
                    widen(P.self, s.state(k)! + 2 * at, layout.state, b, into: view)
                }
                if k == 0 { views.0 = view } else if k == 1 { views.1 = view } else { views.2 = view }
            }
            total += body(Streams(param: p, grad: g, s0: views.0, s1: views.1, s2: views.2), b)
            let counter = s.first &+ at
            if layout.param.isSixteenBit {
                narrow(P.self, p, layout.param, b, into: s.param + 2 * at, stochastic: stochasticParam,
                       key: adamcore_shim_mix64(s.key ^ 1), first: counter)
            }
            if let copy = s.copy, let type = layout.copy {
                narrow(P.self, p, type, b, into: copy + 2 * at, stochastic: stochasticParam,
                       key: adamcore_shim_mix64(s.key ^ 1), first: counter)
            }
            if layout.state.isSixteenBit {
                for k in 0..<s.stateCount {
                    let view = k == 0 ? views.0 : k == 1 ? views.1 : views.2
                    narrow(P.self, view, layout.state, b, into: s.state(k)! + 2 * at, stochastic: stochasticState,
                           key: adamcore_shim_mix64(s.key ^ UInt64(2 + k)), first: counter)
                }
            }
            at &+= b
        }
        return total
    }
}

/// float32 views of one or two read-only streams (two: AdaFix's g and g', or g and the saved gradient), block by
/// block, for the reductions (max |g|, the non-finite count, ||g' - g||^2); `body` gets each block's views and
/// length. A float32 stream is its own view.
@inlinable
public func stagedReadKernel<P: ArithmeticPolicy>(_: P.Type, _ a: UnsafeRawPointer, _ aType: DType, _ b: UnsafeRawPointer?,
                                            _ bType: DType, _ n: Int,
                                            _ body: (UnsafePointer<Float>, UnsafePointer<Float>, Int) -> Void) {
    withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * stageElements) { scratch in
        let base = scratch.baseAddress!
        @inline(__always) func view(_ p: UnsafeRawPointer, _ type: DType, _ at: Int, _ count: Int,
                                    _ into: UnsafeMutablePointer<Float>) -> UnsafePointer<Float> {
            if type == .float32 { return p.assumingMemoryBound(to: Float.self) + at }
            widen(P.self, p + 2 * at, type, count, into: into)
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
