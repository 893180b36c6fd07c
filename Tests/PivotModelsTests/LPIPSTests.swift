import Foundation
import Pivot
import PivotFormats
import PivotImage
import PivotModels
import PivotTensor
import XCTest

/// PIE-Bench's LPIPS (`LPIPSMetric`, `LPIPSSqueeze`) against torchmetrics 1.9.0's `_LPIPS(net="squeeze")`, on the
/// fixture of scripts/fixtures/make_lpips_fixtures.py (Fixtures/lpips: random SqueezeNet 1.1 and lin weights in
/// torchmetrics' state-dict names, stored F16; four image pairs, one masked, with the distances torchmetrics
/// computes on them).
///
/// Tolerance: 1e-4 relative of torchmetrics' float32 value (measured: under 1e-6).
final class LPIPSTests: XCTestCase {
    static let fixture = Bundle.module.path(forResource: "Fixtures/lpips", ofType: nil) ?? "missing"
    static var weights: String { fixture + "/weights.safetensors" }

    struct Case {
        let name: String
        let a: RGBImage
        let b: RGBImage
        let mask: [Float]?
        let expected: Double
    }

    static let cases: [Case] = {
        guard let data = FileManager.default.contents(atPath: fixture + "/expected.json"),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let list = object["cases"] as? [[String: Any]]
        else { return [] }
        return list.compactMap { c in
            guard let name = c["name"] as? String, let w = c["width"] as? Int, let h = c["height"] as? Int,
                let a = (c["a"] as? String).flatMap({ Data(base64Encoded: $0) }),
                let b = (c["b"] as? String).flatMap({ Data(base64Encoded: $0) }),
                let expected = c["lpips"] as? Double
            else { return nil }
            let mask = (c["mask"] as? String).flatMap { Data(base64Encoded: $0) }.map { $0.map { Float($0) } }
            return Case(
                name: name, a: RGBImage(width: w, height: h, bytes: [UInt8](a)),
                b: RGBImage(width: w, height: h, bytes: [UInt8](b)), mask: mask, expected: expected)
        }
    }()

    static let metric: Result<LPIPSMetric, Error> = Result { try LPIPSMetric(weights: weights) }

    /// Every stored tensor of the fixture, as fp32.
    func fixtureTensors() throws -> [(name: String, tensor: Tensor)] {
        let file = try SafeTensorsFile(path: Self.weights)
        return try file.names.sorted().map { ($0, try file.floatTensor($0)) }
    }

    func temporaryFile(_ name: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lpips-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir.appendingPathComponent(name).path
    }

    /// The message of the error `LPIPSMetric(weights:)` throws for a fixture edited by `edit`.
    func loadError(_ edit: (inout [(name: String, tensor: Tensor)]) -> Void) throws -> String {
        var tensors = try fixtureTensors()
        edit(&tensors)
        let path = try temporaryFile("edited.safetensors")
        try SafeTensorsWriter.write(tensors, dtype: .F16, to: path)
        do {
            _ = try LPIPSMetric(weights: path)
        } catch {
            return "\(error)"
        }
        XCTFail("loading \(path) succeeded")
        return ""
    }

    func testGoldenDistancesMatchTorchmetrics() throws {
        XCTAssertEqual(Self.cases.count, 4, "fixture cases")
        let metric = try Self.metric.get()
        var worst = 0.0
        for c in Self.cases {
            let d = try metric.distance(c.a, c.b, mask: c.mask)
            let rel = abs(d - c.expected) / abs(c.expected)
            worst = max(worst, rel)
            XCTAssertLessThan(rel, 1e-4, "\(c.name): \(d) vs torchmetrics \(c.expected)")
        }
        print("LPIPS worst relative difference from torchmetrics: \(worst)")
    }

    func testIdenticalImagesAreZeroAndDistanceIsSymmetric() throws {
        let metric = try Self.metric.get()
        let c = try XCTUnwrap(Self.cases.first)
        XCTAssertEqual(try metric.distance(c.a, c.a, mask: nil), 0)
        let ab = try metric.distance(c.a, c.b, mask: nil)
        let ba = try metric.distance(c.b, c.a, mask: nil)
        XCTAssertEqual(ab, ba, accuracy: 1e-7 * ab)
        // A per-sample (HWC) mask is the per-pixel mask repeated over the channels.
        let masked = try XCTUnwrap(Self.cases.first { $0.mask != nil })
        let perPixel = try XCTUnwrap(masked.mask)
        let perSample = perPixel.flatMap { [$0, $0, $0] }
        XCTAssertEqual(
            try metric.distance(masked.a, masked.b, mask: perSample), try metric.distance(masked.a, masked.b, mask: perPixel))
    }

    /// torchvision's `squeezenet1_1` names (`features.N…`, with its classifier) beside torchmetrics' own lin file
    /// (a legacy torch pickle whose seven tensors are views into one storage) give the same network.
    func testTorchvisionCheckpointWithTorchmetricsLinFile() throws {
        let features = try fixtureTensors().filter { $0.name.hasPrefix("net.slices.") }.map { entry in
            // net.slices.S.I.rest -> features.I.rest
            let parts = entry.name.split(separator: ".", maxSplits: 3)
            return (name: "features." + String(parts[3]), tensor: entry.tensor)
        }
        let classifier = (name: "classifier.1.weight", tensor: Tensor(zeros: [1000, 512, 1, 1]))
        let path = try temporaryFile("squeezenet1_1.safetensors")
        try SafeTensorsWriter.write(features + [classifier], to: path)
        let metric = try LPIPSMetric(weightFiles: [path, Self.fixture + "/lins.pth"])
        for c in Self.cases {
            let d = try metric.distance(c.a, c.b, mask: c.mask)
            XCTAssertEqual(d, try Self.metric.get().distance(c.a, c.b, mask: c.mask), accuracy: 1e-7 * d, c.name)
        }
    }

    func testMissingTensorIsAOneLineErrorNamingIt() throws {
        let message = try loadError { $0.removeAll { $0.name == "net.slices.2.6.expand3x3.weight" } }
        XCTAssertTrue(message.contains("missing tensor 'net.slices.2.6.expand3x3.weight'"), message)
        XCTAssertFalse(message.contains("\n"), message)
        let lin = try loadError { $0.removeAll { $0.name == "lin6.model.1.weight" } }
        XCTAssertTrue(lin.contains("missing tensor 'lin6.model.1.weight'"), lin)
    }

    func testWrongShapeIsAOneLineErrorNamingIt() throws {
        let message = try loadError { tensors in
            let i = tensors.firstIndex { $0.name == "lin3.model.1.weight" }!
            tensors[i].tensor = Tensor(zeros: [1, 383, 1, 1])
        }
        XCTAssertTrue(
            message.contains("tensor 'lin3.model.1.weight' has shape [1, 383, 1, 1], expected [1, 384, 1, 1]"), message)
        XCTAssertFalse(message.contains("\n"), message)
    }

    func testUnexpectedTensorIsAnError() throws {
        let message = try loadError { $0.append((name: "net.slices.7.13.squeeze.weight", tensor: Tensor(zeros: [1]))) }
        XCTAssertTrue(message.contains("unexpected tensor 'net.slices.7.13.squeeze.weight'"), message)
    }

    func testMissingFileIsAnError() {
        XCTAssertThrowsError(try LPIPSMetric(weights: "/nonexistent/lpips.safetensors")) { error in
            XCTAssertTrue("\(error)".contains("/nonexistent/lpips.safetensors"), "\(error)")
        }
    }

    func testImageSizeLimits() throws {
        let metric = try Self.metric.get()
        func image(_ w: Int, _ h: Int, _ v: Float) -> RGBImage {
            RGBImage(width: w, height: h, pixels: (0..<(w * h * 3)).map { Float(($0 * 7) % 11) / 10 * v })
        }
        // 17 is the smallest side torchmetrics accepts (16 leaves the last max-pool an empty input).
        XCTAssertNoThrow(try metric.distance(image(17, 17, 1), image(17, 17, 0.5), mask: nil))
        XCTAssertThrowsError(try metric.distance(image(16, 40, 1), image(16, 40, 0.5), mask: nil))
        XCTAssertThrowsError(try metric.distance(image(20, 20, 1), image(21, 20, 1), mask: nil))
        XCTAssertThrowsError(try metric.distance(image(20, 20, 1), image(20, 20, 1), mask: [1, 0]))
    }

    /// `nn.MaxPool2d(3, 2, ceil_mode=True)`'s output sizes for inputs 1...11 (torch: error, 1, 1, 2, 2, 3, 3, 4, 4,
    /// 5, 5) and a window clipped at the edge.
    func testCeilModeMaxPool() {
        let torchSizes = [0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
        for (i, expected) in torchSizes.enumerated() {
            XCTAssertEqual(maxPoolOutputSize(i + 1, kernel: 3, stride: 2, ceilMode: true), expected, "size \(i + 1)")
        }
        XCTAssertEqual(maxPoolOutputSize(4, kernel: 3, stride: 2, ceilMode: false), 1)
        let x = Tensor(shape: [1, 1, 4, 4], values: (0..<16).map { Float($0 == 5 ? 100 : $0) })
        let y = maxPool2d(x, kernel: 3, stride: 2, ceilMode: true)
        XCTAssertEqual(y.shape, [1, 1, 2, 2])
        XCTAssertEqual(y.scalars, [100, 11, 14, 15])
    }
}
