import Foundation

/// A prompt turned into CLIP token ids.
public struct TokenizedPrompt: Equatable, Sendable {
    /// `maxLength` ids (77 for Stable Diffusion): BOS, the prompt's tokens, EOS, then the pad id.
    public var ids: [Int]
    /// The tokens of the ids before padding, BOS and EOS included (e.g. `a</w>`, `<|endoftext|>`).
    public var tokens: [String]
    /// Whether the prompt had more tokens than fit, so some were dropped.
    public var truncated: Bool
    /// The dropped part decoded to text (what diffusers prints in its truncation warning); empty
    /// when nothing was dropped.
    public var droppedText: String

    /// Bundles the fields as they are.
    public init(ids: [Int], tokens: [String], truncated: Bool, droppedText: String) {
        self.ids = ids
        self.tokens = tokens
        self.truncated = truncated
        self.droppedText = droppedText
    }
}

/// CLIP's byte-level BPE tokenizer, giving the ids transformers 5.23's `CLIPTokenizer` gives with
/// `padding="max_length", max_length=model_max_length, truncation=True`.
///
/// The text goes through the same steps: added tokens (special tokens, a pad token such as `!`,
/// textual-inversion tokens) are split out first, those with `normalized: false` from the raw text;
/// the rest is normalized (NFC, runs of whitespace to one space, lower case), the normalized added
/// tokens split out, then CLIP's regex splits words, punctuation runs and single digits, and BPE
/// with `</w>` word ends maps each to ids.
///
/// Not safe to use from several threads while `addToken` runs.
public final class CLIPTokenizer {
    private let model: BPEModel
    private var added: AddedVocabulary
    private let unknown: Int?

    /// Id of the beginning-of-sequence token (`<|startoftext|>`, 49406 in CLIP's vocabulary).
    public let bos: Int
    /// Id of the end-of-sequence token (`<|endoftext|>`, 49407).
    public let eos: Int
    /// Id that fills the sequence after EOS: 49407 for SD 1.x, 0 (`!`) for SD 2.x.
    public let pad: Int
    /// Length of every `ids`: tokenizer_config.json's `model_max_length`, 77 when absent.
    public let maxLength: Int

    private init(_ definition: TokenizerDefinition) {
        let model = definition.model
        let added = definition.addedVocabulary()
        func id(_ key: String) -> Int? {
            definition.named[key].flatMap { added.idByContent[$0.content] ?? model.vocab[$0.content] }
        }
        bos = id("bos_token") ?? 0
        eos = id("eos_token") ?? 0
        pad = id("pad_token") ?? 0
        unknown = definition.named["unk_token"].flatMap { model.vocab[$0.content] }
        maxLength = definition.maxLength
        self.model = model
        self.added = added
    }

    /// Loads a tokenizer folder (a model's `tokenizer/`): transformers 5's `tokenizer.json`, or
    /// `vocab.json` + `merges.txt`, with `tokenizer_config.json`, `special_tokens_map.json` and
    /// `added_tokens.json` when present, resolving special tokens as transformers does.
    /// - Throws: `TokenizerError` naming the missing or malformed file.
    public convenience init(folder: String) throws {
        let definition = try TokenizerFolder(path: folder).load()
        for key in ["bos_token", "eos_token", "pad_token"] where definition.named[key] == nil {
            throw TokenizerError.malformed(
                file: (folder as NSString).appendingPathComponent("tokenizer_config.json"),
                reason: "the tokenizer has no \(key)")
        }
        self.init(definition)
    }

    /// The real CLIP tokenizer (OpenAI CLIP ViT-L/14, as SD 1.x ships it, padding with
    /// `<|endoftext|>`; SD 2.x's OpenCLIP tokenizer pads with "!"): 49,408 ids derived from the built-in merges.
    /// - Throws: `TokenizerError` if the built-in resource is missing from the installation.
    public static func builtin(padToken: String = "<|endoftext|>") throws -> CLIPTokenizer {
        var definition = TokenizerDefinition(model: try builtinModel.get())
        definition.applySD1Defaults()
        definition.named["pad_token"] = .plain(padToken)
        return CLIPTokenizer(definition)
    }

    private static let builtinModel: Result<BPEModel, Error> = Result {
        guard let url = Bundle.module.url(forResource: "clip-merges", withExtension: "txt", subdirectory: "Resources") else {
            throw TokenizerError.missingFile("PivotText resources/clip-merges.txt", why: "pivot's installation is incomplete")
        }
        guard let data = try? Data(contentsOf: url) else { throw TokenizerError.unreadable(url.path) }
        return try BPEModel.clip(merges: parseMerges(data, file: url.path), file: url.path)
    }

    /// Number of ids: the vocabulary plus added tokens that are not in it (49,408 for CLIP).
    public var vocabularySize: Int {
        model.vocab.count + added.idByContent.keys.filter { model.vocab[$0] == nil }.count
    }

    /// The id of a token as the vocabulary spells it (`cat</w>`, `<|endoftext|>`), nil if absent.
    public func id(for token: String) -> Int? {
        added.idByContent[token] ?? model.vocab[token]
    }

    /// The token of an id (added tokens first, as transformers looks them up), nil if unknown.
    public func token(for id: Int) -> String? {
        added.byId[id]?.content ?? model.tokens[id]
    }

    /// Appends a token to the vocabulary, matched in normalized text like transformers'
    /// `add_tokens` (for textual-inversion embeddings), and returns its id.
    /// - Throws: `TokenizerError.tokenAlreadyPresent` if the vocabulary has it, `.emptyToken` for "".
    @discardableResult
    public func addToken(_ token: String) throws -> Int {
        guard !token.isEmpty else { throw TokenizerError.emptyToken }
        if let existing = id(for: token) { throw TokenizerError.tokenAlreadyPresent(token, id: existing) }
        guard let id = added.add(AddedToken(token, special: false), model: model) else { throw TokenizerError.emptyToken }
        return id
    }

    /// The tokens added after the vocabulary (textual-inversion tokens), in id order.
    public var addedTokens: [String] {
        added.idByContent.filter { model.vocab[$0.key] == nil }.sorted { $0.value < $1.value }.map(\.key)
    }

    /// The prompt with each multi-vector textual-inversion token `tok` written out as `tok tok_1 … tok_{n−1}`
    /// (the tokens registered for it), as diffusers' `maybe_convert_prompt` does: every added token the
    /// prompt tokenizes to, in order of first appearance, is replaced in the text wherever it occurs.
    public func expandingMultiVectorTokens(_ prompt: String) -> String {
        var seen = Set<String>(), result = prompt
        for id in contentIds(prompt) {
            guard let content = added.byId[id]?.content, seen.insert(content).inserted else { continue }
            var replacement = content, i = 1
            while added.idByContent["\(content)_\(i)"] != nil {
                replacement += " \(content)_\(i)"
                i += 1
            }
            if i > 1 { result = replacingScalars(in: result, content, with: replacement) }
        }
        return result
    }

    /// Tokenizes a prompt: BOS, at most `maxLength - 2` tokens, EOS, padding.
    public func encode(_ prompt: String) -> TokenizedPrompt {
        let content = contentIds(prompt)
        let keep = min(content.count, maxLength - 2)
        var ids = [bos] + content[..<keep] + [eos]
        let tokens = ids.map { token(for: $0) ?? "" }
        ids += repeatElement(pad, count: maxLength - ids.count)
        let truncated = keep < content.count
        return TokenizedPrompt(
            ids: ids, tokens: tokens, truncated: truncated,
            droppedText: truncated ? decode(Array(content[keep...])) : "")
    }

    /// The prompt's token ids without BOS, EOS, truncation or padding.
    public func contentIds(_ prompt: String) -> [Int] {
        var ids: [Int] = []
        for piece in added.extract(Array(prompt.unicodeScalars)) {
            switch piece {
            case .token(let id):
                ids.append(id)
            case .text(let text):
                for range in preTokenizeCLIP(text) {
                    var view = String.UnicodeScalarView()
                    view.append(contentsOf: text[range])
                    ids += model.encode(word: String(view).utf8, unknown: unknown)
                }
            }
        }
        return ids
    }

    /// The normalizer step on its own (NFC, each run of whitespace to one space, lower case scalar
    /// by scalar), for inspection and tests.
    public static func normalize(_ text: String) -> String {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: normalizeCLIP(Array(text.unicodeScalars)[...]))
        return String(view)
    }

    /// The pre-tokenizer step on its own: the pieces of normalized text that BPE sees (words,
    /// contractions, single digits, punctuation runs), for inspection and tests.
    public static func preTokenize(_ normalizedText: String) -> [String] {
        let scalars = Array(normalizedText.unicodeScalars)
        return preTokenizeCLIP(scalars).map { range in
            var view = String.UnicodeScalarView()
            view.append(contentsOf: scalars[range])
            return String(view)
        }
    }

    /// Ids back to text as transformers' `CLIPTokenizer.decode` does: byte-level decoding (invalid
    /// UTF-8 becomes U+FFFD), `</w>` to a space, surrounding whitespace removed.
    public func decode(_ ids: [Int]) -> String {
        var bytes: [UInt8] = []
        for id in ids {
            guard let token = token(for: id) else { continue }
            bytes += ByteLevel.decode(token)
        }
        // "</w>" → " " on the bytes: lossy UTF-8 decoding keeps every ASCII byte, so this equals
        // replacing in the decoded text.
        let marker = Array(BPEModel.endOfWord.utf8)
        var replaced: [UInt8] = []
        replaced.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if bytes[i] == marker[0], bytes[i...].starts(with: marker) {
                replaced.append(0x20)
                i += marker.count
            } else {
                replaced.append(bytes[i])
                i += 1
            }
        }
        let text = String(decoding: replaced, as: UTF8.self)
        // Python's str.strip(): Unicode White_Space plus the separators U+001C...U+001F.
        func isSpace(_ s: Unicode.Scalar) -> Bool { s.properties.isWhitespace || (0x1C...0x1F).contains(s.value) }
        let scalars = Array(text.unicodeScalars)
        guard let first = scalars.firstIndex(where: { !isSpace($0) }), let last = scalars.lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars[first...last])
        return String(view)
    }
}

/// Python's `str.replace`: every non-overlapping occurrence, left to right, compared code point by code point.
func replacingScalars(in text: String, _ target: String, with replacement: String) -> String {
    let t = Array(text.unicodeScalars), p = Array(target.unicodeScalars)
    guard !p.isEmpty else { return text }
    var out = String.UnicodeScalarView(), i = 0
    while i < t.count {
        if i + p.count <= t.count, t[i..<(i + p.count)].elementsEqual(p) {
            out.append(contentsOf: replacement.unicodeScalars)
            i += p.count
        } else {
            out.append(t[i])
            i += 1
        }
    }
    return String(out)
}

extension CLIPTokenizer {
    /// Writes the built-in tokenizer as a transformers tokenizer folder (vocab.json, merges.txt,
    /// tokenizer_config.json, special_tokens_map.json) padding with `padToken`.
    public static func writeBuiltin(to directory: String, padToken: String = "<|endoftext|>") throws {
        let model = try builtinModel.get()
        guard let url = Bundle.module.url(forResource: "clip-merges", withExtension: "txt", subdirectory: "Resources"),
            let merges = try? Data(contentsOf: url)
        else {
            throw TokenizerError.missingFile("PivotText resources/clip-merges.txt", why: "pivot's installation is incomplete")
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        func write(_ name: String, _ data: Data) throws {
            try data.write(to: URL(fileURLWithPath: (directory as NSString).appendingPathComponent(name)))
        }
        let vocab = try JSONSerialization.data(withJSONObject: model.vocab, options: [.sortedKeys])
        try write("vocab.json", vocab)
        try write("merges.txt", Data("#version: 0.2\n".utf8) + merges)
        func token(_ s: String) -> [String: Any] {
            ["content": s, "lstrip": false, "normalized": true, "rstrip": false, "single_word": false]
        }
        let special: [String: Any] = [
            "bos_token": token("<|startoftext|>"), "eos_token": token("<|endoftext|>"),
            "unk_token": token("<|endoftext|>"), "pad_token": padToken,
        ]
        try write("special_tokens_map.json", try JSONSerialization.data(withJSONObject: special, options: [.sortedKeys, .prettyPrinted]))
        var config = special
        config["model_max_length"] = 77
        config["do_lower_case"] = true
        config["errors"] = "replace"
        config["add_prefix_space"] = false
        config["tokenizer_class"] = "CLIPTokenizer"
        try write("tokenizer_config.json", try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys, .prettyPrinted]))
    }
}
