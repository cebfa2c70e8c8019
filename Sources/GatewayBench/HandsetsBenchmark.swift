import Basics
import Curl
import Foundation

/// `gateway-bench handsets`: simulated handsets walking send-money and balance journeys against a
/// gateway URL (a balancer in front of replicas) for a fixed time, through faults. Each hop is
/// posted as Africa's Talking does, and retried the way it retries (same session, same text) when
/// no answer comes: a replica killed, a 5xx from the balancer. What each handset was finally told
/// is written out for the audit: `sent` (the "Sent" screen), `refused` (a definite business
/// refusal: the recipient has no wallet, or is the sender), or `unknown` (no answer, or "something
/// went wrong").
enum HandsetsBenchmark {
    struct Outcome: Codable, Sendable {
        /// The transfer's key, `ussd:<session>:<hop>`: what the wallet records a send under.
        let key: String
        let journey: String
        let told: String
    }

    struct Result: Sendable {
        let figure: USSDBenchmark.Figure
        let outcomes: [Outcome]
        let retries: Int
    }

    static let pin = USSDBenchmark.pin

    /// Which journeys the handsets walk.
    enum Mix: String, CaseIterable, Sendable {
        /// Sends (65 %), balances (25 %) and sends that must be refused (10 %).
        case mixed
        /// Menu hops only: dial, Savings, back, My Account, home (no PIN, no money).
        case menu
        /// Balance journeys only: dial, 1, PIN (a PIN check and a read).
        case balance
        /// Send-money journeys only: dial, 4, number, amount, 1, PIN (a PIN check and a commit).
        case send
    }

    static func run(url: String, concurrency: Int, duration: Duration, customers: Int, mix: Mix = .mixed) async throws -> Result {
        var configuration = CurlConfiguration()
        configuration.maximumCachedConnections = concurrency * 2
        let http = CurlClient(configuration: configuration)
        let run = UUID().uuidString.prefix(6).lowercased()
        let deadline = ContinuousClock.now + duration
        let start = ContinuousClock.now
        let perWorker = try await withThrowingTaskGroup(of: ([Double], [Outcome], Int).self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    var (latencies, outcomes, retries, index) = ([Double](), [Outcome](), 0, 0)
                    while ContinuousClock.now < deadline {
                        let walked = await self.journey(
                            http, url, session: "h\(run)-\(worker)-\(index)", pick: index * concurrency + worker, customers: customers, mix: mix
                        )
                        latencies += walked.latencies
                        retries += walked.retries
                        if let outcome = walked.outcome { outcomes.append(outcome) }
                        index += 1
                    }
                    return (latencies, outcomes, retries)
                }
            }
            return try await group.reduce(into: [([Double], [Outcome], Int)]()) { $0.append($1) }
        }
        let seconds = (ContinuousClock.now - start).inSeconds
        await http.shutdown()
        let sorted = perWorker.flatMap(\.0).sorted()
        func percentile(_ p: Double) -> Double { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
        let figure = USSDBenchmark.Figure(name: "handset hops through the balancer", hops: sorted.count, seconds: seconds, p50: percentile(0.5), p99: percentile(0.99))
        return Result(figure: figure, outcomes: perWorker.flatMap(\.1), retries: perWorker.map(\.2).reduce(0, +))
    }

    /// One journey: most are sends between seeded customers, some balances, and a few sends that
    /// must be refused (to a number with no wallet, to oneself).
    /// `firstHopDue`: when the first hop was due (an open loop's scheduled arrival); its latency
    /// counts from then.
    static func journey(
        _ http: CurlClient, _ url: String, session: String, pick: Int, customers: Int, mix: Mix, firstHopDue: ContinuousClock.Instant? = nil
    ) async -> (latencies: [Double], outcome: Outcome?, retries: Int) {
        let from = pick % customers + 1
        let phone = USSDBenchmark.number(from)
        let kind: Int
        switch mix {
        case .mixed: kind = pick % 20
        case .menu: kind = -1
        case .balance: kind = 2
        case .send: kind = 7
        }
        let inputs: [String]
        let name: String
        switch kind {
        case -1:
            (name, inputs) = ("menu", ["5", "0", "7", "00"])
        case 0:
            (name, inputs) = ("send to no wallet", ["4", "0799" + String(format: "%06d", from), "100", "1", self.pin])
        case 1:
            (name, inputs) = ("send to oneself", ["4", "07" + String(format: "%08d", from), "100", "1", self.pin])
        case 2...6:
            (name, inputs) = ("balance", ["1", self.pin])
        default:
            (name, inputs) = ("send", ["4", "07" + String(format: "%08d", from % customers + 1), "100", "1", self.pin])
        }
        var latencies: [Double] = []
        var retries = 0
        var text = ""
        var reply = ""
        for (position, input) in ([nil] + inputs.map { Optional($0) }).enumerated() {
            if let input { text += (text.isEmpty ? "" : "*") + input }
            let sent = ContinuousClock.now
            guard let answered = await self.hop(http, url, session, phone, text) else { return (latencies, Self.outcome(name, session, position, told: "unknown"), retries) }
            // The dispatcher's lag before the first hop counts as waiting, as a handset's would.
            let lag = position == 0 ? firstHopDue.map { max(0, (sent - $0).inSeconds) } ?? 0 : 0
            latencies.append(answered.latency + lag)
            retries += answered.retries
            reply = answered.reply
            if reply.hasPrefix("END") && position < inputs.count { return (latencies, Self.outcome(name, session, position, told: "unknown"), retries) }
        }
        let told: String
        if reply.hasPrefix("END Sent") { told = "sent" }
        else if reply.contains("has no wallet") || reply.contains("cannot send money to yourself") { told = "refused" }
        else if reply.hasPrefix("END Balance") { told = "balance" }
        else if name == "menu" && reply.hasPrefix("CON ") { told = "menu" }
        else {
            told = "unknown"
            if ProcessInfo.processInfo.environment["HANDSETS_SHOW_UNKNOWN"] != nil {
                FileHandle.standardError.write(Data("unknown: \(name) session \(session): \(reply)\n".utf8))
            }
        }
        return (latencies, Self.outcome(name, session, inputs.count, told: told), retries)
    }

    static func outcome(_ journey: String, _ session: String, _ hop: Int, told: String) -> Outcome? {
        journey == "balance" || journey == "menu" ? nil : Outcome(key: "ussd:\(session):\(hop + 1)", journey: journey, told: told)
    }

    /// Posts one hop, retrying it unchanged (as the aggregator does) while no usable answer comes,
    /// up to eight times over about four seconds; nil when none came.
    static func hop(_ http: CurlClient, _ url: String, _ session: String, _ phone: String, _ text: String) async -> (reply: String, latency: Double, retries: Int)? {
        let body = "sessionId=\(session)&phoneNumber=\(phone.replacingOccurrences(of: "+", with: "%2B"))&networkCode=63902&serviceCode=%2A384%2A96%23&text="
            + text.replacingOccurrences(of: "*", with: "%2A")
        for attempt in 0..<8 {
            let start = ContinuousClock.now
            if let response = try? await http.execute(
                CurlRequest(method: "POST", url: url, headers: [("Content-Type", "application/x-www-form-urlencoded")], body: Array(body.utf8), timeout: .seconds(15))
            ), response.status == 200, response.text.hasPrefix("CON ") || response.text.hasPrefix("END ") {
                return (response.text, (ContinuousClock.now - start).inSeconds, attempt)
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
        return nil
    }
}
