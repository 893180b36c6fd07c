import Foundation
import PivotIO
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// The results of a PIE-Bench evaluation (PIEBench.swift) and their averages: per method over every entry, and
// per method and editing type, as the PIE-Bench paper's tables report them; as text, JSON and the reference's
// per-entry CSV.

/// Every value of a PIE-Bench evaluation and their averages.
///
/// Averages are means over the entries whose value is not NaN (an empty region), as pandas' `mean` gives them
/// from the reference's CSV; an infinite PSNR (an identical region) makes its mean infinite, as it does there.
public struct PIEBenchReport: Sendable {
    /// The mapping file read.
    public var mapping: String
    public var metrics: [PIEMetric]
    public var ssimBorder: SSIMBorder
    /// The editing types asked for.
    public var editingTypes: [String]
    /// Entries of the mapping file of other editing types (not evaluated).
    public var skipped: Int
    /// The entries evaluated, sorted by key.
    public var entries: [PIEBenchEntry]
    public var methods: [PIEBenchMethod]
    /// `values[entry][method][metric]`, indices into `entries`, `methods` and `metrics`.
    public var values: [[[Double]]]

    public init(
        mapping: String, metrics: [PIEMetric], ssimBorder: SSIMBorder, editingTypes: [String], skipped: Int,
        entries: [PIEBenchEntry], methods: [PIEBenchMethod], values: [[[Double]]]
    ) {
        precondition(values.count == entries.count && values.allSatisfy { $0.count == methods.count && $0.allSatisfy { $0.count == metrics.count } })
        self.mapping = mapping
        self.metrics = metrics
        self.ssimBorder = ssimBorder
        self.editingTypes = editingTypes
        self.skipped = skipped
        self.entries = entries
        self.methods = methods
        self.values = values
    }

    /// A mean and how many values it took (the entries whose value is not NaN).
    public struct Average: Sendable, Equatable {
        public var mean: Double
        public var count: Int
    }

    /// The mean of metric `metric` for method `method` over every entry, or over the entries of one editing
    /// type; NaN (count 0) when every value is NaN.
    public func average(method: Int, metric: Int, editingType: String? = nil) -> Average {
        var sum = 0.0, count = 0
        for (e, entry) in entries.enumerated() where editingType == nil || entry.editingTypeID == editingType {
            let v = values[e][method][metric]
            if v.isNaN { continue }
            sum += v
            count += 1
        }
        return Average(mean: count == 0 ? .nan : sum / Double(count), count: count)
    }

    /// How many entries are of `editingType` (all entries for nil).
    public func entryCount(editingType: String? = nil) -> Int {
        editingType.map { t in entries.filter { $0.editingTypeID == t }.count } ?? entries.count
    }

    /// The editing types of the evaluated entries, numerically when they are numbers.
    public var presentEditingTypes: [String] {
        Set(entries.map(\.editingTypeID)).sorted { a, b in
            if let x = Int(a), let y = Int(b) { return x < y }
            return a < b
        }
    }

    // MARK: - Text

    /// Tables for people: one row per method (means over every entry), then one per method and editing type;
    /// MSE ×10⁴ and SSIM ×10² as the paper's tables print them, two decimals.
    public var text: String {
        let types = editingTypes == PIEBench.defaultEditingTypes ? "0-9" : editingTypes.joined(separator: ",")
        var lines = [
            "PIE-Bench: \(entries.count) \(entries.count == 1 ? "entry" : "entries") of editing types \(types) from \(mapping)"
                + (skipped > 0 ? " (\(skipped) of other types skipped)" : "") + "; SSIM border: \(ssimBorder.rawValue)"
        ]
        let headers = metrics.map { m in m.displayScale == 1 ? m.name : m.name + " x10^\(Int(log10(m.displayScale)))" }
        func cells(_ method: Int, _ type: String?) -> [String] {
            (0..<metrics.count).map { k in
                let a = average(method: method, metric: k, editingType: type)
                return String(format: "%.2f", a.mean * metrics[k].displayScale)
            }
        }
        lines += table(
            header: ["method", "entries"] + headers, leftColumns: 1,
            rows: methods.indices.map { [methods[$0].name, String(entries.count)] + cells($0, nil) })
        lines += ["", "by editing type:"]
        var rows: [[String]] = []
        for m in methods.indices {
            for t in presentEditingTypes { rows.append([methods[m].name, t, String(entryCount(editingType: t))] + cells(m, t)) }
        }
        lines += table(header: ["method", "type", "entries"] + headers, leftColumns: 2, rows: rows)
        var leftOut: [String] = []
        for m in methods.indices {
            for k in metrics.indices {
                let a = average(method: m, metric: k)
                if a.count < entries.count { leftOut.append("\(methods[m].name) \(metrics[k].name) \(a.count) of \(entries.count)") }
            }
        }
        if !leftOut.isEmpty { lines += ["", "NaN values (empty regions) are left out of the means: " + leftOut.joined(separator: "; ")] }
        return lines.joined(separator: "\n")
    }

    /// Aligned columns: the first `leftColumns` left-aligned, the rest right-aligned.
    private func table(header: [String], leftColumns: Int, rows: [[String]]) -> [String] {
        let all = [header] + rows
        let widths = header.indices.map { c in all.map { $0[c].count }.max() ?? 0 }
        return all.map { row in
            row.indices.map { c in
                let pad = String(repeating: " ", count: widths[c] - row[c].count)
                return c < leftColumns ? row[c] + pad : pad + row[c]
            }.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
    }

    // MARK: - JSON

    /// The report as one JSON object (keys sorted; non-finite numbers as the strings "nan", "inf", "-inf"):
    /// `mapping`, `metrics`, `ssim_border`, `editing_types`, `entries`, `skipped`, and `methods`, each with
    /// `name`, `folder`, `mean` and `count` (per metric), `by_type` (per editing type: `editing_type_id`,
    /// `entries`, `mean`, `count`) and `images` (per entry: `key`, `image_path`, `editing_type_id`, `values`).
    /// Values are raw (MSE not ×10⁴, SSIM not ×10²).
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try encoder.encode(json)
    }

    private var json: ReportJSON {
        func named(_ f: (Int) -> Double) -> [String: Double] {
            Dictionary(uniqueKeysWithValues: metrics.indices.map { (metrics[$0].name, f($0)) })
        }
        func counted(_ f: (Int) -> Int) -> [String: Int] {
            Dictionary(uniqueKeysWithValues: metrics.indices.map { (metrics[$0].name, f($0)) })
        }
        return ReportJSON(
            mapping: mapping, metrics: metrics.map(\.name), ssim_border: ssimBorder.rawValue, editing_types: editingTypes,
            entries: entries.count, skipped: skipped,
            methods: methods.indices.map { m in
                MethodJSON(
                    name: methods[m].name, folder: methods[m].folder,
                    mean: named { average(method: m, metric: $0).mean }, count: counted { average(method: m, metric: $0).count },
                    by_type: presentEditingTypes.map { t in
                        TypeJSON(
                            editing_type_id: t, entries: entryCount(editingType: t),
                            mean: named { average(method: m, metric: $0, editingType: t).mean },
                            count: counted { average(method: m, metric: $0, editingType: t).count })
                    },
                    images: entries.indices.map { e in
                        ImageJSON(
                            key: entries[e].key, image_path: entries[e].imagePath, editing_type_id: entries[e].editingTypeID,
                            values: named { values[e][m][$0] })
                    })
            })
    }

    private struct ReportJSON: Encodable {
        var mapping: String
        var metrics: [String]
        var ssim_border: String
        var editing_types: [String]
        var entries: Int
        var skipped: Int
        var methods: [MethodJSON]
    }

    private struct MethodJSON: Encodable {
        var name: String
        var folder: String
        var mean: [String: Double]
        var count: [String: Int]
        var by_type: [TypeJSON]
        var images: [ImageJSON]
    }

    private struct TypeJSON: Encodable {
        var editing_type_id: String
        var entries: Int
        var mean: [String: Double]
        var count: [String: Int]
    }

    private struct ImageJSON: Encodable {
        var key: String
        var image_path: String
        var editing_type_id: String
        var values: [String: Double]
    }

    // MARK: - CSV

    /// The reference's `evaluation_result.csv`: a `file_id` column, then one `method|metric` column per method
    /// and metric, one row per entry; values as Python prints them (`nan`, `inf`).
    public func csv() -> String {
        var lines = [(["file_id"] + methods.flatMap { m in metrics.map { "\(m.name)|\($0.name)" } }).map(csvField).joined(separator: ",")]
        for (e, entry) in entries.enumerated() {
            let cells = [entry.key] + values[e].flatMap { $0.map(pythonFloat) }
            lines.append(cells.map(csvField).joined(separator: ","))
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    /// Writes `csv()` to `path` atomically (the old file stays if anything fails).
    /// - Throws: `PIEBenchError` (`.output`) naming `path`.
    public func writeCSV(to path: String) throws {
        let bytes = Array(csv().utf8)
        do {
            try AtomicFile.write(to: path, protecting: [mapping]) { fd in
                var offset = 0
                while offset < bytes.count {
                    let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else { throw PIEBenchError(.output, path: path, "cannot be written: \(AtomicFile.lastError())") }
                    offset += n
                }
            }
        } catch let failure as AtomicFile.Failure {
            let why: String
            switch failure {
            case .notAFile: why = "is not a file name"
            case .isDirectory: why = "is a directory"
            case .protectedInput(let input): why = "is the input \(input)"
            case .failed(let step, let reason): why = "cannot be written (\(step): \(reason))"
            }
            throw PIEBenchError(.output, path: path, why)
        }
    }

    /// Python's `repr` of a float: the shortest digits that round-trip, `nan`, `inf`.
    private func pythonFloat(_ v: Double) -> String {
        if v.isNaN { return "nan" }
        if v.isInfinite { return v > 0 ? "inf" : "-inf" }
        return v.description
    }

    /// A field quoted as Python's csv writer quotes it (minimal quoting).
    private func csvField(_ s: String) -> String {
        guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
