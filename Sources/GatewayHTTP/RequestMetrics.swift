import Dispatch
import HTTPTypes
import Hummingbird
import Metrics
import Synchronization

/// The request metrics of both servers, under Hummingbird's names so that one series covers a
/// route whichever server answered it: `hb.requests` and `http.server.request.duration` by route,
/// method and status, `hb.request.errors` for refusals and failures, and
/// `http.server.active_requests` by method.
public final class RequestMetrics: Sendable {
    struct Key: Hashable {
        let route: String
        let method: String
        let status: Int
    }

    /// One route, method and status's metrics.
    public struct Series: Sendable {
        let requests: Counter
        let duration: Timer
        let errors: Counter
    }

    private let series = Mutex<[Key: Series]>([:])
    private let active = Mutex<[String: Meter]>([:])

    public init() {}

    /// The series for a route, method and status, made once.
    public func series(route: String, method: String, status: Int) -> Series {
        let key = Key(route: route, method: method, status: status)
        return self.series.withLock { series in
            if let found = series[key] { return found }
            let dimensions = [("http.route", route), ("http.request.method", method), ("http.response.status_code", String(status))]
            let made = Series(
                requests: Counter(label: "hb.requests", dimensions: dimensions),
                duration: Timer(label: "http.server.request.duration", dimensions: dimensions, preferredDisplayUnit: .seconds),
                errors: Counter(
                    label: "hb.request.errors", dimensions: [("http.route", route), ("http.request.method", method), ("error.type", String(status))]
                )
            )
            series[key] = made
            return made
        }
    }

    /// The in-flight meter of a method.
    public func active(method: String) -> Meter {
        self.active.withLock { meters in
            if let found = meters[method] { return found }
            let made = Meter(label: "http.server.active_requests", dimensions: [("http.request.method", method)])
            meters[method] = made
            return made
        }
    }

    /// A request answered: counted, timed, and counted as an error when it was refused or failed.
    public func record(_ series: Series, startedAt start: UInt64, failed: Bool) {
        series.requests.increment()
        series.duration.recordNanoseconds(Int64(truncatingIfNeeded: DispatchTime.now().uptimeNanoseconds &- start))
        if failed { series.errors.increment() }
    }
}

/// Hummingbird's side of ``RequestMetrics``: every request counted and timed by its route pattern.
public struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: RequestMetrics

    public init(metrics: RequestMetrics) {
        self.metrics = metrics
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = DispatchTime.now().uptimeNanoseconds
        let method = request.method.rawValue
        let active = self.metrics.active(method: method)
        active.increment()
        defer { active.decrement() }
        do {
            let response = try await next(request, context)
            self.metrics.record(
                self.metrics.series(route: context.endpointPath ?? "Unknown", method: method, status: response.status.code), startedAt: start, failed: false
            )
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            self.metrics.record(self.metrics.series(route: context.endpointPath ?? "NotFound", method: method, status: status), startedAt: start, failed: true)
            throw error
        }
    }
}
