import Basics
import Curl
import Foundation
@testable import GatewayActions
@testable import GatewayHTTP
import GatewayTelemetry
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Menus
@testable import MPesaGateway
import Postgres
import Redis
@testable import SMSChannel
import Testing
import TestSupport
@testable import USSDChannel
@testable import USSDGateway
import MPesaBook
import Wallet

/// PINs typed in the USSD tests: `scripts/test.sh` greps the whole run's output for them, and each
/// test checks its own captured logs.
enum TypedPINs {
    static let achieng = "3857"
    static let otieno = "9146"
    static let newPIN = "2739"
    static let wrong = "6152"
    static let all = [achieng, otieno, newPIN, wrong]
}

/// A gateway on the test servers (a fresh database, the shared Redis), its logs captured, and a
/// wallet on the same database for setting up and checking money.
struct USSDHarness {
    let config: GatewayConfig
    let postgres: PostgresClient
    let redis: RedisClient
    /// The PIN vault the gateway and the harness's own wallet share (one login to a PKCS#11 token).
    let pins: PINVault
    let wallet: Wallet
    /// M-Pesa's records beside the ledger, on the harness's wallet.
    var book: MPesaBook { MPesaBook(wallet: self.wallet) }
    let capture = LogCapture()
    let graph: MenuGraph
    /// The gateway's wall clock (`config.now`, unless a test sets its own): moved ahead where a
    /// test would otherwise sleep past a window.
    let clock: AdvancingClock

    /// The PIN key the tests' gateways use unless a test names another (version 1).
    static let testPINKey = "1:" + Array("test-pepper-of-32-bytes-at-least".utf8).map { String(format: "%02x", $0) }.joined()

    static func make(_ adjust: (inout GatewayConfig) -> Void = { _ in }) async throws -> USSDHarness {
        var config = GatewayConfig()
        config.environment = .development
        config.redis = try TestServers.redisConfiguration()
        let database = try await TestServers.freshDatabase("ussd")
        config.pinKeys = .environment(USSDHarness.testPINKey)
        config.personalDataKeys = .environment(TestPersonalData.environmentValue)
        config.personalDataStore = try await TestPersonalData.freshStore()
        config.logLevel = .trace
        let postgres = PostgresClient(configuration: database)
        try await postgres.migrate(try GatewayMigrations.all())
        // The gateway serves as a login in ussd_app, as in production; the harness's own client
        // (setting up and checking) is the schema's owner.
        config.postgres = try await TestServers.login("app", in: "ussd_app", to: database)
        let clock = AdvancingClock()
        config.now = clock.read
        adjust(&config)
        let pins = try config.openPINVault()
        let wallet = Wallet(postgres: postgres, pins: pins, personalData: try config.openPersonalData())
        return USSDHarness(
            config: config, postgres: postgres, redis: RedisClient(configuration: config.redis), pins: pins, wallet: wallet,
            graph: try loadCheckedMenus(at: config.menusPath, market: config.market), clock: clock
        )
    }

    /// The same gateway started again: its PIN keys opened anew (a version added since is the newest).
    func restarted() throws -> USSDHarness {
        let pins = try self.config.openPINVault()
        return USSDHarness(
            config: self.config, postgres: self.postgres, redis: self.redis, pins: pins,
            wallet: Wallet(postgres: self.postgres, pins: pins, personalData: self.wallet.personalData), graph: self.graph,
            clock: self.clock
        )
    }

    /// Runs `body` against the application, then checks that no typed PIN reached the logs.
    func run(
        _ mode: TestingSetup = .live, metrics: MetricCache = GatewayMetrics.serving, _ body: @Sendable (any TestClientProtocol) async throws -> Void,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let application = try buildApplication(config: self.config, logger: self.capture.logger, menus: self.graph, pins: self.pins, metrics: metrics)
        try await application.test(mode) { client in
            try await body(client)
        }
        self.expectNoTypedPINInLogs(sourceLocation: sourceLocation)
    }

    /// No PIN a test typed appears in any captured log line.
    func expectNoTypedPINInLogs(sourceLocation: SourceLocation = #_sourceLocation) {
        for record in self.capture.all {
            let line = record.message + " " + record.metadata.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            for pin in TypedPINs.all {
                #expect(!Self.containsToken(line, pin), "a PIN reached the logs: \(record.message)", sourceLocation: sourceLocation)
            }
        }
    }

    /// What a child process of the gateway needs to open this harness's personal data.
    var personalDataEnvironment: [String: String] {
        ["PERSONAL_DATA_KEY": TestPersonalData.environmentValue, "PERSONAL_DATA_KEYS_URL": self.config.keyStoreConfiguration.connectionString]
    }

    func finish() async {
        await self.wallet.personalData?.store.shutdown()
        await self.postgres.shutdown()
        await self.redis.shutdown()
    }

    /// Whether `token` appears in `text` not glued to other letters or digits, and not as a group of
    /// a UUID (a request or message id such as `…-AC2D-4627-9146-F786…` holds four digits by chance).
    static func containsToken(_ text: String, _ token: String) -> Bool {
        var searchRange = text.startIndex..<text.endIndex
        while let found = text.range(of: token, range: searchRange) {
            let before = found.lowerBound == text.startIndex ? nil : text[text.index(before: found.lowerBound)]
            let after = found.upperBound == text.endIndex ? nil : text[found.upperBound]
            if !(before?.isLetter ?? false) && !(before?.isNumber ?? false) && !(after?.isLetter ?? false) && !(after?.isNumber ?? false)
                && !Self.isInUUID(text, found)
            {
                return true
            }
            searchRange = found.upperBound..<text.endIndex
        }
        return false
    }

    /// Whether `range` lies inside a UUID written in `text` (8-4-4-4-12 hexadecimal digits).
    static func isInUUID(_ text: String, _ range: Range<String.Index>) -> Bool {
        let isPart: (Character) -> Bool = { $0.isHexDigit || $0 == "-" }
        var start = range.lowerBound
        while start > text.startIndex, isPart(text[text.index(before: start)]) { start = text.index(before: start) }
        var end = range.upperBound
        while end < text.endIndex, isPart(text[end]) { end = text.index(after: end) }
        // The run may carry hexadecimal letters glued to either end (`id` before a UUID).
        let groups = text[start..<end].split(separator: "-", omittingEmptySubsequences: false).map(\.count)
        guard groups.count == 5 else { return false }
        return groups[0] >= 8 && groups[1] == 4 && groups[2] == 4 && groups[3] == 4 && groups[4] >= 12
    }

    /// Registers a customer straight in the wallet and deposits `shillings` through the deposit flow.
    func customer(_ local: String, name: String, pin: String, shillings: Int64 = 0, language: String = "en") async throws -> MSISDN {
        let msisdn = MSISDN(parsing: local, plan: .kenya)!
        try await self.wallet.register(msisdn: msisdn, name: name, pin: pin, language: language)
        if shillings > 0 {
            let deposit = try await self.book.beginDeposit(msisdn, amount: .shillings(shillings), key: IdempotencyKey("fund-\(local)")!)
            try await self.book.recordCheckout(depositID: deposit.id, checkoutRequestID: "ws_CO_fund_\(local)")
            try await self.book.completeDeposit(checkoutRequestID: "ws_CO_fund_\(local)", receipt: "FUND\(local)", amount: .shillings(shillings), phone: msisdn)
        }
        return msisdn
    }

    /// Achieng with 1,000 KES and Otieno with nothing, on fresh numbers: (local, MSISDN) of each.
    func senderAndRecipient() async throws -> (String, MSISDN, String, MSISDN) {
        let (achieng, otieno) = (freshLocal(), freshLocal())
        let sender = try await self.customer(achieng, name: "Achieng", pin: TypedPINs.achieng, shillings: 1_000)
        let recipient = try await self.customer(otieno, name: "Otieno", pin: TypedPINs.otieno)
        return (achieng, sender, otieno, recipient)
    }

    /// A PIN reset asked by one member of staff (a login in ussd_operator) and approved by another
    /// (ussd_approver), as the desk does it: the database records both.
    func approvedPINReset(_ msisdn: MSISDN) async throws {
        let pins = self.pins
        let asker = PostgresClient(configuration: try await TestServers.login("wanjiru", in: "ussd_operator", to: self.postgres.configuration))
        let approver = PostgresClient(configuration: try await TestServers.login("kamau", in: "ussd_approver", to: self.postgres.configuration))
        let request = try await Wallet(postgres: asker, pins: pins).requestPINReset(msisdn, by: try OperatorAction(reason: "caller verified with national ID"))
        _ = try await Wallet(postgres: approver, pins: pins).approve(request.id, by: try OperatorAction(reason: "second check"))
        await asker.shutdown()
        await approver.shutdown()
    }

    /// Sum of all balances (zero) and the number of posted p2p/save/unsave transfers.
    func audit(sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let sum = try await self.postgres.query("SELECT coalesce(sum(balance), 0)::bigint FROM account_balances").single()!.decode(Int64.self, column: 0)
        #expect(sum == 0, "balances sum to \(sum)", sourceLocation: sourceLocation)
    }

    /// SMS notices of `template` queued for `msisdn`.
    func notices(_ msisdn: MSISDN, _ template: String) async throws -> Int {
        try await self.postgres.query("SELECT count(*) FROM outbox WHERE recipient = \(msisdn.value) AND template = \(template)").single()!.decode(Int.self, column: 0)
    }

    func movements(kind: String) async throws -> Int {
        try await self.postgres.query("SELECT count(*) FROM transfers WHERE kind = \(kind)").single()!.decode(Int.self, column: 0)
    }
}

/// A handset on Africa's Talking: one session at a time, `text` kept the way the aggregator keeps
/// it (every input so far, `*`-joined), every reply checked for its prefix and the page budget.
struct Phone {
    let client: any TestClientProtocol
    let number: String
    let graph: MenuGraph
    var path = "/ussd/africastalking"
    var serviceCode = "*384*96#"
    var session = Phone.newSession()
    var inputs: [String] = []

    init(_ client: any TestClientProtocol, _ local: String, graph: MenuGraph) {
        self.client = client
        self.number = "+254" + local.dropFirst()
        self.graph = graph
    }

    /// A session id that holds no typed PIN: ids reach the logs, where a PIN is looked for (one
    /// UUID in a few thousand has a group such as `-9146-`).
    static func newSession() -> String {
        while true {
            let session = "ATUid_" + UUID().uuidString.lowercased()
            if !TypedPINs.all.contains(where: { session.contains($0) }) { return session }
        }
    }
    var text: String { self.inputs.joined(separator: "*") }

    /// A new dial: a new session, empty text.
    mutating func dial() async throws -> String {
        self.session = Self.newSession()
        self.inputs = []
        return try await self.post(text: "")
    }

    /// Types one answer on the current screen.
    mutating func type(_ input: String) async throws -> String {
        self.inputs.append(input)
        return try await self.post(text: self.text)
    }

    /// Posts the current hop again, as the aggregator does when our first answer was lost.
    func repeatLast() async throws -> String { try await self.post(text: self.text) }

    func post(text: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        let response = try await self.raw(Self.form([
            "sessionId": self.session, "phoneNumber": self.number, "networkCode": "63902", "serviceCode": self.serviceCode, "text": text,
        ]))
        #expect(response.status == .ok, sourceLocation: sourceLocation)
        #expect(response.headers[.contentType]?.hasPrefix("text/plain") == true, sourceLocation: sourceLocation)
        let body = String(buffer: response.body)
        #expect(body.hasPrefix("CON ") || body.hasPrefix("END "), "reply without CON/END: \(body)", sourceLocation: sourceLocation)
        #expect(self.graph.budget.measure(String(body.dropFirst(4))).fits, "reply over the page budget: \(body)", sourceLocation: sourceLocation)
        return body
    }

    func raw(_ body: String, path: String? = nil) async throws -> TestResponse {
        try await self.client.execute(
            uri: path ?? self.path, method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
            body: ByteBuffer(string: body)
        )
    }

    static func form(_ fields: [String: String]) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return fields.map { "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: allowed)!)" }.joined(separator: "&")
    }
}

/// Polls `url` until it answers 200 (up to 30 seconds), or until `process`, the server behind it,
/// has exited (it refused to start: nothing will answer); the last answer, if any.
func waitUntilReady(_ curl: CurlClient, _ url: String, process: ChildProcess? = nil) async throws -> CurlResponse? {
    var ready: CurlResponse?
    _ = try await eventually(within: .seconds(30), every: .milliseconds(50)) {
        ready = try? await curl.execute(CurlRequest(url: url, timeout: .seconds(5)))
        return ready?.status == 200 || process?.hasExited == true
    }
    return ready
}
