import ArgumentParser
import Foundation
import Pivot
import PivotLoading
import PivotFormats

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Write a single-file checkpoint (.safetensors or .ckpt) as a diffusers folder.",
        discussion: """
            Every network is loaded strictly first (a missing, unexpected or mis-shaped tensor is an error). The \
            folder gets the configs, scheduler and tokenizer in use (pivot's SD 1.x/2.x defaults unless --config, \
            --tokenizer or --prediction-type say otherwise) and is renamed into place when complete.
            """)

    enum Precision: String, ExpressibleByArgument { case fp16, fp32 }

    @OptionGroup var threadOptions: ThreadOptions
    @OptionGroup var jsonOutput: JSONOutputOption
    @OptionGroup var progressOptions: ProgressOptions

    @Argument(help: "The checkpoint (original SD 1.x/2.x layout).")
    var file: String

    @OptionGroup var singleFile: SingleFileOptions

    @Option(name: .shortAndLong, help: "The diffusers folder to create (must not exist).")
    var output: String

    @Option(name: .long, help: "fp16 or fp32.")
    var dtype: Precision = .fp16

    @Flag(name: .long, help: "No progress output.")
    var quiet = false

    func run() throws {
        let started = Date()
        let folder = try ModelFolder(
            path: file, config: singleFile.config, tokenizer: singleFile.tokenizer,
            predictionType: singleFile.predictionType)
        guard folder.single != nil else { throw ValidationError("\(file) is a folder; pivot convert reads single-file checkpoints") }
        let components = ["text_encoder", "unet", "vae"]
        let progress = JobProgress(
            "convert", style: progressOptions.style(quiet: quiet),
            phases: JobPlans.convert(parameters: try components.map { ($0, try folder.weightStore($0).parameterCount) }))
        try folder.convert(to: output, dtype: dtype == .fp16 ? .F16 : .F32) { component in
            if progress.job.phase != nil { progress.step(1) }  // the previous component is done
            progress.enter(component)
        }
        progress.step(1)
        progress.finish()
        if !quiet { note("wrote \(output)") }
        try jsonOutput.emit(OutputLine("convert", path: output, kind: "model", started: started))
    }
}
