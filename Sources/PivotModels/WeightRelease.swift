import PivotTensor

/// Weights that bf16 matrix products read, and releasing their fp32 copies for runs that are bf16 throughout.
///
/// In bf16 a `Linear` or `Conv2d` weight is read only through its bf16 copy (`Tensor.bf16Weights`) and, for
/// Winograd convolutions, the bf16 transform made from it; the fp32 values then cost 4 bytes a value for
/// nothing. `releaseFP32MatrixWeights` makes each weight's bf16 copy and hands its fp32 pages back, one
/// weight at a time, so memory falls while it runs (SD 1.5's UNet: 3.44 GB of fp32 weights become 1.72 GB
/// of bf16 ones). Limitations: irreversible in precision — a later fp32 pass reads the bf16-rounded values
/// (`TensorStorage.releaseFP32`), so only a caller that knows every remaining pass is bf16 should call it;
/// norms, biases and embeddings (small, or read in fp32) are kept.
public enum WeightRelease {
    /// The weights of every `Linear` and `Conv2d` reachable from `model` (stored properties, arrays,
    /// optionals and nested classes, found by reflection), each storage once.
    public static func matrixWeights(of model: Any) -> [Tensor] {
        var found: [Tensor] = []
        var seenStorages = Set<ObjectIdentifier>()
        var seenObjects = Set<ObjectIdentifier>()
        func visit(_ value: Any) {
            if let l = value as? Linear {
                add(l.weight)
                return
            }
            if let c = value as? Conv2d {
                add(c.weight)
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
        func add(_ t: Tensor) {
            if seenStorages.insert(ObjectIdentifier(t.storage)).inserted { found.append(t) }
        }
        visit(model)
        return found
    }

    /// Makes the bf16 copy of every matrix weight of `models` of at least `minimumBytes` (default: pooled
    /// buffers) and releases its fp32 pages, weight by weight; returns the bytes released.
    @discardableResult
    public static func releaseFP32MatrixWeights(of models: [Any], minimumBytes: Int = BufferPool.shared.largeBytes) -> Int {
        var bytes = 0
        for model in models {
            for w in matrixWeights(of: model) { bytes += w.storage.releaseFP32(minimumBytes: minimumBytes) }
        }
        return bytes
    }
}
