import ArgumentParser
import Foundation
import Pivot
import PivotLoading
import PivotIO
import PivotText

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Show the CLIP tokens and the padded ids of prompts, as the text encoder receives them.",
        discussion: "Prompts given as arguments come first, then those of --file. A prompt over the length "
            + "limit is truncated, with a warning on standard error naming the dropped words.")

    @OptionGroup(title: "Model") var modelOptions: ModelOptions
    var model: String { modelOptions.model }

    @OptionGroup var threadOptions: ThreadOptions

    @Flag(name: .long, help: "Print one JSON object per prompt per line.")
    var json = false

    @Option(name: .long, help: "A file of prompts, one per line ('-' for standard input); every line counts, an empty line is the empty prompt.")
    var file: String?

    @Option(name: .long, help: "Refuse a --file of more prompts than this (default 100000; the file is checked before it is read).")
    var maxLines: Int?

    @Argument(help: "Prompts to tokenize.")
    var prompts: [String] = []

    func validate() throws {
        if prompts.isEmpty && file == nil { throw ValidationError("Give prompts as arguments or with --file.") }
        if let maxLines, maxLines < 1 { throw ValidationError("--max-lines must be at least 1.") }
    }

    func run() throws {
        let tokenizer = try modelOptions.folder().tokenizer()
        let all = try prompts + (file.map(readPrompts) ?? [])
        for prompt in all {
            let result = tokenizer.encode(prompt)
            if result.truncated {
                note("warning: prompt truncated to \(tokenizer.maxLength) tokens; dropped: \"\(result.droppedText)\"")
            }
            if json {
                try printJSON(
                    TokenizedJSON(
                        prompt: prompt, ids: result.ids, tokens: result.tokens,
                        truncated: result.truncated, dropped: result.droppedText))
            } else {
                print("prompt: \(prompt.debugDescription)")
                print("tokens: \(result.tokens.joined(separator: " ")) (\(result.tokens.count) of \(tokenizer.maxLength))")
                print("ids: \(result.ids.map(String.init).joined(separator: " "))")
                print("")
            }
        }
    }

    /// The file's lines (LF or CRLF); a final line break ends the last line rather than adding an empty one.
    private func readPrompts(_ path: String) throws -> [String] {
        var limits = TextLimits.prompts
        if let maxLines { limits.maxLines = maxLines }
        let file = path == "-" ? "/dev/stdin" : path
        if path != "-" && !FileManager.default.fileExists(atPath: path) { throw LoadError.missingFile(path) }
        let data = try readLimitedText(file, limits: limits) { LoadError.unreadable(path, reason: $0) }.data
        var lines = [UInt8](data).split(separator: 0x0A, omittingEmptySubsequences: false).map { line in
            String(decoding: line.last == 0x0D ? line.dropLast() : line, as: UTF8.self)
        }
        if data.last == 0x0A || data.isEmpty { lines.removeLast() }
        return lines
    }
}

/// One `--json` line.
private struct TokenizedJSON: Encodable {
    let prompt: String
    let ids: [Int]
    let tokens: [String]
    let truncated: Bool
    let dropped: String
}
