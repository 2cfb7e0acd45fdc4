import CAdamCore

/// The library version; equal to the header's ADAMCORE_VERSION_* macros (a test checks it).
public enum AdamCoreVersion {
    public static let major = Int(ADAMCORE_VERSION_MAJOR)
    public static let minor = Int(ADAMCORE_VERSION_MINOR)
    public static let patch = Int(ADAMCORE_VERSION_PATCH)
    /// "MAJOR.MINOR.PATCH", static so that the C API can return its address.
    public static let string: StaticString = "0.2.0"
}
