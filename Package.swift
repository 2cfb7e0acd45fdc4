// swift-tools-version:5.9
import PackageDescription

// AVX2+FMA kernels for the C library only. `unsafeFlags` keeps a product from being used by version, so the
// AdamCore product (what Swift packages depend on) must not contain this target.
#if arch(x86_64)
let avx2Flags: [SwiftSetting] = [.unsafeFlags(["-Xcc", "-march=x86-64-v3"])]
#else
let avx2Flags: [SwiftSetting] = []
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
        .target(name: "AdamCoreABI", dependencies: ["AdamCore", "AdamCoreAVX2", "CAdamCore"],
                exclude: ["exports.map", "adamcore.pc.in"]),
        .testTarget(name: "AdamCoreTests", dependencies: ["AdamCore", "AdamCoreAVX2", "CAdamCore"],
                    linkerSettings: [.linkedLibrary("m")]),
    ]
)
