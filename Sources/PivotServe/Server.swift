// The server: the Hummingbird application, its routes (the page, the JSON API, the event stream, the files
// of the work folder) and the checks they run in order (origin and host, size, form, settings, photo).
import Foundation
import Hummingbird
import Logging
import Pivot
import PivotImage
import PivotIO
import ServiceLifecycle

/// The model, used by the worker thread for edits and by handlers only for read-only checks (tokenizing
/// prompts, planning Prompt-to-Prompt), which touch no shared mutable state.
final class ModelBox: @unchecked Sendable {
    let model: StableDiffusion
    init(_ model: StableDiffusion) { self.model = model }
}

/// `pivot serve`: the local web editor over one loaded model.
public final class PivotServer: Sendable {
    public let configuration: ServeConfiguration
    private let box: ModelBox
    private let queue = JobQueue()
    private let folder: WorkFolder
    private let page: ByteBuffer
    private let policy: PolicyBox
    private let worker: EditWorker

    /// Prepares the server: the work folder, the page, the job queue and its worker (started by `run`).
    public init(model: StableDiffusion, configuration: ServeConfiguration) throws(ServeStartError) {
        guard (0...65535).contains(configuration.port) else { throw .badSetting("port must be between 0 and 65535") }
        guard configuration.maxUploadBytes > 0 else { throw .badSetting("the upload limit must be positive") }
        self.configuration = configuration
        box = ModelBox(model)
        folder = try WorkFolder(path: configuration.workdir)
        guard let url = Bundle.module.url(forResource: "editor", withExtension: "html", subdirectory: "Resources"),
            let html = try? Data(contentsOf: url)
        else { throw .missingPage("PivotServe resources/editor.html is not installed beside pivot") }
        page = ByteBuffer(bytes: html)
        let anyHost = configuration.hostChosen && !OriginPolicy.isLoopback(configuration.host)
        policy = PolicyBox(OriginPolicy(host: configuration.host, port: configuration.port, anyHost: anyHost))
        let cache = configuration.useCache ? InversionCache(directory: configuration.cacheDirectory) : nil
        worker = EditWorker(model: model, queue: queue, cache: cache) { id, file in WorkFolder.url("jobs/\(id)/\(file)") }
    }

    /// The work folder's real path.
    public var workdir: String { folder.root }

    /// Starts the worker and serves until the task is cancelled or the process gets SIGINT/SIGTERM;
    /// `onRunning` gets the server's URL once it listens.
    public func run(onRunning: @escaping @Sendable (String) -> Void = { _ in }) async throws {
        worker.start()
        let router = Router(context: BasicRequestContext.self)
        router.middlewares.add(RequestGuard(box: policy))
        addRoutes(router)
        let host = configuration.host
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: configuration.port), serverName: "pivot"),
            onServerRunning: { [policy] channel in
                let port = channel.localAddress?.port ?? 0
                policy.setPort(port)
                let shown = host.contains(":") ? "[\(host)]" : host
                onRunning("http://\(shown):\(port)/")
            },
            logger: {
                var logger = Logger(label: "pivot-serve")
                logger.logLevel = .critical
                return logger
            }())
        try await app.runService()
    }

    private func addRoutes(_ router: Router<BasicRequestContext>) {
        router.get("/") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/html; charset=utf-8"
            headers[.cacheControl] = "no-store"
            headers[.contentSecurityPolicy] =
                "default-src 'none'; img-src 'self' blob: data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: self.page))
        }
        router.get("/api/tokens") { request, _ in self.answer { () throws(APIError) in try self.tokens(request) } }
        router.get("/api/edits") { _, _ in JSONBody.response(["edits": self.queue.list()]) }
        router.post("/api/edits") { request, _ in
            do throws(APIError) { return try await self.submit(request) } catch { return error.response }
        }
        router.get("/api/edits/:id") { _, context in
            self.answer { () throws(APIError) in JSONBody.response(try self.job(context)) }
        }
        router.delete("/api/edits/:id") { _, context in self.answer { () throws(APIError) in try self.cancel(context) } }
        router.get("/api/edits/:id/events") { _, context in self.answer { () throws(APIError) in try self.events(context) } }
        router.get("/files/**") { _, context in
            self.answer { () throws(APIError) in try WorkFolder.fileResponse(try self.folder.resolve(context.parameters.getCatchAll())) }
        }
    }

    /// `body`'s response, or its error's.
    private func answer(_ body: () throws(APIError) -> Response) -> Response {
        do { return try body() } catch { return error.response }
    }

    /// The job a route's `:id` names (ids are 32 hex digits; anything else is unknown).
    private func job(_ context: BasicRequestContext) throws(APIError) -> JobSnapshot {
        guard let id = context.parameters.get("id"), id.count == 32, id.allSatisfy(\.isHexDigit),
            let snapshot = queue.snapshot(id.lowercased())
        else { throw .notFound("no such edit") }
        return snapshot
    }

    /// `GET /api/tokens?prompt=…`: the prompt's words as edits name them, with their tokens.
    private func tokens(_ request: Request) throws(APIError) -> Response {
        let prompt = request.uri.queryParameters.get("prompt") ?? ""
        guard prompt.utf8.count <= 4096 else { throw .badRequest("prompt: too long") }
        do {
            let words = try box.model.promptWords(prompt)
            return JSONBody.response(["words": words.map { TokenWord(word: $0.word, tokens: $0.tokens) }])
        } catch {
            throw .invalid(error)
        }
    }

    /// `POST /api/edits`: checks the content type, the size (413 before anything is stored), the form and the
    /// settings (400 with the CLI's message), stores the photo, checks it decodes, and queues the job (202).
    private func submit(_ request: Request) async throws(APIError) -> Response {
        let boundary = try Upload.boundary(contentType: request.headers[.contentType])
        let body = try await Upload.body(of: request, limit: configuration.maxUploadBytes)
        let form = try EditForm(try Upload.parse(body, boundary: boundary))
        try form.validate(with: box.model)
        let id = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let jobFolder = try folder.makeJobFolder(id)
        let photoPath = (jobFolder as NSString).appendingPathComponent(JobFiles.photo)
        do {
            try Data(form.photo.bytes).write(to: URL(fileURLWithPath: photoPath))
            _ = try RGBImage.read(photoPath)
        } catch {
            try? FileManager.default.removeItem(atPath: jobFolder)
            let message = oneLineDescription(of: error).replacingOccurrences(of: photoPath, with: form.photo.filename)
            throw .badRequest("photo: \(message)")
        }
        let snapshot = JobSnapshot(
            id: id, status: .queued, progress: ProgressReport(), outputs: [], attentionMaps: nil, error: nil,
            photo: form.photo.filename, photoURL: WorkFolder.url("jobs/\(id)/\(JobFiles.photo)"), source: form.source,
            targets: form.targets, settings: form.given, cachedInversion: nil, created: Date().timeIntervalSince1970)
        queue.submit(
            snapshot,
            work: JobWork(folder: jobFolder, photoPath: photoPath, source: form.source, targets: form.targets, settings: form.settings))
        return JSONBody.response(SubmitReply(id: id, status: .queued, url: "/api/edits/\(id)"), status: .accepted)
    }

    /// `DELETE /api/edits/{id}`: a queued job is cancelled at once (200), a running one stops at its next
    /// step (202); a finished one is a 409.
    private func cancel(_ context: BasicRequestContext) throws(APIError) -> Response {
        let current = try job(context)
        guard !current.status.isFinal else {
            throw APIError(409, "the edit has already \(current.status == .done ? "finished" : current.status.rawValue)")
        }
        guard let after = queue.cancel(current.id) else { throw .notFound("no such edit") }
        return JSONBody.response(after, status: after.status == .cancelled ? .ok : .accepted)
    }

    /// `GET /api/edits/{id}/events`: server-sent events, one `update` per change and a last `end` with the
    /// final status; the stream closes then (or when the server shuts down).
    private func events(_ context: BasicRequestContext) throws(APIError) -> Response {
        let current = try job(context)
        guard let (stream, stop) = queue.events(current.id) else { throw .notFound("no such edit") }
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-store"
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                // A shutdown (Ctrl-C) ends the stream rather than waiting for the job.
                try await withGracefulShutdownHandler {
                    for await snapshot in stream {
                        let name = snapshot.status.isFinal ? "end" : "update"
                        let data = String(decoding: JSONBody.data(snapshot), as: UTF8.self)
                        try await writer.write(ByteBuffer(string: "event: \(name)\ndata: \(data)\n\n"))
                    }
                } onGracefulShutdown: {
                    stop()
                }
                try await writer.finish(nil)
            })
    }
}

/// One word of `GET /api/tokens`.
struct TokenWord: Encodable {
    var word: String
    var tokens: [String]
}

/// The answer to `POST /api/edits`.
struct SubmitReply: Encodable {
    var id: String
    var status: JobStatus
    var url: String
}
