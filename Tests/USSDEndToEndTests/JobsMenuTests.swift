import Basics
import Foundation
@testable import GatewayTestSupport
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import TestSupport
import Testing
import USSDGateway
import Wallet

/// A jobs marketplace's API, as the menus' `http` actions call it: categories, open jobs by
/// category (pay in cents), and applications, behind an `X-Api-Key`. Scripted to be slow, to fail
/// or to refuse, and counting what it was asked.
final class FakeJobs: Sendable {
    static let key = "jobs-key-0123456789"

    enum Mode: Sendable, Equatable {
        case normal
        /// Answers after this long.
        case slow(Duration)
        /// Answers with this status.
        case status(Int)
    }

    struct State {
        var categories: Mode = .normal
        var jobs: Mode = .normal
        var apply: Mode = .normal
        var requests: [(path: String, headers: [String: String], body: String)] = []
        var applications: Set<String> = []
    }

    let state = Mutex(State())
    private let server = LocalServer.Handle()
    var url: String { "http://127.0.0.1:\(self.server.port)" }

    static func start() async -> FakeJobs {
        let fake = FakeJobs()
        await fake.server.start(fake.router())
        return fake
    }

    func stop() async { await self.server.stop() }

    func count(_ prefix: String) -> Int { self.state.withLock { $0.requests.filter { $0.path.hasPrefix(prefix) }.count } }
    func requests(_ prefix: String) -> [(path: String, headers: [String: String], body: String)] {
        self.state.withLock { $0.requests.filter { $0.path.hasPrefix(prefix) } }
    }

    /// Twelve driving jobs: more than one page holds.
    static let jobs: [JSONValue] = (1...12).map { (n: Int) -> JSONValue in
        let location = n % 2 == 0 ? "Westlands" : "Embakasi"
        let pay = Int64(100_000 + n * 5_000)
        let members: [String: JSONValue] = [
            "id": .string("drv-\(n)"), "title": .string("Driver \(n)"), "location": .string(location), "payCents": .integer(pay),
            "employer": .string("Fleet Ltd"),
        ]
        return .object(members)
    }

    private func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/categories") { request, _ in
            await self.answer(request, "", \.categories) {
                #"{"categories":[{"id":"drv","name":"Driving"},{"id":"hsk","name":"Housekeeping"},{"id":"sec","name":"Security"}]}"#
            }
        }
        router.get("/jobs") { request, _ in
            await self.answer(request, "", \.jobs) {
                let category = request.uri.queryParameters["category"].map(String.init) ?? ""
                let jobs: [JSONValue] = category == "drv" ? FakeJobs.jobs : []
                return JSONValue.object(["jobs": .array(jobs)]).serialized
            }
        }
        router.post("/jobs/:id/applications") { request, context in
            let body = String(buffer: try await request.body.collect(upTo: 4096))
            let id = context.parameters.get("id") ?? ""
            return await self.answer(request, body, \.apply) {
                let applicant = JSONValue.parse(Array(body.utf8))?["msisdn"]?.string ?? ""
                if id == "drv-5" { return "410" }
                let fresh = self.state.withLock { $0.applications.insert(applicant + "|" + id).inserted }
                return fresh ? #"{"applicationId":"app-1"}"# : "409"
            }
        }
        return router
    }

    /// Records the request, checks the key, and answers as the mode says (the body, or a bare
    /// status when the body is one).
    private func answer(
        _ request: Request, _ body: String, _ mode: KeyPath<State, Mode>, _ make: @Sendable () -> String
    ) async -> Response {
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        let path = request.uri.path + (request.uri.query.map { "?" + $0 } ?? "")
        let current = self.state.withLock { state in
            state.requests.append((path, headers, body))
            return state[keyPath: mode]
        }
        guard headers["x-api-key"] == Self.key else { return Self.json(401, #"{"error":"no key"}"#) }
        switch current {
        // A backend slower than the hop's deadline: a real outside delay, played.
        case .slow(let delay): try? await Task.sleep(for: delay)
        case .status(let status): return Self.json(status, #"{"error":"scripted"}"#)
        case .normal: break
        }
        let text = make()
        if let status = Int(text) { return Self.json(status, #"{"error":"refused"}"#) }
        return Self.json(200, text)
    }

    static func json(_ status: Int, _ text: String) -> Response {
        Response(status: .init(code: status), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

/// Option 6, Jobs: the default menus.json's `http` actions and `list` screens against the fake
/// jobs API, through the live gateway.
@Suite struct JobsMenuTests {
    static func harness(_ fake: FakeJobs?, hopDeadline: Duration = .milliseconds(4000)) async throws -> USSDHarness {
        try await USSDHarness.make { config in
            if let fake { config.backendValues = ["JOBS_API_URL": fake.url + "/", "JOBS_API_KEY": FakeJobs.key] }
            config.ussd.hopDeadline = hopDeadline
        }
    }

    @Test func browsePagePickAndApplyOnceWithAnSMS() async throws {
        let fake = await FakeJobs.start()
        let harness = try await Self.harness(fake)
        let local = freshLocal()
        let msisdn = try await harness.customer(local, name: "Wekesa", pin: TypedPINs.achieng)
        try await harness.run(.live) { client in
            var phone = Phone(client, local, graph: harness.graph)
            _ = try await phone.dial()
            #expect(try await phone.type("6") == "CON Jobs: choose a category\n1. Driving\n2. Housekeeping\n3. Security\n0. Back")
            let first = try await phone.type("1")
            #expect(first.hasPrefix("CON Driving jobs\n1. Driver 1, Embakasi, KES 1,050/day\n2. Driver 2, Westlands, KES 1,100/day"), "\(first)")
            #expect(first.hasSuffix("98. More\n0. Back") && !first.contains("12. "))
            var seen = first
            for _ in 0..<5 where seen.contains("98. More") { seen = try await phone.type("98") }
            #expect(seen.contains("12. Driver 12, Westlands, KES 1,600/day"), "the last page: \(seen)")
            #expect(try await phone.type("12") == "CON Driver 12\nWestlands\nKES 1,600 a day\n1. Apply\n0. Back")
            #expect(try await phone.type("1").hasPrefix("CON Apply for Driver 12 in Westlands?"))
            let applied = try await phone.type("1")
            #expect(applied == "END Application sent for Driver 12. You will get an SMS.")
            #expect(try await phone.repeatLast() == applied, "the aggregator posts the hop again")
            #expect(try await phone.repeatLast() == applied)
            // Categories may be kept 300 s (cacheSeconds): the next session's list needs no call.
            _ = try await phone.dial()
            #expect(try await phone.type("6").contains("1. Driving"))
        }
        let posts = fake.requests("/jobs/drv-12/applications")
        #expect(posts.count == 1, "a POST is called once, however often its hop comes")
        let body = JSONValue.parse(Array((posts.first?.body ?? "").utf8))
        #expect(body?["msisdn"]?.string == msisdn.value && body?["jobId"]?.string == "drv-12")
        #expect(posts.first?.headers["idempotency-key"]?.hasPrefix("ussd:") == true, "the hop's key goes with the POST")
        #expect(fake.count("/jobs?category=drv") == 1 && fake.count("/categories") == 1)
        #expect(try await harness.notices(msisdn, "job_applied") == 1, "confirmed by SMS")
        let logged = harness.capture.all.filter { $0.message == "http action" }
        #expect(
            logged.map { $0.metadata["outcome"] ?? "" } == ["ok", "ok", "ok", "cached"] && logged.allSatisfy { $0.metadata["backend"] == "jobs" })
        #expect(!harness.capture.all.contains { "\($0.message) \($0.metadata)".contains(FakeJobs.key) || "\($0.metadata)".contains(msisdn.value) })
        await harness.finish()
        await fake.stop()
    }

    @Test func aSlowBackendEndsOnItsFailureScreenWithinTheHopDeadline() async throws {
        let fake = await FakeJobs.start()
        fake.state.withLock { $0.categories = .slow(.seconds(6)) }
        // The call's own budget (two tries of 1.5 s) must end it. The hop's deadline is raised to
        // 6 s here so that a starved test machine cannot race the two.
        let harness = try await Self.harness(fake, hopDeadline: .seconds(6))
        let local = freshLocal()
        _ = try await harness.customer(local, name: "Auma", pin: TypedPINs.achieng)
        try await harness.run(.live) { client in
            var phone = Phone(client, local, graph: harness.graph)
            _ = try await phone.dial()
            #expect(try await phone.type("6") == "END Jobs are not available right now. Please try again later.")
        }
        #expect(fake.count("/categories") == 2, "a GET is tried once more after its timeout")
        #expect(harness.capture.all.contains { $0.message == "http action" && $0.metadata["outcome"] == "timeout" })
        #expect(!harness.capture.all.contains { $0.message == "ussd hop failed" }, "the call's own timeout ended it, not the hop deadline")
        await harness.finish()
        await fake.stop()
    }

    @Test func anOpenBreakerAnswersAtOnceAndA4xxAndA5xxReachTheirOwnScreens() async throws {
        let fake = await FakeJobs.start()
        let harness = try await Self.harness(fake)
        let local = freshLocal()
        _ = try await harness.customer(local, name: "Kiprop", pin: TypedPINs.achieng)
        try await harness.run(.live) { client in
            var phone = Phone(client, local, graph: harness.graph)
            // 410 for a closed job, 409 for a second application: each its own screen.
            fake.state.withLock { _ = $0.applications.insert("254" + local.dropFirst() + "|drv-3") }
            _ = try await phone.dial()
            for input in ["6", "1", "3", "1"] { _ = try await phone.type(input) }
            #expect(try await phone.type("1") == "END You have already applied for this job.")
            fake.state.withLock { $0.apply = .status(503) }
            _ = try await phone.dial()
            for input in ["6", "1", "4", "1"] { _ = try await phone.type(input) }
            #expect(try await phone.type("1") == "END Jobs are not available right now. Please try again later.", "a 5xx")

            // Five failed calls in a row open the breaker; the sixth hop is answered without a call.
            fake.state.withLock { $0.jobs = .status(500) }
            for _ in 0..<5 {
                _ = try await phone.dial()
                for input in ["6"] { _ = try await phone.type(input) }
                #expect(try await phone.type("2") == "END Jobs are not available right now. Please try again later.")
            }
            let asked = fake.count("/jobs?")
            _ = try await phone.dial()
            for input in ["6"] { _ = try await phone.type(input) }
            #expect(try await phone.type("2") == "END Jobs are not available right now. Please try again later.")
            #expect(fake.count("/jobs?") == asked, "the open breaker answered without calling")
            let metrics = String(buffer: try await client.execute(uri: "/metrics", method: .get).body)
            // The gauge is the process's: other tests' gateways set it too, so only its presence is this test's.
            #expect(metrics.contains(#"http_backend_breaker_open{backend="jobs"}"#))
            #expect(metrics.contains(#"http_action_calls_total{backend="jobs",outcome="breaker_open"}"#))
        }
        await harness.finish()
        await fake.stop()
    }

    @Test func aClosedJobGetsItsScreenAndWithoutTheAPIOptionSixSaysSo() async throws {
        let fake = await FakeJobs.start()
        let harness = try await Self.harness(fake)
        let local = freshLocal()
        _ = try await harness.customer(local, name: "Nyokabi", pin: TypedPINs.achieng)
        try await harness.run(.live) { client in
            var phone = Phone(client, local, graph: harness.graph)
            _ = try await phone.dial()
            for input in ["6", "1", "5", "1"] { _ = try await phone.type(input) }
            #expect(try await phone.type("1") == "END This job is no longer open.", "a 410")
        }
        let unconfigured = try await Self.harness(nil)
        _ = try await unconfigured.customer(local, name: "Nyokabi", pin: TypedPINs.achieng)
        try await unconfigured.run(.live) { client in
            var phone = Phone(client, local, graph: unconfigured.graph)
            _ = try await phone.dial()
            let answer = try await phone.type("6")
            #expect(answer == "END Jobs are not available right now. Please try again later.", "\(answer)")
        }
        #expect(unconfigured.capture.all.contains { $0.message == "http action" && $0.metadata["outcome"] == "unconfigured" })
        await unconfigured.finish()
        await harness.finish()
        await fake.stop()
    }
}
