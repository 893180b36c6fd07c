import Foundation
import Pivot
import PivotImage
import XCTest

/// `pivot eval` and the PIE-Bench evaluation against PnPInversion's evaluation code, on the fixture of
/// scripts/fixtures/make_eval_fixtures.py (Fixtures/eval: four 512x512 entries, two methods, one entry of another
/// editing type; expected.json holds the reference's float32 values and the same formulas in float64).
///
/// Tolerances: PSNR and MSE within 1e-5 relative of the reference (measured: 2.4e-7), SSIM within 2e-4 relative
/// (measured: 7.5e-5, all of it float32 rounding in the reference's convolution: against float64 the difference is
/// under 1e-12); every metric within 1e-9 relative of the float64 values.
final class EvalTests: XCTestCase, CLIRunning {
    static let fixture = Bundle.module.path(forResource: "Fixtures/eval", ofType: nil) ?? "missing"
    var fixture: String { Self.fixture }

    static let expected: [String: Any] = {
        guard let data = FileManager.default.contents(atPath: fixture + "/expected.json"),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return [:] }
        return object
    }()

    /// The nine offline metrics on the fixture (crop border), computed once for the tests that read them.
    static let report: Result<PIEBenchReport, Error> = Result {
        let layout = PIEBenchLayout(root: fixture)
        var options = PIEBenchOptions()
        options.metrics = PIEMetric.all
        return try PIEBench.evaluate(layout: layout, options: options)
    }

    /// A JSON value as a Double ("nan", "inf" and "-inf" are strings in expected.json and in `--json`).
    func number(_ value: Any?) -> Double? {
        if let d = value as? Double { return d }
        switch value as? String {
        case "nan": return .nan
        case "inf": return .infinity
        case "-inf": return -.infinity
        default: return nil
        }
    }

    func assertClose(_ got: Double, _ want: Double?, relative: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let want else { return XCTFail("\(what): no expected value", file: file, line: line) }
        if want.isNaN || want.isInfinite {
            XCTAssertTrue(got.isNaN == want.isNaN && (want.isNaN || got == want), "\(what): \(got), expected \(want)", file: file, line: line)
            return
        }
        XCTAssertLessThanOrEqual(abs(got - want), relative * max(abs(want), 1e-12), "\(what): \(got), expected \(want)", file: file, line: line)
    }

    func tolerance(_ metric: PIEMetric) -> Double { metric.measure == .ssim ? 2e-4 : 1e-5 }

    func expectedMethod(_ name: String) throws -> [String: Any] {
        let methods = try XCTUnwrap(Self.expected["methods"] as? [String: Any])
        return try XCTUnwrap(methods[name] as? [String: Any])
    }

    func testMetricsMatchReference() throws {
        let report = try Self.report.get()
        XCTAssertEqual(report.methods.map(\.name), ["alpha", "beta"])
        XCTAssertEqual(report.entries.map(\.key), ["000000000000", "000000000001", "000000000002", "000000000003"])
        XCTAssertEqual(report.skipped, 1)  // editing type 10, whose images do not exist, is never read
        for (m, method) in report.methods.enumerated() {
            let perImage = try XCTUnwrap(try expectedMethod(method.name)["per_image"] as? [String: [String: Any]])
            for (e, entry) in report.entries.enumerated() {
                let want = try XCTUnwrap(perImage[entry.key]?["values"] as? [String: Any])
                let exact = try XCTUnwrap(perImage[entry.key]?["float64"] as? [String: Any])
                for (k, metric) in report.metrics.enumerated() {
                    let got = report.values[e][m][k], what = "\(method.name) \(entry.key) \(metric.name)"
                    assertClose(got, number(want[metric.name]), relative: tolerance(metric), what)
                    assertClose(got, number(exact[metric.name]), relative: 1e-9, what + " (float64)")
                }
            }
            // Means over the entries (NaN left out) and per editing type.
            let mean = try XCTUnwrap(try expectedMethod(method.name)["mean"] as? [String: Any])
            let byType = try XCTUnwrap(try expectedMethod(method.name)["by_type"] as? [String: [String: Any]])
            for (k, metric) in report.metrics.enumerated() {
                assertClose(
                    report.average(method: m, metric: k).mean, number(mean[metric.name]), relative: tolerance(metric),
                    "\(method.name) mean \(metric.name)")
                for type in report.presentEditingTypes {
                    assertClose(
                        report.average(method: m, metric: k, editingType: type).mean, number(byType[type]?[metric.name]),
                        relative: tolerance(metric), "\(method.name) type \(type) mean \(metric.name)")
                }
            }
        }
    }

    func testEmptyBackgroundIsNaNAndIdenticalBackgroundIsInfinite() throws {
        let report = try Self.report.get()
        let full = try XCTUnwrap(report.entries.firstIndex { $0.key == "000000000002" })  // the mask covers every pixel
        for (k, metric) in report.metrics.enumerated() {
            XCTAssertEqual(report.values[full][0][k].isNaN, metric.region == .background, metric.name)
        }
        let psnr = try XCTUnwrap(report.metrics.firstIndex(of: PIEMetric(.psnr, .background)))
        XCTAssertEqual(report.average(method: 0, metric: psnr).count, 3)  // NaN left out of the mean
        let same = try XCTUnwrap(report.entries.firstIndex { $0.key == "000000000001" })  // beta kept the background
        XCTAssertEqual(report.values[same][1][psnr], .infinity)
        XCTAssertEqual(report.average(method: 1, metric: psnr).mean, .infinity)
    }

    func testReflectBorderMatchesNewerTorchmetrics() throws {
        let layout = PIEBenchLayout(root: fixture)
        var options = PIEBenchOptions()
        options.metrics = MetricRegion.allCases.map { PIEMetric(.ssim, $0) }
        options.ssimBorder = .reflect
        options.editingTypes = ["0", "9"]
        let report = try PIEBench.evaluate(
            layout: layout, methods: [PIEBenchMethod(name: "beta", folder: layout.folder(ofMethod: "beta"))], options: options)
        let perImage = try XCTUnwrap(try expectedMethod("beta")["per_image"] as? [String: [String: Any]])
        XCTAssertEqual(report.entries.count, 2)
        for (e, entry) in report.entries.enumerated() {
            for (k, metric) in report.metrics.enumerated() {
                let name = metric.name + "_reflect"
                assertClose(
                    report.values[e][0][k], number((perImage[entry.key]?["values"] as? [String: Any])?[name]), relative: 2e-4, "\(entry.key) \(name)")
                assertClose(
                    report.values[e][0][k], number((perImage[entry.key]?["float64"] as? [String: Any])?[name]), relative: 1e-9,
                    "\(entry.key) \(name) (float64)")
            }
        }
    }

    func testMaskDecoding() throws {
        let masks = try XCTUnwrap(Self.expected["masks"] as? [String: Int])
        for entry in try PIEBench.readMapping(fixture + "/data/mapping_file.json") {
            guard let count = masks[entry.key] else { continue }
            XCTAssertEqual(try PIEBench.decodeMask(entry.mask, width: 512, height: 512).reduce(0) { $0 + Int($1) }, count, entry.key)
        }
        // 4x3: a run clipped at the end, the frame always set, the interior pixels (5, 6) set only by runs.
        XCTAssertEqual(try PIEBench.decodeMask([], width: 4, height: 3), [1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1])
        XCTAssertEqual(try PIEBench.decodeMask([6, 100], width: 4, height: 3), [1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1])
        XCTAssertEqual(try PIEBench.decodeMask([5, 0, 5, 1], width: 4, height: 3), [1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1])
        XCTAssertThrowsError(try PIEBench.decodeMask([12, 1], width: 4, height: 3))  // starts past the last pixel
        XCTAssertThrowsError(try PIEBench.decodeMask([1], width: 4, height: 3))
        XCTAssertThrowsError(try PIEBench.decodeMask([-1, 2], width: 4, height: 3))
    }

    func testMetricNames() throws {
        XCTAssertEqual(PIEMetric.defaults.map(\.name), ["psnr_unedit_part", "mse_unedit_part", "ssim_unedit_part"])
        XCTAssertEqual(try PIEMetric(name: "ssim_edit_part"), PIEMetric(.ssim, .edited))
        XCTAssertEqual(try PIEMetric(name: "lpips_unedit_part"), PIEMetric(.lpips, .background))
        XCTAssertThrowsError(try PIEMetric(name: "structure_distance")) { XCTAssertTrue("\($0)".contains("not supported yet"), "\($0)") }
        XCTAssertThrowsError(try PIEMetric(name: "psnr_background")) { XCTAssertTrue("\($0)".contains("unknown metric"), "\($0)") }
    }

    func testCLIPrintsTablesAndJSON() throws {
        let csv = NSTemporaryDirectory() + "pivot-eval-\(UUID().uuidString).csv"
        defer { try? FileManager.default.removeItem(atPath: csv) }
        let text = try pivot(["eval", fixture, "--csv", csv])
        XCTAssertEqual(text.status, 0, text.err)
        let lines = text.out.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix("method") && $0.contains("psnr_unedit_part") && $0.contains("mse_unedit_part x10^4") }, text.out)
        let alpha = try XCTUnwrap(lines.first { $0.hasPrefix("alpha ") }).split(separator: " ")
        // alpha: 4 entries, background PSNR 37.33, MSE 2.11e-4, SSIM 0.9945 (expected.json's means, rounded).
        XCTAssertEqual(alpha.map(String.init), ["alpha", "4", "37.33", "2.11", "99.45"])
        XCTAssertTrue(lines.contains { $0.hasPrefix("beta ") && $0.contains(" inf ") }, text.out)
        XCTAssertTrue(text.out.contains("by editing type:"))
        let rows = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\r\n")
        XCTAssertEqual(
            rows.first,
            "file_id,alpha|psnr_unedit_part,alpha|mse_unedit_part,alpha|ssim_unedit_part,beta|psnr_unedit_part,beta|mse_unedit_part,beta|ssim_unedit_part"
        )
        XCTAssertEqual(rows.count, 5)
        XCTAssertTrue(rows[3].hasPrefix("000000000002,nan,nan,nan,nan,nan,nan"), String(rows[3]))

        let json = try pivot([
            "eval", fixture, "--json", "--methods", "beta,again=\(fixture)/output/alpha/annotation_images", "--editing-types", "9,6", "--metrics",
            "psnr,ssim_unedit_part",
        ])
        XCTAssertEqual(json.status, 0, json.err)
        XCTAssertEqual(json.out.split(separator: "\n").count, 1)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any])
        XCTAssertEqual(object["metrics"] as? [String], ["psnr", "ssim_unedit_part"])
        XCTAssertEqual(object["entries"] as? Int, 3)
        XCTAssertEqual(object["skipped"] as? Int, 2)
        XCTAssertEqual(object["ssim_border"] as? String, "crop")
        let methods = try XCTUnwrap(object["methods"] as? [[String: Any]])
        XCTAssertEqual(methods.map { $0["name"] as? String }, ["beta", "again"])
        let alphaImages = try XCTUnwrap(try expectedMethod("alpha")["per_image"] as? [String: [String: Any]])
        for image in try XCTUnwrap(methods[1]["images"] as? [[String: Any]]) {
            let key = try XCTUnwrap(image["key"] as? String), values = try XCTUnwrap(image["values"] as? [String: Any])
            let want = try XCTUnwrap(alphaImages[key]?["values"] as? [String: Any])
            assertClose(try XCTUnwrap(number(values["psnr"])), number(want["psnr"]), relative: 1e-5, "again \(key) psnr")
            assertClose(try XCTUnwrap(number(values["ssim_unedit_part"])), number(want["ssim_unedit_part"]), relative: 2e-4, "again \(key) ssim")
        }
        let betaTypes = try XCTUnwrap(methods[0]["by_type"] as? [[String: Any]])
        XCTAssertEqual(betaTypes.map { $0["editing_type_id"] as? String }, ["6", "9"])
        XCTAssertEqual((betaTypes[0]["count"] as? [String: Int])?["ssim_unedit_part"], 1)  // one of the two is NaN
    }

    /// A copy of the fixture to damage, removed after the test.
    func scratchCopy() throws -> String {
        let dir = NSTemporaryDirectory() + "pivot-eval-\(UUID().uuidString)"
        try FileManager.default.copyItem(atPath: fixture, toPath: dir)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    func editMapping(_ dir: String, _ change: (inout [String: [String: Any]]) -> Void) throws {
        let path = dir + "/data/mapping_file.json"
        var mapping = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: [String: Any]])
        change(&mapping)
        try JSONSerialization.data(withJSONObject: mapping).write(to: URL(fileURLWithPath: path))
    }

    func assertOneLineError(_ args: [String], mentions: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try pivot(args)
        XCTAssertEqual(r.status, 1, "\(args): \(r.out) \(r.err)", file: file, line: line)
        XCTAssertTrue(r.err.hasPrefix("pivot: error: "), r.err, file: file, line: line)
        XCTAssertEqual(r.err.split(separator: "\n").count, 1, r.err, file: file, line: line)
        XCTAssertEqual(r.out, "", file: file, line: line)
        for text in mentions { XCTAssertTrue(r.err.contains(text), "\(r.err) does not mention \(text)", file: file, line: line) }
    }

    func testHostileInputsAreOneLineErrors() throws {
        let badJSON = try scratchCopy()
        try Data("{\"000000000000\": {\"image_path\": ".utf8).write(to: URL(fileURLWithPath: badJSON + "/data/mapping_file.json"))
        try assertOneLineError(["eval", badJSON], mentions: ["mapping_file.json", "not valid JSON"])

        let longRLE = try scratchCopy()
        try editMapping(longRLE) { $0["000000000003"]?["mask"] = [10, 5, 512 * 512 + 7, 3] }
        try assertOneLineError(["eval", longRLE], mentions: ["mapping_file.json", "000000000003.mask", "outside the 512x512 image"])

        let oddRLE = try scratchCopy()
        try editMapping(oddRLE) { $0["000000000001"]?["mask"] = [10, 5, 7] }
        try assertOneLineError(["eval", oddRLE], mentions: ["000000000001.mask", "pairs"])

        let typeNumber = try scratchCopy()
        try editMapping(typeNumber) { $0["000000000000"]?["editing_type_id"] = 6 }
        try assertOneLineError(["eval", typeNumber], mentions: ["000000000000.editing_type_id", "not a string"])

        let noPath = try scratchCopy()
        try editMapping(noPath) { $0["000000000001"]?["image_path"] = nil }
        try assertOneLineError(["eval", noPath], mentions: ["000000000001", "image_path"])

        let escape = try scratchCopy()
        try editMapping(escape) { $0["000000000001"]?["image_path"] = "../../etc/passwd" }
        try assertOneLineError(["eval", escape], mentions: ["000000000001.image_path", "relative path"])

        // The entry of type 10 has no images: asking for its type finds the missing source.
        try assertOneLineError(["eval", fixture, "--editing-types", "10"], mentions: ["10_extra/000000000004.png", "no such image"])

        let missing = try scratchCopy()
        let gone = "/output/beta/annotation_images/9_change_style_80/000000000003.png"
        try FileManager.default.removeItem(atPath: missing + gone)
        try assertOneLineError(["eval", missing], mentions: [gone, "000000000003", "no such image"])

        let wrongSize = try scratchCopy()
        let small = "/output/alpha/annotation_images/6_change_attribute_color_40/000000000002.png"
        try RGBImage(width: 256, height: 256, bytes: [UInt8](repeating: 90, count: 256 * 256 * 3)).writePNG(wrongSize + small)
        try assertOneLineError(["eval", wrongSize], mentions: [small, "256x256", "512x512"])

        let notImage = try scratchCopy()
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: notImage + small))
        try assertOneLineError(["eval", notImage], mentions: [small, "000000000002"])

        try assertOneLineError(["eval", fixture, "--clip-model", "/models/clip"], mentions: ["/models/clip", "not a CLIP model folder"])
        try assertOneLineError(["eval", fixture, "--lpips-weights", "/models/lpips.pth"], mentions: ["/models/lpips.pth"])
        try assertOneLineError(
            ["eval", fixture, "--metrics", "psnr,lpips_unedit_part"], mentions: ["--lpips-weights", "lpips_unedit_part"])
        try assertOneLineError(
            ["eval", fixture, "--metrics", "psnr,structure_distance"], mentions: ["--metrics", "structure_distance", "not supported yet"])
        try assertOneLineError(["eval", fixture, "--metrics", "psnr,"], mentions: ["--metrics", "empty item"])
        try assertOneLineError(["eval", fixture, "--methods", "alpha,alpha"], mentions: ["named twice"])
        try assertOneLineError(["eval", "/nonexistent/pie"], mentions: ["/nonexistent/pie/data/mapping_file.json", "no such file"])
        try assertOneLineError(["eval", fixture, "--outputs", fixture + "/data"], mentions: ["holds no method folder"])
    }

    /// The shipped PIE-Bench-format sample (samples/pie-shapes) evaluates, and its ground truth keeps the
    /// background exactly (PSNR inf, MSE 0, SSIM 1) over all eight entries.
    func testShippedSampleGroundTruth() throws {
        let sample = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("samples/pie-shapes").path
        let r = try pivot(["eval", sample, "--json", "--methods", "ground-truth", "--metrics", "psnr_unedit_part,mse_unedit_part,ssim_unedit_part"])
        XCTAssertEqual(r.status, 0, r.err)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        XCTAssertEqual(object["entries"] as? Int, 8)
        let method = try XCTUnwrap((object["methods"] as? [[String: Any]])?.first)
        let mean = try XCTUnwrap(method["mean"] as? [String: Any])
        XCTAssertEqual(number(mean["psnr_unedit_part"]), .infinity)
        XCTAssertEqual(number(mean["mse_unedit_part"]), 0)
        XCTAssertEqual(try XCTUnwrap(number(mean["ssim_unedit_part"])), 1, accuracy: 1e-6)
    }

    /// `--lpips-weights`: the LPIPS of each entry's background (and whole image) through `pivot eval` is the
    /// LPIPS network's own (`LPIPSTests` checks that against torchmetrics) on the reference's masked images, NaN
    /// where the background is empty, and it joins the default metrics.
    func testLPIPSThroughEval() throws {
        let weights = try XCTUnwrap(Bundle.module.path(forResource: "Fixtures/lpips/weights.safetensors", ofType: nil))
        let r = try pivot([
            "eval", fixture, "--json", "--methods", "alpha", "--editing-types", "6", "--lpips-weights", weights, "--metrics",
            "lpips,lpips_unedit_part",
        ])
        XCTAssertEqual(r.status, 0, r.err)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        let images = try XCTUnwrap((object["methods"] as? [[String: Any]])?.first?["images"] as? [[String: Any]])
        XCTAssertEqual(images.count, 2)
        let metric = try LPIPSMetric(weights: weights)
        let mapping = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fixture + "/data/mapping_file.json"))) as? [String: Any])
        for image in images {
            let key = try XCTUnwrap(image["key"] as? String), path = try XCTUnwrap(image["image_path"] as? String)
            let values = try XCTUnwrap(image["values"] as? [String: Any])
            let source = try RGBImage.read(fixture + "/data/annotation_images/" + path, applyOrientation: false)
            let edit = try RGBImage.read(fixture + "/output/alpha/annotation_images/" + path, applyOrientation: false)
            assertClose(try XCTUnwrap(number(values["lpips"])), try metric.distance(source, edit, mask: nil), relative: 1e-6, "\(key) lpips")
            let runs = try XCTUnwrap((mapping[key] as? [String: Any])?["mask"] as? [Int])
            let mask = try PIEBench.decodeMask(runs, width: source.width, height: source.height)
            let background = try metric.distance(source, edit, mask: mask.map { $0 == 0 ? 1 : 0 })
            if mask.contains(0) {
                assertClose(try XCTUnwrap(number(values["lpips_unedit_part"])), background, relative: 1e-6, "\(key) lpips_unedit_part")
            } else {
                XCTAssertTrue(try XCTUnwrap(number(values["lpips_unedit_part"])).isNaN, "\(key): an empty background is NaN")
            }
        }
        let defaults = try pivot(["eval", fixture, "--json", "--methods", "alpha", "--editing-types", "6", "--lpips-weights", weights])
        XCTAssertEqual(defaults.status, 0, defaults.err)
        let names = (try XCTUnwrap(JSONSerialization.jsonObject(with: Data(defaults.out.utf8)) as? [String: Any]))["metrics"] as? [String]
        XCTAssertEqual(names, ["psnr_unedit_part", "mse_unedit_part", "ssim_unedit_part", "lpips_unedit_part"])
    }
}
