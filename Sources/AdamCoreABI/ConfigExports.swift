// The header's "Configuration" section.
import AdamCore
import CAdamCore
#if canImport(Glibc)
import Glibc
#endif

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
