import HTTPTypes
import Hummingbird
import NIOCore

/// A malformed callback: answered 400, with the reason logged (never the body, never echoed).
public struct BadCallback: Error, HTTPResponseError {
    public let reason: String

    public init(reason: String) {
        self.reason = reason
    }

    public var status: HTTPResponse.Status { .badRequest }
    public func response(from request: Request, context: some RequestContext) throws -> Response {
        Response(status: .badRequest, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: "bad request\n")))
    }
}
