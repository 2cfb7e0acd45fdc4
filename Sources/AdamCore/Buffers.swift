import CAdamCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A buffer's address range, for the checks every entry point makes before it touches memory.
@usableFromInline
struct ByteRange: Sendable {
    @usableFromInline let start: UInt
    @usableFromInline let end: UInt

    /// Validates one buffer of `count` elements of `size` bytes, aligned to `size` (a power of two): not NULL,
    /// aligned, and inside the address space.
    @inlinable
    init(_ pointer: UnsafeRawPointer?, count: Int, elementSize size: Int) throws(AdamCoreError) {
        guard let pointer else { throw fail(ADAMCORE_E_NULL_POINTER) }
        let address = UInt(bitPattern: pointer)
        guard address & UInt(size - 1) == 0 else { throw fail(ADAMCORE_E_MISALIGNED) }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: size)
        guard count >= 0, !overflow else { throw fail(ADAMCORE_E_LENGTH) }
        let (end, wrapped) = address.addingReportingOverflow(UInt(bytes))
        guard !wrapped, end <= ByteRange.addressLimit else { throw fail(ADAMCORE_E_LENGTH) }
        start = address
        self.end = end
    }

    /// No user-space buffer ends above 2^57 (Linux's limit with 5-level paging; 2^47 with 4 levels), so a count
    /// reaching past it is a wrong count, not a real buffer.
    @usableFromInline
    static let addressLimit: UInt = 1 << 57

    @usableFromInline
    init(start: UInt, end: UInt) { self.start = start; self.end = end }

    /// An empty range, which overlaps nothing.
    @usableFromInline
    static let empty = ByteRange(start: 0, end: 0)

    @inlinable
    func overlaps(_ other: ByteRange) -> Bool {
        start < other.end && other.start < end && start < end && other.start < other.end
    }
}

/// A tensor's state buffers in its config's slot order (ValidConfig.slot), nil past its stateCount: the one model
/// of slots from the C call to the kernels' streams. Three is the most any config has (AMSGrad; AdaFix with the
/// saved gradient; RMSprop centered with momentum). A value of fixed size, so a step allocates nothing.
@usableFromInline package struct StateSlots {
    @usableFromInline package static let capacity = 3
    @usableFromInline var pointers: (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?)

    @inlinable
    package init(_ first: UnsafeMutableRawPointer? = nil, _ second: UnsafeMutableRawPointer? = nil,
                 _ third: UnsafeMutableRawPointer? = nil) {
        pointers = (first, second, third)
    }

    /// The first `count` (<= capacity) of a C array of state pointers.
    init(_ array: UnsafePointer<UnsafeMutableRawPointer?>, count: Int) {
        self.init(count > 0 ? array[0] : nil, count > 1 ? array[1] : nil, count > 2 ? array[2] : nil)
    }

    @inlinable
    package subscript(k: Int) -> UnsafeMutableRawPointer? {
        get {
            switch k {
            case 0: return pointers.0
            case 1: return pointers.1
            case 2: return pointers.2
            default: return nil
            }
        }
        set {
            switch k {
            case 0: pointers.0 = newValue
            case 1: pointers.1 = newValue
            default: pointers.2 = newValue
            }
        }
    }

    /// Every present slot `bytes` further on (a chunk's view of the tensor).
    @inlinable
    package func advanced(by bytes: Int) -> StateSlots {
        StateSlots(pointers.0.map { $0 + bytes }, pointers.1.map { $0 + bytes }, pointers.2.map { $0 + bytes })
    }
}

/// The disjoint byte ranges an optimizer writes (every tensor's parameter and state), sorted by start, so that a
/// step can check each gradient against all of them with one binary search instead of a scan of every tensor.
struct DisjointRanges {
    private(set) var ranges: ContiguousArray<ByteRange> = []

    /// Inserts `r` (empty ranges are not kept: they overlap nothing). The caller has checked it overlaps none.
    mutating func insert(_ r: ByteRange) {
        guard r.start < r.end else { return }
        ranges.insert(r, at: insertionIndex(r.start))
    }

    mutating func remove(_ r: ByteRange) {
        guard r.start < r.end else { return }
        let i = insertionIndex(r.start)
        if i < ranges.count, ranges[i].start == r.start { ranges.remove(at: i) }
    }

    /// Whether `r` overlaps any range. Ranges are disjoint and sorted, so only the last one starting before
    /// r.end can reach into r: every earlier one ends at or before that one's start.
    func overlaps(_ r: ByteRange) -> Bool {
        guard r.start < r.end else { return false }
        let i = insertionIndex(r.end)  // the first range starting at or after r.end
        return i > 0 && ranges[i - 1].end > r.start
    }

    /// The first index whose range starts at or after `address`.
    private func insertionIndex(_ address: UInt) -> Int {
        var low = 0, high = ranges.count
        while low < high {
            let mid = (low + high) / 2
            if ranges[mid].start < address { low = mid + 1 } else { high = mid }
        }
        return low
    }
}

// MARK: - Library-owned buffers

/// Memory for a buffer the library owns (a tensor's state): `bytes` rounded up, or nil when memory is short.
/// From 4 MiB up it is 2 MiB aligned and advised for transparent huge pages, as numpy does for its arrays: with
/// THP in "madvise" mode (the common default) plain memory gets 4 KiB pages, and a step over state in them was
/// measured 10-15% slower out of cache than the same step over numpy's arrays (docs/PERFORMANCE.md). Freed with
/// `free`. Nothing is touched here: the first write decides where the pages live (see `fill`).
func allocateOwnedBuffer(bytes: Int) -> UnsafeMutableRawPointer? {
    let huge = bytes >= hugeBufferBytes
    let alignment = huge ? hugePageBytes : 64
    let (rounded, overflow) = Swift.max(bytes, 64).addingReportingOverflow(alignment - 1)
    guard !overflow else { return nil }
    let size = rounded / alignment * alignment
    var raw: UnsafeMutableRawPointer?
    guard posix_memalign(&raw, alignment, size) == 0, let raw else { return nil }
    if huge { adamcore_shim_advise_huge_pages(raw, size) }
    return raw
}

let hugePageBytes = 2 << 20
let hugeBufferBytes = 4 << 20

/// Sets `count` elements at `base` to `value`, in the steps' chunks and on the steps' threads when the buffer is
/// large, so that its pages are first touched (and placed, on a NUMA machine) by the threads that will step it,
/// and a large registration costs a fraction of a serial fill.
func fill<T: BitwiseCopyable>(_ base: UnsafeMutablePointer<T>, count: Int, with value: T) {
    let job = FillJob(base: base, count: count, value: value)
    WorkerPool.shared.run(job, threads: count >= Threading.minimumElements ? Threading.threadCount : 1)
}

private final class FillJob<T: BitwiseCopyable>: ParallelTask {
    let base: UnsafeMutablePointer<T>
    let count: Int
    let value: T
    let itemCount: Int

    init(base: UnsafeMutablePointer<T>, count: Int, value: T) {
        self.base = base
        self.count = count
        self.value = value
        itemCount = (count + chunkElements - 1) / chunkElements
    }

    func run(item: Int) {
        let start = item * chunkElements
        (base + start).initialize(repeating: value, count: Swift.min(chunkElements, count - start))
    }
}
