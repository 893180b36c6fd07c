import ArgumentParser
import Foundation
import PivotIO
import PivotDiffusion
import Pivot
import PivotBatch
import PivotLoading
import PivotImage

struct BatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch",
        abstract: "Edit a whole folder: the same edit for every image, or one row per edit from a manifest.",
        discussion: """
            Either --source/--target (with the edit flags) apply to every image directly in INPUT_DIR (written as \
            NAME.png, or NAME-K.png for the K-th of several targets), or --manifest FILE lists the edits: CSV with a \
            header, a JSON array or JSON lines, with columns image (relative to INPUT_DIR), source, target, optional \
            output (relative to OUT_DIR; default IMAGE-ROW.png) and optional settings (cross_replace, self_replace, \
            reweight, blend, blend_threshold, mode, method, steps, guidance, inner_steps, crop, size, seed) that override the \
            flags. Several items in one CSV cell are separated by ';' (reweight "cat=2;hat=0.5").

            Every output is written atomically and recorded in OUT_DIR/pivot-batch.jsonl; a rerun skips rows already \
            done with the same settings, so a killed batch is resumed by running it again. A bad row is reported and \
            skipped. --shard K/N runs the K-th of N deterministic parts (by image), for job arrays. Exit status 0 when \
            every row succeeded, 1 when any failed.
            """)

    @Argument(help: "The folder of photos.")
    var inputDirectory: String

    @OptionGroup(title: "Model") var modelOptions: ModelOptions
    @OptionGroup var precisionOptions: PrecisionOptions
    @OptionGroup var threadOptions: ThreadOptions
    @OptionGroup var progressOptions: ProgressOptions
    var model: String { modelOptions.model }

    @Option(name: .shortAndLong, help: "The output folder (created if needed).")
    var output: String

    @Option(name: .long, help: "Refuse a manifest of more rows than this (default 100000; checked before it is parsed).")
    var maxRows: Int?

    @Option(name: .long, help: "Edits to run: .csv (with a header), .json (array) or .jsonl.")
    var manifest: String?

    @Option(name: .long, help: "The prompt that describes every photo (without --manifest).")
    var source: String?

    @Option(name: .long, help: "The edited prompt (repeatable; without --manifest).")
    var target: [String] = []

    @Option(name: .long, help: "Fraction of steps with cross-attention replaced (0.8), or WORD=FRACTION (repeatable).")
    var crossReplace: [String] = []

    @Option(name: .long, help: "Self-attention injection: END or START,END as fractions of the steps.")
    var selfReplace: String?

    @Option(name: .long, help: "Attention scale of a target word, WORD=SCALE (repeatable).")
    var reweight: [String] = []

    @Option(name: .long, parsing: .upToNextOption, help: "Local blend: words whose attention bounds the edited region.")
    var blend: [String] = []

    @Option(name: .long, help: "Local-blend mask threshold (default 0.3).")
    var blendThreshold: Float?

    @Option(name: .long, help: "auto, replace or refine (default auto).")
    var mode: EditOptions.Mode?

    @OptionGroup(title: "Inversion") var inversion: InversionOptions

    @OptionGroup(title: "Textual inversion") var embeddingOptions: EmbeddingOptions

    @Option(name: .long, help: ArgumentHelp("Run only part K of N (1 ≤ K ≤ N), chosen by image.", valueName: "K/N"))
    var shard: String?

    @Flag(name: .long, help: "Write each output as the source reconstruction and the edit side by side.")
    var sideBySide = false

    @Flag(name: .long, help: "Neither read nor write the inversion cache.")
    var noCache = false

    @Option(name: .long, help: "photo: each edit at its photo's own resolution (default); model: the size the model rendered.")
    var outputSize: OutputSize = .photo

    @Flag(name: .long, help: "Print each row's outcome and a summary as JSON lines on standard output.")
    var json = false

    @Flag(name: .long, help: "No progress output.")
    var quiet = false

    func validate() throws {
        if let maxRows, maxRows < 1 { throw ValidationError("--max-rows must be at least 1") }
        if manifest == nil {
            guard source != nil, !target.isEmpty else { throw ValidationError("give --manifest, or --source and --target") }
        } else if source != nil || !target.isEmpty {
            throw ValidationError("--source/--target and --manifest exclude each other (put the prompts in the manifest)")
        }
        if let shard, BatchShard(parsing: shard) == nil { throw ValidationError("--shard takes K/N with 1 ≤ K ≤ N, got '\(shard)'") }
    }

    func defaults() throws -> EditSettings {
        var s = EditSettings()
        s.inversion = inversion.settings
        for item in crossReplace { try flagged { try s.set("cross_replace", item) } }
        if let selfReplace { try flagged { try s.set("self_replace", selfReplace) } }
        for item in reweight { try flagged { try s.set("reweight", item) } }
        if !blend.isEmpty { s.edit.blend = blend }
        if let blendThreshold { s.edit.blendThreshold = blendThreshold }
        if let mode { s.edit.mode = mode }
        return s
    }

    func rows() throws -> [BatchRow] {
        if let manifest {
            var limits = TextLimits.manifest
            if let maxRows { limits.maxLines = maxRows }
            return try BatchManifest.read(manifest, limits: limits)
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: inputDirectory).sorted()
            .filter { BatchCommand.isImageName($0) }
        var rows: [BatchRow] = []
        for name in names {
            for (k, t) in target.enumerated() {
                let stem = (name as NSString).deletingPathExtension
                rows.append(
                    BatchRow(
                        number: rows.count + 1, image: name, source: source ?? "", target: t,
                        output: target.count == 1 ? stem + ".png" : "\(stem)-\(k + 1).png"))
            }
        }
        return rows
    }

    func run() throws {
        let sd = try StableDiffusion(model: modelOptions.folder())
        sd.precision = try precisionOptions.plan()
        try embeddingOptions.apply(to: sd, quiet: quiet)
        var job = BatchJob(
            inputDirectory: inputDirectory, outputDirectory: output, rows: try rows(), defaults: try defaults(),
            shard: shard.flatMap(BatchShard.init(parsing:)), cache: noCache ? nil : InversionCache())
        job.sideBySide = sideBySide
        job.outputSize = outputSize
        releaseFP32WeightsIfBF16Only(sd, withGradients: job.invertsWithGradients)
        // Every row planned with the batch's defaults (a manifest's own settings are learnt as they run).
        let defaults = job.defaults
        let progress = JobProgress(
            "batch", style: progressOptions.style(quiet: quiet), phases: [], gradientPrior: sd.precision.gradientPassCost)
        var started = 0, count = 0
        var inverting: (InversionEvent) -> Void = { _ in }
        let outcomes = try sd.runBatch(job) { event in
            switch event {
            case .planned(let t, let already):
                count = t - already
                for k in 0..<count { progress.job.append(JobPlans.edit(defaults, targets: 1, invert: true, prefix: "row \(k + 1)/\(count) ")) }
                if !quiet { note("batch: \(t) row\(t == 1 ? "" : "s")\(already > 0 ? ", \(already) already done" : "")") }
            case .rowStarted:
                started += 1
                progress.enter("row \(started)/\(count) encode")
                inverting = progress.inversionEvents(prefix: "row \(started)/\(count) ")
            case .inversion(let e): inverting(e)
            case .editStep(let step, let steps):
                progress.enter("row \(started)/\(count) edit")
                progress.step(step, total: steps)
                if step == steps { progress.enter("row \(started)/\(count) decode") }
            case .rowFinished(_, _, let outcome):
                if json { try? printJSON(outcome) }
                if outcome.status == .error, !quiet { note("batch: row \(outcome.row) (\(outcome.image)) failed: \(outcome.message)") }
            }
        }
        progress.finish()
        // Rows refused before any work (bad settings, images, outputs, words) never started.
        for o in outcomes where o.status == .error && o.settings.isEmpty {
            if json { try? printJSON(o) } else if !quiet { note("batch: row \(o.row) (\(o.image)) skipped: \(o.message)") }
        }
        let failed = outcomes.filter { $0.status == .error }.count
        let ok = outcomes.filter { $0.status == .ok }.count, skipped = outcomes.filter { $0.status == .skipped }.count
        if json {
            struct Summary: Encodable {
                var rows, ok, skipped, failed: Int
                var journal: String
            }
            try printJSON(
                Summary(
                    rows: outcomes.count, ok: ok, skipped: skipped, failed: failed,
                    journal: (output as NSString).appendingPathComponent(BatchJournal.fileName)))
        } else {
            print(Self.table(outcomes))
            print("\(outcomes.count) rows: \(ok) written, \(skipped) already done, \(failed) failed")
        }
        if failed > 0 { throw ExitCode(1) }
    }

    /// The summary table: row, status, seconds, output or message.
    static func table(_ outcomes: [BatchOutcome]) -> String {
        var lines = ["row  status   seconds  output / message"]
        for o in outcomes {
            let what = o.status == .error ? o.message : o.output
            let status = o.status.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
            lines.append(String(format: "%-4d ", o.row) + status + String(format: " %7.1f  ", o.seconds) + what)
        }
        return lines.joined(separator: "\n")
    }

    /// Files of a folder that become rows: every extension pivot reads (any case), and other image formats,
    /// which then fail as rows that say why instead of being skipped silently.
    static func isImageName(_ name: String) -> Bool {
        guard !name.hasPrefix(".") else { return false }
        if ImageFormat(pathExtension: name) != nil { return true }
        let ext = (name as NSString).pathExtension.lowercased()
        return ["gif", "bmp", "jp2", "j2k", "jxl", "psd", "ico", "dng", "cr2", "cr3", "nef", "arw", "raw", "exr", "svg"].contains(ext)
    }
}
