import PivotTensor

/// `nn.Linear`: weight [out, in], optional bias [out].
public struct Linear {
    public let weight: Tensor  // [out, in]
    public let bias: Tensor?  // [out]

    public init(_ p: Params, in inFeatures: Int, out outFeatures: Int, bias hasBias: Bool = true) throws {
        weight = try p("weight", [outFeatures, inFeatures])
        bias = hasBias ? try p("bias", [outFeatures]) : nil
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { linear(x, weight: weight, bias: bias) }
}

/// `nn.Conv2d` with square kernel, zero padding and stride.
public struct Conv2d {
    public let weight: Tensor  // [out, in, k, k]
    public let bias: Tensor?  // [out]
    public let stride: Int
    public let padding: Int

    public init(
        _ p: Params, in inChannels: Int, out outChannels: Int, kernel: Int, stride: Int = 1,
        padding: Int? = nil, bias hasBias: Bool = true
    ) throws {
        weight = try p("weight", [outChannels, inChannels, kernel, kernel])
        bias = hasBias ? try p("bias", [outChannels]) : nil
        self.stride = stride
        self.padding = padding ?? (kernel - 1) / 2
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding)
    }
}

/// `nn.GroupNorm` with affine parameters; `silu` fuses the activation that usually follows.
public struct GroupNorm {
    public let weight: Tensor  // [C]
    public let bias: Tensor  // [C]
    public let groups: Int
    public let eps: Float

    public init(_ p: Params, channels: Int, groups: Int, eps: Float) throws {
        guard groups > 0, channels % groups == 0 else {
            throw ModelError.invalidConfig(
                file: "config.json",
                reason: "\(channels) channels cannot be split into \(groups) groups (\(p.prefix))")
        }
        weight = try p("weight", [channels])
        bias = try p("bias", [channels])
        self.groups = groups
        self.eps = eps
    }

    public func callAsFunction(_ x: Tensor, silu: Bool = false) -> Tensor {
        groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps, silu: silu)
    }
}

/// `nn.LayerNorm` over the last dimension.
public struct LayerNorm {
    public let weight: Tensor  // [D]
    public let bias: Tensor  // [D]
    public let eps: Float

    public init(_ p: Params, dim: Int, eps: Float) throws {
        weight = try p("weight", [dim])
        bias = try p("bias", [dim])
        self.eps = eps
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { layerNorm(x, weight: weight, bias: bias, eps: eps) }
}
