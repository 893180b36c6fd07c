import PivotTensor

/// transformers' `CLIPTextModel` (the Stable Diffusion text encoder): token + position embeddings,
/// pre-LayerNorm transformer layers with causal self-attention, final LayerNorm.
/// Matches `CLIPTextModel(input_ids).last_hidden_state` (no attention mask, as diffusers calls it).
public final class CLIPTextModel {
    /// The arithmetic of its passes (fp32 unless a pipeline chooses otherwise).
    public var precision = NetworkPrecision()
    public let config: CLIPTextConfig
    private(set) var tokenEmbedding: Tensor  // [V + added, D]
    let positionEmbedding: Tensor  // [P, D]
    let layers: [CLIPEncoderLayer]
    let finalNorm: LayerNorm

    /// Builds the network from parameters named as transformers saves them (without `text_model.`).
    public init(config: CLIPTextConfig, parameters p: Params) throws {
        self.config = config
        let d = config.hiddenSize
        guard let act = config.activation else {
            throw ModelError.unsupportedConfig(file: "text_encoder/config.json", field: "hidden_act", value: config.hiddenAct)
        }
        tokenEmbedding = try p("embeddings.token_embedding.weight", [config.vocabSize, d])
        positionEmbedding = try p("embeddings.position_embedding.weight", [config.maxPositionEmbeddings, d])
        layers = try (0..<config.numHiddenLayers).map {
            try CLIPEncoderLayer(p.scope("encoder.layers", $0), config: config, activation: act)
        }
        finalNorm = try LayerNorm(p.scope("final_layer_norm"), dim: d, eps: Float(config.layerNormEps))
    }

    /// Rows of the token embedding table: the config's vocabulary plus appended tokens.
    public var tokenCount: Int { tokenEmbedding.dim(0) }

    /// Row `row` of the token embedding table [1, D] (a copy).
    public func tokenEmbedding(row: Int) throws -> Tensor {
        guard (0..<tokenCount).contains(row) else {
            throw ModelError.invalidInput("token id \(row) is outside the vocabulary (0..<\(tokenCount))")
        }
        return batchSlice(tokenEmbedding, row..<row + 1)  // [1, D]
    }

    /// Sets rows `first ..< first + n` of the token embedding table to `rows` [n, D], growing the table as
    /// needed (textual-inversion tokens, as transformers' `resize_token_embeddings` then setting the rows).
    public func setTokenEmbeddings(startingAt first: Int, _ rows: Tensor) throws {
        let d = config.hiddenSize
        guard rows.shape.count == 2, rows.dim(1) == d, rows.dim(0) > 0, first >= 0 else {
            throw ModelError.invalidInput("token embeddings must be [n, \(d)], got \(rows.shape)")
        }
        let needed = first + rows.dim(0)
        if needed > tokenCount {
            tokenEmbedding = concatBatch(tokenEmbedding, Tensor(zeros: [needed - tokenCount, d]))  // [needed, D]
        }
        replaceBatchSlice(tokenEmbedding, at: first, with: rows)
    }

    /// Input embeddings (token + position) for ids [B, T] given as a flat row-major array.
    public func embed(ids: [Int], batch: Int) throws -> Tensor {
        let d = config.hiddenSize
        let t = ids.count / max(batch, 1)
        guard batch > 0, ids.count == batch * t, t > 0, t <= config.maxPositionEmbeddings else {
            throw ModelError.invalidInput("input_ids must be [B, T] with T ≤ \(config.maxPositionEmbeddings)")
        }
        if let id = ids.first(where: { $0 < 0 || $0 >= tokenCount }) {
            throw ModelError.invalidInput("token id \(id) is outside the vocabulary (0..<\(tokenCount))")
        }
        let tokens = gatherRows(tokenEmbedding, ids)  // [B·T, D]
        let positions = gatherRows(positionEmbedding, ids.indices.map { $0 % t })  // [B·T, D]
        return zipMap(tokens, positions, +).reshaped([batch, t, d])  // [B, T, D]
    }

    /// `last_hidden_state` [B, T, D] for token ids [B, T].
    public func callAsFunction(ids: [Int], batch: Int) throws -> Tensor {
        try encode(embeddings: embed(ids: ids, batch: batch))
    }

    /// transformers' `pooler_output` [1, D] for one prompt's ids (no padding, so no attention mask): the
    /// `last_hidden_state` row at the EOS position as transformers picks it. With the legacy `eos_token_id` of 2
    /// (openai/clip-vit-large-patch14 and most CLIP configs) that is the first position of the largest id;
    /// otherwise the first position holding `eosTokenID`, or 0 when none does (a truncated prompt).
    public func pooledOutput(ids: [Int], eosTokenID: Int) throws -> Tensor {
        let hidden = try callAsFunction(ids: ids, batch: 1)  // [1, T, D]
        let position: Int
        if eosTokenID == 2 {
            let largest = ids.max() ?? 0
            position = ids.firstIndex(of: largest) ?? 0
        } else {
            position = ids.firstIndex(of: eosTokenID) ?? 0
        }
        return gatherRows(hidden.reshaped([ids.count, config.hiddenSize]), [position])  // [1, D]
    }

    /// `last_hidden_state` from input embeddings [B, T, D] (token + position already added).
    public func encode(embeddings: Tensor) -> Tensor {
        precision.run {
            var h = embeddings
            for layer in layers { h = layer(h) }
            return finalNorm(h)
        }
    }
}

/// One pre-LayerNorm CLIP encoder layer.
struct CLIPEncoderLayer {
    let norm1, norm2: LayerNorm
    let q, k, v, out: Linear
    let fc1, fc2: Linear
    let heads: Int
    let activation: Activation
    /// Causal self-attention (the text model) or full (the vision model).
    let causal: Bool

    init(_ p: Params, config: CLIPTextConfig, activation: Activation) throws {
        try self.init(
            p, hidden: config.hiddenSize, intermediate: config.intermediateSize, heads: config.numAttentionHeads,
            eps: Float(config.layerNormEps), activation: activation, causal: true)
    }

    init(_ p: Params, hidden d: Int, intermediate: Int, heads: Int, eps: Float, activation: Activation, causal: Bool) throws {
        norm1 = try LayerNorm(p.scope("layer_norm1"), dim: d, eps: eps)
        norm2 = try LayerNorm(p.scope("layer_norm2"), dim: d, eps: eps)
        q = try Linear(p.scope("self_attn.q_proj"), in: d, out: d)
        k = try Linear(p.scope("self_attn.k_proj"), in: d, out: d)
        v = try Linear(p.scope("self_attn.v_proj"), in: d, out: d)
        out = try Linear(p.scope("self_attn.out_proj"), in: d, out: d)
        fc1 = try Linear(p.scope("mlp.fc1"), in: d, out: intermediate)
        fc2 = try Linear(p.scope("mlp.fc2"), in: intermediate, out: d)
        self.heads = heads
        self.activation = activation
        self.causal = causal
    }

    func callAsFunction(_ x: Tensor) -> Tensor {  // x: [B, T, D]
        let n = norm1(x)
        let a = attention(q: q(n), k: k(n), v: v(n), heads: heads, causal: causal)
        let h = add(x, out(a))
        let m = activation(fc1(norm2(h)))  // [B, T, F]
        return add(h, fc2(m))
    }
}
