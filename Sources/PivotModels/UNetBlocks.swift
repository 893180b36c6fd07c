import PivotTensor

/// `CrossAttnDownBlock2D` / `DownBlock2D`: ResNets (each followed by a spatial transformer when the block
/// has attention), then an optional downsampler. Every stage's output is pushed on the skip stack.
struct DownBlock {
    let resnets: [ResnetBlock]
    let attentions: [SpatialTransformer]
    let downsampler: Downsample?

    init(
        _ p: Params, in cin: Int, out cout: Int, timeChannels: Int, layers: Int, attention: AttentionSpec?,
        downsample: Bool, config c: UNetConfig
    ) throws {
        let eps = Float(c.normEps)
        resnets = try (0..<layers).map {
            try ResnetBlock(
                p.scope("resnets", $0), in: $0 == 0 ? cin : cout, out: cout, timeChannels: timeChannels,
                groups: c.normNumGroups, eps: eps, outputScale: c.resnetOutScaleFactor)
        }
        attentions = try SpatialTransformer.stack(p, count: layers, channels: cout, attention, config: c)
        downsampler = downsample ? try Downsample(p.scope("downsamplers.0"), channels: cout, padding: c.downsamplePadding) : nil
    }

    func callAsFunction(
        _ x: Tensor, time: Tensor, context: Tensor, controller: AttentionController?,
        skips: inout [Tensor]
    ) -> Tensor {
        var h = x
        for (i, resnet) in resnets.enumerated() {
            h = resnet(h, activatedTime: time)
            if !attentions.isEmpty { h = attentions[i](h, context: context, controller: controller) }
            skips.append(h)
        }
        if let downsampler {
            h = downsampler(h)
            skips.append(h)
        }
        return h
    }
}

/// `UNetMidBlock2DCrossAttn`: ResNet, then (transformer, ResNet) pairs.
struct MidBlock {
    let resnets: [ResnetBlock]
    let attentions: [SpatialTransformer]

    init(_ p: Params, channels: Int, timeChannels: Int, attention a: AttentionSpec, config c: UNetConfig) throws {
        let eps = Float(c.normEps)
        resnets = try (0..<2).map {
            try ResnetBlock(
                p.scope("resnets", $0), in: channels, out: channels, timeChannels: timeChannels,
                groups: c.normNumGroups, eps: eps, outputScale: c.midBlockScaleFactor)
        }
        attentions = try SpatialTransformer.stack(p, count: 1, channels: channels, a, config: c)
    }

    func callAsFunction(_ x: Tensor, time: Tensor, context: Tensor, controller: AttentionController?) -> Tensor {
        var h = resnets[0](x, activatedTime: time)
        for (attn, resnet) in zip(attentions, resnets.dropFirst()) {
            h = resnet(attn(h, context: context, controller: controller), activatedTime: time)
        }
        return h
    }
}

/// `CrossAttnUpBlock2D` / `UpBlock2D`: each ResNet takes the running features concatenated with the next
/// skip from the stack; optional transformers; then an optional upsampler.
struct UpBlock {
    let resnets: [ResnetBlock]
    let attentions: [SpatialTransformer]
    let upsampler: Upsample?

    init(
        _ p: Params, in cin: Int, out cout: Int, prev: Int, timeChannels: Int, layers: Int,
        attention: AttentionSpec?, upsample: Bool, config c: UNetConfig
    ) throws {
        let eps = Float(c.normEps)
        resnets = try (0..<layers).map { j in
            let skip = j == layers - 1 ? cin : cout
            let input = j == 0 ? prev : cout
            return try ResnetBlock(
                p.scope("resnets", j), in: input + skip, out: cout, timeChannels: timeChannels,
                groups: c.normNumGroups, eps: eps, outputScale: c.resnetOutScaleFactor)
        }
        attentions = try SpatialTransformer.stack(p, count: layers, channels: cout, attention, config: c)
        upsampler = upsample ? try Upsample(p.scope("upsamplers.0"), channels: cout) : nil
    }

    func callAsFunction(
        _ x: Tensor, time: Tensor, context: Tensor, controller: AttentionController?,
        skips: inout [Tensor]
    ) -> Tensor {
        var h = x
        for (i, resnet) in resnets.enumerated() {
            h = resnet(concatChannels(h, skips.removeLast()), activatedTime: time)
            if !attentions.isEmpty { h = attentions[i](h, context: context, controller: controller) }
        }
        if let upsampler { h = upsampler(h) }
        return h
    }
}

extension SpatialTransformer {
    /// `attentions.0 … attentions.(count−1)` of a block, or none when the block has no attention.
    static func stack(_ p: Params, count: Int, channels: Int, _ spec: AttentionSpec?, config c: UNetConfig) throws
        -> [SpatialTransformer]
    {
        guard let a = spec else { return [] }
        return try (0..<count).map {
            try SpatialTransformer(
                p.scope("attentions", $0), channels: channels, heads: a.heads, layers: a.layers,
                contextDim: a.contextDim, groups: c.normNumGroups, linearProjection: c.useLinearProjection)
        }
    }
}
