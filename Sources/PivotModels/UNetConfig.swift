import Foundation

/// diffusers' `UNet2DConditionModel` config, read from `unet/config.json`. Every field that changes the
/// graph is either honoured or refused by name (SD 1.x and SD 2.x values are all honoured).
public struct UNetConfig: Sendable {
    public var inChannels = 4
    public var outChannels = 4
    public var blockOutChannels: [Int] = [320, 640, 1280, 1280]
    public var downBlockTypes: [String] = []
    public var upBlockTypes: [String] = []
    public var midBlockType: String? = "UNetMidBlock2DCrossAttn"
    /// Per down block; up blocks use the reverse, plus one.
    public var layersPerBlock: [Int] = []
    /// Attention heads per down block (diffusers' `attention_head_dim`, which means heads).
    public var heads: [Int] = []
    public var crossAttentionDim: [Int] = []
    public var transformerLayersPerBlock: [Int] = []
    public var normNumGroups = 32
    public var normEps: Double = 1e-5
    public var useLinearProjection = false
    public var upcastAttention = false
    public var flipSinToCos = true
    public var freqShift: Double = 0
    public var sampleSize = 64
    public var downsamplePadding = 1
    public var midBlockScaleFactor: Double = 1
    public var resnetOutScaleFactor: Double = 1
    public var convInKernel = 3
    public var convOutKernel = 3
    public var centerInputSample = false

    /// The number of resolution levels.
    public var levels: Int { blockOutChannels.count }
    /// Time embedding width (4 × the first block's channels).
    public var timeEmbedDim: Int { blockOutChannels[0] * 4 }
    /// The latent side must be a multiple of this.
    public var downsampleFactor: Int { 1 << (levels - 1) }

    /// Parses and validates the JSON of `unet/config.json`; `file` names it in errors.
    public init(json: Data, file: String = "unet/config.json") throws {
        let raw = try decodeConfig(RawUNetConfig.self, from: json, file: file)
        try require(raw.class_name ?? "UNet2DConditionModel", "UNet2DConditionModel", field: "_class_name", file: file)
        let n = raw.block_out_channels?.count ?? 4
        func list(_ v: IntOrList?, _ field: String, default d: Int) throws -> [Int] {
            guard let l = (v ?? .one(d)).expanded(n) else {
                throw ModelError.invalidConfig(file: file, reason: "\(field) must have one value per block (\(n))")
            }
            return l
        }
        inChannels = raw.in_channels ?? 4
        outChannels = raw.out_channels ?? 4
        blockOutChannels = raw.block_out_channels ?? blockOutChannels
        downBlockTypes = raw.down_block_types ?? ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
        upBlockTypes = raw.up_block_types ?? ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
        midBlockType = raw.mid_block_type ?? "UNetMidBlock2DCrossAttn"
        layersPerBlock = try list(raw.layers_per_block, "layers_per_block", default: 2)
        if raw.num_attention_heads != nil {
            throw ModelError.unsupportedConfig(file: file, field: "num_attention_heads", value: "non-null (diffusers refuses it too)")
        }
        heads = try list(raw.attention_head_dim, "attention_head_dim", default: 8)
        crossAttentionDim = try list(raw.cross_attention_dim, "cross_attention_dim", default: 1280)
        transformerLayersPerBlock = try list(raw.transformer_layers_per_block, "transformer_layers_per_block", default: 1)
        normNumGroups = raw.norm_num_groups ?? 32
        normEps = raw.norm_eps ?? 1e-5
        useLinearProjection = raw.use_linear_projection ?? false
        upcastAttention = raw.upcast_attention ?? false
        flipSinToCos = raw.flip_sin_to_cos ?? true
        freqShift = raw.freq_shift ?? 0
        sampleSize = raw.sample_size ?? 64
        downsamplePadding = raw.downsample_padding ?? 1
        midBlockScaleFactor = raw.mid_block_scale_factor ?? 1
        resnetOutScaleFactor = raw.resnet_out_scale_factor ?? 1
        convInKernel = raw.conv_in_kernel ?? 3
        convOutKernel = raw.conv_out_kernel ?? 3
        centerInputSample = raw.center_input_sample ?? false
        try raw.refuseUnsupported(file: file)
        try validate(file: file)
    }

    func validate(file: String) throws {
        guard (1...8).contains(levels), blockOutChannels.allSatisfy({ $0 > 0 && $0 < 1 << 16 }) else {
            throw ModelError.invalidConfig(file: file, reason: "block_out_channels \(blockOutChannels) is out of range")
        }
        guard downBlockTypes.count == levels, upBlockTypes.count == levels else {
            throw ModelError.invalidConfig(file: file, reason: "down_block_types and up_block_types need \(levels) entries each")
        }
        for t in downBlockTypes where t != "CrossAttnDownBlock2D" && t != "DownBlock2D" {
            throw ModelError.unsupportedConfig(file: file, field: "down_block_types", value: t)
        }
        for t in upBlockTypes where t != "CrossAttnUpBlock2D" && t != "UpBlock2D" {
            throw ModelError.unsupportedConfig(file: file, field: "up_block_types", value: t)
        }
        if let m = midBlockType, m != "UNetMidBlock2DCrossAttn" {
            throw ModelError.unsupportedConfig(file: file, field: "mid_block_type", value: m)
        }
        for (field, v) in [("in_channels", inChannels), ("out_channels", outChannels), ("norm_num_groups", normNumGroups)]
        where v <= 0 || v > 1 << 16 {
            throw ModelError.invalidConfig(file: file, reason: "\(field) = \(v) is out of range")
        }
        for (i, c) in blockOutChannels.enumerated() {
            guard c % normNumGroups == 0 else {
                throw ModelError.invalidConfig(
                    file: file, reason: "block_out_channels[\(i)] = \(c) is not divisible by norm_num_groups \(normNumGroups)")
            }
            guard heads[i] > 0, c % heads[i] == 0 else {
                throw ModelError.invalidConfig(file: file, reason: "block \(i): \(c) channels cannot be split into \(heads[i]) heads")
            }
        }
        for (field, l) in [
            ("layers_per_block", layersPerBlock), ("transformer_layers_per_block", transformerLayersPerBlock),
            ("cross_attention_dim", crossAttentionDim),
        ] where l.contains(where: { $0 <= 0 || $0 > 1 << 16 }) {
            throw ModelError.invalidConfig(file: file, reason: "\(field) \(l) is out of range")
        }
        for (field, k) in [("conv_in_kernel", convInKernel), ("conv_out_kernel", convOutKernel)] where k <= 0 || k % 2 == 0 {
            throw ModelError.unsupportedConfig(file: file, field: field, value: "\(k)")
        }
    }
}

/// The JSON as diffusers writes it.
private struct RawUNetConfig: Decodable {
    var class_name: String?
    var in_channels: Int?, out_channels: Int?, block_out_channels: [Int]?
    var down_block_types: [String]?, up_block_types: [String]?, mid_block_type: String?
    var layers_per_block: IntOrList?, attention_head_dim: IntOrList?, num_attention_heads: IntOrList?
    var cross_attention_dim: IntOrList?, transformer_layers_per_block: IntOrList?
    var reverse_transformer_layers_per_block: [[Int]]?
    var norm_num_groups: Int?, norm_eps: Double?
    var use_linear_projection: Bool?, upcast_attention: Bool?, flip_sin_to_cos: Bool?, freq_shift: Double?
    var sample_size: Int?, downsample_padding: Int?, mid_block_scale_factor: Double?
    var resnet_out_scale_factor: Double?, conv_in_kernel: Int?, conv_out_kernel: Int?, center_input_sample: Bool?
    var act_fn: String?, time_embedding_type: String?, resnet_time_scale_shift: String?
    var class_embed_type: String?, addition_embed_type: String?, num_class_embeds: Int?
    var only_cross_attention: Bool?, dual_cross_attention: Bool?, time_cond_proj_dim: Int?
    var encoder_hid_dim: Int?, encoder_hid_dim_type: String?, timestep_post_act: String?
    var time_embedding_act_fn: String?, resnet_skip_time_act: Bool?, cross_attention_norm: String?
    var attention_type: String?, mid_block_only_cross_attention: Bool?, time_embedding_dim: Int?
    var class_embeddings_concat: Bool?, addition_time_embed_dim: Int?
    var projection_class_embeddings_input_dim: Int?

    enum CodingKeys: String, CodingKey {
        case class_name = "_class_name"
        case in_channels, out_channels, block_out_channels, down_block_types, up_block_types, mid_block_type
        case layers_per_block, attention_head_dim, num_attention_heads, cross_attention_dim
        case transformer_layers_per_block, reverse_transformer_layers_per_block, norm_num_groups, norm_eps
        case use_linear_projection, upcast_attention, flip_sin_to_cos, freq_shift, sample_size
        case downsample_padding, mid_block_scale_factor, resnet_out_scale_factor, conv_in_kernel
        case conv_out_kernel, center_input_sample, act_fn, time_embedding_type, resnet_time_scale_shift
        case class_embed_type, addition_embed_type, num_class_embeds, only_cross_attention
        case dual_cross_attention, time_cond_proj_dim, encoder_hid_dim, encoder_hid_dim_type
        case timestep_post_act, time_embedding_act_fn, resnet_skip_time_act, cross_attention_norm
        case attention_type, mid_block_only_cross_attention, time_embedding_dim, class_embeddings_concat
        case addition_time_embed_dim, projection_class_embeddings_input_dim
    }

    /// Refuses, by name, every value that would change the graph in a way pivot does not implement.
    func refuseUnsupported(file: String) throws {
        try require(act_fn ?? "silu", "silu", field: "act_fn", file: file)
        try require(time_embedding_type ?? "positional", "positional", field: "time_embedding_type", file: file)
        try require(resnet_time_scale_shift ?? "default", "default", field: "resnet_time_scale_shift", file: file)
        try require(attention_type ?? "default", "default", field: "attention_type", file: file)
        try require(class_embed_type, nil, field: "class_embed_type", file: file)
        try require(addition_embed_type, nil, field: "addition_embed_type", file: file)
        try require(num_class_embeds, nil, field: "num_class_embeds", file: file)
        try require(time_cond_proj_dim, nil, field: "time_cond_proj_dim", file: file)
        try require(encoder_hid_dim, nil, field: "encoder_hid_dim", file: file)
        try require(encoder_hid_dim_type, nil, field: "encoder_hid_dim_type", file: file)
        try require(timestep_post_act, nil, field: "timestep_post_act", file: file)
        try require(time_embedding_act_fn, nil, field: "time_embedding_act_fn", file: file)
        try require(cross_attention_norm, nil, field: "cross_attention_norm", file: file)
        try require(time_embedding_dim, nil, field: "time_embedding_dim", file: file)
        try require(reverse_transformer_layers_per_block == nil, true, field: "reverse_transformer_layers_per_block", file: file)
        try require(only_cross_attention ?? false, false, field: "only_cross_attention", file: file)
        try require(dual_cross_attention ?? false, false, field: "dual_cross_attention", file: file)
        try require(resnet_skip_time_act ?? false, false, field: "resnet_skip_time_act", file: file)
        try require(mid_block_only_cross_attention ?? false, false, field: "mid_block_only_cross_attention", file: file)
        try require(class_embeddings_concat ?? false, false, field: "class_embeddings_concat", file: file)
    }
}
