import Foundation
import XCTest

/// Runs the built `pivot` executable and captures its output.
protocol CLIRunning {}

struct CLIRun {
    var status: Int32
    var out: String
    var err: String
}

extension CLIRunning {
    var binary: String {
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("pivot").path,
            Bundle.module.bundleURL.deletingLastPathComponent().appendingPathComponent("pivot").path,
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[1]
    }

    /// `pivot args…` with extra environment variables; waits for it to exit.
    func pivot(_ args: [String], environment: [String: String] = [:]) throws -> CLIRun {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return CLIRun(status: p.terminationStatus, out: String(decoding: o, as: UTF8.self), err: String(decoding: e, as: UTF8.self))
    }
}
