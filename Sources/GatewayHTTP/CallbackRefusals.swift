import GatewayTelemetry

/// Refused provider callbacks (a wrong token, a source outside the allowlist, a malformed body),
/// handed from the routes to whoever writes them to the audit trail, without waiting: a flood of
/// forged callbacks fills a bounded buffer (the newest kept), never the request path.
public final class CallbackRefusals: Sendable {
    public struct Refusal: Sendable, Hashable {
        /// `ussd.hop`, `mpesa.stk`, ...
        public let route: String
        /// Why, in the gateway's words (never the body, never a token).
        public let reason: String
        /// The client address, when known.
        public let source: String?
        /// The HTTP status answered.
        public let status: Int
    }

    public let refusals: AsyncStream<Refusal>
    private let continuation: AsyncStream<Refusal>.Continuation

    /// `callback_refusals_total{route}`, counted as each refusal happens (before the buffer, which
    /// drops the oldest in a flood).
    let metrics: MetricCache

    public init(buffer: Int = 256, metrics: MetricCache = .discarding) {
        (self.refusals, self.continuation) = AsyncStream.makeStream(of: Refusal.self, bufferingPolicy: .bufferingNewest(buffer))
        self.metrics = metrics
    }

    public func record(route: String, reason: String, source: String?, status: Int) {
        self.metrics.count("callback_refusals_total", [("route", route)])
        self.continuation.yield(Refusal(route: route, reason: String(reason.prefix(300)), source: source, status: status))
    }

    public func finish() { self.continuation.finish() }
}
