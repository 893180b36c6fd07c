import Foundation

/// Errors loading a tokenizer or adding tokens to it; each description is one line that names the file.
public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    /// The tokenizer folder does not exist.
    case missingFolder(String)
    /// The path exists but is not a folder.
    case notAFolder(String)
    /// A file the folder needs is absent (`vocab.json`, `merges.txt`, or the built-in resource).
    case missingFile(String, why: String)
    /// A file exists but cannot be read.
    case unreadable(String)
    /// A JSON file does not parse.
    case malformedJSON(file: String, reason: String)
    /// A file parses but its content is not what a CLIP tokenizer needs.
    case malformed(file: String, reason: String)
    /// A merges line that is not two tokens separated by one space.
    case badMergeLine(file: String, line: Int, text: String)
    /// A merge whose part, or whose joined result, is not in the vocabulary.
    case mergeNotInVocabulary(file: String, line: Int, token: String)
    /// `addToken` was given a token the vocabulary already has.
    case tokenAlreadyPresent(String, id: Int)
    /// `addToken` was given an empty string.
    case emptyToken

    public var description: String {
        switch self {
        case .missingFolder(let p): return "\(p): tokenizer folder not found"
        case .notAFolder(let p): return "\(p): not a tokenizer folder"
        case .missingFile(let p, let why): return "\(p): file not found (\(why))"
        case .unreadable(let p): return "\(p): cannot read"
        case .malformedJSON(let f, let reason): return "\(f): malformed JSON: \(reason)"
        case .malformed(let f, let reason): return "\(f): \(reason)"
        case .badMergeLine(let f, let line, let text):
            return "\(f): line \(line) is not a merge pair (two tokens separated by one space): \(quoted(text))"
        case .mergeNotInVocabulary(let f, let line, let token):
            return "\(f): merge \(line) uses \(quoted(token)), which is not in the vocabulary"
        case .tokenAlreadyPresent(let token, let id): return "token \(quoted(token)) is already in the vocabulary (id \(id))"
        case .emptyToken: return "cannot add an empty token"
        }
    }

    /// A string quoted for a one-line message: control characters and quotes escaped, long text cut.
    private func quoted(_ s: String) -> String {
        var out = ""
        for scalar in s.unicodeScalars.prefix(80) {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            default:
                if scalar.properties.generalCategory == .control || scalar.properties.isWhitespace && scalar != " " {
                    out += scalar.escaped(asASCII: true)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return "\"" + out + (s.unicodeScalars.count > 80 ? "…" : "") + "\""
    }
}
