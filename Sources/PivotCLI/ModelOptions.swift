import ArgumentParser
import Foundation
import Pivot
import PivotLoading
import PivotDiffusion

extension SchedulerConfig.PredictionType: ExpressibleByArgument {}

/// `--model` and what a single-file checkpoint may need besides it.
struct ModelOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "A diffusers model folder, or a single-file checkpoint (.safetensors or .ckpt, original SD 1.x/2.x layout).",
            valueName: "DIR|FILE"))
    var model: String

    @OptionGroup var singleFile: SingleFileOptions

    func folder() throws -> ModelFolder {
        try ModelFolder(
            path: model, config: singleFile.config, tokenizer: singleFile.tokenizer,
            predictionType: singleFile.predictionType)
    }
}

/// What a single-file checkpoint may need besides the file (`--model FILE`, `pivot convert`).
struct SingleFileOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "For a single file: a diffusers folder whose configs, tokenizer and scheduler to use instead of pivot's SD 1.x/2.x defaults.",
            valueName: "DIR"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp("For a single file: a tokenizer folder instead of the built-in CLIP tokenizer.", valueName: "DIR"))
    var tokenizer: String?

    @Option(name: .long, help: "For a single file: epsilon, v_prediction or sample (default: epsilon for SD 1.x, v_prediction for SD 2.x).")
    var predictionType: SchedulerConfig.PredictionType?
}
