// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "pivot",
    products: [
        .library(name: "Pivot", targets: ["Pivot", "PivotModels", "PivotFormats", "PivotTensor"]),
        .executable(name: "pivot", targets: ["pivot"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C libraries from Debian packages (libopenblas-dev).
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS",
                       providers: [.apt(["libopenblas-dev"])]),
        // Vectorised elementwise kernels (softmax, norms, activations, im2col) with runtime ISA dispatch.
        .target(name: "CPivotKernels", path: "Sources/CPivotKernels"),
        // Tensor core and kernels, forward and backward side by side.
        .target(name: "PivotTensor", dependencies: ["COpenBLAS", "CPivotKernels"]),
        // File formats: safetensors.
        .target(name: "PivotFormats", dependencies: ["PivotTensor"]),
        // Networks (CLIP text encoder, UNet, VAE) and their configs; they take a parameter store.
        .target(name: "PivotModels", dependencies: ["PivotTensor"]),
        // Model folders, components, benchmarks: wires formats to models.
        .target(name: "Pivot", dependencies: ["PivotModels", "PivotFormats", "PivotTensor"]),
        .executableTarget(name: "pivot", dependencies: [
            "Pivot", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "PivotTensorTests", dependencies: ["PivotTensor"]),
        .testTarget(name: "PivotFormatsTests", dependencies: ["PivotFormats"]),
        .testTarget(name: "PivotModelsTests", dependencies: ["Pivot"],
                    resources: [.copy("Fixtures")]),
    ],
    swiftLanguageModes: [.v5]
)
