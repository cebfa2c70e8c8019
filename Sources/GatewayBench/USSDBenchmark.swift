import Basics
import Curl
import Foundation
import GatewayActions
import Logging
import Postgres
import ServiceLifecycle
import USSDGateway
import Wallet

/// `gateway-bench ussd`: the whole USSD path under load. A gateway is started in this process
/// on a free port; `concurrency` simulated sessions post hops to it over HTTP as Africa's Talking
/// would, and `/healthz` on the same server, driven the same way, is the floor of the HTTP stack.
public enum USSDBenchmark {
    public struct Figure: Sendable, CustomStringConvertible {
        public let name: String
        public let hops: Int
        public let seconds: Double
        public let p50: Double
        public let p99: Double
        public var perSecond: Double { Double(self.hops) / self.seconds }
        /// This figure next to the floor measured just before it.
        public func ratio(to floor: Figure) -> Double { self.perSecond / floor.perSecond }
        public var description: String {
            String(format: "%@: %d requests in %.2f s = %.0f/s, p50 %.2f ms, p99 %.2f ms", self.name, self.hops, self.seconds, self.perSecond, self.p50 * 1000, self.p99 * 1000)
        }
    }

    static let pin = "4826"

    public static func run(_ base: GatewayConfig, concurrency: Int, journeys: Int, customers: Int = 2_000) async throws -> [Figure] {
        var config = base
        config.httpPort = 0
        config.ussd.rateLimitPerMinute = 0
        // Journeys that end on a CON screen would leave resume offers for the next dial of the number.
        config.ussd.resumeWindowSeconds = 0
        config.postgres = try BenchmarkDatabase.checked(config.postgres)
        config.postgres.statementTimeout = nil
        let setup = PostgresClient(configuration: config.postgres)
        try await WalletBenchmark.prepare(setup, customers: customers, pins: try config.openPINVault(), pin: Self.pin)
        await setup.shutdown()

        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        let (portStream, portContinuation) = AsyncStream<Int>.makeStream()
        let app = try buildApplication(config: config, logger: logger) { port in portContinuation.yield(port) }
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        let server = Task { try await group.run() }
        var ports = portStream.makeAsyncIterator()
        guard let port = await ports.next() else { throw BenchmarkError.serverDidNotStart }

        var curlConfiguration = CurlConfiguration()
        curlConfiguration.maximumCachedConnections = concurrency * 2
        let http = CurlClient(configuration: curlConfiguration)
        let url = "http://127.0.0.1:\(port)/ussd/africastalking"
        let run = UUID().uuidString.prefix(6).lowercased()

        // Warm-up: connections, prepared statements, plan caches.
        _ = try await self.drive("warm-up", concurrency: concurrency, count: concurrency * 4) { index in
            [try await self.hop(http, url, "w\(run)-\(index)", self.number(index % customers + 1), "")]
        }
        // The floor is measured again right before each kind of journey, so each ratio compares
        // two measurements taken within seconds of each other on this shared machine.
        let floorRequests = journeys * 3
        func floor() async throws -> Figure {
            try await self.drive("GET /healthz (the floor)", concurrency: concurrency, count: floorRequests) { _ in
                let start = ContinuousClock.now
                let response = try await http.execute(CurlRequest(url: "http://127.0.0.1:\(port)/healthz"))
                guard response.status == 200 else { throw BenchmarkError.unexpected(response.text) }
                return [(ContinuousClock.now - start).inSeconds]
            }
        }
        var figures: [Figure] = []
        figures.append(try await floor())
        figures.append(try await self.drive("menu hops (dial, Savings, back, My Account, home)", concurrency: concurrency, count: journeys) { index in
            let session = "m\(run)-\(index)", phone = self.number(index % customers + 1)
            var times: [Double] = []
            var text = ""
            for input in [nil, "5", "0", "7", "00"] as [String?] {
                if let input { text += (text.isEmpty ? "" : "*") + input }
                times.append(try await self.hop(http, url, session, phone, text))
            }
            return times
        })
        figures.append(try await floor())
        figures.append(try await self.drive("balance journeys (dial, 1, PIN): every hop", concurrency: concurrency, count: journeys / 2) { index in
            let session = "b\(run)-\(index)", phone = self.number(index % customers + 1)
            return [
                try await self.hop(http, url, session, phone, ""), try await self.hop(http, url, session, phone, "1"),
                try await self.hop(http, url, session, phone, "1*\(self.pin)", expect: "END Balance"),
            ]
        })
        figures.append(try await floor())
        figures.append(try await self.drive("send-money journeys (dial, 4, number, amount, 1, PIN): every hop", concurrency: concurrency, count: journeys / 2) { index in
            let session = "s\(run)-\(index)", from = index % customers + 1
            let phone = self.number(from), to = "07" + String(format: "%08d", from % customers + 1)
            var times: [Double] = []
            var text = ""
            for input in [nil, "4", to, "100", "1", self.pin] as [String?] {
                if let input { text += (text.isEmpty ? "" : "*") + input }
                times.append(try await self.hop(http, url, session, phone, text, expect: input == self.pin ? "END Sent" : nil))
            }
            return times
        })
        await http.shutdown()
        await group.triggerGracefulShutdown()
        _ = try? await server.value
        return figures
    }

    static func number(_ index: Int) -> String { "+2547" + String(format: "%08d", index) }

    /// Posts one hop; its latency in seconds.
    static func hop(_ http: CurlClient, _ url: String, _ session: String, _ phone: String, _ text: String, expect: String? = nil) async throws -> Double {
        let body = "sessionId=\(session)&phoneNumber=\(phone.replacingOccurrences(of: "+", with: "%2B"))&networkCode=63902&serviceCode=%2A384%2A96%23&text="
            + text.replacingOccurrences(of: "*", with: "%2A")
        let start = ContinuousClock.now
        let response = try await http.execute(
            CurlRequest(method: "POST", url: url, headers: [("Content-Type", "application/x-www-form-urlencoded")], body: Array(body.utf8))
        )
        let elapsed = (ContinuousClock.now - start).inSeconds
        let reply = response.text
        guard response.status == 200, reply.hasPrefix(expect ?? "CON") || (expect == nil && reply.hasPrefix("END")) else {
            throw BenchmarkError.unexpected("\(response.status) \(reply)")
        }
        return elapsed
    }

    /// Runs `count` journeys over `concurrency` tasks; throughput in requests and latency percentiles.
    static func drive(_ name: String, concurrency: Int, count: Int, _ journey: @escaping @Sendable (Int) async throws -> [Double]) async throws -> Figure {
        let start = ContinuousClock.now
        let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    var mine: [Double] = []
                    var index = worker
                    while index < count {
                        mine += try await journey(index)
                        index += concurrency
                    }
                    return mine
                }
            }
            return try await group.reduce(into: [Double]()) { $0 += $1 }
        }
        let seconds = (ContinuousClock.now - start).inSeconds
        let sorted = latencies.sorted()
        func percentile(_ p: Double) -> Double { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
        return Figure(name: name, hops: sorted.count, seconds: seconds, p50: percentile(0.50), p99: percentile(0.99))
    }
}
