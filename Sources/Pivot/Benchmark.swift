import Foundation
import PivotIO
import PivotImage
import PivotLoading
import PivotModels
import PivotTensor

/// Times pivot's networks on random inputs at a given image size (the user-facing `pivot bench`).
public enum Benchmark {
    /// One network's timing.
    public struct Result: Codable, Sendable {
        public var network: String
        public var impl = "pivot"
        public var medianSeconds: Double
        public var times: [Double]
        public var gflop: Double
        public var gflops: Double
        public var size: Int
        public var batch: Int
        public var runs: Int
        /// learn-step under a non-fp32 plan: how its token gradient compares with fp32's.
        public var gradientCheck: GradientCheck?

        enum CodingKeys: String, CodingKey {
            case network, impl, times, gflop, gflops, size, batch, runs
            case medianSeconds = "median_s"
            case gradientCheck = "gradient_check"
        }
    }

    /// The token gradient of one sample in the plan's precision against fp32's, beside how much two samples'
    /// fp32 gradients differ (the noise of the training itself).
    public struct GradientCheck: Codable, Sendable {
        /// cos(g_plan, g_fp32) for the same sample.
        public var cosine: Double
        /// |g_plan − g_fp32| / |g_fp32|.
        public var relativeError: Double
        /// cos(g_fp32(sample 0), g_fp32(sample 1)): two training samples.
        public var cosineBetweenSamples: Double
        /// The loss in the plan's precision and in fp32.
        public var loss: Float
        public var lossFP32: Float

        enum CodingKeys: String, CodingKey {
            case cosine, loss
            case relativeError = "relative_error"
            case cosineBetweenSamples = "cosine_between_samples"
            case lossFP32 = "loss_fp32"
        }
    }

    /// Runs `network` once to warm up, then `runs` times; reports the median and effective GFLOP/s
    /// (GEMM work only: convolutions, linear layers and attention).
    public static func run(
        _ network: Component, networks: LoadedNetworks, size: Int, batch: Int, runs: Int,
        progress: (String) -> Void = { _ in }
    ) throws -> Result {
        let work = try workload(network, networks: networks, size: size, batch: batch)
        progress("\(network.rawValue): warm-up")
        let f0 = BLAS.flops
        _ = try work()
        let flop = Double(BLAS.flops - f0)
        if Profiler.enabled { _ = Profiler.report() }  // profiles show the timed runs, not one-time weight preparation
        let times = try timed(runs, network.rawValue, progress) { _ = try work() }
        let median = times.sorted()[times.count / 2]
        return Result(
            network: network.rawValue, medianSeconds: median, times: times, gflop: flop / 1e9,
            gflops: flop / 1e9 / median, size: size, batch: batch, runs: runs)
    }

    /// Times one textual-inversion step (`TokenLearner.trainStep`: text encoder and UNet forward and
    /// backward to the token, one AdamW update) on a synthetic `size`² photo, after one warm-up step;
    /// network "learn-step". The pipeline's precision plan applies as `learn` would use it.
    public static func learnStep(sd: StableDiffusion, size: Int, runs: Int, progress: (String) -> Void = { _ in }) throws -> Result {
        var settings = LearnSettings(token: "<pivot-bench>", initWord: "a")  // one token in every CLIP vocabulary
        settings.steps = runs + 1
        let plan = sd.precision
        sd.precision = plan.learning
        defer { sd.precision = plan }
        let learner = try TokenLearner.benchmark(sd: sd, settings: settings, size: ImageSize(width: size, height: size))
        progress("learn-step: warm-up")
        let f0 = BLAS.flops
        try learner.trainStep()
        let flop = Double(BLAS.flops - f0)
        let times = try timed(runs, "learn-step", progress) { try learner.trainStep() }
        let median = times.sorted()[times.count / 2]
        var result = Result(
            network: "learn-step", medianSeconds: median, times: times, gflop: flop / 1e9, gflops: flop / 1e9 / median, size: size,
            batch: 1, runs: runs)
        if sd.precision.networks.gradient != .fp32 {
            progress("learn-step: gradient against fp32")
            let (loss, g) = try learner.lossAndGradient(learner.sample(0))
            sd.precision = .fp32
            let (loss32, g32) = try learner.lossAndGradient(learner.sample(0))
            let (_, other) = try learner.lossAndGradient(learner.sample(1))
            result.gradientCheck = GradientCheck(
                cosine: cosine(g, g32), relativeError: sumOfSquaredDifferences(g, g32).squareRoot() / max(norm(g32), 1e-30),
                cosineBetweenSamples: cosine(g32, other),
                loss: loss, lossFP32: loss32)
        }
        return result
    }

    /// Seconds of each of `runs` calls of `body`, reported as they end.
    static func timed(_ runs: Int, _ label: String, _ progress: (String) -> Void, _ body: () throws -> Void) rethrows -> [Double] {
        var times: [Double] = []
        for i in 0..<runs {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            progress("\(label): run \(i + 1)/\(runs) \(String(format: "%.3f", times.last ?? 0)) s")
        }
        return times
    }

    static func norm(_ a: Tensor) -> Double { (0..<a.count).reduce(0.0) { $0 + Double(a.data[$1]) * Double(a.data[$1]) }.squareRoot() }
    static func cosine(_ a: Tensor, _ b: Tensor) -> Double {
        (0..<a.count).reduce(0.0) { $0 + Double(a.data[$1]) * Double(b.data[$1]) } / max(norm(a) * norm(b), 1e-300)
    }

    /// A closure running one forward pass on fixed random inputs.
    static func workload(_ network: Component, networks n: LoadedNetworks, size: Int, batch: Int) throws -> () throws -> Tensor {
        var rng = SplitMix64(seed: 0)
        switch network {
        case .textEncoder:
            let te = try n.require(n.textEncoder, "text encoder")
            let ids = (0..<(batch * te.config.maxPositionEmbeddings)).map { _ in Int(rng.next() % UInt64(te.config.vocabSize)) }
            return { try te(ids: ids, batch: batch) }
        case .textEncoderVJP:
            let te = try n.require(n.textEncoder, "text encoder")
            let ids = (0..<(batch * te.config.maxPositionEmbeddings)).map { _ in Int(rng.next() % UInt64(te.config.vocabSize)) }
            let grad = Tensor.random([batch, te.config.maxPositionEmbeddings, te.config.hiddenSize], &rng)
            return { try te.vjp(ids: ids, batch: batch, gradOut: grad).gradEmbeddings }
        case .unet, .unetVJP:
            let unet = try n.require(n.unet, "unet")
            let f = n.vaeFactor
            guard size % (f * unet.config.downsampleFactor) == 0 else {
                throw SettingError("size", problem: "\(size) must be a multiple of \(f * unet.config.downsampleFactor)")
            }
            let sample = Tensor.random([batch, unet.config.inChannels, size / f, size / f], &rng)
            let context = Tensor.random([batch, 77, unet.config.crossAttentionDim[0]], &rng)
            let steps = [Float](repeating: 500, count: batch)
            if network == .unetVJP {
                let grad = Tensor.random([batch, unet.config.outChannels, size / f, size / f], &rng)
                return { try unet.vjp(sample, timesteps: steps, context: context, gradOut: grad).gradContext }
            }
            return { try unet(sample, timesteps: steps, context: context) }
        case .vaeEncode:
            let vae = try n.require(n.vae, "vae")
            let image = Tensor.random([batch, vae.config.inChannels, size, size], &rng)
            return { try vae.encode(image) }
        case .vaeDecode:
            let vae = try n.require(n.vae, "vae")
            let f = vae.config.downsampleFactor
            let latent = Tensor.random([batch, vae.config.latentChannels, size / f, size / f], &rng)
            return { try vae.decode(latent) }
        }
    }
}

/// The networks of a model folder that a command needed, loaded once.
public struct LoadedNetworks {
    public var textEncoder: CLIPTextModel?
    public var unet: UNet?
    public var vae: VAE?
    /// Image side / latent side from the VAE config (8 for SD).
    public var vaeFactor: Int

    /// Loads the networks that `components` need.
    public init(model: ModelFolder, components: Set<Component>) throws {
        let folders = Set(components.map(\.folder))
        textEncoder = folders.contains("text_encoder") ? try model.loadTextEncoder() : nil
        unet = folders.contains("unet") ? try model.loadUNet() : nil
        vae = folders.contains("vae") ? try model.loadVAE() : nil
        vaeFactor = try vae?.config.downsampleFactor ?? model.vaeConfig().downsampleFactor
    }

    func require<T>(_ v: T?, _ name: String) throws -> T {
        guard let v else { throw ModelError.invalidInput("\(name) not loaded") }
        return v
    }
}

/// A small deterministic generator (SplitMix64) for benchmark inputs.
public struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension Tensor {
    /// Uniform values in [-1, 1).
    static func random(_ shape: [Int], _ rng: inout SplitMix64) -> Tensor {
        Tensor(shape: shape, values: (0..<elementCount(shape)).map { _ in Float(rng.next() >> 40) / Float(1 << 23) - 1 })
    }
}

/// Process memory figures from /proc (Linux).
public enum ProcessMemory {
    /// Current resident set size in bytes.
    public static var residentBytes: Int {
        guard let s = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let parts = s.split(separator: " ")
        guard parts.count > 1, let pages = Int(parts[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// Peak resident set size in bytes.
    public static var peakResidentBytes: Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss * 1024
    }
}
