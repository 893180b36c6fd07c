import Foundation
import PivotLoading
import PivotFormats
import PivotTensor

/// A learned textual-inversion token (Gal et al. 2022): one or more vectors in the text encoder's input
/// embedding space, read from the files users have (docs/ALGORITHMS.md §6).
public struct TextualInversionEmbedding: Sendable {
    /// The files pivot reads.
    public enum Format: String, Sendable {
        /// diffusers: one entry `{token: [n, D]}` (.safetensors or a torch .bin).
        case diffusers
        /// Automatic1111: `string_to_param: {"*": [n, D]}` and `name` (.pt, or .safetensors with the key
        /// `string_to_param.*`).
        case automatic1111
        /// kohya: `{"emb_params": [n, D]}`.
        case kohya
    }

    /// The token prompts use; a multi-vector embedding also registers `token_1` … `token_{n−1}`.
    public let token: String
    /// [n, D]
    public let vectors: Tensor
    public let format: Format
    public let path: String
    /// SHA-256 of the file, recorded with inversions so that a changed file is never taken for the old one.
    public let sha256: String

    /// The tokens registered for this embedding, as diffusers names them.
    public var tokens: [String] { [token] + (1..<max(vectors.dim(0), 1)).map { "\(token)_\($0)" } }

    /// Reads an embedding file; `token` replaces the file's own (diffusers: its key; Automatic1111: its
    /// `name`, else the file name; kohya: the file name).
    /// - Throws: `EmbeddingError` for a file in none of the formats, an empty or malformed embedding.
    public init(path: String, token: String? = nil) throws {
        let stem = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        let found: (token: String?, vectors: Tensor, format: Format)
        if path.lowercased().hasSuffix(".safetensors") {
            found = try Self.readSafeTensors(path)
        } else {
            found = try Self.readTorch(path)
        }
        let vectors = try Self.matrix(found.vectors, path)
        guard let name = token ?? found.token ?? (stem.isEmpty ? nil : stem), !name.isEmpty else {
            throw EmbeddingError.unreadable(path, "no token name; give one as FILE=TOKEN")
        }
        self.token = name
        self.vectors = vectors
        format = found.format
        self.path = path
        sha256 = try SHA256.hexDigest(ofFile: path)
    }

    /// Every embedding file (.safetensors, .pt, .bin) directly inside `directory`, sorted by name.
    public static func directory(_ directory: String) throws -> [TextualInversionEmbedding] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw EmbeddingError.unreadable(directory, "not a directory")
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        return try names.filter { n in [".safetensors", ".pt", ".bin"].contains { n.lowercased().hasSuffix($0) } }
            .map { try TextualInversionEmbedding(path: (directory as NSString).appendingPathComponent($0)) }
    }

    static func readSafeTensors(_ path: String) throws -> (token: String?, vectors: Tensor, format: Format) {
        let file = try SafeTensorsFile(path: path)
        if file.names.contains("emb_params") { return (nil, try file.floatTensor("emb_params"), .kohya) }
        if file.names.contains("string_to_param.*") {
            return (file.metadata["name"], try file.floatTensor("string_to_param.*"), .automatic1111)
        }
        if file.names.count == 1, let key = file.names.first { return (key, try file.floatTensor(key), .diffusers) }
        throw EmbeddingError.unknownFormat(path, file.names)
    }

    static func readTorch(_ path: String) throws -> (token: String?, vectors: Tensor, format: Format) {
        let file = try TorchFile(path: path)
        guard case .dict(let entries) = file.root else { throw EmbeddingError.unknownFormat(path, []) }
        let keys = entries.compactMap { $0.key.stringValue }
        if let params = file.root["string_to_param"] {
            // A dict {"*": tensor}, or a pickled ParameterDict whose state holds `_parameters`.
            var holder = params
            if case .object(_, _, _, let state?) = params, let inner = state["_parameters"] { holder = inner }
            guard case .dict(let items) = holder, items.count == 1, let ref = items[0].value.tensorValue else {
                throw EmbeddingError.unreadable(path, "string_to_param must hold exactly one tensor")
            }
            return (file.root["name"]?.stringValue, try file.floatTensor(ref), .automatic1111)
        }
        if let ref = file.root["emb_params"]?.tensorValue { return (nil, try file.floatTensor(ref), .kohya) }
        if entries.count == 1, let key = entries[0].key.stringValue, let ref = entries[0].value.tensorValue {
            return (key, try file.floatTensor(ref), .diffusers)
        }
        throw EmbeddingError.unknownFormat(path, keys)
    }

    /// [D] → [1, D]; [n, D] kept; anything else refused.
    static func matrix(_ t: Tensor, _ path: String) throws -> Tensor {
        switch t.shape.count {
        case 1 where t.count > 0: return Tensor(shape: [1, t.count], values: t.scalars)
        case 2 where t.count > 0: return t
        default: throw EmbeddingError.unreadable(path, "not a textual-inversion embedding: its tensor has shape \(t.shape), not [vectors, width]")
        }
    }
}

/// Errors of textual-inversion files and tokens (one line each).
public enum EmbeddingError: Error, CustomStringConvertible {
    case unreadable(String, String)
    case unknownFormat(String, [String])
    case tokenInVocabulary(String, token: String)
    case widthMismatch(String, width: Int, expected: Int)

    public var description: String {
        switch self {
        case .unreadable(let p, let why): return "\(p): \(why)"
        case .unknownFormat(let p, let keys):
            return "\(p): not a textual-inversion embedding (diffusers {token: vectors}, Automatic1111 string_to_param "
                + "or kohya emb_params)\(keys.isEmpty ? "" : "; its entries: " + keys.prefix(5).joined(separator: ", "))"
        case .tokenInVocabulary(let p, let token):
            return "\(p): the token '\(token)' is already in the vocabulary; choose another with FILE=TOKEN"
        case .widthMismatch(let p, let width, let expected):
            return "\(p): vectors of width \(width), but this model's text encoder takes \(expected) "
                + "(an embedding for SD \(width == 768 ? "1.x" : width == 1024 ? "2.x" : "another model")?)"
        }
    }
}

extension StableDiffusion {
    /// Registers textual-inversion embeddings: their tokens join the tokenizer and their vectors the text
    /// encoder's table, so prompts can use them (a multi-vector token expands to all its vectors).
    /// Everything is checked before anything is added.
    public func addEmbeddings(_ embeddings: [TextualInversionEmbedding]) throws {
        let width = textEncoder.config.hiddenSize
        var claimed = Set<String>()
        for e in embeddings {
            guard e.vectors.dim(1) == width else { throw EmbeddingError.widthMismatch(e.path, width: e.vectors.dim(1), expected: width) }
            for t in e.tokens where tokenizer.id(for: t) != nil || !claimed.insert(t).inserted {
                throw EmbeddingError.tokenInVocabulary(e.path, token: t)
            }
        }
        for e in embeddings {
            for (row, t) in e.tokens.enumerated() {
                let id = try tokenizer.addToken(t)
                let vector = batchSlice(e.vectors, row..<row + 1)
                try textEncoder.setTokenEmbeddings(startingAt: id, vector)
            }
        }
        embeddingsUsed += embeddings.map { "\($0.token)=\($0.sha256)" }
    }

    /// The embeddings registered so far, as "token=sha256" (for inversion metadata and cache keys).
    public var embeddingsDescription: String { embeddingsUsed.sorted().joined(separator: ",") }
}
