import Curl
import Foundation
import Hummingbird
import Logging
import Basics
import ServiceLifecycle

/// The embedded sandbox of a development gateway: a simulated Daraja, a simulated Africa's
/// Talking messaging API, and the handsets' inboxes, all on the gateway's own listener; and a
/// mail server on a loopback port of its own that keeps the reports mailed to it.
///
/// The gateway's real clients are pointed at it (`MPESA_BASE_URL`, `AT_SMS_BASE_URL`), so every
/// request, callback, reconciliation and delivery report runs as it does live; only the far end
/// is simulated. The configuration never switches it on in production.
public final class Sandbox: Service, Sendable {
    public struct Settings: Sendable {
        /// Simulate Daraja.
        public var mpesa: Bool
        /// Simulate MTN MoMo (``MoMoSandbox``).
        public var momo = false
        /// Simulate Africa's Talking's messaging API.
        public var sms: Bool
        /// How long the simulated customer takes to answer an STK prompt, and Safaricom a B2C payment.
        public var delay: Duration
        /// How long before a delivery report follows a message.
        public var deliveryDelay: Duration
        /// The gateway's delivery-report URL, token included when there is one.
        public var deliveryURL: String
        /// The gateway's paybill confirmation and validation URLs, token included when there is
        /// one: where a simulated customer's paybill payment is reported until others are registered.
        public var paybillURLs: (confirmation: String, validation: String)?
        /// Whose numbers the simulated customers and handsets have.
        public var plan: NumberingPlan
        /// The deployment's currency (what the simulated providers price and pay in).
        public var currency: Currency = .kenyanShilling
        /// The loopback port of the mail server (``SandboxMailServer``), 0 for a free one; nil: no mail server.
        public var mailPort: Int?

        public init(
            mpesa: Bool, sms: Bool, delay: Duration, deliveryDelay: Duration, deliveryURL: String,
            paybillURLs: (confirmation: String, validation: String)? = nil, plan: NumberingPlan = .kenya, mailPort: Int? = nil
        ) {
            self.plan = plan
            self.mailPort = mailPort
            self.mpesa = mpesa
            self.sms = sms
            self.delay = delay
            self.deliveryDelay = deliveryDelay
            self.deliveryURL = deliveryURL
            self.paybillURLs = paybillURLs
        }
    }

    public let settings: Settings
    public let inbox = SandboxInbox()
    let scheduler = SandboxScheduler()
    let daraja: DarajaSandbox?
    let momo: MoMoSandbox?
    let africasTalking: AfricasTalkingSandbox?
    /// The mail server, when ``Settings/mailPort`` asks for one.
    public let mail: SandboxMailServer?

    public init(settings: Settings, http: CurlClient, logger: Logger) {
        self.settings = settings
        self.daraja =
            settings.mpesa
            ? DarajaSandbox(
                delay: settings.delay, inbox: self.inbox, scheduler: self.scheduler, http: http, paybillURLs: settings.paybillURLs, plan: settings.plan,
                logger: logger)
            : nil
        self.momo =
            settings.momo
            ? MoMoSandbox(delay: settings.delay, inbox: self.inbox, scheduler: self.scheduler, http: http, currency: settings.currency, logger: logger) : nil
        self.africasTalking =
            settings.sms
            ? AfricasTalkingSandbox(
                inbox: self.inbox, scheduler: self.scheduler, http: http, deliveryURL: settings.deliveryURL, deliveryDelay: settings.deliveryDelay,
                plan: settings.plan, currency: settings.currency, logger: logger
            ) : nil
        self.mail = settings.mailPort.map { SandboxMailServer(port: $0, mailbox: SandboxMailbox(), logger: logger) }
    }

    /// The simulated providers' routes, `GET /sandbox/inbox?phone=+2547...[&after=N]`: a
    /// handset's messages as JSON, oldest first, and the mail routes (``registerMail(on:)``).
    public func register<Context: RequestContext>(on router: Router<Context>) {
        self.daraja?.register(on: router)
        self.momo?.register(on: router)
        self.africasTalking?.register(on: router)
        if let mail { Self.registerMail(mail.mailbox, on: router) }
        router.get("/sandbox/inbox") { request, _ -> Response in
            guard let phone = self.phone(request.uri.queryParameters["phone"].map(String.init) ?? "") else {
                return Response(
                    status: .badRequest, headers: [.contentType: "text/plain; charset=utf-8"],
                    body: .init(byteBuffer: ByteBuffer(string: "phone must be a mobile number of a country served, such as +254712000001\n"))
                )
            }
            let after = request.uri.queryParameters["after"].flatMap { Int(String($0)) } ?? 0
            let encoder = JSONEncoder()
            encoder.dateEncodingStrategy = .iso8601
            encoder.outputFormatting = [.sortedKeys]
            let body = try encoder.encode(InboxPage(phone: phone, messages: self.inbox.messages(for: phone, after: after)))
            return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
    }

    struct InboxPage: Encodable {
        let phone: String
        let messages: [SandboxInbox.Message]
    }

    /// A served number in international form (`+254...`) from any usual form; a `+` decoded as a space is forgiven.
    func phone(_ value: String) -> String? {
        MSISDN(parsing: value.trimmingCharacters(in: .whitespaces), plan: self.settings.plan)?.international
    }

    /// Runs the delayed work and the mail server until graceful shutdown.
    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await self.scheduler.run() }
            if let mail = self.mail { group.addTask { try await mail.run() } }
        }
    }
}
