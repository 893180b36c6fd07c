// swift-tools-version: 6.0
// libFuzzer targets for every reader pivot runs on files made by strangers (see docs/RELIABILITY.md).
// Built and run by `scripts/fuzz.sh`: `swift build --sanitize fuzzer --sanitize address` links libFuzzer's
// `main`, so this is a package of its own and never part of the main build.
import PackageDescription

let package = Package(
    name: "PivotFuzz",
    dependencies: [.package(name: "pivot", path: "..")],
    targets: [
        .executableTarget(
            name: "PivotFuzz",
            dependencies: [.product(name: "Pivot", package: "pivot")],
            // libFuzzer supplies `main`; the entry point is `LLVMFuzzerTestOneInput`.
            swiftSettings: [.unsafeFlags(["-parse-as-library"])])
    ],
    swiftLanguageModes: [.v5]
)
