import Foundation
import PivotIO

/// The prompts textual inversion trains with: neutral templates with `{}` where the token goes
/// (Gal et al. 2022; the lists of diffusers' `examples/textual_inversion/textual_inversion.py`).
public enum LearnTemplates: Sendable, Equatable {
    /// An object ("a photo of a {}", …).
    case object
    /// A style ("a painting in the style of {}", …).
    case style
    /// The user's own list (one template a line, `{}` where the token goes).
    case custom([String])

    /// The templates.
    public var templates: [String] {
        switch self {
        case .object: return Self.objectTemplates
        case .style: return Self.styleTemplates
        case .custom(let list): return list
        }
    }

    /// The paper's small set of object templates.
    public static let objectTemplates = [
        "a photo of a {}", "a rendering of a {}", "a cropped photo of the {}", "the photo of a {}",
        "a photo of a clean {}", "a photo of a dirty {}", "a dark photo of the {}", "a photo of my {}",
        "a photo of the cool {}", "a close-up photo of a {}", "a bright photo of the {}", "a cropped photo of a {}",
        "a photo of the {}", "a good photo of the {}", "a photo of one {}", "a close-up photo of the {}",
        "a rendition of the {}", "a photo of the clean {}", "a rendition of a {}", "a photo of a nice {}",
        "a good photo of a {}", "a photo of the nice {}", "a photo of the small {}", "a photo of the weird {}",
        "a photo of the large {}", "a photo of a cool {}", "a photo of a small {}",
    ]

    /// The paper's small set of style templates.
    public static let styleTemplates = [
        "a painting in the style of {}", "a rendering in the style of {}", "a cropped painting in the style of {}",
        "the painting in the style of {}", "a clean painting in the style of {}", "a dirty painting in the style of {}",
        "a dark painting in the style of {}", "a picture in the style of {}", "a cool painting in the style of {}",
        "a close-up painting in the style of {}", "a bright painting in the style of {}",
        "a cropped painting in the style of {}", "a good painting in the style of {}",
        "a close-up painting in the style of {}", "a rendition in the style of {}", "a nice painting in the style of {}",
        "a small painting in the style of {}", "a weird painting in the style of {}", "a large painting in the style of {}",
    ]

    /// Reads a template file: one template a line, each with at least one `{}`; blank lines and lines
    /// starting with `#` are skipped.
    /// - Throws: `LearnError.templates` naming the file and the first bad line.
    public static func file(_ path: String) throws -> LearnTemplates {
        let text = try readLimitedText(path, limits: .templates) { why in
            LearnError.templates(path, why == "not UTF-8 text" ? "is not UTF-8 text" : why == "cannot be read" ? why : "is \(why)")
        }.text
        var list: [String] = []
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard line.contains("{}") else { throw LearnError.templates(path, "line \(n + 1) has no {} where the token goes") }
            list.append(line)
        }
        guard !list.isEmpty else { throw LearnError.templates(path, "holds no templates") }
        return .custom(list)
    }

    /// "object", "style" or "custom:" and the templates — what the training state records.
    var canonical: String {
        switch self {
        case .object: return "object"
        case .style: return "style"
        case .custom(let list): return "custom:" + list.joined(separator: "\u{1E}")
        }
    }
}

/// How a token is learnt (`pivot learn`): diffusers' `textual_inversion.py` arguments, in pivot's words.
public struct LearnSettings: Sendable, Equatable {
    /// The new token prompts will use ("<my-cat>"); must not be in the vocabulary.
    public var token: String
    /// One word of the vocabulary whose embedding initialises every vector ("cat").
    public var initWord: String
    /// Vectors of the token (the reference's `num_vectors`): `token`, `token_1`, … `token_{n−1}`.
    public var vectors = 1
    /// Optimiser steps (the reference's `max_train_steps`); each takes `batch` × `accumulate` samples.
    public var steps = 3000
    /// AdamW's learning rate (before scaling and warm-up).
    public var learningRate: Float = 5e-3
    /// Multiply the learning rate by batch × accumulate (the reference's `--scale_lr`).
    public var scaleLearningRate = false
    /// Linear warm-up over this many steps (diffusers' `constant_with_warmup`; 0: constant).
    public var warmupSteps = 0
    /// Samples per forward pass (run one after another: the same mean loss as one batch).
    public var batch = 1
    /// Gradient accumulation steps per optimiser step.
    public var accumulate = 1
    /// AdamW's decoupled weight decay (the reference's `adam_weight_decay`).
    public var weightDecay: Float = 1e-2
    /// The prompts.
    public var templates = LearnTemplates.object
    /// The probability of a horizontal flip of a photo (the reference's `flip_p`).
    public var flipProbability: Float = 0.5
    /// Seeds every random draw (photo order, flips, templates, timesteps, noise).
    public var seed: UInt64 = 0
    /// The pixel size photos are trained at (as `edit` inverts them).
    public var size = PhotoSizing.auto
    /// A fixed-input validation loss every this many steps (0: never, unless `patience` asks for it).
    public var validateEvery = 0
    /// Stop when this many validations in a row have not improved on the best (0: never stop early).
    public var patience = 0

    public init(token: String, initWord: String) {
        self.token = token
        self.initWord = initWord
    }

    /// The learning rate of the first full-rate step: `learningRate`, × batch × accumulate when scaled.
    public var baseLearningRate: Float {
        scaleLearningRate ? learningRate * Float(batch * accumulate) : learningRate
    }

    /// The learning rate for the optimiser step after `done` steps: diffusers' constant schedule, with
    /// `get_constant_schedule_with_warmup`'s linear ramp `done / warmup` while `done < warmup`.
    public func learningRate(afterSteps done: Int) -> Float {
        guard warmupSteps > 0, done < warmupSteps else { return baseLearningRate }
        return Float(Double(baseLearningRate) * Double(done) / Double(warmupSteps))
    }

    /// How often validation runs: `validateEvery`, or every 100 steps (at most a tenth of the run) when
    /// only `patience` is given.
    public var validationInterval: Int {
        validateEvery > 0 ? validateEvery : patience > 0 ? max(1, min(100, steps / 10)) : 0
    }

    /// The settings that shape the learnt vectors, as one string: what a training state records and what
    /// `resume` compares (steps, validation and patience may change between runs).
    var canonical: String {
        [
            "token=\(token)", "init=\(initWord)", "vectors=\(vectors)", "lr=\(learningRate)", "scale_lr=\(scaleLearningRate)",
            "warmup=\(warmupSteps)", "batch=\(batch)", "accumulate=\(accumulate)", "weight_decay=\(weightDecay)",
            "flip=\(flipProbability)", "seed=\(seed)", "size=\(size)", "templates=\(templates.canonical)",
        ].joined(separator: "\u{1F}")
    }

    /// Throws a `SettingError` naming the setting for counts out of range, a learning rate that is not a
    /// positive finite number, and so on.
    public func validate() throws {
        guard !token.trimmingCharacters(in: .whitespaces).isEmpty, !token.contains(where: \.isWhitespace) else {
            throw SettingError("token", problem: "must be one word without spaces, e.g. \"<my-cat>\"")
        }
        guard !initWord.trimmingCharacters(in: .whitespaces).isEmpty else { throw SettingError("init", problem: "must be a word") }
        guard (1...64).contains(vectors) else { throw SettingError("vectors", problem: "must be between 1 and 64") }
        guard (1...1_000_000).contains(steps) else { throw SettingError("steps", problem: "must be between 1 and 1000000") }
        guard learningRate.isFinite, learningRate > 0 else { throw SettingError("lr", problem: "must be a positive number") }
        guard (0...1_000_000).contains(warmupSteps) else { throw SettingError("warmup", problem: "must be between 0 and 1000000") }
        guard (1...64).contains(batch) else { throw SettingError("batch", problem: "must be between 1 and 64") }
        guard (1...1024).contains(accumulate) else { throw SettingError("accumulate", problem: "must be between 1 and 1024") }
        guard weightDecay.isFinite, weightDecay >= 0 else { throw SettingError("weight_decay", problem: "must be a number ≥ 0") }
        guard flipProbability.isFinite, (0...1).contains(flipProbability) else { throw SettingError("flip", problem: "must be between 0 and 1") }
        guard validateEvery >= 0 else { throw SettingError("validate_every", problem: "must be 0 or more") }
        guard patience >= 0 else { throw SettingError("patience", problem: "must be 0 or more") }
    }
}

/// Errors of learning a token (one line each; a `SettingError` names a bad setting).
public enum LearnError: Error, CustomStringConvertible, Equatable {
    /// The token (or one of its `_i` companions) is already in the tokenizer's vocabulary.
    case tokenInVocabulary(String)
    /// The init word is not one token of the vocabulary.
    case initWord(String, tokens: Int)
    /// No photo could be read; the first failure is given.
    case noPhotos(String)
    /// A template file is unusable.
    case templates(String, String)
    /// The scheduler's prediction type has no training target.
    case predictionType(String)
    /// A training state cannot be resumed: why.
    case resume(String, String)
    /// An output would overwrite an input.
    case outputIsInput(String)

    public var description: String {
        switch self {
        case .tokenInVocabulary(let t):
            return
                "the token '\(t)' is already in the model's vocabulary; choose a new word, e.g. '<\(t.trimmingCharacters(in: CharacterSet(charactersIn: "<>")))>'"
        case .initWord(let w, let n):
            return n == 0
                ? "the init word '\(w)' tokenizes to nothing; give one word of the vocabulary"
                : "the init word '\(w)' is \(n) tokens in this model's vocabulary; give a single-token word "
                    + "(pivot refuses rather than averages, as the reference does)"
        case .noPhotos(let why): return "no readable photo to learn from (\(why))"
        case .templates(let p, let why): return "\(p): \(why)"
        case .predictionType(let t): return "the scheduler's prediction type '\(t)' has no training target (epsilon or v_prediction)"
        case .resume(let p, let why): return "\(p): cannot resume: \(why)"
        case .outputIsInput(let p): return "\(p): the output would overwrite an input; choose another output path"
        }
    }
}
