import Basics
import HTTPTypes
import Hummingbird
import Logging

/// One log line per request: method, route pattern, status, duration and request id.
///
/// Logs the route *pattern* (`context.endpointPath`), never `request.uri`, which would carry the
/// callback token, and never the body, which carries PINs. The request id comes from a sane
/// `X-Request-Id` header when a proxy set one, and goes back in the response. Errors become
/// responses here, so they carry the id too; an unexpected error answers a plain 500 naming only
/// the request id, with the error itself in the log.
public struct RequestLogMiddleware<Context: RequestContext>: RouterMiddleware {
    let logger: Logger

    public init(logger: Logger) {
        self.logger = logger
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        var context = context
        let requestID = Self.requestID(from: request) ?? context.id
        context.logger[metadataKey: "request_id"] = .string(requestID)
        do {
            var response = try await next(request, context)
            response.headers[.xRequestID] = requestID
            self.log(request, context: context, status: response.status.code, start: start, requestID: requestID)
            return response
        } catch let error as any HTTPResponseError {
            var response = try error.response(from: request, context: context)
            response.headers[.xRequestID] = requestID
            self.log(request, context: context, status: response.status.code, start: start, requestID: requestID)
            return response
        } catch {
            // An unexpected failure: the caller sees only the request id; the log keeps the error.
            self.logger.error("unhandled error", metadata: ["error": .string(safeDescription(of: error)), "request_id": .string(requestID)])
            self.log(request, context: context, status: 500, start: start, requestID: requestID)
            return Response(
                status: .internalServerError,
                headers: [.contentType: "text/plain; charset=utf-8", .xRequestID: requestID],
                body: .init(byteBuffer: ByteBuffer(string: "internal error (request id \(requestID))\n"))
            )
        }
    }

    private func log(_ request: Request, context: Context, status: Int, start: ContinuousClock.Instant, requestID: String) {
        let elapsed = ContinuousClock.now - start
        let level: Logger.Level = status >= 500 ? .error : .info
        self.logger.log(
            level: level, "request",
            metadata: [
                "method": .string(request.method.rawValue),
                "route": .string(context.endpointPath ?? "unmatched"),
                "status": .stringConvertible(status),
                "duration_ms": .string(String(format: "%.3f", elapsed.inSeconds * 1000)),
                "request_id": .string(requestID),
            ]
        )
    }

    /// A caller-supplied id, accepted only when short and plain (it lands in our logs).
    private static func requestID(from request: Request) -> String? {
        guard let value = request.headers[.xRequestID], (1...64).contains(value.utf8.count),
            value.utf8.allSatisfy({ $0.isASCIIAlphanumeric || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") })
        else { return nil }
        return value
    }
}

extension HTTPField.Name {
    static let xRequestID = HTTPField.Name("X-Request-Id")!
}

extension UInt8 {
    fileprivate var isASCIIAlphanumeric: Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(self) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(self)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self)
    }
}
