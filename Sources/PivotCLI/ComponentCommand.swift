import ArgumentParser
import Foundation
import Pivot
import PivotLoading

extension Component: ExpressibleByArgument {}

struct ComponentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "component",
        abstract: "Run one network on tensors from a safetensors file (for parity checks).",
        discussion: """
            text-encoder: input_ids [B, 77] (int32/int64) -> last_hidden_state [B, 77, D]
            unet:         sample [B, C, H, W], timestep (scalar or [B]), encoder_hidden_states [B, 77, D] -> out
            vae-encode:   image [B, 3, H, W] in [-1, 1] -> mean [B, 4, H/f, W/f] (posterior mean, unscaled)
            vae-decode:   latent [B, 4, h, w] (unscaled) -> image [B, 3, f*h, f*w]
            unet-vjp:     unet's inputs + grad_out [B, C, H, W] -> out, grad_encoder_hidden_states, grad_sample
            text-encoder-vjp: input_ids + grad_out [B, 77, D] -> last_hidden_state, grad_inputs_embeds
            """)

    @Argument(help: "text-encoder, unet, vae-encode, vae-decode, unet-vjp or text-encoder-vjp.")
    var name: Component

    @OptionGroup(title: "Model") var modelOptions: ModelOptions
    @OptionGroup var precisionOptions: PrecisionOptions
    @OptionGroup var threadOptions: ThreadOptions
    var model: String { modelOptions.model }

    @Option(name: .customLong("in"), help: "Input safetensors file.")
    var input: String

    @Option(name: .customLong("out"), help: "Output safetensors file (written atomically).")
    var output: String

    func validate() throws {
        if URL(fileURLWithPath: input).standardizedFileURL == URL(fileURLWithPath: output).standardizedFileURL {
            throw ValidationError("--out must differ from --in")
        }
    }

    func run() throws {
        try ComponentRunner.run(
            name, model: modelOptions.folder(), input: input, output: output,
            precision: precisionOptions.plan())
    }
}
