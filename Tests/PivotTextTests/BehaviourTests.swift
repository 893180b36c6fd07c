import Foundation
import PivotText
import XCTest

/// Tokens, truncation, special-token splitting, added tokens and lengths on hand-picked prompts.
final class BehaviourTests: XCTestCase {
    /// A tiny-vocabulary folder with the given tokenizer_config.json (and no special_tokens_map.json).
    func tinyFolder(config: [String: Any]) throws -> String {
        let folder = try Fixtures.temporaryFolder(self)
        for file in ["vocab.json", "merges.txt"] {
            try FileManager.default.copyItem(atPath: Fixtures.path("tiny-tokenizer/\(file)"), toPath: folder + "/" + file)
        }
        try Fixtures.write(config, to: folder + "/tokenizer_config.json")
        return folder
    }

    func testTokensAndIdsOfASimplePrompt() throws {
        let result = try CLIPTokenizer.builtin().encode("a photo of a cat!!!")
        XCTAssertEqual(result.tokens, ["<|startoftext|>", "a</w>", "photo</w>", "of</w>", "a</w>", "cat</w>", "!!!</w>", "<|endoftext|>"])
        XCTAssertEqual(Array(result.ids.prefix(8)), [49406, 320, 1125, 539, 320, 2368, 995, 49407])
        XCTAssertEqual(Array(result.ids.dropFirst(8)), Array(repeating: 49407, count: 69))
        XCTAssertFalse(result.truncated)
        XCTAssertEqual(result.droppedText, "")
    }

    func testEmptyPromptIsBosEosPadding() throws {
        let tokenizer = try CLIPTokenizer.builtin()
        for prompt in ["", "   ", "\t\n"] {
            let result = tokenizer.encode(prompt)
            XCTAssertEqual(result.ids, [49406] + Array(repeating: 49407, count: 76))
            XCTAssertEqual(result.tokens, ["<|startoftext|>", "<|endoftext|>"])
        }
    }

    func testTruncationKeeps75TokensAndNamesTheDroppedWords() throws {
        let tokenizer = try CLIPTokenizer.builtin()
        let fits = tokenizer.encode(String(repeating: "word ", count: 74) + "last")
        XCTAssertFalse(fits.truncated)
        XCTAssertEqual(fits.tokens.count, 77)
        XCTAssertEqual(fits.ids[75], tokenizer.id(for: "last</w>"))
        let over = tokenizer.encode(String(repeating: "word ", count: 75) + "last")
        XCTAssertTrue(over.truncated)
        XCTAssertEqual(over.droppedText, "last")
        XCTAssertEqual(over.ids.last, 49407)
        XCTAssertEqual(over.tokens.count, 77)
        let long = tokenizer.encode(String(repeating: "a cat ", count: 40))
        XCTAssertTrue(long.truncated)
        XCTAssertEqual(long.droppedText, "cat a cat a cat")
        XCTAssertEqual(long.ids.count, 77)
    }

    /// A cut inside a character's bytes decodes to U+FFFD, as transformers' lossy decoding does.
    func testDroppedTextCutInsideACharacter() throws {
        let sd1 = Fixtures.expectedCase("sd1")
        let cut = sd1.dropped.indices.filter { sd1.dropped[$0].unicodeScalars.contains("\u{FFFD}") }
        XCTAssertFalse(cut.isEmpty)
        let tokenizer = try CLIPTokenizer.builtin()
        for i in cut { XCTAssertEqual(tokenizer.encode(Fixtures.prompts[i]).droppedText, sd1.dropped[i]) }
    }

    /// SD 1.x: `<|startoftext|>` is matched in normalized text (any case), `<|endoftext|>` only as
    /// written, because the plain pad string `<|endoftext|>` comes last.
    func testSpecialTokenStringsSplitTheText() throws {
        let tokenizer = try CLIPTokenizer.builtin()
        let a = tokenizer.id(for: "a</w>")!, b = tokenizer.id(for: "b</w>")!
        XCTAssertEqual(Array(tokenizer.encode("a<|endoftext|>b").ids.prefix(5)), [49406, a, 49407, b, 49407])
        XCTAssertEqual(Array(tokenizer.encode("<|STARTOFTEXT|>a").ids.prefix(4)), [49406, 49406, a, 49407])
        let upper = tokenizer.encode("<|ENDOFTEXT|>")
        XCTAssertEqual(upper.tokens, ["<|startoftext|>", "<", "|</w>", "endof", "text</w>", "|", "></w>", "<|endoftext|>"])
    }

    /// SD 2.x pads with `!`, which is then an added token: `!!!` is three ids 0, not one BPE token.
    func testPadTokenExclamationSplitsRuns() throws {
        let sd2 = try CLIPTokenizer(folder: tinyFolder(config: ["pad_token": "!"]))
        let sd1 = try CLIPTokenizer(folder: tinyFolder(config: [:]))
        XCTAssertEqual(sd2.pad, 0)
        XCTAssertEqual(sd1.pad, sd1.eos)
        let wow2 = sd2.encode("wow!!!"), wow1 = sd1.encode("wow!!!")
        XCTAssertEqual(Array(wow2.tokens.suffix(4)), ["!", "!", "!", "<|endoftext|>"])
        XCTAssertEqual(wow1.tokens.suffix(2).first, "!!!</w>")
        XCTAssertEqual(Array(wow2.ids.suffix(77 - wow2.tokens.count)), Array(repeating: 0, count: 77 - wow2.tokens.count))
    }

    func testAddTokenAppendsAndRefusesTokensAlreadyPresent() throws {
        let tokenizer = try CLIPTokenizer.builtin()
        XCTAssertThrowsError(try tokenizer.addToken("cat</w>")) { XCTAssertEqual($0 as? TokenizerError, .tokenAlreadyPresent("cat</w>", id: 2368)) }
        XCTAssertThrowsError(try tokenizer.addToken("<|endoftext|>")) {
            XCTAssertEqual($0 as? TokenizerError, .tokenAlreadyPresent("<|endoftext|>", id: 49407))
        }
        XCTAssertThrowsError(try tokenizer.addToken("")) { XCTAssertEqual($0 as? TokenizerError, .emptyToken) }
        XCTAssertEqual(tokenizer.vocabularySize, 49408)
        XCTAssertEqual(try tokenizer.addToken("<my-style>"), 49408)
        XCTAssertEqual(try tokenizer.addToken("<other>"), 49409)
        XCTAssertThrowsError(try tokenizer.addToken("<my-style>")) {
            XCTAssertEqual($0 as? TokenizerError, .tokenAlreadyPresent("<my-style>", id: 49408))
        }
        XCTAssertEqual(tokenizer.vocabularySize, 49410)
        XCTAssertEqual(tokenizer.encode("a <MY-STYLE> photo").tokens, ["<|startoftext|>", "a</w>", "<my-style>", "photo</w>", "<|endoftext|>"])
        XCTAssertEqual(try CLIPTokenizer.builtin().vocabularySize, 49408, "a new tokenizer does not see tokens added to another")
    }

    func testLookups() throws {
        let tokenizer = try CLIPTokenizer.builtin()
        XCTAssertEqual(tokenizer.id(for: "!"), 0)
        XCTAssertEqual(tokenizer.id(for: "<|startoftext|>"), 49406)
        XCTAssertNil(tokenizer.id(for: "not-a-token"))
        XCTAssertEqual(tokenizer.token(for: 320), "a</w>")
        XCTAssertNil(tokenizer.token(for: 49408))
        XCTAssertEqual(tokenizer.decode([320, 2368, 995]), "a cat !!!")
        XCTAssertEqual(tokenizer.contentIds("a cat"), [320, 2368])
    }

    func testMaxLengthComesFromTheConfig() throws {
        let short = try CLIPTokenizer(folder: tinyFolder(config: ["model_max_length": 8]))
        XCTAssertEqual(short.maxLength, 8)
        let result = short.encode("one two three four five six seven eight")
        XCTAssertEqual(result.ids.count, 8)
        XCTAssertTrue(result.truncated)
        XCTAssertEqual(result.ids.last, short.eos)
        let unlimited = try CLIPTokenizer(folder: tinyFolder(config: ["model_max_length": 1e30]))
        XCTAssertEqual(unlimited.maxLength, 77)
        XCTAssertEqual(try CLIPTokenizer(folder: tinyFolder(config: [:])).maxLength, 77)
    }
}
