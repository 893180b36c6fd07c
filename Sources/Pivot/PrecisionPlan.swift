import Foundation
import PivotLoading
import PivotModels
import PivotTensor

/// What a user asks for: `auto` (the default), `fp32` or `bf16`.
public enum PrecisionChoice: String, CaseIterable, Sendable {
    case auto, fp32, bf16
}

/// Errors of precision selection.
public enum PrecisionError: Error, CustomStringConvertible, Equatable {
    /// bf16 was asked for on a processor where oneDNN has no bf16 kernels (it needs AVX-512).
    case bf16Unavailable(cpu: String)

    public var description: String {
        switch self {
        case .bf16Unavailable(let cpu):
            return "bf16 precision needs a processor with AVX-512 (native bf16: AVX512_BF16 or AMX); this one has \(cpu); use fp32 or auto"
        }
    }
}

/// The precision each kind of work runs in, and why (see `Precision`).
///
/// `auto` picks bf16 for plain network passes (sampling, inversion trajectories, edits, VAE, text encoder)
/// where the processor has native bf16 (AVX512_BF16 or AMX), fp32 elsewhere, and keeps gradient passes
/// (null-text optimisation) in fp32; textual inversion learns in bf16 there (`learning`): docs/BENCHMARKS.md
/// and docs/QUALITY.md measure the bf16 errors that
/// this choice rests on. `bf16` runs everything in bf16, also where oneDNN has to emulate bf16 arithmetic on
/// AVX-512 without AVX512_BF16 (correct, but slower than fp32; `emulated` says so).
public struct PrecisionPlan: Sendable, Equatable, CustomStringConvertible {
    public var choice: PrecisionChoice
    public var networks: NetworkPrecision
    /// One line: what was chosen and why.
    public var reason: String
    /// bf16 runs without native bf16 instructions (oneDNN emulates them).
    public var emulated: Bool

    /// fp32 everywhere (the reference path).
    public static let fp32 = PrecisionPlan(choice: .fp32, networks: .all(.fp32), reason: "fp32 asked for", emulated: false)

    /// Resolves a choice on this processor.
    public static func resolve(_ choice: PrecisionChoice) throws -> PrecisionPlan {
        try resolve(choice, native: BF16Support.native, usable: BF16Support.usable, cpu: CPUFeatures.summary)
    }

    /// Resolves a choice for a processor described by its capabilities (testable without that processor).
    public static func resolve(_ choice: PrecisionChoice, native: Bool, usable: Bool, cpu: String) throws -> PrecisionPlan {
        switch choice {
        case .fp32:
            return .fp32
        case .bf16:
            guard usable else { throw PrecisionError.bf16Unavailable(cpu: cpu) }
            return PrecisionPlan(
                choice: .bf16, networks: .all(.bf16),
                reason: native
                    ? "bf16 asked for; native bf16 (\(cpu))"
                    : "bf16 asked for; no native bf16 on this processor (\(cpu)): oneDNN emulates it, slower than fp32",
                emulated: !native)
        case .auto:
            guard native && usable else {
                return PrecisionPlan(
                    choice: .auto, networks: .all(.fp32),
                    reason: "auto: fp32, this processor has no native bf16 (\(cpu))", emulated: false)
            }
            return PrecisionPlan(
                choice: .auto, networks: NetworkPrecision(forward: .bf16, gradient: .fp32),
                reason: "auto: bf16 network passes, fp32 gradients (native bf16: \(cpu))", emulated: false)
        }
    }

    public var description: String {
        networks.forward == networks.gradient
            ? networks.forward.rawValue
            : "\(networks.forward.rawValue) (gradients \(networks.gradient.rawValue))"
    }

    /// What cache keys and settings hashes add for this plan: nothing for fp32 everywhere (so keys made
    /// before precision existed stay valid), else `description`.
    public var hashTag: String? { description == "fp32" ? nil : description }

    /// The plan for textual inversion: `auto` with native bf16 runs its gradient passes in bf16 too (a
    /// stochastic training whose step-to-step noise dwarfs bf16's error; docs/BENCHMARKS.md measures both);
    /// every other plan is kept as it is.
    public var learning: PrecisionPlan {
        guard choice == .auto, networks.forward == .bf16, networks.gradient != .bf16 else { return self }
        var plan = self
        plan.networks.gradient = .bf16
        plan.reason = "auto: bf16 for textual inversion, gradients too (native bf16: \(CPUFeatures.summary))"
        return plan
    }

    /// Whether the plan's passes of the kinds a job runs are all bf16: `forward` always, `gradient` only when
    /// the job runs gradient passes. Such a job never reads fp32 matrix weights (see `releaseFP32Weights`).
    public func isBF16Only(withGradients: Bool) -> Bool {
        networks.forward == .bf16 && (!withGradients || networks.gradient == .bf16)
    }

    /// What a forward+backward pass costs in forward passes under this plan, before a job measures it, for
    /// `JobEstimate.gradientPrior`: 2.5 in one precision; 3.5 for fp32 gradients beside bf16 forwards (SD 1.5
    /// size measured 5.0, the demo model ≈ 4, and null-text's early stopping ends its phase sooner than
    /// planned, which the prior has to absorb before the phase runs).
    public var gradientPassCost: Double {
        networks.forward == .bf16 && networks.gradient == .fp32 ? 3.5 : JobEstimate.defaultGradientPrior
    }

    /// Sets every network of a pipeline to this plan.
    public func apply(to sd: StableDiffusion) {
        sd.unet.precision = networks
        sd.vae.precision = networks
        sd.textEncoder.precision = networks
    }

    /// Sets the loaded networks to this plan.
    public func apply(to n: LoadedNetworks) {
        n.unet?.precision = networks
        n.vae?.precision = networks
        n.textEncoder?.precision = networks
    }
}

/// The processor's name and the features pivot's kernels care about.
public enum CPUFeatures {
    /// e.g. "AMD EPYC 9R14 (avx2 avx512f avx512_bf16)", with the PIVOT_MAX_ISA cap when there is one; read once.
    public static let summary: String = {
        let (name, flags) = cpuinfo()
        let wanted = ["avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16"].filter(flags.contains)
        let capped = CPU.maxISA == .avx512 ? "" : "; kernels capped at \(CPU.maxISA) by PIVOT_MAX_ISA"
        return "\(name) (\(wanted.isEmpty ? "no AVX2" : wanted.joined(separator: " "))\(capped))"
    }()

    /// The model name and flags of the first processor in /proc/cpuinfo ("unknown", [] elsewhere).
    public static func cpuinfo() -> (name: String, flags: Set<String>) {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return ("unknown", []) }
        var name = "unknown", flags: Set<String> = []
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { continue }
            if parts[0] == "model name", name == "unknown" { name = parts[1] }
            if parts[0] == "flags", flags.isEmpty { flags = Set(parts[1].split(separator: " ").map(String.init)) }
            if name != "unknown" && !flags.isEmpty { break }
        }
        return (name, flags)
    }
}

extension StableDiffusion {
    /// For a job whose remaining passes are all bf16 (`PrecisionPlan.isBF16Only`): keeps only the bf16 copies
    /// of the networks' matrix weights and hands their fp32 pages back (`WeightRelease`); SD 1.5's networks
    /// shrink from ~4.3 GB to ~2.2 GB. Irreversible in precision: a later fp32 pass would read bf16-rounded
    /// weights, so call it only when none follows. Returns the bytes released.
    /// `minimumBytes` leaves smaller weights in fp32 (default: those in pooled buffers are released).
    @discardableResult
    public func releaseFP32Weights(minimumBytes: Int = BufferPool.shared.largeBytes) -> Int {
        WeightRelease.releaseFP32MatrixWeights(of: [unet, vae, textEncoder], minimumBytes: minimumBytes)
    }
}

extension LoadedNetworks {
    /// `StableDiffusion.releaseFP32Weights` for the networks a command loaded.
    @discardableResult
    public func releaseFP32Weights() -> Int {
        WeightRelease.releaseFP32MatrixWeights(of: [unet as Any, vae as Any, textEncoder as Any])
    }
}
