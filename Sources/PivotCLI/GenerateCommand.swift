import ArgumentParser
import Foundation
import PivotDiffusion
import Pivot
import PivotLoading
import PivotImage
import PivotTensor

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Text to image with DDIM and classifier-free guidance (diffusers' StableDiffusionPipeline, same seeds).")

    @Argument(help: "The prompt.")
    var prompt: String

    @OptionGroup(title: "Model") var modelOptions: ModelOptions
    @OptionGroup var precisionOptions: PrecisionOptions
    @OptionGroup var threadOptions: ThreadOptions
    @OptionGroup var jsonOutput: JSONOutputOption
    @OptionGroup var progressOptions: ProgressOptions
    var model: String { modelOptions.model }

    @Option(name: .long, help: "Negative prompt (the unconditional branch of guidance).")
    var negative = ""

    @Option(name: .long, help: "DDIM steps.")
    var steps = 50

    @Option(name: .long, help: "Classifier-free guidance scale (≤ 1 disables guidance).")
    var guidance: Float = 7.5

    @Option(name: .long, help: "Seed of PyTorch's CPU generator (the same seed gives diffusers' image).")
    var seed: UInt64 = 0

    @Option(name: .long, help: "Image size WxH (default: the model's native resolution).")
    var size: String?

    @Option(name: .shortAndLong, help: "Output image (.png, .jpg or .tif), written atomically.")
    var output: String

    @OptionGroup(title: "Textual inversion") var embeddingOptions: EmbeddingOptions

    @Flag(name: .long, help: "No progress output.")
    var quiet = false

    func validate() throws {
        if let size, parseSize(size) == nil { throw ValidationError("--size must look like 512x512") }
        guard ImageFormat(pathExtension: output)?.isWritable == true else {
            throw ValidationError("-o must end in .png, .jpg, .jpeg, .tif, .tiff or .webp")
        }
    }

    func run() throws {
        let started = Date()
        var request = GenerationRequest(prompt: prompt)
        request.negativePrompt = negative
        request.steps = steps
        request.guidance = guidance
        request.seed = seed
        if let size, let (w, h) = parseSize(size) {
            request.width = w
            request.height = h
        }
        let loadStart = Date()
        let sd = try StableDiffusion(model: modelOptions.folder())
        sd.precision = try precisionOptions.plan()
        try embeddingOptions.apply(to: sd, quiet: quiet)
        releaseFP32WeightsIfBF16Only(sd, withGradients: false)
        let (w, h) = try sd.validate(request)
        if !quiet { note(String(format: "loaded %@ in %.1f s", model, Date().timeIntervalSince(loadStart))) }
        for p in [prompt, negative] {
            let t = sd.tokenizer.encode(sd.tokenizer.expandingMultiVectorTokens(p))
            if t.truncated { note("warning: prompt truncated to \(sd.tokenizer.maxLength) tokens; dropped: \"\(t.droppedText)\"") }
        }
        let progress = JobProgress(
            "generate", style: progressOptions.style(quiet: quiet), phases: JobPlans.generate(steps: request.steps, guided: request.guidance > 1))
        progress.enter("sampling")
        let start = Date()
        let image = try sd.generate(request) { done, total in
            progress.step(done, total: total)
            if done == total { progress.enter("decode") }
        }
        progress.finish()
        try image.write(output, text: [("parameters", sd.parametersText(request, width: w, height: h))])
        if Profiler.enabled {
            // PIVOT_PROFILE=1: how much of the run is outside the networks (tokenizer, noise, scheduler, I/O).
            let total = Date().timeIntervalSince(start)
            let report = Profiler.report()
            note(report)
            let network =
                report.split(separator: "\n").first { $0.hasPrefix("network ") }
                .flatMap { Double($0.split(separator: " ", omittingEmptySubsequences: true)[1]) } ?? 0
            note(
                String(
                    format: "total %.3f s, networks %.3f s, outside the networks %.3f s (%.2f %%)",
                    total, network, total - network, 100 * (total - network) / max(total, 1e-9)))
        }
        if !quiet { note("wrote \(output)") }
        var line = OutputLine("generate", path: output, kind: "image", started: started)
        (line.width, line.height, line.steps, line.precision) = (w, h, steps, sd.precision.description)
        try jsonOutput.emit(line)
    }
}

/// "512x768" → (512, 768).
func parseSize(_ s: String) -> (Int, Int)? {
    let parts = s.lowercased().split(separator: "x")
    guard parts.count == 2, let w = Int(parts[0]), let h = Int(parts[1]), w > 0, h > 0 else { return nil }
    return (w, h)
}
