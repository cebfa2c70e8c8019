import Foundation
@testable import GatewayActions
@testable import GatewayHTTP
@testable import GatewayTestSupport
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
@testable import MPesaGateway
@testable import SMSChannel
import Synchronization
import Testing
import TestSupport
@testable import USSDChannel
@testable import USSDGateway

@Suite struct HealthRoutesTests {
    func config() throws -> GatewayConfig {
        var config = try GatewayConfig.load(environment: ProcessInfo.processInfo.environment.merging(["ENVIRONMENT": "development", "SANDBOX": "off"]) { $1 })
        config.httpPort = 0
        return config
    }

    @Test func healthzAndReadyzAnswer200WhenRedisAndPostgresAnswer() async throws {
        let app = try buildApplication(config: try self.config())
        try await app.test(.live) { client in
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == "ok\n")
            }
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == "ready\nredis: ok\npostgres: ok\nmpesa: not configured\nsms: not configured\n", "M-Pesa and SMS unset: reported, not a reason to be unready")
            }
        }
    }

    @Test func readyzAnswers503NamingRedisWhenItIsDown() async throws {
        let redis = try await PrivateServer.start(.redis)
        try await redis.stop()
        var config = try self.config()
        config.redis = redis.redisConfiguration
        try await buildApplication(config: config).test(.router) { client in
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                let body = String(buffer: response.body)
                #expect(body.hasPrefix("not ready: redis\n"))
                #expect(body.contains("redis: redis connection failed"))
                #expect(body.contains("postgres: ok"))
            }
        }
        await redis.remove()
    }

    @Test func readyzAnswers503NamingPostgresWhenItIsDown() async throws {
        var config = try self.config()
        config.postgres.connectionString = "postgres://ussd:secret-password@127.0.0.1:1/ussd"
        try await buildApplication(config: config).test(.router) { client in
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                let body = String(buffer: response.body)
                #expect(body.hasPrefix("not ready: postgres\n"))
                #expect(!body.contains("secret-password"))
            }
        }
    }

    @Test func metricsCountRequestsByRouteAndStatusWithLatencyHistograms() async throws {
        try await buildApplication(config: try self.config()).test(.live) { client in
            for _ in 0..<3 { try await client.execute(uri: "/healthz", method: .get) { _ in } }
            try await client.execute(uri: "/no-such-route", method: .get) { response in #expect(response.status == .notFound) }
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
                let text = String(buffer: response.body)
                let healthz = text.split(separator: "\n").first { $0.hasPrefix("http_requests_total{") && $0.contains(#"route="/healthz""#) && $0.contains(#"status="200""#) }
                #expect(healthz != nil, "no request counter for /healthz in:\n\(text)")
                #expect(healthz.map { Int($0.split(separator: " ").last!)! >= 3 } == true)
                #expect(text.contains("http_request_duration_seconds_bucket{"))
                #expect(text.contains(#"status="404""#))
            }
        }
    }

    @Test func eachRequestLogsOneLineWithRouteStatusDurationAndIDButNoBody() async throws {
        let capture = LogCapture()
        let app = try buildApplication(config: try self.config(), logger: capture.logger)
        try await app.test(.live) { client in
            try await client.execute(uri: "/healthz", method: .get, headers: [HTTPField.Name("X-Request-Id")!: "at-req-42"]) { response in
                #expect(response.headers[HTTPField.Name("X-Request-Id")!] == "at-req-42")
            }
            try await client.execute(
                uri: "/ussd/secret-token-in-path", method: .post,
                headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "sessionId=s1&text=1*4321")
            ) { response in
                #expect(response.status == .notFound)
                #expect(response.headers[HTTPField.Name("X-Request-Id")!]?.isEmpty == false)
            }
        }
        let lines = capture.all.filter { $0.message == "request" }
        #expect(lines.count == 2)
        #expect(lines.first?.metadata["route"] == "/healthz")
        #expect(lines.first?.metadata["request_id"] == "at-req-42")
        #expect(lines.first?.metadata["status"] == "200")
        #expect(lines.first?.metadata["duration_ms"].flatMap(Double.init) != nil)
        #expect(lines.last?.metadata["method"] == "POST")
        #expect(lines.last?.metadata["status"] == "404")
        let everything = capture.all.map { "\($0.message) \($0.metadata)" }.joined(separator: "\n")
        #expect(!everything.contains("4321"), "request bodies never reach the logs")
        #expect(!everything.contains("secret-token-in-path"), "raw paths never reach the logs")
    }
}

@Suite struct UnexpectedErrorTests {
    struct LeakyError: Error, CustomStringConvertible {
        var description: String { "could not decode text=1*2*0712345678*500*4321" }
    }

    @Test func unexpectedErrorsAnswer500WithTheRequestIDAndLogNoMessage() async throws {
        let capture = LogCapture()
        let router = Router()
        router.add(middleware: RequestLogMiddleware(logger: capture.logger))
        router.post("/explode") { _, _ -> String in throw LeakyError() }
        try await Application(router: router).test(.router) { client in
            try await client.execute(uri: "/explode", method: .post, headers: [HTTPField.Name("X-Request-Id")!: "boom-1"]) { response in
                #expect(response.status == .internalServerError)
                #expect(String(buffer: response.body) == "internal error (request id boom-1)\n")
            }
        }
        let logged = capture.all.map { "\($0.message) \($0.metadata)" }.joined(separator: "\n")
        #expect(logged.contains("unhandled error"))
        #expect(logged.contains("LeakyError"))
        #expect(!logged.contains("4321"), "an unknown error's message may hold a PIN and is never logged")
    }
}
