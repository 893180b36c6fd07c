import Foundation
import PivotFormats
import PivotImage
import XCTest

/// Faults while pivot writes: a write cut short (the file-size limit, `ulimit -f`, fails writes with EFBIG as a
/// full disk fails them with ENOSPC; a real full disk where a tmpfs can be mounted), a read-only folder, an
/// unwritable cache, and weights that hold NaN. Every earlier file stays byte for byte, no temporary file is
/// left behind, the message is one line and the exit status non-zero.
final class FaultTests: XCTestCase, CLIRunning {
    var model: String { Bundle.module.path(forResource: "Fixtures/sd1-tiny/model", ofType: nil) ?? "missing" }
    var photo: String { Bundle.module.path(forResource: "Fixtures/inversion/photo.png", ofType: nil) ?? "missing" }
    let quick = ["--steps", "2", "--inner-steps", "1", "--quiet"]

    func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "pivot-faults-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// `pivot args…` with every file it writes limited to `blocks` of 512 bytes (sh's unit; SIGXFSZ ignored, so writes fail with EFBIG).
    func pivotLimited(_ args: [String], blocks: Int, environment: [String: String] = [:]) throws -> CLIRun {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "ulimit -f \(blocks) && trap '' XFSZ && exec \"$0\" \"$@\"", binary] + args
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return CLIRun(status: p.terminationStatus, out: String(decoding: o, as: UTF8.self), err: String(decoding: e, as: UTF8.self))
    }

    /// A failed run: non-zero, one line on standard error (no trap, no backtrace), `mentioning` in it.
    func assertFailedCleanly(_ r: CLIRun, mentioning phrase: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertNotEqual(r.status, 0, file: file, line: line)
        XCTAssertLessThan(r.status, 128, "killed by a signal: \(r.err)", file: file, line: line)
        let lines = r.err.split(separator: "\n").filter { !$0.hasPrefix("warning:") }
        XCTAssertEqual(lines.count, 1, r.err, file: file, line: line)
        XCTAssertTrue(r.err.hasPrefix("pivot: error: "), r.err, file: file, line: line)
        XCTAssertTrue(r.err.contains(phrase), "\(phrase) not in: \(r.err)", file: file, line: line)
    }

    /// No `.name.tmp-…` file left in `directory`.
    func assertNoTemporaryFiles(_ directory: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let left = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.contains(".tmp-") }
        XCTAssertEqual(left, [], file: file, line: line)
    }

    func bytes(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    /// An existing output survives an edit whose write is cut short.
    func testCutShortOutputKeepsTheOldFile() throws {
        let dir = try temporaryDirectory(), out = dir + "/out.png"
        let old = Data((0..<5000).map { UInt8($0 % 251) })
        try old.write(to: URL(fileURLWithPath: out))
        let args = ["edit", photo, "--model", model, "--source", "a red circle", "--target", "a blue circle", "--no-cache", "-o", out]
        let r = try pivotLimited(args + quick, blocks: 1)
        assertFailedCleanly(r, mentioning: out)
        XCTAssertEqual(try bytes(out), old)
        try assertNoTemporaryFiles(dir)
    }

    /// An existing inversion file survives an inversion whose write is cut short.
    func testCutShortInversionKeepsTheOldFile() throws {
        let dir = try temporaryDirectory(), file = dir + "/photo.inversion.safetensors"
        let invert = ["invert", photo, "--model", model, "--prompt", "a red circle", "--method", "ddim", "-o", file, "--quiet"]
        let first = try pivot(invert + ["--steps", "2"])
        XCTAssertEqual(first.status, 0, first.err)
        let old = try bytes(file)
        let r = try pivotLimited(invert + ["--steps", "3"], blocks: 1)
        assertFailedCleanly(r, mentioning: file)
        XCTAssertEqual(try bytes(file), old)
        try assertNoTemporaryFiles(dir)
    }

    /// A cache that cannot be written (its folder would sit under a regular file) is a warning: the edit is written.
    func testUnwritableCacheIsAWarning() throws {
        let dir = try temporaryDirectory(), out = dir + "/out.png"
        try Data("a file".utf8).write(to: URL(fileURLWithPath: dir + "/blocker"))
        let r = try pivot(
            ["edit", photo, "--model", model, "--source", "a red circle", "--target", "a blue circle", "-o", out] + quick,
            environment: ["PIVOT_CACHE_DIR": dir + "/blocker/cache"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.err.contains("could not cache the inversion"), r.err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out))
    }

    /// A full disk (a small tmpfs, filled up): ENOSPC leaves the old output and no temporary file. Needs the
    /// right to mount (root with CAP_SYS_ADMIN); elsewhere it says so and skips (the EFBIG tests cover the path).
    func testFullDiskKeepsTheOldFile() throws {
        let dir = try temporaryDirectory(), mount = dir + "/disk"
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        let m = Process()
        m.executableURL = URL(fileURLWithPath: "/bin/mount")
        m.arguments = ["-t", "tmpfs", "-o", "size=64k", "tmpfs", mount]
        m.standardError = FileHandle.nullDevice
        m.standardOutput = FileHandle.nullDevice
        guard (try? m.run()) != nil else { throw XCTSkip("cannot run mount: the full-disk case is not tried on this machine") }
        m.waitUntilExit()
        guard m.terminationStatus == 0 else { throw XCTSkip("cannot mount a tmpfs here (not root?): the full-disk case is not tried") }
        defer {
            let u = Process()
            u.executableURL = URL(fileURLWithPath: "/bin/umount")
            u.arguments = [mount]
            try? u.run()
            u.waitUntilExit()
        }
        let out = mount + "/out.png"
        let old = Data((0..<3000).map { UInt8($0 % 241) })
        try old.write(to: URL(fileURLWithPath: out))
        // Fill what is left.
        let filler =
            FileHandle(forWritingAtPath: mount + "/filler")
            ?? {
                FileManager.default.createFile(atPath: mount + "/filler", contents: nil)
                return FileHandle(forWritingAtPath: mount + "/filler")!
            }()
        let block = Data(repeating: 0, count: 4096)
        while (try? filler.write(contentsOf: block)) != nil {}
        try? filler.close()
        let r = try pivot(
            ["edit", photo, "--model", model, "--source", "a red circle", "--target", "a blue circle", "--no-cache", "-o", out] + quick)
        assertFailedCleanly(r, mentioning: out)
        XCTAssertTrue(r.err.contains("No space left on device"), r.err)
        XCTAssertEqual(try bytes(out), old)
        try assertNoTemporaryFiles(mount)
    }

    /// A read-only output folder (immutable for root, mode 0555 otherwise): one line, the old output kept.
    func testReadOnlyFolderKeepsTheOldFile() throws {
        let dir = try temporaryDirectory(), folder = dir + "/ro", out = folder + "/out.png"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let old = Data("the old output".utf8)
        try old.write(to: URL(fileURLWithPath: out))
        let chattr = Process()
        chattr.executableURL = URL(fileURLWithPath: "/usr/bin/chattr")
        chattr.arguments = ["+i", folder]
        chattr.standardError = FileHandle.nullDevice
        var immutable = false
        if geteuid() == 0, (try? chattr.run()) != nil {
            chattr.waitUntilExit()
            immutable = chattr.terminationStatus == 0
        }
        if !immutable { chmod(folder, 0o555) }
        defer {
            if immutable {
                let undo = Process()
                undo.executableURL = URL(fileURLWithPath: "/usr/bin/chattr")
                undo.arguments = ["-i", folder]
                try? undo.run()
                undo.waitUntilExit()
            }
            chmod(folder, 0o755)
        }
        guard !FileManager.default.createFile(atPath: folder + "/probe", contents: Data()) else {
            throw XCTSkip("cannot make a read-only folder here (root without chattr): the case is not tried")
        }
        let r = try pivot(
            ["edit", photo, "--model", model, "--source", "a red circle", "--target", "a blue circle", "--no-cache", "-o", out] + quick)
        assertFailedCleanly(r, mentioning: folder)
        XCTAssertEqual(try bytes(out), old)
    }

    /// A cache entry whose write is cut short is a warning (the edit is still written) and leaves the entries
    /// already in the cache byte for byte, with no temporary file beside them.
    func testCutShortCacheEntryKeepsTheOtherEntries() throws {
        let dir = try temporaryDirectory(), cache = dir + "/cache", out = dir + "/out.png"
        let env = ["PIVOT_CACHE_DIR": cache]
        func entries() throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: cache).filter { $0.hasSuffix(".safetensors") }.sorted()
        }
        let first = try pivot(
            ["edit", photo, "--model", model, "--source", "a red circle", "--target", "a blue circle", "-o", out] + quick,
            environment: env)
        XCTAssertEqual(first.status, 0, first.err)
        let kept = try XCTUnwrap(try entries().first)
        let old = try bytes(cache + "/" + kept)
        XCTAssertGreaterThan(old.count, 16 * 1024, "the entry must be larger than the limit for the test to cut it")
        // Another source prompt is another key; its entry (~32 KB) is cut at 8 KB, the PNG (~2 KB) is not.
        let r = try pivotLimited(
            ["edit", photo, "--model", model, "--source", "a red square", "--target", "a blue square", "-o", out] + quick,
            blocks: 16, environment: env)
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.err.contains("could not cache the inversion"), r.err)
        XCTAssertNoThrow(try RGBImage(contentsOf: out))
        XCTAssertEqual(try entries(), [kept])
        XCTAssertEqual(try bytes(cache + "/" + kept), old)
        try assertNoTemporaryFiles(cache)
    }

    /// A learning checkpoint whose write is cut short stops the run with one line; the previous checkpoint and
    /// token file stay byte for byte, so `--resume` continues from them.
    func testCutShortCheckpointKeepsThePreviousOne() throws {
        let dir = try temporaryDirectory(), token = dir + "/toy.safetensors", state = dir + "/toy.learn-state.safetensors"
        func args(_ steps: Int) -> [String] {
            [
                "learn", photo, "--model", model, "--token", "<toy>", "--init", "red", "--steps", "\(steps)",
                "--save-every", "4", "--seed", "3", "--threads", "1", "--quiet", "--no-loss-plot", "-o", token,
            ]
        }
        let first = try pivot(args(8))
        XCTAssertEqual(first.status, 0, first.err)
        let oldState = try bytes(state), oldToken = try bytes(token)
        XCTAssertGreaterThan(oldState.count, 1024)
        let r = try pivotLimited(args(16) + ["--resume"], blocks: 1)
        assertFailedCleanly(r, mentioning: state)
        XCTAssertEqual(try bytes(state), oldState)
        XCTAssertEqual(try bytes(token), oldToken)
        try assertNoTemporaryFiles(dir)
        // The kept checkpoint still resumes.
        let resumed = try pivot(args(16) + ["--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.err)
    }

    /// A batch whose journal append (and output) is cut short fails with one line; the journal's earlier lines
    /// and the earlier outputs stay byte for byte, and a rerun without the limit finishes the rest.
    func testCutShortJournalKeepsEarlierRows() throws {
        let dir = try temporaryDirectory(), input = dir + "/in", out = dir + "/out"
        try FileManager.default.createDirectory(atPath: input, withIntermediateDirectories: true)
        let base = try RGBImage(contentsOf: photo)
        func variant(_ k: Int) -> RGBImage {
            RGBImage(width: base.width, height: base.height, pixels: base.pixels.map { abs(Float(k) * 0.3 - $0) })
        }
        // Three rows first: their journal (~530 bytes) is already past the limit below (512 bytes), so the
        // fourth row's journal line cannot be appended at all.
        for k in 0..<3 { try variant(k).write(input + "/p\(k).png") }
        let args = [
            "batch", input, "--model", model, "-o", out, "--source", "a red circle", "--target", "a blue circle",
            "--steps", "2", "--inner-steps", "1", "--no-cache", "--quiet",
        ]
        let first = try pivot(args)
        XCTAssertEqual(first.status, 0, first.err)
        let journal = out + "/pivot-batch.jsonl"
        let oldJournal = try bytes(journal), oldOutputs = try (0..<3).map { try bytes(out + "/p\($0).png") }
        XCTAssertGreaterThan(oldJournal.count, 512)
        try variant(3).write(input + "/p3.png")
        let r = try pivotLimited(args, blocks: 1)
        XCTAssertNotEqual(r.status, 0, r.err)
        XCTAssertLessThan(r.status, 128, "killed by a signal: \(r.err)")
        XCTAssertFalse(r.err.contains("Fatal error"), r.err)
        XCTAssertTrue(r.err.contains("pivot-batch.jsonl"), r.err)
        XCTAssertEqual(try bytes(journal), oldJournal)
        XCTAssertEqual(try (0..<3).map { try bytes(out + "/p\($0).png") }, oldOutputs)
        try assertNoTemporaryFiles(out)
        let rerun = try pivot(args)
        XCTAssertEqual(rerun.status, 0, rerun.err)
        XCTAssertNoThrow(try RGBImage(contentsOf: out + "/p3.png"))
        XCTAssertEqual(try bytes(journal).prefix(oldJournal.count), oldJournal)
    }

    /// Weights holding NaN stop the run at the first step, naming it; no output file is written.
    func testNaNWeightsStopAtTheFirstStep() throws {
        let dir = try temporaryDirectory(), copy = dir + "/model", out = dir + "/out.png"
        try FileManager.default.copyItem(atPath: model, toPath: copy)
        let weights = copy + "/unet/diffusion_pytorch_model.safetensors"
        let info = try XCTUnwrap(try SafeTensorsFile(path: weights).info("conv_in.weight"))
        XCTAssertEqual(info.dtype, .F32)
        let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: weights))
        try handle.seek(toOffset: UInt64(info.fileOffset))
        try handle.write(contentsOf: Data(repeating: 0xFF, count: info.byteCount))  // every value a NaN
        try handle.close()
        let generate = try pivot(["generate", "a red circle", "--model", copy, "--steps", "2", "-o", out, "--quiet"])
        assertFailedCleanly(generate, mentioning: "denoising at step 1 of 2: latents became NaN or infinite")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        let edit = try pivot(
            ["edit", photo, "--model", copy, "--source", "a red circle", "--target", "a blue circle", "--no-cache", "-o", out] + quick)
        assertFailedCleanly(edit, mentioning: "DDIM inversion at step 1 of 2: latents became NaN or infinite")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }
}
