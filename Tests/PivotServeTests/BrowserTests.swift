// The page in a real browser: headless Chromium (Debian's `chromium`) driven over the DevTools protocol on a
// pipe (`--remote-debugging-pipe`: fd 3 in, fd 4 out, NUL-separated JSON) against the real `pivot serve` on
// the demo model: it uploads the sample photo, writes the prompts, runs the edit and finds the result image.
// With PIVOT_SCREENSHOT_DIR set it saves serve-before.png and serve-after.png there (scripts/serve_screenshots.sh).
import Foundation
import XCTest

final class BrowserTests: XCTestCase {
    func testEditInHeadlessChromium() throws {
        guard
            let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].first(where: {
                FileManager.default.isExecutableFile(atPath: $0)
            })
        else {
            throw XCTSkip("chromium is not installed (Debian: apt-get install chromium; scripts/setup.sh installs it)")
        }
        guard let pivot = pivotBinary() else { throw XCTSkip("the pivot binary is not built beside the tests") }
        let screenshots = ProcessInfo.processInfo.environment["PIVOT_SCREENSHOT_DIR"]
        let steps = screenshots == nil ? 4 : 20
        let scratch = NSTemporaryDirectory() + "pivot-browser-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }

        // pivot serve on a free port; its first line of output is the URL
        let serve = Process()
        serve.executableURL = URL(fileURLWithPath: pivot)
        serve.arguments = [
            "serve", "--model", repositoryRoot + "/samples/models/shapes", "--port", "0", "--workdir", scratch + "/work", "--no-cache",
            "--quiet",
        ]
        let out = Pipe()
        serve.standardOutput = out
        try serve.run()
        defer { serve.terminate() }
        let url = try XCTUnwrap(firstLine(out.fileHandleForReading, timeout: 60), "pivot serve printed no URL")
        XCTAssertTrue(url.hasPrefix("http://127.0.0.1:"), url)

        let browser = try CDPBrowser(chromium: chromium, profile: scratch + "/profile")
        defer { browser.close() }
        let page = try browser.openPage()
        _ = try browser.send("Emulation.setDeviceMetricsOverride", ["width": 1280, "height": 980, "deviceScaleFactor": 1, "mobile": false], page)
        _ = try browser.send("Page.navigate", ["url": url], page)
        try browser.waitFor("document.readyState === 'complete' && !!document.getElementById('run')", page)

        // the photo through the file input, as a user picking it would
        let document = try browser.send("DOM.getDocument", [:], page)
        let root = try XCTUnwrap((document["root"] as? [String: Any])?["nodeId"] as? Int)
        let input = try XCTUnwrap(try browser.send("DOM.querySelector", ["nodeId": root, "selector": "#photo-input"], page)["nodeId"] as? Int)
        _ = try browser.send("DOM.setFileInputFiles", ["nodeId": input, "files": [samplePhoto]], page)
        try browser.waitFor("document.getElementById('photo-info').textContent.includes('64×64')", page)
        _ = try browser.evaluate(
            """
            (() => {
              const set = (id, v) => { const e = document.getElementById(id); e.value = v; e.dispatchEvent(new Event('input')); };
              set('source', 'a red circle on a white background');
              set('target', 'a blue circle on a white background');
              document.getElementById('method').value = 'direct';
              set('steps', '\(steps)');
              return true;
            })()
            """, page)
        // one reweight slider per word of the target, as the tokenizer splits it
        try browser.waitFor("document.querySelectorAll('#reweights input').length === 7", page)
        let words = try browser.evaluate("[...document.querySelectorAll('#reweights input')].map(e => e.dataset.word).join(' ')", page)
        XCTAssertEqual(words as? String, "a blue circle on a white background")
        if let dir = screenshots { try browser.screenshot(page, to: dir + "/serve-before.png") }

        _ = try browser.evaluate("document.getElementById('run').click(), true", page)
        let loaded = """
            (() => { const i = document.getElementById('result');
              return i && i.complete && i.naturalWidth > 0 && !document.getElementById('result-figure').hidden
                ? i.naturalWidth + 'x' + i.naturalHeight + ' ' + i.getAttribute('src') : ''; })()
            """
        try browser.waitFor(loaded, page, timeout: 150)
        let result = try XCTUnwrap(try browser.evaluate(loaded, page) as? String)
        XCTAssertTrue(result.hasPrefix("128x64 /files/jobs/"), "the side-by-side at the photo's resolution: \(result)")
        XCTAssertTrue(result.hasSuffix("/edit.png"), result)
        try browser.waitFor("document.getElementById('maps').naturalWidth > 0", page)
        try browser.waitFor("document.querySelectorAll('#history .card img').length === 1", page)
        let status = try browser.evaluate("document.getElementById('status').textContent", page) as? String
        XCTAssertTrue(status?.hasPrefix("done") ?? false, status ?? "")
        XCTAssertEqual(try browser.evaluate("document.getElementById('error').textContent", page) as? String, "")
        if let dir = screenshots { try browser.screenshot(page, to: dir + "/serve-after.png") }
    }
}

/// Headless Chromium spoken to over the DevTools protocol on a pipe.
final class CDPBrowser {
    private let pid: pid_t
    private let toBrowser: Int32, fromBrowser: Int32
    private var nextID = 0
    private var pending: [UInt8] = []

    struct ProtocolError: Error, CustomStringConvertible {
        var description: String
    }

    init(chromium: String, profile: String) throws {
        var into: [Int32] = [0, 0], outOf: [Int32] = [0, 0]
        guard pipe(&into) == 0, pipe(&outOf) == 0 else { throw ProtocolError(description: "pipe failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, into[0], 3)
        posix_spawn_file_actions_adddup2(&actions, outOf[1], 4)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let args = [
            chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--user-data-dir=\(profile)",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-dev-shm-usage", "about:blank",
        ]
        var cArgs = args.map { strdup($0) } + [nil]
        defer { for a in cArgs { free(a) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, chromium, &actions, nil, &cArgs, environ)
        closeDescriptor(into[0])
        closeDescriptor(outOf[1])
        guard rc == 0 else { throw ProtocolError(description: "could not start \(chromium): \(rc)") }
        pid = child
        toBrowser = into[1]
        fromBrowser = outOf[0]
    }

    /// Sends a command (to the browser, or to a page's session) and returns its result.
    @discardableResult
    func send(_ method: String, _ params: [String: Any], _ session: String? = nil, timeout: TimeInterval = 30) throws -> [String: Any] {
        nextID += 1
        let id = nextID
        var message: [String: Any] = ["id": id, "method": method, "params": params]
        if let session { message["sessionId"] = session }
        var bytes = Array(try JSONSerialization.data(withJSONObject: message))
        bytes.append(0)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { write(toBrowser, $0.baseAddress, $0.count) }
            guard n > 0 else { throw ProtocolError(description: "chromium closed its pipe") }
            sent += n
        }
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            guard let reply = try nextMessage(until: end) else { break }
            guard reply["id"] as? Int == id else { continue }  // events and other replies
            if let error = reply["error"] as? [String: Any] { throw ProtocolError(description: "\(method): \(error)") }
            return reply["result"] as? [String: Any] ?? [:]
        }
        throw ProtocolError(description: "\(method): no reply in \(timeout) s")
    }

    private func nextMessage(until end: Date) throws -> [String: Any]? {
        while true {
            if let nul = pending.firstIndex(of: 0) {
                let message = Array(pending[..<nul])
                pending.removeSubrange(...nul)
                return (try JSONSerialization.jsonObject(with: Data(message))) as? [String: Any] ?? [:]
            }
            let left = Int32(max(end.timeIntervalSinceNow, 0) * 1000)
            guard left > 0 else { return nil }
            var p = pollfd(fd: fromBrowser, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, left) > 0 else { return nil }
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            let n = read(fromBrowser, &buffer, buffer.count)
            guard n > 0 else { throw ProtocolError(description: "chromium closed its pipe") }
            pending += buffer[0..<n]
        }
    }

    /// A new page target and the session attached to it.
    func openPage() throws -> String {
        let target = try send("Target.createTarget", ["url": "about:blank"])
        let targetID = try XCTUnwrap(target["targetId"] as? String)
        let attached = try send("Target.attachToTarget", ["targetId": targetID, "flatten": true])
        return try XCTUnwrap(attached["sessionId"] as? String)
    }

    /// The value of a JavaScript expression in the page.
    func evaluate(_ expression: String, _ session: String) throws -> Any? {
        let reply = try send("Runtime.evaluate", ["expression": expression, "returnByValue": true, "awaitPromise": true], session)
        if let exception = reply["exceptionDetails"] { throw ProtocolError(description: "\(expression): \(exception)") }
        return (reply["result"] as? [String: Any])?["value"]
    }

    /// Polls `condition` until it is true (or fails after `timeout` seconds).
    func waitFor(_ condition: String, _ session: String, timeout: TimeInterval = 30) throws {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if let value = try evaluate("!!(\(condition))", session) as? Bool, value { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        let error = (try? evaluate("document.getElementById('error') ? document.getElementById('error').textContent : ''", session)) ?? ""
        throw ProtocolError(description: "timed out waiting for \(condition) (page error: \(error))")
    }

    /// A PNG of the page's viewport.
    func screenshot(_ session: String, to path: String) throws {
        let shot = try send("Page.captureScreenshot", ["format": "png"], session)
        let data = try XCTUnwrap(Data(base64Encoded: shot["data"] as? String ?? ""))
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try data.write(to: URL(fileURLWithPath: path))
    }

    func close() {
        _ = try? send("Browser.close", [:], timeout: 5)
        closeDescriptor(toBrowser)
        closeDescriptor(fromBrowser)
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }
}

/// `close(2)` (the class's own `close()` shadows it inside the class).
private func closeDescriptor(_ fd: Int32) { _ = Glibc.close(fd) }
