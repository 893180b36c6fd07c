import ArgumentParser
import Foundation
import Pivot
import PivotLoading
import PivotTensor

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time the networks of a model on random inputs: median seconds and effective GFLOP/s.")

    @OptionGroup(title: "Model") var modelOptions: ModelOptions
    @OptionGroup var precisionOptions: PrecisionOptions
    @OptionGroup var threadOptions: ThreadOptions
    var model: String { modelOptions.model }

    @Option(
        name: .long, parsing: .upToNextOption,
        help:
            "Networks to time: unet, unet-vjp, text-encoder, text-encoder-vjp, vae-encode, vae-decode, learn-step (one textual-inversion step) or all (repeatable)."
    )
    var network: [String] = ["unet"]

    @Option(name: .long, help: "Image side in pixels (latent side = size / 8 for SD).")
    var size: Int?

    @Option(name: .long, help: "Batch size.")
    var batch = 1

    @Option(name: .long, help: "Timed runs after one warm-up.")
    var runs = 3

    @Flag(name: .long, help: "Print one JSON object per network.")
    var json = false

    func validate() throws {
        guard batch >= 1, batch <= 64 else { throw ValidationError("--batch must be between 1 and 64") }
        guard runs >= 1, runs <= 1000 else { throw ValidationError("--runs must be between 1 and 1000") }
        if let size, size < 8 || size > 4096 { throw ValidationError("--size must be between 8 and 4096") }
        for n in network where n != "all" && n != "learn-step" && Component(rawValue: n) == nil {
            throw ValidationError(
                "unknown network '\(n)' (expected unet, unet-vjp, text-encoder, text-encoder-vjp, vae-encode, vae-decode, learn-step or all)")
        }
    }

    func run() throws {
        let components =
            network.contains("all")
            ? [.textEncoder, .unet, .vaeEncode, .vaeDecode]
            : network.compactMap { Component(rawValue: $0) }
        let folder = try modelOptions.folder()
        let info = try ModelInfo(model: folder)
        let side = size ?? info.nativeResolution
        let plan = try precisionOptions.plan()
        note("OpenBLAS core: \(BLAS.coreName), threads: \(BLAS.threads); precision \(plan) (\(plan.reason))")
        let rss0 = ProcessMemory.residentBytes
        let t0 = Date()
        let nets = try LoadedNetworks(model: folder, components: Set(components))
        plan.apply(to: nets)
        let withGradients = components.contains { $0 == .unetVJP || $0 == .textEncoderVJP }
        if plan.isBF16Only(withGradients: withGradients) {
            let released = nets.releaseFP32Weights()
            note(String(format: "bf16 throughout: released %.0f MiB of fp32 matrix weights (their bf16 forms stay)", Double(released) / 1_048_576))
        }
        let loadSeconds = Date().timeIntervalSince(t0)
        let loaded = ProcessMemory.residentBytes - rss0
        let fp32 = info.networks.filter { n in Set(components.map(\.folder)).contains(n.name) }
            .reduce(0) { $0 + $1.parameters * 4 }
        note(
            String(
                format: "loaded in %.1f s: resident +%.0f MiB for %.0f MiB of fp32 weights (%.2f×)", loadSeconds,
                Double(loaded) / 1_048_576, Double(fp32) / 1_048_576, Double(loaded) / Double(max(fp32, 1))))
        for c in components {
            var r = try Benchmark.run(
                c, networks: nets, size: side, batch: batch, runs: runs,
                progress: { if !json { note($0) } })
            r.size = side
            if Profiler.enabled { note(Profiler.report()) }
            if json {
                try printJSON(
                    BenchLine(
                        result: r, precision: plan, residentBytes: ProcessMemory.residentBytes,
                        peakResidentBytes: ProcessMemory.peakResidentBytes,
                        weightsResidentBytes: loaded, weightsFP32Bytes: fp32))
            } else {
                print(
                    String(
                        format: "%@: median %.3f s over %d runs, %.1f GFLOP, %.1f GFLOP/s",
                        r.network, r.medianSeconds, r.runs, r.gflop, r.gflops))
            }
        }
        if network.contains("learn-step") {
            let sd = try StableDiffusion(model: folder)
            sd.precision = plan
            var r = try Benchmark.learnStep(sd: sd, size: side, runs: runs, progress: { if !json { note($0) } })
            r.size = side
            if json {
                try printJSON(
                    BenchLine(
                        result: r, precision: plan.learning, residentBytes: ProcessMemory.residentBytes,
                        peakResidentBytes: ProcessMemory.peakResidentBytes, weightsResidentBytes: loaded, weightsFP32Bytes: fp32))
            } else {
                print(String(format: "learn-step: median %.3f s over %d runs, %.1f GFLOP, %.1f GFLOP/s", r.medianSeconds, r.runs, r.gflop, r.gflops))
            }
        }
        if !json {
            print(String(format: "peak resident memory: %.2f GB", Double(ProcessMemory.peakResidentBytes) / 1e9))
        }
    }
}

/// A benchmark result with memory figures, as printed by `--json`.
struct BenchLine: Encodable {
    var result: Benchmark.Result
    var precision: PrecisionPlan
    var residentBytes: Int
    var peakResidentBytes: Int
    var weightsResidentBytes: Int
    var weightsFP32Bytes: Int

    enum CodingKeys: String, CodingKey {
        case residentBytes = "rss_bytes"
        case peakResidentBytes = "peak_rss_bytes"
        case weightsResidentBytes = "weights_rss_bytes"
        case weightsFP32Bytes = "weights_fp32_bytes"
        case precision
        case precisionReason = "precision_reason"
        case cpu
        case blasCore = "blas_core"
    }

    func encode(to encoder: Encoder) throws {
        try result.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(residentBytes, forKey: .residentBytes)
        try c.encode(peakResidentBytes, forKey: .peakResidentBytes)
        try c.encode(weightsResidentBytes, forKey: .weightsResidentBytes)
        try c.encode(weightsFP32Bytes, forKey: .weightsFP32Bytes)
        // the precision of this network's timed passes (a VJP runs in the gradient precision)
        let vjp = result.network.hasSuffix("-vjp")
        try c.encode((vjp ? precision.networks.gradient : precision.networks.forward).rawValue, forKey: .precision)
        try c.encode(precision.reason, forKey: .precisionReason)
        try c.encode(CPUFeatures.summary, forKey: .cpu)
        try c.encode(BLAS.coreName, forKey: .blasCore)  // OpenBLAS's kernel family (PIVOT_MAX_ISA sets it too)
    }
}
