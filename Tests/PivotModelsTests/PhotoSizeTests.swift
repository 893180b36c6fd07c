import Foundation
import Pivot
import PivotDiffusion
import PivotImage
import PivotLoading
import XCTest

/// Photos keep their aspect ratio (issue 16): the inversion size, the edit at the photo's own resolution,
/// identity edits, local blend, and the size in the settings and cache key.
final class PhotoSizeTests: XCTestCase, CLIRunning {
    var model: String { Bundle.module.path(forResource: "Fixtures/sd1-tiny/model", ofType: nil) ?? "missing" }
    var photo: String { Bundle.module.path(forResource: "Fixtures/inversion/photo.png", ofType: nil) ?? "missing" }

    /// SD 1.5 sizes for common photo shapes: sides multiples of 64, area near 512², aspect within 3%.
    func testFittedSizesForSD() {
        for (w, h) in [(4032, 3024), (3024, 4032), (6000, 4000), (1920, 1080), (1000, 1000), (1080, 1350)] {
            let s = ImageSize(width: w, height: h).fitted(area: 512 * 512, multiple: 64)
            XCTAssertEqual(s.width % 64, 0)
            XCTAssertEqual(s.height % 64, 0)
            let aspectError = abs(Double(s.width) / Double(s.height) / (Double(w) / Double(h)) - 1)
            XCTAssertLessThanOrEqual(aspectError, 0.03, "\(w)x\(h) → \(s)")
            let area = Double(s.width * s.height) / Double(512 * 512)
            XCTAssertTrue((0.5...2).contains(area), "\(w)x\(h) → \(s): area \(area)")
        }
        XCTAssertEqual(ImageSize(width: 1000, height: 1000).fitted(area: 512 * 512, multiple: 64), ImageSize(width: 512, height: 512))
        XCTAssertEqual(ImageSize(width: 4032, height: 3024).fitted(area: 512 * 512, multiple: 64), ImageSize(width: 512, height: 384))
        // A panorama no multiple fits within 3%: the closest aspect near the area.
        let pano = ImageSize(width: 8000, height: 1000).fitted(area: 512 * 512, multiple: 64)
        XCTAssertGreaterThanOrEqual(Double(pano.width) / Double(pano.height), 3.5, "\(pano)")
        XCTAssertEqual(ImageSize(parsing: "640x448"), ImageSize(width: 640, height: 448))
        XCTAssertNil(ImageSize(parsing: "640x"))
        XCTAssertNil(ImageSize(parsing: "0x448"))
    }

    /// A wide photo made from the fixture photo: 48 × 32 (3:2), the photo in the middle on its edge colour.
    func widePhoto() throws -> String {
        let square = try RGBImage(contentsOf: photo)  // 32 × 32
        var pixels = [Float](repeating: 0, count: 48 * 32 * 3)
        for y in 0..<32 {
            for x in 0..<48 {
                let sx = min(max(x - 8, 0), 31)
                for c in 0..<3 { pixels[(y * 48 + x) * 3 + c] = square.pixels[(y * 32 + sx) * 3 + c] }
            }
        }
        let path = NSTemporaryDirectory() + "pivot-wide-\(UUID().uuidString).png"
        try RGBImage(width: 48, height: 32, pixels: pixels, bitDepth: 8).write(path)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func testWidePhotoKeepsItsAspectAndSizeThroughInvertAndEdit() throws {
        let sd = try StableDiffusion(model: ModelFolder(path: model))
        let wide = try widePhoto()
        var settings = EditSettings()
        settings.inversion.method = .ddim
        settings.inversion.steps = 3
        let cache = InversionCache(directory: NSTemporaryDirectory() + "pivot-cache-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: cache.directory) }
        // Identity: the target is the source; the output is the photo at its own size.
        var request = EditRequest(
            input: .photo(wide), source: "a red circle", targets: ["a red circle", "a blue circle"], settings: settings, cache: cache)
        let result = try sd.edit(request)
        let native = sd.nativeResolution, f = sd.vae.config.downsampleFactor
        let expected = ImageSize(width: 48, height: 32).fitted(area: native * native, multiple: sd.sizeMultiple)
        XCTAssertNotEqual(expected.width, expected.height)
        XCTAssertEqual(result.record.latents[0].shape, [1, 4, expected.height / f, expected.width / f])
        XCTAssertEqual(result.record.metadata["width"], String(expected.width))
        XCTAssertEqual(result.record.metadata["size"], "auto")
        XCTAssertEqual(result.outputSize, .photo)
        let original = try RGBImage(contentsOf: wide)
        for image in result.images {
            XCTAssertEqual([image.width, image.height], [48, 32])
        }
        let identity = result.images[1]
        let worst = zip(identity.pixels, original.pixels).map { abs($0 - $1) }.max() ?? 1
        XCTAssertLessThanOrEqual(worst, 1 / 255, "an identity edit must return the photo")
        XCTAssertNotEqual(result.images[2].pixels, original.pixels, "a real edit changes the photo")
        // Model size on request; the square on request: another cache entry (the size is in the key).
        request.outputSize = .model
        request.targets = ["a blue circle"]
        let small = try sd.edit(request)
        XCTAssertEqual([small.images[1].width, small.images[1].height], [expected.width, expected.height])
        XCTAssertNotNil(small.cachedAt, "same settings: the cached inversion")
        request.settings.inversion.size = .square
        let square = try sd.edit(request)
        XCTAssertNil(square.cachedAt, "another size: not the cached inversion")
        XCTAssertEqual(square.record.latents[0].shape, [1, 4, native / f, native / f])
    }

    /// Local blend leaves every pixel outside its mask exactly the photo's.
    func testLocalBlendKeepsThePhotoOutsideTheMask() throws {
        let sd = try StableDiffusion(model: ModelFolder(path: model))
        let wide = try widePhoto()
        var settings = EditSettings()
        settings.inversion.method = .ddim
        settings.inversion.steps = 5
        settings.edit.blend = ["circle"]
        settings.edit.blendThreshold = 0.6
        let result = try sd.edit(EditRequest(input: .photo(wide), source: "a red circle", targets: ["a blue circle"], settings: settings, cache: nil))
        let original = try RGBImage(contentsOf: wide)
        let edited = result.images[1]
        var unchanged = 0
        for p in 0..<(48 * 32) {
            let same =
                edited.pixels[p * 3] == original.pixels[p * 3] && edited.pixels[p * 3 + 1] == original.pixels[p * 3 + 1]
                && edited.pixels[p * 3 + 2] == original.pixels[p * 3 + 2]
            if same { unchanged += 1 }
        }
        XCTAssertGreaterThan(unchanged, 0, "the blend mask must leave some of the photo exactly as it was")
        XCTAssertLessThan(unchanged, 48 * 32, "the edit must change something")
    }

    /// --size and --square reach the inversion; a bad --size is one line naming the flag.
    func testSizeFlags() throws {
        let wide = try widePhoto()
        let out = NSTemporaryDirectory() + "pivot-size-\(UUID().uuidString).safetensors"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: out) }
        let common = ["invert", wide, "--model", model, "--prompt", "a red circle", "--method", "ddim", "--steps", "2", "-o", out, "--quiet"]
        let sized = try pivot(common + ["--size", "40x24"])
        XCTAssertEqual(sized.status, 0, sized.err)
        XCTAssertEqual(try InversionRecord(path: out).metadata["width"], "40")
        let bad = try pivot(common + ["--size", "41x24"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.err.contains("--size 41x24: sides must be positive multiples"), bad.err)
        XCTAssertEqual(bad.err.split(separator: "\n").count, 1, bad.err)
        let square = try pivot(common + ["--square"])
        XCTAssertEqual(square.status, 0, square.err)
        XCTAssertEqual(try InversionRecord(path: out).latents[0].dim(2), try InversionRecord(path: out).latents[0].dim(3))
    }

    /// `--json` prints one object per file written (path, size, method, precision, seconds); `--threads`
    /// is accepted everywhere.
    func testJSONResultsAndThreads() throws {
        let wide = try widePhoto()
        let dir = NSTemporaryDirectory() + "pivot-json-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        func objects(_ r: CLIRun) throws -> [[String: Any]] {
            XCTAssertEqual(r.status, 0, r.err)
            return try r.out.split(separator: "\n").map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        }
        let inv = dir + "/inv.safetensors"
        let invert = try objects(
            try pivot([
                "invert", wide, "--model", model, "--prompt", "a red circle", "--method", "ddim", "--steps", "2", "-o", inv,
                "--json", "--quiet", "--threads", "1", "--precision", "fp32",
            ]))
        XCTAssertEqual(invert.count, 1)
        XCTAssertEqual(invert.first?["path"] as? String, inv)
        XCTAssertEqual(invert.first?["method"] as? String, "ddim")
        XCTAssertEqual(invert.first?["precision"] as? String, "fp32")
        XCTAssertNotNil(invert.first?["seconds"] as? Double)
        let edit = try objects(
            try pivot([
                "edit", wide, "--model", model, "--source", "a red circle", "--target", "a blue circle", "--target", "a red square",
                "--method", "ddim", "--steps", "2", "--no-cache", "-o", dir + "/e.png", "--json", "--quiet", "--threads", "2",
            ]))
        XCTAssertEqual(edit.map { $0["path"] as? String }, [dir + "/e-1.png", dir + "/e-2.png"])
        XCTAssertEqual(edit.map { $0["width"] as? Int }, [48, 48])
        XCTAssertEqual(edit.map { $0["height"] as? Int }, [32, 32])
        XCTAssertEqual(edit.map { $0["target"] as? String }, ["a blue circle", "a red square"])
        let generate = try objects(
            try pivot(["generate", "a red circle", "--model", model, "--steps", "2", "-o", dir + "/g.png", "--json", "--quiet"]))
        XCTAssertEqual(generate.first?["kind"] as? String, "image")
        let bad = try pivot(["generate", "a red circle", "--model", model, "-o", dir + "/g.png", "--threads", "0"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("--threads must be between 1 and 1024"), bad.err)
    }

    /// A non-square photo in each new format (WebP, HEIC, AVIF: 48 × 32) through invert and edit: the output
    /// has the photo's size, and an identity edit is the photo as pivot reads it (within 1/255).
    func testNewFormatsThroughInvertAndEdit() throws {
        let formats = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("PivotImageTests/Fixtures/formats").path
        let sd = try StableDiffusion(model: ModelFolder(path: model))
        var settings = EditSettings()
        settings.inversion.method = .ddim
        settings.inversion.steps = 2
        for name in ["source.webp", "source.heic", "source.avif"] {
            let path = formats + "/" + name
            let photo = try RGBImage(contentsOf: path)
            XCTAssertEqual([photo.width, photo.height], [48, 32], name)
            let result = try sd.edit(
                EditRequest(input: .photo(path), source: "a red circle", targets: ["a red circle"], settings: settings, cache: nil))
            let identity = result.images[1]
            XCTAssertEqual([identity.width, identity.height], [48, 32], name)
            let worst = zip(identity.pixels, photo.pixels).map { abs($0 - $1) }.max() ?? 1
            XCTAssertLessThanOrEqual(worst, 1 / 255, name)
            XCTAssertNotEqual(result.record.latents[0].dim(2), result.record.latents[0].dim(3), "\(name): inverted at its aspect")
        }
    }

    /// A batch over a folder takes every supported extension in any case, and a file it cannot read becomes a
    /// failed row that says why (not a silent skip).
    func testBatchTakesEveryFormatAndReportsUnreadableFiles() throws {
        let formats = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("PivotImageTests/Fixtures/formats").path
        let dir = NSTemporaryDirectory() + "pivot-batch-formats-\(UUID().uuidString)"
        let input = dir + "/in", out = dir + "/out"
        try FileManager.default.createDirectory(atPath: input, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: formats + "/source.webp", toPath: input + "/a.WEBP")
        try FileManager.default.copyItem(atPath: formats + "/source.heic", toPath: input + "/b.heic")
        try Data("GIF89a not really".utf8).write(to: URL(fileURLWithPath: input + "/c.gif"))
        try Data("notes".utf8).write(to: URL(fileURLWithPath: input + "/notes.txt"))
        let r = try pivot([
            "batch", input, "--model", model, "-o", out, "--source", "a red circle", "--target", "a blue circle",
            "--method", "ddim", "--steps", "2", "--json", "--quiet",
        ])
        XCTAssertEqual(r.status, 1, "one row failed: \(r.err)")
        let rows = r.out.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            .filter { $0["image"] != nil }
        XCTAssertEqual(Set(rows.compactMap { $0["image"] as? String }), ["a.WEBP", "b.heic", "c.gif"])
        let failed = rows.filter { ($0["status"] as? String) == "error" }
        XCTAssertEqual(failed.compactMap { $0["image"] as? String }, ["c.gif"])
        XCTAssertTrue((failed.first?["message"] as? String)?.contains("GIF") ?? false, "\(failed)")
        XCTAssertEqual(try RGBImage(contentsOf: out + "/a.png").width, 48)
    }

    /// A 16-bit photo's edit is written as 16-bit PNG; an identity edit keeps every 16-bit sample.
    func testSixteenBitPhotoGivesSixteenBitOutput() throws {
        let square = try RGBImage(contentsOf: photo)
        let samples = square.pixels.enumerated().map { UInt16(min(65535, Int(($1 * 65535).rounded()) + ($0 % 7))) }
        let deep = RGBImage(width: square.width, height: square.height, samples16: samples)
        let dir = NSTemporaryDirectory() + "pivot-16-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        try deep.write(dir + "/deep.png")
        let r = try pivot([
            "edit", dir + "/deep.png", "--model", model, "--source", "a red circle", "--target", "a red circle", "--target", "a blue circle",
            "--method", "ddim", "--steps", "2", "--no-cache", "-o", dir + "/out.png", "--quiet",
        ])
        XCTAssertEqual(r.status, 0, r.err)
        let identity = try RGBImage(contentsOf: dir + "/out-1.png"), edited = try RGBImage(contentsOf: dir + "/out-2.png")
        XCTAssertEqual(identity.bitDepth, 16)
        XCTAssertEqual(identity.pixels, deep.pixels)
        XCTAssertEqual(edited.bitDepth, 16)
    }
}
