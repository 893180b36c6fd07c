import Foundation
import PivotText
import XCTest

/// Expected results of one tokenizer configuration, from transformers (scripts/fixtures/make_tokenizer_fixtures.py).
struct ExpectedCase: Decodable {
    var pad: Int
    var bos: Int
    var eos: Int
    var vocabularySize: Int
    /// Unpadded ids per prompt (BOS ... EOS); the rest up to 77 is `pad`.
    var ids: [[Int]]
    var truncated: [Bool]
    var dropped: [String]
    /// Only in the `added` case: the tokens added, their ids, and the prompts.
    var tokens: [String]?
    var tokenIds: [Int]?
    var prompts: [String]?
}

struct ExpectedFile: Decodable {
    var variantPrompts: [String]
    var cases: [String: ExpectedCase]
}

enum Fixtures {
    static let root: URL = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!

    static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

    static let prompts: [String] = try! JSONDecoder().decode([String].self, from: Data(contentsOf: root.appendingPathComponent("prompts.json")))

    static let expected: ExpectedFile = try! JSONDecoder().decode(
        ExpectedFile.self, from: Data(contentsOf: root.appendingPathComponent("expected.json")))

    static func expectedCase(_ name: String) -> ExpectedCase { expected.cases[name]! }

    /// The shipped merges (the test bundle does not hold PivotText's resources).
    static let mergesResource = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/PivotText/Resources/clip-merges.txt")

    /// A fresh temporary folder, removed when the test ends.
    static func temporaryFolder(_ test: XCTestCase) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pivot-text-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir.path
    }

    /// Copies every file of a fixture folder into `folder`.
    static func copyFiles(from fixture: String, to folder: String) throws {
        let source = path(fixture)
        for name in try FileManager.default.contentsOfDirectory(atPath: source) {
            try FileManager.default.copyItem(
                atPath: (source as NSString).appendingPathComponent(name),
                toPath: (folder as NSString).appendingPathComponent(name))
        }
    }

    static func write(_ object: Any, to file: String) throws {
        let data = try JSONSerialization.data(withJSONObject: object)
        try data.write(to: URL(fileURLWithPath: file))
    }

    /// The real CLIP vocabulary as vocab.json + merges.txt (classic layout) in `folder`, taken from
    /// the built-in tokenizer and the shipped merges.
    static func writeRealClassic(to folder: String) throws {
        let builtin = try CLIPTokenizer.builtin()
        var vocab: [String: Int] = [:]
        for id in 0..<builtin.vocabularySize { vocab[builtin.token(for: id)!] = id }
        try write(vocab, to: (folder as NSString).appendingPathComponent("vocab.json"))
        let merges = try String(contentsOf: mergesResource, encoding: .utf8)
        try ("#version: 0.2\n" + merges).write(toFile: (folder as NSString).appendingPathComponent("merges.txt"), atomically: true, encoding: .utf8)
    }

    /// The real CLIP vocabulary as transformers 5 saves it (tokenizer.json with model.vocab, model.merges
    /// as pairs, and `added_tokens` with the flags of `flagsFrom`'s tokenizer.json).
    static func writeRealV5(to folder: String, flagsFrom fixture: String) throws {
        let builtin = try CLIPTokenizer.builtin()
        var vocab: [String: Int] = [:]
        for id in 0..<builtin.vocabularySize { vocab[builtin.token(for: id)!] = id }
        let merges = try String(contentsOf: mergesResource, encoding: .utf8)
            .split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        let tiny = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path(fixture + "/tokenizer.json")))) as! [String: Any]
        let added = (tiny["added_tokens"] as! [[String: Any]]).map { entry -> [String: Any] in
            var e = entry
            e["id"] = vocab[entry["content"] as! String]!
            return e
        }
        let json: [String: Any] = [
            "version": "1.0", "added_tokens": added,
            "model": ["type": "BPE", "vocab": vocab, "merges": merges, "end_of_word_suffix": "</w>"],
        ]
        try write(json, to: (folder as NSString).appendingPathComponent("tokenizer.json"))
        try FileManager.default.copyItem(
            atPath: path(fixture + "/tokenizer_config.json"),
            toPath: (folder as NSString).appendingPathComponent("tokenizer_config.json"))
    }
}

/// Asserts that `tokenizer` gives transformers' ids, truncation flags and dropped text on every prompt;
/// reports the first few differences in full. Returns the number of prompts compared.
@discardableResult
func assertParity(
    _ tokenizer: CLIPTokenizer, _ expected: ExpectedCase, prompts: [String], _ label: String,
    file: StaticString = #filePath, line: UInt = #line
) -> Int {
    XCTAssertEqual(prompts.count, expected.ids.count, "\(label): fixture size", file: file, line: line)
    XCTAssertEqual(tokenizer.pad, expected.pad, "\(label): pad id", file: file, line: line)
    XCTAssertEqual(tokenizer.bos, expected.bos, "\(label): bos id", file: file, line: line)
    XCTAssertEqual(tokenizer.eos, expected.eos, "\(label): eos id", file: file, line: line)
    XCTAssertEqual(tokenizer.vocabularySize, expected.vocabularySize, "\(label): vocabulary size", file: file, line: line)
    var failures = 0
    for (i, prompt) in prompts.enumerated() {
        let got = tokenizer.encode(prompt)
        let want = expected.ids[i] + Array(repeating: expected.pad, count: 77 - expected.ids[i].count)
        if got.ids != want || got.truncated != expected.truncated[i] || got.droppedText != expected.dropped[i] {
            failures += 1
            if failures <= 5 {
                XCTFail(
                    "\(label) prompt \(i) \(prompt.debugDescription):\n got  \(got.ids) \(got.truncated) \(got.droppedText.debugDescription)\n want \(want) \(expected.truncated[i]) \(expected.dropped[i].debugDescription)",
                    file: file, line: line)
            }
        }
        XCTAssertEqual(got.ids.count, 77, file: file, line: line)
        XCTAssertEqual(got.tokens.count, min(expected.ids[i].count, 77), file: file, line: line)
    }
    XCTAssertEqual(failures, 0, "\(label): \(failures) of \(prompts.count) prompts differ", file: file, line: line)
    return prompts.count
}
