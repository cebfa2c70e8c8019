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
        /// When the handset was told, in seconds since 1970 (the failover test's RTO: the first
        /// "Sent" after the primary was lost).
        let at: Double
    }

    struct Result: Sendable {
        let figure: USSDBenchmark.Figure
        let outcomes: [Outcome]
        let retries: Int
        /// Journeys ended by an `END` that was not their own end: the apology screen ("Sorry,
        /// something went wrong"), shown when the gateway could not finish a hop.
        let apologies: Int
        /// Hops that got no usable answer even after the aggregator's retries.
        let unanswered: Int
    }

    /// One journey walked: its hops' latencies, what the handset was told (sends only), the
    /// retries it took, and how it ended.
    struct Walked: Sendable {
        var latencies: [Double] = []
        var outcome: Outcome?
        var retries = 0
        var apology = false
        var unanswered = false
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
        let perWorker = try await withThrowingTaskGroup(of: [Walked].self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    var (walkedAll, index) = ([Walked](), 0)
                    while ContinuousClock.now < deadline {
                        walkedAll.append(await self.journey(
                            http, url, session: "h\(run)-\(worker)-\(index)", pick: index * concurrency + worker, customers: customers, mix: mix
                        ))
                        index += 1
                    }
                    return walkedAll
                }
            }
            return try await group.reduce(into: [Walked]()) { $0 += $1 }
        }
        let seconds = (ContinuousClock.now - start).inSeconds
        await http.shutdown()
        let sorted = perWorker.flatMap(\.latencies).sorted()
        func percentile(_ p: Double) -> Double { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
        let figure = USSDBenchmark.Figure(name: "handset hops through the balancer", hops: sorted.count, seconds: seconds, p50: percentile(0.5), p99: percentile(0.99))
        return Result(
            figure: figure, outcomes: perWorker.compactMap(\.outcome), retries: perWorker.map(\.retries).reduce(0, +),
            apologies: perWorker.filter(\.apology).count, unanswered: perWorker.filter(\.unanswered).count
        )
    }

    /// One journey: most are sends between seeded customers, some balances, and a few sends that
    /// must be refused (to a number with no wallet, to oneself).
    /// `firstHopDue`: when the first hop was due (an open loop's scheduled arrival); its latency
    /// counts from then.
    static func journey(
        _ http: CurlClient, _ url: String, session: String, pick: Int, customers: Int, mix: Mix, firstHopDue: ContinuousClock.Instant? = nil
    ) async -> Walked {
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
        var walked = Walked()
        var text = ""
        var reply = ""
        for (position, input) in ([nil] + inputs.map { Optional($0) }).enumerated() {
            if let input { text += (text.isEmpty ? "" : "*") + input }
            let sent = ContinuousClock.now
            guard let answered = await self.hop(http, url, session, phone, text) else {
                walked.outcome = Self.outcome(name, session, position, told: "unknown")
                walked.unanswered = true
                return walked
            }
            // The dispatcher's lag before the first hop counts as waiting, as a handset's would.
            let lag = position == 0 ? firstHopDue.map { max(0, (sent - $0).inSeconds) } ?? 0 : 0
            walked.latencies.append(answered.latency + lag)
            walked.retries += answered.retries
            reply = answered.reply
            if reply.hasPrefix("END") && position < inputs.count {
                walked.outcome = Self.outcome(name, session, position, told: "unknown")
                walked.apology = true
                Self.show(name, session, reply)
                return walked
            }
        }
        let told: String
        if reply.hasPrefix("END Sent") { told = "sent" }
        else if reply.contains("has no wallet") || reply.contains("cannot send money to yourself") { told = "refused" }
        else if reply.hasPrefix("END Balance") { told = "balance" }
        else if name == "menu" && reply.hasPrefix("CON ") { told = "menu" }
        else {
            told = "unknown"
            walked.apology = reply.hasPrefix("END")
            Self.show(name, session, reply)
        }
        walked.outcome = Self.outcome(name, session, inputs.count, told: told)
        return walked
    }

    /// With `HANDSETS_SHOW_UNKNOWN` set, writes an unexpected answer to standard error.
    static func show(_ journey: String, _ session: String, _ reply: String) {
        guard ProcessInfo.processInfo.environment["HANDSETS_SHOW_UNKNOWN"] != nil else { return }
        FileHandle.standardError.write(Data("unknown: \(journey) session \(session): \(reply)\n".utf8))
    }

    static func outcome(_ journey: String, _ session: String, _ hop: Int, told: String) -> Outcome? {
        journey == "balance" || journey == "menu"
            ? nil : Outcome(key: "ussd:\(session):\(hop + 1)", journey: journey, told: told, at: Date().timeIntervalSince1970)
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
