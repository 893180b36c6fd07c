import Foundation
import PivotLoading
import PivotModels
import PivotTensor

/// What `pivot info` reports about a model folder: architecture, parameter counts, stored dtypes and the
/// native resolution. Reads configs and safetensors headers only; no weights are converted.
public struct ModelInfo: Codable, Sendable {
    public struct Network: Codable, Sendable {
        public var name: String
        public var parameters: Int
        public var dtypes: [String: Int]
        public var files: [String]
    }

    public var model: String
    public var architecture: String
    public var nativeResolution: Int
    public var latentChannels: Int
    public var predictionType: String?
    public var networks: [Network]
    /// What `--precision` resolves to on this processor, when asked (`pivot info`).
    public var precision: PrecisionReport?
    /// The LoRAs merged at load.
    public var loras: [Adapter] = []
    /// Custom Diffusion weights merged at load.
    public var customDiffusion: [Adapter] = []
    /// The VAE in use when it is not the model's own.
    public var vae: String?

    /// A LoRA or Custom Diffusion file: what it is and what it touches.
    public struct Adapter: Codable, Sendable {
        public var path: String
        public var format: String
        public var weight: Float?
        public var ranks: [Int]
        /// Modules touched, by component ("unet", "text_encoder").
        public var modules: [String: Int]
    }

    /// The resolved precision and the processor facts behind it.
    public struct PrecisionReport: Codable, Sendable {
        public var choice: String
        public var forward: String
        public var gradient: String
        public var reason: String
        public var cpu: String
        public var nativeBF16: Bool
        public var oneDNN: String
        public var bf16Kernel: String

        enum CodingKeys: String, CodingKey {
            case choice, forward, gradient, reason, cpu
            case nativeBF16 = "native_bf16"
            case oneDNN = "onednn"
            case bf16Kernel = "bf16_kernel"
        }

        public init(_ plan: PrecisionPlan) {
            choice = plan.choice.rawValue
            forward = plan.networks.forward.rawValue
            gradient = plan.networks.gradient.rawValue
            reason = plan.reason
            cpu = CPUFeatures.summary
            nativeBF16 = BF16Support.native
            oneDNN = BF16Support.oneDNNVersion
            bf16Kernel = BF16Support.usable ? BF16Support.implementation : "none"
        }
    }

    enum CodingKeys: String, CodingKey {
        case model, architecture, networks, precision
        case nativeResolution = "native_resolution"
        case latentChannels = "latent_channels"
        case predictionType = "prediction_type"
    }

    /// Inspects a model folder; every config is validated as it would be for loading.
    public init(model: ModelFolder) throws {
        let te = try model.textEncoderConfig(), unet = try model.unetConfig(), vae = try model.vaeConfig()
        self.model = model.path
        let ctx = unet.crossAttentionDim[0]
        if ctx == 768 && te.hiddenSize == 768 && unet.blockOutChannels == [320, 640, 1280, 1280] {
            architecture = "Stable Diffusion 1.x (CLIP ViT-L/14 text encoder, \(te.hiddenAct))"
        } else if ctx == 1024 && unet.blockOutChannels == [320, 640, 1280, 1280] {
            architecture = "Stable Diffusion 2.x (OpenCLIP ViT-H text encoder, \(te.hiddenAct))"
        } else {
            architecture =
                "Stable Diffusion-style, custom size: UNet \(unet.blockOutChannels), context \(ctx), "
                + "text encoder \(te.hiddenSize)×\(te.numHiddenLayers), VAE \(vae.blockOutChannels)"
        }
        nativeResolution = unet.sampleSize * vae.downsampleFactor
        latentChannels = vae.latentChannels
        predictionType = ModelInfo.predictionType(model)
        networks = try ["text_encoder", "unet", "vae"].map { name in
            let store = try model.weightStore(name)
            return Network(
                name: name, parameters: store.parameterCount, dtypes: store.dtypeCounts,
                files: store.files.map { ($0 as NSString).lastPathComponent })
        }
        loras = model.loras.map { l in
            let s = l.summary
            return Adapter(path: l.path, format: l.format.rawValue, weight: l.weight, ranks: s.ranks, modules: s.modules)
        }
        customDiffusion = model.customDiffusion.map {
            Adapter(path: $0.path, format: "custom-diffusion", weight: nil, ranks: [], modules: ["unet": $0.replacements.count])
        }
        self.vae = model.vaeOverride
    }

    /// `prediction_type` from `scheduler/scheduler_config.json`, when present and readable.
    static func predictionType(_ model: ModelFolder) -> String? {
        if model.single != nil { return try? model.schedulerConfig().predictionType.rawValue }
        let file = (model.path as NSString).appendingPathComponent("scheduler/scheduler_config.json")
        guard let d = FileManager.default.contents(atPath: file),
            let obj = try? JSONSerialization.jsonObject(with: d) as? [String: Any]
        else { return nil }
        return obj["prediction_type"] as? String ?? "epsilon"
    }

    /// A human-readable report.
    public var text: String {
        var lines = [
            "model: \(model)", "architecture: \(architecture)",
            "native resolution: \(nativeResolution)×\(nativeResolution)",
            "prediction type: \(predictionType ?? "unknown (no scheduler config)")",
        ]
        for n in networks {
            let dt = n.dtypes.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: ", ")
            let mb = Double(n.parameters) * 4 / 1_048_576
            lines.append("\(n.name): \(n.parameters.formatted()) parameters (\(String(format: "%.1f", mb)) MiB as fp32), stored \(dt)")
        }
        for a in loras + customDiffusion {
            let touched = a.modules.sorted { $0.key > $1.key }.map { "\($0.value) \($0.key == "unet" ? "UNet" : "text encoder") modules" }
            let rank = a.ranks.isEmpty ? "" : ", rank \(a.ranks.map(String.init).joined(separator: "/"))"
            let weight = a.weight.map { ", weight \($0)" } ?? ""
            lines.append(
                "\(a.format == "custom-diffusion" ? "custom diffusion" : "lora"): \(a.path) (\(a.format)\(rank)\(weight)): \(touched.joined(separator: ", "))"
            )
        }
        if let vae { lines.append("vae: \(vae) (instead of the model's)") }
        if let p = precision {
            lines.append("precision: \(p.forward) network passes, \(p.gradient) gradients (\(p.reason))")
            lines.append("cpu: \(p.cpu); oneDNN \(p.oneDNN), bf16 kernel: \(p.bf16Kernel)")
        }
        return lines.joined(separator: "\n")
    }
}

extension Int {
    /// Thousands separated with commas.
    func formatted() -> String {
        let s = String(self)
        var out = ""
        for (i, ch) in s.reversed().enumerated() {
            if i > 0 && i % 3 == 0 { out.append(",") }
            out.append(ch)
        }
        return String(out.reversed())
    }
}
