import Foundation
import PivotDiffusion

/// The phases of each long command, for `JobEstimate`: what runs, in which order, at which planned cost.
public enum JobPlans {
    public typealias Phase = JobEstimate.Phase

    /// Inverting a photo: its VAE encoding and prompt, the DDIM trajectory (one UNet pass a step), then the
    /// method's own work: null-text's inner iterations (forward+backward passes; early stopping shortens the
    /// phase as it runs), direct inversion's offsets (a guided pair of passes a step). Fixed-point inversion
    /// replaces the trajectory by guided pairs a step (the first guess and the refinements, planned at 4 of
    /// them until the job measures its own), edit-friendly DDPM by one guided pair a step.
    public static func inversion(_ s: InversionSettings, prefix: String = "") -> [Phase] {
        prefixed(inversionPhases(s), prefix)
    }

    /// Phases named `prefix` + their name, in the group of their unprefixed name (a batch row's phases share
    /// their rates with the other rows').
    static func prefixed(_ phases: [Phase], _ prefix: String) -> [Phase] {
        phases.map { p in
            var q = p
            q.name = prefix + p.name
            return q
        }
    }

    static func inversionPhases(_ s: InversionSettings) -> [Phase] {
        let encode = Phase("encode", kind: .other, steps: 1)
        let pair = batchedPass(2)
        switch s.method {
        case .fixedPoint:
            let refinements = Double(min(s.innerSteps, 4))
            return [encode, Phase("fixed-point inversion", kind: .forward, steps: s.steps, unitsPerStep: pair * (1 + refinements))]
        case .fixedPointDirect:
            let refinements = Double(min(s.innerSteps, 3))
            return [
                encode, Phase("fixed-point inversion", kind: .forward, steps: s.steps, unitsPerStep: 1 + refinements),
                Phase("offsets", kind: .forward, steps: s.steps, unitsPerStep: 2),
            ]
        case .ddpm:
            return [encode, Phase("DDPM inversion", kind: .forward, steps: s.steps, unitsPerStep: pair)]
        case .nullText, .direct, .negativePrompt, .ddim:
            break
        }
        var p = [encode, Phase("DDIM inversion", kind: .forward, steps: s.steps)]
        switch s.method {
        case .nullText: p.append(Phase("null-text", kind: .gradient, steps: s.steps * s.innerSteps))
        case .direct: p.append(Phase("offsets", kind: .forward, steps: s.steps, unitsPerStep: 2))
        case .negativePrompt, .ddim, .fixedPoint, .ddpm, .fixedPointDirect: break
        }
        return p
    }

    /// The planned cost of one UNet pass over `batch` samples, in single-sample passes: batch^0.85, between
    /// small latents (the demo model's batch of 4 costs ≈ 2.75 single passes, measured) and SD 1.5 size
    /// (about linear).
    public static func batchedPass(_ batch: Int) -> Double { pow(Double(max(batch, 1)), 0.85) }

    /// The planned cost of decoding one image (and composing it at the photo's size), in UNet passes: the VAE
    /// decoder runs at full resolution (a 512² edit at SD 1.5 size spent ≈ 16 s on each, ≈ 11 passes of
    /// 1.4 s; the demo model far less), so 4 is a compromise that is never far off on either.
    public static let decodeUnits = 4.0

    /// An edit: the inversion (none for an inversion file), the guided rendering of the source and every target
    /// (one batched pass of 2·(1 + targets) samples a step), and their decodes.
    public static func edit(_ s: EditSettings, targets: Int, invert: Bool, prefix: String = "") -> [Phase] {
        prefixed(
            (invert ? inversionPhases(s.inversion) : []) + [
                Phase("edit", kind: .forward, steps: s.inversion.steps, unitsPerStep: batchedPass(2 * (1 + targets))),
                Phase("decode", kind: .other, steps: 1 + targets, unitsPerStep: decodeUnits),
            ], prefix)
    }

    /// Text to image: the guided steps and the decode.
    public static func generate(steps: Int, guided: Bool) -> [Phase] {
        [
            Phase("sampling", kind: .forward, steps: steps, unitsPerStep: batchedPass(guided ? 2 : 1)),
            Phase("decode", kind: .other, steps: 1, unitsPerStep: decodeUnits),
        ]
    }

    /// Converting a single file: each network's tensors read, checked and written, at a cost in proportion to
    /// its parameters (one unit per million).
    public static func convert(parameters: [(component: String, count: Int)]) -> [Phase] {
        parameters.map { Phase($0.component, kind: .other, steps: 1, unitsPerStep: max(Double($0.count) / 1e6, 0.001)) }
    }

    /// Learning a token: the photos' encodings (plain and mirrored) and the training steps.
    public static func learn(photos: Int, steps: Int, rowsPerStep: Int) -> [Phase] {
        [
            Phase("encode photos", kind: .other, steps: photos, unitsPerStep: 2),
            Phase("training", kind: .gradient, steps: steps, unitsPerStep: Double(rowsPerStep)),
        ]
    }
}
