// swift-tools-version:5.9
// A package that uses adamcore as a dependency, the way any Swift project would.
import PackageDescription

let package = Package(
    name: "adamcore-swift-example",
    dependencies: [.package(name: "adamcore", path: "../..")],
    targets: [
        .executableTarget(name: "adamcore-swift-example", dependencies: [.product(name: "AdamCore", package: "adamcore")]),
    ]
)
