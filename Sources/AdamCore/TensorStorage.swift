import CAdamCore

/// Memory for a tensor that an optimizer steps for as long as it lives: `count` elements at one fixed, 64-byte
/// aligned address. `Optimizer.addTensor(_:grad:)` with storages retains them, so a registration cannot outlive
/// its memory (the buffer-pointer forms leave that to the caller).
///
/// Not thread-safe: read and write it between an optimizer's steps, not during one.
public final class TensorStorage<Element: StorageElement> {
    public let count: Int
    private let base: UnsafeMutablePointer<Element>

    /// `count` copies of `value`.
    public init(repeating value: Element, count: Int) {
        precondition(count >= 0, "a negative element count")
        self.count = count
        base = Self.allocate(count)
        base.initialize(repeating: value, count: count)
    }

    /// A copy of `values`.
    public init(_ values: [Element]) {
        count = values.count
        base = Self.allocate(count)
        values.withUnsafeBufferPointer { if let from = $0.baseAddress { base.initialize(from: from, count: count) } }
    }

    deinit { UnsafeMutableRawPointer(base).deallocate() }

    /// Room for `count` elements (at least one byte's worth), 64-byte aligned: a cache line, and any vector load.
    private static func allocate(_ count: Int) -> UnsafeMutablePointer<Element> {
        let capacity = Swift.max(count, 1)
        return UnsafeMutableRawPointer.allocate(byteCount: capacity * MemoryLayout<Element>.stride, alignment: 64)
            .bindMemory(to: Element.self, capacity: capacity)
    }

    public subscript(index: Int) -> Element {
        get {
            precondition(index >= 0 && index < count, "index out of range")
            return base[index]
        }
        set {
            precondition(index >= 0 && index < count, "index out of range")
            base[index] = newValue
        }
    }

    /// The elements, copied.
    public var array: [Element] { Array(UnsafeBufferPointer(start: base, count: count)) }

    /// The memory itself, e.g. to fill a gradient in place. The pointer must not escape `body`.
    public func withUnsafeMutableBufferPointer<R, E: Error>(
        _ body: (UnsafeMutableBufferPointer<Element>) throws(E) -> R
    ) throws(E) -> R {
        try body(buffer)
    }

    /// For the optimizer, which keeps the storage alive while it uses the pointer.
    var buffer: UnsafeMutableBufferPointer<Element> { UnsafeMutableBufferPointer(start: base, count: count) }
}

extension Optimizer {
    /// Registers Swift-owned storage: the optimizer retains `param` and `grad` for as long as it lives, so nothing it
    /// steps can be freed under it. The same rules as the buffer-pointer form: `grad` may hold another type than
    /// `param` (see TensorLayout.validate), the state (library-owned) is `state`'s type (nil: float32 for 16-bit
    /// parameters, else the parameter's), and `masterWeights` keeps a float32 master of a 16-bit parameter.
    public func addTensor<P: StorageElement, G: StorageElement>(
        _ param: TensorStorage<P>, grad: TensorStorage<G>, group: Int = 0, state: DType? = nil,
        masterWeights: Bool = false, stochasticRounding: StochasticRounding = []
    ) throws(AdamCoreError) -> Int {
        let index = try addTensor(param.buffer, grad: UnsafeBufferPointer(grad.buffer), group: group, state: state,
                                  masterWeights: masterWeights, stochasticRounding: stochasticRounding)
        retain(param, grad)
        return index
    }

    /// Points a tensor at new Swift-owned parameter storage (same dtype and count); the optimizer retains it.
    public func setParam<P: StorageElement>(_ param: TensorStorage<P>, ofTensor tensor: Int) throws(AdamCoreError) {
        guard tensors.indices.contains(tensor) else { throw fail(ADAMCORE_E_INDEX) }
        guard P.storage == tensors[tensor].layout.param else { throw fail(ADAMCORE_E_DTYPE) }
        guard param.count == tensors[tensor].count else { throw fail(ADAMCORE_E_LENGTH) }
        try setParam(UnsafeMutableRawPointer(param.buffer.baseAddress), ofTensor: tensor)
        retain(param)
    }
}
