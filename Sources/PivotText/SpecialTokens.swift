import Foundation

/// How transformers 5.23 reads special tokens from tokenizer_config.json and special_tokens_map.json.
extension TokenizerDefinition {
    /// tokenizer_config.json: named tokens (strings, or `{"__type": "AddedToken", ...}` objects whose
    /// `special` defaults to false, so `normalized` to true), extra special tokens,
    /// `added_tokens_decoder`, `model_max_length`.
    mutating func apply(config: [String: Any], file: String) throws {
        for key in Self.namedKeys {
            guard let value = config[key] else { continue }
            if value is NSNull {
                named[key] = nil
            } else if let s = value as? String {
                named[key] = .plain(s)
            } else if let o = value as? [String: Any], o["__type"] as? String == "AddedToken" {
                named[key] = .object(try addedToken(o, specialDefault: false, file: file))
            } else {
                throw TokenizerError.malformed(file: file, reason: "\(key) is neither a string nor an AddedToken object")
            }
        }
        for key in ["additional_special_tokens", "extra_special_tokens"] {
            guard let value = config[key], !(value is NSNull) else { continue }
            try addExtras(value, key: key, file: file)
        }
        if let value = config["added_tokens_decoder"], !(value is NSNull) {
            guard let entries = value as? [String: Any] else {
                throw TokenizerError.malformed(file: file, reason: "added_tokens_decoder is not an object of id → token")
            }
            for (key, entry) in entries {
                guard let index = Int(key), let object = entry as? [String: Any] else {
                    throw TokenizerError.malformed(file: file, reason: "added_tokens_decoder entry \"\(key)\" is not an id → token object")
                }
                decoder[index] = try addedToken(object, specialDefault: false, file: file)
            }
        }
        if let value = config["model_max_length"], !(value is NSNull) {
            guard let n = value as? NSNumber, String(cString: n.objCType) != "c", n.doubleValue >= 2 else {
                throw TokenizerError.malformed(file: file, reason: "model_max_length is not a length")
            }
            // transformers writes 1e30 ("no limit") where a config has none: keep CLIP's 77 then.
            if let length = integer(value), length <= 1_000_000 { maxLength = length }
        }
    }

    /// special_tokens_map.json (read only when the config has no `added_tokens_decoder`): its
    /// entries replace the config's; objects here are special, so `normalized` defaults to false.
    mutating func apply(specialTokensMap map: [String: Any], file: String) throws {
        for (key, value) in map {
            if Self.namedKeys.contains(key) {
                if value is NSNull {
                    named[key] = nil
                } else if let s = value as? String {
                    named[key] = .plain(s)
                } else if var o = value as? [String: Any] {
                    o["special"] = nil
                    named[key] = .object(try addedToken(o, specialDefault: true, file: file))
                } else {
                    throw TokenizerError.malformed(file: file, reason: "\(key) is neither a string nor a token object")
                }
            } else if key == "additional_special_tokens" || key == "extra_special_tokens" {
                try addExtras(value, key: key, file: file)
            }
        }
    }

    private mutating func addExtras(_ value: Any, key: String, file: String) throws {
        let items: [Any]
        if let list = value as? [Any] {
            items = list
        } else if let dict = value as? [String: Any] {
            items = dict.keys.sorted().map { dict[$0]! }
        } else {
            throw TokenizerError.malformed(file: file, reason: "\(key) is not a list of tokens")
        }
        for item in items {
            let spec: TokenSpec
            if let s = item as? String {
                spec = .plain(s)
            } else if let o = item as? [String: Any] {
                spec = .object(try addedToken(o, specialDefault: o["__type"] == nil, file: file))
            } else {
                throw TokenizerError.malformed(file: file, reason: "\(key) holds something that is not a token")
            }
            if !extras.contains(where: { $0.content == spec.content }) { extras.append(spec) }
        }
    }

    /// The Stable Diffusion 1.x hub tokenizer files (openai/clip-vit-large-patch14): bos, eos and unk
    /// as normalized AddedToken objects, pad the plain string `<|endoftext|>`.
    mutating func applySD1Defaults() {
        let sot = AddedToken("<|startoftext|>", special: true, normalized: true)
        let eot = AddedToken("<|endoftext|>", special: true, normalized: true)
        named = [
            "bos_token": .object(sot), "eos_token": .object(eot), "unk_token": .object(eot),
            "pad_token": .plain("<|endoftext|>"),
        ]
        maxLength = 77
    }
}
