import ArgumentParser
import Foundation
import Pivot

/// How progress is shown.
enum ProgressStyle: String, ExpressibleByArgument, CaseIterable {
    /// A redrawn bar on a terminal, a throttled log otherwise.
    case auto
    case bar, log, json, none
}

/// `--progress`, on every long command.
struct ProgressOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "auto (a bar on a terminal, else a log line per 5% or 10 s), bar, log, json (one object per update on standard error: phase, step, total, elapsed_s, eta_s) or none.",
            valueName: "auto|bar|log|json|none"))
    var progress = ProgressStyle.auto

    /// The style in effect (`quiet` wins).
    func style(quiet: Bool) -> ProgressStyle {
        if quiet { return .none }
        if progress == .auto { return isatty(STDERR_FILENO) == 1 ? .bar : .log }
        return progress
    }
}

/// One progress display for a whole command over a `JobEstimate`: the phase, its step, the job's elapsed time
/// and the ETA of everything left. On a terminal a bar redrawn at most 10 times a second; in a log a line per
/// 5% of the job or per 10 s (whichever comes first), a line per phase change and a summary with the phase
/// times; as JSON one object per update.
final class JobProgress {
    let label: String
    let style: ProgressStyle
    let job: JobEstimate
    private var lastDraw = -Double.infinity, lastFraction = -1.0, lastPhase = ""

    /// `gradientPrior`: a forward+backward pass in forward passes until measured (`JobEstimate.gradientPrior`).
    init(_ label: String, style: ProgressStyle, phases: [JobEstimate.Phase], gradientPrior: Double = JobEstimate.defaultGradientPrior) {
        self.label = label
        self.style = style
        job = JobEstimate(phases: phases, gradientPrior: gradientPrior)
    }

    /// Moves to phase `name` (if it is ahead) and shows it.
    func enter(_ name: String) {
        guard job.phase?.name != name, job.enter(name) else { return }
        show(force: true)
    }

    /// `done` steps of the current phase (`total` if it changed), with a detail for the line.
    func step(_ done: Int, total: Int? = nil, detail: String = "") {
        job.advance(done, total: total)
        show(detail: detail)
    }

    /// The end: the final line (bar) or the summary with per-phase times (log), and a last JSON object.
    func finish() {
        job.finish()
        let times = job.phaseSeconds.filter { $0.seconds > 0.0005 }.map { "\($0.name) \(Self.clock($0.seconds))" }
        switch style {
        case .none: return
        case .json: emitJSON(phase: "done", step: 0, total: 0, eta: 0)
        case .bar:
            FileHandle.standardError.write(Data("\r\(label): done in \(Self.clock(job.elapsed)) (\(times.joined(separator: ", ")))\u{1B}[K\n".utf8))
        case .log, .auto: note("\(label): done in \(Self.clock(job.elapsed)) (\(times.joined(separator: ", ")))")
        }
    }

    private func show(force: Bool = false, detail: String = "") {
        guard style != .none, let phase = job.phase else { return }
        let now = job.elapsed, eta = job.eta, fraction = job.fraction
        let step = job.doneInCurrent, total = phase.steps
        switch style {
        case .json:
            emitJSON(phase: phase.name, step: step, total: total, eta: eta, detail: detail)
        case .bar:
            guard force || now - lastDraw > 0.1 else { return }
            lastDraw = now
            let width = 24, filled = Int(Double(width) * fraction)
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            var line = "\r\(label) \(bar) \(phase.name) \(step)/\(total)  \(Self.clock(now)) elapsed, ETA \(eta.map(Self.clock) ?? "…")"
            if !detail.isEmpty { line += "  " + detail }
            FileHandle.standardError.write(Data((line + "\u{1B}[K").utf8))
        case .log, .auto:
            let changed = phase.name != lastPhase
            guard force || changed || fraction - lastFraction >= 0.05 || now - lastDraw >= 10 else { return }
            (lastDraw, lastFraction, lastPhase) = (now, fraction, phase.name)
            note(
                "\(label): \(phase.name) \(step)/\(total), \(Int((fraction * 100).rounded()))%, \(Self.clock(now)) elapsed, ETA \(eta.map(Self.clock) ?? "…")"
                    + (detail.isEmpty ? "" : ", " + detail))
        case .none: return
        }
    }

    private func emitJSON(phase: String, step: Int, total: Int, eta: Double?, detail: String = "") {
        var object: [String: Any] = ["phase": phase, "step": step, "total": total, "elapsed_s": (job.elapsed * 1000).rounded() / 1000]
        if !detail.isEmpty { object["detail"] = detail }
        object["eta_s"] = eta.map { ($0 * 1000).rounded() / 1000 } ?? NSNull()
        if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) {
            FileHandle.standardError.write(data + Data("\n".utf8))
        }
    }

    /// "m:ss", or "h:mm:ss" from an hour.
    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}

extension JobProgress {
    /// Shows an inversion's events: the DDIM trajectory, null-text's inner iterations (the phase's expected
    /// length follows the iterations early stopping leaves), direct inversion's offsets, fixed-point inversion's
    /// steps (with their refinements and residual) and edit-friendly DDPM's noise maps.
    func inversionEvents(prefix: String = "") -> (InversionEvent) -> Void {
        var innerDone = 0, innerInStep = 0
        return { [self] event in
            switch event {
            case .trajectory(let step, let total):
                enter(prefix + "DDIM inversion")
                self.step(step, total: total)
            case .nullText(let step, let total, let inner, let innerTotal, let loss, let last):
                enter(prefix + "null-text")
                innerInStep = inner
                let done = innerDone + inner
                if last {
                    innerDone += inner
                    innerInStep = 0
                }
                // the steps left at the mean iterations of the steps done (the bound until one is done)
                let finished = last ? step : step - 1
                let mean = finished > 0 ? Double(innerDone) / Double(finished) : Double(innerTotal)
                let expected = innerDone + max(innerInStep, Int((Double(total - finished) * mean).rounded()))
                self.step(done, total: max(expected, done), detail: String(format: "step %d/%d, inner %d, loss %.3g", step, total, inner, loss))
                if last { job.planLater(endingWith: " null-text", steps: max(expected, done)) }  // later rows of a batch
            case .offsets(let step, let total):
                enter(prefix + "offsets")
                self.step(step, total: total)
            case .fixedPoint(let step, let total, let iterations, let innerTotal, let residual):
                enter(prefix + "fixed-point inversion")
                self.step(step, total: total, detail: String(format: "%d/%d refinements, residual %.2g", iterations, innerTotal, residual))
            case .noiseMaps(let step, let total):
                enter(prefix + "DDPM inversion")
                self.step(step, total: total)
            }
        }
    }
}
