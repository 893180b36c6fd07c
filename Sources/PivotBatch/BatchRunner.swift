import Foundation
import Pivot
import PivotLoading
import PivotFormats
import PivotImage
import PivotIO

/// A batch of edits: rows of one folder of images, written into another.
public struct BatchJob {
    public var inputDirectory: String
    public var outputDirectory: String
    public var rows: [BatchRow]
    /// Settings for every row; a row's own settings override them.
    public var defaults: EditSettings
    public var shard: BatchShard?
    /// Where inversions are kept between runs (nil: only within this run).
    public var cache: InversionCache?
    /// Write the source reconstruction and the edit side by side (as `pivot edit --side-by-side`).
    public var sideBySide = false
    /// The size outputs are written at (as `pivot edit --output-size`).
    public var outputSize = OutputSize.photo

    public init(
        inputDirectory: String, outputDirectory: String, rows: [BatchRow], defaults: EditSettings = EditSettings(),
        shard: BatchShard? = nil, cache: InversionCache? = InversionCache()
    ) {
        self.inputDirectory = inputDirectory
        self.outputDirectory = outputDirectory
        self.rows = rows
        self.defaults = defaults
        self.shard = shard
        self.cache = cache
    }

    /// The settings `row` runs with: the batch's, overridden by the row's own.
    public func settings(for row: BatchRow) throws -> EditSettings {
        var settings = defaults
        for key in row.settings.keys.sorted() { try settings.set(key, row.settings[key] ?? "") }
        return settings
    }

    /// Whether some row's inversion runs gradient passes (null-text); a row whose settings do not parse counts
    /// as one that might (it fails before any work).
    public var invertsWithGradients: Bool {
        rows.contains { row in (try? settings(for: row))?.inversion.method.usesGradients ?? true }
    }
}

/// What a running batch reports.
public enum BatchEvent {
    /// Rows in this shard, and how many of them are already done.
    case planned(total: Int, alreadyDone: Int)
    case rowStarted(index: Int, total: Int, row: BatchRow)
    case inversion(InversionEvent)
    case editStep(step: Int, total: Int)
    case rowFinished(index: Int, total: Int, outcome: BatchOutcome)
}

extension StableDiffusion {
    /// Runs a batch (../README.md, `pivot batch`): each row is checked, its photo inverted once per
    /// (image, source prompt, inversion settings) — through the cache — and its edit written atomically,
    /// then recorded in the journal. A failing row is recorded and skipped; rows already done with the
    /// same settings are skipped. Returns the outcome of every row of the shard, in manifest order.
    public func runBatch(_ job: BatchJob, onEvent: (BatchEvent) -> Void = { _ in }) throws -> [BatchOutcome] {
        try FileManager.default.createDirectory(atPath: job.outputDirectory, withIntermediateDirectories: true)
        let journal = try BatchJournal(directory: job.outputDirectory)
        Self.removeStaleTemporaries(in: job.outputDirectory)
        let rows = job.rows.filter { job.shard?.contains(image: $0.image) ?? true }
        // Rows that share an inversion run back to back (in order of first appearance), so it is made once.
        var order: [String: Int] = [:]
        for r in rows { order[r.image + "\u{1F}" + r.source] = order[r.image + "\u{1F}" + r.source] ?? order.count }
        let runOrder = rows.enumerated().sorted {
            let a = order[$0.element.image + "\u{1F}" + $0.element.source] ?? 0, b = order[$1.element.image + "\u{1F}" + $1.element.source] ?? 0
            return a != b ? a < b : $0.offset < $1.offset
        }.map(\.element)

        var outcomes: [Int: BatchOutcome] = [:]
        var claimed: [String: Int] = [:]
        let inputs = Set(job.rows.map { Self.resolved((job.inputDirectory as NSString).appendingPathComponent($0.image)) })
        var prepared: [(row: BatchRow, plan: PreparedRow)] = []
        for row in runOrder {
            do {
                let plan = try prepare(row, job, inputs: inputs, claimed: &claimed)
                if journal.isDone(output: plan.output, settings: plan.hash, in: job.outputDirectory) {
                    outcomes[row.number] = BatchOutcome(
                        row: row.number, image: row.image, output: plan.output, status: .skipped,
                        seconds: 0, message: "already done", settings: plan.hash)
                } else {
                    prepared.append((row, plan))
                }
            } catch {
                let o = BatchOutcome(
                    row: row.number, image: row.image, output: row.output ?? "", status: .error, seconds: 0,
                    message: oneLineDescription(of: error), settings: "")
                outcomes[row.number] = o
                try journal.append(o)
            }
        }
        onEvent(.planned(total: rows.count, alreadyDone: outcomes.values.filter { $0.status == .skipped }.count))
        var inversions: (key: String, record: InversionRecord)?
        for (i, item) in prepared.enumerated() {
            let (row, plan) = item
            onEvent(.rowStarted(index: i, total: prepared.count, row: row))
            let start = Date()
            var outcome: BatchOutcome
            do {
                // Rows of one photo, prompt and inversion settings run back to back and share one inversion.
                let input: EditInput
                if let shared = inversions, shared.key == plan.inversionKey {
                    input = .inversion(shared.record)
                } else {
                    inversions = nil
                    input = .photo(plan.photo, photoHash: plan.photoHash)
                }
                var request = EditRequest(
                    input: input, source: row.source, targets: [row.target], settings: plan.settings,
                    cache: job.cache)
                request.outputSize = job.outputSize
                let result = try edit(request) { event in
                    switch event {
                    case .inversion(let e): onEvent(.inversion(e))
                    case .step(let step, let total): onEvent(.editStep(step: step, total: total))
                    case .warning: break  // a cache that cannot be written costs time, not the row
                    }
                }
                inversions = (plan.inversionKey, result.record)
                let path = (job.outputDirectory as NSString).appendingPathComponent(plan.output)
                try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                let image = job.sideBySide ? RGBImage.sideBySide(result.images) : result.images[1]
                try image.write(path, protecting: [plan.photo], text: [("parameters", result.parameters)])
                outcome = BatchOutcome(
                    row: row.number, image: row.image, output: plan.output, status: .ok,
                    seconds: Date().timeIntervalSince(start), message: "", settings: plan.hash)
            } catch {
                outcome = BatchOutcome(
                    row: row.number, image: row.image, output: plan.output, status: .error,
                    seconds: Date().timeIntervalSince(start), message: oneLineDescription(of: error), settings: plan.hash)
            }
            try journal.append(outcome)
            outcomes[row.number] = outcome
            onEvent(.rowFinished(index: i, total: prepared.count, outcome: outcome))
        }
        return rows.compactMap { outcomes[$0.number] }
    }

    struct PreparedRow {
        var settings: EditSettings
        var photo: String
        var photoHash: String
        var output: String
        var hash: String
        var inversionKey: String
    }

    /// Checks a row before any work: settings, image, output path (inside the output folder, an image
    /// format, not an input, not another row's), prompts and words; and computes its settings hash.
    func prepare(_ row: BatchRow, _ job: BatchJob, inputs: Set<String>, claimed: inout [String: Int]) throws -> PreparedRow {
        let settings = try job.settings(for: row)
        guard !row.image.hasPrefix("/") else {
            throw EditError.badValue("image '\(escapedForOneLine(row.image))' must be relative to the input folder")
        }
        let photo = (job.inputDirectory as NSString).appendingPathComponent(row.image)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: photo, isDirectory: &isDir), !isDir.boolValue else {
            throw EditError.badValue("\(row.image): no such image in \(job.inputDirectory)")
        }
        let output = try Self.checkedOutput(row.output ?? Self.defaultOutput(for: row), row: row)
        let outputPath = (job.outputDirectory as NSString).appendingPathComponent(output)
        if inputs.contains(Self.resolved(outputPath)) || sameFile(photo, outputPath) {
            throw EditError.badValue("output \(output) would overwrite an input image")
        }
        if let other = claimed[output] { throw EditError.badValue("output \(output) is also row \(other)'s") }
        claimed[output] = row.number
        _ = try promptToPrompt(
            source: row.source, targets: [row.target], steps: settings.inversion.steps,
            latentSide: latentSide, options: settings.edit)
        let photoHash = try SHA256.hexDigest(ofFile: photo)
        let fields =
            [
                pivotVersion, photoHash, try modelFingerprint(), embeddingsDescription, row.source, row.target,
                settings.canonical, output,
            ] + (job.sideBySide ? ["side-by-side"] : []) + ["output-size=\(job.outputSize.rawValue)"]
            + (precision.hashTag.map { ["precision=\($0)"] } ?? [])
        let hash = SHA256.hex(SHA256.hash(Array(fields.joined(separator: "\u{1E}").utf8)))
        let inversionKey = InversionCache.key(
            photoHash: photoHash, modelFingerprint: try modelFingerprint(), prompt: row.source,
            settings: settings.inversion, embeddings: embeddingsDescription,
            precisionTag: precision.hashTag)
        return PreparedRow(settings: settings, photo: photo, photoHash: photoHash, output: output, hash: hash, inversionKey: inversionKey)
    }

    /// `<image path without extension>-<row>.png`.
    static func defaultOutput(for row: BatchRow) -> String {
        ((row.image as NSString).deletingPathExtension) + "-\(row.number).png"
    }

    /// A relative path with no `..` or empty components and an image extension.
    static func checkedOutput(_ output: String, row: BatchRow) throws -> String {
        let parts = output.split(separator: "/", omittingEmptySubsequences: false)
        guard !output.hasPrefix("/"), !parts.contains(where: { $0 == ".." || $0.isEmpty }) else {
            throw EditError.badValue("output '\(escapedForOneLine(output))' would leave the output folder")
        }
        guard ImageFormat(pathExtension: output)?.isWritable == true else {
            throw EditError.badValue("output '\(escapedForOneLine(output))' must end in .png, .jpg, .jpeg, .tif, .tiff or .webp")
        }
        return parts.filter { $0 != "." }.joined(separator: "/")
    }

    /// Temporary files of atomic writes (`.NAME.tmp-PID-N`) left by a process that no longer runs (killed
    /// with SIGKILL, which no handler sees).
    static func removeStaleTemporaries(in directory: String) {
        guard let walker = FileManager.default.enumerator(atPath: directory) else { return }
        for case let relative as String in walker {
            let name = (relative as NSString).lastPathComponent
            guard name.hasPrefix("."), let range = name.range(of: ".tmp-", options: .backwards) else { continue }
            let fields = name[range.upperBound...].split(separator: "-")
            guard fields.count == 2, let pid = Int32(fields[0]), fields[1].allSatisfy(\.isNumber) else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH {
                try? FileManager.default.removeItem(atPath: (directory as NSString).appendingPathComponent(relative))
            }
        }
    }

    static func resolved(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
    }
}
