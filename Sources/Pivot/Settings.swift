import Foundation
import PivotDiffusion
import PivotIO
import PivotLoading
import PivotImage

/// The pixel size a photo is inverted and edited at.
public enum PhotoSizing: Equatable, Sendable, CustomStringConvertible {
    /// The photo's aspect ratio at about the model's native area, sides multiples of what the networks need
    /// (`ImageSize.fitted`): at most ~3% of a side is cropped.
    case auto
    /// The reference's centred square at the native resolution.
    case square
    /// This size (sides multiples of what the networks need); the photo is centre-cropped to its aspect.
    case exact(ImageSize)

    /// "auto", "square" or "WxH"; nil for anything else.
    public init?(parsing text: String) {
        switch text.lowercased() {
        case "auto": self = .auto
        case "square": self = .square
        default:
            guard let size = ImageSize(parsing: text) else { return nil }
            self = .exact(size)
        }
    }

    public var description: String {
        switch self {
        case .auto: return "auto"
        case .square: return "square"
        case .exact(let s): return s.description
        }
    }
}

/// How a photo is inverted (`pivot invert`, and the inversion behind every edit).
public struct InversionSettings: Sendable, Equatable {
    public var method = InversionMethod.nullText
    public var steps = 50
    public var guidance: Float = 7.5
    public var innerSteps = 10
    public var crop: CropBox?
    /// The size the photo is inverted at.
    public var size = PhotoSizing.auto

    public init() {}

    /// The settings in their one canonical text form, by key: what inversion files record as metadata,
    /// what cache keys, batch hashes and the checks of an inversion file against given settings compare.
    /// A crop of none is "".
    public var fields: [(key: String, value: String)] {
        [
            ("method", method.rawValue), ("steps", String(steps)), ("guidance", String(guidance)),
            ("inner_steps", String(innerSteps)), ("crop", crop?.text ?? ""), ("size", size.description),
        ]
    }

    /// The keys of `fields`, in order.
    public static let fieldKeys = ["method", "steps", "guidance", "inner_steps", "crop", "size"]

    /// `fields` as one string (key=value, unit-separated).
    public var canonical: String { fields.map { "\($0.key)=\($0.value)" }.joined(separator: "\u{1F}") }

    /// Throws a `SettingError` for steps outside 1…`trainTimesteps`, inner steps outside 1…1000 or a
    /// guidance that is not finite.
    public func validate(trainTimesteps: Int) throws {
        guard (1...trainTimesteps).contains(steps) else { throw SettingError("steps", problem: "must be between 1 and \(trainTimesteps)") }
        guard (1...1000).contains(innerSteps) else { throw SettingError("inner_steps", problem: "must be between 1 and 1000") }
        guard guidance.isFinite else { throw SettingError("guidance", problem: "must be a finite number") }
    }
}

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
    public static let keys: Set<String> = [
        "cross_replace", "self_replace", "reweight", "blend", "blend_threshold", "mode",
        "method", "steps", "guidance", "inner_steps", "crop", "size", "seed",
    ]

    /// Sets one setting from its string form: `cross_replace` "0.8" or "WORD=0.4" (several joined by `;`),
    /// `self_replace` "END" or "START,END", `reweight` "WORD=SCALE;…", `blend` "WORD WORD…", and plain values
    /// for the rest. Throws a `SettingError` naming the key, with the value.
    public mutating func set(_ key: String, _ value: String) throws {
        let items = value.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        func bad(_ expected: String) -> SettingError { SettingError(key, problem: "takes \(expected), got '\(escapedForOneLine(value))'") }
        switch key {
        case "cross_replace":
            for item in items {
                let pair = item.split(separator: "=", maxSplits: 1).map(String.init)
                if pair.count == 2, !pair[0].isEmpty, let f = Double(pair[1]), f.isFinite {
                    edit.crossReplaceWords[pair[0]] = f
                } else if let f = Double(item) {
                    edit.crossReplace = f
                } else {
                    throw bad("a fraction or WORD=FRACTION")
                }
            }
        case "self_replace":
            let parts = value.split(separator: ",", omittingEmptySubsequences: false).map { Double($0.trimmingCharacters(in: .whitespaces)) }
            switch parts.count {
            case 1:
                guard let e = parts[0] else { throw bad("END or START,END") }
                edit.selfReplace = (0, e)
            case 2:
                guard let s = parts[0], let e = parts[1] else { throw bad("END or START,END") }
                edit.selfReplace = (s, e)
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
            guard let m = InversionMethod(rawValue: value) else {
                throw bad("null-text, negative-prompt, direct, ddim, fixed-point, fixed-point+direct or ddpm")
            }
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
        case "size":
            guard let s = PhotoSizing(parsing: value) else { throw bad("auto, square or WxH") }
            inversion.size = s
        case "seed": seed = value
        default: throw EditError.badValue("unknown setting '\(escapedForOneLine(key))'")  // a manifest column; flags never reach here
        }
    }

    /// A canonical text of every setting, for settings hashes: the edit's options, then the inversion's
    /// `InversionSettings.canonical`.
    public var canonical: String {
        let e = edit
        let words = e.crossReplaceWords.keys.sorted().map { "\($0)=\(e.crossReplaceWords[$0] ?? 0)" }
        let weights = e.reweight.keys.sorted().map { "\($0)=\(e.reweight[$0] ?? 1)" }
        return [
            "mode=\(e.mode.rawValue)", "cross=\(e.crossReplace)", "cross_words=\(words.joined(separator: ";"))",
            "self=\(e.selfReplace.start),\(e.selfReplace.end)", "reweight=\(weights.joined(separator: ";"))",
            "blend=\(e.blend.joined(separator: " "))", "blend_threshold=\(e.blendThreshold)",
            inversion.canonical, "seed=\(seed ?? "-")",
        ].joined(separator: "\u{1F}")
    }

    /// "word=2.0" → ("word", 2.0).
    static func keyValue(_ s: String) -> (String, Float)? {
        let parts = s.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty, let v = Float(parts[1]), v.isFinite else { return nil }
        return (parts[0], v)
    }
}

extension CropBox {
    /// "L,T,R,B" in pixels (the form `init(parsing:)` reads).
    public var text: String { "\(left),\(top),\(right),\(bottom)" }

    /// "L,T,R,B" in pixels, with R > L and B > T; nil otherwise.
    public init?(parsing s: String) {
        let v = s.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard v.count == 4, v[0] >= 0, v[1] >= 0, v[2] > v[0], v[3] > v[1] else { return nil }
        self.init(left: v[0], top: v[1], right: v[2], bottom: v[3])
    }
}
