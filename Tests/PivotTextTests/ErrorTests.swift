import Foundation
import PivotText
import XCTest

/// Every loading error is a TokenizerError whose one-line description names the file.
final class ErrorTests: XCTestCase {
    /// A folder holding the tiny vocabulary, with `files` written over it (nil removes a file).
    func folder(_ files: [String: String?], tiny: Bool = true) throws -> String {
        let folder = try Fixtures.temporaryFolder(self)
        if tiny { try Fixtures.copyFiles(from: "tiny-tokenizer", to: folder) }
        for (name, content) in files {
            let path = folder + "/" + name
            try? FileManager.default.removeItem(atPath: path)
            if let content { try content.write(toFile: path, atomically: true, encoding: .utf8) }
        }
        return folder
    }

    func assertLoadError(
        _ path: String, _ expected: TokenizerError? = nil, mentions file: String,
        line: UInt = #line
    ) {
        XCTAssertThrowsError(try CLIPTokenizer(folder: path), line: line) { error in
            guard let error = error as? TokenizerError else { return XCTFail("not a TokenizerError: \(error)", line: line) }
            if let expected { XCTAssertEqual(error, expected, line: line) }
            let text = error.description
            XCTAssertTrue(text.contains(file), "\(text) does not name \(file)", line: line)
            XCTAssertFalse(text.contains("\n"), "\(text) is not one line", line: line)
        }
    }

    func testMissingFolderAndNotAFolder() throws {
        let missing = try Fixtures.temporaryFolder(self) + "/nope"
        assertLoadError(missing, .missingFolder(missing), mentions: missing)
        let file = try folder([:]) + "/vocab.json"
        assertLoadError(file, .notAFolder(file), mentions: file)
    }

    func testMissingFiles() throws {
        let empty = try folder([:], tiny: false)
        assertLoadError(
            empty, .missingFile(empty + "/vocab.json", why: "a tokenizer folder needs tokenizer.json, or vocab.json and merges.txt"),
            mentions: "vocab.json")
        assertLoadError(try folder(["merges.txt": nil]), mentions: "merges.txt")
        assertLoadError(try folder(["vocab.json": nil]), mentions: "vocab.json")
    }

    func testMalformedVocabulary() throws {
        assertLoadError(try folder(["vocab.json": "{\"a\": 1,"]), mentions: "vocab.json: malformed JSON")
        assertLoadError(try folder(["vocab.json": "[\"a\"]"]), mentions: "vocab.json: vocabulary is not an object")
        assertLoadError(try folder(["vocab.json": "{\"a\": \"one\"}"]), mentions: "vocab.json: id of token \"a\"")
        assertLoadError(try folder(["vocab.json": "{\"a\": -1}"]), mentions: "vocab.json")
        assertLoadError(try folder(["vocab.json": "{\"a\": true}"]), mentions: "vocab.json")
    }

    func testMergesLinesThatAreNotPairs() throws {
        let f1 = try folder(["merges.txt": "#version: 0.2\ni n\nt h e\n"])
        assertLoadError(f1, .badMergeLine(file: f1 + "/merges.txt", line: 3, text: "t h e"), mentions: "merges.txt: line 3")
        let f2 = try folder(["merges.txt": "i n\n\nt h\n"])
        assertLoadError(f2, .badMergeLine(file: f2 + "/merges.txt", line: 2, text: ""), mentions: "merges.txt: line 2")
        assertLoadError(try folder(["merges.txt": "in\n"]), mentions: "merges.txt: line 1")
        assertLoadError(try folder(["merges.txt": "i  n\n"]), mentions: "merges.txt: line 1")
        let f3 = try folder(["merges.txt": "#version: 0.2\ni n\nq z\n"])
        assertLoadError(f3, .mergeNotInVocabulary(file: f3 + "/merges.txt", line: 3, token: "qz"), mentions: "merges.txt: merge 3")
        assertLoadError(try folder(["merges.txt": "i \u{4E00}\n"]), mentions: "merges.txt: merge 1 uses \"\u{4E00}\"")
    }

    func testMalformedTokenizerJSON() throws {
        assertLoadError(try folder(["tokenizer.json": "{"]), mentions: "tokenizer.json: malformed JSON")
        assertLoadError(try folder(["tokenizer.json": "[]"]), mentions: "tokenizer.json: expected a JSON object")
        assertLoadError(try folder(["tokenizer.json": "{}"]), mentions: "tokenizer.json: no model object")
        assertLoadError(
            try folder(["tokenizer.json": "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}"]), mentions: "tokenizer.json: model type Unigram")
        assertLoadError(try folder(["tokenizer.json": "{\"model\": {\"type\": \"BPE\"}}"]), mentions: "tokenizer.json: model has no vocab")
        let pairs = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a b c\"]}}"
        assertLoadError(try folder(["tokenizer.json": pairs]), mentions: "tokenizer.json: line 1 is not a merge pair")
        let missing = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [[\"a\", \"b\"]]}}"
        assertLoadError(try folder(["tokenizer.json": missing]), mentions: "tokenizer.json: merge 1 uses \"ab\"")
        let added = "{\"model\": {\"vocab\": {\"a\": 0}}, \"added_tokens\": [{\"content\": \"x\"}]}"
        assertLoadError(try folder(["tokenizer.json": added]), mentions: "tokenizer.json: an added_tokens entry has no integer id")
    }

    func testMalformedConfigs() throws {
        assertLoadError(try folder(["tokenizer_config.json": "{,}"]), mentions: "tokenizer_config.json: malformed JSON")
        assertLoadError(try folder(["tokenizer_config.json": "{\"bos_token\": 5}"]), mentions: "tokenizer_config.json: bos_token is neither")
        assertLoadError(try folder(["tokenizer_config.json": "{\"model_max_length\": \"77\"}"]), mentions: "tokenizer_config.json: model_max_length")
        assertLoadError(
            try folder(["tokenizer_config.json": "{\"added_tokens_decoder\": {\"x\": {}}}"]),
            mentions: "tokenizer_config.json: added_tokens_decoder entry")
        assertLoadError(
            try folder(["tokenizer_config.json": "{\"added_tokens_decoder\": {\"5\": {\"lstrip\": true}}}"]),
            mentions: "tokenizer_config.json: an added token has no content")
        assertLoadError(
            try folder(["tokenizer_config.json": "{\"pad_token\": null}", "special_tokens_map.json": nil]),
            mentions: "tokenizer_config.json: the tokenizer has no pad_token")
        assertLoadError(try folder(["special_tokens_map.json": "{\"pad_token\": [1]}"]), mentions: "special_tokens_map.json: pad_token")
        assertLoadError(try folder(["special_tokens_map.json": "nope"]), mentions: "special_tokens_map.json: malformed JSON")
        assertLoadError(try folder(["added_tokens.json": "[1]"]), mentions: "added_tokens.json")
        assertLoadError(try folder(["added_tokens.json": "{\"<x>\": \"1\"}"]), mentions: "added_tokens.json: id of <x>")
    }

    func testDescriptionsAreOneLine() {
        let errors: [TokenizerError] = [
            .missingFolder("/m/tokenizer"), .notAFolder("/m/f"), .missingFile("/m/vocab.json", why: "w"), .unreadable("/m/x"),
            .malformedJSON(file: "/m/v.json", reason: "r"), .malformed(file: "/m/v.json", reason: "r"),
            .badMergeLine(file: "/m/merges.txt", line: 2, text: "a\tb\nc \"d\""),
            .mergeNotInVocabulary(file: "/m/merges.txt", line: 1, token: String(repeating: "x", count: 200)),
            .tokenAlreadyPresent("a\nb", id: 3), .emptyToken,
        ]
        for error in errors {
            XCTAssertFalse(error.description.contains("\n"), error.description)
            XCTAssertFalse(error.description.isEmpty)
        }
        XCTAssertEqual(
            TokenizerError.badMergeLine(file: "m", line: 2, text: "a\tb").description,
            "m: line 2 is not a merge pair (two tokens separated by one space): \"a\\tb\"")
    }
}
