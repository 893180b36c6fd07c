import Foundation
import PivotLoading
import PivotFormats
import PivotModels
import PivotTensor

/// The networks a component run or a benchmark can address.
public enum Component: String, CaseIterable, Sendable {
    case textEncoder = "text-encoder"
    case unet
    case vaeEncode = "vae-encode"
    case vaeDecode = "vae-decode"
    case unetVJP = "unet-vjp"
    case textEncoderVJP = "text-encoder-vjp"

    /// The model-folder subdirectory holding this network.
    public var folder: String {
        switch self {
        case .textEncoder, .textEncoderVJP: return "text_encoder"
        case .unet, .unetVJP: return "unet"
        case .vaeEncode, .vaeDecode: return "vae"
        }
    }
}

/// Runs one network on tensors read from a safetensors file and writes its outputs to another, so that
/// anyone can compare pivot with a reference implementation tensor by tensor. All tensors are fp32
/// except `input_ids` (int32/int64) and `timestep` (any numeric dtype, scalar or [B]).
public enum ComponentRunner {
    /// Reads `input`, runs `component` of `model`, writes `output` atomically.
    /// `precision` sets the networks' arithmetic (`unet-vjp` and `text-encoder-vjp` run in its gradient precision).
    public static func run(
        _ component: Component, model: ModelFolder, input: String, output: String,
        precision: PrecisionPlan = .fp32
    ) throws {
        let file = try SafeTensorsFile(path: input)
        var result: [(name: String, tensor: Tensor)]
        switch component {
        case .textEncoder:
            let encoder = try model.loadTextEncoder()
            encoder.precision = precision.networks
            let (ids, batch) = try readIDs(file, length: encoder.config.maxPositionEmbeddings)
            result = [("last_hidden_state", try encoder(ids: ids, batch: batch))]
        case .textEncoderVJP:
            let encoder = try model.loadTextEncoder()
            encoder.precision = precision.networks
            let (ids, batch) = try readIDs(file, length: encoder.config.maxPositionEmbeddings)
            let r = try encoder.vjp(ids: ids, batch: batch, gradOut: try file.floatTensor(try present(file, "grad_out")))
            result = [("last_hidden_state", r.out), ("grad_inputs_embeds", r.gradEmbeddings)]
        case .unet:
            let unet = try model.loadUNet()
            unet.precision = precision.networks
            let (sample, steps, context) = try unetInputs(file)
            result = [("out", try unet(sample, timesteps: steps, context: context))]
        case .unetVJP:
            let unet = try model.loadUNet()
            unet.precision = precision.networks
            let (sample, steps, context) = try unetInputs(file)
            let r = try unet.vjp(
                sample, timesteps: steps, context: context,
                gradOut: try file.floatTensor(try present(file, "grad_out")))
            result = [("out", r.out), ("grad_encoder_hidden_states", r.gradContext), ("grad_sample", r.gradSample)]
        case .vaeEncode:
            let vae = try model.loadVAE()
            vae.precision = precision.networks
            result = [("mean", try vae.encode(try input4D(file, "image")))]
        case .vaeDecode:
            let vae = try model.loadVAE()
            vae.precision = precision.networks
            result = [("image", try vae.decode(try input4D(file, "latent")))]
        }
        try SafeTensorsWriter.write(result, to: output)
    }

    /// `sample`, `timestep` (scalar or [B], any numeric dtype) and `encoder_hidden_states`.
    static func unetInputs(_ file: SafeTensorsFile) throws -> (Tensor, [Float], Tensor) {
        let sample = try input4D(file, "sample")
        let context = try file.floatTensor(try present(file, "encoder_hidden_states"))
        let t = try file.numericValues(try present(file, "timestep"))
        let b = sample.dim(0)
        if t.values.count == 1 && t.shape.count <= 1 {
            return (sample, Array(repeating: Float(t.values[0]), count: b), context)
        }
        guard t.shape == [b] else {
            throw ComponentError.badInput(file: file.path, "timestep must be a scalar or [\(b)], got \(t.shape)")
        }
        return (sample, t.values.map { Float($0) }, context)
    }

    /// Token ids [B, T] from `input_ids` (any integer dtype).
    static func readIDs(_ file: SafeTensorsFile, length: Int) throws -> ([Int], Int) {
        let name = try present(file, "input_ids")
        guard let info = file.info(name), !info.dtype.isFloatingPoint else {
            throw ComponentError.badInput(file: file.path, "input_ids must be int32 or int64")
        }
        let (shape, values) = try file.int64Values(name)
        guard shape.count == 2, shape[1] == length, shape[0] > 0 else {
            throw ComponentError.badInput(file: file.path, "input_ids must be [B, \(length)], got \(shape)")
        }
        return (values.map { Int(clamping: $0) }, shape[0])
    }

    static func input4D(_ file: SafeTensorsFile, _ name: String) throws -> Tensor {
        let t = try file.floatTensor(try present(file, name))
        guard t.rank == 4 else { throw ComponentError.badInput(file: file.path, "'\(name)' must have 4 dimensions, got \(t.shape)") }
        return t
    }

    static func present(_ file: SafeTensorsFile, _ name: String) throws -> String {
        guard file.contains(name) else { throw ComponentError.badInput(file: file.path, "missing input tensor '\(name)'") }
        return name
    }
}

/// Errors in a component run's input file.
public enum ComponentError: Error, CustomStringConvertible {
    case badInput(file: String, String)

    public var description: String {
        switch self {
        case .badInput(let f, let m): return "\(f): \(m)"
        }
    }
}
