import Foundation
import PivotIO

/// A special token as a config file names it: a plain string, or an AddedToken object with flags.
enum TokenSpec: Equatable {
    case plain(String)
    case object(AddedToken)

    var content: String {
        switch self {
        case .plain(let s): return s
        case .object(let t): return t.content
        }
    }

    /// The AddedToken transformers adds for it: a plain string is special and not normalized.
    var token: AddedToken {
        switch self {
        case .plain(let s): return AddedToken(s, special: true, normalized: false)
        case .object(let t): return t
        }
    }
}

/// What a tokenizer folder holds once read: the BPE model, the special tokens resolved the way
/// transformers 5.23 resolves them, and the sequence length.
struct TokenizerDefinition {
    /// The named special tokens in transformers' order (bos, eos, unk, sep, pad, cls, mask).
    static let namedKeys = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]

    var model: BPEModel
    /// Named special tokens (nil: none).
    var named: [String: TokenSpec] = [
        "bos_token": .plain("<|startoftext|>"), "eos_token": .plain("<|endoftext|>"),
        "unk_token": .plain("<|endoftext|>"), "pad_token": .plain("<|endoftext|>"),
    ]
    /// `additional_special_tokens` / `extra_special_tokens`.
    var extras: [TokenSpec] = []
    /// Added tokens by index: tokenizer_config.json's `added_tokens_decoder`, or (legacy)
    /// added_tokens.json and tokenizer.json's `added_tokens`.
    var decoder: [Int: AddedToken] = [:]
    var maxLength = 77

    /// The added vocabulary transformers' `__init__` builds: the indexed tokens in index order, then
    /// the named special tokens and the extras whose content is not indexed, skipping repeats of an
    /// equal entry (a plain string never equals a token object); a content added again takes the
    /// later flags (so SD 1.x's plain pad `<|endoftext|>` makes EOS match only the raw text).
    func addedVocabulary() -> AddedVocabulary {
        var added = AddedVocabulary()
        let indexed = decoder.sorted { $0.key < $1.key }.map(\.value)
        let indexedContents = Set(indexed.map(\.content))
        var later: [TokenSpec] = []
        for spec in Self.namedKeys.compactMap({ named[$0] }) + extras
        where !indexedContents.contains(spec.content) && !later.contains(spec) {
            later.append(spec)
        }
        for token in indexed + later.map(\.token) { added.add(token, model: model) }
        return added
    }
}

/// Reads a `tokenizer/` folder: transformers 5's tokenizer.json, or the classic vocab.json +
/// merges.txt, with tokenizer_config.json, special_tokens_map.json and added_tokens.json if present.
struct TokenizerFolder {
    let path: String

    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: file(name)) }

    func data(_ name: String) throws -> Data {
        let f = file(name)
        guard exists(name) else { throw TokenizerError.missingFile(f, why: "the tokenizer needs it") }
        return try readLimitedData(f, limits: .config) { _ in TokenizerError.unreadable(f) }
    }

    func json(_ name: String) throws -> Any {
        let raw = try data(name)
        do {
            return try JSONSerialization.jsonObject(with: raw, options: [.fragmentsAllowed])
        } catch {
            let reason = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "does not parse"
            throw TokenizerError.malformedJSON(file: file(name), reason: reason.split(whereSeparator: \.isNewline).joined(separator: " "))
        }
    }

    func object(_ name: String) throws -> [String: Any] {
        guard let o = try json(name) as? [String: Any] else {
            throw TokenizerError.malformed(file: file(name), reason: "expected a JSON object")
        }
        return o
    }

    func load() throws -> TokenizerDefinition {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw TokenizerError.missingFolder(path) }
        guard isDir.boolValue else { throw TokenizerError.notAFolder(path) }

        let tokenizerJSON = exists("tokenizer.json") ? try object("tokenizer.json") : nil
        let model: BPEModel
        if let tokenizerJSON {
            model = try modelFromTokenizerJSON(tokenizerJSON)
        } else {
            guard exists("vocab.json") || exists("merges.txt") else {
                throw TokenizerError.missingFile(file("vocab.json"), why: "a tokenizer folder needs tokenizer.json, or vocab.json and merges.txt")
            }
            let vocab = try vocabulary(try json("vocab.json"), file: file("vocab.json"))
            let merges = try parseMerges(try data("merges.txt"), file: file("merges.txt"))
            model = try BPEModel(vocab: vocab, merges: merges, file: file("merges.txt"))
        }
        var definition = TokenizerDefinition(model: model)
        let configName = "tokenizer_config.json"
        let config = exists(configName) ? try object(configName) : [:]
        try definition.apply(config: config, file: file(configName))
        if config["added_tokens_decoder"] == nil {
            // transformers' legacy path: special_tokens_map.json overrides the config, and the
            // added tokens come from added_tokens.json and tokenizer.json.
            if exists("special_tokens_map.json") {
                try definition.apply(specialTokensMap: try object("special_tokens_map.json"), file: file("special_tokens_map.json"))
            }
            if exists("added_tokens.json") {
                let f = file("added_tokens.json")
                guard let entries = try json("added_tokens.json") as? [String: Any] else {
                    throw TokenizerError.malformed(file: f, reason: "expected an object of token → id")
                }
                let specials = Set(definition.named.values.map(\.content) + definition.extras.map(\.content))
                for (content, index) in entries {
                    guard let index = integer(index) else { throw TokenizerError.malformed(file: f, reason: "id of \(content) is not an integer") }
                    definition.decoder[index] = AddedToken(content, special: specials.contains(content))
                }
            }
            if let list = tokenizerJSON?["added_tokens"] {
                let f = file("tokenizer.json")
                guard let list = list as? [Any] else { throw TokenizerError.malformed(file: f, reason: "added_tokens is not a list") }
                for entry in list {
                    guard let entry = entry as? [String: Any], let id = integer(entry["id"]) else {
                        throw TokenizerError.malformed(file: f, reason: "an added_tokens entry has no integer id")
                    }
                    definition.decoder[id] = try addedToken(entry, specialDefault: false, file: f)
                }
            }
        }
        return definition
    }

    private func modelFromTokenizerJSON(_ json: [String: Any]) throws -> BPEModel {
        let f = file("tokenizer.json")
        guard let model = json["model"] as? [String: Any] else { throw TokenizerError.malformed(file: f, reason: "no model object") }
        if let type = model["type"] as? String, type != "BPE" {
            throw TokenizerError.malformed(file: f, reason: "model type \(type) is not BPE")
        }
        guard let rawVocab = model["vocab"] else { throw TokenizerError.malformed(file: f, reason: "model has no vocab") }
        let vocab: [String: Int]
        if let list = rawVocab as? [Any] {
            var v: [String: Int] = [:]
            for (i, entry) in list.enumerated() {
                guard let token = (entry as? String) ?? ((entry as? [Any])?.first as? String) else {
                    throw TokenizerError.malformed(file: f, reason: "model.vocab entry \(i) is not a token")
                }
                v[token] = i
            }
            vocab = v
        } else {
            vocab = try vocabulary(rawVocab, file: f)
        }
        var rules: [MergeRule] = []
        for (i, entry) in ((model["merges"] as? [Any]) ?? []).enumerated() {
            let parts: [String]
            if let s = entry as? String {
                parts = s.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            } else if let pair = entry as? [Any], pair.allSatisfy({ $0 is String }) {
                parts = pair.map { $0 as! String }
            } else {
                throw TokenizerError.badMergeLine(file: f, line: i + 1, text: String(describing: entry))
            }
            guard parts.count == 2 else { throw TokenizerError.badMergeLine(file: f, line: i + 1, text: parts.joined(separator: " ")) }
            rules.append(MergeRule(left: parts[0], right: parts[1], line: i + 1))
        }
        return try BPEModel(vocab: vocab, merges: rules, file: f)
    }

    private func vocabulary(_ json: Any, file f: String) throws -> [String: Int] {
        guard let object = json as? [String: Any] else {
            throw TokenizerError.malformed(file: f, reason: "vocabulary is not an object of token → id")
        }
        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(object.count)
        for (token, id) in object {
            guard let id = integer(id), id >= 0 else {
                throw TokenizerError.malformed(file: f, reason: "id of token \"\(token)\" is not a non-negative integer")
            }
            vocab[token] = id
        }
        return vocab
    }
}

/// An integer JSON value (not a boolean, not a fraction).
func integer(_ value: Any?) -> Int? {
    guard let n = value as? NSNumber, String(cString: n.objCType) != "c" else { return nil }  // "c": a JSON boolean
    let d = n.doubleValue
    guard d.rounded() == d, abs(d) <= 9e15 else { return nil }
    return n.intValue
}

/// An AddedToken from its JSON object (`content` and optional flags; `normalized` defaults to not special).
func addedToken(_ object: [String: Any], specialDefault: Bool, file: String) throws -> AddedToken {
    guard let content = object["content"] as? String else {
        throw TokenizerError.malformed(file: file, reason: "an added token has no content")
    }
    func flag(_ key: String) throws -> Bool? {
        guard let v = object[key], !(v is NSNull) else { return nil }
        guard let b = v as? Bool else { throw TokenizerError.malformed(file: file, reason: "\(key) of \"\(content)\" is not a boolean") }
        return b
    }
    var token = AddedToken(content, special: try flag("special") ?? specialDefault, normalized: try flag("normalized"))
    token.singleWord = try flag("single_word") ?? false
    token.lstrip = try flag("lstrip") ?? false
    token.rstrip = try flag("rstrip") ?? false
    return token
}
