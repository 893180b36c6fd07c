import ArgumentParser
import Foundation
import Pivot
import PivotLoading
import PivotServe

/// `pivot serve`: maps flags to `ServeConfiguration`, loads the model once and runs PivotServe's server.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "A local web editor: drop a photo, write the prompts, move the sliders, watch the edit and its attention maps.",
        discussion: """
            Serves one page (everything embedded, works offline) and the JSON API it uses (see the README). Edits run \
            one at a time on the CPU through the inversion cache, so a second edit of the same photo with other \
            sliders starts at once. The server binds to 127.0.0.1 unless --host says otherwise, refuses requests from \
            other origins (403) and uploads over --max-upload-mb (413), and serves files only from its work folder.
            """)

    @OptionGroup(title: "Model") var modelOptions: ModelOptions
    @OptionGroup var precisionOptions: PrecisionOptions
    @OptionGroup var threadOptions: ThreadOptions
    @OptionGroup(title: "Textual inversion") var embeddingOptions: EmbeddingOptions

    @Option(name: .long, help: "The address to listen on (default 127.0.0.1; a non-loopback address also accepts any Host header).")
    var host: String?

    @Option(name: .long, help: "The port to listen on (0: any free port; the URL is printed).")
    var port = 7860

    @Option(name: .long, help: ArgumentHelp("Uploads and outputs go here (default: a new folder in the system's temp dir).", valueName: "DIR"))
    var workdir: String?

    @Option(name: .long, help: ArgumentHelp("The largest upload accepted, in MB (larger ones get 413).", valueName: "MB"))
    var maxUploadMb = 50

    @Flag(name: .long, help: "Neither read nor write the inversion cache.")
    var noCache = false

    @Flag(name: .long, help: "No notes on standard error.")
    var quiet = false

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535, got \(port)") }
        guard (1...4096).contains(maxUploadMb) else { throw ValidationError("--max-upload-mb must be between 1 and 4096, got \(maxUploadMb)") }
        if let host, host.isEmpty { throw ValidationError("--host must not be empty") }
    }

    func run() throws {
        var configuration = ServeConfiguration()
        if let host {
            configuration.host = host
            configuration.hostChosen = true
        }
        configuration.port = port
        configuration.workdir = workdir
        configuration.maxUploadBytes = maxUploadMb * 1024 * 1024
        configuration.useCache = !noCache
        let sd = try StableDiffusion(model: try modelOptions.folder())
        sd.precision = try precisionOptions.plan()
        try embeddingOptions.apply(to: sd, quiet: quiet)
        let server = try PivotServer(model: sd, configuration: configuration)
        let quiet = self.quiet
        let finished = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var failure: Error?
        Task {
            do {
                try await server.run { url in
                    // The URL is the result (standard output, flushed for scripts that wait for it).
                    print(url)
                    fflush(stdout)
                    if !quiet { note("pivot serve: open \(url) (work folder \(server.workdir)); Ctrl-C stops it") }
                }
            } catch {
                failure = error
            }
            finished.signal()
        }
        finished.wait()
        if let failure { throw failure }
    }
}
