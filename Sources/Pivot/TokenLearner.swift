import Foundation
import PivotDiffusion
import PivotFormats
import PivotImage
import PivotIO
import PivotModels
import PivotTensor

/// One training sample of textual inversion: what diffusers' `textual_inversion.py` draws per batch row.
public struct LearnSample: Sendable {
    /// Scaled latents z0 [1, C, h, w] (a draw from the photo's VAE posterior × scaling factor).
    public var latents: Tensor
    /// The noise ε [1, C, h, w].
    public var noise: Tensor
    /// The training timestep, in 0 ..< the scheduler's training timesteps.
    public var timestep: Int
    /// The prompt, with the token in it (a template filled in).
    public var prompt: String

    public init(latents: Tensor, noise: Tensor, timestep: Int, prompt: String) {
        self.latents = latents
        self.noise = noise
        self.timestep = timestep
        self.prompt = prompt
    }
}

/// A photo a token learns from: its VAE posterior, and that of its mirror image, computed once.
struct LearnPhoto {
    let path: String
    let sha256: String
    let size: ImageSize
    /// Mean and standard deviation [1, C, h, w] of the posterior (unscaled), plain and mirrored.
    let plain: (mean: Tensor, std: Tensor)
    let mirrored: (mean: Tensor, std: Tensor)
}

/// Textual inversion (Gal et al. 2022), as diffusers' `examples/textual_inversion/textual_inversion.py`
/// computes it: a new token whose vectors start as the init word's embedding and are the only thing trained,
/// with AdamW on the LDM loss ‖target − ε_θ(√ᾱ_t·z0 + √(1−ᾱ_t)·ε, t, c(prompt))‖² (mean over elements; the
/// target is ε, or v = √ᾱ_t·ε − √(1−ᾱ_t)·z0 for v-prediction models), t uniform over the training timesteps.
/// docs/ALGORITHMS.md §7 lists where it differs: every row of the table but the token's stays bit-identical
/// because only those rows are parameters (the reference trains the whole table and restores the other rows
/// after each step: the same vectors); the photos' posteriors are computed once (plain and mirrored) and
/// sampled per step; a batch runs its rows one after another (the same mean loss and gradient); every random
/// draw of sample k comes from a generator seeded by (seed, k), so a resumed run draws what an uninterrupted
/// one would.
public final class TokenLearner {
    public let sd: StableDiffusion
    public let settings: LearnSettings
    /// The registered tokens: `token`, `token_1`, …
    public let tokens: [String]
    /// Their ids in the tokenizer and rows of the text encoder's table.
    public let tokenIds: [Int]
    /// The vectors being learnt [n, D].
    public private(set) var vectors: Tensor
    /// Optimiser steps done.
    public private(set) var step = 0
    /// The mean loss of every step done.
    public private(set) var losses: [Float] = []
    /// Validation losses so far.
    public private(set) var validations: [(step: Int, loss: Float)] = []
    /// The vectors of the best validation loss so far.
    public private(set) var best: (step: Int, loss: Float, vectors: Tensor)?
    /// Photos that could not be read, with why (they are left out).
    public let skipped: [String]
    var optimizer: Adam
    let photos: [LearnPhoto]
    let templates: [String]

    /// The photos' paths and sizes, in the order they were given.
    public var photoSizes: [(path: String, size: ImageSize)] { photos.map { ($0.path, $0.size) } }

    /// Registers the token on `sd` (tokenizer and text encoder), initialised from the init word, and encodes
    /// the photos (`onPhoto(done, total)` after each). Unreadable photos are skipped (see `skipped`).
    /// - Throws: `SettingError` for bad settings, `LearnError` for a token already in the vocabulary, an
    ///   init word that is not one token, no readable photo or a model without a training target.
    public convenience init(sd: StableDiffusion, photos paths: [String], settings: LearnSettings, onPhoto: (Int, Int) -> Void = { _, _ in }) throws {
        try self.init(sd: sd, settings: settings) {
            // The photos before anything is registered: nothing changes if none can be read.
            var read: [LearnPhoto] = [], skipped: [String] = []
            for (i, path) in paths.enumerated() {
                do {
                    read.append(try Self.encode(sd: sd, path: path, sizing: settings.size))
                } catch {
                    skipped.append("\(path): \(error)")
                }
                onPhoto(i + 1, paths.count)
            }
            guard !read.isEmpty else { throw LearnError.noPhotos(skipped.first ?? "none given") }
            return (read, skipped)
        }
    }

    /// A learner on one synthetic photo of `size` pixels (a random posterior), for benchmarks: its steps do
    /// the work of real ones.
    public static func benchmark(sd: StableDiffusion, settings: LearnSettings, size: ImageSize) throws -> TokenLearner {
        try TokenLearner(sd: sd, settings: settings) {
            let f = sd.vae.config.downsampleFactor
            var rng = TorchGenerator(seed: 1)
            let shape = [1, sd.vae.config.latentChannels, size.height / f, size.width / f]
            let posterior = (mean: rng.randn(shape), std: mapElements(rng.rand(shape)) { 0.01 * $0 })
            return ([LearnPhoto(path: "synthetic", sha256: "", size: size, plain: posterior, mirrored: posterior)], [])
        }
    }

    init(sd: StableDiffusion, settings: LearnSettings, photos source: () throws -> ([LearnPhoto], [String])) throws {
        try settings.validate()
        self.sd = sd
        self.settings = settings
        let prediction = sd.scheduler.config.predictionType
        guard prediction == .epsilon || prediction == .vPrediction else { throw LearnError.predictionType(prediction.rawValue) }
        templates = settings.templates.templates
        guard !templates.isEmpty else { throw LearnError.templates("templates", "the list is empty") }
        let names = [settings.token] + (1..<settings.vectors).map { "\(settings.token)_\($0)" }
        // In the vocabulary as spelt ("<|endoftext|>", an added token) or as a word ("cat" is "cat</w>").
        for name in names where sd.tokenizer.id(for: name) != nil || sd.tokenizer.contentIds(name).count == 1 {
            throw LearnError.tokenInVocabulary(name)
        }
        let initIds = sd.tokenizer.contentIds(settings.initWord)
        guard initIds.count == 1 else { throw LearnError.initWord(settings.initWord, tokens: initIds.count) }
        let initVector = try sd.textEncoder.tokenEmbedding(row: initIds[0])  // [1, D]

        (photos, skipped) = try source()

        var ids: [Int] = []
        for name in names { ids.append(try sd.tokenizer.addToken(name)) }
        tokens = names
        tokenIds = ids
        vectors = repeatBatch(initVector, settings.vectors)  // [n, D]
        optimizer = Adam(count: vectors.count, learningRate: settings.baseLearningRate, weightDecay: settings.weightDecay)
        try installVectors()
    }

    static func encode(sd: StableDiffusion, path: String, sizing: PhotoSizing) throws -> LearnPhoto {
        let (photo, size) = try sd.loadPhoto(path, sizing: sizing)
        let image = try preprocess(photo, size: (size.width, size.height))
        let plain = try sd.vae.posterior(toTensor(image))  // [1, C, h, w] each
        let mirrored = try sd.vae.posterior(toTensor(image.oriented(2)))
        return LearnPhoto(path: path, sha256: try SHA256.hexDigest(ofFile: path), size: size, plain: plain, mirrored: mirrored)
    }

    /// Writes the current vectors into the text encoder's table (whenever they change: at the start, after each
    /// update and on restore).
    func installVectors() throws {
        try sd.textEncoder.setTokenEmbeddings(startingAt: tokenIds[0], vectors)
    }

    /// A template filled in with the token (a multi-vector token expands to all its tokens).
    func prompt(template: String) -> String {
        template.replacingOccurrences(of: "{}", with: settings.token)
    }

    // MARK: the loss

    /// The loss of one sample and its gradient with respect to the token's vectors [n, D], for the current
    /// vectors (the reference's forward and backward for one batch row, without the optimiser step).
    public func lossAndGradient(_ s: LearnSample) throws -> (loss: Float, gradient: Tensor) {
        let tokenizer = sd.tokenizer
        let ids = tokenizer.encode(tokenizer.expandingMultiVectorTokens(s.prompt)).ids
        let scheduler = sd.scheduler
        guard (0..<scheduler.numTrainTimesteps).contains(s.timestep) else {
            throw SettingError("timestep", problem: "must be in 0..<\(scheduler.numTrainTimesteps), got \(s.timestep)")
        }
        let noisy = scheduler.addNoise(original: s.latents, noise: s.noise, timestep: s.timestep)  // [1, C, h, w]
        let target = try trainingTarget(s)
        var loss = 0.0
        let (_, gradEmbeddings) = try sd.textEncoder.vjp(ids: ids, batch: 1) { context in  // context [1, 77, D]
            try sd.unet.vjp(noisy, timesteps: [Float(s.timestep)], context: context) { prediction in
                let (l, g) = meanSquaredError(prediction, target)
                loss = l
                return g
            }.gradContext
        }
        // A token row's gradient is the sum over the positions it fills.
        let d = vectors.dim(1)
        let gradient = Tensor(zeros: vectors.shape)  // [n, D]
        for (position, id) in ids.enumerated() {
            guard let row = tokenIds.firstIndex(of: id) else { continue }
            let src = gradEmbeddings.data + position * d, dst = gradient.data + row * d
            for i in 0..<d { dst[i] += src[i] }
        }
        return (Float(loss), gradient)
    }

    /// ε, or v = √ᾱ·ε − √(1−ᾱ)·z0 (diffusers' `get_velocity`).
    func trainingTarget(_ s: LearnSample) throws -> Tensor {
        switch sd.scheduler.config.predictionType {
        case .epsilon: return s.noise
        case .vPrediction:
            let a = sd.scheduler.alphaCumprod(at: s.timestep)
            let sa = a.squareRoot(), sb = (1 - a).squareRoot()
            return zipMap(s.noise, s.latents) { n, z in sa * n - sb * z }
        case let other: throw LearnError.predictionType(other.rawValue)
        }
    }

    /// The forward loss only (no tape), for validation.
    func loss(_ s: LearnSample) throws -> Float {
        let tokenizer = sd.tokenizer
        let ids = tokenizer.encode(tokenizer.expandingMultiVectorTokens(s.prompt)).ids
        let context = try sd.textEncoder(ids: ids, batch: 1)  // [1, 77, D]
        let noisy = sd.scheduler.addNoise(original: s.latents, noise: s.noise, timestep: s.timestep)
        let prediction = try sd.unet(noisy, timesteps: [Float(s.timestep)], context: context)
        return Float(meanSquaredError(prediction, try trainingTarget(s)).loss)
    }

    // MARK: sampling

    /// Sample `index` of the run (step k's rows are k·B·A ..< (k+1)·B·A): the photo from a per-epoch
    /// shuffle, then from a generator seeded by (seed, index): a flip, a template, a timestep, the posterior
    /// draw and the noise.
    public func sample(_ index: Int) -> LearnSample {
        let n = photos.count
        let order = Self.permutation(n, seed: mix(settings.seed, 0x70_686f_746f, UInt64(index / n)))
        let photo = photos[order[index % n]]
        var rng = TorchGenerator(seed: mix(settings.seed, 0x73_616d_706c, UInt64(index)))
        let flip = rng.rand(count: 1)[0] < settings.flipProbability
        let template = templates[Int(rng.random64() % UInt64(templates.count))]
        let timestep = Int(rng.random64() % UInt64(sd.scheduler.numTrainTimesteps))
        let posterior = flip ? photo.mirrored : photo.plain
        let draw = rng.randn(posterior.mean.shape)  // [1, C, h, w]
        let scaling = Float(sd.vae.config.scalingFactor)
        let latents = Tensor(uninitialized: posterior.mean.shape)
        for i in 0..<latents.count { latents.data[i] = (posterior.mean.data[i] + posterior.std.data[i] * draw.data[i]) * scaling }
        return LearnSample(latents: latents, noise: rng.randn(posterior.mean.shape), timestep: timestep, prompt: prompt(template: template))
    }

    /// The fixed validation inputs: each photo (plain, posterior mean) at five timesteps spread over the
    /// training range, with fixed noise and the templates in turn.
    func validationSamples() -> [LearnSample] {
        let scaling = Float(sd.vae.config.scalingFactor), t = sd.scheduler.numTrainTimesteps
        var out: [LearnSample] = []
        for (p, photo) in photos.enumerated() {
            for j in 0..<5 {
                let k = p * 5 + j
                var rng = TorchGenerator(seed: mix(settings.seed, 0x76_616c_6964, UInt64(k)))
                out.append(
                    LearnSample(
                        latents: scale(photo.plain.mean, scaling), noise: rng.randn(photo.plain.mean.shape),
                        timestep: min(t - 1, (2 * j + 1) * t / 10), prompt: prompt(template: templates[k % templates.count])))
            }
        }
        return out
    }

    /// A permutation of 0..<n (Fisher–Yates on a seeded generator).
    static func permutation(_ n: Int, seed: UInt64) -> [Int] {
        var rng = TorchGenerator(seed: seed), order = Array(0..<n)
        for i in stride(from: n - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.random64() % UInt64(i + 1))) }
        return order
    }

    // MARK: steps

    /// One optimiser step: batch × accumulate samples, their mean gradient, one AdamW update at the
    /// scheduled learning rate. Returns the step's mean loss.
    @discardableResult
    public func trainStep() throws -> Float {
        let rows = settings.batch * settings.accumulate
        let gradient = Tensor(zeros: vectors.shape)  // [n, D]
        var loss = 0.0
        for r in 0..<rows {
            let (l, g) = try lossAndGradient(sample(step * rows + r))
            loss += Double(l)
            for i in 0..<g.count { gradient.data[i] += g.data[i] / Float(rows) }
        }
        guard gradient.allFinite, loss.isFinite else {
            throw ModelError.invalidInput("the loss or its gradient is not finite at step \(step + 1); lower the learning rate")
        }
        update(gradient: gradient)
        losses.append(Float(loss / Double(rows)))
        return losses[losses.count - 1]
    }

    /// One AdamW update of the vectors with `gradient` [n, D] at the scheduled learning rate.
    public func update(gradient: Tensor) {
        optimizer.learningRate = settings.learningRate(afterSteps: step)
        optimizer.update(vectors, gradient: gradient)
        step += 1
        try? installVectors()
    }

    /// Runs the validation and records it; returns whether training should stop (`patience` validations in
    /// a row without a new best).
    public func validate() throws -> Bool {
        let samples = validationSamples()
        var total = 0.0
        for s in samples { total += Double(try loss(s)) }
        let value = Float(total / Double(max(samples.count, 1)))
        validations.append((step, value))
        if best == nil || value < best!.loss { best = (step, value, vectors.copy()) }
        guard settings.patience > 0, let best else { return false }
        return validations.filter { $0.step > best.step }.count >= settings.patience
    }

    /// The mean loss of the last `window` steps (what progress shows).
    public func smoothedLoss(window: Int = 50) -> Float {
        let tail = losses.suffix(window)
        return tail.isEmpty ? .nan : tail.reduce(0, +) / Float(tail.count)
    }

    // MARK: state (see LearnState.swift)

    /// Continues from a checkpoint; false (nothing changed) if its shapes do not fit this learner.
    func restore(_ state: LearnState) -> Bool {
        guard state.vectors.shape == vectors.shape, optimizer.restore(m: state.m, v: state.v, steps: state.adamSteps) else { return false }
        vectors = state.vectors.copy()
        step = state.step
        losses = state.losses
        validations = state.validations
        best = state.best.map { ($0.step, $0.loss, $0.vectors.copy()) }
        try? installVectors()
        return true
    }
}

/// mean((a − b)²) in double, and its gradient 2(a − b)/N with respect to `a` (torch's `mse_loss` backward).
func meanSquaredError(_ a: Tensor, _ b: Tensor) -> (loss: Double, gradient: Tensor) {
    let n = a.count, norm = Float(2 / Double(max(n, 1)))
    let g = Tensor(uninitialized: a.shape)
    var sum = 0.0
    for i in 0..<n {
        let d = a.data[i] - b.data[i]
        sum += Double(d) * Double(d)
        g.data[i] = norm * d
    }
    return (sum / Double(max(n, 1)), g)
}

/// A 64-bit seed from a seed, a stream and an index (SplitMix64 finalisers), so that streams never overlap.
func mix(_ seed: UInt64, _ stream: UInt64, _ index: UInt64) -> UInt64 {
    func splitmix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    return splitmix(splitmix(splitmix(seed) ^ stream) ^ index) >> 1  // torch seeds are < 2^63
}
