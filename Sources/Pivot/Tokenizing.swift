import Foundation
import PivotText

extension ModelFolder {
    /// The model's CLIP tokenizer, read from `<model>/tokenizer/` (transformers 5's tokenizer.json,
    /// or vocab.json + merges.txt with their config files).
    /// - Throws: `TokenizerError` naming the missing or malformed file.
    public func tokenizer() throws -> CLIPTokenizer {
        try CLIPTokenizer(folder: display("tokenizer"))
    }
}
