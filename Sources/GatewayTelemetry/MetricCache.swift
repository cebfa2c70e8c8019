import Metrics
import Prometheus
import Synchronization

/// Counters and timers by label and dimensions, made once: swift-metrics' `Counter(label:)` asks the
/// factory (a registry lookup under a lock, names sanitized) every time, and a USSD hop records
/// several. The dimension values are bounded (screen ids, outcomes, statuses), so is the cache.
public final class MetricCache: Sendable {
    public init() {}

    private let counters = Mutex<[String: Metrics.Counter]>([:])
    private let timers = Mutex<[String: Metrics.Timer]>([:])

    public func counter(_ label: String, _ dimensions: [(String, String)]) -> Metrics.Counter {
        Self.cached(self.counters, label, dimensions) { Metrics.Counter(label: label, dimensions: dimensions) }
    }

    public func timer(_ label: String, _ dimensions: [(String, String)]) -> Metrics.Timer {
        Self.cached(self.timers, label, dimensions) { Metrics.Timer(label: label, dimensions: dimensions) }
    }

    private static func cached<Metric>(
        _ cache: borrowing Mutex<[String: Metric]>, _ label: String, _ dimensions: [(String, String)], _ make: () -> Metric
    ) -> Metric {
        let key = Self.key(label, dimensions)
        return cache.withLock { cache in
            if let metric = cache[key] { return metric }
            let metric = make()
            cache[key] = metric
            return metric
        }
    }

    private static func key(_ label: String, _ dimensions: [(String, String)]) -> String {
        dimensions.reduce(label) { $0 + "\u{1F}" + $1.0 + "=" + $1.1 }
    }
}
