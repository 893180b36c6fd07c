import ArgumentParser
import Foundation
import Pivot
import PivotImage
import PivotLoading

extension LearnOutputs.Format: ExpressibleByArgument {}

struct LearnCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "learn",
        abstract: "Learn a textual-inversion token from a few photos of a concept.",
        discussion: """
            Textual inversion (Gal et al. 2022) as diffusers' textual_inversion.py computes it: a new token, \
            initialised from the embedding of --init, is the only thing trained (AdamW on the diffusion loss, \
            prompts from neutral templates, random horizontal flips, timesteps uniform over training). Use the \
            token file with --embedding in generate, invert and edit.

            Long runs: a checkpoint (STEM.learn-state.safetensors beside the output, and the token file as it \
            stands) every --save-every steps, each written atomically; --resume continues from it after an \
            interruption and ends with the same vectors as an uninterrupted run. --preview-every renders \
            STEM-previews/step-N.png; STEM-loss.png plots the loss at the end. --patience stops when a \
            fixed-input validation loss stops improving and keeps the best vectors.
            """)

    @Argument(help: "The photos (PNG, JPEG, TIFF, WebP, HEIC or AVIF), or folders of them; 3–5 are typical.")
    var inputs: [String]

    @OptionGroup(title: "Model") var modelOptions: ModelOptions
    @OptionGroup var precisionOptions: PrecisionOptions
    @OptionGroup var threadOptions: ThreadOptions
    @OptionGroup var progressOptions: ProgressOptions
    @OptionGroup var jsonOutput: JSONOutputOption

    @Option(name: .long, help: "The new token, not in the vocabulary (e.g. \"<my-cat>\").")
    var token: String
    @Option(name: .customLong("init"), help: "A one-token word whose embedding starts every vector (e.g. cat).")
    var initWord: String
    @Option(name: .long, help: "Vectors of the token (token, token_1, …).")
    var vectors = 1
    @Option(name: .long, help: "Optimiser steps.")
    var steps = 3000
    @Option(name: .long, help: "AdamW's learning rate.")
    var lr: Float = 5e-3
    @Flag(name: .customLong("scale-lr"), help: "Multiply the learning rate by batch × accumulate.")
    var scaleLearningRate = false
    @Option(name: .long, help: "Linear learning-rate warm-up over this many steps.")
    var warmup = 0
    @Option(name: .long, help: "Samples per step (run one after another).")
    var batch = 1
    @Option(name: .long, help: "Gradient accumulation steps per optimiser step.")
    var accumulate = 1
    @Option(name: .customLong("weight-decay"), help: "AdamW's weight decay.")
    var weightDecay: Float = 1e-2
    @Option(
        name: .long,
        help: ArgumentHelp("object, style, or a file of templates (one a line, {} where the token goes).", valueName: "object|style|FILE"))
    var templates = "object"
    @Option(name: .long, help: "Probability of a horizontal flip of each sample.")
    var flip: Float = 0.5
    @Option(name: .long, help: "Seeds every random draw.")
    var seed: UInt64 = 0
    @Option(
        name: .long,
        help: ArgumentHelp("Training size: auto (each photo's aspect at about the model's area), square, or WxH.", valueName: "auto|square|WxH"))
    var size = "auto"

    @Option(name: .customLong("save-every"), help: "A checkpoint every N steps (0: at the end only).")
    var saveEvery = 500
    @Flag(name: .long, help: "Continue from the checkpoint beside the output, if there is one.")
    var resume = false
    @Option(name: .customLong("preview-every"), help: "A preview grid every N steps (0: none).")
    var previewEvery = 0
    @Option(name: .customLong("preview-prompt"), help: "The preview's prompt, with the token in it (default: the first template).")
    var previewPrompt: String?
    @Option(name: .customLong("preview-seeds"), help: "Seeds of the preview images, comma-separated.")
    var previewSeeds = "0,1,2,3"
    @Option(name: .customLong("preview-steps"), help: "DDIM steps of each preview image.")
    var previewSteps = 25
    @Option(name: .customLong("validate-every"), help: "A fixed-input validation loss every N steps (0: only with --patience).")
    var validateEvery = 0
    @Option(name: .long, help: "Stop after N validations without improvement and keep the best vectors (0: never).")
    var patience = 0
    @Flag(name: .customLong("no-loss-plot"), help: "Do not draw STEM-loss.png.")
    var noLossPlot = false

    @Option(name: .shortAndLong, help: "The token file: .safetensors (diffusers) or .pt (--format a1111).")
    var output: String
    @Option(name: .long, help: "diffusers ({token: vectors} .safetensors) or a1111 (Automatic1111 .pt).")
    var format = LearnOutputs.Format.diffusers

    @Flag(name: .long, help: "No progress output.")
    var quiet = false

    func validate() throws {
        guard PhotoSizing(parsing: size) != nil else { throw ValidationError("--size must be auto, square or WxH, got \(size)") }
        guard parsedSeeds != nil else { throw ValidationError("--preview-seeds must be comma-separated integers, got \(previewSeeds)") }
        _ = try flagged { try settings() }
    }

    var parsedSeeds: [UInt64]? {
        let seeds = previewSeeds.split(separator: ",").map { UInt64($0.trimmingCharacters(in: .whitespaces)) }
        return seeds.isEmpty || seeds.contains(nil) ? nil : seeds.compactMap { $0 }
    }

    func settings() throws -> LearnSettings {
        var s = LearnSettings(token: token, initWord: initWord)
        (s.vectors, s.steps, s.learningRate, s.scaleLearningRate, s.warmupSteps) = (vectors, steps, lr, scaleLearningRate, warmup)
        (s.batch, s.accumulate, s.weightDecay, s.flipProbability, s.seed) = (batch, accumulate, weightDecay, flip, seed)
        s.size = PhotoSizing(parsing: size) ?? .auto
        (s.validateEvery, s.patience) = (validateEvery, patience)
        switch templates {
        case "object": s.templates = .object
        case "style": s.templates = .style
        default: s.templates = try LearnTemplates.file(templates)
        }
        try s.validate()
        return s
    }

    /// The photos: files as given, folders expanded to the images directly inside them (sorted).
    func photos() throws -> [String] {
        var out: [String] = []
        for input in inputs {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: input, isDirectory: &isDir) else {
                throw ValidationError("\(input): no such file or folder")
            }
            guard isDir.boolValue else {
                out.append(input)
                continue
            }
            let names = try FileManager.default.contentsOfDirectory(atPath: input).sorted()
            out += names.filter { ImageFormat.readableExtensions.contains(($0 as NSString).pathExtension.lowercased()) }
                .map { (input as NSString).appendingPathComponent($0) }
        }
        return out
    }

    func run() throws {
        let started = Date()
        let settings = try settings()
        let photos = try photos()
        guard !photos.isEmpty else { throw LearnError.noPhotos("no images in \(inputs.joined(separator: ", "))") }
        var outputs = LearnOutputs(output: output)
        (outputs.format, outputs.saveEvery, outputs.previewEvery, outputs.previewPrompt) = (format, saveEvery, previewEvery, previewPrompt)
        (outputs.previewSeeds, outputs.previewSteps, outputs.lossPlot) = (parsedSeeds ?? [0], previewSteps, !noLossPlot)
        let sd = try StableDiffusion(model: try modelOptions.folder())
        sd.precision = try precisionOptions.plan()
        // Learning runs every pass in the learning plan (bf16 forward and backward under auto on native bf16).
        releaseFP32WeightsIfBF16Only(sd, plan: sd.precision.learning, withGradients: true)
        if !quiet { note("learn \(token): \(photos.count) photo\(photos.count == 1 ? "" : "s"), \(steps) steps, precision \(sd.precision.learning)") }
        let progress = JobProgress(
            "learn \(token)", style: progressOptions.style(quiet: quiet),
            phases: JobPlans.learn(photos: photos.count, steps: steps, rowsPerStep: batch * accumulate))
        progress.enter("encode photos")
        var resumedAt = 0
        let result = try sd.learn(photos: photos, settings: settings, outputs: outputs, resume: resume) { event in
            switch event {
            case .photos(let done, let total): progress.step(done, total: total)
            case .skipped(let why): note("warning: skipped \(why)")
            case .noCheckpoint(let path): if !quiet { note("no checkpoint at \(path): starting afresh") }
            case .resumed(let step):
                resumedAt = step
                if !quiet { note("resuming from step \(step)") }
            case .step(let done, let total, let loss, let smoothed):
                progress.enter("training")
                // The ETA counts the steps of this run only (a resumed run's earlier steps took no time here).
                progress.step(
                    done - resumedAt, total: total - resumedAt, detail: String(format: "step %d, loss %.4f (mean %.4f)", done, loss, smoothed))
            case .validation(let step, let loss, let best):
                if !quiet { note(String(format: "validation at step %d: %.5f (best %.5f)", step, loss, best)) }
            case .wrote(let path, let kind): if !quiet && kind != "checkpoint" && kind != "token" { note("wrote \(kind) \(path)") }
            case .stoppedEarly(let step, let best):
                if !quiet { note("stopped at step \(step): no better validation since step \(best); keeping step \(best)'s vectors") }
            }
        }
        progress.finish()
        if !quiet { note("wrote \(result.output) (step \(result.vectorsFromStep), mean loss \(String(format: "%.4f", result.smoothedLoss)))") }
        for (path, kind) in result.files {
            var line = OutputLine(
                "learn", path: path, kind: kind == "token" ? "embedding" : kind.replacingOccurrences(of: " ", with: "-"), started: started)
            (line.steps, line.precision) = (result.steps, sd.precision.learning.description)
            try jsonOutput.emit(line)
        }
    }
}
