import Foundation
@testable import GatewayActions
@testable import GatewayHTTP
import HTTPTypes
import Hummingbird
@testable import MPesaGateway
@testable import SMSChannel
import Synchronization
@testable import USSDChannel

/// A local Africa's Talking messaging API that checks each request against
/// docs/reference/africastalking.md (form body, `apiKey` and `Accept` headers, only the
/// documented fields) and answers as scripted: success, a per-recipient failure, an HTTP error,
/// or no answer at all.
final class FakeAfricasTalking: Sendable {
    static let username = "sandbox"
    static let apiKey = "fake-at-api-key-0123456789"

    enum Answer: Sendable {
        case accept
        /// 201 with this per-recipient statusCode and status.
        case recipient(Int, String)
        case http(Int)
        case hang
    }

    struct Message: Sendable, Hashable {
        let to: String
        let text: String
        let from: String?
        let messageID: String?
        /// When the fake took it (the tests run in the same process, so the clocks agree).
        var receivedAt = ContinuousClock.now
    }

    struct State {
        var script: [Answer] = []
        var messages: [Message] = []
        var requests = 0
        var violations: [String] = []
    }

    let state = Mutex(State())
    private let running = Mutex<(port: Int, task: Task<Void, any Error>?)>((0, nil))
    var baseURL: String { "http://127.0.0.1:\(self.running.withLock { $0.port })" }
    var messages: [Message] { self.state.withLock { $0.messages } }
    var violations: [String] { self.state.withLock { $0.violations } }

    static func start() async throws -> FakeAfricasTalking {
        let fake = FakeAfricasTalking()
        let router = Router()
        router.post("/version1/messaging") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            return await fake.messaging(request, String(buffer: body))
        }
        let server = await LocalServer.start(router)
        fake.running.withLock { $0 = server }
        return fake
    }

    func stop() async {
        guard let task = self.running.withLock({ $0.task }) else { return }
        task.cancel()
        _ = try? await task.value
    }

    /// The texts sent to `msisdn` (`2547...`), in order.
    func texts(to msisdn: String) -> [String] { self.messages.filter { $0.to == "+" + msisdn }.map(\.text) }

    private func messaging(_ request: HummingbirdCore.Request, _ body: String) async -> Response {
        var problems: [String] = []
        if request.headers[HTTPField.Name("apiKey")!] != Self.apiKey { problems.append("apiKey header") }
        if request.headers[.accept] != "application/json" { problems.append("Accept is not application/json") }
        if request.headers[.contentType] != "application/x-www-form-urlencoded" { problems.append("Content-Type is not a form") }
        var fields: [String: String] = [:]
        for pair in body.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "" }
            if fields[parts[0]] != nil { problems.append("field \(parts[0]) twice") }
            fields[parts[0]] = parts.count > 1 ? parts[1] : ""
        }
        let extra = Set(fields.keys).subtracting(["username", "to", "message", "from", "enqueue", "bulkSMSMode", "linkId", "keyword"])
        if !extra.isEmpty { problems.append("undocumented fields \(extra.sorted())") }
        if fields["username"] != Self.username { problems.append("username") }
        let to = fields["to"] ?? ""
        if !(to.hasPrefix("+2547") || to.hasPrefix("+2541")) || to.count != 13 { problems.append("to \(to) is not +254XXXXXXXXX") }
        if (fields["message"] ?? "").isEmpty { problems.append("empty message") }
        if !problems.isEmpty {
            self.state.withLock { $0.violations += problems }
            return Self.json(400, #"{"SMSMessageData":{"Message":"InvalidRequest","Recipients":[]}}"#)
        }
        let answer = self.state.withLock { state -> Answer in
            state.requests += 1
            return state.script.isEmpty ? .accept : state.script.removeFirst()
        }
        switch answer {
        case .accept:
            let id = "ATXid_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
            self.state.withLock { $0.messages.append(Message(to: to, text: fields["message"]!, from: fields["from"], messageID: id)) }
            return Self.json(201, #"{"SMSMessageData":{"Message":"Sent to 1/1 Total Cost: KES 0.8000","Recipients":[{"statusCode":101,"number":"\#(to)","status":"Success","cost":"KES 0.8000","messageId":"\#(id)"}]}}"#)
        case .recipient(let code, let status):
            return Self.json(201, #"{"SMSMessageData":{"Message":"Sent to 0/1 Total Cost: 0","Recipients":[{"statusCode":\#(code),"number":"\#(to)","status":"\#(status)","cost":"0","messageId":"None"}]}}"#)
        case .http(let status):
            return Response(status: .init(code: status), headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "upstream trouble")))
        case .hang:
            // Africa's Talking taking longer than the sender waits: a real outside delay, played.
            try? await Task.sleep(for: .seconds(3))
            return Self.json(500, "{}")
        }
    }

    static func json(_ status: Int, _ text: String) -> Response {
        Response(status: .init(code: status), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
