// The C ABI: every function of include/adamcore.h, as thin shims over AdamCore. They convert arguments, call the
// core, and map a thrown AdamCoreError to its status. Nothing here decides an update rule. This file: the kernel
// tier, the status and sized-struct helpers every export uses, version, status and thread functions; each other
// header section has its own *Exports.swift.
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

/// Every kernel set this CPU can run, widest last; each is built only after its cpuid check, made here in baseline
/// code.
let runnableKernels: [KernelSet] = {
    var sets: [KernelSet] = [.baseline]
    #if arch(x86_64)
    if adamcore_shim_cpu_has_avx2_fma() != 0 { sets.append(makeAVX2Kernels()) }
    if adamcore_shim_cpu_has_avx512() != 0 { sets.append(makeAVX512Kernels()) }
    #endif
    return sets
}()

/// The default: the widest set, or, on a CPU whose row in Tuning.swift says so (AVX-512 double-pumped), the AVX2
/// set's float32/float64 kernels with the AVX-512 set's 16-bit ones.
let tunedKernels: KernelSet = {
    let widest = runnableKernels[runnableKernels.count - 1]
    guard widest.isa == ADAMCORE_ISA_AVX512, !CPUTuning.current.avx512ForStreams else { return widest }
    return KernelSet(streams: runnableKernels[runnableKernels.count - 2], sixteenBit: widest)
}()

/// The set in use: -1 the tuned default, else an index into runnableKernels. ADAMCORE_ISA (baseline, avx2_fma,
/// avx512) in the environment chooses one tier instead, capped at what the CPU runs; adamcore_select_isa changes it.
let selectedKernels = Atomic<Int>(initialKernelIndex())

func initialKernelIndex() -> Int {
    guard let raw = getenv("ADAMCORE_ISA") else { return -1 }
    let names: [String: adamcore_isa] = ["baseline": ADAMCORE_ISA_BASELINE, "avx2_fma": ADAMCORE_ISA_AVX2_FMA,
                                         "avx2": ADAMCORE_ISA_AVX2_FMA, "avx512": ADAMCORE_ISA_AVX512]
    guard let cap = names[String(cString: raw)] else { return -1 }
    return runnableKernels.lastIndex { $0.isa.rawValue <= cap.rawValue } ?? 0
}

/// The kernel set of a stateless call or a new optimizer.
var activeKernels: KernelSet {
    let index = selectedKernels.load(ordering: .relaxed)
    return index < 0 ? tunedKernels : runnableKernels[index]
}

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
        if isa == Int32(ADAMCORE_ISA_DEFAULT.rawValue) {
            selectedKernels.store(initialKernelIndex(), ordering: .relaxed)
            return
        }
        guard let index = runnableKernels.firstIndex(where: { Int32($0.isa.rawValue) == isa }) else {
            throw AdamCoreError(ADAMCORE_E_ISA)
        }
        selectedKernels.store(index, ordering: .relaxed)
    }
}

// MARK: - Threads

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
