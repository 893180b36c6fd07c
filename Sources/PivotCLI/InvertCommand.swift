import ArgumentParser
import Foundation
import Pivot
import PivotLoading
import PivotFormats
import PivotImage

struct InvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "invert",
        abstract: "Invert a photo: its DDIM pivot trajectory and, by default, per-step null-text embeddings.",
        discussion: """
            Methods: null-text (default; Mokady et al. 2022), negative-prompt (the source prompt as the \
            unconditional embedding, no optimisation), direct (offsets that keep the source branch on the pivot), \
            ddim (plain inversion, the baseline), fixed-point (each step solved as a fixed point of the guided DDIM \
            step, forward passes only; Pan et al. 2023), fixed-point+direct (the conditional flow inverted by fixed-point \
            iteration, then direct offsets), ddpm (edit-friendly DDPM noise maps, exact reconstruction; \
            Huberman-Spiegelglas et al. 2024). The output is a safetensors file readable from Python: latents \
            [T+1, 4, h, w], null_embeddings [T, 77, D], offsets [T, 4, h, w] or noise_maps [T, 4, h, w], and metadata.
            """)

    @Argument(help: "The photo (PNG, JPEG, TIFF, WebP, HEIC or AVIF).")
    var photo: String

    @OptionGroup(title: "Model") var modelOptions: ModelOptions
    @OptionGroup var precisionOptions: PrecisionOptions
    @OptionGroup var threadOptions: ThreadOptions
    @OptionGroup var jsonOutput: JSONOutputOption
    @OptionGroup var progressOptions: ProgressOptions
    var model: String { modelOptions.model }

    @Option(name: .long, help: "A prompt that describes the photo.")
    var prompt: String

    @OptionGroup var inversion: InversionOptions

    @Option(name: .shortAndLong, help: "Output .safetensors file (written atomically).")
    var output: String

    @OptionGroup(title: "Textual inversion") var embeddingOptions: EmbeddingOptions

    @Flag(name: .long, help: "No progress output.")
    var quiet = false

    func validate() throws {
        guard output.lowercased().hasSuffix(".safetensors") else { throw ValidationError("-o must end in .safetensors") }
        if URL(fileURLWithPath: output).standardizedFileURL == URL(fileURLWithPath: photo).standardizedFileURL {
            throw ValidationError("-o must not be the photo")
        }
    }

    func run() throws {
        let started = Date()
        let folder = try modelOptions.folder()
        let sd = try StableDiffusion(model: folder)
        sd.precision = try precisionOptions.plan()
        try embeddingOptions.apply(to: sd, quiet: quiet)
        releaseFP32WeightsIfBF16Only(sd, withGradients: inversion.settings.method.usesGradients)
        let t = sd.tokenizer.encode(sd.tokenizer.expandingMultiVectorTokens(prompt))
        if t.truncated { note("warning: prompt truncated to \(sd.tokenizer.maxLength) tokens; dropped: \"\(t.droppedText)\"") }
        let progress = JobProgress(
            "invert (\(inversion.settings.method.rawValue))", style: progressOptions.style(quiet: quiet),
            phases: JobPlans.inversion(inversion.settings), gradientPrior: sd.precision.gradientPassCost)
        progress.enter("encode")
        var record = try sd.invert(photo: photo, prompt: prompt, settings: inversion.settings, onEvent: progress.inversionEvents())
        progress.finish()
        record.metadata["model_fingerprint"] = try folder.fingerprint()
        record.metadata["photo_sha256"] = try SHA256.hexDigest(ofFile: photo)
        try record.write(to: output)
        if !quiet { note("wrote \(output)") }
        var line = OutputLine("invert", path: output, kind: "inversion", started: started)
        line.width = record.metadata["width"].flatMap { Int($0) }
        line.height = record.metadata["height"].flatMap { Int($0) }
        (line.method, line.steps, line.precision) = (record.method.rawValue, record.steps, sd.precision.description)
        try jsonOutput.emit(line)
    }
}
