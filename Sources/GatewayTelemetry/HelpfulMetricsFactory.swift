import Metrics
import Prometheus

/// swift-prometheus' factory with each family's `# HELP` line: the library's own factory registers
/// every metric with an empty help text (and refuses a second registration with another), so this
/// one makes the registry's metrics itself, with the text ``MetricHelp`` gives the family's name.
/// A name ``MetricHelp`` does not know gets none, and `promtool check metrics` (a test) says so.
struct HelpfulMetricsFactory: MetricsFactory {
    let registry: PrometheusCollectorRegistry
    let durationBuckets: [Duration]
    let valueBuckets: [Double]
    let sanitize: @Sendable (String, [(String, String)]) -> (String, [(String, String)])

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        let (name, labels) = self.sanitize(label, dimensions)
        return self.registry.makeCounter(name: name, labels: labels, help: MetricHelp.text(name))
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        let (name, labels) = self.sanitize(label, dimensions)
        return self.registry.makeCounter(name: name, labels: labels, help: MetricHelp.text(name))
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        let (name, labels) = self.sanitize(label, dimensions)
        guard aggregate else { return self.registry.makeGauge(name: name, labels: labels, help: MetricHelp.text(name)) }
        return self.registry.makeValueHistogram(name: name, labels: labels, buckets: self.valueBuckets, help: MetricHelp.text(name))
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        let (name, labels) = self.sanitize(label, dimensions)
        return self.registry.makeGauge(name: name, labels: labels, help: MetricHelp.text(name))
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        let (name, labels) = self.sanitize(label, dimensions)
        return self.registry.makeDurationHistogram(name: name, labels: labels, buckets: self.durationBuckets, help: MetricHelp.text(name))
    }

    func destroyCounter(_ handler: any CounterHandler) {
        if let counter = handler as? Prometheus.Counter { self.registry.unregisterCounter(counter) }
    }

    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let counter = handler as? Prometheus.Counter { self.registry.unregisterCounter(counter) }
    }

    func destroyRecorder(_ handler: any RecorderHandler) {
        switch handler {
        case let gauge as Prometheus.Gauge: self.registry.unregisterGauge(gauge)
        case let histogram as ValueHistogram: self.registry.unregisterValueHistogram(histogram)
        default: break
        }
    }

    func destroyMeter(_ handler: any MeterHandler) {
        if let gauge = handler as? Prometheus.Gauge { self.registry.unregisterGauge(gauge) }
    }

    func destroyTimer(_ handler: any TimerHandler) {
        if let histogram = handler as? DurationHistogram { self.registry.unregisterDurationHistogram(histogram) }
    }
}
