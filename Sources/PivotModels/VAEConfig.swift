import Foundation

/// diffusers' `AutoencoderKL` config, read from `vae/config.json`.
public struct VAEConfig: Sendable {
    public var inChannels = 3
    public var outChannels = 3
    public var latentChannels = 4
    public var blockOutChannels: [Int] = [128, 256, 512, 512]
    public var layersPerBlock = 2
    public var normNumGroups = 32
    public var scalingFactor: Double = 0.18215
    public var sampleSize = 512
    public var useQuantConv = true
    public var usePostQuantConv = true
    public var midBlockAddAttention = true

    /// Image side / latent side (8 for SD).
    public var downsampleFactor: Int { 1 << (blockOutChannels.count - 1) }

    /// Parses and validates the JSON of `vae/config.json`; `file` names it in errors.
    public init(json: Data, file: String = "vae/config.json") throws {
        let raw = try decodeConfig(RawVAEConfig.self, from: json, file: file)
        try require(raw.class_name ?? "AutoencoderKL", "AutoencoderKL", field: "_class_name", file: file)
        inChannels = raw.in_channels ?? 3
        outChannels = raw.out_channels ?? 3
        latentChannels = raw.latent_channels ?? 4
        blockOutChannels = raw.block_out_channels ?? [64]
        layersPerBlock = raw.layers_per_block ?? 1
        normNumGroups = raw.norm_num_groups ?? 32
        scalingFactor = raw.scaling_factor ?? 0.18215
        sampleSize = raw.sample_size ?? 32
        useQuantConv = raw.use_quant_conv ?? true
        usePostQuantConv = raw.use_post_quant_conv ?? true
        midBlockAddAttention = raw.mid_block_add_attention ?? true
        try require(raw.act_fn ?? "silu", "silu", field: "act_fn", file: file)
        try require(raw.shift_factor, nil, field: "shift_factor", file: file)
        try require(raw.latents_mean == nil, true, field: "latents_mean", file: file)
        try require(raw.latents_std == nil, true, field: "latents_std", file: file)
        let n = blockOutChannels.count
        guard (1...8).contains(n), blockOutChannels.allSatisfy({ $0 > 0 && $0 < 1 << 16 && $0 % normNumGroups == 0 }),
            normNumGroups > 0
        else {
            throw ModelError.invalidConfig(
                file: file, reason: "block_out_channels \(blockOutChannels) must be divisible by norm_num_groups \(normNumGroups)")
        }
        for t in raw.down_block_types ?? [] where t != "DownEncoderBlock2D" {
            throw ModelError.unsupportedConfig(file: file, field: "down_block_types", value: t)
        }
        for t in raw.up_block_types ?? [] where t != "UpDecoderBlock2D" {
            throw ModelError.unsupportedConfig(file: file, field: "up_block_types", value: t)
        }
        guard (raw.down_block_types?.count ?? n) == n, (raw.up_block_types?.count ?? n) == n else {
            throw ModelError.invalidConfig(file: file, reason: "down_block_types and up_block_types need \(n) entries each")
        }
        for (field, v) in [
            ("in_channels", inChannels), ("out_channels", outChannels), ("latent_channels", latentChannels),
            ("layers_per_block", layersPerBlock),
        ] where v <= 0 || v > 1 << 16 {
            throw ModelError.invalidConfig(file: file, reason: "\(field) = \(v) is out of range")
        }
    }
}

private struct RawVAEConfig: Decodable {
    var class_name: String?
    var in_channels: Int?, out_channels: Int?, latent_channels: Int?, block_out_channels: [Int]?
    var down_block_types: [String]?, up_block_types: [String]?
    var layers_per_block: Int?, norm_num_groups: Int?, scaling_factor: Double?, sample_size: Int?
    var use_quant_conv: Bool?, use_post_quant_conv: Bool?, mid_block_add_attention: Bool?
    var act_fn: String?, shift_factor: Double?, latents_mean: [Double]?, latents_std: [Double]?

    enum CodingKeys: String, CodingKey {
        case class_name = "_class_name"
        case in_channels, out_channels, latent_channels, block_out_channels, down_block_types, up_block_types
        case layers_per_block, norm_num_groups, scaling_factor, sample_size, use_quant_conv, use_post_quant_conv
        case mid_block_add_attention, act_fn, shift_factor, latents_mean, latents_std
    }
}
