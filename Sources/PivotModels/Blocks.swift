import PivotTensor

/// diffusers' `ResnetBlock2D` (time-scale-shift "default"): GroupNorm → SiLU → conv → (+ time projection)
/// → GroupNorm → SiLU → conv, plus a 1×1 `conv_shortcut` when the channel count changes.
struct ResnetBlock {
    let norm1, norm2: GroupNorm
    let conv1, conv2: Conv2d
    let timeProjection: Linear?
    let shortcut: Conv2d?
    let outputScale: Float

    init(
        _ p: Params, in cin: Int, out cout: Int, timeChannels: Int?, groups: Int, eps: Float,
        outputScale: Double = 1
    ) throws {
        norm1 = try GroupNorm(p.scope("norm1"), channels: cin, groups: groups, eps: eps)
        conv1 = try Conv2d(p.scope("conv1"), in: cin, out: cout, kernel: 3)
        timeProjection = try timeChannels.map { try Linear(p.scope("time_emb_proj"), in: $0, out: cout) }
        norm2 = try GroupNorm(p.scope("norm2"), channels: cout, groups: groups, eps: eps)
        conv2 = try Conv2d(p.scope("conv2"), in: cout, out: cout, kernel: 3)
        shortcut = cin == cout ? nil : try Conv2d(p.scope("conv_shortcut"), in: cin, out: cout, kernel: 1)
        self.outputScale = Float(outputScale)
    }

    /// x: [B, Cin, H, W]; activatedTime: SiLU(time embedding) [B, T] or nil. Returns [B, Cout, H, W].
    func callAsFunction(_ x: Tensor, activatedTime: Tensor?) -> Tensor {
        var h = conv1(norm1(x, silu: true))
        if let proj = timeProjection, let t = activatedTime { h = addingChannelBias(h, proj(t)) }
        h = conv2(norm2(h, silu: true))
        h = add(shortcut.map { $0(x) } ?? x, h)
        if outputScale != 1 { h = scale(h, 1 / outputScale) }
        return h
    }
}

/// diffusers' `Attention` as used by the UNet transformer blocks: `to_q/to_k/to_v` without bias,
/// `to_out.0` with bias, multi-head scaled dot-product attention (scores in fp32).
struct CrossAttention {
    let q, k, v, out: Linear
    let heads: Int
    let site: AttentionSite

    init(_ p: Params, queryDim: Int, contextDim: Int, heads: Int, isCross: Bool) throws {
        q = try Linear(p.scope("to_q"), in: queryDim, out: queryDim, bias: false)
        k = try Linear(p.scope("to_k"), in: contextDim, out: queryDim, bias: false)
        v = try Linear(p.scope("to_v"), in: contextDim, out: queryDim, bias: false)
        out = try Linear(p.scope("to_out.0"), in: queryDim, out: queryDim)
        self.heads = heads
        let place: AttentionSite.Place = p.prefix.hasPrefix("down") ? .down : p.prefix.hasPrefix("mid") ? .mid : .up
        site = AttentionSite(name: p.prefix, place: place, isCross: isCross)
    }

    /// x: [B, N, C]; context: [B, M, Dc] (x itself for self-attention). Returns [B, N, C]. With an
    /// attention controller that wants this layer, the probabilities are materialised and handed to it.
    func callAsFunction(_ x: Tensor, context: Tensor, controller: AttentionController?) -> Tensor {
        if let controller {
            var s = site
            s.queryTokens = x.dim(1)
            s.heads = heads
            if controller.wants(s) {
                let p = attentionProbabilities(q: q(x), k: k(context), heads: heads)
                controller.edit(p, at: s)
                return out(applyAttention(p, v: v(context), heads: heads))
            }
        }
        return out(attention(q: q(x), k: k(context), v: v(context), heads: heads))
    }
}

/// diffusers' `BasicTransformerBlock` (layer norms, self-attention, cross-attention, GEGLU feed-forward).
struct TransformerBlock {
    let norm1, norm2, norm3: LayerNorm
    let attn1, attn2: CrossAttention
    let ffIn, ffOut: Linear

    init(_ p: Params, dim: Int, contextDim: Int, heads: Int) throws {
        norm1 = try LayerNorm(p.scope("norm1"), dim: dim, eps: 1e-5)
        norm2 = try LayerNorm(p.scope("norm2"), dim: dim, eps: 1e-5)
        norm3 = try LayerNorm(p.scope("norm3"), dim: dim, eps: 1e-5)
        attn1 = try CrossAttention(p.scope("attn1"), queryDim: dim, contextDim: dim, heads: heads, isCross: false)
        attn2 = try CrossAttention(p.scope("attn2"), queryDim: dim, contextDim: contextDim, heads: heads, isCross: true)
        ffIn = try Linear(p.scope("ff.net.0.proj"), in: dim, out: dim * 8)
        ffOut = try Linear(p.scope("ff.net.2"), in: dim * 4, out: dim)
    }

    /// x: [B, N, C]; context: [B, M, Dc].
    func callAsFunction(_ x: Tensor, context: Tensor, controller: AttentionController?) -> Tensor {
        let n1 = norm1(x)
        var h = add(x, attn1(n1, context: n1, controller: controller))
        h = add(h, attn2(norm2(h), context: context, controller: controller))
        return add(h, ffOut(geglu(ffIn(norm3(h)))))
    }
}

/// diffusers' `Transformer2DModel` on continuous input: GroupNorm (eps 1e-6), `proj_in` (1×1 conv or
/// Linear), transformer blocks over H·W tokens, `proj_out`, residual.
struct SpatialTransformer {
    let norm: GroupNorm
    let projIn, projOut: Conv2d?
    let projInLinear, projOutLinear: Linear?
    let blocks: [TransformerBlock]

    init(
        _ p: Params, channels: Int, heads: Int, layers: Int, contextDim: Int, groups: Int,
        linearProjection: Bool
    ) throws {
        norm = try GroupNorm(p.scope("norm"), channels: channels, groups: groups, eps: 1e-6)
        if linearProjection {
            projInLinear = try Linear(p.scope("proj_in"), in: channels, out: channels)
            projOutLinear = try Linear(p.scope("proj_out"), in: channels, out: channels)
            projIn = nil
            projOut = nil
        } else {
            projIn = try Conv2d(p.scope("proj_in"), in: channels, out: channels, kernel: 1)
            projOut = try Conv2d(p.scope("proj_out"), in: channels, out: channels, kernel: 1)
            projInLinear = nil
            projOutLinear = nil
        }
        blocks = try (0..<layers).map {
            try TransformerBlock(p.scope("transformer_blocks", $0), dim: channels, contextDim: contextDim, heads: heads)
        }
    }

    /// x: [B, C, H, W]; context: [B, M, Dc]. Returns [B, C, H, W].
    func callAsFunction(_ x: Tensor, context: Tensor, controller: AttentionController?) -> Tensor {
        let (b, c, hh, ww) = (x.dim(0), x.dim(1), x.dim(2), x.dim(3))
        var h = norm(x)
        if let projIn { h = projIn(h) }
        var tokens = transposeLast2(h.reshaped([b, c, hh * ww]))  // [B, HW, C]
        if let projInLinear { tokens = projInLinear(tokens) }
        for block in blocks { tokens = block(tokens, context: context, controller: controller) }
        if let projOutLinear { tokens = projOutLinear(tokens) }
        h = transposeLast2(tokens).reshaped([b, c, hh, ww])
        if let projOut { h = projOut(h) }
        return add(h, x)
    }
}

/// diffusers' `Downsample2D` (3×3 conv, stride 2). With `asymmetricPad` (the VAE encoder's padding 0),
/// the input is first padded by one zero row and column at the bottom and right.
struct Downsample {
    let conv: Conv2d
    let asymmetricPad: Bool

    init(_ p: Params, channels: Int, padding: Int) throws {
        conv = try Conv2d(p.scope("conv"), in: channels, out: channels, kernel: 3, stride: 2, padding: padding)
        asymmetricPad = padding == 0
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        guard asymmetricPad else { return conv(x) }
        return conv(padBottomRight(x))  // [B, C, H + 1, W + 1]
    }
}

/// diffusers' `Upsample2D`: nearest ×2, then 3×3 conv.
struct Upsample {
    let conv: Conv2d

    init(_ p: Params, channels: Int) throws {
        conv = try Conv2d(p.scope("conv"), in: channels, out: channels, kernel: 3)
    }

    func callAsFunction(_ x: Tensor) -> Tensor { conv(upsampleNearest2x(x)) }
}
