import CAdamCore

/// An error of adamcore: one of the header's `ADAMCORE_E_*` statuses.
public struct AdamCoreError: Error, Equatable, Hashable, CustomStringConvertible {
    /// The status code (a negative `adamcore_status` value).
    public let code: Int32

    @inlinable
    package init(_ status: adamcore_status) { code = status.rawValue }

    /// The error statuses by name: the header's `ADAMCORE_E_*`, in its order, with its values.
    public enum Status: Int32, CaseIterable, Sendable {
        case nullPointer = -1, length = -2, overlap = -3, misaligned = -4, step = -5, structSize = -6
        case algorithm = -7, flags = -8, lr = -9, beta1 = -10, beta2 = -11, eps = -12, epsRoot = -13
        case weightDecay = -14, momentum = -15, dampening = -16, nesterov = -17, alpha = -18, lrDecay = -19
        case initialAccumulator = -20, reserved = -21, state = -22, dtype = -23, handle = -24, index = -25
        case count = -26, noMemory = -27, sequence = -28, nonfinite = -29, lipschitz = -30, threads = -31
        case gradScale = -32, io = -33, format = -34, mismatch = -35, isa = -36
    }

    /// This error's status by name (nil only for a code this library version does not know).
    public var status: Status? { Status(rawValue: code) }

    /// The enumerator's name, e.g. `ADAMCORE_E_BETA1`.
    public var name: String { Self.describe(code).name }
    /// A one-line description, e.g. `beta1 must be finite and in [0, 1)`.
    public var message: String { Self.describe(code).message }
    public var description: String { "\(name): \(message)" }

    /// Name and message of any status code ("ADAMCORE_E_UNKNOWN" for one the header does not list), from the
    /// header's ADAMCORE_STATUS_MAP. The C API returns the same strings (static storage).
    public static func describe(_ code: Int32) -> (name: String, message: String) {
        (String(cString: adamcore_shim_status_name(code)), String(cString: adamcore_shim_status_message(code)))
    }

    /// Every status the library can return, in the header's order (ADAMCORE_OK, ADAMCORE_STEP_SKIPPED, the errors).
    public static let allCodes: [Int32] = {
        var codes: [Int32] = []
        var code: Int32 = 0
        while adamcore_shim_status_at(Int32(codes.count), &code) != 0 { codes.append(code) }
        return codes
    }()
}

/// Shorthand used by validation code.
@usableFromInline
func fail(_ status: adamcore_status) -> AdamCoreError { AdamCoreError(status) }
