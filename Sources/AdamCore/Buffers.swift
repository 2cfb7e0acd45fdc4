import CAdamCore

/// A buffer's address range, for the checks every entry point makes before it touches memory.
@usableFromInline
struct ByteRange {
    @usableFromInline let start: UInt
    @usableFromInline let end: UInt

    /// Validates one buffer of `count` elements of `T`: not NULL, aligned, and inside the address space.
    @inlinable
    init<T>(_ pointer: UnsafeRawPointer?, count: Int, of _: T.Type) throws(AdamCoreError) {
        guard let pointer else { throw fail(ADAMCORE_E_NULL_POINTER) }
        let address = UInt(bitPattern: pointer)
        guard address % UInt(MemoryLayout<T>.alignment) == 0 else { throw fail(ADAMCORE_E_MISALIGNED) }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<T>.stride)
        guard count >= 0, !overflow, bytes <= Int.max else { throw fail(ADAMCORE_E_LENGTH) }
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
