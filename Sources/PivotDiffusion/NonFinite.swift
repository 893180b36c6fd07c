import PivotTensor

/// A tensor that became NaN or infinite in a loop: the weights hold NaN/Inf, or a setting or an input made
/// the values overflow. Raised at the first step where it happens, so nothing is written from it (a
/// non-finite latent decodes to a black image).
public struct NonFiniteError: Error, CustomStringConvertible, Equatable {
    /// What was running: "denoising", "DDIM inversion", "null-text optimisation", "VAE decoding", ….
    public let stage: String
    /// The 1-based step and the number of steps (0 and 0 for a single pass).
    public let step: Int
    public let steps: Int
    /// Which tensor: "latents", "the null-text embedding", "the decoded image".
    public let tensor: String

    public init(stage: String, step: Int = 0, of steps: Int = 0, tensor: String = "latents") {
        self.stage = stage
        self.step = step
        self.steps = steps
        self.tensor = tensor
    }

    public var description: String {
        let at = steps > 0 ? " at step \(step) of \(steps)" : ""
        return "\(stage)\(at): \(tensor) became NaN or infinite (do the model's weights hold NaN/Inf?); stopped before writing anything"
    }
}

/// Throws `NonFiniteError` unless every element of `tensor` is finite.
@inline(__always)
public func requireFinite(_ tensor: Tensor, _ stage: String, step: Int = 0, of steps: Int = 0, tensor name: String = "latents") throws {
    if !tensor.allFinite { throw NonFiniteError(stage: stage, step: step, of: steps, tensor: name) }
}
