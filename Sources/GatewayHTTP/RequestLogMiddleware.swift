import Basics
import GatewayTelemetry
import HTTPTypes
import Hummingbird
import Logging

/// One log line per request (``RequestLog``): method, route pattern, status, duration and request id.
/// The request is answered inside its trace (``HopTrace``): its `traceparent`'s, or a new one whose
/// id is the request id.
///
/// Logs the route *pattern* (`context.endpointPath`), never `request.uri`, which would carry the
/// callback token, and never the body, which carries PINs. The request id comes from a sane
/// `X-Request-Id` header when a proxy set one, and goes back in the response. Errors become
/// responses here, so they carry the id too; an unexpected error answers a plain 500 naming only
/// the request id, with the error itself in the log.
public struct RequestLogMiddleware<Context: RequestContext>: RouterMiddleware {
    let log: RequestLog
    let logger: Logger

    public init(logger: Logger) {
        self.logger = logger
        self.log = RequestLog(logger: logger)
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        var context = context
        let trace = HopTrace.context(traceparent: request.headers[.traceparent])
        let requestID = RequestLog.acceptedID(request.headers[.xRequestID]) ?? trace.traceID.description
        context.logger[metadataKey: "request_id"] = .string(requestID)
        do {
            var response = try await HopTrace.$current.withValue(trace) { try await next(request, context) }
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
        self.log.log(method: request.method.rawValue, route: context.endpointPath ?? "unmatched", status: status, since: start, requestID: requestID)
    }
}

extension HTTPField.Name {
    static let xRequestID = HTTPField.Name("X-Request-Id")!
    static let traceparent = HTTPField.Name("traceparent")!
}
