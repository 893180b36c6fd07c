import ArgumentParser
import Foundation
import Pivot
import PivotLoading

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Describe a model folder: architecture, parameter counts, stored dtypes, native resolution.")

    @OptionGroup(title: "Model") var modelOptions: ModelOptions
    @OptionGroup var precisionOptions: PrecisionOptions
    @OptionGroup var threadOptions: ThreadOptions
    var model: String { modelOptions.model }

    @Flag(name: .long, help: "Print one JSON object instead of text.")
    var json = false

    func run() throws {
        var info = try ModelInfo(model: modelOptions.folder())
        let plan = try precisionOptions.plan()
        info.precision = ModelInfo.PrecisionReport(plan)
        if json { try printJSON(info) } else { print(info.text) }
    }
}
