import AfricasTalking
import Basics
import Curl
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Synchronization

/// A simulated Africa's Talking messaging API inside the gateway process.
///
/// The real ``AfricasTalkingSMS`` client posts to ``pathPrefix``/version1/messaging as it would to
/// Africa's Talking; each accepted message lands in the recipient's ``SandboxInbox`` and, after
/// ``deliveryDelay``, a delivery report (`Success`) is posted over HTTP to the gateway's real
/// delivery route, so the outbox sees every message through to delivered.
public final class AfricasTalkingSandbox: Sendable {
    public static let pathPrefix = "/sandbox/africastalking"
    /// The simulated account. Not secrets: they open nothing but this simulation.
    public static let username = "sandbox"
    public static let apiKey = "sandbox-api-key"
    /// The sender a handset shows when the gateway sets no `AT_SENDER_ID`.
    public static let defaultSender = "AFRICASTKNG"
    /// Recipients one request may name (the gateway sends to one at a time).
    static let maximumRecipients = 100

    let inbox: SandboxInbox
    let scheduler: SandboxScheduler
    let http: CurlClient
    /// The gateway's delivery-report route, token included when there is one.
    let deliveryURL: String
    let deliveryDelay: Duration
    /// Whose numbers it delivers to, and the currency it prices messages in.
    let plan: NumberingPlan
    let currency: Currency
    let logger: Logger

    init(
        inbox: SandboxInbox, scheduler: SandboxScheduler, http: CurlClient, deliveryURL: String, deliveryDelay: Duration, plan: NumberingPlan,
        currency: Currency, logger: Logger
    ) {
        (self.plan, self.currency) = (plan, currency)
        self.inbox = inbox
        self.scheduler = scheduler
        self.http = http
        self.deliveryURL = deliveryURL
        self.deliveryDelay = deliveryDelay
        self.logger = logger
    }

    func register<Context: RequestContext>(on router: Router<Context>) {
        router.post(RouterPath(Self.pathPrefix + "/version1/messaging")) { request, _ -> Response in
            let body = try await request.body.collect(upTo: 64 * 1024)
            return self.messaging(request, Array(body.readableBytesView))
        }
    }

    private func messaging(_ request: Request, _ body: [UInt8]) -> Response {
        guard request.headers[HTTPField.Name("apiKey")!] == Self.apiKey else {
            return Response(status: .unauthorized, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "The supplied authentication is invalid")))
        }
        guard let fields = try? FormFields.parse(body), fields["username"] == Self.username, let message = fields["message"], !message.isEmpty,
            let to = fields["to"]
        else {
            return Self.json(400, #"{"SMSMessageData":{"Message":"InvalidRequest","Recipients":[]}}"#)
        }
        let sender = fields["from"].flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultSender
        let numbers = to.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        // Each recipient costs an inbox entry and a delivery report: a bounded number per request.
        guard numbers.count <= Self.maximumRecipients else {
            return Self.json(400, #"{"SMSMessageData":{"Message":"TooManyRecipients","Recipients":[]}}"#)
        }
        var recipients: [String] = []
        for number in numbers {
            // The form decoder reads a literal `+` as a space.
            let phone = number.hasPrefix("+") ? number : "+" + number.trimmingCharacters(in: .whitespaces)
            guard phone.dropFirst().allSatisfy(\.isNumber), let msisdn = MSISDN(parsing: phone, plan: self.plan), msisdn.international == phone else {
                recipients.append(#"{"statusCode":403,"number":\#(quoted(phone)),"status":"InvalidPhoneNumber","cost":"0","messageId":"None"}"#)
                continue
            }
            let id = "ATXid_" + DarajaSandbox.randomToken(32).lowercased()
            self.inbox.deliver(to: phone, from: sender, text: message, messageID: id, status: "Sent")
            recipients.append(#"{"statusCode":101,"number":\#(quoted(phone)),"status":"Success","cost":"\#(self.currency.code) 0.8000","messageId":\#(quoted(id))}"#)
            self.scheduler.after(self.deliveryDelay) { await self.report(id, phone: phone) }
        }
        let sent = recipients.filter { $0.contains(#""statusCode":101"#) }.count
        return Self.json(
            201, #"{"SMSMessageData":{"Message":"Sent to \#(sent)/\#(recipients.count) Total Cost: \#(self.currency.code) \#(sent * 8 / 10).\#(sent * 8 % 10)000","Recipients":[\#(recipients.joined(separator: ","))]}}"#
        )
    }

    /// Posts the delivery report Africa's Talking would, and marks the handset's copy delivered.
    private func report(_ id: String, phone: String) async {
        let fields = [("id", id), ("status", "Success"), ("phoneNumber", phone), ("networkCode", "99999"), ("retryCount", "0")]
        let body = fields.map { "\($0.0)=\(AfricasTalkingSMS.formEncode($0.1))" }.joined(separator: "&")
        do {
            let response = try await self.http.execute(
                CurlRequest(
                    method: "POST", url: self.deliveryURL, headers: [("Content-Type", "application/x-www-form-urlencoded")], body: Array(body.utf8),
                    timeout: .seconds(15)
                )
            )
            if response.status == 200 {
                self.inbox.mark(messageID: id, phone: phone, status: "Success")
            } else {
                self.logger.warning("sandbox delivery report not taken", metadata: ["status": .stringConvertible(response.status)])
            }
        } catch {
            self.logger.warning("sandbox delivery report not delivered", metadata: ["error": .string(String(describing: error))])
        }
    }

    static func json(_ status: Int, _ text: String) -> Response {
        Response(status: .init(code: status), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
