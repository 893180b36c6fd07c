import ArgumentParser
import Foundation
import Pivot

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Describe a model folder: architecture, parameter counts, stored dtypes, native resolution.")

    @Option(name: .long, help: "A diffusers model folder (unet/, vae/, text_encoder/).")
    var model: String

    @Flag(name: .long, help: "Print one JSON object instead of text.")
    var json = false

    func run() throws {
        let info = try ModelInfo(model: ModelFolder(path: model))
        if json { try printJSON(info) } else { print(info.text) }
    }
}
