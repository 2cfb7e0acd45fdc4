// The C ABI: every function of include/adamcore.h, as thin shims over AdamCore. They convert arguments, call the
// core, and map a thrown AdamCoreError to its status. Nothing here decides an update rule.
import AdamCore
import CAdamCore
import Synchronization
#if arch(x86_64)
import AdamCoreAVX2
import AdamCoreAVX512
#endif
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Kernel choice

/// Every kernel set this CPU can run, best last; each is built only after its cpuid check, made here in baseline
/// code. ADAMCORE_ISA (baseline, avx2_fma, avx512) in the environment caps the first choice.
let runnableKernels: [KernelSet] = {
    var sets: [KernelSet] = [.baseline]
    #if arch(x86_64)
    if adamcore_shim_cpu_has_avx2_fma() != 0 { sets.append(makeAVX2Kernels()) }
    if adamcore_shim_cpu_has_avx512() != 0 { sets.append(makeAVX512Kernels()) }
    #endif
    return sets
}()

/// Index into runnableKernels of the set in use (adamcore_select_isa changes it).
let selectedKernels = Atomic<Int>(initialKernelIndex())

func initialKernelIndex() -> Int {
    let best = runnableKernels.count - 1
    guard let raw = getenv("ADAMCORE_ISA") else { return best }
    let names: [String: adamcore_isa] = ["baseline": ADAMCORE_ISA_BASELINE, "avx2_fma": ADAMCORE_ISA_AVX2_FMA,
                                         "avx2": ADAMCORE_ISA_AVX2_FMA, "avx512": ADAMCORE_ISA_AVX512]
    guard let cap = names[String(cString: raw)] else { return best }
    return runnableKernels.lastIndex { $0.isa.rawValue <= cap.rawValue } ?? 0
}

/// The kernel set of a stateless call or a new optimizer.
var activeKernels: KernelSet { runnableKernels[selectedKernels.load(ordering: .relaxed)] }

@inline(__always)
func status(_ body: () throws(AdamCoreError) -> Void) -> Int32 {
    do {
        try body()
        return ADAMCORE_OK.rawValue
    } catch {
        return error.code
    }
}

@inline(__always)
func cString(_ s: StaticString) -> UnsafePointer<CChar> {
    UnsafeRawPointer(s.utf8Start).assumingMemoryBound(to: CChar.self)
}

// MARK: - Structs of any release's size

/// Every struct that crosses the boundary starts with `uint32_t struct_size`, set by the caller. A struct from an
/// older header is smaller (its missing fields take the values that release meant), one from a newer header larger
/// (accepted when every byte this library does not know is zero). Nothing past struct_size is read or written.
/// Sizes above this are not a struct but garbage (an uninitialised struct_size): refused before reading any of it.
let largestStructSize = 4096

/// The first release's size of each struct (0.1.0): smaller is not a struct this library ever defined.
let oldestConfigSize = 104, oldestStepOptionsSize = 16, oldestStepStatsSize = 104

/// The caller's struct at `p`, read by its struct_size; `defaults` supplies what an older layout lacks. The result
/// carries this library's struct_size.
@inline(__always)
func readSized<T>(_ p: UnsafePointer<T>?, oldest: Int, defaults: T) throws(AdamCoreError) -> T {
    guard let p else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
    let raw = UnsafeRawPointer(p)
    let size = Int(raw.loadUnaligned(as: UInt32.self))
    let known = MemoryLayout<T>.size
    guard size >= oldest, size <= largestStructSize else { throw AdamCoreError(ADAMCORE_E_STRUCT_SIZE) }
    if size > known {
        for k in known..<size where raw.load(fromByteOffset: k, as: UInt8.self) != 0 {
            throw AdamCoreError(ADAMCORE_E_STRUCT_SIZE)
        }
    }
    var value = defaults
    withUnsafeMutableBytes(of: &value) { $0.copyMemory(from: UnsafeRawBufferPointer(start: raw, count: Swift.min(size, known))) }
    withUnsafeMutableBytes(of: &value) { $0.storeBytes(of: UInt32(known), as: UInt32.self) }
    return value
}

/// Writes `value` into the caller's struct at `p` by its struct_size (kept as the caller set it): the fields an
/// older layout has, and zeros in a newer layout's bytes this library does not know.
@inline(__always)
func writeSized<T>(_ value: T, to p: UnsafeMutablePointer<T>?, oldest: Int) throws(AdamCoreError) {
    guard let p else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
    try writeSized(value, to: UnsafeMutableRawPointer(p), size: Int(UnsafeRawPointer(p).loadUnaligned(as: UInt32.self)),
                   oldest: oldest)
}

@inline(__always)
func writeSized<T>(_ value: T, to raw: UnsafeMutableRawPointer, size: Int, oldest: Int) throws(AdamCoreError) {
    let known = MemoryLayout<T>.size
    guard size >= oldest, size <= largestStructSize else { throw AdamCoreError(ADAMCORE_E_STRUCT_SIZE) }
    var v = value
    withUnsafeMutableBytes(of: &v) { $0.storeBytes(of: UInt32(size), as: UInt32.self) }
    withUnsafeBytes(of: &v) { raw.copyMemory(from: $0.baseAddress!, byteCount: Swift.min(size, known)) }
    if size > known { (raw + known).initializeMemory(as: UInt8.self, repeating: 0, count: size - known) }
}

@inline(__always)
func config(_ p: UnsafePointer<adamcore_config>?) throws(AdamCoreError) -> adamcore_config {
    try readSized(p, oldest: oldestConfigSize, defaults: adamcore_config())
}

/// The handles adamcore_optimizer_create returned and adamcore_optimizer_destroy has not yet freed. Every call
/// checks its handle here before touching it, so a freed handle, a second destroy or a stray pointer is
/// ADAMCORE_E_HANDLE instead of a crash. (A freed address that a new optimizer later reuses names that new one.)
let liveHandles = Mutex<Set<UInt>>([])

@inline(__always)
func optimizer(_ handle: OpaquePointer?) throws(AdamCoreError) -> Optimizer {
    guard let handle, liveHandles.withLock({ $0.contains(UInt(bitPattern: handle)) }) else {
        throw AdamCoreError(ADAMCORE_E_HANDLE)
    }
    return Unmanaged<Optimizer>.fromOpaque(UnsafeRawPointer(handle)).takeUnretainedValue()
}

/// A size_t element count; counts above INTPTR_MAX cannot describe a buffer.
@inline(__always)
func count(_ n: UInt) throws(AdamCoreError) -> Int {
    guard n <= UInt(Int.max) else { throw AdamCoreError(ADAMCORE_E_LENGTH) }
    return Int(n)
}

/// A size_t index or list length; values above INTPTR_MAX become -1, which every range check rejects.
@inline(__always)
func position(_ i: UInt) -> Int { i <= UInt(Int.max) ? Int(i) : -1 }

// MARK: - Version and status

@_cdecl("adamcore_version_number")
public func adamcore_version_number_() -> UInt32 {
    UInt32(ADAMCORE_VERSION_MAJOR * 10000 + ADAMCORE_VERSION_MINOR * 100 + ADAMCORE_VERSION_PATCH)
}

@_cdecl("adamcore_version_string")
public func adamcore_version_string_() -> UnsafePointer<CChar> { cString(AdamCoreVersion.string) }

@_cdecl("adamcore_status_name")
public func adamcore_status_name_(_ code: Int32) -> UnsafePointer<CChar> { adamcore_shim_status_name(code) }

@_cdecl("adamcore_strerror")
public func adamcore_strerror_(_ code: Int32) -> UnsafePointer<CChar> { adamcore_shim_status_message(code) }

@_cdecl("adamcore_active_isa")
public func adamcore_active_isa_() -> Int32 { Int32(activeKernels.isa.rawValue) }

@_cdecl("adamcore_select_isa")
public func adamcore_select_isa_(_ isa: Int32) -> Int32 {
    status { () throws(AdamCoreError) in
        guard let index = runnableKernels.firstIndex(where: { Int32($0.isa.rawValue) == isa }) else {
            throw AdamCoreError(ADAMCORE_E_ISA)
        }
        selectedKernels.store(index, ordering: .relaxed)
    }
}

// MARK: - Config

@_cdecl("adamcore_config_init")
public func adamcore_config_init_(_ out: UnsafeMutablePointer<adamcore_config>?, _ algorithm: Int32) -> Int32 {
    status { () throws(AdamCoreError) in
        guard let out else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        guard let a = Algorithm(rawValue: algorithm) else { throw AdamCoreError(ADAMCORE_E_ALGORITHM) }
        // No size is passed: write the first release's layout, which every caller's struct has.
        try writeSized(Config(a).raw, to: UnsafeMutableRawPointer(out), size: oldestConfigSize, oldest: oldestConfigSize)
    }
}

@_cdecl("adamcore_config_init_sized")
public func adamcore_config_init_sized_(_ out: UnsafeMutablePointer<adamcore_config>?, _ size: UInt,
                                        _ algorithm: Int32) -> Int32 {
    status { () throws(AdamCoreError) in
        guard let out else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        guard let a = Algorithm(rawValue: algorithm) else { throw AdamCoreError(ADAMCORE_E_ALGORITHM) }
        try writeSized(Config(a).raw, to: UnsafeMutableRawPointer(out), size: size <= UInt(largestStructSize) ? Int(size) : Int.max,
                       oldest: oldestConfigSize)
    }
}

@_cdecl("adamcore_config_validate")
public func adamcore_config_validate_(_ c: UnsafePointer<adamcore_config>?) -> Int32 {
    status { () throws(AdamCoreError) in _ = try ValidConfig(config(c)) }
}

@_cdecl("adamcore_config_state_count")
public func adamcore_config_state_count_(_ c: UnsafePointer<adamcore_config>?, _ out: UnsafeMutablePointer<UInt>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let v = try ValidConfig(config(c))
        guard let out else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        out.pointee = UInt(v.stateCount)
    }
}

@_cdecl("adamcore_config_state_name")
public func adamcore_config_state_name_(_ c: UnsafePointer<adamcore_config>?, _ slot: UInt,
                                        _ out: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let v = try ValidConfig(config(c))
        guard let out else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        guard slot < UInt(v.stateCount) else { throw AdamCoreError(ADAMCORE_E_INDEX) }
        out.pointee = cString(v.slot(Int(slot)).cName)
    }
}

// MARK: - Stateless steps

@_cdecl("adamcore_adam_step_f32")
public func adamcore_adam_step_f32_(_ c: UnsafePointer<adamcore_config>?, _ step: Int64, _ n: UInt,
                                    _ param: UnsafeMutablePointer<Float>?, _ grad: UnsafePointer<Float>?,
                                    _ m: UnsafeMutablePointer<Float>?, _ v: UnsafeMutablePointer<Float>?,
                                    _ vmax: UnsafeMutablePointer<Float>?) -> Int32 {
    status { () throws(AdamCoreError) in
        try Step.adam(config(c), step: step, count: count(n), param: param, grad: grad, expAvg: m, expAvgSq: v,
                      maxExpAvgSq: vmax, kernels: activeKernels)
    }
}

@_cdecl("adamcore_adam_step_f64")
public func adamcore_adam_step_f64_(_ c: UnsafePointer<adamcore_config>?, _ step: Int64, _ n: UInt,
                                    _ param: UnsafeMutablePointer<Double>?, _ grad: UnsafePointer<Double>?,
                                    _ m: UnsafeMutablePointer<Double>?, _ v: UnsafeMutablePointer<Double>?,
                                    _ vmax: UnsafeMutablePointer<Double>?) -> Int32 {
    status { () throws(AdamCoreError) in
        try Step.adam(config(c), step: step, count: count(n), param: param, grad: grad, expAvg: m, expAvgSq: v,
                      maxExpAvgSq: vmax, kernels: activeKernels)
    }
}

@_cdecl("adamcore_adafix_step_f32")
public func adamcore_adafix_step_f32_(_ c: UnsafePointer<adamcore_config>?, _ step: Int64, _ n: UInt,
                                      _ param: UnsafeMutablePointer<Float>?, _ grad: UnsafePointer<Float>?,
                                      _ m: UnsafeMutablePointer<Float>?, _ v: UnsafeMutablePointer<Float>?,
                                      _ lipschitz: Double, _ result: UnsafeMutablePointer<adamcore_adafix_result>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let r = try Step.adafix(config(c), step: step, count: count(n), param: param, grad: grad, expAvg: m,
                                expAvgSq: v, lipschitz: lipschitz, kernels: activeKernels)
        result?.pointee = r
    }
}

@_cdecl("adamcore_adafix_step_f64")
public func adamcore_adafix_step_f64_(_ c: UnsafePointer<adamcore_config>?, _ step: Int64, _ n: UInt,
                                      _ param: UnsafeMutablePointer<Double>?, _ grad: UnsafePointer<Double>?,
                                      _ m: UnsafeMutablePointer<Double>?, _ v: UnsafeMutablePointer<Double>?,
                                      _ lipschitz: Double, _ result: UnsafeMutablePointer<adamcore_adafix_result>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let r = try Step.adafix(config(c), step: step, count: count(n), param: param, grad: grad, expAvg: m,
                                expAvgSq: v, lipschitz: lipschitz, kernels: activeKernels)
        result?.pointee = r
    }
}

@_cdecl("adamcore_adafix_lipschitz_f32")
public func adamcore_adafix_lipschitz_f32_(_ n: UInt, _ grad: UnsafePointer<Float>?, _ newGrad: UnsafePointer<Float>?,
                                           _ stepNormSq: Double, _ lipschitz: UnsafeMutablePointer<Double>?) -> Int32 {
    status { () throws(AdamCoreError) in
        guard let lipschitz else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        lipschitz.pointee = try Step.adafixLipschitz(count: count(n), grad: grad, newGrad: newGrad,
                                                     stepNormSquared: stepNormSq, lipschitz: lipschitz.pointee,
                                                     kernels: activeKernels)
    }
}

@_cdecl("adamcore_adafix_lipschitz_f64")
public func adamcore_adafix_lipschitz_f64_(_ n: UInt, _ grad: UnsafePointer<Double>?, _ newGrad: UnsafePointer<Double>?,
                                           _ stepNormSq: Double, _ lipschitz: UnsafeMutablePointer<Double>?) -> Int32 {
    status { () throws(AdamCoreError) in
        guard let lipschitz else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        lipschitz.pointee = try Step.adafixLipschitz(count: count(n), grad: grad, newGrad: newGrad,
                                                     stepNormSquared: stepNormSq, lipschitz: lipschitz.pointee,
                                                     kernels: activeKernels)
    }
}

@_cdecl("adamcore_sgd_step_f32")
public func adamcore_sgd_step_f32_(_ c: UnsafePointer<adamcore_config>?, _ step: Int64, _ n: UInt,
                                   _ param: UnsafeMutablePointer<Float>?, _ grad: UnsafePointer<Float>?,
                                   _ buf: UnsafeMutablePointer<Float>?) -> Int32 {
    status { () throws(AdamCoreError) in
        try Step.sgd(config(c), step: step, count: count(n), param: param, grad: grad, momentumBuffer: buf,
                     kernels: activeKernels)
    }
}

@_cdecl("adamcore_sgd_step_f64")
public func adamcore_sgd_step_f64_(_ c: UnsafePointer<adamcore_config>?, _ step: Int64, _ n: UInt,
                                   _ param: UnsafeMutablePointer<Double>?, _ grad: UnsafePointer<Double>?,
                                   _ buf: UnsafeMutablePointer<Double>?) -> Int32 {
    status { () throws(AdamCoreError) in
        try Step.sgd(config(c), step: step, count: count(n), param: param, grad: grad, momentumBuffer: buf,
                     kernels: activeKernels)
    }
}

@_cdecl("adamcore_rmsprop_step_f32")
public func adamcore_rmsprop_step_f32_(_ c: UnsafePointer<adamcore_config>?, _ step: Int64, _ n: UInt,
                                       _ param: UnsafeMutablePointer<Float>?, _ grad: UnsafePointer<Float>?,
                                       _ sq: UnsafeMutablePointer<Float>?, _ ga: UnsafeMutablePointer<Float>?,
                                       _ buf: UnsafeMutablePointer<Float>?) -> Int32 {
    status { () throws(AdamCoreError) in
        try Step.rmsprop(config(c), step: step, count: count(n), param: param, grad: grad, squareAvg: sq, gradAvg: ga,
                         momentumBuffer: buf, kernels: activeKernels)
    }
}

@_cdecl("adamcore_rmsprop_step_f64")
public func adamcore_rmsprop_step_f64_(_ c: UnsafePointer<adamcore_config>?, _ step: Int64, _ n: UInt,
                                       _ param: UnsafeMutablePointer<Double>?, _ grad: UnsafePointer<Double>?,
                                       _ sq: UnsafeMutablePointer<Double>?, _ ga: UnsafeMutablePointer<Double>?,
                                       _ buf: UnsafeMutablePointer<Double>?) -> Int32 {
    status { () throws(AdamCoreError) in
        try Step.rmsprop(config(c), step: step, count: count(n), param: param, grad: grad, squareAvg: sq, gradAvg: ga,
                         momentumBuffer: buf, kernels: activeKernels)
    }
}

@_cdecl("adamcore_adagrad_step_f32")
public func adamcore_adagrad_step_f32_(_ c: UnsafePointer<adamcore_config>?, _ step: Int64, _ n: UInt,
                                       _ param: UnsafeMutablePointer<Float>?, _ grad: UnsafePointer<Float>?,
                                       _ sum: UnsafeMutablePointer<Float>?) -> Int32 {
    status { () throws(AdamCoreError) in
        try Step.adagrad(config(c), step: step, count: count(n), param: param, grad: grad, stateSum: sum,
                         kernels: activeKernels)
    }
}

@_cdecl("adamcore_adagrad_step_f64")
public func adamcore_adagrad_step_f64_(_ c: UnsafePointer<adamcore_config>?, _ step: Int64, _ n: UInt,
                                       _ param: UnsafeMutablePointer<Double>?, _ grad: UnsafePointer<Double>?,
                                       _ sum: UnsafeMutablePointer<Double>?) -> Int32 {
    status { () throws(AdamCoreError) in
        try Step.adagrad(config(c), step: step, count: count(n), param: param, grad: grad, stateSum: sum,
                         kernels: activeKernels)
    }
}

// MARK: - Optimizer objects

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
        dtype?.pointee = Int32(info.dtype.rawValue)
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

// MARK: - Threads

// MARK: - Statistics and advice

func publicStats(_ st: StepStats, into out: UnsafeMutablePointer<adamcore_step_stats>?) throws(AdamCoreError) {
    guard out != nil else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
    try writeSized(adamcore_step_stats(
        struct_size: 0, adafix_v_frozen: st.adafixVFrozen ? 1 : 0, step: st.step,
        count: UInt64(st.count), nonfinite_grads: UInt64(st.nonFiniteGradients), max_step_over_lr: st.maxStepOverLR,
        step_bound: st.stepBound, min_effective_lr: st.minEffectiveLR, max_effective_lr: st.maxEffectiveLR,
        mean_effective_lr: st.meanEffectiveLR, m_norm: st.mNorm, v_norm: st.vNorm, step_norm: st.stepNorm,
        lipschitz: st.lipschitz), to: out, oldest: oldestStepStatsSize)
}

@_cdecl("adamcore_optimizer_set_stats")
public func adamcore_optimizer_set_stats_(_ handle: OpaquePointer?, _ enabled: Int32) -> Int32 {
    status { () throws(AdamCoreError) in try optimizer(handle).setStatsInterval(Int(enabled)) }
}

@_cdecl("adamcore_optimizer_get_stats")
public func adamcore_optimizer_get_stats_(_ handle: OpaquePointer?, _ out: UnsafeMutablePointer<adamcore_step_stats>?) -> Int32 {
    status { () throws(AdamCoreError) in try publicStats(try optimizer(handle).lastStats, into: out) }
}

@_cdecl("adamcore_optimizer_get_tensor_stats")
public func adamcore_optimizer_get_tensor_stats_(_ handle: OpaquePointer?, _ tensor: UInt,
                                                 _ out: UnsafeMutablePointer<adamcore_step_stats>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let opt = try optimizer(handle)
        let index = position(tensor)
        guard opt.lastTensorStats.indices.contains(index) else { throw AdamCoreError(ADAMCORE_E_INDEX) }
        try publicStats(opt.lastTensorStats[index], into: out)
    }
}

@_cdecl("adamcore_advise")
public func adamcore_advise_(_ c: UnsafePointer<adamcore_config>?, _ dtype: Int32,
                             _ out: UnsafeMutablePointer<adamcore_advice>?, _ capacity: UInt,
                             _ total: UnsafeMutablePointer<UInt>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let cfg = try config(c)
        guard let precision = StatePrecision(rawValue: dtype) else { throw AdamCoreError(ADAMCORE_E_DTYPE) }
        guard let total else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        guard capacity == 0 || out != nil else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        let list = try advise(Config(raw: cfg), precision: precision)
        for (i, a) in list.enumerated() where UInt(i) < capacity {
            out![i] = adamcore_advice(code: Int32(a.code.rawValue), severity: a.severity.rawValue, value: a.value,
                                      message: cString(a.message))
        }
        total.pointee = UInt(list.count)
    }
}

// MARK: - Checkpoints

/// A C path as the bytes it holds, NUL included.
func pathBytes(_ path: UnsafePointer<CChar>?) throws(AdamCoreError) -> [CChar] {
    guard let path else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
    return Array(UnsafeBufferPointer(start: path, count: strlen(path) + 1))
}

@_cdecl("adamcore_optimizer_save")
public func adamcore_optimizer_save_(_ handle: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let opt = try optimizer(handle)
        try opt.saveCheckpoint(toFile: try pathBytes(path))
    }
}

@_cdecl("adamcore_optimizer_load")
public func adamcore_optimizer_load_(_ handle: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let opt = try optimizer(handle)
        try opt.loadCheckpoint(fromFile: try pathBytes(path))
    }
}

@_cdecl("adamcore_optimizer_checkpoint_size")
public func adamcore_optimizer_checkpoint_size_(_ handle: OpaquePointer?, _ size: UnsafeMutablePointer<UInt>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let opt = try optimizer(handle)
        guard let size else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        size.pointee = UInt(opt.checkpointSize)
    }
}

@_cdecl("adamcore_optimizer_save_to_memory")
public func adamcore_optimizer_save_to_memory_(_ handle: OpaquePointer?, _ buffer: UnsafeMutableRawPointer?,
                                                _ capacity: UInt, _ written: UnsafeMutablePointer<UInt>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let opt = try optimizer(handle)
        guard let buffer else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        let n = try opt.saveCheckpoint(into: UnsafeMutableRawBufferPointer(start: buffer, count: try count(capacity)))
        written?.pointee = UInt(n)
    }
}

@_cdecl("adamcore_optimizer_load_from_memory")
public func adamcore_optimizer_load_from_memory_(_ handle: OpaquePointer?, _ bytes: UnsafeRawPointer?, _ size: UInt) -> Int32 {
    status { () throws(AdamCoreError) in
        let opt = try optimizer(handle)
        guard let bytes else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        try opt.loadCheckpoint(UnsafeRawBufferPointer(start: bytes, count: try count(size)))
    }
}

@_cdecl("adamcore_set_num_threads")
public func adamcore_set_num_threads_(_ threads: Int32) -> Int32 {
    status { () throws(AdamCoreError) in try Threading.setThreadCount(Int(threads)) }
}

@_cdecl("adamcore_get_num_threads")
public func adamcore_get_num_threads_(_ out: UnsafeMutablePointer<Int32>?) -> Int32 {
    status { () throws(AdamCoreError) in
        guard let out else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        out.pointee = Int32(Threading.threadCount)
    }
}
