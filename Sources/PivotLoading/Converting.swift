import Foundation
import PivotIO
import PivotFormats
import PivotTensor
import PivotText

/// Errors of `pivot convert`.
public struct ConvertError: Error, CustomStringConvertible {
    public let description: String
}

extension SingleFileStore {
    /// Every tensor of the component under its diffusers name, transformed (1×1 convs squeezed, fused
    /// projections split), in name order.
    public func convertedTensors() throws -> [(name: String, tensor: Tensor)] {
        try mappedNames.map { name, source in
            guard let stored = checkpoint.shape(source.original) else { throw ConvertError(description: "\(source.original) is missing") }
            let shape: [Int]
            switch source.transform {
            case .none: shape = stored
            case .squeeze: shape = Array(stored.prefix(2))
            case .rows(_, let parts): shape = [stored[0] / parts] + stored.dropFirst()
            }
            return (name, try tensor(name, shape: shape))
        }
    }
}

extension ModelFolder {
    /// Writes this single-file checkpoint as a diffusers folder at `directory` (which must not exist) that
    /// diffusers' `StableDiffusionPipeline.from_pretrained` loads: each network is first loaded strictly, then
    /// written as `dtype` (F16 or F32) under diffusers names with its config; the scheduler config (with the
    /// prediction type in use), the tokenizer and `model_index.json` complete it. The folder is built beside
    /// the destination and renamed into place, so an interrupted conversion leaves nothing half-written.
    public func convert(to directory: String, dtype: DType, onComponent: (String) -> Void = { _ in }) throws {
        guard let single else { throw ConvertError(description: "\(path) is already a diffusers folder") }
        guard dtype == .F16 || dtype == .F32 else { throw SettingError("dtype", problem: "must be fp16 or fp32") }
        guard !FileManager.default.fileExists(atPath: directory) else {
            throw ConvertError(description: "\(directory) already exists; pivot convert writes a new folder")
        }
        let partial = directory + ".partial-\(getpid())"
        try? FileManager.default.removeItem(atPath: partial)
        do {
            for (component, file) in [
                ("text_encoder", "model.safetensors"), ("unet", "diffusion_pytorch_model.safetensors"),
                ("vae", "diffusion_pytorch_model.safetensors"),
            ] {
                onComponent(component)
                switch component {
                case "unet": _ = try loadUNet()
                case "vae": _ = try loadVAE()
                default: _ = try loadTextEncoder()
                }
                guard let store = try weightStore(component) as? SingleFileStore else { continue }
                var tensors = try store.convertedTensors()
                if component == "text_encoder" { tensors = tensors.map { ("text_model." + $0.name, $0.tensor) } }
                let dir = (partial as NSString).appendingPathComponent(component)
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                try SafeTensorsWriter.write(
                    tensors,
                    metadata: [
                        "format": "pt", "converted_by": "pivot \(pivotVersion)",
                        "source": (path as NSString).lastPathComponent,
                    ],
                    dtype: dtype, to: (dir as NSString).appendingPathComponent(file))
                try configData(component).write(to: URL(fileURLWithPath: (dir as NSString).appendingPathComponent("config.json")))
            }
            let schedulerDir = (partial as NSString).appendingPathComponent("scheduler")
            try FileManager.default.createDirectory(atPath: schedulerDir, withIntermediateDirectories: true)
            var scheduler = try JSONSerialization.jsonObject(with: JSONEncoder().encode(try schedulerConfig())) as? [String: Any] ?? [:]
            scheduler["_class_name"] = "DDIMScheduler"
            try JSONSerialization.data(withJSONObject: scheduler, options: [.sortedKeys, .prettyPrinted])
                .write(to: URL(fileURLWithPath: (schedulerDir as NSString).appendingPathComponent("scheduler_config.json")))
            let tokenizerDir = (partial as NSString).appendingPathComponent("tokenizer")
            if let source = tokenizerDirectory ?? configDirectory.map({ ($0 as NSString).appendingPathComponent("tokenizer") }),
                FileManager.default.fileExists(atPath: source)
            {
                try FileManager.default.copyItem(atPath: source, toPath: tokenizerDir)
            } else {
                try CLIPTokenizer.writeBuiltin(to: tokenizerDir, padToken: single.family == .sd2 ? "!" : "<|endoftext|>")
            }
            let index: [String: Any] = [
                "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1", "requires_safety_checker": false,
                "feature_extractor": [NSNull(), NSNull()], "safety_checker": [NSNull(), NSNull()],
                "scheduler": ["diffusers", "DDIMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
                "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
                "vae": ["diffusers", "AutoencoderKL"],
            ]
            try JSONSerialization.data(withJSONObject: index, options: [.sortedKeys, .prettyPrinted])
                .write(to: URL(fileURLWithPath: (partial as NSString).appendingPathComponent("model_index.json")))
            try FileManager.default.moveItem(atPath: partial, toPath: directory)
        } catch {
            try? FileManager.default.removeItem(atPath: partial)
            throw error
        }
    }
}
