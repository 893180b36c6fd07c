import ArgumentParser
import Foundation
import Pivot
import PivotLoading
import PivotDiffusion

extension SchedulerConfig.PredictionType: ExpressibleByArgument {}

/// `--model` and what a single-file checkpoint may need besides it.
struct ModelOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "A diffusers model folder, or a single-file checkpoint (.safetensors or .ckpt, original SD 1.x/2.x layout).",
            valueName: "DIR|FILE"))
    var model: String

    @OptionGroup var singleFile: SingleFileOptions

    @Option(
        name: .long,
        help: ArgumentHelp(
            "A LoRA merged into the UNet and text encoder at load (kohya/Automatic1111 or diffusers/PEFT; repeatable; weight 1 unless given).",
            valueName: "FILE[:WEIGHT]"))
    var lora: [String] = []

    @Option(
        name: .customLong("custom-diffusion"),
        help: ArgumentHelp(
            "Custom Diffusion weights (pytorch_custom_diffusion_weights.bin or .safetensors) replacing the cross-attention K/V; load its token with --embedding.",
            valueName: "FILE"))
    var customDiffusion: [String] = []

    @Option(
        name: .long,
        help: ArgumentHelp(
            "A VAE to use instead of the model's: a diffusers VAE folder, or a VAE file in the original layout (.safetensors, .ckpt).",
            valueName: "DIR|FILE"))
    var vae: String?

    func folder() throws -> ModelFolder {
        var folder = try ModelFolder(
            path: model, config: singleFile.config, tokenizer: singleFile.tokenizer,
            predictionType: singleFile.predictionType)
        folder.loras = try lora.map { spec in
            let (path, weight) = try Self.loraSpec(spec)
            return try LoRA(path: path, weight: weight)
        }
        folder.customDiffusion = try customDiffusion.map { try CustomDiffusion(path: $0) }
        if let vae {
            guard FileManager.default.fileExists(atPath: vae) else { throw ValidationError("--vae \(vae): no such file or folder") }
            folder.vaeOverride = vae
        }
        return folder
    }

    /// "FILE" or "FILE:WEIGHT" (the last colon, when a number follows it).
    static func loraSpec(_ spec: String) throws -> (String, Float) {
        if let colon = spec.lastIndex(of: ":"), let weight = Float(spec[spec.index(after: colon)...]) {
            guard weight.isFinite else { throw ValidationError("--lora \(spec): the weight must be a finite number") }
            return (String(spec[..<colon]), weight)
        }
        return (spec, 1)
    }
}

/// What a single-file checkpoint may need besides the file (`--model FILE`, `pivot convert`).
struct SingleFileOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "For a single file: a diffusers folder whose configs, tokenizer and scheduler to use instead of pivot's SD 1.x/2.x defaults.",
            valueName: "DIR"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp("For a single file: a tokenizer folder instead of the built-in CLIP tokenizer.", valueName: "DIR"))
    var tokenizer: String?

    @Option(name: .long, help: "For a single file: epsilon, v_prediction or sample (default: epsilon for SD 1.x, v_prediction for SD 2.x).")
    var predictionType: SchedulerConfig.PredictionType?
}
