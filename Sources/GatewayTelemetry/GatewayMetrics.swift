import Metrics
import Prometheus
import Synchronization

/// The process's Prometheus registry: what `/metrics` renders. The gateway's parts record to it
/// through the ``MetricCache`` their builder hands them (``serving``); it is also bootstrapped into
/// swift-metrics once per process, for what libraries record on their own (Hummingbird's request
/// metrics).
///
/// Hummingbird's `MetricsMiddleware` reports `hb.requests` and `http.server.request.duration` with
/// dotted OpenTelemetry names; the sanitizer gives them Prometheus names and short labels:
/// `http_requests_total{route,method,status}` and `http_request_duration_seconds{...}` (a histogram).
public enum GatewayMetrics {
    /// The registry `/metrics` renders.
    public static let registry = PrometheusCollectorRegistry()

    /// The buckets of every duration histogram: 250 µs to 5 s, with 1 s (the hops' objective,
    /// docs/SLO.md) among them.
    static let durationBuckets: [Duration] = [
        .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5), .milliseconds(5),
        .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5),
    ]

    /// The factory over ``registry``, with the gateway's buckets, names and help texts.
    public static let factory: any MetricsFactory = HelpfulMetricsFactory(
        registry: registry, durationBuckets: durationBuckets, valueBuckets: [1, 10, 100, 1000, 10000],
        sanitize: { name, labels in (prometheusName(name), labels.map { (prometheusLabel($0.0), $0.1) }) }
    )

    private static let bootstrapped: Void = MetricsSystem.bootstrap(factory)

    /// Makes the registry the backend of what libraries record on their own, once per process.
    public static func bootstrap() { _ = Self.bootstrapped }

    /// The metrics the serving gateway's parts record to: the registry's, made once each.
    public static let serving = MetricCache(factory: factory)

    /// The registry's metrics in Prometheus' text exposition format.
    public static func render() -> String {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }

    /// Reads the process's CPU, memory and descriptors from `/proc` into their metrics; the
    /// serving gateway calls it every few seconds off the event loops (``render()`` does not).
    public static func updateProcessMetrics() { ProcessMetrics.shared.update() }

    static func prometheusName(_ name: String) -> String {
        switch name {
        case "hb.requests": return "http_requests_total"
        case "hb.request.errors": return "http_request_errors_total"
        case "http.server.request.duration": return "http_request_duration_seconds"
        case "http.server.active_requests": return "http_active_requests"
        default: return String(name.map { $0.isLetter || $0.isNumber || $0 == "_" ? $0 : "_" })
        }
    }

    static func prometheusLabel(_ label: String) -> String {
        switch label {
        case "http.route": return "route"
        case "http.request.method": return "method"
        case "http.response.status_code": return "status"
        case "error.type": return "error"
        default: return String(label.map { $0.isLetter || $0.isNumber || $0 == "_" ? $0 : "_" })
        }
    }
}
