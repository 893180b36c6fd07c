import PivotTensor

/// Vector-Jacobian products of the networks with respect to their inputs (weights frozen).
extension UNet {
    /// The output for (sample, timesteps, context) and, for the cotangent `gradOut`, the gradients of
    /// ⟨out, gradOut⟩ with respect to the context [B, M, D] and to the sample [B, C, H, W].
    public func vjp(_ sample: Tensor, timesteps: [Float], context: Tensor, gradOut: Tensor) throws
        -> (out: Tensor, gradContext: Tensor, gradSample: Tensor)
    {
        let s = sample.copy(), c = context.copy()  // own identities for the tape
        let tape = Tape()
        tape.watch(s)
        tape.watch(c)
        let out = try tape.record { try self(s, timesteps: timesteps, context: c) }
        guard gradOut.count == out.count else {
            throw ModelError.invalidInput("unet: grad_out must have the output's shape \(out.shape), got \(gradOut.shape)")
        }
        tape.backward(from: out, gradient: gradOut)
        return (out, try tape.requiredGradient(of: c, name: "the UNet context"), try tape.requiredGradient(of: s, name: "the UNet sample"))
    }
}

extension UNet {
    /// Like `vjp(_:timesteps:context:gradOut:)`, for a cotangent that depends on the output (a loss
    /// computed from it): `gradOut(out)` is called between the forward and the backward pass. Returns the
    /// output and the gradient with respect to the context only.
    public func vjp(_ sample: Tensor, timesteps: [Float], context: Tensor, gradOut: (Tensor) throws -> Tensor) throws
        -> (out: Tensor, gradContext: Tensor)
    {
        let c = context.copy()
        let tape = Tape()
        tape.watch(c)
        let out = try tape.record { try self(sample, timesteps: timesteps, context: c) }
        let g = try gradOut(out)
        guard g.count == out.count else {
            throw ModelError.invalidInput("unet: cotangent must have the output's shape \(out.shape), got \(g.shape)")
        }
        tape.backward(from: out, gradient: g)
        return (out, try tape.requiredGradient(of: c, name: "the UNet context"))
    }
}

extension CLIPTextModel {
    /// `last_hidden_state` for token ids [B, T] and, for the cotangent `gradOut` [B, T, D], the gradient of
    /// ⟨last_hidden_state, gradOut⟩ with respect to the input embeddings (token + position; the same as
    /// with respect to the token embeddings alone).
    public func vjp(ids: [Int], batch: Int, gradOut: Tensor) throws -> (out: Tensor, gradEmbeddings: Tensor) {
        let e = try embed(ids: ids, batch: batch)
        let tape = Tape()
        tape.watch(e)
        let out = tape.record { encode(embeddings: e) }
        guard gradOut.count == out.count else {
            throw ModelError.invalidInput("text encoder: grad_out must have shape \(out.shape), got \(gradOut.shape)")
        }
        tape.backward(from: out, gradient: gradOut)
        return (out, try tape.requiredGradient(of: e, name: "the text encoder's input embeddings"))
    }
}

extension CLIPTextModel {
    /// Like `vjp(ids:batch:gradOut:)`, for a cotangent that depends on the output: `gradOut(out)` is called
    /// between the forward and the backward pass (e.g. a UNet backward from a loss on what the text
    /// conditions). Returns `last_hidden_state` [B, T, D] and the gradient with respect to the input
    /// embeddings [B, T, D] (the gradient of a token-embedding row is the sum over the positions it fills).
    public func vjp(ids: [Int], batch: Int, gradOut: (Tensor) throws -> Tensor) throws -> (out: Tensor, gradEmbeddings: Tensor) {
        let e = try embed(ids: ids, batch: batch)
        let tape = Tape()
        tape.watch(e)
        let out = tape.record { encode(embeddings: e) }
        let g = try gradOut(out)
        guard g.count == out.count else {
            throw ModelError.invalidInput("text encoder: cotangent must have the output's shape \(out.shape), got \(g.shape)")
        }
        tape.backward(from: out, gradient: g)
        return (out, try tape.requiredGradient(of: e, name: "the text encoder's input embeddings"))
    }
}
