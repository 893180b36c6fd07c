import Foundation

/// Step progress on standard error: a redrawn bar with step count and ETA on a terminal, one plain line per
/// step otherwise (logs, pipes), or nothing when quiet.
final class Progress {
    private let label: String
    private let isTerminal = isatty(STDERR_FILENO) == 1
    private let quiet: Bool
    private var start = Date()
    private var lastDraw = Date.distantPast
    private var lastDone = -1
    /// Off a terminal: the least time between two lines (0: a line per finished step).
    private let logInterval: TimeInterval

    init(_ label: String, quiet: Bool = false, logInterval: TimeInterval = 0) {
        self.label = label
        self.quiet = quiet
        self.logInterval = logInterval
    }

    /// Restarts the clock (call when the timed work begins).
    func begin() { start = Date() }

    /// Reports that `done` of `total` steps are finished (and `partial` ∈ [0, 1) of the next, for the ETA);
    /// `detail` (e.g. an inner loss) follows the count.
    func update(_ done: Int, _ total: Int, partial: Double = 0, detail: String = "") {
        guard !quiet, total > 0 else { return }
        let elapsed = Date().timeIntervalSince(start)
        let progress = Double(done) + min(max(partial, 0), 1)
        let eta = progress > 0 ? elapsed / progress * (Double(total) - progress) : 0
        if isTerminal {
            guard done == total || Date().timeIntervalSince(lastDraw) > 0.1 else { return }
            lastDraw = Date()
            let width = 30, filled = width * done / total
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            var line = "\r\(label) \(bar) \(done)/\(total)  \(Progress.clock(elapsed)) elapsed, ETA \(Progress.clock(eta))"
            if !detail.isEmpty { line += "  " + detail }
            line += "\u{1B}[K"  // clear the rest of the line
            if done == total { line += "\n" }
            FileHandle.standardError.write(Data(line.utf8))
        } else {
            // Logs get a line per finished step (at most one per logInterval), and one every 5 s in between.
            let since = Date().timeIntervalSince(lastDraw)
            guard done == total || (done != lastDone && since >= logInterval) || since >= max(5, logInterval) else { return }
            lastDone = done
            lastDraw = Date()
            note(
                "\(label): step \(done)/\(total), \(Progress.clock(elapsed)) elapsed, ETA \(Progress.clock(eta))"
                    + (detail.isEmpty ? "" : ", " + detail))
        }
    }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
