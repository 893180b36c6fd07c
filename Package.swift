// swift-tools-version: 6.0
import PackageDescription

// The numeric kernels are optimised in debug builds too: `swift test` runs networks, and at -O0 the C kernels
// and the tensor core's loops made a null-text edit of the demo model take minutes instead of seconds; the
// models and the diffusion loop (P2P controllers) too, so debug runs keep release's proportions (progress ETAs).
let optimisedInDebug: [CSetting] = [.unsafeFlags(["-O2"], .when(configuration: .debug))]
let swiftOptimisedInDebug: [SwiftSetting] = [.unsafeFlags(["-O"], .when(configuration: .debug))]

let package = Package(
    name: "pivot",
    products: [
        .library(
            name: "Pivot",
            targets: [
                "Pivot", "PivotBatch", "PivotLoading", "PivotModels", "PivotFormats", "PivotTensor",
                "PivotImage", "PivotDiffusion", "PivotText", "PivotIO",
            ]),
        // The command-line tool: the target is PivotCLI (no two targets may differ only by case, or the package
        // cannot build on a case-insensitive file system), the binary is `pivot`.
        .executable(name: "pivot", targets: ["PivotCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // `pivot serve`: the HTTP server and the multipart parser of uploads.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/vapor/multipart-kit", from: "4.0.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.0.0"),
    ],
    targets: [
        // C libraries from Debian packages (libopenblas-dev).
        .systemLibrary(
            name: "COpenBLAS", path: "Sources/COpenBLAS",
            providers: [.apt(["libopenblas-dev"])]),
        // Image codecs from Debian packages (libpng-dev, libjpeg-dev, libtiff-dev; libwebp-dev, libheif-dev and
        // liblcms2-dev are linked by CPivotImageShim).
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CJPEG", path: "Sources/CJPEG", providers: [.apt(["libjpeg-dev"])]),
        .systemLibrary(name: "CTIFF", path: "Sources/CTIFF", providers: [.apt(["libtiff-dev"])]),
        // C side of the image codecs: keeps libpng's and libjpeg's setjmp/longjmp error handling out of Swift.
        .target(
            name: "CPivotImageShim", dependencies: ["CPNG", "CJPEG", "CTIFF"], path: "Sources/CPivotImageShim",
            linkerSettings: [
                .linkedLibrary("webp"), .linkedLibrary("webpdemux"), .linkedLibrary("webpmux"), .linkedLibrary("heif"), .linkedLibrary("lcms2"),
            ]),
        // Vectorised elementwise kernels (softmax, norms, activations, im2col) with runtime ISA dispatch.
        .target(name: "CPivotKernels", path: "Sources/CPivotKernels", cSettings: optimisedInDebug),
        // Matrix products on oneDNN (Debian's libdnnl-dev): bf16 in, fp32 out, primitives cached by shape;
        // fp32 → bf16 conversion with run-time ISA dispatch.
        .target(
            name: "CPivotDNNL", dependencies: ["CPivotKernels"], path: "Sources/CPivotDNNL", cSettings: optimisedInDebug,
            linkerSettings: [.linkedLibrary("dnnl")]),
        // Atomic file replacement and one-line messages (errors that name settings), shared by every writer.
        .target(name: "CPivotIO", path: "Sources/CPivotIO"),
        .target(name: "PivotIO", dependencies: ["CPivotIO"]),
        // Tensor core and kernels, forward and backward side by side; the task-local gradient tape; batch helpers.
        .target(name: "PivotTensor", dependencies: ["COpenBLAS", "CPivotKernels", "CPivotDNNL"], swiftSettings: swiftOptimisedInDebug),
        // File formats: safetensors, PyTorch checkpoints (zip + restricted pickle), SHA-256.
        .target(name: "PivotFormats", dependencies: ["PivotTensor", "PivotIO"]),
        // Networks (CLIP text encoder, UNet, VAE), their configs and input VJPs; they take a parameter store.
        .target(name: "PivotModels", dependencies: ["PivotTensor"], swiftSettings: swiftOptimisedInDebug),
        // Photos: PNG/JPEG/TIFF reading and atomic writing, preprocessing (crop, Pillow-bicubic resize), tensors.
        .target(name: "PivotImage", dependencies: ["CPivotImageShim", "CPNG", "CJPEG", "CTIFF", "PivotTensor", "PivotIO"]),
        // Diffusion: the DDIM scheduler and its one step, the one denoising loop, inversion and null-text,
        // Prompt-to-Prompt controllers; PyTorch-identical noise lives in PivotTensor.
        .target(name: "PivotDiffusion", dependencies: ["PivotTensor", "PivotModels"], swiftSettings: swiftOptimisedInDebug),
        // CLIP BPE tokenizer (transformers' CLIPTokenizer); ships CLIP's merges.
        .target(name: "PivotText", dependencies: ["PivotIO"], resources: [.copy("Resources")]),
        // Model loading: diffusers folders and single-file checkpoints (every key conversion in one table),
        // strict parameter stores, fingerprints, conversion to diffusers folders; ships built-in configs.
        .target(
            name: "PivotLoading",
            dependencies: [
                "PivotModels", "PivotFormats", "PivotTensor", "PivotText",
                "PivotDiffusion", "PivotIO",
            ],
            resources: [.copy("Resources")]),
        // Pipelines: the StableDiffusion facade, generate, invert (and its files and cache), edit (one
        // orchestration), textual-inversion tokens, precision plans, components and benchmarks.
        .target(
            name: "Pivot",
            dependencies: [
                "PivotLoading", "PivotModels", "PivotFormats", "PivotTensor", "PivotImage",
                "PivotDiffusion", "PivotText", "PivotIO",
            ]),
        // Batches: manifests, the resumable journal, shards; runs each row through Pivot's edit.
        .target(
            name: "PivotBatch",
            dependencies: [
                "Pivot", "PivotLoading", "PivotDiffusion", "PivotFormats",
                "PivotImage", "PivotIO",
            ]),
        // The local web editor (`pivot serve`): the HTTP server and its routes, the one-at-a-time job queue,
        // upload parsing, the origin/host/size/path checks and the embedded page; edits run through Pivot's edit.
        .target(
            name: "PivotServe",
            dependencies: [
                "Pivot", "PivotLoading", "PivotImage", "PivotIO",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "MultipartKit", package: "multipart-kit"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Resources")]),
        // The command line: argument parsing and progress only; maps flags to library settings.
        .executableTarget(
            name: "PivotCLI",
            dependencies: [
                "Pivot", "PivotBatch", "PivotLoading", "PivotServe",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .testTarget(name: "PivotTensorTests", dependencies: ["PivotTensor"]),
        // The web editor over real sockets (FoundationNetworking and raw requests) and in headless Chromium.
        .testTarget(name: "PivotServeTests", dependencies: ["PivotServe", "Pivot", "PivotLoading", "PivotImage", "PivotIO"]),
        .testTarget(name: "PivotTextTests", dependencies: ["PivotText"], resources: [.copy("Fixtures")]),
        .testTarget(
            name: "PivotFormatsTests", dependencies: ["PivotFormats", "PivotIO"],
            resources: [.copy("Fixtures")]),
        .testTarget(
            name: "PivotImageTests", dependencies: ["PivotImage", "PivotTensor"],
            resources: [.copy("Fixtures")]),
        .testTarget(
            name: "PivotModelsTests", dependencies: ["Pivot", "PivotBatch", "PivotLoading"],
            resources: [.copy("Fixtures")]),
        .testTarget(
            name: "PivotDiffusionTests", dependencies: ["PivotDiffusion"],
            resources: [.copy("Fixtures")]),
    ],
    swiftLanguageModes: [.v5]
)
