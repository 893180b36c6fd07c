import Foundation
import PivotDiffusion
import PivotImage
import PivotLoading
import PivotTensor

/// Where an edit starts: a photo (inverted through the cache), or an inversion already read and validated
/// (`readInversion`, or one a batch made for an earlier row of the same photo).
public enum EditInput {
    /// A photo; `photoHash` (its SHA-256) when the caller already has it.
    case photo(String, photoHash: String? = nil)
    /// An inversion record of this model.
    case inversion(InversionRecord)
}

/// One edit of one photo: the source prompt, one or more target prompts and every setting.
public struct EditRequest {
    public var input: EditInput
    public var source: String
    public var targets: [String]
    public var settings: EditSettings
    /// Where inversions of photos are kept between runs (nil: neither read nor written).
    public var cache: InversionCache?
    /// Also record the source's cross-attention per token and draw it (`EditResult.attentionMaps`).
    public var attentionMaps = false
    /// The size of the images: the photo's own resolution (`PhotoComposite`) or the model's. An edit of an
    /// inversion record, which carries no photo, is at the model's size.
    public var outputSize = OutputSize.photo

    public init(
        input: EditInput, source: String, targets: [String], settings: EditSettings = EditSettings(),
        cache: InversionCache? = InversionCache()
    ) {
        self.input = input
        self.source = source
        self.targets = targets
        self.settings = settings
        self.cache = cache
    }
}

/// What an edit made.
public struct EditResult {
    /// The source's reconstruction (at the photo's size: the photo itself), then one image per target, at `outputSize`.
    public var images: [RGBImage]
    /// The size the images are at.
    public var outputSize: OutputSize
    /// The inversion the edit rendered from.
    public var record: InversionRecord
    /// Where the inversion came from when it was read from the cache.
    public var cachedAt: String?
    /// The source's cross-attention per token, when asked for and recorded.
    public var attentionMaps: RGBImage?
    /// A one-line description of the edit for the images' "parameters" text chunk.
    public var parameters: String
}

/// Progress of an edit.
public enum EditEvent {
    /// The photo is being inverted.
    case inversion(InversionEvent)
    /// Rendering step `step` of `total`.
    case step(Int, total: Int)
    /// Something the user should know that does not stop the edit (a cache that could not be written).
    case warning(String)
}

extension StableDiffusion {
    /// Edits a photo (or an inversion) with Prompt-to-Prompt — the one orchestration `pivot edit` and every
    /// batch row run (docs/ALGORITHMS.md §4–§5):
    /// 1. for a photo, the prompts and edit options are checked before any inversion work (the controller
    ///    is planned for the settings' steps at the native latent size);
    /// 2. the photo is inverted under the source prompt, through `cache` (or the given record is used);
    /// 3. the Prompt-to-Prompt controller (plus the attention-map recorder) renders the source and every
    ///    target from the inversion's x_T under the guidance the inversion was made for.
    ///
    /// Cancellation is cooperative: `onEvent` runs after every step of every phase (inversion and rendering),
    /// and whatever it throws (a front end's `CancellationError`, say) stops the edit there and is rethrown;
    /// a half-made inversion is not cached. A `.warning` event's error is ignored (the next step's stops it).
    public func edit(_ request: EditRequest, onEvent: (EditEvent) throws -> Void = { _ in }) throws -> EditResult {
        let plan = { (steps: Int, latent: LatentGrid) in
            try self.promptToPrompt(
                source: request.source, targets: request.targets, steps: steps, latent: latent,
                options: request.settings.edit)
        }
        let record: InversionRecord, cachedAt: String?
        switch request.input {
        case .photo(let photo, let photoHash):
            _ = try plan(request.settings.inversion.steps, LatentGrid(side: latentSide))  // checks words and options first
            (record, cachedAt) = try inversion(
                photo: photo, prompt: request.source, settings: request.settings.inversion,
                cache: request.cache, photoHash: photoHash,
                onEvent: { try onEvent(.inversion($0)) }, warn: { try? onEvent(.warning($0)) })
        case .inversion(let r):
            (record, cachedAt) = (r, nil)
        }
        let latent = LatentGrid(height: record.latents[0].dim(2), width: record.latents[0].dim(3))
        let controller = try plan(record.steps, latent)
        let guidance = Float(record.metadata["guidance"] ?? "") ?? request.settings.inversion.guidance
        let maps =
            request.attentionMaps
            ? CrossAttentionMaps(prompts: 1 + request.targets.count, latent: latent) : nil
        var images = try render(
            record, source: request.source, targets: request.targets, guidance: guidance,
            controller: maps.map { ControllerChain([$0, controller]) } ?? controller,
            blend: controller.localBlend
        ) { try onEvent(.step($0, total: $1)) }
        var outputSize = OutputSize.model
        if case .photo(let photo, _) = request.input, request.outputSize == .photo {
            // The photo plus the change each target made of the reconstruction (limited to the local-blend
            // mask); in place of the reconstruction, the photo itself (what the edits are relative to).
            let (original, size) = try loadPhoto(photo, crop: request.settings.inversion.crop, sizing: request.settings.inversion.size)
            let composite = PhotoComposite(photo: original, size: size)
            let masks = controller.localBlend?.lastMasks
            images =
                [original]
                + images.dropFirst().enumerated().map { k, edited in
                    composite.applying(
                        edited, minus: images[0], mask: masks.map { (latent.height, latent.width, $0[k]) })
                }
            outputSize = .photo
        }
        let parameters =
            "source: \(request.source); targets: \(request.targets.joined(separator: " | ")); "
            + "method: \(record.method.rawValue); steps: \(record.steps)"
            + (embeddingsUsed.isEmpty ? "" : "; embeddings: " + embeddingsDescription) + "; pivot \(pivotVersion)"
        return EditResult(
            images: images, outputSize: outputSize, record: record, cachedAt: cachedAt,
            attentionMaps: maps.flatMap { attentionMapsImage($0, prompt: request.source) }, parameters: parameters)
    }

    /// The side of the latent a photo is inverted at (the native resolution over the VAE's factor).
    public var latentSide: Int { nativeResolution / vae.config.downsampleFactor }
}
