// swift-tools-version:6.0
import PackageDescription

// The AVX2+FMA and AVX-512 kernel tiers, for the C library only. `unsafeFlags` keeps a product from being used by
// version, so the AdamCore product (what Swift packages depend on) must not contain these targets.
#if arch(x86_64)
let avx2Flags: [SwiftSetting] = [.unsafeFlags(["-Xcc", "-march=x86-64-v3"])]
let avx512Flags: [SwiftSetting] = [.unsafeFlags(["-Xcc", "-march=x86-64-v4", "-Xcc", "-mprefer-vector-width=512"])]
#else
let avx2Flags: [SwiftSetting] = []
let avx512Flags: [SwiftSetting] = []
#endif

let package = Package(
    name: "adamcore",
    products: [
        // `import AdamCore`: the Swift face, portable kernels.
        .library(name: "AdamCore", targets: ["AdamCore"]),
        // libadamcore.so: the C ABI (built by `make`, which adds the static Swift runtime, SONAME and version script).
        .library(name: "adamcore", type: .dynamic, targets: ["AdamCoreABI"]),
    ],
    targets: [
        // include/adamcore.h (the one definition of every C type) plus an internal SIMD/cpuid shim.
        .systemLibrary(name: "CAdamCore", path: "Sources/CAdamCore"),
        .target(name: "AdamCore", dependencies: ["CAdamCore"]),
        .target(name: "AdamCoreAVX2", dependencies: ["AdamCore", "CAdamCore"], swiftSettings: avx2Flags),
        .target(name: "AdamCoreAVX512", dependencies: ["AdamCore", "CAdamCore"], swiftSettings: avx512Flags),
        .target(name: "AdamCoreABI", dependencies: ["AdamCore", "AdamCoreAVX2", "AdamCoreAVX512", "CAdamCore"],
                exclude: ["exports.map", "adamcore.pc.in"]),
        .testTarget(name: "AdamCoreTests", dependencies: ["AdamCore", "AdamCoreAVX2", "AdamCoreAVX512", "CAdamCore"],
                    linkerSettings: [.linkedLibrary("m")]),
    ],
    // Tools 6.0 for typed throws; the Swift 6 language mode checks the core for data races at compile time.
    swiftLanguageModes: [.v6]
)
