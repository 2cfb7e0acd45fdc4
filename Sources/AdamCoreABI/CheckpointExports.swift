// The header's "Checkpoints" section.
import AdamCore
import CAdamCore
#if canImport(Glibc)
import Glibc
#endif

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
