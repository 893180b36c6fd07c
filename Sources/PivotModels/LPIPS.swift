import PivotTensor

/// LPIPS with the SqueezeNet 1.1 backbone, as torchmetrics 1.9.0 computes it
/// (`torchmetrics.functional.image.lpips._LPIPS(net="squeeze")`, what
/// `LearnedPerceptualImagePatchSimilarity(net_type="squeeze")` runs), on inputs in [-1, 1]:
///
/// 1. `ScalingLayer`: x ↦ (x − shift) / scale per channel, shift = (−0.030, −0.088, −0.188),
///    scale = (0.458, 0.448, 0.450) (float32);
/// 2. `torchvision.models.squeezenet1_1().features`, cut into seven slices whose outputs are the seven
///    feature maps: slice 0 = features[0..<2] (conv 3→64 k3 s2, ReLU: 64 channels), slice 1 = [2..<5]
///    (max-pool k3 s2 ceil, Fire 3, Fire 4: 128), slice 2 = [5..<8] (pool, Fire 6, Fire 7: 256), slice 3 =
///    [8..<10] (pool, Fire 9: 384), slice 4 = [10] (Fire 10: 384), slice 5 = [11] (Fire 11: 512), slice 6 = [12]
///    (Fire 12: 512). A Fire module is squeeze 1×1 + ReLU, then expand 1×1 + ReLU and expand 3×3 (padding 1) + ReLU
///    concatenated along channels;
/// 3. each feature map divided at every pixel by √(1e-8 + Σ_c f²) (`_normalize_tensor`), the two images'
///    normalised maps subtracted and squared;
/// 4. `lin{k}`: a 1×1 convolution to one channel without bias, averaged over the pixels (`spatial=False`);
/// 5. the seven averages summed: one distance per image of the batch.
///
/// Weights, under torchmetrics' state-dict names: `net.slices.0.0.{weight,bias}` ([64, 3, 3, 3], [64]);
/// `net.slices.{s}.{i}.{squeeze,expand1x1,expand3x3}.{weight,bias}` for the Fire modules at index i of
/// `features` (s.i = 1.3, 1.4, 2.6, 2.7, 3.9, 4.10, 5.11, 6.12); `lin{k}.model.1.weight` ([1, C_k, 1, 1], k = 0…6,
/// C = 64, 128, 256, 384, 384, 512, 512; the `.1` is there because torchmetrics puts a Dropout at `.0`).
public final class LPIPSSqueeze {
    /// The channels of the seven feature maps (and of the lin layers' inputs).
    public static let channels = [64, 128, 256, 384, 384, 512, 512]
    /// `ScalingLayer.shift` and `.scale`.
    public static let shift: [Float] = [-0.030, -0.088, -0.188]
    public static let scale: [Float] = [0.458, 0.448, 0.450]
    /// The smallest side torchmetrics accepts: 17 → 8 (conv) → 4 → 2 → 1 (pools); 16 leaves the last pool nothing.
    public static let minimumSide = 17

    /// One SqueezeNet Fire module.
    struct Fire {
        let squeeze: Conv2d
        let expand1x1: Conv2d
        let expand3x3: Conv2d

        init(_ p: Params, in inplanes: Int, squeeze s: Int, expand e: Int) throws {
            squeeze = try Conv2d(p.scope("squeeze"), in: inplanes, out: s, kernel: 1)
            expand1x1 = try Conv2d(p.scope("expand1x1"), in: s, out: e, kernel: 1)
            expand3x3 = try Conv2d(p.scope("expand3x3"), in: s, out: e, kernel: 3, padding: 1)
        }

        func callAsFunction(_ x: Tensor) -> Tensor {
            let s = relu(squeeze(x))
            return PivotTensor.concatChannels(relu(expand1x1(s)), relu(expand3x3(s)))  // [B, E1 + E3, H, W]
        }
    }

    let conv0: Conv2d
    /// The Fire modules of each slice (slice 0 is `conv0` + ReLU; slices 1-3 start with a max-pool).
    let slices: [[Fire]]
    /// The lin layers' weights, [C_k] each.
    let lins: [[Float]]

    /// Builds the network from `p` (strict: a missing or mis-shaped tensor throws `ModelError` naming it).
    public init(_ p: Params) throws {
        let net = p.scope("net").scope("slices")
        conv0 = try Conv2d(net.scope("0").scope("0"), in: 3, out: 64, kernel: 3, stride: 2, padding: 0)
        // (slice, index in features, in, squeeze, expand)
        let fires: [(Int, Int, Int, Int, Int)] = [
            (1, 3, 64, 16, 64), (1, 4, 128, 16, 64), (2, 6, 128, 32, 128), (2, 7, 256, 32, 128),
            (3, 9, 256, 48, 192), (4, 10, 384, 48, 192), (5, 11, 384, 64, 256), (6, 12, 512, 64, 256),
        ]
        var slices = [[Fire]](repeating: [], count: 7)
        for (s, i, inplanes, sq, e) in fires {
            slices[s].append(try Fire(net.scope("\(s)").scope("\(i)"), in: inplanes, squeeze: sq, expand: e))
        }
        self.slices = slices
        lins = try Self.channels.enumerated().map { k, c in
            try p.scope("lin\(k)").scope("model.1")("weight", [1, c, 1, 1]).scalars
        }
    }

    /// The seven feature maps of `x` ([B, 3, H, W], already through the scaling layer).
    public func features(_ x: Tensor) -> [Tensor] {
        var outs: [Tensor] = []
        var h = relu(conv0(x))
        outs.append(h)
        for s in 1..<7 {
            if s <= 3 { h = maxPool2d(h, kernel: 3, stride: 2, ceilMode: true) }
            for fire in slices[s] { h = fire(h) }
            outs.append(h)
        }
        return outs
    }

    /// The scaling layer: (x − shift) / scale per channel of [B, 3, H, W].
    public static func scaled(_ x: Tensor) -> Tensor {
        let (b, hw) = (x.dim(0), x.dim(2) * x.dim(3))
        var v = x.scalars
        for n in 0..<b {
            for c in 0..<3 {
                let base = (n * 3 + c) * hw
                for i in base..<(base + hw) { v[i] = (v[i] - shift[c]) / scale[c] }
            }
        }
        return Tensor(shape: x.shape, values: v)
    }

    /// LPIPS of each pair of images of `x` and `y` ([B, 3, H, W] in [-1, 1], same shape): [B] distances
    /// (torchmetrics' `reduction="none"`; PnPInversion's single pairs make "mean" the same number).
    public func callAsFunction(_ x: Tensor, _ y: Tensor) throws -> [Double] {
        guard x.shape == y.shape, x.rank == 4, x.dim(1) == 3 else {
            throw ModelError.invalidInput("LPIPS: images of shapes \(x.shape) and \(y.shape), expected the same [B, 3, H, W]")
        }
        guard x.dim(2) >= Self.minimumSide, x.dim(3) >= Self.minimumSide else {
            throw ModelError.invalidInput(
                "LPIPS: a \(x.dim(3))x\(x.dim(2)) image is too small (SqueezeNet needs at least \(Self.minimumSide) pixels a side)")
        }
        let fx = features(Self.scaled(x))
        let fy = features(Self.scaled(y))
        let b = x.dim(0)
        var total = [Double](repeating: 0, count: b)
        for k in 0..<7 {
            let layer = Self.layerDistance(fx[k], fy[k], lin: lins[k])
            for n in 0..<b { total[n] += layer[n] }
        }
        return total
    }

    /// mean over pixels of Σ_c w_c (f0/‖f0‖ − f1/‖f1‖)², per image; fp32 per pixel as torch, averaged in fp64.
    static func layerDistance(_ a: Tensor, _ b: Tensor, lin: [Float]) -> [Double] {
        let (n, c, hw) = (a.dim(0), a.dim(1), a.dim(2) * a.dim(3))
        let (va, vb) = (a.scalars, b.scalars)
        var out = [Double](repeating: 0, count: n)
        var na = [Float](repeating: 0, count: hw)
        var nb = [Float](repeating: 0, count: hw)
        var acc = [Float](repeating: 0, count: hw)
        for i in 0..<n {
            let base = i * c * hw
            for p in 0..<hw {
                na[p] = 0
                nb[p] = 0
                acc[p] = 0
            }
            for ch in 0..<c {
                let o = base + ch * hw
                for p in 0..<hw {
                    na[p] += va[o + p] * va[o + p]
                    nb[p] += vb[o + p] * vb[o + p]
                }
            }
            for p in 0..<hw {
                na[p] = (1e-8 + na[p]).squareRoot()
                nb[p] = (1e-8 + nb[p]).squareRoot()
            }
            for ch in 0..<c {
                let o = base + ch * hw
                let w = lin[ch]
                for p in 0..<hw {
                    let d = va[o + p] / na[p] - vb[o + p] / nb[p]
                    acc[p] += w * (d * d)
                }
            }
            var sum = 0.0
            for p in 0..<hw { sum += Double(acc[p]) }
            out[i] = sum / Double(hw)
        }
        return out
    }
}

/// max(x, 0) elementwise (NaN stays NaN, as `nn.ReLU`). Private: a module-wide helper named like a tensor
/// operation would shadow PivotTensor's for every model in this module.
private func relu(_ x: Tensor) -> Tensor {
    Tensor(shape: x.shape, values: x.scalars.map { $0 < 0 ? 0 : $0 })
}
