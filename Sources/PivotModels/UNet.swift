import Foundation
import PivotTensor

/// diffusers' `UNet2DConditionModel` for Stable Diffusion 1.x/2.x: ε (or v) = unet(sample, t, context).
public final class UNet {
    /// The arithmetic of its passes (fp32 unless a pipeline chooses otherwise).
    public var precision = NetworkPrecision()
    public let config: UNetConfig
    let timeLinear1, timeLinear2: Linear
    let convIn, convOut: Conv2d
    let downBlocks: [DownBlock]
    let mid: MidBlock?
    let upBlocks: [UpBlock]
    let normOut: GroupNorm

    /// Builds the network from parameters named as diffusers saves them.
    public init(config c: UNetConfig, parameters p: Params) throws {
        config = c
        let ch = c.blockOutChannels, ted = c.timeEmbedDim, eps = Float(c.normEps), g = c.normNumGroups
        timeLinear1 = try Linear(p.scope("time_embedding.linear_1"), in: ch[0], out: ted)
        timeLinear2 = try Linear(p.scope("time_embedding.linear_2"), in: ted, out: ted)
        convIn = try Conv2d(p.scope("conv_in"), in: c.inChannels, out: ch[0], kernel: c.convInKernel)
        var down: [DownBlock] = []
        var out = ch[0]
        for i in 0..<c.levels {
            let cin = out
            out = ch[i]
            down.append(
                try DownBlock(
                    p.scope("down_blocks", i), in: cin, out: out, timeChannels: ted,
                    layers: c.layersPerBlock[i],
                    attention: c.downBlockTypes[i] == "CrossAttnDownBlock2D" ? c.attentionSpec(block: i) : nil,
                    downsample: i < c.levels - 1, config: c))
        }
        downBlocks = down
        if c.midBlockType != nil {
            let last = c.levels - 1
            mid = try MidBlock(
                p.scope("mid_block"), channels: ch[last], timeChannels: ted,
                attention: AttentionSpec(
                    heads: c.heads[last], layers: c.transformerLayersPerBlock[last],
                    contextDim: c.crossAttentionDim[last]),
                config: c)
        } else {
            mid = nil
        }
        var up: [UpBlock] = []
        let rev = Array(ch.reversed())
        out = rev[0]
        for i in 0..<c.levels {
            let prev = out
            out = rev[i]
            let cin = rev[min(i + 1, c.levels - 1)]
            let b = c.levels - 1 - i
            up.append(
                try UpBlock(
                    p.scope("up_blocks", i), in: cin, out: out, prev: prev, timeChannels: ted,
                    layers: c.layersPerBlock[b] + 1,
                    attention: c.upBlockTypes[i] == "CrossAttnUpBlock2D" ? c.attentionSpec(block: b) : nil,
                    upsample: i < c.levels - 1, config: c))
        }
        upBlocks = up
        normOut = try GroupNorm(p.scope("conv_norm_out"), channels: ch[0], groups: g, eps: eps)
        convOut = try Conv2d(p.scope("conv_out"), in: ch[0], out: c.outChannels, kernel: c.convOutKernel)
    }

    /// The network output [B, C, H, W] for a latent sample [B, C, H, W], one timestep per sample, and the
    /// text conditioning [B, M, D].
    public func callAsFunction(
        _ sample: Tensor, timesteps: [Float], context: Tensor,
        controller: AttentionController? = nil
    ) throws -> Tensor {
        let c = config
        guard sample.rank == 4, sample.dim(1) == c.inChannels else {
            throw ModelError.invalidInput("unet: sample must be [B, \(c.inChannels), H, W], got \(sample.shape)")
        }
        let b = sample.dim(0)
        guard sample.dim(2) % c.downsampleFactor == 0, sample.dim(3) % c.downsampleFactor == 0, sample.dim(2) > 0, sample.dim(3) > 0 else {
            throw ModelError.invalidInput("unet: latent size \(sample.dim(2))×\(sample.dim(3)) must be a positive multiple of \(c.downsampleFactor)")
        }
        guard context.rank == 3, context.dim(0) == b, c.crossAttentionDim.allSatisfy({ $0 == context.dim(2) }) else {
            throw ModelError.invalidInput("unet: encoder_hidden_states must be [\(b), M, \(c.crossAttentionDim[0])], got \(context.shape)")
        }
        guard timesteps.count == b else {
            throw ModelError.invalidInput("unet: \(timesteps.count) timesteps for a batch of \(b)")
        }
        return precision.run { forward(sample, timesteps: timesteps, context: context, controller: controller) }
    }

    func forward(_ sample: Tensor, timesteps: [Float], context: Tensor, controller: AttentionController?) -> Tensor {
        let c = config
        let temb = timeLinear2(Activation.silu(timeLinear1(timestepEmbedding(timesteps))))
        Activation.silu.applyInPlace(temb)  // every ResNet applies SiLU to the embedding first
        var h = c.centerInputSample ? scale(sample, 2).adding(-1) : sample
        h = convIn(h)
        var skips = [h]
        for block in downBlocks {
            h = block(h, time: temb, context: context, controller: controller, skips: &skips)
        }
        if let mid { h = mid(h, time: temb, context: context, controller: controller) }
        for block in upBlocks {
            h = block(h, time: temb, context: context, controller: controller, skips: &skips)
        }
        return convOut(normOut(h, silu: true))
    }

    /// Sinusoidal embedding [B, C0] of the timesteps, computed in fp32 as diffusers does.
    func timestepEmbedding(_ timesteps: [Float]) -> Tensor {
        let dim = config.blockOutChannels[0], half = dim / 2
        var e = [Float](repeating: 0, count: timesteps.count * dim)  // [B, C0]
        let logPeriod = Float(-log(10000.0))
        for (n, t) in timesteps.enumerated() {
            for i in 0..<half {
                let exponent = logPeriod * Float(i) / (Float(half) - Float(config.freqShift))
                let arg = t * Float(exp(Double(exponent)))
                let s = Float(sin(Double(arg))), co = Float(cos(Double(arg)))
                e[n * dim + (config.flipSinToCos ? half + i : i)] = s
                e[n * dim + (config.flipSinToCos ? i : half + i)] = co
            }
        }
        return Tensor(shape: [timesteps.count, dim], values: e)
    }
}

/// Heads, transformer depth and context width of one block's attentions.
struct AttentionSpec {
    let heads: Int
    let layers: Int
    let contextDim: Int
}

extension UNetConfig {
    func attentionSpec(block i: Int) -> AttentionSpec {
        AttentionSpec(heads: heads[i], layers: transformerLayersPerBlock[i], contextDim: crossAttentionDim[i])
    }
}

extension Tensor {
    /// x + s elementwise, as a new tensor.
    func adding(_ s: Float) -> Tensor {
        mapElements(self) { $0 + s }
    }
}
