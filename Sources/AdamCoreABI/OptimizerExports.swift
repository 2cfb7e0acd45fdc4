// The header's "Optimizer objects" section (create, groups, tensors, steps, scalars).
import AdamCore
import CAdamCore
#if canImport(Glibc)
import Glibc
#endif

@_cdecl("adamcore_optimizer_create")
public func adamcore_optimizer_create_(_ c: UnsafePointer<adamcore_config>?,
                                       _ handleOut: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let cfg = try config(c)
        guard let handleOut else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        let opt = try Optimizer(Config(raw: cfg), kernels: activeKernels)
        let handle = OpaquePointer(Unmanaged.passRetained(opt).toOpaque())
        _ = liveHandles.withLock { $0.insert(UInt(bitPattern: handle)) }
        handleOut.pointee = handle
    }
}

@_cdecl("adamcore_optimizer_destroy")
public func adamcore_optimizer_destroy_(_ handle: OpaquePointer?) -> Int32 {
    guard let handle else { return ADAMCORE_OK.rawValue }
    guard liveHandles.withLock({ $0.remove(UInt(bitPattern: handle)) != nil }) else { return ADAMCORE_E_HANDLE.rawValue }
    Unmanaged<Optimizer>.fromOpaque(UnsafeRawPointer(handle)).release()
    return ADAMCORE_OK.rawValue
}

@_cdecl("adamcore_optimizer_add_group")
public func adamcore_optimizer_add_group_(_ handle: OpaquePointer?, _ c: UnsafePointer<adamcore_config>?,
                                          _ group: UnsafeMutablePointer<UInt>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let opt = try optimizer(handle)
        let cfg = try config(c)
        guard let group else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        group.pointee = UInt(try opt.addGroup(Config(raw: cfg)))
    }
}

@_cdecl("adamcore_optimizer_group_count")
public func adamcore_optimizer_group_count_(_ handle: OpaquePointer?, _ out: UnsafeMutablePointer<UInt>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let opt = try optimizer(handle)
        guard let out else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        out.pointee = UInt(opt.groupCount)
    }
}

@_cdecl("adamcore_optimizer_get_config")
public func adamcore_optimizer_get_config_(_ handle: OpaquePointer?, _ group: UInt,
                                           _ out: UnsafeMutablePointer<adamcore_config>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let opt = try optimizer(handle)
        guard out != nil else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        try writeSized(try opt.config(ofGroup: position(group)).raw, to: out, oldest: oldestConfigSize)
    }
}

@_cdecl("adamcore_optimizer_set_config")
public func adamcore_optimizer_set_config_(_ handle: OpaquePointer?, _ group: UInt,
                                           _ c: UnsafePointer<adamcore_config>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let opt = try optimizer(handle)
        try opt.setConfig(Config(raw: config(c)), forGroup: position(group))
    }
}

@_cdecl("adamcore_optimizer_add_tensor")
public func adamcore_optimizer_add_tensor_(_ handle: OpaquePointer?, _ group: UInt, _ dtype: Int32,
                                           _ param: UnsafeMutableRawPointer?, _ grad: UnsafeRawPointer?, _ n: UInt,
                                           _ state: UnsafePointer<UnsafeMutableRawPointer?>?, _ stateCount: UInt,
                                           _ out: UnsafeMutablePointer<UInt>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let opt = try optimizer(handle)
        let i = try opt.addTensor(group: position(group), dtype: dtype, param: param, grad: grad, count: count(n),
                                  state: state, stateCount: position(stateCount))
        out?.pointee = UInt(i)
    }
}

/// The tensor description's first release is its only one so far.
let oldestTensorDescSize = MemoryLayout<adamcore_tensor_desc>.size

@_cdecl("adamcore_tensor_desc_init_sized")
public func adamcore_tensor_desc_init_sized_(_ desc: UnsafeMutablePointer<adamcore_tensor_desc>?, _ size: UInt) -> Int32 {
    status { () throws(AdamCoreError) in
        guard let desc else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        try writeSized(adamcore_tensor_desc(), to: UnsafeMutableRawPointer(desc),
                       size: size <= UInt(largestStructSize) ? Int(size) : Int.max, oldest: oldestTensorDescSize)
    }
}

@_cdecl("adamcore_optimizer_add_tensor_desc")
public func adamcore_optimizer_add_tensor_desc_(_ handle: OpaquePointer?, _ group: UInt,
                                                _ desc: UnsafePointer<adamcore_tensor_desc>?,
                                                _ out: UnsafeMutablePointer<UInt>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let opt = try optimizer(handle)
        let d = try readSized(desc, oldest: oldestTensorDescSize, defaults: adamcore_tensor_desc())
        let i = try opt.addTensor(group: position(group), layout: layout(of: d), param: d.param, grad: d.grad,
                                  count: count(UInt(bitPattern: d.count)), state: d.state,
                                  stateCount: position(UInt(bitPattern: d.state_count)),
                                  master: d.master, copy: d.copy)
        out?.pointee = UInt(i)
    }
}

/// The layout a description asks for; unknown dtype codes and flags are ADAMCORE_E_DTYPE / ADAMCORE_E_FLAGS.
func layout(of d: adamcore_tensor_desc) throws(AdamCoreError) -> TensorLayout {
    func dtype(_ code: Int32, default fallback: DType?) throws(AdamCoreError) -> DType? {
        if code == 0, let fallback { return fallback }
        guard let t = DType(code: code) else { throw AdamCoreError(ADAMCORE_E_DTYPE) }
        return t
    }
    let known = ADAMCORE_TENSOR_MASTER_WEIGHTS.rawValue | ADAMCORE_TENSOR_STOCHASTIC_PARAM.rawValue
        | ADAMCORE_TENSOR_STOCHASTIC_STATE.rawValue
    guard d.flags & ~known == 0 else { throw AdamCoreError(ADAMCORE_E_FLAGS) }
    guard let param = try dtype(d.param_dtype, default: nil) else { throw AdamCoreError(ADAMCORE_E_DTYPE) }
    var rounding: StochasticRounding = []
    if d.flags & ADAMCORE_TENSOR_STOCHASTIC_PARAM.rawValue != 0 { rounding.insert(.parameters) }
    if d.flags & ADAMCORE_TENSOR_STOCHASTIC_STATE.rawValue != 0 { rounding.insert(.state) }
    return TensorLayout(param: param, grad: try dtype(d.grad_dtype, default: param),
                        state: d.state_dtype == 0 ? nil : try dtype(d.state_dtype, default: nil),
                        masterWeights: d.flags & ADAMCORE_TENSOR_MASTER_WEIGHTS.rawValue != 0,
                        copy: d.copy_dtype == 0 ? nil : try dtype(d.copy_dtype, default: nil),
                        stochasticRounding: rounding)
}

@_cdecl("adamcore_optimizer_get_tensor_desc")
public func adamcore_optimizer_get_tensor_desc_(_ handle: OpaquePointer?, _ tensor: UInt,
                                                _ desc: UnsafeMutablePointer<adamcore_tensor_desc>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let t = try optimizer(handle).tensorLayout(position(tensor))
        let l = t.layout
        var flags: UInt32 = l.masterWeights ? ADAMCORE_TENSOR_MASTER_WEIGHTS.rawValue : 0
        if l.stochasticRounding.contains(.parameters) { flags |= ADAMCORE_TENSOR_STOCHASTIC_PARAM.rawValue }
        if l.stochasticRounding.contains(.state) { flags |= ADAMCORE_TENSOR_STOCHASTIC_STATE.rawValue }
        var d = adamcore_tensor_desc()
        d.param_dtype = Int32(l.param.cValue.rawValue)
        d.grad_dtype = Int32(l.grad.cValue.rawValue)
        d.state_dtype = Int32(l.state.cValue.rawValue)
        d.flags = flags
        d.copy_dtype = l.copy.map { Int32($0.cValue.rawValue) } ?? 0
        d.count = t.count
        d.param = t.param
        d.grad = t.grad
        d.state_count = t.stateCount
        d.master = t.master
        d.copy = t.copy
        try writeSized(d, to: desc, oldest: oldestTensorDescSize)
    }
}

@_cdecl("adamcore_optimizer_set_rounding_seed")
public func adamcore_optimizer_set_rounding_seed_(_ handle: OpaquePointer?, _ seed: UInt64) -> Int32 {
    status { () throws(AdamCoreError) in try optimizer(handle).roundingSeed = seed }
}

@_cdecl("adamcore_optimizer_get_rounding_seed")
public func adamcore_optimizer_get_rounding_seed_(_ handle: OpaquePointer?, _ seed: UnsafeMutablePointer<UInt64>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let opt = try optimizer(handle)
        guard let seed else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        seed.pointee = opt.roundingSeed
    }
}

@_cdecl("adamcore_optimizer_tensor_count")
public func adamcore_optimizer_tensor_count_(_ handle: OpaquePointer?, _ out: UnsafeMutablePointer<UInt>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let opt = try optimizer(handle)
        guard let out else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        out.pointee = UInt(opt.tensorCount)
    }
}

@_cdecl("adamcore_optimizer_tensor_info")
public func adamcore_optimizer_tensor_info_(_ handle: OpaquePointer?, _ tensor: UInt, _ n: UnsafeMutablePointer<UInt>?,
                                            _ dtype: UnsafeMutablePointer<Int32>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let info = try optimizer(handle).tensorInfo(position(tensor))
        n?.pointee = UInt(info.count)
        dtype?.pointee = Int32(info.dtype.cValue.rawValue)
    }
}

@_cdecl("adamcore_optimizer_state_buffer")
public func adamcore_optimizer_state_buffer_(_ handle: OpaquePointer?, _ tensor: UInt, _ slot: UInt,
                                             _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let opt = try optimizer(handle)
        guard let out else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        out.pointee = try opt.stateBuffer(tensor: position(tensor), slot: position(slot))
    }
}

/// A step's status: ADAMCORE_STEP_SKIPPED when it wrote nothing by design.
@inline(__always)
func stepStatus(_ body: () throws(AdamCoreError) -> StepOutcome) -> Int32 {
    do {
        return try body() == .applied ? ADAMCORE_OK.rawValue : ADAMCORE_STEP_SKIPPED.rawValue
    } catch {
        return error.code
    }
}

@_cdecl("adamcore_optimizer_step")
public func adamcore_optimizer_step_(_ handle: OpaquePointer?, _ grads: UnsafePointer<UnsafeRawPointer?>?,
                                     _ n: UInt) -> Int32 {
    stepStatus { () throws(AdamCoreError) in try optimizer(handle).step(grads: grads, count: position(n)) }
}

@_cdecl("adamcore_step_options_init")
public func adamcore_step_options_init_(_ options: UnsafeMutablePointer<adamcore_step_options>?) -> Int32 {
    status { () throws(AdamCoreError) in
        guard let options else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        try writeSized(defaultStepOptions, to: UnsafeMutableRawPointer(options), size: oldestStepOptionsSize,
                       oldest: oldestStepOptionsSize)
    }
}

let defaultStepOptions = adamcore_step_options(struct_size: 0, found_inf: 0, grad_scale: 1)

@_cdecl("adamcore_step_options_init_sized")
public func adamcore_step_options_init_sized_(_ options: UnsafeMutablePointer<adamcore_step_options>?,
                                              _ size: UInt) -> Int32 {
    status { () throws(AdamCoreError) in
        guard let options else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        try writeSized(defaultStepOptions, to: UnsafeMutableRawPointer(options),
                       size: size <= UInt(largestStructSize) ? Int(size) : Int.max, oldest: oldestStepOptionsSize)
    }
}

@_cdecl("adamcore_optimizer_step_with_options")
public func adamcore_optimizer_step_with_options_(_ handle: OpaquePointer?, _ grads: UnsafePointer<UnsafeRawPointer?>?,
                                                  _ n: UInt, _ options: UnsafePointer<adamcore_step_options>?) -> Int32 {
    stepStatus { () throws(AdamCoreError) in
        let opt = try optimizer(handle)
        return try opt.step(grads: grads, count: position(n), options: try stepOptions(options))
    }
}

/// Step options from the caller's struct (NULL: the defaults).
func stepOptions(_ options: UnsafePointer<adamcore_step_options>?) throws(AdamCoreError) -> StepOptions {
    guard options != nil else { return StepOptions() }
    let o = try readSized(options, oldest: oldestStepOptionsSize, defaults: defaultStepOptions)
    return StepOptions(gradScale: o.grad_scale, foundInf: o.found_inf != 0)
}

@_cdecl("adamcore_optimizer_step_tensors")
public func adamcore_optimizer_step_tensors_(_ handle: OpaquePointer?, _ tensors: UnsafePointer<UInt>?,
                                             _ grads: UnsafePointer<UnsafeRawPointer?>?, _ n: UInt,
                                             _ options: UnsafePointer<adamcore_step_options>?) -> Int32 {
    stepStatus { () throws(AdamCoreError) in
        let opt = try optimizer(handle)
        let parsed = try stepOptions(options)
        // size_t and Int share a layout; an index above INTPTR_MAX reads as negative, which is out of range.
        let list = UnsafeRawPointer(tensors)?.assumingMemoryBound(to: Int.self)
        return try opt.step(tensors: list, grads: grads, count: position(n), options: parsed)
    }
}

@_cdecl("adamcore_optimizer_get_tensor_step")
public func adamcore_optimizer_get_tensor_step_(_ handle: OpaquePointer?, _ tensor: UInt,
                                                _ out: UnsafeMutablePointer<Int64>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let opt = try optimizer(handle)
        let i = position(tensor)
        guard opt.tensorSteps.indices.contains(i) else { throw AdamCoreError(ADAMCORE_E_INDEX) }
        guard let out else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        out.pointee = opt.tensorSteps[i]
    }
}

@_cdecl("adamcore_optimizer_set_tensor_step")
public func adamcore_optimizer_set_tensor_step_(_ handle: OpaquePointer?, _ tensor: UInt, _ step: Int64) -> Int32 {
    status { () throws(AdamCoreError) in try optimizer(handle).setStepCount(step, ofTensor: position(tensor)) }
}

@_cdecl("adamcore_optimizer_set_tensor_param")
public func adamcore_optimizer_set_tensor_param_(_ handle: OpaquePointer?, _ tensor: UInt,
                                                 _ param: UnsafeMutableRawPointer?) -> Int32 {
    status { () throws(AdamCoreError) in try optimizer(handle).setParam(param, ofTensor: position(tensor)) }
}

@_cdecl("adamcore_optimizer_set_nonfinite_guard")
public func adamcore_optimizer_set_nonfinite_guard_(_ handle: OpaquePointer?, _ enabled: Int32) -> Int32 {
    status { () throws(AdamCoreError) in try optimizer(handle).guardsNonFinite = enabled != 0 }
}

@_cdecl("adamcore_optimizer_get_nonfinite_guard")
public func adamcore_optimizer_get_nonfinite_guard_(_ handle: OpaquePointer?, _ enabled: UnsafeMutablePointer<Int32>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let opt = try optimizer(handle)
        guard let enabled else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        enabled.pointee = opt.guardsNonFinite ? 1 : 0
    }
}

@_cdecl("adamcore_optimizer_get_skipped_steps")
public func adamcore_optimizer_get_skipped_steps_(_ handle: OpaquePointer?, _ skipped: UnsafeMutablePointer<Int64>?,
                                                  _ lastNonFinite: UnsafeMutablePointer<UInt64>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let opt = try optimizer(handle)
        skipped?.pointee = opt.skippedSteps
        lastNonFinite?.pointee = UInt64(opt.lastNonFiniteCount)
    }
}

@_cdecl("adamcore_optimizer_adafix_observe")
public func adamcore_optimizer_adafix_observe_(_ handle: OpaquePointer?, _ grads: UnsafePointer<UnsafeRawPointer?>?,
                                               _ newGrads: UnsafePointer<UnsafeRawPointer?>?, _ n: UInt) -> Int32 {
    status { () throws(AdamCoreError) in try optimizer(handle).adafixObserve(grads: grads, newGrads: newGrads, count: position(n)) }
}

@_cdecl("adamcore_optimizer_get_step")
public func adamcore_optimizer_get_step_(_ handle: OpaquePointer?, _ out: UnsafeMutablePointer<Int64>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let opt = try optimizer(handle)
        guard let out else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        out.pointee = opt.stepCount
    }
}

@_cdecl("adamcore_optimizer_set_step")
public func adamcore_optimizer_set_step_(_ handle: OpaquePointer?, _ step: Int64) -> Int32 {
    status { () throws(AdamCoreError) in try optimizer(handle).setStepCount(step) }
}

@_cdecl("adamcore_optimizer_get_lipschitz")
public func adamcore_optimizer_get_lipschitz_(_ handle: OpaquePointer?, _ out: UnsafeMutablePointer<Double>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let opt = try optimizer(handle)
        guard opt.algorithm == .adafix else { throw AdamCoreError(ADAMCORE_E_ALGORITHM) }
        guard let out else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        out.pointee = opt.lipschitz
    }
}

@_cdecl("adamcore_optimizer_set_lipschitz")
public func adamcore_optimizer_set_lipschitz_(_ handle: OpaquePointer?, _ value: Double) -> Int32 {
    status { () throws(AdamCoreError) in try optimizer(handle).setLipschitz(value) }
}

@_cdecl("adamcore_optimizer_adafix_v_updated")
public func adamcore_optimizer_adafix_v_updated_(_ handle: OpaquePointer?, _ out: UnsafeMutablePointer<Int32>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let opt = try optimizer(handle)
        guard opt.algorithm == .adafix else { throw AdamCoreError(ADAMCORE_E_ALGORITHM) }
        guard let out else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        out.pointee = opt.vUpdated ? 1 : 0
    }
}

@_cdecl("adamcore_optimizer_get_adafix_step_norm_sq")
public func adamcore_optimizer_get_adafix_step_norm_sq_(_ handle: OpaquePointer?, _ out: UnsafeMutablePointer<Double>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let opt = try optimizer(handle)
        guard opt.algorithm == .adafix else { throw AdamCoreError(ADAMCORE_E_ALGORITHM) }
        guard let out else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        out.pointee = opt.lastStepNormSquared ?? -1
    }
}

@_cdecl("adamcore_optimizer_set_adafix_step_norm_sq")
public func adamcore_optimizer_set_adafix_step_norm_sq_(_ handle: OpaquePointer?, _ value: Double) -> Int32 {
    status { () throws(AdamCoreError) in try optimizer(handle).setLastStepNormSquared(value == -1 ? nil : value) }
}
