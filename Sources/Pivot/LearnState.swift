import Foundation
import PivotFormats
import PivotLoading
import PivotTensor

/// A textual-inversion run's checkpoint: everything a resumed run needs to end where an uninterrupted one
/// would (vectors, AdamW moments, step, loss history, validations, the best vectors), and what it was made
/// from (settings, model, photos, precision), so that a resume with anything else is refused by name.
/// A safetensors file written atomically: a kill leaves the previous checkpoint whole.
public struct LearnState {
    /// The format tag in the file's metadata.
    static let format = "pivot-learn-state-1"

    var vectors: Tensor  // [n, D]
    var m: [Float]
    var v: [Float]
    var adamSteps: Int
    var step: Int
    var losses: [Float]
    var validations: [(step: Int, loss: Float)]
    var best: (step: Int, loss: Float, vectors: Tensor)?
    /// What the run was made from: "settings", "model", "photos", "precision", "token".
    var identity: [String: String]

    /// The state of a learner now, with its identity.
    init(_ l: TokenLearner, identity: [String: String]) {
        let moments = l.optimizer.state
        vectors = l.vectors.copy()
        m = moments.m
        v = moments.v
        adamSteps = moments.steps
        step = l.step
        losses = l.losses
        validations = l.validations
        best = l.best.map { ($0.step, $0.loss, $0.vectors.copy()) }
        self.identity = identity
    }

    /// Writes the state atomically.
    func write(to path: String) throws {
        let shape = vectors.shape
        var tensors: [(name: String, tensor: Tensor)] = [
            ("vectors", vectors), ("adam_m", Tensor(shape: shape, values: m)), ("adam_v", Tensor(shape: shape, values: v)),
        ]
        if !losses.isEmpty { tensors.append(("losses", Tensor(shape: [losses.count], values: losses))) }
        if !validations.isEmpty {
            tensors.append(("validations", Tensor(shape: [validations.count, 2], values: validations.flatMap { [Float($0.step), $0.loss] })))
        }
        if let best { tensors.append(("best_vectors", best.vectors)) }
        let counters: [Int64] = [Int64(step), Int64(adamSteps), Int64(best?.step ?? -1)]
        var metadata = identity
        metadata["format"] = Self.format
        metadata["pivot_version"] = pivotVersion
        metadata["best_loss"] = best.map { String($0.loss) } ?? ""
        try SafeTensorsWriter.write(tensors, int64: [("counters", [3], counters)], metadata: metadata, to: path)
    }

    /// Reads and checks a state file: its tag, the vectors' width against `width`, every tensor's shape
    /// and finiteness. Throws `LearnError.resume` naming what is wrong.
    init(path: String, width: Int) throws {
        func fail(_ why: String) -> LearnError { .resume(path, why) }
        let file: SafeTensorsFile
        do { file = try SafeTensorsFile(path: path) } catch { throw fail("\(error)") }
        guard file.metadata["format"] == Self.format else { throw fail("not a pivot learn state (no \(Self.format) tag)") }
        func tensor(_ name: String) throws -> Tensor {
            guard file.contains(name) else { throw fail("it has no \(name)") }
            let t = try file.floatTensor(name)
            guard t.allFinite else { throw fail("\(name) holds values that are not finite") }
            return t
        }
        vectors = try tensor("vectors")
        guard vectors.rank == 2, vectors.dim(0) >= 1 else { throw fail("its vectors have shape \(vectors.shape), not [vectors, width]") }
        guard vectors.dim(1) == width else {
            throw fail("its vectors are \(vectors.dim(1)) wide, but this model's text encoder takes \(width) (a state of another model?)")
        }
        let mt = try tensor("adam_m"), vt = try tensor("adam_v")
        guard mt.shape == vectors.shape, vt.shape == vectors.shape else { throw fail("its optimiser moments do not match its vectors") }
        m = mt.scalars
        v = vt.scalars
        guard let counters = try? file.int64Values("counters"), counters.values.count == 3 else { throw fail("it has no step counters") }
        step = Int(counters.values[0])
        adamSteps = Int(counters.values[1])
        guard step >= 0, adamSteps == step else { throw fail("its step counters disagree (\(counters.values))") }
        losses = file.contains("losses") ? try tensor("losses").scalars : []
        guard losses.count == step else { throw fail("it holds \(losses.count) losses for \(step) steps") }
        validations = []
        if file.contains("validations") {
            let t = try tensor("validations")
            guard t.rank == 2, t.dim(1) == 2 else { throw fail("its validations have shape \(t.shape), not [n, 2]") }
            validations = (0..<t.dim(0)).map { (Int(t.data[2 * $0]), t.data[2 * $0 + 1]) }
        }
        let bestStep = Int(counters.values[2])
        if bestStep >= 0 {
            let b = try tensor("best_vectors")
            guard b.shape == vectors.shape, let loss = Float(file.metadata["best_loss"] ?? "") else { throw fail("its best vectors are malformed") }
            best = (bestStep, loss, b)
        } else {
            best = nil
        }
        identity = file.metadata
    }

    /// Throws `LearnError.resume` if `identity` differs from the state's, naming the first difference.
    func check(against current: [String: String], path: String) throws {
        if let theirs = identity["settings"], let ours = current["settings"], theirs != ours {
            let a = Dictionary(theirs.split(separator: "\u{1F}").map { Self.pair($0) }, uniquingKeysWith: { a, _ in a })
            for field in ours.split(separator: "\u{1F}") {
                let (key, value) = Self.pair(field)
                if a[key] != value {
                    let was = a[key].map { $0.count > 40 ? "other \(key)" : "\(key)=\($0)" } ?? "no \(key)"
                    let now = value.count > 40 ? "others" : "\(key)=\(value)"
                    throw LearnError.resume(path, "it was made with \(was), this run asks for \(now); resume with the same, or start afresh")
                }
            }
        }
        for (key, what) in [("model", "another model"), ("photos", "other photos"), ("precision", "another precision"), ("token", "another token")]
        where identity[key] != current[key] {
            let detail = key == "precision" ? " (\(identity[key] ?? "none") vs \(current[key] ?? "none"))" : ""
            throw LearnError.resume(path, "it was made with \(what)\(detail); resume with the same, or start afresh without resuming")
        }
    }

    static func pair(_ field: Substring) -> (String, String) {
        let parts = field.split(separator: "=", maxSplits: 1)
        return (String(parts.first ?? ""), parts.count > 1 ? String(parts[1]) : "")
    }
}
