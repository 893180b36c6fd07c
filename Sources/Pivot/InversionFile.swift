import Foundation
import PivotDiffusion
import PivotImage
import PivotIO
import PivotLoading
import PivotTensor

/// The shapes an inversion must have to be rendered by a model: latents [T+1, C, h, w], null embeddings
/// [T, tokens, D], offsets [T, C, h, w].
public struct InversionShape: Sendable, Equatable {
    /// C: the UNet's input (latent) channels.
    public var channels: Int
    /// h, w: the latent's size.
    public var height: Int
    public var width: Int
    /// The prompt length the text encoder produces (77 for CLIP).
    public var tokens: Int
    /// D: the text encoder's width.
    public var textWidth: Int
    /// The most steps the scheduler allows (its training timesteps).
    public var maxSteps: Int

    public init(channels: Int, height: Int, width: Int, tokens: Int, textWidth: Int, maxSteps: Int) {
        (self.channels, self.height, self.width, self.tokens, self.textWidth, self.maxSteps) =
            (channels, height, width, tokens, textWidth, maxSteps)
    }
}

extension InversionSettings {
    /// The inversion settings a user gave explicitly (nil: not given), to be checked against an inversion
    /// file's record.
    public struct Given: Sendable {
        public var method: InversionMethod?
        public var steps: Int?
        public var guidance: Float?
        public var innerSteps: Int?
        public var crop: CropBox?
        public var size: PhotoSizing?

        public init(
            method: InversionMethod? = nil, steps: Int? = nil, guidance: Float? = nil, innerSteps: Int? = nil,
            crop: CropBox? = nil, size: PhotoSizing? = nil
        ) {
            (self.method, self.steps, self.guidance, self.innerSteps, self.crop, self.size) = (method, steps, guidance, innerSteps, crop, size)
        }

        /// The given settings in the canonical text of `InversionSettings.fields`, by key.
        var fields: [String: String] {
            var s = InversionSettings()
            s.method = method ?? s.method
            s.steps = steps ?? s.steps
            s.guidance = guidance ?? s.guidance
            s.innerSteps = innerSteps ?? s.innerSteps
            s.crop = crop
            s.size = size ?? s.size
            let given: Set<String> = Set(
                [
                    method.map { _ in "method" }, steps.map { _ in "steps" }, guidance.map { _ in "guidance" },
                    innerSteps.map { _ in "inner_steps" }, crop.map { _ in "crop" }, size.map { _ in "size" },
                ].compactMap { $0 })
            return Dictionary(uniqueKeysWithValues: s.fields.filter { given.contains($0.key) }.map { ($0.key, $0.value) })
        }
    }
}

extension InversionRecord {
    /// Checks the record against the shapes a model needs, before any work: latents [T+1, C, h, w], null
    /// embeddings [T, tokens, D], offsets and noise maps like the latents, every value finite, T within the scheduler's
    /// range and equal to the recorded steps. Throws one `InversionError` per first violation, naming the
    /// tensor and both shapes; `file` names the record in messages.
    public func validate(against shape: InversionShape, file: String) throws {
        let t = steps
        let latent = [shape.channels, shape.height, shape.width]
        let most = min(shape.maxSteps, Self.maxSteps)
        // [N] + the per-step shape of `tensors` (the leading batch dimension of 1 dropped).
        func stacked(_ tensors: [Tensor]) -> [Int] { [tensors.count] + (tensors.first.map { Array($0.shape.dropFirst()) } ?? []) }
        guard (1...most).contains(t) else {
            throw InversionError.shape(
                file, tensor: "latents", found: stacked(latents),
                expected: "[T+1, \(latent.map(String.init).joined(separator: ", "))] with T (the steps) between 1 and \(most)")
        }
        if let recorded = metadata["steps"], recorded != String(t) {
            let needed =
                Int(recorded).flatMap { (0..<Int(Int32.max)).contains($0) ? "\([$0 + 1] + latent)" : nil }
                ?? "[steps+1, \(latent.map(String.init).joined(separator: ", "))]"
            throw InversionError.shape(
                file, tensor: "latents", found: stacked(latents),
                expected: "\(needed) (the recorded steps \(recorded) + 1, latent channels, latent height, latent width)")
        }
        func check(_ name: String, _ tensors: [Tensor], count: Int, _ each: [Int], _ meaning: String) throws {
            let fits = { (x: Tensor) in x.rank == each.count + 1 && x.dim(0) == 1 && Array(x.shape.dropFirst()) == each }
            if tensors.count != count || !tensors.allSatisfy(fits) {
                // The shape found: of the first step that does not fit (or of the first, if only the count is wrong).
                let odd = tensors.first { !fits($0) } ?? tensors.first
                let found = [tensors.count] + (odd.map { Array($0.shape.dropFirst()) } ?? [])
                throw InversionError.shape(file, tensor: name, found: found, expected: "\([count] + each) (\(meaning)) for this model")
            }
            if let i = tensors.firstIndex(where: { !$0.allFinite }) {
                let value = tensors[i].scalars.first { !$0.isFinite } ?? .nan
                throw InversionError.nonFinite(file, tensor: name, shape: stacked(tensors), index: i, value: value)
            }
        }
        try check("latents", latents, count: t + 1, latent, "steps + 1, latent channels, latent height, latent width")
        if method == .nullText && nullEmbeddings == nil {
            throw InversionError.missing(
                file, tensor: "null_embeddings", method: method, expected: "[\(t), \(shape.tokens), \(shape.textWidth)] (steps, tokens, text width)")
        }
        if method.usesOffsets && offsets == nil {
            throw InversionError.missing(
                file, tensor: "offsets", method: method, expected: "\([t] + latent) (steps, latent channels, latent height, latent width)")
        }
        if let nullEmbeddings {
            try check("null_embeddings", nullEmbeddings, count: t, [shape.tokens, shape.textWidth], "steps, tokens, text width")
        }
        if method == .ddpm && noiseMaps == nil {
            throw InversionError.missing(
                file, tensor: "noise_maps", method: method, expected: "\([t] + latent) (steps, latent channels, latent height, latent width)")
        }
        if let offsets {
            try check("offsets", offsets, count: t, latent, "steps, latent channels, latent height, latent width")
        }
        if let noiseMaps {
            try check("noise_maps", noiseMaps, count: t, latent, "steps, latent channels, latent height, latent width")
        }
    }
}

extension StableDiffusion {
    /// The shapes this model needs of an inversion made at `size` pixels (the native square by default).
    public func inversionShape(size: ImageSize? = nil) -> InversionShape {
        let f = vae.config.downsampleFactor
        let s = size ?? ImageSize(width: nativeResolution, height: nativeResolution)
        return InversionShape(
            channels: unet.config.inChannels, height: s.height / f, width: s.width / f, tokens: tokenizer.maxLength,
            textWidth: textEncoder.config.hiddenSize, maxSteps: scheduler.numTrainTimesteps)
    }

    /// The pixel size an inversion file says it was made at: its recorded "width" and "height" when they
    /// are valid for this model, else (files of earlier versions) the native square.
    func recordedSize(of record: InversionRecord, file: String) throws -> ImageSize {
        guard let w = record.metadata["width"], let h = record.metadata["height"] else {
            return ImageSize(width: nativeResolution, height: nativeResolution)
        }
        guard let width = Int(w), let height = Int(h), renders(width: width, height: height) else {
            throw InversionError.malformed(file, "the recorded size \(w)x\(h) is not a size this model renders (\(sizeRule))")
        }
        return ImageSize(width: width, height: height)
    }

    /// Reads an inversion file for an edit and checks it before any work: its structure and shapes against
    /// this model (`InversionRecord.validate`), then that it was made with this model (fingerprint), the
    /// same textual-inversion embeddings, the source prompt `source`, and the settings in `given` (a
    /// `InversionError.settingConflict` names the first that differs).
    public func readInversion(path: String, source: String, given: InversionSettings.Given = .init()) throws -> InversionRecord {
        let record = try InversionRecord(path: path)
        try record.validate(against: inversionShape(size: try recordedSize(of: record, file: path)), file: path)
        let fingerprint = try modelFingerprint()
        if let f = record.metadata["model_fingerprint"], f != fingerprint {
            throw InversionError.mismatch(path, "another model (fingerprint \(f.prefix(12))…, this model \(fingerprint.prefix(12))…)")
        }
        let fields = given.fields
        for key in InversionSettings.fieldKeys {
            // The inner steps only shape null-text and fixed-point inversions.
            guard let value = fields[key], key != "inner_steps" || record.method.usesInnerSteps else { continue }
            let had = key == "method" ? record.method.rawValue : key == "steps" ? String(record.steps) : record.metadata[key]
            if let had, had != value { throw InversionError.settingConflict(path, setting: key, given: value, recorded: had) }
        }
        if let used = record.metadata["embeddings"], used != embeddingsDescription {
            throw InversionError.mismatch(
                path,
                used.isEmpty
                    ? "no textual-inversion embeddings, but this edit loads some"
                    : "other textual-inversion embeddings (\(used))")
        }
        if let p = record.metadata["prompt"], p != source {
            throw InversionError.mismatch(path, "the source prompt \"\(p)\", not \"\(source)\"")
        }
        return record
    }
}
