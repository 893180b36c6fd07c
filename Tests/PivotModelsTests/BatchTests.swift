import Foundation
import Pivot
import PivotBatch
import PivotLoading
import PivotImage
import XCTest

/// `pivot batch`: manifests, the journal, resuming, sharding, bad rows.
final class BatchTests: XCTestCase, CLIRunning {
    var model: String { Bundle.module.path(forResource: "Fixtures/sd1-tiny/model", ofType: nil) ?? "missing" }
    var photo: String { Bundle.module.path(forResource: "Fixtures/inversion/photo.png", ofType: nil) ?? "missing" }

    func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "pivot-batch-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// Photos with different content (so they do not share an inversion): the fixture photo shifted.
    func makeInputs(_ dir: String, count: Int) throws {
        let base = try RGBImage(contentsOf: photo)
        for k in 0..<count {
            var px = base.pixels
            for i in stride(from: 0, to: px.count, by: 3) { px[i] = min(1, px[i] + Float(k) * 0.05) }
            try RGBImage(width: base.width, height: base.height, pixels: px).write(dir + "/p\(k).png")
        }
    }

    /// A temporary folder with `in/` holding `photos` inputs; `out/` is its output folder (not created).
    func folders(photos: Int) throws -> (dir: String, input: String, out: String) {
        let dir = try temporaryDirectory(), input = dir + "/in"
        try FileManager.default.createDirectory(atPath: input, withIntermediateDirectories: true)
        try makeInputs(input, count: photos)
        return (dir, input, dir + "/out")
    }

    func journal(_ dir: String) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: dir + "/pivot-batch.jsonl", encoding: .utf8)
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    func testManifestParsing() throws {
        let dir = try temporaryDirectory()
        try
            "image,source,target,output,reweight,self_replace\np.png,\"a red, round circle\",\"a \"\"blue\"\" circle\",,cat=2;hat=0.5,\"0.2,0.6\"\r\nq.png,a,b,out/q.jpg,,\n"
            .write(toFile: dir + "/m.csv", atomically: true, encoding: .utf8)
        let csv = try BatchManifest.read(dir + "/m.csv")
        XCTAssertEqual(csv.count, 2)
        XCTAssertEqual(
            csv[0],
            BatchRow(
                number: 1, image: "p.png", source: "a red, round circle", target: "a \"blue\" circle",
                settings: ["reweight": "cat=2;hat=0.5", "self_replace": "0.2,0.6"]))
        XCTAssertEqual(csv[1].output, "out/q.jpg")
        try #"[{"image": "p.png", "source": "a", "target": "b", "reweight": {"cat": 2}, "blend": ["cat", "hat"], "steps": 20}]"#
            .write(toFile: dir + "/m.json", atomically: true, encoding: .utf8)
        let json = try BatchManifest.read(dir + "/m.json")
        XCTAssertEqual(json[0].settings, ["reweight": "cat=2", "blend": "cat hat", "steps": "20"])
        try
            "{\"image\": \"a.png\", \"source\": \"x\", \"target\": \"y\"}\n\n{\"image\": \"b.png\", \"source\": \"x\", \"target\": \"z\", \"output\": \"b.png\"}\n"
            .write(toFile: dir + "/m.jsonl", atomically: true, encoding: .utf8)
        XCTAssertEqual(try BatchManifest.read(dir + "/m.jsonl").map(\.number), [1, 2])
        var settings = EditSettings()
        try settings.set("reweight", "cat=2;hat=0.5")
        try settings.set("self_replace", "0.2,0.6")
        try settings.set("cross_replace", "0.7;cat=0.3")
        XCTAssertEqual(settings.edit.reweight, ["cat": 2, "hat": 0.5])
        XCTAssertEqual(settings.edit.selfReplace.end, 0.6)
        XCTAssertEqual(settings.edit.crossReplaceWords, ["cat": 0.3])
        XCTAssertThrowsError(try settings.set("steps", "many"))
        for (name, text) in [("bad.csv", "image,source,tgt\na,b,c\n"), ("bad.json", "{\"image\": 1"), ("bad2.csv", "image,source,target\n\"a,b,c\n")]
        {
            try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try BatchManifest.read(dir + "/" + name), name)
        }
    }

    /// Every image lands in exactly one shard, always the same one.
    func testShardsPartitionByImage() throws {
        let shards = (1...3).compactMap { BatchShard(parsing: "\($0)/3") }
        XCTAssertEqual(shards.count, 3)
        var sizes = [0, 0, 0]
        for i in 0..<300 {
            let hits = shards.indices.filter { shards[$0].contains(image: "img\(i).png") }
            XCTAssertEqual(hits.count, 1)
            sizes[hits[0]] += 1
        }
        XCTAssertTrue(sizes.allSatisfy { $0 > 60 }, "\(sizes)")
        XCTAssertNil(BatchShard(parsing: "0/3"))
        XCTAssertNil(BatchShard(parsing: "4/3"))
        XCTAssertNil(BatchShard(parsing: "1-3"))
    }

    /// A manifest mixing good and bad rows: bad rows are reported and skipped, good ones written, an image of
    /// several rows inverted once; a rerun skips what is done and redoes a changed row.
    func testManifestWithBadRowsAndRerun() throws {
        let (dir, input, out) = try folders(photos: 2)
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: input + "/corrupt.png"))
        func writeManifest(_ firstTarget: String) throws {
            try """
            image,source,target,output,reweight,steps
            p0.png,a red circle,\(firstTarget),,,
            p0.png,a red circle,a big red circle,sub/big.png,,
            missing.png,a red circle,a blue circle,,,
            corrupt.png,a red circle,a blue circle,,,
            p0.png,a red circle,a blue circle,green.png,green=2,
            p0.png,a red circle,a blue circle,../escape.png,,
            p1.png,a red circle,a blue circle,,,3
            p0.png,a red circle,a blue circle,p0.png,,
            """.write(toFile: dir + "/m.csv", atomically: true, encoding: .utf8)
        }
        try writeManifest("a blue circle")
        let env = ["PIVOT_CACHE_DIR": dir + "/cache"]
        let args = ["batch", input, "--model", model, "-o", out, "--manifest", dir + "/m.csv", "--steps", "2", "--inner-steps", "1"]
        let first = try pivot(args, environment: env)
        XCTAssertEqual(first.status, 1, "a failed row makes the exit status 1: \(first.err)")
        for path in ["p0-1.png", "sub/big.png", "p1-7.png", "p0.png"] {
            XCTAssertNoThrow(try RGBImage(contentsOf: out + "/" + path), path)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/escape.png"))
        XCTAssertTrue(first.out.contains("4 written, 0 already done, 4 failed"), first.out)
        let lines = try journal(out)
        let statuses = Dictionary(lines.map { (($0["row"] as? Int) ?? 0, ($0["status"] as? String) ?? "") }, uniquingKeysWith: { $1 })
        XCTAssertEqual(statuses, [1: "ok", 2: "ok", 3: "error", 4: "error", 5: "error", 6: "error", 7: "ok", 8: "ok"])
        XCTAssertTrue(lines.contains { ($0["message"] as? String)?.contains("'green'") ?? false })
        XCTAssertTrue(lines.contains { ($0["message"] as? String)?.contains("leave the output folder") ?? false })
        // p0 (three good rows) and p1: two inversions.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/cache").filter { $0.hasSuffix(".safetensors") }.count, 2)

        let second = try pivot(args + ["--json"], environment: env)
        let summary = second.out.split(separator: "\n").last.map(String.init) ?? ""
        XCTAssertTrue(summary.contains("\"ok\":0") && summary.contains("\"skipped\":4") && summary.contains("\"failed\":4"), second.out)

        try writeManifest("a green circle")
        let third = try pivot(args + ["--json"], environment: env)
        XCTAssertTrue((third.out.split(separator: "\n").last ?? "").contains("\"ok\":1"), third.out)
        XCTAssertTrue(third.err.contains("batch: 8 rows, 3 already done"), third.err)
    }

    /// --side-by-side writes the photo (at the photo's size; the reconstruction with --output-size model) beside
    /// the edit; the edit half is the plain output, and
    /// switching the flag redoes the row instead of skipping it.
    func testSideBySide() throws {
        let (_, input, out) = try folders(photos: 1)
        let args = [
            "batch", input, "--model", model, "-o", out, "--source", "a red circle", "--target", "a blue circle",
            "--steps", "2", "--method", "direct", "--no-cache", "--json",
            // bit equality holds on the fp32 path; bf16 products may round differently when the VAE
            // decodes the reconstruction and the edit together
            "--precision", "fp32",
        ]
        let plain = try pivot(args)
        XCTAssertEqual(plain.status, 0, plain.err)
        let edit = try RGBImage(contentsOf: out + "/p0.png")
        let both = try pivot(args + ["--side-by-side"])
        XCTAssertTrue((both.out.split(separator: "\n").last ?? "").contains("\"ok\":1"), both.out)
        let pair = try RGBImage(contentsOf: out + "/p0.png")
        XCTAssertEqual(pair.width, 2 * edit.width)
        XCTAssertEqual(pair.height, edit.height)
        var right: [Float] = []
        for y in 0..<pair.height { right += pair.pixels[(y * pair.width + edit.width) * 3..<(y * pair.width + pair.width) * 3] }
        XCTAssertEqual(right, edit.pixels)
        XCTAssertNotEqual(Array(pair.pixels[0..<edit.width * 3]), Array(edit.pixels[0..<edit.width * 3]))
    }

    /// SIGKILL in the middle, then a rerun: every output complete and readable, the journal all ok, no
    /// temporary files left.
    func testKillAndResume() throws {
        let (_, input, out) = try folders(photos: 4)
        let args = [
            "batch", input, "--model", model, "-o", out, "--source", "a red circle", "--target", "a blue circle",
            "--steps", "3", "--inner-steps", "2", "--no-cache", "--quiet",
        ]
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, p.isRunning, ((try? journal(out)) ?? []).filter({ ($0["status"] as? String) == "ok" }).count < 1 {
            usleep(20_000)
        }
        usleep(150_000)
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let killedAfter = ((try? journal(out)) ?? []).count
        XCTAssertLessThan(killedAfter, 4, "the kill must land before the batch finished")
        let rerun = try pivot(args)
        XCTAssertEqual(rerun.status, 0, rerun.err + rerun.out)
        let names = try FileManager.default.contentsOfDirectory(atPath: out).sorted()
        XCTAssertEqual(names, ["p0.png", "p1.png", "p2.png", "p3.png", "pivot-batch.jsonl"])
        for n in names where n.hasSuffix(".png") { XCTAssertNoThrow(try RGBImage(contentsOf: out + "/" + n), n) }
        let latest = Dictionary(
            try journal(out).map { (($0["output"] as? String) ?? "", ($0["status"] as? String) ?? "") },
            uniquingKeysWith: { $1 })
        XCTAssertEqual(latest, ["p0.png": "ok", "p1.png": "ok", "p2.png": "ok", "p3.png": "ok"])
    }
}
