import Foundation
import Pivot
import PivotDiffusion
import PivotLoading
import XCTest

/// Cooperative cancellation of the library's edit (what `pivot serve`'s Cancel uses): whatever the progress
/// callback throws stops the edit at that step and is rethrown; a half-made inversion is not cached.
final class EditCancellationTests: XCTestCase {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    var model: String { root + "/samples/models/tiny-random" }
    var photo: String { root + "/samples/shapes/red-circle.png" }

    struct Stop: Error {}

    func testAThrowingCallbackStopsTheEdit() throws {
        let sd = try StableDiffusion(model: try ModelFolder(path: model))
        let cacheDir = NSTemporaryDirectory() + "pivot-cancel-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: cacheDir) }
        let method = InversionMethod.direct
        var settings = EditSettings()
        settings.inversion.method = method
        settings.inversion.steps = 4
        let request = EditRequest(
            input: .photo(photo), source: "a red circle", targets: ["a blue circle"], settings: settings,
            cache: InversionCache(directory: cacheDir))
        // stopped during the inversion, after three events: nothing more is reported, nothing is cached
        func cached() -> Set<String> {
            Set((try? FileManager.default.contentsOfDirectory(atPath: cacheDir))?.filter { $0.hasSuffix(".safetensors") } ?? [])
        }
        let before = cached()
        var events = 0
        XCTAssertThrowsError(
            try sd.edit(request) { _ in
                events += 1
                if events == 3 { throw Stop() }
            }
        ) { XCTAssertTrue($0 is Stop, "\(method): \($0)") }
        XCTAssertEqual(events, 3, "\(method)")
        XCTAssertEqual(cached(), before, "\(method): a cancelled inversion was cached")
        // stopped while rendering: the inversion (finished) is cached, the render stops at that step
        var steps = 0
        XCTAssertThrowsError(
            try sd.edit(request) { event in
                if case .step(let step, _) = event {
                    steps = step
                    if step == 2 { throw Stop() }
                }
            }
        ) { XCTAssertTrue($0 is Stop, "\(method): \($0)") }
        XCTAssertEqual(steps, 2, "\(method)")
        XCTAssertEqual(cached().count, before.count + 1, "\(method): the finished inversion was not cached")
    }
}
