import PivotModels

/// How a diffusers tensor is read from a single-file (original Stable Diffusion layout) checkpoint.
public struct SingleFileSource: Sendable, Equatable {
    public enum Transform: Sendable, Equatable {
        case none
        /// A 1×1 convolution weight [O, I, 1, 1] read as a Linear weight [O, I] (VAE mid attention).
        case squeeze
        /// Part `index` of `parts` equal row blocks (OpenCLIP's fused `in_proj` → q, k, v).
        case rows(index: Int, parts: Int)
    }
    public let original: String
    public let transform: Transform
}

/// The one table between single-file names (`model.diffusion_model.*`, `first_stage_model.*`,
/// `cond_stage_model.*`) and diffusers names, per component, derived from the component's config
/// (docs/ALGORITHMS.md §1; the names of docs/reference/sd15/single_file_keys.txt).
public enum SingleFileKeys {
    public static let unetPrefix = "model.diffusion_model."
    public static let vaePrefix = "first_stage_model."
    public static let clipPrefix = "cond_stage_model.transformer.text_model."
    public static let openClipPrefix = "cond_stage_model.model."

    /// Original resnet names → diffusers names (UNet).
    static let unetResnet: [(String, String)] = [
        ("in_layers.0.", "norm1."), ("in_layers.2.", "conv1."), ("emb_layers.1.", "time_emb_proj."),
        ("out_layers.0.", "norm2."), ("out_layers.3.", "conv2."), ("skip_connection.", "conv_shortcut."),
    ]

    /// UNet: every diffusers parameter prefix and the original prefix it comes from, with whether it is a
    /// resnet (whose inner names change) or kept as is.
    static func unetPrefixes(_ c: UNetConfig) -> [(original: String, diffusers: String, resnet: Bool)] {
        var out: [(String, String, Bool)] = [
            ("time_embed.0.", "time_embedding.linear_1.", false), ("time_embed.2.", "time_embedding.linear_2.", false),
            ("input_blocks.0.0.", "conv_in.", false), ("out.0.", "conv_norm_out.", false), ("out.2.", "conv_out.", false),
            ("middle_block.0.", "mid_block.resnets.0.", true), ("middle_block.1.", "mid_block.attentions.0.", false),
            ("middle_block.2.", "mid_block.resnets.1.", true),
        ]
        let levels = c.blockOutChannels.count
        var k = 1
        for i in 0..<levels {
            let attn = c.downBlockTypes[i].hasPrefix("CrossAttn")
            for j in 0..<c.layersPerBlock[i] {
                out.append(("input_blocks.\(k).0.", "down_blocks.\(i).resnets.\(j).", true))
                if attn { out.append(("input_blocks.\(k).1.", "down_blocks.\(i).attentions.\(j).", false)) }
                k += 1
            }
            if i < levels - 1 {
                out.append(("input_blocks.\(k).0.op.", "down_blocks.\(i).downsamplers.0.conv.", false))
                k += 1
            }
        }
        k = 0
        let reversedLayers = Array(c.layersPerBlock.reversed())
        for i in 0..<levels {
            let attn = c.upBlockTypes[i].hasPrefix("CrossAttn")
            for j in 0...reversedLayers[i] {
                out.append(("output_blocks.\(k).0.", "up_blocks.\(i).resnets.\(j).", true))
                if attn { out.append(("output_blocks.\(k).1.", "up_blocks.\(i).attentions.\(j).", false)) }
                if j == reversedLayers[i], i < levels - 1 {
                    out.append(("output_blocks.\(k).\(attn ? 2 : 1).conv.", "up_blocks.\(i).upsamplers.0.conv.", false))
                }
                k += 1
            }
        }
        return out.map { (unetPrefix + $0.0, $0.1, $0.2) }
    }

    /// diffusers name → source, for every UNet tensor the file holds under the UNet prefix; names that map to
    /// nothing are returned in `unmapped`.
    public static func unet(_ names: [String], config: UNetConfig) -> (map: [String: SingleFileSource], unmapped: [String]) {
        let prefixes = unetPrefixes(config).sorted { $0.original.count > $1.original.count }
        var map: [String: SingleFileSource] = [:], unmapped: [String] = []
        for name in names where name.hasPrefix(unetPrefix) && !isIgnorable(name) {
            guard let p = prefixes.first(where: { name.hasPrefix($0.original) }) else {
                unmapped.append(name)
                continue
            }
            var rest = String(name.dropFirst(p.original.count))
            if p.resnet, let r = unetResnet.first(where: { rest.hasPrefix($0.0) }) { rest = r.1 + rest.dropFirst(r.0.count) }
            map[p.diffusers + rest] = SingleFileSource(original: name, transform: .none)
        }
        return (map, unmapped)
    }

    /// VAE names (decoder levels are numbered from the bottom in the original layout).
    public static func vae(_ names: [String], config: VAEConfig) -> (map: [String: SingleFileSource], unmapped: [String]) {
        let levels = config.blockOutChannels.count
        var map: [String: SingleFileSource] = [:], unmapped: [String] = []
        let attention: [(String, String)] = [
            ("norm.", "group_norm."), ("q.", "to_q."), ("k.", "to_k."), ("v.", "to_v."),
            ("proj_out.", "to_out.0."),
        ]
        for name in names where name.hasPrefix(vaePrefix) && !isIgnorable(name) {
            var rest = String(name.dropFirst(vaePrefix.count))
            var transform = SingleFileSource.Transform.none
            func replace(_ pattern: String, _ with: String) -> Bool {
                guard rest.hasPrefix(pattern) else { return false }
                rest = with + rest.dropFirst(pattern.count)
                return true
            }
            let parts = rest.split(separator: ".").map(String.init)
            if parts.count > 3, parts[1] == "down", let i = Int(parts[2]) {
                if parts[3] == "block", parts.count > 4 {
                    rest = "\(parts[0]).down_blocks.\(i).resnets.\(parts[4])." + parts.dropFirst(5).joined(separator: ".")
                } else if parts[3] == "downsample" {
                    rest = "\(parts[0]).down_blocks.\(i).downsamplers.0." + parts.dropFirst(4).joined(separator: ".")
                }
            } else if parts.count > 3, parts[1] == "up", let i = Int(parts[2]), i < levels {
                let level = levels - 1 - i
                if parts[3] == "block", parts.count > 4 {
                    rest = "\(parts[0]).up_blocks.\(level).resnets.\(parts[4])." + parts.dropFirst(5).joined(separator: ".")
                } else if parts[3] == "upsample" {
                    rest = "\(parts[0]).up_blocks.\(level).upsamplers.0." + parts.dropFirst(4).joined(separator: ".")
                }
            } else if parts.count > 2, parts[1] == "mid" {
                let coder = parts[0]
                if !(replace("\(coder).mid.block_1.", "\(coder).mid_block.resnets.0.")
                    || replace("\(coder).mid.block_2.", "\(coder).mid_block.resnets.1."))
                {
                    for (o, d) in attention where replace("\(coder).mid.attn_1.\(o)", "\(coder).mid_block.attentions.0.\(d)") {
                        if o != "norm." && rest.hasSuffix(".weight") { transform = .squeeze }
                        break
                    }
                }
            } else if parts.count > 1, parts[1] == "norm_out" {
                rest = "\(parts[0]).conv_norm_out." + parts.dropFirst(2).joined(separator: ".")
            }
            rest = rest.replacingOccurrences(of: ".nin_shortcut.", with: ".conv_shortcut.")
            let known =
                rest.hasPrefix("quant_conv.") || rest.hasPrefix("post_quant_conv.")
                || rest.contains("_blocks.") || rest.contains("mid_block.") || rest.contains("conv_in.")
                || rest.contains("conv_out.") || rest.contains("conv_norm_out.")
            if known { map[rest] = SingleFileSource(original: name, transform: transform) } else { unmapped.append(name) }
        }
        return (map, unmapped)
    }

    /// SD 1.x text encoder (transformers' CLIP names under `cond_stage_model.transformer.text_model.`).
    public static func clip(_ names: [String]) -> (map: [String: SingleFileSource], unmapped: [String]) {
        var map: [String: SingleFileSource] = [:]
        for name in names where name.hasPrefix(clipPrefix) && !isIgnorable(name) {
            map[String(name.dropFirst(clipPrefix.count))] = SingleFileSource(original: name, transform: .none)
        }
        return (map, [])
    }

    /// SD 2.x OpenCLIP text encoder (`cond_stage_model.model.*`, fused `in_proj`), its first `layers` layers
    /// (SD 2 conditions on the penultimate layer: the last resblock is not part of the diffusers model).
    public static func openClip(_ names: [String], layers: Int) -> (map: [String: SingleFileSource], unmapped: [String]) {
        var map: [String: SingleFileSource] = [:], unmapped: [String] = []
        let direct: [(String, String)] = [
            ("token_embedding.weight", "embeddings.token_embedding.weight"),
            ("positional_embedding", "embeddings.position_embedding.weight"),
            ("ln_final.weight", "final_layer_norm.weight"), ("ln_final.bias", "final_layer_norm.bias"),
        ]
        let inner: [(String, String)] = [
            ("ln_1.", "layer_norm1."), ("ln_2.", "layer_norm2."), ("attn.out_proj.", "self_attn.out_proj."),
            ("mlp.c_fc.", "mlp.fc1."), ("mlp.c_proj.", "mlp.fc2."),
        ]
        for name in names where name.hasPrefix(openClipPrefix) {
            let rest = String(name.dropFirst(openClipPrefix.count))
            if let d = direct.first(where: { $0.0 == rest }) {
                map[d.1] = SingleFileSource(original: name, transform: .none)
                continue
            }
            if rest == "text_projection" || rest == "logit_scale" { continue }
            let parts = rest.split(separator: ".", maxSplits: 3).map(String.init)
            guard parts.count == 4, parts[0] == "transformer", parts[1] == "resblocks", let i = Int(parts[2]) else {
                unmapped.append(name)
                continue
            }
            if i >= layers { continue }
            let tail = parts[3], base = "encoder.layers.\(i)."
            if tail == "attn.in_proj_weight" || tail == "attn.in_proj_bias" {
                let kind = tail.hasSuffix("weight") ? "weight" : "bias"
                for (k, proj) in ["q_proj", "k_proj", "v_proj"].enumerated() {
                    map[base + "self_attn.\(proj).\(kind)"] = SingleFileSource(original: name, transform: .rows(index: k, parts: 3))
                }
            } else if let r = inner.first(where: { tail.hasPrefix($0.0) }) {
                map[base + r.1 + tail.dropFirst(r.0.count)] = SingleFileSource(original: name, transform: .none)
            } else {
                unmapped.append(name)
            }
        }
        return (map, unmapped)
    }

    /// Single-file entries that are not network weights: EMA copies, the diffusion schedule buffers,
    /// CLIP's position ids, OpenCLIP's projection and the deeper layers SD 2 does not use.
    public static func isIgnorable(_ name: String) -> Bool {
        if name.hasPrefix("model_ema.") || name.hasSuffix("position_ids") { return true }
        let schedule = [
            "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
            "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
            "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
            "logvar", "lvlb_weights",
        ]
        return schedule.contains(name)
    }
}
