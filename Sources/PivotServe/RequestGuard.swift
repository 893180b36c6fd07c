// The checks every request passes before any work: its Host names this server (loopback names and the bound
// port, unless the host was chosen: the defence against DNS rebinding) and its Origin, when it has one, is
// exactly this server's own (any web site a user visits could otherwise POST to localhost).
import Foundation
import Hummingbird

/// Which requests the server answers.
///
/// - The server's own origin is `http://` plus the request's `Host` header, once that header has passed the
///   host check: the page, loaded from `http://127.0.0.1:7860` or `http://localhost:7860`, sends the origin
///   it was loaded from, which is the host it talks to. A request whose `Origin` differs (another site, `null`
///   from a sandboxed frame or a file, another port) is refused with 403.
/// - Bound to a loopback address (the default, or one chosen), `Host` must be `127.0.0.1`, `localhost` or
///   `[::1]` (or the bound address) with the bound port: a DNS-rebinding page (`evil.example` resolving to
///   127.0.0.1) sends its own name and is refused with 403. Bound to another address the user chose, any
///   `Host` is accepted.
/// - A request without `Origin` (curl, a navigation) is allowed: browsers send one on every cross-origin
///   request and on every POST and DELETE.
public struct OriginPolicy: Sendable {
    /// The names a loopback server answers to.
    public static let loopbackNames: Set<String> = ["127.0.0.1", "localhost", "[::1]"]

    /// The bound address and port.
    public var host: String
    public var port: Int
    /// Whether any `Host` header is accepted (the host was chosen by the user).
    public var anyHost: Bool

    public init(host: String, port: Int, anyHost: Bool) {
        self.host = host
        self.port = port
        self.anyHost = anyHost
    }

    /// Whether `host` (an address to bind) is a loopback one: `localhost`, 127.0.0.0/8 or ::1.
    public static func isLoopback(_ host: String) -> Bool {
        let h = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        return h == "localhost" || h == "::1" || h.hasPrefix("127.")
    }

    /// `host[:port]` split; nil for a malformed authority.
    static func split(_ authority: String) -> (host: String, port: Int?)? {
        let a = authority.lowercased()
        if a.hasPrefix("[") {
            guard let close = a.firstIndex(of: "]") else { return nil }
            let host = String(a[...close])
            let rest = a[a.index(after: close)...]
            if rest.isEmpty { return (host, nil) }
            guard rest.hasPrefix(":"), let port = Int(rest.dropFirst()) else { return nil }
            return (host, port)
        }
        let parts = a.split(separator: ":", omittingEmptySubsequences: false)
        guard !parts.isEmpty, !parts[0].isEmpty else { return nil }
        if parts.count == 1 { return (String(parts[0]), nil) }
        guard parts.count == 2, let port = Int(parts[1]) else { return nil }
        return (String(parts[0]), port)
    }

    /// Whether a `Host` header names this server.
    public func allowsHost(_ authority: String?) -> Bool {
        if anyHost { return true }
        guard let authority, let (name, port) = Self.split(authority) else { return authority == nil }
        let bound = host.contains(":") && !host.hasPrefix("[") ? "[\(host.lowercased())]" : host.lowercased()
        guard Self.loopbackNames.contains(name) || name == bound else { return false }
        return (port ?? 80) == self.port
    }

    /// Whether an `Origin` header (nil: none) is this server's own for the request's `Host`.
    public func allowsOrigin(_ origin: String?, host authority: String?) -> Bool {
        guard let origin else { return true }
        guard let authority else { return false }
        return origin.lowercased() == "http://" + authority.lowercased()
    }

    /// Why a request with these headers is refused (403), or nil.
    public func refusal(host: String?, origin: String?) -> String? {
        if !allowsHost(host) { return "this server answers to localhost only (Host \(host ?? "none") refused)" }
        if !allowsOrigin(origin, host: host) { return "cross-origin requests are refused (Origin \(origin ?? "none"))" }
        return nil
    }
}

/// The policy in force, its port set once the server is bound (port 0 picks one).
final class PolicyBox: @unchecked Sendable {
    private let lock = NSLock()
    private var state: OriginPolicy

    init(_ policy: OriginPolicy) { state = policy }

    var policy: OriginPolicy { lock.withLock { state } }

    func setPort(_ port: Int) { lock.withLock { state.port = port } }
}

/// Refuses, with 403 and before any work, requests that fail the `OriginPolicy`.
struct RequestGuard<Context: RequestContext>: RouterMiddleware {
    let box: PolicyBox

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let host = request.head.authority
        if let why = box.policy.refusal(host: host, origin: request.headers[.origin]) { return APIError.forbidden(why).response }
        return try await next(request, context)
    }
}
