import Foundation
import PivotLoading
import PivotImage

/// Everything that shapes one edit of a photo: the Prompt-to-Prompt options and the inversion settings,
/// settable from the strings of command-line flags and batch manifests.
public struct EditSettings: Sendable {
    public var edit = EditOptions()
    public var inversion = InversionSettings()
    /// Accepted for manifests that carry one; inversion and DDIM sampling (η = 0) are deterministic, so it
    /// changes nothing but the settings hash.
    public var seed: String?

    public init() {}

    /// The keys `set` understands (manifest columns and their flags without `--`, with `_`).
    public static let keys: Set<String> = ["cross_replace", "self_replace", "reweight", "blend", "blend_threshold", "mode",
                                           "method", "steps", "guidance", "inner_steps", "crop", "seed"]

    /// Sets one setting from its string form: `cross_replace` "0.8" or "WORD=0.4" (several joined by `;`),
    /// `self_replace` "END" or "START,END", `reweight` "WORD=SCALE;…", `blend` "WORD WORD…", and plain values
    /// for the rest. Throws `EditError.badValue` with the key and value.
    public mutating func set(_ key: String, _ value: String, label: String? = nil) throws {
        let items = value.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        func bad(_ expected: String) -> EditError { .badValue("\(label ?? key) takes \(expected), got '\(value)'") }
        switch key {
        case "cross_replace":
            for item in items {
                let pair = item.split(separator: "=", maxSplits: 1).map(String.init)
                if pair.count == 2, !pair[0].isEmpty, let f = Double(pair[1]), f.isFinite { edit.crossReplaceWords[pair[0]] = f }
                else if let f = Double(item) { edit.crossReplace = f }
                else { throw bad("a fraction or WORD=FRACTION") }
            }
        case "self_replace":
            let parts = value.split(separator: ",", omittingEmptySubsequences: false).map { Double($0.trimmingCharacters(in: .whitespaces)) }
            switch parts.count {
            case 1: guard let e = parts[0] else { throw bad("END or START,END") }; edit.selfReplace = (0, e)
            case 2: guard let s = parts[0], let e = parts[1] else { throw bad("END or START,END") }; edit.selfReplace = (s, e)
            default: throw bad("END or START,END")
            }
        case "reweight":
            for item in items {
                guard let (word, scale) = Self.keyValue(item) else { throw bad("WORD=SCALE") }
                edit.reweight[word] = scale
            }
        case "blend": edit.blend = value.split(whereSeparator: { $0 == " " || $0 == ";" || $0 == "," }).map(String.init)
        case "blend_threshold":
            guard let t = Float(value), t.isFinite else { throw bad("a fraction") }
            edit.blendThreshold = t
        case "mode":
            guard let m = EditOptions.Mode(rawValue: value) else { throw bad("auto, replace or refine") }
            edit.mode = m
        case "method":
            guard let m = InversionMethod(rawValue: value) else { throw bad("null-text, negative-prompt, direct or ddim") }
            inversion.method = m
        case "steps":
            guard let n = Int(value), n > 0 else { throw bad("a positive whole number") }
            inversion.steps = n
        case "inner_steps":
            guard let n = Int(value), n > 0 else { throw bad("a positive whole number") }
            inversion.innerSteps = n
        case "guidance":
            guard let g = Float(value), g.isFinite else { throw bad("a number") }
            inversion.guidance = g
        case "crop":
            guard let c = CropBox(parsing: value) else { throw bad("L,T,R,B in pixels") }
            inversion.crop = c
        case "seed": seed = value
        default: throw EditError.badValue("unknown setting '\(key)'")
        }
    }

    /// A canonical text of every setting, for settings hashes.
    public var canonical: String {
        let e = edit, i = inversion
        let words = e.crossReplaceWords.keys.sorted().map { "\($0)=\(e.crossReplaceWords[$0] ?? 0)" }
        let weights = e.reweight.keys.sorted().map { "\($0)=\(e.reweight[$0] ?? 1)" }
        let crop = i.crop.map { "\($0.left),\($0.top),\($0.right),\($0.bottom)" } ?? "-"
        return ["mode=\(e.mode.rawValue)", "cross=\(e.crossReplace)", "cross_words=\(words.joined(separator: ";"))",
                "self=\(e.selfReplace.start),\(e.selfReplace.end)", "reweight=\(weights.joined(separator: ";"))",
                "blend=\(e.blend.joined(separator: " "))", "blend_threshold=\(e.blendThreshold)",
                "method=\(i.method.rawValue)", "steps=\(i.steps)", "guidance=\(i.guidance)", "inner=\(i.innerSteps)",
                "crop=\(crop)", "seed=\(seed ?? "-")"].joined(separator: "\u{1F}")
    }

    /// "word=2.0" → ("word", 2.0).
    static func keyValue(_ s: String) -> (String, Float)? {
        let parts = s.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty, let v = Float(parts[1]), v.isFinite else { return nil }
        return (parts[0], v)
    }
}

extension CropBox {
    /// "L,T,R,B" in pixels, with R > L and B > T; nil otherwise.
    public init?(parsing s: String) {
        let v = s.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard v.count == 4, v[0] >= 0, v[1] >= 0, v[2] > v[0], v[3] > v[1] else { return nil }
        self.init(left: v[0], top: v[1], right: v[2], bottom: v[3])
    }
}
