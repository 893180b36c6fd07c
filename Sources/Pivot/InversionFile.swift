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

        public init(
            method: InversionMethod? = nil, steps: Int? = nil, guidance: Float? = nil, innerSteps: Int? = nil,
            crop: CropBox? = nil
        ) {
            (self.method, self.steps, self.guidance, self.innerSteps, self.crop) = (method, steps, guidance, innerSteps, crop)
        }

        /// The given settings in the canonical text of `InversionSettings.fields`, by key.
        var fields: [String: String] {
            var s = InversionSettings()
            s.method = method ?? s.method
            s.steps = steps ?? s.steps
            s.guidance = guidance ?? s.guidance
            s.innerSteps = innerSteps ?? s.innerSteps
            s.crop = crop
            let given: Set<String> = Set(
                [
                    method.map { _ in "method" }, steps.map { _ in "steps" }, guidance.map { _ in "guidance" },
                    innerSteps.map { _ in "inner_steps" }, crop.map { _ in "crop" },
                ].compactMap { $0 })
            return Dictionary(uniqueKeysWithValues: s.fields.filter { given.contains($0.key) }.map { ($0.key, $0.value) })
        }
    }
}

extension InversionRecord {
    /// Checks the record against the shapes a model needs, before any work: latents [T+1, C, h, w], null
    /// embeddings [T, tokens, D], offsets like the latents, every value finite, T within the scheduler's
    /// range and equal to the recorded steps. Throws one `InversionError` per first violation, naming the
    /// tensor and both shapes; `file` names the record in messages.
    public func validate(against shape: InversionShape, file: String) throws {
        let t = steps
        let latent = [shape.channels, shape.height, shape.width]
        guard (1...min(shape.maxSteps, Self.maxSteps)).contains(t) else {
            throw InversionError.shape(
                file, tensor: "latents", found: [latents.count] + Array(latents[0].shape.dropFirst()),
                expected:
                    "[T+1, \(latent.map(String.init).joined(separator: ", "))] with T (the steps) between 1 and \(min(shape.maxSteps, Self.maxSteps))"
            )
        }
        if let recorded = metadata["steps"], recorded != String(t) {
            throw InversionError.malformed(file, "the file records \(recorded) steps but holds latents for \(t)")
        }
        func check(_ name: String, _ tensors: [Tensor], _ each: [Int], _ meaning: String) throws {
            let found = [tensors.count] + Array(tensors[0].shape.dropFirst())
            guard tensors.allSatisfy({ Array($0.shape.dropFirst()) == each }) else {
                throw InversionError.shape(
                    file, tensor: name, found: found,
                    expected: "\([tensors.count] + each) (\(meaning)) for this model")
            }
            guard tensors.allSatisfy(\.allFinite) else { throw InversionError.nonFinite(file, tensor: name) }
        }
        try check("latents", latents, latent, "steps + 1, latent channels, latent height, latent width")
        if let nullEmbeddings {
            guard nullEmbeddings.count == t else {
                throw InversionError.shape(
                    file, tensor: "null_embeddings", found: [nullEmbeddings.count] + Array(nullEmbeddings[0].shape.dropFirst()),
                    expected: "[\(t), \(shape.tokens), \(shape.textWidth)] (steps, tokens, text width)")
            }
            try check("null_embeddings", nullEmbeddings, [shape.tokens, shape.textWidth], "steps, tokens, text width")
        }
        if let offsets {
            guard offsets.count == t else {
                throw InversionError.shape(
                    file, tensor: "offsets", found: [offsets.count] + Array(offsets[0].shape.dropFirst()),
                    expected: "\([t] + latent) (steps, latent channels, height, width)")
            }
            try check("offsets", offsets, latent, "steps, latent channels, latent height, latent width")
        }
    }
}

extension StableDiffusion {
    /// The shapes this model needs of an inversion made at its native resolution.
    public var inversionShape: InversionShape {
        InversionShape(
            channels: unet.config.inChannels, height: latentSide, width: latentSide, tokens: tokenizer.maxLength,
            textWidth: textEncoder.config.hiddenSize, maxSteps: scheduler.numTrainTimesteps)
    }

    /// Reads an inversion file for an edit and checks it before any work: its structure and shapes against
    /// this model (`InversionRecord.validate`), then that it was made with this model (fingerprint), the
    /// same textual-inversion embeddings, the source prompt `source`, and the settings in `given` (a
    /// `InversionError.settingConflict` names the first that differs).
    public func readInversion(path: String, source: String, given: InversionSettings.Given = .init()) throws -> InversionRecord {
        let record = try InversionRecord(path: path)
        try record.validate(against: inversionShape, file: path)
        let fingerprint = try modelFingerprint()
        if let f = record.metadata["model_fingerprint"], f != fingerprint {
            throw InversionError.mismatch(path, "another model (fingerprint \(f.prefix(12))…, this model \(fingerprint.prefix(12))…)")
        }
        let recorded = InversionSettings.fieldKeys
        for (key, value) in given.fields.sorted(by: { recorded.firstIndex(of: $0.key) ?? 0 < recorded.firstIndex(of: $1.key) ?? 0 }) {
            // The inner steps only shape null-text inversions.
            if key == "inner_steps" && record.method != .nullText { continue }
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
