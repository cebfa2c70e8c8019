import Metrics
import Prometheus
import Synchronization

/// The metrics a part records, from the factory it was given: each part takes one of these in its
/// initializer, so what it records goes where its builder says (the process's Prometheus registry
/// when serving, a test's own factory in a test), never to a global it reaches for.
///
/// Counters, timers and gauges are made once per label and dimensions: swift-metrics' `Counter`
/// asks the factory (a registry lookup under a lock, names sanitized) every time, and a USSD hop
/// records several. The dimension values are bounded (screen ids, outcomes, statuses), so is the
/// cache.
public final class MetricCache: Sendable {
    let factory: any MetricsFactory

    public init(factory: any MetricsFactory) {
        self.factory = factory
    }

    private let counters = Mutex<[Key: Metrics.Counter]>([:])
    private let timers = Mutex<[Key: Metrics.Timer]>([:])
    private let gauges = Mutex<[Key: Metrics.Gauge]>([:])
    private let floatingCounters = Mutex<[Key: Metrics.FloatingPointCounter]>([:])

    public func counter(_ label: String, _ dimensions: [(String, String)]) -> Metrics.Counter {
        Self.cached(self.counters, label, dimensions) { Metrics.Counter(label: label, dimensions: dimensions, factory: self.factory) }
    }

    /// A counter of fractional amounts (money in whole units).
    public func floatingCounter(_ label: String, _ dimensions: [(String, String)]) -> Metrics.FloatingPointCounter {
        Self.cached(self.floatingCounters, label, dimensions) { Metrics.FloatingPointCounter(label: label, dimensions: dimensions, factory: self.factory) }
    }

    public func timer(_ label: String, _ dimensions: [(String, String)]) -> Metrics.Timer {
        Self.cached(self.timers, label, dimensions) { Metrics.Timer(label: label, dimensions: dimensions, factory: self.factory) }
    }

    public func gauge(_ label: String, _ dimensions: [(String, String)] = []) -> Metrics.Gauge {
        Self.cached(self.gauges, label, dimensions) { Metrics.Gauge(label: label, dimensions: dimensions, factory: self.factory) }
    }

    /// Adds one to the counter `label` with these (bounded) dimensions.
    public func count(_ label: String, _ dimensions: [(String, String)] = []) {
        self.counter(label, dimensions).increment()
    }

    private static func cached<Metric>(
        _ cache: borrowing Mutex<[Key: Metric]>, _ label: String, _ dimensions: [(String, String)], _ make: () -> Metric
    ) -> Metric {
        let key = Key(label: label, dimensions: dimensions)
        return cache.withLock { cache in
            if let metric = cache[key] { return metric }
            let metric = make()
            cache[key] = metric
            return metric
        }
    }

    /// A metric's label and dimensions as a dictionary key, made of the caller's own values: a
    /// lookup on every hop builds no string.
    struct Key: Hashable {
        let label: String
        let dimensions: [(String, String)]

        func hash(into hasher: inout Hasher) {
            hasher.combine(self.label)
            hasher.combine(self.dimensions.count)
            for (name, value) in self.dimensions {
                hasher.combine(name)
                hasher.combine(value)
            }
        }

        static func == (a: Key, b: Key) -> Bool {
            a.label == b.label && a.dimensions.count == b.dimensions.count
                && zip(a.dimensions, b.dimensions).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        }
    }
}

extension MetricCache {
    /// Records nothing: for a one-off command (`mpesa reconcile`) that serves no `/metrics`.
    public static var discarding: MetricCache { MetricCache(factory: NOOPMetricsHandler.instance) }
}
