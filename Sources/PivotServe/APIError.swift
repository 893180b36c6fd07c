// The one error type of the HTTP layer: a status and a one-line message, sent as `{"error": "..."}`.
import Foundation
import Hummingbird
import PivotIO

/// A request the server refuses, or a failure while answering it: an HTTP status and a one-line message.
public struct APIError: Error, Equatable, CustomStringConvertible {
    /// The HTTP status code (400, 403, 404, 413, …).
    public let status: Int
    /// What went wrong, on one line.
    public let message: String

    public init(_ status: Int, _ message: String) {
        self.status = status
        self.message = message.split(whereSeparator: \.isNewline).joined(separator: " ")
    }

    public var description: String { "\(status): \(message)" }

    static func badRequest(_ message: String) -> APIError { APIError(400, message) }
    static func forbidden(_ message: String) -> APIError { APIError(403, message) }
    static func notFound(_ message: String = "not found") -> APIError { APIError(404, message) }
    static func tooLarge(limit: Int) -> APIError {
        APIError(413, "the upload is larger than the server's limit of \(limit) bytes")
    }

    /// A library error as a 400, its settings named by their form-field keys (the CLI's message with the
    /// CLI's flag names written as keys).
    static func invalid(_ error: Error) -> APIError {
        APIError(400, oneLineDescription(of: error, naming: { $0 }))
    }

    /// The JSON response for this error.
    var response: Response { JSONBody.response(["error": message], status: HTTPResponse.Status(code: status)) }
}

/// JSON responses.
enum JSONBody {
    /// `value` encoded with sorted keys, unescaped slashes.
    static func data<T: Encodable>(_ value: T) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)) ?? Data(#"{"error":"could not encode the response"}"#.utf8)
    }

    static func response<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data(value))))
    }
}
