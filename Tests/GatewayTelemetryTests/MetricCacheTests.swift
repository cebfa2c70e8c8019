@testable import GatewayTelemetry
import MetricsTestKit
import Testing

/// A part records to the factory it is handed, each series made once.
@Suite struct MetricCacheTests {
    @Test func countsGoToTheGivenFactoryOncePerSeries() throws {
        let recorded = TestMetrics()
        let metrics = MetricCache(factory: recorded)
        metrics.count("ussd_hops_total", [("outcome", "con")])
        metrics.count("ussd_hops_total", [("outcome", "con")])
        metrics.count("ussd_hops_total", [("outcome", "end")])
        metrics.gauge("ussd_active_sessions").record(4)
        #expect(try recorded.expectCounter("ussd_hops_total", [("outcome", "con")]).totalValue == 2)
        #expect(try recorded.expectCounter("ussd_hops_total", [("outcome", "end")]).totalValue == 1)
        #expect(try recorded.expectGauge("ussd_active_sessions").lastValue == 4)
        #expect(recorded.counters(label: "ussd_hops_total").count == 2, "one series per dimension set, made once")
    }

    @Test func hummingbirdsDottedNamesBecomePrometheusNames() {
        #expect(GatewayMetrics.prometheusName("hb.requests") == "http_requests_total")
        #expect(GatewayMetrics.prometheusName("http.server.request.duration") == "http_request_duration_seconds")
        #expect(GatewayMetrics.prometheusName("ussd-hops.total") == "ussd_hops_total")
        #expect(GatewayMetrics.prometheusLabel("http.response.status_code") == "status")
    }
}
