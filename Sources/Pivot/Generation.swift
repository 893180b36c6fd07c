import Foundation
import PivotIO
import PivotLoading
import PivotDiffusion
import PivotImage
import PivotModels
import PivotTensor
import PivotText

/// What to generate: diffusers' `StableDiffusionPipeline(prompt, negative_prompt, num_inference_steps,
/// guidance_scale, generator=torch.Generator().manual_seed(seed), height, width)`.
public struct GenerationRequest: Sendable {
    public var prompt: String
    public var negativePrompt = ""
    public var steps = 50
    public var guidance: Float = 7.5
    public var seed: UInt64 = 0
    /// Image size in pixels; nil means the model's native resolution.
    public var width: Int?
    public var height: Int?

    public init(prompt: String) { self.prompt = prompt }
}

/// The networks, tokenizer and scheduler of one model folder, loaded once.
public final class StableDiffusion {
    public let model: ModelFolder
    public let tokenizer: CLIPTokenizer
    public let textEncoder: CLIPTextModel
    public let unet: UNet
    public let vae: VAE
    public let scheduler: DDIMScheduler
    /// The arithmetic of every network pass (fp32 by default; see `PrecisionPlan`). It shapes inversions,
    /// so it is part of their cache key and metadata.
    public var precision: PrecisionPlan = .fp32 {
        didSet { precision.apply(to: self) }
    }
    /// Textual-inversion embeddings added with `addEmbeddings`, as "token=sha256".
    public internal(set) var embeddingsUsed: [String] = []
    private var fingerprint: String?

    /// Loads everything from a diffusers folder (strictly; see `ModelFolder`); `scheduler` replaces the
    /// folder's scheduler settings when given.
    public init(model: ModelFolder, scheduler schedulerConfig: SchedulerConfig? = nil) throws {
        self.model = model
        tokenizer = try model.tokenizer()
        textEncoder = try model.loadTextEncoder()
        unet = try model.loadUNet()
        vae = try model.loadVAE()
        scheduler = try DDIMScheduler(config: schedulerConfig ?? model.schedulerConfig())
        guard tokenizer.vocabularySize <= textEncoder.config.vocabSize else {
            throw ModelError.invalidInput(
                "\(model.display("tokenizer")): \(tokenizer.vocabularySize) tokens for a text encoder of \(textEncoder.config.vocabSize)")
        }
    }

    /// The model folder's fingerprint (see `ModelFolder.fingerprint`), computed once.
    public func modelFingerprint() throws -> String {
        if let fingerprint { return fingerprint }
        let f = try model.fingerprint()
        fingerprint = f
        return f
    }

    /// Native resolution: UNet sample size × VAE factor.
    public var nativeResolution: Int { unet.config.sampleSize * vae.config.downsampleFactor }
    /// Image sides must be multiples of this.
    public var sizeMultiple: Int { vae.config.downsampleFactor * unet.config.downsampleFactor }

    /// The text encoder's `last_hidden_state` [1, 77, D] for a prompt, and its tokenization.
    public func encode(_ prompt: String) throws -> (embedding: Tensor, tokens: TokenizedPrompt) {
        let t = tokenizer.encode(tokenizer.expandingMultiVectorTokens(prompt))
        return (try textEncoder(ids: t.ids, batch: 1), t)
    }

    /// Whether the networks render an image of `width` × `height` pixels: positive sides, multiples of
    /// `sizeMultiple`, at most 4096 (`sizeRule` says so in words).
    public func renders(width: Int, height: Int) -> Bool {
        width > 0 && height > 0 && width % sizeMultiple == 0 && height % sizeMultiple == 0 && width <= 4096 && height <= 4096
    }

    /// The rule `renders(width:height:)` checks, for messages.
    public var sizeRule: String { "sides must be positive multiples of \(sizeMultiple), at most 4096" }

    /// Checks a request before any work: step count and image size.
    public func validate(_ r: GenerationRequest) throws -> (width: Int, height: Int) {
        let w = r.width ?? nativeResolution, h = r.height ?? nativeResolution
        guard (1...scheduler.numTrainTimesteps).contains(r.steps) else {
            throw SettingError("steps", problem: "must be between 1 and \(scheduler.numTrainTimesteps), got \(r.steps)")
        }
        guard renders(width: w, height: h) else { throw SettingError("size", problem: "\(w)x\(h): \(sizeRule)") }
        guard r.guidance.isFinite else { throw SettingError("guidance", problem: "must be a finite number") }
        return (w, h)
    }

    /// Text to image, as diffusers' pipeline with a DDIM scheduler: initial latents from PyTorch's CPU
    /// generator (`randn([1, C, h/f, w/f])`, `init_noise_sigma` = 1), guided DDIM, VAE decode of
    /// latents / scaling_factor, `(x / 2 + 0.5).clamp(0, 1)`.
    public func generate(_ r: GenerationRequest, onStep: (Int, Int) -> Void = { _, _ in }) throws -> RGBImage {
        let (w, h) = try validate(r)
        let cond = try Profiler.measure("network") { try encode(r.prompt).embedding }
        let uncond = r.guidance > 1 ? try Profiler.measure("network") { try encode(r.negativePrompt).embedding } : cond
        let f = vae.config.downsampleFactor
        var rng = TorchGenerator(seed: r.seed)
        let latents = rng.randn([1, unet.config.inChannels, h / f, w / f])
        let loop = try DenoisingLoop(unet: unet, scheduler: scheduler, steps: r.steps, guidance: r.guidance)
        let total = loop.timesteps.count
        let z = try loop.run(start: latents, prompts: [cond], uncond: { _ in uncond }) { i, _ in onStep(i, total) }
        let latent = scale(z, Float(1 / vae.config.scalingFactor))
        let image = try Profiler.measure("network") { try vae.decode(latent) }
        try requireFinite(image, "VAE decoding", tensor: "the decoded image")
        return fromTensor(image, index: 0)
    }

    /// The generation parameters in the "parameters" text chunk layout other SD tools write.
    public func parametersText(_ r: GenerationRequest, width: Int, height: Int) -> String {
        var s = r.prompt + "\n"
        if !r.negativePrompt.isEmpty { s += "Negative prompt: \(r.negativePrompt)\n" }
        s += "Steps: \(r.steps), Sampler: DDIM, CFG scale: \(r.guidance), Seed: \(r.seed), Size: \(width)x\(height), "
        s += "Model: \((model.path as NSString).lastPathComponent), Generator: pivot \(pivotVersion)"
        if !embeddingsUsed.isEmpty { s += ", Embeddings: \(embeddingsDescription)" }
        return s
    }
}

extension StableDiffusion {
    /// The pixel size a photo of `width` × `height` (after any crop box) is inverted at: for `.auto` its
    /// aspect ratio at about the native area (`ImageSize.fitted`, sides multiples of `sizeMultiple`), for
    /// `.square` the native square, for `.exact` that size (checked: a `SettingError` names `size`).
    public func photoSize(width: Int, height: Int, sizing: PhotoSizing) throws -> ImageSize {
        switch sizing {
        case .square: return ImageSize(width: nativeResolution, height: nativeResolution)
        case .auto:
            return ImageSize(width: width, height: height).fitted(area: nativeResolution * nativeResolution, multiple: sizeMultiple)
        case .exact(let s):
            guard renders(width: s.width, height: s.height) else { throw SettingError("size", problem: "\(s): \(sizeRule)") }
            return s
        }
    }

    /// A photo (after an optional crop box) as pivot inverts it: its pixels and the size it is inverted at.
    public func loadPhoto(_ path: String, crop: CropBox? = nil, sizing: PhotoSizing = .auto) throws -> (image: RGBImage, size: ImageSize) {
        let image = try RGBImage(contentsOf: path)
        let cropped = try crop.map { try image.cropped(to: $0) } ?? image
        return (cropped, try photoSize(width: cropped.width, height: cropped.height, sizing: sizing))
    }

    /// The scaled latent z0 = mean(E(2x − 1)) · scaling_factor [1, C, H/f, W/f] of a photo: after an optional
    /// crop box, centre-cropped to the aspect ratio of its inversion size (`photoSize`; a square for
    /// `.square`, the reference's `load_512`) and resized to it (docs/ALGORITHMS.md §4).
    public func encodePhoto(_ path: String, crop: CropBox? = nil, sizing: PhotoSizing = .auto) throws -> Tensor {
        let (photo, size) = try loadPhoto(path, crop: crop, sizing: sizing)
        let image = try preprocess(photo, size: (size.width, size.height))
        let mean = try vae.encode(toTensor(image))
        try requireFinite(mean, "VAE encoding", tensor: "the photo's latent")
        return scale(mean, Float(vae.config.scalingFactor))
    }
}
