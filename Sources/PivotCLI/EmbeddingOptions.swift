import ArgumentParser
import Foundation
import Pivot
import PivotLoading

/// The textual-inversion flags of `generate`, `invert`, `edit` and `encode`.
struct EmbeddingOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "A textual-inversion embedding (diffusers, Automatic1111 or kohya; .safetensors, .pt or .bin), optionally with the token to use (repeatable).",
            valueName: "FILE[=TOKEN]"))
    var embedding: [String] = []

    @Option(name: .long, help: ArgumentHelp("Every embedding file in a directory, each under its own token.", valueName: "DIR"))
    var embeddings: String?

    /// The files, read and checked; nothing is added to a model.
    func load() throws -> [TextualInversionEmbedding] {
        var list = try embedding.map { item -> TextualInversionEmbedding in
            // FILE=TOKEN, unless the whole argument names a file (paths may contain '=').
            if !FileManager.default.fileExists(atPath: item), let eq = item.lastIndex(of: "=") {
                let path = String(item[..<eq]), token = String(item[item.index(after: eq)...])
                guard !token.isEmpty else { throw ValidationError("--embedding \(item): the token after '=' is empty") }
                return try TextualInversionEmbedding(path: path, token: token)
            }
            return try TextualInversionEmbedding(path: item)
        }
        if let embeddings { list += try TextualInversionEmbedding.directory(embeddings) }
        return list
    }

    /// Loads the embeddings into `sd`, noting each token on standard error unless `quiet`.
    func apply(to sd: StableDiffusion, quiet: Bool) throws {
        let list = try load()
        try sd.addEmbeddings(list)
        if !quiet {
            for e in list {
                note("embedding \(e.token) (\(e.format.rawValue), \(e.vectors.dim(0)) vector\(e.vectors.dim(0) == 1 ? "" : "s")) from \(e.path)")
            }
        }
    }
}
