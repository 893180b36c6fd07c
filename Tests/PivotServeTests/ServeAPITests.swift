// The JSON API over real sockets: every endpoint, the queue's order, cancellation, the event stream, and the
// inversion cache reused by a second edit of the same photo.
import Foundation
import PivotImage
import XCTest

final class ServeAPITests: XCTestCase {
    nonisolated(unsafe) static var shared: RunningServer?

    override class func tearDown() {
        shared?.stop()
        shared = nil
    }

    /// One server for the class (the model loads once).
    func server() throws -> RunningServer {
        if let s = Self.shared { return s }
        let s = try RunningServer()
        Self.shared = s
        return s
    }

    /// The page comes whole from the server: its controls are there and nothing is fetched from elsewhere.
    func testPageIsOneSelfContainedFile() throws {
        let s = try server()
        let page = try request(s, "GET", "/")
        XCTAssertEqual(page.status, 200)
        XCTAssertTrue(page.headers["content-type"]?.hasPrefix("text/html") ?? false)
        for id in ["photo-input", "source", "target", "method", "cross-replace", "self-replace", "reweights", "blend", "run", "cancel", "history"] {
            XCTAssertTrue(page.text.contains("id=\"\(id)\""), "the page has no #\(id)")
        }
        for external in ["src=\"http", "href=\"http", "url(http", "@import", "//cdn"] {
            XCTAssertFalse(page.text.contains(external), "the page loads \(external)…")
        }
        XCTAssertTrue(page.headers["content-security-policy"]?.contains("default-src 'none'") ?? false)
    }

    /// `GET /api/tokens`: the target prompt's words as the tokenizer splits them; a prompt an edit cannot
    /// take is a 400 with the library's message.
    func testTokensSplitsThePromptIntoWords() throws {
        let s = try server()
        let reply = try request(s, "GET", "/api/tokens?prompt=a%20blue%20circle")
        XCTAssertEqual(reply.status, 200)
        let words = try XCTUnwrap(reply.json["words"] as? [[String: Any]])
        XCTAssertEqual(words.map { $0["word"] as? String }, ["a", "blue", "circle"])
        for w in words { XCTAssertFalse((w["tokens"] as? [String] ?? []).isEmpty) }
        let long = String(repeating: "circle ", count: 100).addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        let tooLong = try request(s, "GET", "/api/tokens?prompt=\(long)")
        XCTAssertEqual(tooLong.status, 400)
        XCTAssertTrue(tooLong.error?.contains("edits need at most") ?? false, tooLong.text)
    }

    /// POST → 202 and an id; the job runs to done; its outputs are PNGs at the photo's resolution (the
    /// reconstruction beside the edit) and the attention maps; a second edit of the same photo with other
    /// sliders reuses the cached inversion; the list holds both, oldest first.
    func testEditRunsAndASecondEditReusesTheInversion() throws {
        let s = try server()
        let first = try post(s, .edit())
        XCTAssertEqual(first.status, 202, first.text)
        let id = try XCTUnwrap(first.json["id"] as? String)
        let done = try poll(s, id, until: isFinal)
        XCTAssertEqual(done["status"] as? String, "done", "\(done)")
        XCTAssertEqual(done["cached_inversion"] as? Bool, false)
        let outputs = try XCTUnwrap(done["outputs"] as? [String])
        XCTAssertEqual(outputs.count, 1)
        let edit = try decodePNG(try request(s, "GET", outputs[0]).body)
        XCTAssertEqual([edit.width, edit.height], [128, 64], "the 64×64 photo beside its edit")
        let mapsURL = try XCTUnwrap(done["attention_maps"] as? String)
        let maps = try request(s, "GET", mapsURL)
        XCTAssertEqual(maps.headers["content-type"], "image/png")
        XCTAssertGreaterThan(try decodePNG(maps.body).width, 0)

        let second = try post(s, .edit(extra: [("cross_replace", "0.5"), ("self_replace", "0.2"), ("reweight", "blue=2")]))
        XCTAssertEqual(second.status, 202, second.text)
        let id2 = try XCTUnwrap(second.json["id"] as? String)
        let again = try poll(s, id2, until: isFinal)
        XCTAssertEqual(again["status"] as? String, "done", "\(again)")
        XCTAssertEqual(again["cached_inversion"] as? Bool, true, "the second edit inverted the photo again")
        XCTAssertEqual((again["settings"] as? [String: [String]])?["reweight"], ["blue=2"])

        let list = try XCTUnwrap(try request(s, "GET", "/api/edits").json["edits"] as? [[String: Any]])
        let ids = list.compactMap { $0["id"] as? String }
        XCTAssertEqual(ids.filter { [id, id2].contains($0) }, [id, id2])
    }

    /// `GET /api/edits/{id}/events`: server-sent events with the progress (phase, step, total, eta_s) and a
    /// last `end` event with the final status, after which the stream closes.
    func testEventStreamDeliversProgressAndTheEnd() throws {
        let s = try server()
        let reply = try post(s, .edit(target: "a green circle on a white background", steps: 4))
        let id = try XCTUnwrap(reply.json["id"] as? String)
        let stream = try request(s, "GET", "/api/edits/\(id)/events")
        XCTAssertEqual(stream.status, 200)
        XCTAssertEqual(stream.headers["content-type"], "text/event-stream")
        var names: [String] = [], jobs: [[String: Any]] = []
        for block in stream.text.components(separatedBy: "\n\n") where !block.isEmpty {
            let lines = block.split(separator: "\n")
            names.append(lines.first { $0.hasPrefix("event: ") }.map { String($0.dropFirst(7)) } ?? "")
            let data = lines.first { $0.hasPrefix("data: ") }.map { Data($0.dropFirst(6).utf8) } ?? Data()
            jobs.append((try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:])
        }
        XCTAssertEqual(names.last, "end")
        XCTAssertEqual(jobs.last?["status"] as? String, "done")
        let progress = jobs.dropLast().compactMap { $0["progress"] as? [String: Any] }
        let phases = Set(progress.compactMap { $0["phase"] as? String })
        XCTAssertTrue(phases.contains("edit"), "phases seen: \(phases)")
        let editSteps = progress.filter { $0["phase"] as? String == "edit" }
        XCTAssertEqual(editSteps.last?["total"] as? Int, 4)
        XCTAssertTrue(progress.contains { $0["eta_s"] is Double }, "no ETA in \(progress)")
        XCTAssertTrue(names.dropLast().allSatisfy { $0 == "update" })
    }

    /// Null-text inversion's progress carries its inner iterations and their loss.
    func testNullTextProgressCarriesTheLoss() throws {
        let s = try server()
        let reply = try post(s, .edit(steps: 2, extra: [("inner_steps", "2")]).replacing("method", "null-text"))
        let id = try XCTUnwrap(reply.json["id"] as? String, reply.text)
        let stream = try request(s, "GET", "/api/edits/\(id)/events").text
        let updates = stream.components(separatedBy: "\n").filter { $0.hasPrefix("data: ") }.compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.dropFirst(6).utf8))) as? [String: Any]
        }
        let nullText = updates.compactMap { $0["progress"] as? [String: Any] }.filter { $0["phase"] as? String == "null-text" }
        XCTAssertFalse(nullText.isEmpty, "no null-text progress in \(stream.prefix(2000))")
        XCTAssertTrue(nullText.allSatisfy { $0["loss"] is Double }, "\(nullText)")
        XCTAssertEqual(updates.last?["status"] as? String, "done")
    }

    /// DELETE: a queued job is cancelled at once and never runs; a running one stops at its next step; a
    /// finished one is a 409.
    func testCancelQueuedAndRunningJobs() throws {
        let s = try server()
        let long = try post(s, .edit(target: "a purple circle on a white background", steps: 400))
        let queued = try post(s, .edit(target: "a yellow circle on a white background"))
        let longID = try XCTUnwrap(long.json["id"] as? String), queuedID = try XCTUnwrap(queued.json["id"] as? String)
        XCTAssertEqual(try request(s, "GET", "/api/edits/\(queuedID)").json["status"] as? String, "queued", "two jobs ran at once")
        let cancelQueued = try request(s, "DELETE", "/api/edits/\(queuedID)")
        XCTAssertEqual(cancelQueued.status, 200)
        XCTAssertEqual(cancelQueued.json["status"] as? String, "cancelled")
        let running = try poll(s, longID) { ($0["progress"] as? [String: Any])?["step"] as? Int ?? 0 > 0 || isFinal($0) }
        XCTAssertEqual(running["status"] as? String, "running")
        let cancelRunning = try request(s, "DELETE", "/api/edits/\(longID)")
        XCTAssertEqual(cancelRunning.status, 202)
        let stopped = try poll(s, longID, timeout: 30, until: isFinal)
        XCTAssertEqual(stopped["status"] as? String, "cancelled")
        XCTAssertEqual(stopped["outputs"] as? [String], [])
        let never = try request(s, "GET", "/api/edits/\(queuedID)").json
        XCTAssertEqual(never["status"] as? String, "cancelled")
        XCTAssertFalse(FileManager.default.fileExists(atPath: s.server.workdir + "/jobs/\(queuedID)/edit.png"))
        XCTAssertEqual(try request(s, "DELETE", "/api/edits/\(longID)").status, 409)
    }

    /// Unknown and malformed ids are 404 on every route that takes one.
    func testUnknownJobsAre404() throws {
        let s = try server()
        let unknown = String(repeating: "0", count: 32)
        for (method, path) in [
            ("GET", "/api/edits/\(unknown)"), ("DELETE", "/api/edits/\(unknown)"), ("GET", "/api/edits/\(unknown)/events"),
            ("GET", "/api/edits/not-an-id"), ("GET", "/files/jobs/\(unknown)/edit.png"),
        ] {
            let reply = try request(s, method, path)
            XCTAssertEqual(reply.status, 404, "\(method) \(path)")
            XCTAssertNotNil(reply.error, "\(method) \(path) has no JSON error")
        }
    }
}
