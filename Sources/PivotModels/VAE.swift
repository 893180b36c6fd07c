import Foundation
import PivotTensor

/// diffusers' `AutoencoderKL`: `encode` returns the posterior mean (unscaled), `decode` the image in
/// roughly [-1, 1] (unclamped). Scaling by `scaling_factor` is the pipeline's job.
public final class VAE {
    /// The arithmetic of its passes (fp32 unless a pipeline chooses otherwise).
    public var precision = NetworkPrecision()
    public let config: VAEConfig
    let encoder: VAEEncoder
    let decoder: VAEDecoder
    let quantConv: Conv2d?
    let postQuantConv: Conv2d?

    /// Builds the autoencoder from parameters named as diffusers saves them.
    public init(config c: VAEConfig, parameters p: Params) throws {
        config = c
        encoder = try VAEEncoder(p.scope("encoder"), config: c)
        decoder = try VAEDecoder(p.scope("decoder"), config: c)
        let l = c.latentChannels
        quantConv = c.useQuantConv ? try Conv2d(p.scope("quant_conv"), in: 2 * l, out: 2 * l, kernel: 1) : nil
        postQuantConv = c.usePostQuantConv ? try Conv2d(p.scope("post_quant_conv"), in: l, out: l, kernel: 1) : nil
    }

    /// Posterior mean [B, latent, H/f, W/f] of images [B, 3, H, W] in [-1, 1].
    public func encode(_ image: Tensor) throws -> Tensor {
        try posterior(image).mean
    }

    /// The posterior diffusers' `latent_dist` is: mean and standard deviation exp(½·clamp(logvar, −30, 20)),
    /// each [B, latent, H/f, W/f], of images [B, 3, H, W] in [-1, 1] (`latent_dist.sample()` is
    /// mean + std · randn).
    public func posterior(_ image: Tensor) throws -> (mean: Tensor, std: Tensor) {
        let f = config.downsampleFactor
        guard image.rank == 4, image.dim(1) == config.inChannels, image.dim(2) % f == 0, image.dim(3) % f == 0,
            image.dim(2) > 0, image.dim(3) > 0
        else {
            throw ModelError.invalidInput("vae: image must be [B, \(config.inChannels), H, W] with H and W multiples of \(f), got \(image.shape)")
        }
        let moments = precision.run { () -> Tensor in
            let m = encoder(image)
            return quantConv.map { $0(m) } ?? m
        }
        let (mean, logvar) = splitChannels(moments, config.latentChannels)  // [B, L, h, w] each
        return (mean, mapElements(logvar) { Foundation.exp(0.5 * min(max($0, -30), 20)) })
    }

    /// Image [B, 3, fh, fw] for latents [B, latent, h, w] (already divided by the scaling factor).
    public func decode(_ latent: Tensor) throws -> Tensor {
        guard latent.rank == 4, latent.dim(1) == config.latentChannels, latent.dim(2) > 0, latent.dim(3) > 0 else {
            throw ModelError.invalidInput("vae: latent must be [B, \(config.latentChannels), h, w], got \(latent.shape)")
        }
        return precision.run { decoder(postQuantConv.map { $0(latent) } ?? latent) }
    }
}

/// `UNetMidBlock2D` of the VAE: ResNet, single-head spatial self-attention, ResNet.
struct VAEMidBlock {
    let resnet1, resnet2: ResnetBlock
    let attention: VAEAttention?

    init(_ p: Params, channels: Int, config c: VAEConfig) throws {
        resnet1 = try ResnetBlock(
            p.scope("resnets.0"), in: channels, out: channels, timeChannels: nil,
            groups: c.normNumGroups, eps: 1e-6)
        resnet2 = try ResnetBlock(
            p.scope("resnets.1"), in: channels, out: channels, timeChannels: nil,
            groups: c.normNumGroups, eps: 1e-6)
        attention =
            c.midBlockAddAttention
            ? try VAEAttention(p.scope("attentions.0"), channels: channels, groups: c.normNumGroups) : nil
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = resnet1(x, activatedTime: nil)
        if let attention { h = attention(h) }
        return resnet2(h, activatedTime: nil)
    }
}

/// The VAE's mid-block attention: GroupNorm, one head over H·W tokens, biased projections, residual.
struct VAEAttention {
    let norm: GroupNorm
    let q, k, v, out: Linear

    init(_ p: Params, channels: Int, groups: Int) throws {
        norm = try GroupNorm(p.scope("group_norm"), channels: channels, groups: groups, eps: 1e-6)
        q = try Linear(p.scope("to_q"), in: channels, out: channels)
        k = try Linear(p.scope("to_k"), in: channels, out: channels)
        v = try Linear(p.scope("to_v"), in: channels, out: channels)
        out = try Linear(p.scope("to_out.0"), in: channels, out: channels)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let (b, c, h, w) = (x.dim(0), x.dim(1), x.dim(2), x.dim(3))
        let tokens = transposeLast2(norm(x).reshaped([b, c, h * w]))  // [B, HW, C]
        let a = out(attention(q: q(tokens), k: k(tokens), v: v(tokens), heads: 1))
        let y = transposeLast2(a).reshaped([b, c, h, w])
        addInPlace(y, x)
        return y
    }
}

/// diffusers' VAE `Encoder`: conv_in, DownEncoderBlock2Ds, mid block, GroupNorm + SiLU, conv_out (2× latent).
struct VAEEncoder {
    let convIn, convOut: Conv2d
    let blocks: [(resnets: [ResnetBlock], down: Downsample?)]
    let mid: VAEMidBlock
    let normOut: GroupNorm

    init(_ p: Params, config c: VAEConfig) throws {
        let ch = c.blockOutChannels, g = c.normNumGroups
        convIn = try Conv2d(p.scope("conv_in"), in: c.inChannels, out: ch[0], kernel: 3)
        var out = ch[0]
        var blocks: [(resnets: [ResnetBlock], down: Downsample?)] = []
        for i in 0..<ch.count {
            let cin = out
            out = ch[i]
            let bp = p.scope("down_blocks", i)
            let resnets = try (0..<c.layersPerBlock).map { j in
                try ResnetBlock(bp.scope("resnets", j), in: j == 0 ? cin : out, out: out, timeChannels: nil, groups: g, eps: 1e-6)
            }
            let down = i < ch.count - 1 ? try Downsample(bp.scope("downsamplers.0"), channels: out, padding: 0) : nil
            blocks.append((resnets, down))
        }
        self.blocks = blocks
        mid = try VAEMidBlock(p.scope("mid_block"), channels: out, config: c)
        normOut = try GroupNorm(p.scope("conv_norm_out"), channels: out, groups: g, eps: 1e-6)
        convOut = try Conv2d(p.scope("conv_out"), in: out, out: 2 * c.latentChannels, kernel: 3)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var h = convIn(x)
        for block in blocks {
            for r in block.resnets { h = r(h, activatedTime: nil) }
            if let d = block.down { h = d(h) }
        }
        return convOut(normOut(mid(h), silu: true))
    }
}

/// diffusers' VAE `Decoder`: conv_in, mid block, UpDecoderBlock2Ds (layers + 1 ResNets), GroupNorm + SiLU,
/// conv_out.
struct VAEDecoder {
    let convIn, convOut: Conv2d
    let mid: VAEMidBlock
    let blocks: [(resnets: [ResnetBlock], up: Upsample?)]
    let normOut: GroupNorm

    init(_ p: Params, config c: VAEConfig) throws {
        let rev = Array(c.blockOutChannels.reversed()), g = c.normNumGroups
        convIn = try Conv2d(p.scope("conv_in"), in: c.latentChannels, out: rev[0], kernel: 3)
        mid = try VAEMidBlock(p.scope("mid_block"), channels: rev[0], config: c)
        var out = rev[0]
        var blocks: [(resnets: [ResnetBlock], up: Upsample?)] = []
        for i in 0..<rev.count {
            let prev = out
            out = rev[i]
            let bp = p.scope("up_blocks", i)
            let resnets = try (0...c.layersPerBlock).map { j in
                try ResnetBlock(bp.scope("resnets", j), in: j == 0 ? prev : out, out: out, timeChannels: nil, groups: g, eps: 1e-6)
            }
            let up = i < rev.count - 1 ? try Upsample(bp.scope("upsamplers.0"), channels: out) : nil
            blocks.append((resnets, up))
        }
        self.blocks = blocks
        normOut = try GroupNorm(p.scope("conv_norm_out"), channels: out, groups: g, eps: 1e-6)
        convOut = try Conv2d(p.scope("conv_out"), in: out, out: c.outChannels, kernel: 3)
    }

    func callAsFunction(_ z: Tensor) -> Tensor {
        var h = mid(convIn(z))
        for block in blocks {
            for r in block.resnets { h = r(h, activatedTime: nil) }
            if let u = block.up { h = u(h) }
        }
        return convOut(normOut(h, silu: true))
    }
}
