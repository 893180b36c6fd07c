import Foundation
import PivotFormats
import PivotModels
import PivotTensor

/// A LoRA file (Hu et al. 2021) as users have them, merged into a model's weights at load:
/// W ← W + weight · (alpha / rank) · B · A, the rank read from the file (A's rows), alpha from the file
/// (rank when absent). What diffusers' `load_lora_weights` + `fuse_lora(lora_scale: weight)` computes.
///
/// Formats:
/// - kohya / Automatic1111: `lora_unet_<module>` and `lora_te_<module>` (the diffusers module path with `_` for
///   `.`), each with `.lora_down.weight` (A), `.lora_up.weight` (B) and optional `.alpha`; LoCon's convolutions
///   (A [r, in, kh, kw], B [out, r, 1, 1]) included.
/// - diffusers / PEFT: `unet.<module>.lora_A.weight`, `.lora_B.weight` or `.lora.down.weight`, `.lora.up.weight`
///   (and `text_encoder.<module>`), optional `.alpha`, or alphas in the `lora_adapter_metadata` header entry
///   diffusers writes.
/// - diffusers' older attention-processor files: `<module>.processor.to_q_lora.down.weight` / `.up.weight`
///   (and `text_encoder.….lora_linear_layer.down/up`).
///
/// Limitations: LoHa, LoKr, DoRA and other LyCORIS variants are refused by key; kohya names in the original
/// (CompVis) layout (`lora_unet_input_blocks_…`) match no module and are refused too.
public struct LoRA: Sendable {
    /// The file formats recognised.
    public enum Format: String, Sendable {
        case kohya
        case peft
        case diffusersAttentionProcessors = "diffusers-attn-procs"
    }

    /// One adapted module.
    public struct Module: Sendable {
        /// "unet" or "text_encoder".
        public let component: String
        /// The module's name in the file, as its keys spell it (underscored for kohya).
        public let key: String
        /// The diffusers parameter it adapts (`down_blocks.0.….to_q.weight`; the text encoder's without
        /// `text_model.`), once matched against a model (nil for kohya names until then).
        public let parameter: String?
        let down: String
        let up: String
        let alphaKey: String?
    }

    public let path: String
    /// The strength, `lora_scale` in diffusers.
    public let weight: Float
    /// SHA-256 of the file (in model fingerprints, inversion cache keys and batch hashes).
    public let sha256: String
    public let format: Format
    public let modules: [Module]
    let archive: TensorArchive
    let metadataAlphas: [String: Float]

    /// Reads and checks a LoRA file: every key must belong to a known format and every module must have
    /// both matrices.
    /// - Throws: `LoRAError` naming the file and key.
    public init(path: String, weight: Float = 1) throws {
        guard weight.isFinite else { throw LoRAError.invalid(path, "its weight must be a finite number") }
        let archive: TensorArchive
        do { archive = try TensorArchive(path: path) } catch { throw LoRAError.invalid(path, "\(error)") }
        self.path = path
        self.weight = weight
        self.archive = archive
        sha256 = try SHA256.hexDigest(ofFile: path)
        let names = archive.names
        guard !names.isEmpty else { throw LoRAError.invalid(path, "it holds no tensors") }
        let (format, modules) = try Self.parse(names, path: path)
        self.format = format
        self.modules = modules
        metadataAlphas = Self.alphas(fromMetadata: archive.metadata)
    }

    static func parse(_ names: [String], path: String) throws -> (Format, [Module]) {
        if names.contains(where: { $0.hasPrefix("lora_unet_") || $0.hasPrefix("lora_te_") }) {
            var modules: [String: (down: String?, up: String?, alpha: String?)] = [:]
            for name in names {
                guard name.hasPrefix("lora_unet_") || name.hasPrefix("lora_te_") else { throw LoRAError.unknownKey(path, name) }
                let suffixes = [".lora_down.weight", ".lora_up.weight", ".alpha"]
                guard let suffix = suffixes.first(where: { name.hasSuffix($0) }) else { throw LoRAError.unknownKey(path, name) }
                let module = String(name.dropLast(suffix.count))
                var entry = modules[module] ?? (nil, nil, nil)
                switch suffix {
                case ".lora_down.weight": entry.down = name
                case ".lora_up.weight": entry.up = name
                default: entry.alpha = name
                }
                modules[module] = entry
            }
            return (
                .kohya,
                try modules.keys.sorted().map { key in
                    let e = modules[key]!
                    guard let down = e.down, let up = e.up else { throw LoRAError.incomplete(path, key) }
                    let unet = key.hasPrefix("lora_unet_")
                    return Module(
                        component: unet ? "unet" : "text_encoder", key: String(key.dropFirst(unet ? 10 : 8)), parameter: nil,
                        down: down, up: up, alphaKey: e.alpha)
                }
            )
        }
        // diffusers / PEFT, new and old key styles
        var modules: [String: (component: String, down: String?, up: String?, alpha: String?)] = [:]
        var format = Format.peft
        for name in names {
            var rest = name, component = "unet"
            for prefix in ["unet.", "text_encoder."] where rest.hasPrefix(prefix) {
                component = String(prefix.dropLast())
                rest = String(rest.dropFirst(prefix.count))
            }
            if component == "text_encoder", rest.hasPrefix("text_model.") { rest = String(rest.dropFirst("text_model.".count)) }
            var module: String, role: String
            if let (suffix, r) = [(".lora_A.weight", "down"), (".lora_B.weight", "up"), (".lora.down.weight", "down"), (".lora.up.weight", "up")]
                .first(where: { rest.hasSuffix($0.0) })
            {
                (module, role) = (String(rest.dropLast(suffix.count)), r)  // PEFT, and diffusers' LoRACompatible layers
            } else if rest.hasSuffix(".alpha") {
                (module, role) = (String(rest.dropLast(".alpha".count)), "alpha")
            } else if let m = rest.range(of: #"\.processor\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$"#, options: .regularExpression) {
                let piece = rest[m].split(separator: ".")  // processor, to_X_lora, down|up, weight
                let target = piece[1].dropLast("_lora".count)
                module = String(rest[..<m.lowerBound]) + "." + (target == "to_out" ? "to_out.0" : String(target))
                role = String(piece[2])
                format = .diffusersAttentionProcessors
            } else if let m = rest.range(of: #"\.lora_linear_layer\.(down|up)\.weight$"#, options: .regularExpression) {
                module = String(rest[..<m.lowerBound])
                role = String(rest[m].split(separator: ".")[1])  // lora_linear_layer, down|up, weight
                format = .diffusersAttentionProcessors
            } else {
                throw LoRAError.unknownKey(path, name)
            }
            let id = component + "|" + module
            var e = modules[id] ?? (component, nil, nil, nil)
            switch role {
            case "down": e.down = name
            case "up": e.up = name
            default: e.alpha = name
            }
            modules[id] = e
        }
        return (
            format,
            try modules.keys.sorted().map { id in
                let e = modules[id]!
                let module = String(id.split(separator: "|", maxSplits: 1)[1])
                guard let down = e.down, let up = e.up else { throw LoRAError.incomplete(path, module) }
                return Module(component: e.component, key: module, parameter: module + ".weight", down: down, up: up, alphaKey: e.alpha)
            }
        )
    }

    /// Per-component alphas from diffusers' `lora_adapter_metadata` header entry ({"unet.lora_alpha": …}).
    static func alphas(fromMetadata metadata: [String: String]) -> [String: Float] {
        guard let text = metadata["lora_adapter_metadata"], let data = text.data(using: .utf8),
            let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return [:] }
        var out: [String: Float] = [:]
        for (key, value) in json where key.hasSuffix("lora_alpha") {
            if let v = (value as? NSNumber)?.floatValue { out[key.hasPrefix("text_encoder") ? "text_encoder" : "unet"] = v }
        }
        return out
    }

    /// The modules of one component, matched to the parameters `names` of that component's store; a module
    /// that matches none is an error naming its key.
    func resolve(component: String, names: [String]) throws -> [(module: Module, parameter: String)] {
        let mine = modules.filter { $0.component == component }
        guard !mine.isEmpty else { return [] }
        var byKohya: [String: String] = [:]
        if format == .kohya {
            for n in names where n.hasSuffix(".weight") {
                let module = String(n.dropLast(".weight".count))
                let underscored = module.replacingOccurrences(of: ".", with: "_")
                byKohya[underscored] = n
                if component == "text_encoder" { byKohya["text_model_" + underscored] = n }  // transformers 4's prefix, in most files
            }
        }
        let known = Set(names)
        return try mine.map { m in
            let parameter = format == .kohya ? byKohya[m.key] : m.parameter
            guard let parameter, known.contains(parameter) else { throw LoRAError.unmatched(path, m.key, component: component) }
            return (m, parameter)
        }
    }

    /// A module's rank and its scale weight · alpha / rank, its matrices' stored shapes checked against the
    /// shape of the parameter they adapt (from the file's header: no matrix is read).
    func scale(_ m: Module, fitting shape: [Int]) throws -> (rank: Int, scale: Float) {
        let down = archive.shape(m.down) ?? [], up = archive.shape(m.up) ?? []
        let rank = down.first ?? 0
        let outer = shape.first ?? 0, inner = shape.dropFirst().reduce(1, *)
        guard down.count >= 2, up.count >= 2, rank > 0, up[0] == outer, up.reduce(1, *) == outer * rank, down.reduce(1, *) == rank * inner
        else {
            throw LoRAError.shapeMismatch(path, m.key, lora: "A \(down), B \(up)", model: shape)
        }
        var alpha = Float(rank)
        if let key = m.alphaKey {
            let a = try archive.tensor(key)
            guard a.count == 1, a.data[0].isFinite else { throw LoRAError.invalid(path, "\(key) must be one finite number") }
            alpha = a.data[0]
        } else if let a = metadataAlphas[m.component] {
            alpha = a
        }
        return (rank, weight * alpha / Float(rank))
    }

    /// A module's matrices B (up) and A (down), as stored.
    func matrices(_ m: Module) throws -> (up: Tensor, down: Tensor) {
        (try archive.tensor(m.up), try archive.tensor(m.down))
    }

    /// The ranks in the file, and the modules per component (for `pivot info`).
    public var summary: (ranks: [Int], modules: [String: Int]) {
        var ranks = Set<Int>(), counts: [String: Int] = [:]
        for m in modules {
            if let s = archive.shape(m.down), let r = s.first { ranks.insert(r) }
            counts[m.component, default: 0] += 1
        }
        return (ranks.sorted(), counts)
    }
}

/// Errors of LoRA and Custom Diffusion files (one line each, naming the file and key).
public enum LoRAError: Error, CustomStringConvertible, Equatable {
    case invalid(String, String)
    case unknownKey(String, String)
    case incomplete(String, String)
    case unmatched(String, String, component: String)
    case shapeMismatch(String, String, lora: String, model: [Int])

    public var description: String {
        switch self {
        case .invalid(let p, let why): return "\(p): \(why)"
        case .unknownKey(let p, let key):
            return "\(p): key '\(key)' is in no LoRA format pivot reads (kohya lora_down/lora_up/alpha, PEFT lora_A/lora_B, "
                + "diffusers attention processors; LoHa, LoKr and DoRA are not supported)"
        case .incomplete(let p, let key): return "\(p): module '\(key)' lacks one of its two matrices"
        case .unmatched(let p, let key, let component):
            return
                "\(p): '\(key)' matches no module of the model's \(component == "unet" ? "UNet" : "text encoder") (a LoRA for another architecture?)"
        case .shapeMismatch(let p, let key, let lora, let model):
            return "\(p): '\(key)' (\(lora)) does not fit the model's weight \(model) (a LoRA for another architecture, e.g. SD 2 on SD 1?)"
        }
    }
}
