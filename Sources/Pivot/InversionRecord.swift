import Foundation
import PivotLoading
import PivotFormats
import PivotTensor

/// How a photo is inverted (../shared/SPEC.md §4).
public enum InversionMethod: String, CaseIterable, Sendable {
    /// Per-step unconditional embeddings optimised so guided DDIM retraces the pivot (the default).
    case nullText = "null-text"
    /// ∅_i := the source prompt's embedding; no optimisation (Miyake et al. 2023).
    case negativePrompt = "negative-prompt"
    /// The source branch is pushed back onto the pivot after each step by stored offsets (Ju et al. 2024).
    case direct
    /// Plain DDIM inversion, guidance on the raw trajectory (the baseline that fails).
    case ddim
}

/// An inversion as stored on disk: a safetensors file readable from Python with `latents` [T+1, C, h, w]
/// (z*_0 … z*_T), `null_embeddings` [T, 77, D] (null-text) or `offsets` [T, C, h, w] (direct), and string
/// metadata (method, prompt, steps, guidance, scheduler, model fingerprint, photo hash, pivot version, …).
public struct InversionRecord {
    public var method: InversionMethod
    public var latents: [Tensor]
    public var nullEmbeddings: [Tensor]?
    public var offsets: [Tensor]?
    public var metadata: [String: String]

    public init(method: InversionMethod, latents: [Tensor], nullEmbeddings: [Tensor]? = nil, offsets: [Tensor]? = nil,
                metadata: [String: String]) {
        self.method = method
        self.latents = latents
        self.nullEmbeddings = nullEmbeddings
        self.offsets = offsets
        self.metadata = metadata
        self.metadata["method"] = method.rawValue
        self.metadata["pivot_version"] = pivotVersion
        self.metadata["format"] = "pivot-inversion-1"
    }

    /// Number of DDIM steps.
    public var steps: Int { latents.count - 1 }

    /// Writes the record atomically (temporary file, fsync, rename).
    public func write(to path: String) throws {
        var tensors: [(name: String, tensor: Tensor)] = [("latents", stack(latents))]
        if let nullEmbeddings { tensors.append(("null_embeddings", stack(nullEmbeddings))) }
        if let offsets { tensors.append(("offsets", stack(offsets))) }
        try SafeTensorsWriter.write(tensors, metadata: metadata, to: path)
    }

    /// Reads and checks a record written by `write(to:)`.
    public init(path: String) throws {
        let file = try SafeTensorsFile(path: path)
        guard file.metadata["format"] == "pivot-inversion-1",
              let method = file.metadata["method"].flatMap(InversionMethod.init(rawValue:)) else {
            throw InversionError.notAnInversion(path)
        }
        guard file.contains("latents") else { throw InversionError.malformed(path, "no 'latents' tensor") }
        let all = try file.floatTensor("latents")
        guard all.rank == 4, all.dim(0) >= 2 else { throw InversionError.malformed(path, "latents must be [T+1, C, h, w]") }
        self.method = method
        latents = unstack(all)
        metadata = file.metadata
        let t = all.dim(0) - 1
        nullEmbeddings = try file.contains("null_embeddings") ? unstack(file.floatTensor("null_embeddings")) : nil
        offsets = try file.contains("offsets") ? unstack(file.floatTensor("offsets")) : nil
        if method == .nullText && nullEmbeddings?.count != t {
            throw InversionError.malformed(path, "null-text inversion needs null_embeddings [\(t), 77, D]")
        }
        if method == .direct && offsets?.count != t {
            throw InversionError.malformed(path, "direct inversion needs offsets [\(t), C, h, w]")
        }
    }
}

/// Errors reading inversion files or using them with a model.
public enum InversionError: Error, CustomStringConvertible {
    case notAnInversion(String)
    case malformed(String, String)
    case mismatch(String, String)

    public var description: String {
        switch self {
        case .notAnInversion(let p): return "\(p): not a pivot inversion file"
        case .malformed(let p, let why): return "\(p): \(why)"
        case .mismatch(let p, let why): return "\(p): made with \(why)"
        }
    }
}

/// [N × shape] → [N, …] (a leading batch dimension of 1 is dropped).
func stack(_ tensors: [Tensor]) -> Tensor {
    let inner = tensors[0].shape.first == 1 ? Array(tensors[0].shape.dropFirst()) : tensors[0].shape
    let y = Tensor(uninitialized: [tensors.count] + inner)
    for (i, t) in tensors.enumerated() { (y.data + i * t.count).update(from: t.data, count: t.count) }
    return y
}

/// [N, …] → N tensors of shape [1, …].
public func unstack(_ t: Tensor) -> [Tensor] {
    let n = t.dim(0), each = t.count / max(n, 1)
    return (0..<n).map { i in
        let x = Tensor(uninitialized: [1] + Array(t.shape.dropFirst()))
        x.data.update(from: t.data + i * each, count: each)
        return x
    }
}
