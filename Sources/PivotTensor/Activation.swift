import CPivotKernels

/// Pointwise activations, parallel over the elements.
public enum Activation: String, Sendable {
    case silu, gelu
    case quickGelu = "quick_gelu"

    /// Applies the activation to every element, returning a new tensor.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let y = Tensor(uninitialized: x.shape)
        apply(x.data, y.data, x.count)
        return y
    }

    /// Applies the activation in place.
    public func applyInPlace(_ x: Tensor) { apply(x.data, x.data, x.count) }

    private func apply(_ src: UnsafeMutablePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        Profiler.measure(rawValue) {
        Parallel.forEach(n, grain: 1 << 16) { r in
            let s = src + r.lowerBound, d = dst + r.lowerBound, c = r.count
            switch self {
            case .silu: pv_silu(s, d, c)
            case .gelu: pv_gelu(s, d, c)
            case .quickGelu: pv_quick_gelu(s, d, c)
            }
        }
        }
    }
}

/// GEGLU: x [..., 2F] → value · gelu(gate) [..., F], value = first half, gate = second half.
public func geglu(_ x: Tensor) -> Tensor {
    Profiler.measure("geglu") {
    let f = x.dim(-1) / 2
    let rows = x.count / (2 * f)
    let y = Tensor(uninitialized: Array(x.shape.dropLast()) + [f])
    Parallel.forEach(rows, grain: max(1, 8192 / max(f, 1))) { r in
        pv_geglu(x.data + r.lowerBound * 2 * f, y.data + r.lowerBound * f, r.count, f)
    }
    return y
}
}
