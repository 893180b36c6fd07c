import Foundation
import PivotTensor

/// transformers' `CLIPVisionConfig`, read from a `CLIPModel` folder's `config.json` (`vision_config`).
public struct CLIPVisionConfig: Decodable, Sendable {
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numChannels: Int
    public var imageSize: Int
    public var patchSize: Int
    public var hiddenAct: String
    public var layerNormEps: Double

    enum CodingKeys: String, CodingKey {
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case numChannels = "num_channels"
        case imageSize = "image_size"
        case patchSize = "patch_size"
        case hiddenAct = "hidden_act"
        case layerNormEps = "layer_norm_eps"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? 768
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? 3072
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? 12
        numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? 12
        numChannels = try c.decodeIfPresent(Int.self, forKey: .numChannels) ?? 3
        imageSize = try c.decodeIfPresent(Int.self, forKey: .imageSize) ?? 224
        patchSize = try c.decodeIfPresent(Int.self, forKey: .patchSize) ?? 32
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "quick_gelu"
        layerNormEps = try c.decodeIfPresent(Double.self, forKey: .layerNormEps) ?? 1e-5
    }

    /// Parses and validates the `vision_config` object's JSON; `file` names it in errors.
    public init(json: Data, file: String) throws {
        self = try decodeConfig(CLIPVisionConfig.self, from: json, file: file)
        try validate(file: file)
    }

    func validate(file: String) throws {
        for (name, v) in [
            ("vision_config.hidden_size", hiddenSize), ("vision_config.intermediate_size", intermediateSize),
            ("vision_config.num_hidden_layers", numHiddenLayers), ("vision_config.num_attention_heads", numAttentionHeads),
            ("vision_config.image_size", imageSize), ("vision_config.patch_size", patchSize),
        ] where v <= 0 || v > 1 << 16 {
            throw ModelError.invalidConfig(file: file, reason: "\(name) = \(v) is out of range")
        }
        guard hiddenSize % numAttentionHeads == 0 else {
            throw ModelError.invalidConfig(
                file: file,
                reason: "vision_config.hidden_size \(hiddenSize) is not divisible by num_attention_heads \(numAttentionHeads)")
        }
        guard imageSize % patchSize == 0 else {
            throw ModelError.invalidConfig(
                file: file, reason: "vision_config.image_size \(imageSize) is not a multiple of patch_size \(patchSize)")
        }
        try require(numChannels, 3, field: "vision_config.num_channels", file: file)
        guard activation != nil else {
            throw ModelError.unsupportedConfig(file: file, field: "vision_config.hidden_act", value: hiddenAct)
        }
    }

    /// The MLP activation (`quick_gelu` for OpenAI's CLIP).
    public var activation: Activation? { Activation(rawValue: hiddenAct) }
    /// Patches along each side of the image.
    public var grid: Int { imageSize / patchSize }
}

/// transformers' `CLIPVisionTransformer`: patch embedding (a strided convolution without bias), class token and
/// position embeddings, `pre_layrnorm`, the pre-LayerNorm encoder layers of the text model with full attention,
/// and `post_layernorm` on the class token. Matches `CLIPVisionModel(pixel_values).pooler_output`.
public final class CLIPVisionModel {
    public let config: CLIPVisionConfig
    let patchEmbedding: Conv2d
    let classEmbedding: Tensor  // [D]
    let positionEmbedding: Tensor  // [N + 1, D]
    let preNorm, postNorm: LayerNorm
    let layers: [CLIPEncoderLayer]

    /// Builds the network from parameters named as transformers saves them (without `vision_model.`).
    public init(config: CLIPVisionConfig, parameters p: Params) throws {
        self.config = config
        let d = config.hiddenSize, eps = Float(config.layerNormEps)
        guard let act = config.activation else {
            throw ModelError.unsupportedConfig(file: "config.json", field: "vision_config.hidden_act", value: config.hiddenAct)
        }
        patchEmbedding = try Conv2d(
            p.scope("embeddings.patch_embedding"), in: config.numChannels, out: d, kernel: config.patchSize,
            stride: config.patchSize, padding: 0, bias: false)
        classEmbedding = try p("embeddings.class_embedding", [d])
        positionEmbedding = try p("embeddings.position_embedding.weight", [config.grid * config.grid + 1, d])
        preNorm = try LayerNorm(p.scope("pre_layrnorm"), dim: d, eps: eps)
        layers = try (0..<config.numHiddenLayers).map {
            try CLIPEncoderLayer(
                p.scope("encoder.layers", $0), hidden: d, intermediate: config.intermediateSize,
                heads: config.numAttentionHeads, eps: eps, activation: act, causal: false)
        }
        postNorm = try LayerNorm(p.scope("post_layernorm"), dim: d, eps: eps)
    }

    /// `pooler_output` [1, D]: the post-LayerNorm class token for pixel values [1, C, S, S] (S = `image_size`).
    public func callAsFunction(pixels: Tensor) throws -> Tensor {
        let s = config.imageSize, d = config.hiddenSize, n = config.grid * config.grid
        guard pixels.shape == [1, config.numChannels, s, s] else {
            throw ModelError.invalidInput("pixel values must be [1, \(config.numChannels), \(s), \(s)], got \(pixels.shape)")
        }
        let patches = patchEmbedding(pixels).reshaped([1, d, n])  // [1, D, N]
        let tokens = transposeLast2(patches)  // [1, N, D]
        var values = [Float](repeating: 0, count: (n + 1) * d)
        for j in 0..<d { values[j] = classEmbedding.data[j] + positionEmbedding.data[j] }
        for i in 0..<n {
            for j in 0..<d { values[(i + 1) * d + j] = tokens.data[i * d + j] + positionEmbedding.data[(i + 1) * d + j] }
        }
        var h = preNorm(Tensor(shape: [1, n + 1, d], values: values))
        for layer in layers { h = layer(h) }
        return postNorm(gatherRows(h.reshaped([n + 1, d]), [0]))  // [1, D]
    }
}
