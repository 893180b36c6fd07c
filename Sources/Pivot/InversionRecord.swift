import Foundation
import PivotDiffusion
import PivotIO
import PivotLoading
import PivotFormats
import PivotTensor

/// An inversion as stored on disk: a safetensors file readable from Python with `latents` [T+1, C, h, w]
/// (z*_0 … z*_T; for ddpm the sampled x_0 … x_T), `null_embeddings` [T, 77, D] (null-text), `offsets`
/// [T, C, h, w] (direct) or `noise_maps` [T, C, h, w] (ddpm, in sampling order), and string metadata (method, prompt, steps, guidance, scheduler, model fingerprint, photo hash, pivot version, …).
public struct InversionRecord {
    public var method: InversionMethod
    public var latents: [Tensor]
    public var nullEmbeddings: [Tensor]?
    public var offsets: [Tensor]?
    /// Edit-friendly DDPM's noise maps, one per sampling step (highest timestep first).
    public var noiseMaps: [Tensor]?
    public var metadata: [String: String]

    public init(
        method: InversionMethod, latents: [Tensor], nullEmbeddings: [Tensor]? = nil, offsets: [Tensor]? = nil,
        noiseMaps: [Tensor]? = nil, metadata: [String: String]
    ) {
        self.method = method
        self.latents = latents
        self.nullEmbeddings = nullEmbeddings
        self.offsets = offsets
        self.noiseMaps = noiseMaps
        self.metadata = metadata
        self.metadata["method"] = method.rawValue
        self.metadata["pivot_version"] = pivotVersion
        self.metadata["format"] = "pivot-inversion-1"
    }

    /// Number of DDIM steps.
    public var steps: Int { latents.count - 1 }

    /// Writes the record atomically (temporary file, fsync, rename).
    public func write(to path: String) throws {
        var tensors: [(name: String, tensor: Tensor)] = [("latents", stackBatch(latents))]
        if let nullEmbeddings { tensors.append(("null_embeddings", stackBatch(nullEmbeddings))) }
        if let offsets { tensors.append(("offsets", stackBatch(offsets))) }
        if let noiseMaps { tensors.append(("noise_maps", stackBatch(noiseMaps))) }
        try SafeTensorsWriter.write(tensors, metadata: metadata, to: path)
    }

    /// The most steps an inversion file may hold (diffusers' schedules have 1000 training timesteps).
    public static let maxSteps = 1000

    /// Reads a record written by `write(to:)`, checking its structure (not yet against a model: see
    /// `validate(against:file:)`): the format tag and method, `latents` [T+1, C, h, w] with 1 ≤ T ≤ 1000,
    /// `null_embeddings` [T, tokens, D] and `offsets` [T, C, h, w] where present and where the method needs
    /// them, floating-point tensors only. Every violation is a one-line `InversionError`.
    public init(path: String) throws {
        let file = try SafeTensorsFile(path: path)
        guard file.metadata["format"] == "pivot-inversion-1",
            let method = file.metadata["method"].flatMap(InversionMethod.init(rawValue:))
        else {
            throw InversionError.notAnInversion(path)
        }
        guard let latentInfo = file.info("latents") else { throw InversionError.malformed(path, "no 'latents' tensor") }
        let shape = latentInfo.shape
        guard shape.count == 4, shape.allSatisfy({ $0 > 0 }) else {
            throw InversionError.shape(path, tensor: "latents", found: shape, expected: "[T+1, C, h, w] with every side positive")
        }
        let t = shape[0] - 1
        guard (1...Self.maxSteps).contains(t) else {
            throw InversionError.shape(
                path, tensor: "latents", found: shape,
                expected: "[T+1, C, h, w] with T (the steps) between 1 and \(Self.maxSteps)")
        }
        for name in ["latents", "null_embeddings", "offsets", "noise_maps"] {
            if let info = file.info(name), !info.dtype.isFloatingPoint {
                throw InversionError.dtype(path, tensor: name, shape: info.shape, found: info.dtype.rawValue)
            }
        }
        let perStep = Array(shape.dropFirst())
        func checked(_ name: String, _ expected: (Int) -> Bool, _ meaning: String) throws -> [Tensor]? {
            guard let info = file.info(name) else { return nil }
            guard !info.shape.isEmpty, info.shape[0] == t, expected(info.shape.count), info.shape.allSatisfy({ $0 > 0 }) else {
                throw InversionError.shape(path, tensor: name, found: info.shape, expected: meaning)
            }
            return unstackBatch(try file.floatTensor(name))
        }
        // Of the right rank but the wrong length, the null embeddings' own tokens and width are the best guess.
        let nullShape = file.info("null_embeddings")?.shape ?? []
        let nullsExpected =
            nullShape.count == 3 && nullShape.allSatisfy({ $0 > 0 })
            ? "[\(t), \(nullShape[1]), \(nullShape[2])] (the latents' \(t) steps, tokens, text width)"
            : "[\(t), tokens, width] (steps, tokens, text width)"
        let nulls = try checked("null_embeddings", { $0 == 3 }, nullsExpected)
        let offsets = try checked("offsets", { _ in true }, "\([t] + perStep) (steps, then the latent's shape)")
        let noiseMaps = try checked("noise_maps", { _ in true }, "\([t] + perStep) (steps, then the latent's shape)")
        for (name, maps) in [("offsets", offsets), ("noise_maps", noiseMaps)] {
            if let o = maps, o[0].shape != [1] + perStep {
                throw InversionError.shape(
                    path, tensor: name, found: [t] + Array(o[0].shape.dropFirst()),
                    expected: "\([t] + perStep) (steps, then the latent's shape)")
            }
        }
        if method == .nullText && nulls == nil {
            throw InversionError.missing(
                path, tensor: "null_embeddings", method: method, expected: "[\(t), tokens, width] (steps, tokens, text width)")
        }
        if method.usesOffsets && offsets == nil {
            throw InversionError.missing(path, tensor: "offsets", method: method, expected: "\([t] + perStep) (steps, then the latent's shape)")
        }
        if method == .ddpm && noiseMaps == nil {
            throw InversionError.missing(
                path, tensor: "noise_maps", method: method, expected: "\([t] + perStep) (steps, then the latent's shape)")
        }
        self.method = method
        latents = unstackBatch(try file.floatTensor("latents"))
        metadata = file.metadata
        nullEmbeddings = nulls
        self.offsets = offsets
        self.noiseMaps = noiseMaps
    }
}

/// Errors reading inversion files or using them with a model; each names the file, and where it is about a
/// tensor, the tensor and both shapes. Settings are named by key (`SettingsNamingError`).
public enum InversionError: SettingsNamingError {
    case notAnInversion(String)
    case malformed(String, String)
    case mismatch(String, String)
    /// A tensor of the wrong shape: what it is and what it must be.
    case shape(String, tensor: String, found: [Int], expected: String)
    /// A tensor holding NaN or ±∞: its shape, the first index along dimension 0 that does, and the value.
    case nonFinite(String, tensor: String, shape: [Int], index: Int, value: Float)
    /// A tensor the method needs that the file lacks, and the shape it must have.
    case missing(String, tensor: String, method: InversionMethod, expected: String)
    /// A tensor stored as integers or booleans rather than floating point.
    case dtype(String, tensor: String, shape: [Int], found: String)
    /// A setting given for the edit that disagrees with the one the file was made with.
    case settingConflict(String, setting: String, given: String, recorded: String)

    public func description(naming: (String) -> String) -> String {
        switch self {
        case .notAnInversion(let p): return "\(p): not a pivot inversion file"
        case .malformed(let p, let why): return "\(p): \(why)"
        case .mismatch(let p, let why): return "\(p): made with \(why)"
        case .shape(let p, let tensor, let found, let expected): return "\(p): \(tensor) is \(found); it must be \(expected)"
        case .nonFinite(let p, let tensor, let shape, let index, let value):
            return
                "\(p): \(tensor) \(shape) holds values that are not finite (the first, \(value), at index \(index) of \(shape.first ?? 0)); every value must be finite"
        case .missing(let p, let tensor, let method, let expected):
            return "\(p): \(tensor) is missing; a \(method.rawValue) inversion needs it as \(expected)"
        case .dtype(let p, let tensor, let shape, let found):
            return "\(p): \(tensor) \(shape) is stored as \(found); it must be floating point (F32, F16 or BF16)"
        case .settingConflict(let p, let setting, let given, let recorded):
            return "\(p): made with other settings: \(naming(setting)) \(given) (the file has \(recorded.isEmpty ? "none" : recorded))"
        }
    }
}
