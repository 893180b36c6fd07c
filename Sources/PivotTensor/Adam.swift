import Foundation

/// PyTorch's `torch.optim.Adam` / `torch.optim.AdamW` (β = 0.9, 0.999, ε = 1e-8, no AMSGrad) on one tensor,
/// with torch's operation order: for AdamW first p ← p·(1 − lr·λ) (decoupled weight decay λ), then
/// m ← lerp(m, g, 1 − β1), v ← β2·v + (1 − β2)·g², bias corrections in double,
/// p ← p − (lr / (1 − β1^k)) · m / (√v / √(1 − β2^k) + ε). With λ = 0 both are the same update.
public struct Adam: Sendable {
    public var learningRate: Float
    public let beta1: Float = 0.9
    public let beta2: Float = 0.999
    public let eps: Float = 1e-8
    /// AdamW's decoupled weight decay λ (0: plain Adam).
    public var weightDecay: Float
    private var m: [Float]
    private var v: [Float]
    private var step = 0

    /// A fresh optimiser (zero moments) for a parameter of `count` elements; `weightDecay` > 0 makes it AdamW.
    public init(count: Int, learningRate: Float, weightDecay: Float = 0) {
        self.learningRate = learningRate
        self.weightDecay = weightDecay
        m = Array(repeating: 0, count: count)
        v = Array(repeating: 0, count: count)
    }

    /// The optimiser's state, for checkpoints: first and second moments and the number of updates made.
    public var state: (m: [Float], v: [Float], steps: Int) { (m, v, step) }

    /// Restores a state saved from `state`; false (and nothing changed) if its sizes do not match.
    public mutating func restore(m: [Float], v: [Float], steps: Int) -> Bool {
        guard m.count == self.m.count, v.count == self.v.count, steps >= 0 else { return false }
        self.m = m
        self.v = v
        step = steps
        return true
    }

    /// Updates `parameter` in place with `gradient`.
    public mutating func update(_ parameter: Tensor, gradient: Tensor) {
        precondition(parameter.count == m.count && gradient.count == m.count, "Adam: size mismatch")
        step += 1
        let bc1 = 1 - Double.pow(Double(beta1), Double(step))
        let bc2Sqrt = (1 - Double.pow(Double(beta2), Double(step))).squareRoot()
        let stepSize = Float(Double(learningRate) / bc1)
        let b1 = 1 - beta1, b2 = 1 - beta2
        let p = parameter.data, g = gradient.data
        let bc2 = Float(bc2Sqrt)
        let decay = Float(1 - Double(learningRate) * Double(weightDecay))  // torch: a double scalar
        for i in 0..<m.count {
            if weightDecay != 0 { p[i] *= decay }
            m[i] += b1 * (g[i] - m[i])
            v[i] = v[i] * beta2 + b2 * g[i] * g[i]
            let denom = v[i].squareRoot() / bc2 + eps
            p[i] -= stepSize * (m[i] / denom)
        }
    }
}

private extension Double {
    static func pow(_ x: Double, _ y: Double) -> Double { Foundation.pow(x, y) }
}
