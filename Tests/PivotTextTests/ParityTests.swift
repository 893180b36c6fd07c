import Foundation
import PivotText
import XCTest

/// Ids, truncation and dropped text identical to transformers 5.23's CLIPTokenizer on every prompt
/// of Fixtures/prompts.json, for the real CLIP vocabulary and a tiny one, in both folder layouts.
final class ParityTests: XCTestCase {
    func testFixtureHasEnoughPrompts() {
        XCTAssertGreaterThanOrEqual(Fixtures.prompts.count, 300)
        XCTAssertGreaterThan(Fixtures.expectedCase("sd1").truncated.filter { $0 }.count, 20)
    }

    /// (a) The built-in tokenizer is SD 1.x's: real vocabulary, padding with `<|endoftext|>`.
    func testBuiltinMatchesTransformersSD1() throws {
        let tokenizer = try CLIPTokenizer.builtin()
        XCTAssertEqual(tokenizer.vocabularySize, 49408)
        XCTAssertEqual([tokenizer.bos, tokenizer.eos, tokenizer.pad], [49406, 49407, 49407])
        assertParity(tokenizer, Fixtures.expectedCase("sd1"), prompts: Fixtures.prompts, "builtin")
    }

    /// (a) The real vocabulary from vocab.json + merges.txt with the SD 1.x hub configs.
    func testRealVocabularyClassicLayoutSD1() throws {
        let folder = try Fixtures.temporaryFolder(self)
        try Fixtures.writeRealClassic(to: folder)
        try Fixtures.copyFiles(from: "configs/sd1", to: folder)
        assertParity(try CLIPTokenizer(folder: folder), Fixtures.expectedCase("sd1"), prompts: Fixtures.prompts, "sd1 classic")
    }

    /// (b) SD 2.x: special_tokens_map.json says pad is `!` (id 0), which also splits prompts.
    func testRealVocabularyClassicLayoutSD2() throws {
        let folder = try Fixtures.temporaryFolder(self)
        try Fixtures.writeRealClassic(to: folder)
        try Fixtures.copyFiles(from: "configs/sd2", to: folder)
        let tokenizer = try CLIPTokenizer(folder: folder)
        XCTAssertEqual(tokenizer.pad, 0)
        assertParity(tokenizer, Fixtures.expectedCase("sd2"), prompts: Fixtures.prompts, "sd2 classic")
    }

    /// (a) and (b) from transformers 5's tokenizer.json layout, with the flags it saves.
    func testRealVocabularyTokenizerJSONLayout() throws {
        let sd1 = try Fixtures.temporaryFolder(self)
        try Fixtures.writeRealV5(to: sd1, flagsFrom: "tiny-tokenizer-v5")
        assertParity(try CLIPTokenizer(folder: sd1), Fixtures.expectedCase("sd1"), prompts: Fixtures.prompts, "sd1 tokenizer.json")
        let sd2 = try Fixtures.temporaryFolder(self)
        try Fixtures.writeRealV5(to: sd2, flagsFrom: "variants/sd2-style-v5")
        assertParity(try CLIPTokenizer(folder: sd2), Fixtures.expectedCase("sd2"), prompts: Fixtures.prompts, "sd2 tokenizer.json")
    }

    /// (c) The tiny vocabulary (1000 ids, no characters for the UTF-8 lead bytes F0–F4, so 4-byte
    /// characters meet `<|endoftext|>` as the unknown token), in both committed layouts.
    func testTinyVocabularyBothLayouts() throws {
        let classic = try CLIPTokenizer(folder: Fixtures.path("tiny-tokenizer"))
        let v5 = try CLIPTokenizer(folder: Fixtures.path("tiny-tokenizer-v5"))
        XCTAssertEqual(classic.vocabularySize, 1000)
        assertParity(classic, Fixtures.expectedCase("tiny"), prompts: Fixtures.prompts, "tiny classic")
        assertParity(v5, Fixtures.expectedCase("tiny"), prompts: Fixtures.prompts, "tiny tokenizer.json")
        for prompt in Fixtures.prompts {
            XCTAssertEqual(classic.encode(prompt), v5.encode(prompt), prompt.debugDescription)
        }
    }

    /// How transformers resolves special tokens and their flags: special_tokens_map.json overriding
    /// the config (legacy) or ignored (added_tokens_decoder), `normalized` defaults, the later of two
    /// names for one token winning, added_tokens.json, lstrip/rstrip/single_word, no config at all.
    func testConfigVariantsOnTinyVocabulary() throws {
        let names = [
            "sd2-style", "decoder", "decoder-normalized", "config-only", "defaults", "flags", "named-objects",
            "added-tokens-json", "sd2-style-v5",
        ]
        let prompts = Fixtures.expected.variantPrompts
        XCTAssertGreaterThan(prompts.count, 50)
        for name in names {
            let folder: String
            if FileManager.default.fileExists(atPath: Fixtures.path("variants/\(name)/tokenizer.json")) {
                folder = Fixtures.path("variants/\(name)")
            } else {
                folder = try Fixtures.temporaryFolder(self)
                try Fixtures.copyFiles(from: "variants/\(name)", to: folder)
                for file in ["vocab.json", "merges.txt"] {
                    try FileManager.default.copyItem(
                        atPath: Fixtures.path("tiny-tokenizer/\(file)"),
                        toPath: (folder as NSString).appendingPathComponent(file))
                }
            }
            assertParity(try CLIPTokenizer(folder: folder), Fixtures.expectedCase("variant:\(name)"), prompts: prompts, name)
        }
    }

    /// Tokens added after loading (textual inversion) split prompts as transformers' `add_tokens` does:
    /// matched in normalized text, so `<Dog>` also matches `<dog>` and `<DOG>`.
    func testAddedTokensMatchTransformers() throws {
        let expected = Fixtures.expectedCase("added")
        let tokenizer = try CLIPTokenizer.builtin()
        let ids = try expected.tokens!.map { try tokenizer.addToken($0) }
        XCTAssertEqual(ids, expected.tokenIds!)
        for (token, id) in zip(expected.tokens!, ids) {
            XCTAssertEqual(tokenizer.id(for: token), id)
            XCTAssertEqual(tokenizer.token(for: id), token)
        }
        assertParity(tokenizer, expected, prompts: expected.prompts!, "added")
    }
}
