import HTTPTypes
import Hummingbird

/// Answers 405 to a request whose method is not a standard one, before the metrics middleware sees
/// it: Hummingbird's metrics label series by method, and HTTP lets a client invent any method name,
/// so without this anyone could grow Prometheus' series without bound.
public struct KnownMethodsMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        switch request.method {
        case .get, .head, .post, .put, .delete, .options, .patch: return try await next(request, context)
        default: throw HTTPError(.methodNotAllowed)
        }
    }
}
