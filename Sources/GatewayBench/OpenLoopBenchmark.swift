import Curl
import Foundation
import Synchronization

/// `gateway-bench handsets --arrival-rates 50,100,...`: an open loop. Sessions start as a Poisson
/// process at each rate in turn, whatever the gateway's answers take; each session walks its
/// journey hop after hop, as a handset does. A closed loop (a fixed number of handsets) slows its
/// arrivals when the server slows, and so hides the queueing an open loop shows.
///
/// A hop's latency is counted from when it was due: a session's first hop from its scheduled
/// arrival, so a dispatcher that falls behind adds its lag to the figures rather than hiding it.
/// Sessions beyond `maxInFlight` at once are dropped and counted: the rate is then past what the
/// gateway can carry, and its figures say so.
enum OpenLoopBenchmark {
    struct Figure: Sendable, CustomStringConvertible {
        let rate: Double
        let seconds: Double
        let sessionsStarted: Int
        let sessionsDropped: Int
        let hops: Int
        let p50: Double
        let p99: Double
        let unanswered: Int

        var description: String {
            String(
                format: "open loop %.0f sessions/s for %.0f s: %d sessions (%d dropped), %d hops = %.0f hops/s, p50 %.2f ms, p99 %.2f ms, %d without an answer or with the apology screen",
                self.rate, self.seconds, self.sessionsStarted, self.sessionsDropped, self.hops, Double(self.hops) / self.seconds, self.p50 * 1000,
                self.p99 * 1000, self.unanswered
            )
        }
    }

    /// Counts sessions in flight across the dispatcher and the sessions' tasks.
    final class InFlight: Sendable {
        let count = Atomic<Int>(0)
    }

    /// Exponentially distributed gaps with mean 1/`rate` seconds: the arrivals of a Poisson process.
    struct Arrivals: IteratorProtocol {
        let rate: Double
        var generator: any RandomNumberGenerator = SystemRandomNumberGenerator()

        mutating func next() -> Double? {
            // 1 - U is in (0, 1]: its logarithm is finite.
            let uniform = 1 - Double.random(in: 0..<1, using: &self.generator)
            return -log(uniform) / self.rate
        }
    }

    static func run(
        url: String, rate: Double, duration: Duration, customers: Int, mix: HandsetsBenchmark.Mix, maxInFlight: Int = 4_096
    ) async -> Figure {
        var configuration = CurlConfiguration()
        configuration.maximumCachedConnections = min(maxInFlight, 1_024)
        let http = CurlClient(configuration: configuration)
        let run = UUID().uuidString.prefix(6).lowercased()
        let inFlight = InFlight()
        let start = ContinuousClock.now
        let end = start + duration
        var arrivals = Arrivals(rate: rate)
        var (started, dropped) = (0, 0)
        let results = await withTaskGroup(of: (latencies: [Double], unanswered: Bool).self) { group in
            var due = start
            while let gap = arrivals.next() {
                due = due + .nanoseconds(Int64(gap * 1e9))
                guard due < end else { break }
                try? await Task.sleep(until: due, clock: .continuous)
                guard inFlight.count.wrappingAdd(1, ordering: .relaxed).newValue <= maxInFlight else {
                    inFlight.count.wrappingSubtract(1, ordering: .relaxed)
                    dropped += 1
                    continue
                }
                let index = started
                started += 1
                let scheduled = due
                group.addTask {
                    defer { inFlight.count.wrappingSubtract(1, ordering: .relaxed) }
                    let walked = await HandsetsBenchmark.journey(
                        http, url, session: "o\(run)-\(index)", pick: index, customers: customers, mix: mix, firstHopDue: scheduled
                    )
                    return (walked.latencies, walked.unanswered || walked.apology)
                }
            }
            return await group.reduce(into: [(latencies: [Double], unanswered: Bool)]()) { $0.append($1) }
        }
        let seconds = (ContinuousClock.now - start).inSeconds
        await http.shutdown()
        let sorted = results.flatMap(\.latencies).sorted()
        func percentile(_ p: Double) -> Double { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
        return Figure(
            rate: rate, seconds: seconds, sessionsStarted: started, sessionsDropped: dropped, hops: sorted.count, p50: percentile(0.5),
            p99: percentile(0.99), unanswered: results.filter(\.unanswered).count
        )
    }

    /// The highest rate whose p99 stayed under `bound` seconds with nothing dropped or unanswered.
    static func highestRate(_ figures: [Figure], under bound: Double) -> Figure? {
        figures.filter { $0.p99 < bound && $0.sessionsDropped == 0 && $0.unanswered == 0 }.max { $0.rate < $1.rate }
    }
}
