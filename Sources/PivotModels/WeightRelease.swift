import PivotTensor

/// Weights that bf16 matrix products read, and releasing their fp32 copies for runs that are bf16 throughout.
///
/// In bf16 a `Linear` or `Conv2d` weight is read only through its bf16 copy (`Tensor.bf16Weights`) or, for a
/// 3×3 stride-1 convolution, the bf16 Winograd transform made from it; the fp32 values then cost 4 bytes a
/// value for nothing. `releaseFP32MatrixWeights` makes each weight's bf16 copy and hands its fp32 pages back, one
/// weight at a time, so memory falls while it runs (SD 1.5's UNet: 3.44 GB of fp32 weights become 1.72 GB
/// of bf16 ones). Limitations: irreversible in precision — a later fp32 pass reads the bf16-rounded values
/// (`TensorStorage.releaseFP32`), so only a caller that knows every remaining pass is bf16 should call it;
/// norms, biases and embeddings (small, or read in fp32) are kept.
public enum WeightRelease {
    /// The weights of every `Linear` and `Conv2d` reachable from `model` (stored properties, arrays,
    /// optionals and nested classes, found by reflection), each storage once.
    public static func matrixWeights(of model: Any) -> [Tensor] {
        uses(in: model).map(\.weight)
    }

    /// The kernels of `model` whose every use is a 3×3, stride-1, padding-1 `Conv2d`: a bf16 convolution
    /// reads them only through their Winograd transform.
    public static func winogradKernels(of model: Any) -> [Tensor] {
        uses(in: model).filter(\.winogradOnly).map(\.weight)
    }

    /// Releases the fp32 pages of every matrix weight of `models` of at least `minimumBytes` (default:
    /// pooled buffers), weight by weight, keeping the one bf16 form bf16 passes read: a Winograd-only
    /// kernel's transform (`Tensor.releaseFP32KeepingWinogradBF16`), every other weight's bf16 copy.
    /// Returns the bytes released.
    @discardableResult
    public static func releaseFP32MatrixWeights(of models: [Any], minimumBytes: Int = BufferPool.shared.largeBytes) -> Int {
        var bytes = 0
        for model in models {
            for use in uses(in: model) {
                bytes +=
                    use.winogradOnly
                    ? use.weight.releaseFP32KeepingWinogradBF16(minimumBytes: minimumBytes)
                    : use.weight.storage.releaseFP32(minimumBytes: minimumBytes)
            }
        }
        return bytes
    }

    /// Each matrix weight of `model` once, in the order found, with whether every layer using it is a 3×3,
    /// stride-1, padding-1 convolution.
    private static func uses(in model: Any) -> [(weight: Tensor, winogradOnly: Bool)] {
        var found: [(weight: Tensor, winogradOnly: Bool)] = []
        var index: [ObjectIdentifier: Int] = [:]
        var seenObjects = Set<ObjectIdentifier>()
        func add(_ t: Tensor, winograd: Bool) {
            let id = ObjectIdentifier(t.storage)
            if let i = index[id] {
                found[i].winogradOnly = found[i].winogradOnly && winograd
            } else {
                index[id] = found.count
                found.append((t, winograd))
            }
        }
        func visit(_ value: Any) {
            if let l = value as? Linear {
                add(l.weight, winograd: false)
                return
            }
            if let c = value as? Conv2d {
                add(c.weight, winograd: isWinogradShaped(c.weight, stride: c.stride, padding: c.padding))
                return
            }
            if value is Tensor || value is String || value is [Float] || value is [Int] || value is [Int32] { return }
            let mirror = Mirror(reflecting: value)
            if mirror.displayStyle == .class {
                let id = ObjectIdentifier(value as AnyObject)
                guard seenObjects.insert(id).inserted else { return }
            }
            for child in mirror.children { visit(child.value) }
            var superMirror = mirror.superclassMirror
            while let s = superMirror {
                for child in s.children { visit(child.value) }
                superMirror = s.superclassMirror
            }
        }
        visit(model)
        return found
    }
}
