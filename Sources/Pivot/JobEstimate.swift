import Foundation

/// The remaining time of a whole command (every phase of every row), from the measured cost of the work done
/// so far: each phase is a number of steps of one kind of work (UNet forward passes, forward+backward passes,
/// other network passes) with a planned cost per step in UNet-forward units; seconds per unit are learnt per
/// kind from the phases that ran, and a phase that has started is projected from its own rate. Kinds not yet
/// measured take priors relative to the forward rate (a gradient pass ≈ 2.5 forward passes, as measured at
/// SD 1.5 size in docs/BENCHMARKS.md; other passes ≈ 1).
public final class JobEstimate {
    /// The kind of work of a phase.
    public enum Kind: Sendable { case forward, gradient, other }

    /// A phase: `steps` of `unitsPerStep` UNet-forward units each. Phases of one `group` (the same work in
    /// each row of a batch: "offsets" of "row 2/6 offsets") share their measured rate.
    public struct Phase: Sendable {
        public var name: String
        public var group: String
        public var kind: Kind
        public var steps: Int
        public var unitsPerStep: Double

        public init(_ name: String, kind: Kind, steps: Int, unitsPerStep: Double = 1) {
            self.name = name
            self.group = name
            self.kind = kind
            self.steps = max(steps, 0)
            self.unitsPerStep = unitsPerStep
        }
    }

    private(set) public var phases: [Phase]
    /// The index of the phase running now (-1 before the first).
    private(set) public var current = -1
    private(set) public var doneInCurrent = 0
    private let clock: () -> TimeInterval
    private let start: TimeInterval
    private var phaseStart: TimeInterval
    /// When the last step was reported: a phase's first step began then (steps are reported as they end).
    private var lastReport: TimeInterval
    private var rate: [Kind: Double] = [:]
    /// Seconds per unit measured in each group of phases: the work of a phase runs at its group's rate, which
    /// its kind's rate only approximates (a batched pass and a single one cost differently per unit).
    private var groupRate: [String: Double] = [:]
    /// The seconds per unit of the current phase's kind when it began (from earlier phases), if known.
    private var entryRate: Double?
    /// When each step of the current phase was reported (index = steps done).
    private var reports: [TimeInterval] = []
    /// Seconds each finished (or running) phase took, in order, by name.
    private(set) public var phaseSeconds: [(name: String, seconds: Double)] = []

    /// A forward+backward pass in forward passes, until measured: `defaultGradientPrior` when both run in one
    /// precision; jobs whose gradients run in fp32 beside bf16 forwards give more (`PrecisionPlan.gradientPassCost`).
    public let gradientPrior: Double
    /// 2.5: a forward+backward pass against a forward pass in one precision (SD 1.5 size, fp32 and bf16 alike).
    public static let defaultGradientPrior = 2.5

    func prior(_ kind: Kind) -> Double { kind == .gradient ? gradientPrior : 1 }

    /// A job of `phases`, its clock starting now (`clock` is for tests).
    public init(
        phases: [Phase], gradientPrior: Double = JobEstimate.defaultGradientPrior,
        clock: @escaping () -> TimeInterval = { Date().timeIntervalSinceReferenceDate }
    ) {
        self.phases = phases
        self.gradientPrior = gradientPrior
        self.clock = clock
        start = clock()
        phaseStart = start
        lastReport = start
    }

    /// Adds phases at the end (the rows of a batch as they are planned).
    public func append(_ more: [Phase]) { phases += more }

    /// The phase running now, nil before the first and after the last.
    public var phase: Phase? { phases.indices.contains(current) ? phases[current] : nil }

    /// Moves to the next phase named `name` (phases between are skipped: a cached inversion's); false if
    /// there is none ahead.
    @discardableResult
    public func enter(_ name: String) -> Bool {
        guard let next = phases.indices.first(where: { $0 > current && phases[$0].name == name }) else { return false }
        closePhase()
        for skipped in (current + 1)..<next { phases[skipped].steps = 0 }
        current = next
        doneInCurrent = 0
        phaseStart = lastReport
        entryRate = groupRate[phases[next].group] ?? secondsPerUnit(phases[next].kind)
        reports = [phaseStart]
        return true
    }

    /// Steps done in the current phase (and, when it is known better now, its new total).
    public func advance(_ done: Int, total: Int? = nil) {
        guard phases.indices.contains(current) else { return }
        if let total { phases[current].steps = max(total, done) }
        doneInCurrent = min(max(done, 0), max(phases[current].steps, done))
        lastReport = clock()
        while reports.count <= doneInCurrent { reports.append(lastReport) }
        let onlyStep = doneInCurrent == 1 && phases[current].steps <= 1 && entryRate == nil
        if doneInCurrent >= 2 || onlyStep, phases[current].unitsPerStep > 0 {
            // The phase's recent steps (its later half), never its first step while there are others: steps are
            // reported as they end, so the first also holds whatever ran unreported since the last report (a
            // photo's encoding, the previous row's decode) and one-time work (on a small model the first UNet
            // pass, with its kernels' setup, took 30x the next ones: an ETA from it alone was 30x too long).
            // Steadied while few by what earlier phases predicted (two steps' worth: a prior off by 2x, as a gradient
            // pass against a bf16 forward can be, weighed more would mislead the whole first phase of its kind).
            let window = doneInCurrent == 1 ? 1 : min(doneInCurrent - 1, max(10, doneInCurrent / 2))
            let d = Double(window)
            let measured = (lastReport - reports[doneInCurrent - window]) / d / phases[current].unitsPerStep
            let steadied = entryRate.map { (measured * d + $0 * 2) / (d + 2) } ?? measured
            rate[phases[current].kind] = steadied
            groupRate[phases[current].group] = steadied
        }
    }

    /// Plans `steps` for every phase after the current one whose name ends with `suffix` (later batch rows'
    /// null-text iterations, once a row has shown how many early stopping leaves).
    public func planLater(endingWith suffix: String, steps: Int) {
        for i in phases.indices where i > current && phases[i].name.hasSuffix(suffix) { phases[i].steps = max(steps, 0) }
    }

    /// Ends the current phase (at the end of the job).
    public func finish() {
        closePhase()
        current = phases.count
    }

    private func closePhase() {
        guard phases.indices.contains(current) else { return }
        phaseSeconds.append((phases[current].name, clock() - phaseStart))
    }

    /// Seconds since the job began.
    public var elapsed: Double { clock() - start }

    /// Seconds per unit of a kind: measured, else from another measured kind through the priors.
    func secondsPerUnit(_ kind: Kind) -> Double? {
        if let r = rate[kind] { return r }
        guard let (k, r) = rate.first(where: { _ in true }) else { return nil }
        return r / prior(k) * prior(kind)
    }

    /// Seconds still to go, nil until a step has been measured.
    public var eta: Double? {
        var left = 0.0
        for i in max(current, 0)..<phases.count {
            let p = phases[i]
            guard let r = (i == current ? nil : groupRate[p.group]) ?? secondsPerUnit(p.kind) else { return nil }
            let steps = i == current ? max(p.steps - doneInCurrent, 0) : p.steps
            left += Double(steps) * p.unitsPerStep * r
        }
        if phases.indices.contains(current), doneInCurrent == 0, let r = secondsPerUnit(phases[current].kind) {
            left -= min(clock() - phaseStart, Double(phases[current].steps) * phases[current].unitsPerStep * r)  // the first step is under way
        }
        return max(left, 0)
    }

    /// The planned fraction of the job done, by units (0 … 1).
    public var fraction: Double {
        var total = 0.0, done = 0.0
        for (i, p) in phases.enumerated() {
            let w = Double(p.steps) * p.unitsPerStep * prior(p.kind)
            total += w
            if i < current { done += w } else if i == current { done += Double(doneInCurrent) * p.unitsPerStep * prior(p.kind) }
        }
        return total > 0 ? min(done / total, 1) : 0
    }
}
