import Foundation
import PivotText

extension ModelFolder {
    /// The model's CLIP tokenizer, read from `<model>/tokenizer/` (transformers 5's tokenizer.json,
    /// or vocab.json + merges.txt with their config files).
    /// - Throws: `TokenizerError` naming the missing or malformed file.
    public func tokenizer() throws -> CLIPTokenizer {
        if let tokenizerDirectory { return try CLIPTokenizer(folder: tokenizerDirectory) }
        if let single {
            if let configDirectory { return try ModelFolder(path: configDirectory).tokenizer() }
            // SD 2.x's OpenCLIP tokenizer is CLIP's BPE padded with "!".
            return try CLIPTokenizer.builtin(padToken: single.family == .sd2 ? "!" : "<|endoftext|>")
        }
        return try CLIPTokenizer(folder: display("tokenizer"))
    }
}
