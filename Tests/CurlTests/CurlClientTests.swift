import Curl
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing
import TestSupport

/// Requests the slow route has begun answering.
let slowStarted = Atomic<Int>(0)

/// Holds concurrent requests until `expected` of them are in the server at once.
final class Rendezvous: Sendable {
    private let arrived = Mutex(0)
    let expected: Int
    init(expected: Int) { self.expected = expected }

    /// True when every expected request arrived while this one waited (up to 20 seconds).
    func meet() async -> Bool {
        self.arrived.withLock { $0 += 1 }
        return (try? await eventually(within: .seconds(20)) { self.arrived.withLock({ $0 }) >= self.expected }) ?? false
    }
}

/// A local HTTP server with the behaviours the client must cope with.
func testServer(rendezvous: Rendezvous = Rendezvous(expected: 100)) -> some ApplicationProtocol {
    let router = Router()
    router.get("/hello") { _, _ in
        Response(status: .ok, headers: [.contentType: "text/plain", HTTPField.Name("X-Greeting")!: "jambo"], body: .init(byteBuffer: ByteBuffer(string: "hi")))
    }
    router.post("/echo") { request, _ in
        let body = try await request.body.collect(upTo: 1 << 20)
        let token = request.headers[HTTPField.Name("X-Token")!] ?? "none"
        let type = request.headers[.contentType] ?? "none"
        return "\(request.method.rawValue) \(type) \(token) \(String(buffer: body))"
    }
    router.put("/echo") { request, _ in
        let body = try await request.body.collect(upTo: 1 << 20)
        return "\(request.method.rawValue) \(String(buffer: body))"
    }
    router.get("/missing") { _, _ -> Response in Response(status: .notFound, body: .init(byteBuffer: ByteBuffer(string: "no such thing"))) }
    router.get("/slow") { _, _ -> String in
        slowStarted.add(1, ordering: .relaxed)
        // A server slower than the client will wait: a real outside delay, played.
        try await Task.sleep(for: .seconds(5))
        return "late"
    }
    router.get("/together") { _, _ in await rendezvous.meet() ? "together" : "alone" }
    router.get("/big") { _, _ in String(repeating: "x", count: 100_000) }
    return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
}

@Suite struct CurlClientTests {
    @Test func getAndPostCarryHeadersBodiesAndStatuses() async throws {
        let curl = CurlClient()
        try await testServer().test(.live) { client in
            let base = "http://127.0.0.1:\(client.port!)"
            let hello = try await curl.execute(CurlRequest(url: base + "/hello"))
            #expect(hello.status == 200)
            #expect(hello.text == "hi")
            #expect(hello.header("x-greeting") == "jambo")

            let posted = try await curl.execute(
                CurlRequest(
                    method: "POST", url: base + "/echo",
                    headers: [("Content-Type", "application/json"), ("X-Token", "abc")],
                    body: Array(#"{"Amount":"10"}"#.utf8)
                )
            )
            #expect(posted.status == 200)
            #expect(posted.text == #"POST application/json abc {"Amount":"10"}"#)

            let put = try await curl.execute(CurlRequest(method: "PUT", url: base + "/echo", body: Array("payload".utf8)))
            #expect(put.text == "PUT payload")

            let missing = try await curl.execute(CurlRequest(url: base + "/missing"))
            #expect(missing.status == 404, "an HTTP error status is a response, not a thrown error")
            #expect(missing.text == "no such thing")
        }
        await curl.shutdown()
    }

    @Test func totalTimeoutFailsSlowRequests() async throws {
        let curl = CurlClient()
        try await testServer().test(.live) { client in
            let error = await #expect(throws: CurlError.self) {
                try await curl.execute(CurlRequest(url: "http://127.0.0.1:\(client.port!)/slow", timeout: .milliseconds(300)))
            }
            #expect(error?.code == .timeout)
            #expect(error?.description.contains("127.0.0.1") == false, "errors never repeat the URL")
        }
        await curl.shutdown()
    }

    @Test func refusedConnectionIsAConnectError() async throws {
        let curl = CurlClient()
        let error = await #expect(throws: CurlError.self) {
            try await curl.execute(CurlRequest(url: "http://127.0.0.1:1/", connectTimeout: .seconds(2)))
        }
        #expect(error?.code == .connect)
        await curl.shutdown()
    }

    @Test func serves100ConcurrentRequestsAtOnce() async throws {
        let curl = CurlClient()
        let rendezvous = Rendezvous(expected: 100)
        try await testServer(rendezvous: rendezvous).test(.live) { client in
            let url = "http://127.0.0.1:\(client.port!)/together"
            let answers = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<100 {
                    group.addTask { try await curl.execute(CurlRequest(url: url, timeout: .seconds(60))).text }
                }
                return try await group.reduce(into: [String]()) { $0.append($1) }
            }
            #expect(answers.count == 100)
            #expect(answers.allSatisfy { $0 == "together" }, "all 100 requests were in flight at the same time")
        }
        await curl.shutdown()
    }

    @Test func cancellingTheTaskAbortsTheRequest() async throws {
        let curl = CurlClient()
        try await testServer().test(.live) { client in
            let url = "http://127.0.0.1:\(client.port!)/slow"
            let started = slowStarted.load(ordering: .relaxed)
            let request = Task { try await curl.execute(CurlRequest(url: url, timeout: .seconds(60))) }
            let reached = try await eventually(within: .seconds(30)) { slowStarted.load(ordering: .relaxed) > started }
            #expect(reached, "the request reached the server")
            request.cancel()
            let result = await request.result
            #expect(throws: CancellationError.self) { try result.get() }
            #expect(try await curl.execute(CurlRequest(url: "http://127.0.0.1:\(client.port!)/hello")).status == 200)
        }
        await curl.shutdown()
    }

    @Test func oversizedResponsesFailInsteadOfFillingMemory() async throws {
        var configuration = CurlConfiguration()
        configuration.maximumResponseBytes = 10_000
        let curl = CurlClient(configuration: configuration)
        try await testServer().test(.live) { client in
            let error = await #expect(throws: CurlError.self) {
                try await curl.execute(CurlRequest(url: "http://127.0.0.1:\(client.port!)/big"))
            }
            #expect(error?.code == .transfer)
        }
        await curl.shutdown()
    }

    @Test func shutdownFailsRequestsInFlightAndRefusesNewOnes() async throws {
        let curl = CurlClient()
        try await testServer().test(.live) { client in
            let url = "http://127.0.0.1:\(client.port!)/slow"
            let started = slowStarted.load(ordering: .relaxed)
            let request = Task { try await curl.execute(CurlRequest(url: url, timeout: .seconds(60))) }
            let reached = try await eventually(within: .seconds(30)) { slowStarted.load(ordering: .relaxed) > started }
            #expect(reached, "the request reached the server")
            await curl.shutdown()
            let inFlight = await request.result
            #expect(throws: CurlError.self) { try inFlight.get() }
            let error = await #expect(throws: CurlError.self) { try await curl.execute(CurlRequest(url: url)) }
            #expect(error?.code == .shutdown)
        }
    }

    @Test func tlsCertificatesAreVerifiedByDefault() async throws {
        // Given an HTTPS server with a self-signed certificate for 127.0.0.1
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await ChildProcess.run(
            "/usr/bin/openssl",
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", directory + "/key.pem", "-out", directory + "/cert.pem",
            ]
        )
        let trusting: CurlClient = {
            var configuration = CurlConfiguration()
            configuration.caBundlePath = directory + "/cert.pem"
            return CurlClient(configuration: configuration)
        }()
        // Start s_server on a free port and wait until it answers; another test may take the
        // port between our look and its bind, so try a fresh port a few times.
        var server: ChildProcess?
        var url = ""
        var answered: CurlResponse?
        for _ in 0..<3 where answered == nil {
            if let server { await server.stop() }
            let port = try await PrivateServer.freePort()
            url = "https://127.0.0.1:\(port)/"
            server = try ChildProcess.start(
                "/usr/bin/openssl",
                ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", directory + "/cert.pem", "-key", directory + "/key.pem", "-www", "-quiet"]
            )
            _ = try await eventually(within: .seconds(30), every: .milliseconds(100)) {
                answered = try? await trusting.execute(CurlRequest(url: url, timeout: .seconds(5)))
                return answered != nil
            }
        }
        #expect(answered?.status == 200, "trusting the certificate's CA, the request succeeds; s_server said: \(server?.errorOutput ?? "")")

        // When a default client (system CAs) asks, verification fails
        let curl = CurlClient()
        let error = await #expect(throws: CurlError.self) { try await curl.execute(CurlRequest(url: url, timeout: .seconds(5))) }
        #expect(error?.code == .tls)
        await curl.shutdown()
        await trusting.shutdown()
        await server?.stop()
    }
}
