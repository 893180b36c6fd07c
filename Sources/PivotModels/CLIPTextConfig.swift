import Foundation
import PivotTensor

/// transformers' `CLIPTextConfig`, read from `text_encoder/config.json`.
public struct CLIPTextConfig: Decodable, Sendable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var maxPositionEmbeddings: Int
    public var hiddenAct: String
    public var layerNormEps: Double

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size"
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case maxPositionEmbeddings = "max_position_embeddings"
        case hiddenAct = "hidden_act"
        case layerNormEps = "layer_norm_eps"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? 49408
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? 512
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? 2048
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? 12
        numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? 8
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? 77
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "quick_gelu"
        layerNormEps = try c.decodeIfPresent(Double.self, forKey: .layerNormEps) ?? 1e-5
    }

    /// Parses and validates `config.json` contents; `file` names it in errors.
    public init(json: Data, file: String = "text_encoder/config.json") throws {
        self = try decodeConfig(CLIPTextConfig.self, from: json, file: file)
        try validate(file: file)
    }

    func validate(file: String) throws {
        for (name, v) in [
            ("vocab_size", vocabSize), ("hidden_size", hiddenSize),
            ("intermediate_size", intermediateSize), ("num_hidden_layers", numHiddenLayers),
            ("num_attention_heads", numAttentionHeads),
            ("max_position_embeddings", maxPositionEmbeddings),
        ] where v <= 0 || v > 1 << 20 {
            throw ModelError.invalidConfig(file: file, reason: "\(name) = \(v) is out of range")
        }
        guard hiddenSize % numAttentionHeads == 0 else {
            throw ModelError.invalidConfig(
                file: file, reason: "hidden_size \(hiddenSize) is not divisible by num_attention_heads \(numAttentionHeads)")
        }
        guard activation != nil else {
            throw ModelError.unsupportedConfig(file: file, field: "hidden_act", value: hiddenAct)
        }
    }

    /// The MLP activation (`quick_gelu` for SD 1.x, exact `gelu` for SD 2.x).
    public var activation: Activation? { Activation(rawValue: hiddenAct) }
}
