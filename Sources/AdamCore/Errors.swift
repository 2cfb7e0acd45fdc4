import CAdamCore

/// An error of adamcore: one of the header's `ADAMCORE_E_*` statuses.
public struct AdamCoreError: Error, Equatable, Hashable, CustomStringConvertible {
    /// The status code (a negative `adamcore_status` value).
    public let code: Int32

    @inlinable
    public init(_ status: adamcore_status) { code = status.rawValue }

    /// The enumerator's name, e.g. `ADAMCORE_E_BETA1`.
    public var name: String { Self.describe(code).name.description }
    /// A one-line description, e.g. `beta1 must be finite and in [0, 1)`.
    public var message: String { Self.describe(code).message.description }
    public var description: String { "\(name): \(message)" }

    /// Name and message of any status code, as static NUL-terminated strings (the C API returns their pointers).
    public static func describe(_ code: Int32) -> (name: StaticString, message: StaticString) {
        switch code {
        case ADAMCORE_OK.rawValue: return ("ADAMCORE_OK", "success")
        case ADAMCORE_E_NULL_POINTER.rawValue: return ("ADAMCORE_E_NULL_POINTER", "a required pointer is NULL")
        case ADAMCORE_E_LENGTH.rawValue:
            return ("ADAMCORE_E_LENGTH", "buffers of different lengths, or an element count too large for the address space")
        case ADAMCORE_E_OVERLAP.rawValue: return ("ADAMCORE_E_OVERLAP", "two buffers of the call overlap")
        case ADAMCORE_E_MISALIGNED.rawValue:
            return ("ADAMCORE_E_MISALIGNED", "a buffer is not aligned to its element size")
        case ADAMCORE_E_STEP.rawValue: return ("ADAMCORE_E_STEP", "step must be >= 1 and the step count must not overflow")
        case ADAMCORE_E_STRUCT_SIZE.rawValue:
            return ("ADAMCORE_E_STRUCT_SIZE",
                    "a struct_size below the struct's first release's, above 4096, or larger with nonzero unknown bytes")
        case ADAMCORE_E_ALGORITHM.rawValue:
            return ("ADAMCORE_E_ALGORITHM", "unknown algorithm, or a call made for another algorithm")
        case ADAMCORE_E_FLAGS.rawValue: return ("ADAMCORE_E_FLAGS", "unknown flag, or a flag the algorithm does not take")
        case ADAMCORE_E_LR.rawValue: return ("ADAMCORE_E_LR", "lr must be finite and >= 0")
        case ADAMCORE_E_BETA1.rawValue:
            return ("ADAMCORE_E_BETA1", "beta1 must be finite and in [0, 1) (0 for algorithms without it)")
        case ADAMCORE_E_BETA2.rawValue:
            return ("ADAMCORE_E_BETA2", "beta2 must be finite and in [0, 1) (0 for algorithms without it)")
        case ADAMCORE_E_EPS.rawValue: return ("ADAMCORE_E_EPS", "eps must be finite and >= 0 (0 for SGD)")
        case ADAMCORE_E_EPS_ROOT.rawValue:
            return ("ADAMCORE_E_EPS_ROOT", "eps_root must be finite and >= 0 (0 for algorithms without it)")
        case ADAMCORE_E_WEIGHT_DECAY.rawValue: return ("ADAMCORE_E_WEIGHT_DECAY", "weight_decay must be finite and >= 0")
        case ADAMCORE_E_MOMENTUM.rawValue:
            return ("ADAMCORE_E_MOMENTUM", "momentum must be finite and in [0, 1] (0 for algorithms without it)")
        case ADAMCORE_E_DAMPENING.rawValue:
            return ("ADAMCORE_E_DAMPENING", "dampening must be in [0, 1] for SGD, 0 with Nesterov and for other algorithms")
        case ADAMCORE_E_NESTEROV.rawValue: return ("ADAMCORE_E_NESTEROV", "Nesterov momentum requires momentum > 0")
        case ADAMCORE_E_ALPHA.rawValue:
            return ("ADAMCORE_E_ALPHA", "alpha must be finite and in [0, 1] for RMSprop (0 for other algorithms)")
        case ADAMCORE_E_LR_DECAY.rawValue:
            return ("ADAMCORE_E_LR_DECAY", "lr_decay must be finite and >= 0 for AdaGrad (0 for other algorithms)")
        case ADAMCORE_E_INITIAL_ACCUMULATOR.rawValue:
            return ("ADAMCORE_E_INITIAL_ACCUMULATOR",
                    "initial_accumulator_value must be finite and >= 0 for AdaGrad (0 for other algorithms)")
        case ADAMCORE_E_RESERVED.rawValue: return ("ADAMCORE_E_RESERVED", "a reserved field is not 0")
        case ADAMCORE_E_STATE.rawValue:
            return ("ADAMCORE_E_STATE", "state buffers do not match the algorithm's options (missing, extra or changed)")
        case ADAMCORE_E_DTYPE.rawValue: return ("ADAMCORE_E_DTYPE", "unknown dtype, or buffers of different dtypes")
        case ADAMCORE_E_HANDLE.rawValue:
            return ("ADAMCORE_E_HANDLE", "the optimizer handle is NULL, already destroyed, or not an optimizer handle")
        case ADAMCORE_E_INDEX.rawValue: return ("ADAMCORE_E_INDEX", "a group, tensor or state slot index is out of range")
        case ADAMCORE_E_COUNT.rawValue:
            return ("ADAMCORE_E_COUNT", "a list does not have one entry per registered tensor")
        case ADAMCORE_E_NO_MEMORY.rawValue: return ("ADAMCORE_E_NO_MEMORY", "out of memory")
        case ADAMCORE_E_SEQUENCE.rawValue:
            return ("ADAMCORE_E_SEQUENCE", "the call is not valid in the optimizer's current state")
        case ADAMCORE_E_NONFINITE.rawValue: return ("ADAMCORE_E_NONFINITE", "a value that must be finite is NaN or infinite")
        case ADAMCORE_E_LIPSCHITZ.rawValue:
            return ("ADAMCORE_E_LIPSCHITZ", "the AdaFix Lipschitz estimate must be finite and >= 0")
        case ADAMCORE_E_THREADS.rawValue:
            return ("ADAMCORE_E_THREADS", "a thread count must be 0 (automatic) or 1..256")
        case ADAMCORE_E_GRAD_SCALE.rawValue:
            return ("ADAMCORE_E_GRAD_SCALE", "grad_scale must be finite and > 0")
        case ADAMCORE_E_IO.rawValue: return ("ADAMCORE_E_IO", "a checkpoint file could not be read, written or renamed")
        case ADAMCORE_E_FORMAT.rawValue:
            return ("ADAMCORE_E_FORMAT", "the bytes are not an adamcore checkpoint in the safetensors format")
        case ADAMCORE_E_MISMATCH.rawValue:
            return ("ADAMCORE_E_MISMATCH",
                    "the checkpoint does not match the optimizer (algorithm, groups, tensors, dtypes or shapes)")
        case ADAMCORE_STEP_SKIPPED.rawValue:
            return ("ADAMCORE_STEP_SKIPPED", "the step was skipped (found_inf, or the guard found NaN or Inf in a gradient)")
        default: return ("ADAMCORE_E_UNKNOWN", "unknown status code")
        }
    }

    /// Every status the library can return: ADAMCORE_OK, ADAMCORE_STEP_SKIPPED, then the errors.
    public static let allCodes: [Int32] = [0, 1] + (1...lastErrorNumber).map { -Int32($0) }
    /// -ADAMCORE_E_MISMATCH, the last error code.
    public static let lastErrorNumber: Int32 = 35
}

/// Shorthand used by validation code.
@usableFromInline
func fail(_ status: adamcore_status) -> AdamCoreError { AdamCoreError(status) }
