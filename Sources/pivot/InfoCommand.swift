import ArgumentParser
import Foundation
import Pivot

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Describe a model folder: architecture, parameter counts, stored dtypes, native resolution.")

    @OptionGroup(title: "Model") var modelOptions: ModelOptions
    var model: String { modelOptions.model }

    @Flag(name: .long, help: "Print one JSON object instead of text.")
    var json = false

    func run() throws {
        let info = try ModelInfo(model: modelOptions.folder())
        if json { try printJSON(info) } else { print(info.text) }
    }
}
