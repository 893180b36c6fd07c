import Foundation

// libFuzzer's entry points. The target is chosen by the environment variable PIVOT_FUZZ_TARGET (one binary for
// all readers keeps the sanitized build to one link); `PIVOT_FUZZ_TARGET=list` prints the names and exits.

/// The chosen target and this process's scratch folder, set up once by `LLVMFuzzerInitialize`.
private struct Session {
    let target: FuzzTarget
    let directory: String
}

nonisolated(unsafe) private var session: Session?

@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>)
    -> Int32
{
    let name = ProcessInfo.processInfo.environment["PIVOT_FUZZ_TARGET"] ?? ""
    if name == "list" {
        print(fuzzTargets.map(\.name).joined(separator: "\n"))
        exit(0)
    }
    guard let target = fuzzTargets.first(where: { $0.name == name }) else {
        FileHandle.standardError.write(Data("pivot-fuzz: set PIVOT_FUZZ_TARGET to one of: \(fuzzTargets.map(\.name).joined(separator: ", "))\n".utf8))
        exit(2)
    }
    let base = ProcessInfo.processInfo.environment["PIVOT_FUZZ_SCRATCH"] ?? NSTemporaryDirectory()
    let directory = (base as NSString).appendingPathComponent("pivot-fuzz-\(name)-\(getpid())")
    do {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    } catch {
        FileHandle.standardError.write(Data("pivot-fuzz: cannot create \(directory): \(error)\n".utf8))
        exit(2)
    }
    session = Session(target: target, directory: directory)
    atexit { if let dir = session?.directory { try? FileManager.default.removeItem(atPath: dir) } }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let session else { return 0 }
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    fuzzOne(session.target, bytes, directory: session.directory) { message in
        FileHandle.standardError.write(Data("pivot-fuzz: promise broken: \(message)\n".utf8))
        abort()
    }
    return 0
}
