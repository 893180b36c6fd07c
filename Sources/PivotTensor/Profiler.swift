import Foundation

/// Opt-in time accounting per kernel kind (`PIVOT_PROFILE=1`), for finding where a pass spends its time.
/// Off by default; when off, `measure` costs one branch.
public enum Profiler {
    /// Whether timing is on (read once from the environment).
    public static let enabled = ProcessInfo.processInfo.environment["PIVOT_PROFILE"] == "1"
    nonisolated(unsafe) private static var totals: [String: (seconds: Double, calls: Int)] = [:]

    /// Runs `body`, adding its wall time to `name` when profiling is on (main thread only).
    @inline(__always)
    public static func measure<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
        guard enabled, Thread.isMainThread else { return try body() }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let r = try body()
        let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        totals[name, default: (0, 0)].seconds += dt
        totals[name, default: (0, 0)].calls += 1
        return r
    }

    /// A table of the totals, largest first, and resets them.
    public static func report() -> String {
        let rows = totals.sorted { $0.value.seconds > $1.value.seconds }
            .map { String(format: "%-14@ %8.3f s %7d calls", $0.key, $0.value.seconds, $0.value.calls) }
        totals = [:]
        return rows.joined(separator: "\n")
    }
}
