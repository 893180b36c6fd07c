import ArgumentParser
import Foundation
import Pivot
import PivotLoading
import PivotFormats
import PivotTensor

struct EncodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode",
        abstract: "Write the text encoder's conditioning for prompts: last_hidden_state [B, 77, D], as the UNet sees it.",
        discussion: """
            Textual-inversion tokens given with --embedding/--embeddings work inside the prompts; a multi-vector \
            token expands to all its vectors as diffusers does. The file (safetensors, written atomically) holds \
            last_hidden_state and input_ids (int64 [B, 77]), with the prompts and embeddings as metadata.
            """)

    @Argument(help: "Prompts (one batch entry each).")
    var prompts: [String]

    @OptionGroup(title: "Model") var modelOptions: ModelOptions
    @OptionGroup var precisionOptions: PrecisionOptions
    @OptionGroup var threadOptions: ThreadOptions
    @OptionGroup var jsonOutput: JSONOutputOption
    var model: String { modelOptions.model }

    @OptionGroup(title: "Textual inversion") var embeddingOptions: EmbeddingOptions

    @Option(name: [.long, .customShort("o")], help: "Output .safetensors file.")
    var out: String

    @Flag(name: .long, help: "No notes on standard error.")
    var quiet = false

    func validate() throws {
        guard !prompts.isEmpty else { throw ValidationError("give at least one prompt") }
        guard out.lowercased().hasSuffix(".safetensors") else { throw ValidationError("--out must end in .safetensors") }
    }

    func run() throws {
        let started = Date()
        let sd = try StableDiffusion(model: modelOptions.folder())
        sd.precision = try precisionOptions.plan()
        try embeddingOptions.apply(to: sd, quiet: quiet)
        releaseFP32WeightsIfBF16Only(sd, withGradients: false)
        var states: [Tensor] = [], ids: [Int64] = []
        for p in prompts {
            let (embedding, tokens) = try sd.encode(p)
            if tokens.truncated { note("warning: prompt truncated to \(sd.tokenizer.maxLength) tokens; dropped: \"\(tokens.droppedText)\"") }
            states.append(embedding)
            ids += tokens.ids.map(Int64.init)
        }
        let d = states[0].dim(2), t = states[0].dim(1)
        let stacked = concatBatch(states)  // [prompts, T, D]
        try SafeTensorsWriter.write(
            [("last_hidden_state", stacked)], int64: [("input_ids", [states.count, t], ids)],
            metadata: [
                "prompts": prompts.joined(separator: "\n"), "embeddings": sd.embeddingsDescription,
                "model": model, "pivot_version": pivotVersion,
            ],
            to: out)
        if !quiet { note("wrote \(out): last_hidden_state [\(states.count), \(t), \(d)]") }
        var line = OutputLine("encode", path: out, kind: "embeddings", started: started)
        line.precision = sd.precision.description
        try jsonOutput.emit(line)
    }
}
