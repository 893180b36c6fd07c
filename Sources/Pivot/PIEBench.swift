import Foundation
import PivotIO
import PivotImage
import PivotTensor

// PIE-Bench (PnPInversion's editing benchmark) as its evaluation reads it: `mapping_file.json` (prompts, editing
// types, RLE masks), the source images, one folder of edited images per method; the offline metrics of
// Evaluation.swift over every entry and their averages per method and per editing type. Everything read is
// validated: a bad file is a `PIEBenchError` naming the file and the entry, never a trap.

/// A PIE-Bench file that cannot be used: one line naming the file, the entry (and field) and what is wrong.
public struct PIEBenchError: Error, CustomStringConvertible, Equatable {
    public enum Kind: String, Sendable {
        /// The mapping file is missing, unreadable or not JSON of the expected shape.
        case mapping
        /// An entry's RLE mask does not fit its image.
        case mask
        /// An image named by the mapping file is missing.
        case missingImage
        /// An image cannot be read or has the wrong size.
        case image
        /// The folders hold no method, or name one twice.
        case layout
        /// The results file could not be written.
        case output
    }

    public let kind: Kind
    /// The file (or folder) involved.
    public let path: String
    /// The entry and field, as `000000000000.mask`; nil when the whole file is at fault.
    public let key: String?
    public let problem: String

    public init(_ kind: Kind, path: String, key: String? = nil, _ problem: String) {
        self.kind = kind
        self.path = path
        self.key = key
        self.problem = problem
    }

    public var description: String {
        escapedForOneLine(path) + (key.map { " (entry \(escapedForOneLine($0)))" } ?? "") + ": " + escapedForOneLine(problem)
    }
}

/// One entry of `mapping_file.json`.
public struct PIEBenchEntry: Sendable, Equatable {
    /// The entry's key (`"000000000000"`).
    public var key: String
    /// The image's path relative to the image folder (and to each method's folder).
    public var imagePath: String
    /// The source prompt; `[word]` marks what the edit changes (stripped for CLIP, as the reference does).
    public var originalPrompt: String
    public var editingPrompt: String
    public var editingInstruction: String?
    /// "0" … "9" in PIE-Bench (a string, as the reference compares it).
    public var editingTypeID: String
    public var blendedWord: String?
    /// The edit mask as runs of ones: `[start, length, start, length, …]` over the row-major pixel index.
    public var mask: [Int]
}

/// Where a PIE-Bench evaluation finds its files. The defaults mirror the working directory of PnPInversion's
/// `evaluate.py`: `data/mapping_file.json`, `data/annotation_images/<image_path>` and
/// `output/<method>/annotation_images/<image_path>`.
public struct PIEBenchLayout: Sendable, Equatable {
    public var mapping: String
    /// The folder the entries' `image_path`s are relative to.
    public var images: String
    /// The folder holding one folder per method.
    public var outputs: String

    public init(root: String) {
        mapping = root + "/data/mapping_file.json"
        images = root + "/data/annotation_images"
        outputs = root + "/output"
    }

    public init(mapping: String, images: String, outputs: String) {
        self.mapping = mapping
        self.images = images
        self.outputs = outputs
    }

    /// The folder of method `name`'s edits: `outputs/<name>/annotation_images`.
    public func folder(ofMethod name: String) -> String { outputs + "/" + name + "/annotation_images" }

    /// Every method under `outputs` (folders holding `annotation_images`), sorted by name.
    /// - Throws: `PIEBenchError` (`.layout`) when there is none.
    public func discoverMethods() throws -> [PIEBenchMethod] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: outputs)) ?? []).sorted().filter { name in
            var isDirectory: ObjCBool = false
            return !name.hasPrefix(".") && FileManager.default.fileExists(atPath: folder(ofMethod: name), isDirectory: &isDirectory)
                && isDirectory.boolValue
        }
        guard !names.isEmpty else {
            throw PIEBenchError(.layout, path: outputs, "holds no method folder (each method's edits go in \(outputs)/<method>/annotation_images)")
        }
        return names.map { PIEBenchMethod(name: $0, folder: folder(ofMethod: $0)) }
    }
}

/// A method to evaluate: its name in reports and the folder its edits are in, at each entry's `image_path`.
public struct PIEBenchMethod: Sendable, Equatable {
    public var name: String
    public var folder: String

    public init(name: String, folder: String) {
        self.name = name
        self.folder = folder
    }
}

/// What to compute.
public struct PIEBenchOptions: Sendable, Equatable {
    public var metrics: [PIEMetric] = PIEMetric.defaults
    /// Entries of other editing types are skipped (the reference's `edit_category_list`, "0" … "9").
    public var editingTypes: [String] = PIEBench.defaultEditingTypes
    public var ssimBorder: SSIMBorder = .crop
    /// A transformers `CLIPModel` folder (config.json + model.safetensors, e.g. openai/clip-vit-large-patch14,
    /// what the reference uses): needed by the CLIP similarities (`PIEMetric.clip`), read by `CLIPScore`.
    public var clipModel: String?
    /// The LPIPS network's weights (see `LPIPSMetric`): needed by the LPIPS metrics (`PIEMetric.lpips`).
    public var lpipsWeights: String?

    public init() {}
}

/// PIE-Bench's files and the evaluation of PnPInversion's `evaluate.py`, for the metrics that need no weights and
/// the CLIP similarities.
public enum PIEBench {
    /// The reference's default editing types.
    public static let defaultEditingTypes = (0...9).map(String.init)
    /// The largest mapping file read (PIE-Bench's is a few megabytes).
    public static let mappingLimits = TextLimits(maxBytes: 256 << 20, maxLines: .max)

    /// Reads and validates a mapping file; entries sorted by key.
    /// - Throws: `PIEBenchError` (`.mapping`) naming the entry and field at fault, `InputLimitError` over 256 MiB.
    public static func readMapping(_ path: String) throws -> [PIEBenchEntry] {
        if !FileManager.default.fileExists(atPath: path) { throw PIEBenchError(.mapping, path: path, "no such file") }
        let data = try readLimitedData(path, limits: mappingLimits) { PIEBenchError(.mapping, path: path, "the file \($0)") }
        let raw: [String: RawEntry]
        do { raw = try JSONDecoder().decode([String: RawEntry].self, from: data) } catch let error as DecodingError {
            throw mappingError(error, path: path)
        } catch { throw PIEBenchError(.mapping, path: path, "not a JSON object of entries") }
        guard !raw.isEmpty else { throw PIEBenchError(.mapping, path: path, "holds no entries") }
        return try raw.keys.sorted().map { key in
            let r = raw[key]!
            let pathKey = key + ".image_path"
            let parts = r.image_path.split(separator: "/", omittingEmptySubsequences: false)
            if r.image_path.isEmpty || r.image_path.hasPrefix("/") || parts.contains("..") || r.image_path.contains("\0") {
                throw PIEBenchError(
                    .mapping, path: path, key: pathKey, "image_path \"\(r.image_path)\" must be a relative path inside the image folder")
            }
            if r.mask.count % 2 != 0 {
                throw PIEBenchError(.mapping, path: path, key: key + ".mask", "has \(r.mask.count) numbers; runs are [start, length] pairs")
            }
            if let bad = r.mask.firstIndex(where: { $0 < 0 }) {
                throw PIEBenchError(.mapping, path: path, key: key + ".mask[\(bad)]", "is \(r.mask[bad]); starts and lengths are not negative")
            }
            return PIEBenchEntry(
                key: key, imagePath: r.image_path, originalPrompt: r.original_prompt, editingPrompt: r.editing_prompt,
                editingInstruction: r.editing_instruction, editingTypeID: r.editing_type_id, blendedWord: r.blended_word, mask: r.mask)
        }
    }

    /// The mask of `runs` on a `width`×`height` grid, one byte (0 or 1) per pixel, as the reference decodes it:
    /// each run sets `length` pixels from `start` (a run that passes the last pixel stops there), then the
    /// image's outermost rows and columns are set to 1 ("to avoid annotation errors in boundary").
    /// - Throws: a description of the fault when a run starts outside the image (the mask belongs to a
    ///   larger image) or the count is odd.
    public static func decodeMask(_ runs: [Int], width: Int, height: Int) throws -> [UInt8] {
        let (n, overflow) = width.multipliedReportingOverflow(by: height)
        guard width > 0 && height > 0 && !overflow else { throw MaskFault("is for a \(width)x\(height) image") }
        guard runs.count % 2 == 0 else { throw MaskFault("has \(runs.count) numbers; runs are [start, length] pairs") }
        var mask = [UInt8](repeating: 0, count: n)
        for k in stride(from: 0, to: runs.count, by: 2) {
            let start = runs[k], length = runs[k + 1]
            guard start >= 0, length >= 0 else { throw MaskFault("run \(k / 2) is [\(start), \(length)]; starts and lengths are not negative") }
            guard start < n else {
                throw MaskFault(
                    "run \(k / 2) starts at pixel \(start), outside the \(width)x\(height) image (\(n) pixels): the mask is for a larger image")
            }
            for i in start..<(start + min(length, n - start)) { mask[i] = 1 }
        }
        for x in 0..<width {
            mask[x] = 1
            mask[(height - 1) * width + x] = 1
        }
        for y in 0..<height {
            mask[y * width] = 1
            mask[y * width + width - 1] = 1
        }
        return mask
    }

    /// The part of a method's output that is the edit, as the reference takes it: an output of the source's
    /// size as it is; a non-square one (the edit beside or below other images) its bottom-right source-sized
    /// corner. A square output of another size is refused, as the reference refuses it.
    /// - Throws: `PIEBenchError` (`.image`) naming `path`.
    public static func editRegion(of output: RGBImage, sourceWidth: Int, sourceHeight: Int, path: String, key: String) throws -> RGBImage {
        if output.width == sourceWidth && output.height == sourceHeight { return output }
        let size = "\(output.width)x\(output.height)", source = "\(sourceWidth)x\(sourceHeight)"
        if output.width == output.height {
            throw PIEBenchError(.image, path: path, key: key, "is \(size), the source is \(source); a square output must have the source's size")
        }
        guard output.width >= sourceWidth && output.height >= sourceHeight else {
            throw PIEBenchError(.image, path: path, key: key, "is \(size), smaller than the source (\(source)) it should end with")
        }
        let x0 = output.width - sourceWidth, y0 = output.height - sourceHeight
        var pixels = [Float](repeating: 0, count: sourceWidth * sourceHeight * 3)
        for y in 0..<sourceHeight {
            let from = ((y0 + y) * output.width + x0) * 3
            pixels.replaceSubrange((y * sourceWidth * 3)..<((y + 1) * sourceWidth * 3), with: output.pixels[from..<(from + sourceWidth * 3)])
        }
        return RGBImage(width: sourceWidth, height: sourceHeight, pixels: pixels, bitDepth: output.bitDepth)
    }

    /// Evaluates every entry of the chosen editing types for every method: the entry's source against the
    /// method's edit (`editRegion`), under the entry's mask decoded at the source's size, for each metric
    /// (NaN for an empty region). Entries run in parallel (`Parallel.workers` threads).
    ///
    /// `methods` nil means every method of the layout (`discoverMethods`, after the mapping file is read).
    ///
    /// - Throws: `PIEBenchError` for the first entry (by key) with a bad mask, a missing or unreadable image
    ///   or a size that does not fit; `SettingError` for empty lists of methods, metrics or editing types, or a CLIP
    ///   similarity without `clipModel`; `LoadError` (naming the file and tensor) for a CLIP model that cannot be read.
    ///
    /// The CLIP similarities (`PIEMetric.clip`) are computed after the other metrics, one entry after another, with
    /// `CLIPScore` on the model of `options.clipModel`.
    public static func evaluate(layout: PIEBenchLayout, methods: [PIEBenchMethod]? = nil, options: PIEBenchOptions) throws -> PIEBenchReport {
        guard !options.metrics.isEmpty else { throw SettingError("metrics", problem: "lists no metric") }
        guard !options.editingTypes.isEmpty else { throw SettingError("editing_types", problem: "lists no editing type") }
        if let methods, methods.isEmpty { throw SettingError("methods", problem: "lists no method") }
        let clipMetrics = options.metrics.indices.filter { options.metrics[$0].measure == .clipSimilarity }
        if let first = clipMetrics.first, options.clipModel == nil {
            throw SettingError(
                "clip_model",
                problem:
                    "is needed for \(options.metrics[first].name): give a transformers CLIPModel folder (openai/clip-vit-large-patch14, as the reference)"
            )
        }
        let lpipsMetrics = options.metrics.indices.filter { options.metrics[$0].measure == .lpips }
        if let first = lpipsMetrics.first, options.lpipsWeights == nil {
            throw SettingError(
                "lpips_weights",
                problem: "is needed for \(options.metrics[first].name): give the LPIPS network's weights (SqueezeNet 1.1 and its lin layers)")
        }
        let all = try readMapping(layout.mapping)
        let methods = try methods ?? layout.discoverMethods()
        var seen = Set<String>()
        for method in methods where !seen.insert(method.name).inserted {
            throw PIEBenchError(.layout, path: method.folder, "method \"\(method.name)\" is named twice")
        }
        let types = Set(options.editingTypes)
        let entries = all.filter { types.contains($0.editingTypeID) }
        guard !entries.isEmpty else {
            throw PIEBenchError(.mapping, path: layout.mapping, "holds no entry of editing types \(options.editingTypes.joined(separator: ", "))")
        }
        // Every file is looked for before any is decoded, so a missing one fails at once.
        for entry in entries {
            for path in [layout.images + "/" + entry.imagePath] + methods.map({ $0.folder + "/" + entry.imagePath })
            where !FileManager.default.fileExists(atPath: path) {
                throw PIEBenchError(.missingImage, path: path, key: entry.key, "no such image")
            }
        }
        // The CLIP model is read before any image, so a bad folder fails at once.
        let clip = try clipMetrics.isEmpty ? nil : options.clipModel.map { try CLIPScore(folder: $0) }
        let lpips = try lpipsMetrics.isEmpty ? nil : options.lpipsWeights.map { try LPIPSMetric(weights: $0) }
        var results = [Result<[[Double]], Error>](repeating: .success([]), count: entries.count)
        results.withUnsafeMutableBufferPointer { slots in
            let base = slots.baseAddress!
            Parallel.forEach(entries.count) { range in
                for i in range {
                    base[i] = Result { try evaluateEntry(entries[i], layout: layout, methods: methods, options: options) }
                }
            }
        }
        var values: [[[Double]]] = []
        for result in results { values.append(try result.get()) }
        // The CLIP similarities, one entry after another (the network's passes use every thread themselves).
        if let clip {
            for (e, entry) in entries.enumerated() {
                let scores = try clipScores(entry, layout: layout, methods: methods, metrics: clipMetrics.map { options.metrics[$0] }, clip: clip)
                for m in methods.indices { for (j, k) in clipMetrics.enumerated() { values[e][m][k] = scores[m][j] } }
            }
        }
        // LPIPS likewise.
        if let lpips {
            for (e, entry) in entries.enumerated() {
                let scores = try lpipsScores(entry, layout: layout, methods: methods, metrics: lpipsMetrics.map { options.metrics[$0] }, lpips: lpips)
                for m in methods.indices { for (j, k) in lpipsMetrics.enumerated() { values[e][m][k] = scores[m][j] } }
            }
        }
        return PIEBenchReport(
            mapping: layout.mapping, metrics: options.metrics, ssimBorder: options.ssimBorder, editingTypes: options.editingTypes,
            skipped: all.count - entries.count, entries: entries, methods: methods, values: values)
    }

    /// One entry's source image, decoded edit mask and, per method, the edit (its region of the output file):
    /// what every metric of the entry reads, read once per pass. `checkSource` runs on the source (and its path)
    /// before anything else is read.
    private static func loadEntry(
        _ entry: PIEBenchEntry, layout: PIEBenchLayout, methods: [PIEBenchMethod],
        checkSource: (RGBImage, String) throws -> Void = { _, _ in }
    ) throws -> (source: RGBImage, mask: [UInt8], edits: [RGBImage]) {
        let sourcePath = layout.images + "/" + entry.imagePath
        let source = try readImage(sourcePath, key: entry.key)
        try checkSource(source, sourcePath)
        let mask: [UInt8]
        do { mask = try decodeMask(entry.mask, width: source.width, height: source.height) } catch let fault as MaskFault {
            throw PIEBenchError(.mask, path: layout.mapping, key: entry.key + ".mask", fault.problem)
        }
        let edits = try methods.map { method in
            let path = method.folder + "/" + entry.imagePath
            return try editRegion(
                of: try readImage(path, key: entry.key), sourceWidth: source.width, sourceHeight: source.height, path: path, key: entry.key)
        }
        return (source, mask, edits)
    }

    /// One entry: per method, the metrics' values.
    private static func evaluateEntry(_ entry: PIEBenchEntry, layout: PIEBenchLayout, methods: [PIEBenchMethod], options: PIEBenchOptions)
        throws -> [[Double]]
    {
        let side = ImageMetrics.windowSide
        let (source, mask, edits) = try loadEntry(entry, layout: layout, methods: methods) { source, path in
            guard source.width >= side && source.height >= side else {
                throw PIEBenchError(.image, path: path, key: entry.key, "is \(source.width)x\(source.height); SSIM needs at least \(side)x\(side)")
            }
        }
        return edits.map { edit in
            options.metrics.map {
                $0.value(
                    source: source.pixels, edit: edit.pixels, editMask: mask, width: source.width, height: source.height,
                    ssimBorder: options.ssimBorder)
            }
        }
    }

    /// One entry's CLIP similarities, per method, as the reference's `calculate_clip_similarity` computes them: the
    /// source against the source prompt, the edit against the target prompt (both with their `[` `]` removed),
    /// the edit multiplied by the edit mask against the target prompt (NaN for an empty mask).
    private static func clipScores(
        _ entry: PIEBenchEntry, layout: PIEBenchLayout, methods: [PIEBenchMethod], metrics: [PIEMetric], clip: CLIPScore
    ) throws -> [[Double]] {
        func plain(_ prompt: String) -> String { prompt.replacingOccurrences(of: "[", with: "").replacingOccurrences(of: "]", with: "") }
        let (source, mask, edits) = try loadEntry(entry, layout: layout, methods: methods)
        // The source's score is the same for every method.
        let sourceScore = try metrics.contains { $0.clipImage == .source } ? clip.score(image: source, prompt: plain(entry.originalPrompt)) : .nan
        return try edits.map { edit in
            try metrics.map { metric in
                switch (metric.clipImage, metric.region) {
                case (.source, _): return sourceScore
                case (_, .edited):
                    return mask.contains(1) ? try clip.score(image: edit, prompt: plain(entry.editingPrompt), mask: mask) : .nan
                default: return try clip.score(image: edit, prompt: plain(entry.editingPrompt))
                }
            }
        }
    }

    /// One entry's LPIPS, per method, as the reference's `calculate_lpips(src, tgt, mask, mask)` computes it: both
    /// images multiplied by the region's mask (the edit mask, its complement, or none), NaN for an empty region.
    private static func lpipsScores(
        _ entry: PIEBenchEntry, layout: PIEBenchLayout, methods: [PIEBenchMethod], metrics: [PIEMetric], lpips: LPIPSMetric
    ) throws -> [[Double]] {
        let (source, mask, edits) = try loadEntry(entry, layout: layout, methods: methods)
        return try edits.map { edit in
            try metrics.map { metric in
                switch metric.region {
                case .whole: return try lpips.distance(source, edit, mask: nil)
                case .background, .edited:
                    let keep: UInt8 = metric.region == .edited ? 1 : 0
                    guard mask.contains(keep) else { return .nan }
                    return try lpips.distance(source, edit, mask: mask.map { $0 == keep ? 1 : 0 })
                }
            }
        }
    }

    /// An 8-bit image as the reference's `np.array(Image.open(path))` sees it: no EXIF rotation.
    private static func readImage(_ path: String, key: String) throws -> RGBImage {
        let image: RGBImage
        do { image = try RGBImage.read(path, applyOrientation: false) } catch let error as ImageError {
            throw PIEBenchError(.image, path: path, key: key, error.reason)
        }
        guard image.bitDepth == 8 else {
            throw PIEBenchError(.image, path: path, key: key, "is a \(image.bitDepth)-bit image; PIE-Bench's evaluation reads 8-bit images")
        }
        return image
    }

    /// A mapping file's decoding error as one line naming the entry and field.
    private static func mappingError(_ error: DecodingError, path: String) -> PIEBenchError {
        // Array elements' keys are "Index N" with an integer value; entry keys may have one too ("000000000000").
        func keyPath(_ codingPath: [CodingKey]) -> String? {
            let parts = codingPath.map { key in
                if let i = key.intValue, key.stringValue.hasPrefix("Index ") { return "[\(i)]" }
                return "." + key.stringValue
            }
            return parts.isEmpty ? nil : String(parts.joined().dropFirst(parts[0].hasPrefix(".") ? 1 : 0))
        }
        switch error {
        case .keyNotFound(let missing, let context):
            let entry = keyPath(context.codingPath) ?? "?"
            return PIEBenchError(.mapping, path: path, key: entry, "has no \"\(missing.stringValue)\"")
        case .typeMismatch(let type, let context):
            if context.codingPath.isEmpty { return PIEBenchError(.mapping, path: path, "not a JSON object of entries") }
            return PIEBenchError(.mapping, path: path, key: keyPath(context.codingPath), "is not \(describe(type))")
        case .valueNotFound(let type, let context):
            return PIEBenchError(.mapping, path: path, key: keyPath(context.codingPath), "is null, not \(describe(type))")
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return PIEBenchError(.mapping, path: path, "not valid JSON") }
            return PIEBenchError(.mapping, path: path, key: keyPath(context.codingPath), "is not a valid value (an integer too large?)")
        @unknown default:
            return PIEBenchError(.mapping, path: path, "not a JSON object of entries")
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        if type == String.self { return "a string" }
        if type == Int.self { return "an integer" }
        if type == [Int].self || type == [Any].self { return "a list of integers" }
        return "a JSON object"
    }

    /// A mapping entry as stored (field names as PIE-Bench spells them).
    private struct RawEntry: Decodable {
        var image_path: String
        var original_prompt: String
        var editing_prompt: String
        var editing_instruction: String?
        var editing_type_id: String
        var blended_word: String?
        var mask: [Int]
    }

    /// Why a mask cannot be decoded (wrapped into a `PIEBenchError` naming the file and entry).
    public struct MaskFault: Error, Equatable {
        public let problem: String
        init(_ problem: String) { self.problem = problem }
    }
}
