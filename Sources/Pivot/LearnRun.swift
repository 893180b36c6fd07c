import Foundation
import PivotFormats
import PivotImage
import PivotIO
import PivotLoading
import PivotTensor

/// Where a textual-inversion run writes, and what it writes besides the token.
public struct LearnOutputs: Sendable {
    /// The token file formats pivot writes.
    public enum Format: String, CaseIterable, Sendable {
        /// diffusers' `learned_embeds.safetensors`: one entry `{token: [n, D]}` (`.safetensors`).
        case diffusers
        /// Automatic1111's `.pt`: `string_to_param {"*": [n, D]}`, `name`, `step`.
        case a1111
    }

    /// The token file.
    public var output: String
    public var format = Format.diffusers
    /// A checkpoint (the state file, and the token file as it stands) every this many steps (0: at the end only).
    public var saveEvery = 0
    /// A preview grid every this many steps (0: none).
    public var previewEvery = 0
    /// The preview's prompt (with the token in it); nil: the first template.
    public var previewPrompt: String?
    /// One preview image per seed.
    public var previewSeeds: [UInt64] = [0, 1, 2, 3]
    /// DDIM steps of each preview image.
    public var previewSteps = 25
    /// Draw the loss curve as a PNG at the end.
    public var lossPlot = true

    public init(output: String) { self.output = output }

    var stem: String { ((output as NSString).lastPathComponent as NSString).deletingPathExtension }
    var directory: String { (output as NSString).deletingLastPathComponent }
    func beside(_ name: String) -> String { directory.isEmpty ? name : (directory as NSString).appendingPathComponent(name) }

    /// The checkpoint `resume` continues from: `STEM.learn-state.safetensors` beside the token file.
    public var statePath: String { beside(stem + ".learn-state.safetensors") }
    /// The preview grids: `STEM-previews/step-NNNNNN.png` beside the token file.
    public var previewDirectory: String { beside(stem + "-previews") }
    /// The loss curve: `STEM-loss.png` beside the token file.
    public var lossPlotPath: String { beside(stem + "-loss.png") }

    /// The extension each format is written with.
    public var expectedExtension: String { format == .diffusers ? "safetensors" : "pt" }
}

/// What a run reports as it goes.
public enum LearnEvent: Sendable {
    /// `done` of `total` photos encoded.
    case photos(done: Int, total: Int)
    /// A photo left out (unreadable), with why.
    case skipped(String)
    /// Continuing from a checkpoint at this step.
    case resumed(step: Int)
    /// `resume` was asked for but there is no checkpoint: a fresh start.
    case noCheckpoint(String)
    /// A step finished: its loss and the mean of the last 50.
    case step(done: Int, total: Int, loss: Float, smoothed: Float)
    /// A validation: its loss and the best so far.
    case validation(step: Int, loss: Float, best: Float)
    /// A file written (checkpoint, token file, preview, plot).
    case wrote(path: String, kind: String)
    /// Patience ran out: stopped at `step`, the best validation was at `bestStep`.
    case stoppedEarly(step: Int, bestStep: Int)
}

/// What a finished run made.
public struct LearnResult: Sendable {
    public var output: String
    /// The steps done in all (across resumes).
    public var steps: Int
    /// The step whose vectors the token file holds (the best validation's when patience is on).
    public var vectorsFromStep: Int
    public var smoothedLoss: Float
    public var stoppedEarly: Bool
    /// Every file written, last version of each.
    public var files: [(path: String, kind: String)]
}

extension StableDiffusion {
    /// Learns a textual-inversion token from photos (`TokenLearner`), with checkpoints, previews, a loss
    /// plot and early stopping as `outputs` and `settings` ask; `resume` continues from the checkpoint
    /// beside the output when there is one. Every file is written atomically; an output that would
    /// overwrite a photo (or the model) is refused before any work.
    /// - Throws: `SettingError`, `LearnError` (one line each), and errors of the networks and files.
    public func learn(
        photos: [String], settings: LearnSettings, outputs: LearnOutputs, resume: Bool,
        onEvent: (LearnEvent) -> Void = { _ in }
    ) throws -> LearnResult {
        try settings.validate()
        try checkOutputs(outputs, photos: photos)
        let identityBase = [
            "settings": settings.canonical, "model": try modelFingerprint(), "precision": precision.learning.description,
            "token": settings.token,
        ]
        // A checkpoint is checked before the photos are encoded (that can take minutes).
        var state: LearnState?
        if resume {
            if FileManager.default.fileExists(atPath: outputs.statePath) {
                state = try LearnState(path: outputs.statePath, width: textEncoder.config.hiddenSize)
                var partial = identityBase
                partial["photos"] = state?.identity["photos"]
                try state?.check(against: partial, path: outputs.statePath)
            } else {
                onEvent(.noCheckpoint(outputs.statePath))
            }
        }
        let plan = precision
        precision = precision.learning
        defer { precision = plan }
        let learner = try TokenLearner(sd: self, photos: photos, settings: settings) { onEvent(.photos(done: $0, total: $1)) }
        for s in learner.skipped { onEvent(.skipped(s)) }
        var identity = identityBase
        identity["photos"] = learner.photos.map(\.sha256).joined(separator: ",")
        if let state {
            try state.check(against: identity, path: outputs.statePath)
            guard learner.restore(state) else { throw LearnError.resume(outputs.statePath, "its vectors do not fit this token") }
            onEvent(.resumed(step: state.step))
        }

        var files: [String: String] = [:], order: [String] = []
        func wrote(_ path: String, _ kind: String) {
            if files.updateValue(kind, forKey: path) == nil { order.append(path) }
            onEvent(.wrote(path: path, kind: kind))
        }
        let interval = settings.validationInterval
        var stopped = false
        while learner.step < settings.steps && !stopped {
            let loss = try learner.trainStep()
            let k = learner.step
            onEvent(.step(done: k, total: settings.steps, loss: loss, smoothed: learner.smoothedLoss()))
            if interval > 0 && k % interval == 0 {
                stopped = try learner.validate()
                if let last = learner.validations.last, let best = learner.best {
                    onEvent(.validation(step: last.step, loss: last.loss, best: best.loss))
                }
            }
            let last = k == settings.steps || stopped
            if outputs.saveEvery > 0 && k % outputs.saveEvery == 0 && !last {
                try LearnState(learner, identity: identity).write(to: outputs.statePath)
                wrote(outputs.statePath, "checkpoint")
                try writeToken(learner.vectors, learner: learner, step: k, to: outputs)
                wrote(outputs.output, "token")
            }
            if outputs.previewEvery > 0 && (k % outputs.previewEvery == 0 || last) {
                wrote(try preview(learner, outputs: outputs), "preview")
            }
        }
        if stopped, let best = learner.best { onEvent(.stoppedEarly(step: learner.step, bestStep: best.step)) }
        // The best validation's vectors when patience decides, else the last.
        let chosen = settings.patience > 0 ? learner.best ?? (learner.step, .nan, learner.vectors) : (learner.step, .nan, learner.vectors)
        try LearnState(learner, identity: identity).write(to: outputs.statePath)
        wrote(outputs.statePath, "checkpoint")
        try writeToken(chosen.2, learner: learner, step: chosen.0, to: outputs)
        wrote(outputs.output, "token")
        if outputs.lossPlot && !learner.losses.isEmpty {
            try Self.lossPlot(learner).writePNG(outputs.lossPlotPath, protecting: photos)
            wrote(outputs.lossPlotPath, "loss plot")
        }
        return LearnResult(
            output: outputs.output, steps: learner.step, vectorsFromStep: chosen.0, smoothedLoss: learner.smoothedLoss(),
            stoppedEarly: stopped, files: order.map { ($0, files[$0] ?? "") })
    }

    /// Refuses outputs that would overwrite an input or that do not fit the format.
    func checkOutputs(_ outputs: LearnOutputs, photos: [String]) throws {
        guard !outputs.output.isEmpty else { throw SettingError("output", problem: "must be a file path") }
        let ext = (outputs.output as NSString).pathExtension.lowercased()
        guard ext == outputs.expectedExtension else {
            throw SettingError(
                "output", "format",
                problem:
                    "disagree: \(outputs.format.rawValue) tokens are written as .\(outputs.expectedExtension) files, not .\(ext.isEmpty ? "(none)" : ext)"
            )
        }
        guard outputs.previewSeeds.count >= 1, outputs.previewSteps >= 1, outputs.saveEvery >= 0, outputs.previewEvery >= 0 else {
            throw SettingError("preview_every", problem: "needs at least one seed and one step")
        }
        let written = [outputs.output, outputs.statePath, outputs.lossPlotPath]
        for out in written {
            if let clash = photos.first(where: { sameFile($0, out) }) { throw LearnError.outputIsInput(clash) }
            if out.hasPrefix(model.path + "/") || sameFile(out, model.path) { throw LearnError.outputIsInput(out) }
        }
        for photo in photos where photo.hasPrefix(outputs.previewDirectory + "/") { throw LearnError.outputIsInput(photo) }
    }

    /// Writes the token file in the asked format (atomically).
    func writeToken(_ vectors: Tensor, learner: TokenLearner, step: Int, to outputs: LearnOutputs) throws {
        switch outputs.format {
        case .diffusers:
            let metadata = [
                "pivot_learn_step": String(step), "init": learner.settings.initWord, "pivot_version": pivotVersion,
                "model": (model.path as NSString).lastPathComponent,
            ]
            try SafeTensorsWriter.write([(learner.settings.token, vectors)], metadata: metadata, to: outputs.output)
        case .a1111:
            try TorchFileWriter.writeA1111Embedding(name: learner.settings.token, vectors: vectors, step: step, to: outputs.output)
        }
    }

    /// Renders the preview prompt at the preview seeds with the vectors as they are and writes the grid.
    func preview(_ learner: TokenLearner, outputs: LearnOutputs) throws -> String {
        let prompt = outputs.previewPrompt ?? learner.prompt(template: learner.templates[0])
        var images: [RGBImage] = []
        for seed in outputs.previewSeeds {
            var request = GenerationRequest(prompt: prompt)
            request.seed = seed
            request.steps = outputs.previewSteps
            images.append(try generate(request).labelled("seed \(seed)"))
        }
        let grid = RGBImage.grid(images, columns: min(4, images.count), gap: 4).labelled("step \(learner.step): \(prompt)")
        try FileManager.default.createDirectory(atPath: outputs.previewDirectory, withIntermediateDirectories: true)
        let path = (outputs.previewDirectory as NSString).appendingPathComponent(String(format: "step-%06d.png", learner.step))
        try grid.writePNG(path)
        return path
    }

    /// Every step's loss (grey), its running mean over a tenth of the run, at most 100 steps (blue) and the validations (red).
    static func lossPlot(_ l: TokenLearner) -> RGBImage {
        let raw = l.losses.enumerated().map { (x: Double($0.offset + 1), y: Double($0.element)) }
        let window = max(1, min(100, l.losses.count / 10))
        var smooth: [(x: Double, y: Double)] = [], sum = 0.0
        for (i, v) in l.losses.enumerated() {
            sum += Double(v)
            if i >= window { sum -= Double(l.losses[i - window]) }
            if i + 1 >= window { smooth.append((Double(i + 1), sum / Double(window))) }
        }
        var series = [
            LinePlot.Series(points: raw, color: (0.75, 0.75, 0.75), label: "loss per step", lineWidth: 1),
            LinePlot.Series(points: smooth, color: (0.1, 0.3, 0.8), label: "mean of \(window)", lineWidth: 2),
        ]
        if !l.validations.isEmpty {
            series.append(
                LinePlot.Series(
                    points: l.validations.map { (Double($0.step), Double($0.loss)) }, color: (0.85, 0.1, 0.1), label: "validation", lineWidth: 2))
        }
        var plot = LinePlot(title: "learning \(l.settings.token)", xLabel: "step", yLabel: "loss (log scale)", series: series)
        plot.logY = true  // per-step losses span decades (small timesteps are hard); validation sits far below them
        return plot.render()
    }
}
