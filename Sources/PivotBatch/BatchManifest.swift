import Foundation
import PivotIO
import Pivot

/// One edit of a batch: an image (relative to the input folder), its prompts, an optional output path
/// (relative to the output folder) and per-row settings that override the batch's (`EditSettings` keys).
public struct BatchRow: Sendable, Equatable {
    /// 1-based position in the manifest (data rows, not counting a CSV header), or in the generated list.
    public var number: Int
    public var image: String
    public var source: String
    public var target: String
    public var output: String?
    public var settings: [String: String]

    public init(
        number: Int, image: String, source: String, target: String, output: String? = nil,
        settings: [String: String] = [:]
    ) {
        self.number = number
        self.image = image
        self.source = source
        self.target = target
        self.output = output
        self.settings = settings
    }
}

/// A manifest that cannot be read at all (a bad row is reported by the batch instead).
public struct ManifestError: Error, CustomStringConvertible {
    public let path: String
    public let why: String
    public var description: String { "\(path): \(why)" }
}

/// Batch manifests: CSV with a header, a JSON array of objects, or JSON lines (one object per line).
/// Columns/keys: `image`, `source`, `target`, optional `output`, and any `EditSettings` key. In JSON a
/// setting may be a number, a string, an array (`reweight: ["cat=2", "hat=0.5"]`, `blend: ["cat"]`) or an
/// object (`reweight: {"cat": 2}`); in CSV several items are separated by `;` (`cat=2;hat=0.5`).
public enum BatchManifest {
    public static let rowKeys: Set<String> = ["image", "source", "target", "output"]

    /// Reads a manifest of at most `limits` (size checked before reading, rows before parsing).
    /// - Throws: `ManifestError` naming the file (and the row), `InputLimitError` over the limits.
    public static func read(_ path: String, limits: TextLimits = .manifest) throws -> [BatchRow] {
        let (text, data) = try readLimitedText(path, limits: limits) { why in
            ManifestError(path: path, why: why == "not UTF-8 text" ? "the manifest is not UTF-8 text" : "the manifest \(why)")
        }
        let lower = path.lowercased()
        let trimmed = text.drop { $0.isWhitespace || $0 == "\u{FEFF}" }
        if lower.hasSuffix(".jsonl") || lower.hasSuffix(".ndjson") || (!lower.hasSuffix(".json") && trimmed.first == "{") {
            return try jsonLines(text, path)
        }
        if lower.hasSuffix(".json") || trimmed.first == "[" { return try jsonArray(data, path) }
        return try csv(text, path)
    }

    static func jsonArray(_ data: Data, _ path: String) throws -> [BatchRow] {
        guard let array = (try? JSONSerialization.jsonObject(with: data)) as? [Any] else {
            throw ManifestError(path: path, why: "not a JSON array of objects")
        }
        return try array.enumerated().map { try row(fromJSON: $0.element, number: $0.offset + 1, path) }
    }

    static func jsonLines(_ text: String, _ path: String) throws -> [BatchRow] {
        var rows: [BatchRow] = []
        for line in text.split(whereSeparator: \.isNewline) where !line.allSatisfy(\.isWhitespace) {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) else {
                throw ManifestError(path: path, why: "line \(rows.count + 1) is not a JSON object")
            }
            rows.append(try row(fromJSON: object, number: rows.count + 1, path))
        }
        return rows
    }

    static func row(fromJSON object: Any, number: Int, _ path: String) throws -> BatchRow {
        guard let dict = object as? [String: Any] else { throw ManifestError(path: path, why: "row \(number) is not an object") }
        var fields: [String: String] = [:]
        for (key, value) in dict { fields[key] = try flatten(value, key: key, number: number, path) }
        return try row(fields, number: number, path)
    }

    /// A JSON value as the string syntax of the CSV columns.
    static func flatten(_ value: Any, key: String, number: Int, _ path: String) throws -> String {
        let separator = key == "blend" ? " " : ";"
        switch value {
        case let s as String: return s
        case let n as NSNumber: return n.stringValue
        case let a as [Any]: return try a.map { try flatten($0, key: key, number: number, path) }.joined(separator: separator)
        case let d as [String: Any]:
            return try d.keys.sorted().map { "\($0)=\(try flatten(d[$0] ?? "", key: key, number: number, path))" }.joined(separator: separator)
        default: throw ManifestError(path: path, why: "row \(number): '\(escapedForOneLine(key))' has a value of an unsupported type")
        }
    }

    static func row(_ fields: [String: String], number: Int, _ path: String) throws -> BatchRow {
        for key in ["image", "source", "target"] where (fields[key] ?? "").isEmpty {
            throw ManifestError(path: path, why: "row \(number) has no '\(escapedForOneLine(key))'")
        }
        let settings = fields.filter { !rowKeys.contains($0.key) && !$0.value.isEmpty }
        for key in settings.keys where !EditSettings.keys.contains(key) {
            throw ManifestError(
                path: path,
                why: "row \(number): unknown setting '\(escapedForOneLine(key))' (known: \(EditSettings.keys.sorted().joined(separator: ", ")))")
        }
        let output = fields["output"].flatMap { $0.isEmpty ? nil : $0 }
        return BatchRow(
            number: number, image: fields["image"] ?? "", source: fields["source"] ?? "",
            target: fields["target"] ?? "", output: output, settings: settings)
    }

    static func csv(_ text: String, _ path: String) throws -> [BatchRow] {
        let records = try parseCSV(text, path)
        guard let header = records.first else { throw ManifestError(path: path, why: "the manifest is empty") }
        let names = header.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        for name in names where !rowKeys.contains(name) && !EditSettings.keys.contains(name) {
            throw ManifestError(
                path: path,
                why: "unknown column '\(escapedForOneLine(name))' (known: \((rowKeys.union(EditSettings.keys)).sorted().joined(separator: ", ")))"
            )
        }
        var rows: [BatchRow] = []
        for (i, record) in records.dropFirst().enumerated() where !(record.count == 1 && record[0].isEmpty) {
            guard record.count == names.count else {
                throw ManifestError(path: path, why: "row \(i + 1) has \(record.count) fields; the header has \(names.count)")
            }
            rows.append(try row(Dictionary(zip(names, record), uniquingKeysWith: { $1 }), number: rows.count + 1, path))
        }
        return rows
    }

    /// RFC 4180 records: quoted fields may hold commas, quotes ("") and newlines; CRLF or LF line ends.
    static func parseCSV(_ text: String, _ path: String) throws -> [[String]] {
        var records: [[String]] = [], record: [String] = [], field = ""
        var quoted = false, atStart = true
        var it = Array(text.unicodeScalars.filter { $0 != "\u{FEFF}" }).makeIterator()
        var pending: Unicode.Scalar? = nil
        func next() -> Unicode.Scalar? {
            if let p = pending {
                pending = nil
                return p
            }
            return it.next()
        }
        while let c = next() {
            if quoted {
                if c == "\"" {
                    if let n = next() {
                        if n == "\"" {
                            field.unicodeScalars.append("\"")
                        } else {
                            quoted = false
                            pending = n
                        }
                    } else {
                        quoted = false
                    }
                } else {
                    field.unicodeScalars.append(c)
                }
                continue
            }
            switch c {
            case "\"" where atStart && field.isEmpty:
                quoted = true
                atStart = false
            case ",":
                record.append(field)
                field = ""
                atStart = true
            case "\r": break
            case "\n":
                record.append(field)
                records.append(record)
                record = []
                field = ""
                atStart = true
            default:
                field.unicodeScalars.append(c)
                atStart = false
            }
        }
        if quoted { throw ManifestError(path: path, why: "a quoted field is not closed") }
        if !field.isEmpty || !record.isEmpty {
            record.append(field)
            records.append(record)
        }
        return records
    }
}
