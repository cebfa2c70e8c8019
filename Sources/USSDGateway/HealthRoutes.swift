import Basics
import GatewayHTTP
import GatewayTelemetry
import Hummingbird
import Postgres
import Redis

/// `GET /healthz`, `GET /readyz` and `GET /metrics`.
struct HealthRoutes {
    let redis: RedisClient
    let postgres: PostgresClient
    /// How M-Pesa runs, reported by /readyz: `configured`, `sandbox` or `not configured` (which
    /// does not make the gateway unready).
    var mpesa = ProviderMode.notConfigured
    /// How SMS runs, reported by /readyz like M-Pesa.
    var sms = ProviderMode.notConfigured
    /// Longest a readiness check may take before it counts as failed.
    var checkTimeout: Duration = .seconds(2)

    /// The routes, each of which may be served by the public or the admin listener.
    enum Part: CaseIterable {
        case health, readiness, metrics
    }

    func register(on router: Router<some RequestContext>, parts: Set<Part> = Set(Part.allCases)) {
        // Alive: the process answers HTTP. Dependencies are /readyz's business.
        if parts.contains(.health) { router.get("/healthz") { _, _ in "ok\n" } }
        if parts.contains(.readiness) { router.get("/readyz") { _, _ in try await self.readiness() } }
        if parts.contains(.metrics) {
            router.get("/metrics") { _, _ in
                Response(
                    status: .ok,
                    headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                    body: .init(byteBuffer: ByteBuffer(string: GatewayMetrics.render()))
                )
            }
        }
    }

    /// `GET /healthz` on the hop server: the public listener's liveness, answered in the channel
    /// pipeline like a hop (and the floor a hop's cost is measured against).
    func register(on hops: HopRoutes) {
        hops.add(.get, "/healthz") { _ in .text("ok\n") }
    }

    /// Each dependency and what is wrong with it (nil when it answered): Redis `PING` and Postgres
    /// `SELECT 1`, each within ``checkTimeout``. Also what the dependency probe reports as
    /// `gateway_dependency_up` (``OperationsGauges``).
    func dependencyProblems() async -> [(name: String, problem: String?)] {
        async let redisCheck = self.check { try await self.redis.ping() }
        async let postgresCheck = self.check {
            let rows = try await self.postgres.query("SELECT 1")
            return try rows.single()?.decode(Int.self, column: 0) == 1
        }
        return [("redis", await redisCheck), ("postgres", await postgresCheck)]
    }

    /// 200 when Redis answers PING and Postgres `SELECT 1`; otherwise 503 naming what failed.
    func readiness() async throws -> Response {
        let results = await self.dependencyProblems()
        let failed = results.filter { $0.1 != nil }
        let lines = results.map { name, problem in "\(name): \(problem ?? "ok")" } + [
            "mpesa: \(self.mpesa.rawValue)", "sms: \(self.sms.rawValue)",
        ]
        if failed.isEmpty {
            return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: "ready\n" + lines.joined(separator: "\n") + "\n")))
        }
        let names = failed.map(\.0).joined(separator: ", ")
        return Response(
            status: .serviceUnavailable,
            headers: [.contentType: "text/plain; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: "not ready: \(names)\n" + lines.joined(separator: "\n") + "\n"))
        )
    }

    /// Runs one check under the timeout; nil when it passed, else a reason safe to show.
    private func check(_ body: @escaping @Sendable () async throws -> Bool) async -> String? {
        let timeout = self.checkTimeout
        return await withTaskGroup(of: String?.self) { group in
            group.addTask {
                do {
                    return try await body() ? nil : "unexpected answer"
                } catch {
                    return safeDescription(of: error)
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return "no answer within \(timeout)"
            }
            let first = await group.next()!
            group.cancelAll()
            return first
        }
    }
}
