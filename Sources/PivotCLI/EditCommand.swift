import ArgumentParser
import Foundation
import Pivot
import PivotLoading
import PivotDiffusion
import PivotFormats
import PivotImage
import PivotIO

extension EditOptions.Mode: ExpressibleByArgument {}
extension OutputSize: ExpressibleByArgument {}

struct EditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edit",
        abstract: "Edit a photo (or an inversion) with Prompt-to-Prompt: only what the words changed changes.",
        discussion: """
            A photo is inverted first (null-text by default) and the inversion is cached, keyed by photo, model, \
            prompt and settings, in $PIVOT_CACHE_DIR or ~/.cache/pivot/inversions, so the next edit of the same \
            photo starts at once. Several --target prompts render in one run. --mode auto picks a word swap when the \
            word counts match and a refinement otherwise.
            """)

    @Argument(help: "A photo (PNG, JPEG, TIFF, WebP, HEIC, AVIF) or an inversion file from `pivot invert` (.safetensors).")
    var input: String

    @OptionGroup(title: "Model") var modelOptions: ModelOptions
    @OptionGroup var precisionOptions: PrecisionOptions
    @OptionGroup var threadOptions: ThreadOptions
    @OptionGroup var jsonOutput: JSONOutputOption
    @OptionGroup var progressOptions: ProgressOptions
    var model: String { modelOptions.model }

    @Option(name: .long, help: "The prompt that describes the photo.")
    var source: String

    @Option(name: .long, help: "The edited prompt (repeatable).")
    var target: [String]

    @Option(name: .long, help: "Fraction of steps with cross-attention replaced (0.8), or WORD=FRACTION (repeatable).")
    var crossReplace: [String] = []

    @Option(name: .long, help: "Self-attention injection: END or START,END as fractions of the steps.")
    var selfReplace = "0.4"

    @Option(name: .long, help: "Attention scale of a target word, WORD=SCALE (repeatable).")
    var reweight: [String] = []

    @Option(name: .long, parsing: .upToNextOption, help: "Local blend: words whose attention bounds the edited region.")
    var blend: [String] = []

    @Option(name: .long, help: "Local-blend mask threshold.")
    var blendThreshold: Float = 0.3

    @Option(name: .long, help: "auto, replace or refine.")
    var mode: EditOptions.Mode = .auto

    @OptionGroup(title: "Inversion (when the input is a photo)") var inversion: InversionOptions

    @Option(name: .long, help: ArgumentHelp("Also draw the source's cross-attention per token into this image.", valueName: "MAPS.png"))
    var attentionMaps: String?

    @Flag(name: .long, help: "Write one image: the source reconstruction and every target side by side.")
    var sideBySide = false

    @Flag(name: .long, help: "Neither read nor write the inversion cache.")
    var noCache = false

    @Option(
        name: .long,
        help:
            "photo: the edit at the photo's own resolution (the photo plus the change the edit made); model: the size the model rendered. An inversion file gives model."
    )
    var outputSize: OutputSize = .photo

    @Option(name: .shortAndLong, help: "Output image; with several targets, -1, -2, … are added before the extension.")
    var output: String

    @OptionGroup(title: "Textual inversion") var embeddingOptions: EmbeddingOptions

    @Flag(name: .long, help: "No progress output.")
    var quiet = false

    func validate() throws {
        guard !target.isEmpty else { throw ValidationError("give at least one --target") }
        guard ImageFormat(pathExtension: output)?.isWritable == true else {
            throw ValidationError("-o must end in .png, .jpg, .jpeg, .tif, .tiff or .webp")
        }
        let outputs = target.count == 1 || sideBySide ? [output] : (1...target.count).map { numbered(output, $0) }
        for path in outputs where sameFile(path, input) {
            throw ValidationError("-o would overwrite the input \(input)")
        }
        if let maps = attentionMaps {
            guard ImageFormat(pathExtension: maps)?.isWritable == true else {
                throw ValidationError("--attention-maps must end in .png, .jpg, .jpeg, .tif, .tiff or .webp")
            }
            guard !sameFile(maps, input), !outputs.contains(where: { sameFile($0, maps) }) else {
                throw ValidationError("--attention-maps would overwrite the input or an output")
            }
        }
        _ = try settings()
    }

    /// The edit's settings: the edit flags and the inversion flags.
    func settings() throws -> EditSettings {
        var s = EditSettings()
        s.inversion = inversion.settings
        for item in crossReplace { try flagged { try s.set("cross_replace", item) } }
        try flagged { try s.set("self_replace", selfReplace) }
        for item in reweight { try flagged { try s.set("reweight", item) } }
        s.edit.mode = mode
        s.edit.blend = blend
        s.edit.blendThreshold = blendThreshold
        return s
    }

    func run() throws {
        let started = Date()
        let folder = try modelOptions.folder()
        let sd = try StableDiffusion(model: folder)
        sd.precision = try precisionOptions.plan()
        try embeddingOptions.apply(to: sd, quiet: quiet)
        let source: EditInput = input.lowercased().hasSuffix(".safetensors") ? .inversion(try readInversionFile(sd)) : .photo(input)
        var request = EditRequest(
            input: source, source: self.source, targets: target, settings: try settings(),
            cache: noCache ? nil : InversionCache())
        request.attentionMaps = attentionMaps != nil
        request.outputSize = outputSize
        let isPhoto: Bool
        if case .photo = source { isPhoto = true } else { isPhoto = false }
        releaseFP32WeightsIfBF16Only(sd, withGradients: isPhoto && request.settings.inversion.method.usesGradients)
        let progress = JobProgress(
            "edit", style: progressOptions.style(quiet: quiet),
            phases: JobPlans.edit(request.settings, targets: target.count, invert: isPhoto),
            gradientPrior: sd.precision.gradientPassCost)
        progress.enter(isPhoto ? "encode" : "edit")
        let inverting = progress.inversionEvents()
        let result = try sd.edit(request) { event in
            switch event {
            case .inversion(let e): inverting(e)
            case .step(let step, let total):
                progress.enter("edit")
                progress.step(step, total: total)
                if step == total { progress.enter("decode") }
            case .warning(let w): note("warning: \(w)")
            }
        }
        progress.finish()
        if let cached = result.cachedAt, !quiet { note("using the cached inversion \(cached)") }
        let protected = result.record.metadata["photo_path"].map { [$0, input] } ?? [input]
        func wrote(_ path: String, _ image: RGBImage, kind: String = "image", target: String? = nil) throws {
            if !quiet { note("wrote \(path)") }
            var line = OutputLine("edit", path: path, kind: kind, started: started)
            (line.width, line.height, line.target) = (image.width, image.height, target)
            (line.method, line.steps, line.precision) = (result.record.method.rawValue, result.record.steps, sd.precision.description)
            try jsonOutput.emit(line)
        }
        if let path = attentionMaps, let picture = result.attentionMaps {
            try picture.write(path, protecting: protected, text: [("parameters", "cross-attention of \"\(self.source)\"")])
            try wrote(path, picture, kind: "attention-maps")
        }
        let text = [("parameters", result.parameters)]
        if sideBySide {
            let picture = RGBImage.sideBySide(result.images)
            try picture.write(output, protecting: protected, text: text)
            try wrote(output, picture, target: target.joined(separator: " | "))
            return
        }
        for (i, image) in result.images.dropFirst().enumerated() {
            let path = target.count == 1 ? output : numbered(output, i + 1)
            try image.write(path, protecting: protected, text: text)
            try wrote(path, image, target: target[i])
        }
    }

    /// The inversion file given as input, checked against the model, the source prompt and the inversion
    /// flags given on the command line.
    func readInversionFile(_ sd: StableDiffusion) throws -> InversionRecord {
        try sd.readInversion(path: input, source: source, given: inversion.given)
    }
}

/// "out.png", 2 → "out-2.png".
func numbered(_ path: String, _ n: Int) -> String {
    let ext = (path as NSString).pathExtension
    return ((path as NSString).deletingPathExtension) + "-\(n)." + ext
}
