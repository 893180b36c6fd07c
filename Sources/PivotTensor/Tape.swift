import Foundation

/// Reverse-mode differentiation with respect to inputs (weights are constants).
///
/// While a tape records (`tape.record { … }`), every differentiable kernel of this module
/// whose input requires a gradient appends its vector-Jacobian product (VJP); `backward` then runs them
/// in reverse. Tensors are identified by their storage's `id`, so a reshaped view shares its tensor's
/// gradient. Kernels that write in place (`addInPlace`, `Activation.applyInPlace`) are not recorded:
/// differentiable code uses the out-of-place forms. Nothing here stores weight gradients, but a kernel's
/// VJP could add them beside the input ones.
///
/// The recording tape is task-local (and, outside any task, local to the calling thread): a tape records
/// the kernels called inside `record` by the same task or thread, from any thread, and never those of other
/// tasks; the pool workers inside one kernel do not record (kernels record at the level of their caller).
/// A tape belongs to the one task that records and replays it.
public final class Tape: @unchecked Sendable {
    @TaskLocal static var current: Tape?

    private struct Step {
        let output: UInt64
        let shape: [Int]
        let name: String
        let vjp: (Tensor) -> Void
    }

    private var steps: [Step] = []
    private var requiring: Set<UInt64> = []
    private var watched: Set<UInt64> = []
    private var grads: [UInt64: Tensor] = [:]

    public init() {}

    /// Marks `t` as an input whose gradient is wanted.
    public func watch(_ t: Tensor) {
        requiring.insert(t.storage.id)
        watched.insert(t.storage.id)
    }

    /// Runs `body` with this tape recording.
    public func record<T>(_ body: () throws -> T) rethrows -> T {
        try Tape.$current.withValue(self, operation: body)
    }

    /// Propagates `gradient` (the cotangent of `output`, same element count) back through the recorded
    /// steps; afterwards `gradient(of:)` answers for the watched inputs. Steps are released as they run.
    public func backward(from output: Tensor, gradient: Tensor) {
        precondition(gradient.count == output.count, "backward: gradient \(gradient.shape) for output \(output.shape)")
        Tape.$current.withValue(nil) { replay(from: output, gradient: gradient) }  // VJPs' own arithmetic is not recorded
    }

    private func replay(from output: Tensor, gradient: Tensor) {
        grads[output.storage.id] = gradient.reshaped(output.shape)
        while let step = steps.popLast() {
            guard let g = grads[step.output] else { continue }
            if !watched.contains(step.output) { grads[step.output] = nil }
            Profiler.measure(step.name) { step.vjp(g.count == Tensor.elementCount(step.shape) ? g.reshaped(step.shape) : g) }
        }
    }

    /// The gradient accumulated for `t` (nil when nothing reached it), shaped like `t`.
    public func gradient(of t: Tensor) -> Tensor? {
        grads[t.storage.id].map { $0.reshaped(t.shape) }
    }

    /// The gradient of a watched input `t`; throws `TapeError.noGradient` (naming `name`) when none reached
    /// it, which means the output did not depend on it through recorded kernels (a broken graph), never
    /// silently zeros.
    public func requiredGradient(of t: Tensor, name: String) throws -> Tensor {
        guard let g = gradient(of: t) else { throw TapeError.noGradient(name) }
        return g
    }

    /// Whether a tape is recording in this task (networks pick their gradient precision then).
    public static var isRecording: Bool { current != nil }

    // MARK: for kernels

    /// The recording tape if any of `inputs` requires a gradient.
    static func active(_ inputs: Tensor?...) -> Tape? {
        guard let tape = current else { return nil }
        return inputs.contains { $0.map { tape.requiring.contains($0.storage.id) } ?? false } ? tape : nil
    }

    /// Whether `t` requires a gradient on this tape.
    func requires(_ t: Tensor) -> Bool { requiring.contains(t.storage.id) }

    /// Records the VJP of an op that produced `output`; `vjp` receives the output's gradient. `name` labels
    /// its time in profiles (`PIVOT_PROFILE=1`).
    func record(_ output: Tensor, _ name: String, _ vjp: @escaping (Tensor) -> Void) {
        requiring.insert(output.storage.id)
        steps.append(Step(output: output.storage.id, shape: output.shape, name: name, vjp: vjp))
    }

    /// Adds `g` to the gradient of the tensor whose storage id is `id` (ignored when it does not require
    /// one). VJPs capture ids rather than tensors, so that inputs whose values the VJP does not need are
    /// not kept alive until the backward pass.
    func accumulate(_ id: UInt64, _ g: Tensor) {
        guard requiring.contains(id) else { return }
        if let existing = grads[id] {
            grads[id] = add(existing.reshaped(g.shape), g)
        } else {
            grads[id] = g
        }
    }
}

/// Errors of reverse-mode differentiation.
public enum TapeError: Error, CustomStringConvertible, Equatable {
    /// No gradient reached a watched input.
    case noGradient(String)

    public var description: String {
        switch self {
        case .noGradient(let name): return "no gradient reached \(name): the output does not depend on it through recorded operations"
        }
    }
}
