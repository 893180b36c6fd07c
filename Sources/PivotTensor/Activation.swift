import CPivotKernels

/// Pointwise activations, parallel over the elements.
public enum Activation: String, Sendable {
    case silu, gelu
    case quickGelu = "quick_gelu"

    /// Applies the activation to every element, returning a new tensor (recorded on a `Tape`).
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let y = Tensor(uninitialized: x.shape)
        apply(x.data, y.data, x.count)
        if let tape = Tape.active(x) {
            tape.record(y, "∂activation") { [unowned tape] gy in tape.accumulate(x.storage.id, backward(x, gy)) }
        }
        return y
    }

    /// Applies the activation in place (never recorded: use the out-of-place form when differentiating).
    public func applyInPlace(_ x: Tensor) { apply(x.data, x.data, x.count) }

    /// VJP: gx = gy · f′(x).
    public func backward(_ x: Tensor, _ gy: Tensor) -> Tensor {
        let gx = Tensor(uninitialized: x.shape)
        Parallel.forEach(x.count, grain: 1 << 16) { r in
            let s = x.data + r.lowerBound, g = gy.data + r.lowerBound, d = gx.data + r.lowerBound, c = r.count
            switch self {
            case .silu: pv_silu_backward(s, g, d, c)
            case .gelu: pv_gelu_backward(s, g, d, c)
            case .quickGelu: pv_quick_gelu_backward(s, g, d, c)
            }
        }
        return gx
    }

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
    let f = x.dim(-1) / 2
    let rows = x.count / (2 * f)
    let y = Tensor(uninitialized: Array(x.shape.dropLast()) + [f])
    Profiler.measure("geglu") {
        Parallel.forEach(rows, grain: max(1, 8192 / max(f, 1))) { r in
            pv_geglu(x.data + r.lowerBound * 2 * f, y.data + r.lowerBound * f, r.count, f)
        }
    }
    if let tape = Tape.active(x) {
        tape.record(y, "∂geglu") { [unowned tape] gy in tape.accumulate(x.storage.id, gegluBackward(x, gy)) }
    }
    return y
}

/// VJP of `geglu`: gx [..., 2F] from x and gy [..., F].
public func gegluBackward(_ x: Tensor, _ gy: Tensor) -> Tensor {
    let f = x.dim(-1) / 2, rows = x.count / (2 * f)
    let gx = Tensor(uninitialized: x.shape)
    Parallel.forEach(rows, grain: max(1, 8192 / max(f, 1))) { r in
        pv_geglu_backward(
            x.data + r.lowerBound * 2 * f, gy.data + r.lowerBound * f, gx.data + r.lowerBound * 2 * f,
            r.count, f)
    }
    return gx
}
