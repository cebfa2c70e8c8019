import Foundation
import Menus
import Testing

/// The repository's default menus.json.
func defaultMenusURL() -> URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("menus.json")
}

/// A keyed one-way seal for tests (the gateway uses HMAC-SHA256 with its pepper).
struct TestSealer: SecretSealer {
    func seal(_ secret: String) -> String {
        var hash: UInt64 = 0x9e37_79b9_7f4a_7c15
        for byte in ("test-pepper:" + secret).utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return String(hash, radix: 16)
    }
}

/// An in-memory wallet honouring the action contracts, so journeys can be walked end to end.
final class FakeWallet: @unchecked Sendable {
    struct Customer {
        var name: String
        var language: String
        var pin: String
        var balance: Int
        var savings: Int
        var wrongPins = 0
        var pinChangeGranted = false
    }

    /// The default menus' tariff, as the gateway charges it.
    static let tariff = try! MenuGraph.load(contentsOf: defaultMenusURL()).document.tariff(in: .kenyanShilling)

    var customers: [String: Customer] = [:]
    var requests: [ActionRequest] = []
    var unavailable = false

    func register(_ msisdn: String, name: String = "Achieng", language: String = "en", pin: String = "2580", balance: Int = 500_000) {
        self.customers[msisdn] = Customer(name: name, language: language, pin: pin, balance: balance, savings: 100_000)
    }

    func perform(_ request: ActionRequest) -> ActionResult {
        self.requests.append(request)
        let arguments = request.arguments
        let msisdn = arguments["msisdn"] ?? ""
        if request.action == "wallet.register" {
            if self.customers[msisdn] != nil { return .failure("already_registered") }
            if ["0000", "1234", "1111"].contains(arguments["pin"]) { return .failure("weak_pin") }
            self.register(msisdn, name: arguments["name"]!, language: arguments["language"]!, pin: arguments["pin"]!, balance: 0)
            return .success([:])
        }
        if request.action == "wallet.fee" {
            let cents = Int64(arguments["amount"] ?? "0") ?? 0
            guard let fee = Self.tariff.fee(arguments["kind"] ?? "", cents: cents) else { return .failure("limit_exceeded") }
            return .success(["fee": String(fee), "total": String(cents + fee)])
        }
        guard var customer = self.customers[msisdn] else { return .failure("not_registered") }
        defer { self.customers[msisdn] = customer }
        if let pin = arguments["pin"] {
            if customer.wrongPins >= 3 { return .failure("locked") }
            guard pin == customer.pin else {
                customer.wrongPins += 1
                return .failure(customer.wrongPins >= 3 ? "locked" : "wrong_pin")
            }
            customer.wrongPins = 0
        }
        let amount = Int(arguments["amount"] ?? "0") ?? 0
        let balances = { ["balance": String(customer.balance), "savings": String(customer.savings)] }
        switch request.action {
        case "wallet.profile":
            return .success(["name": customer.name, "language": customer.language, "status": customer.wrongPins >= 3 ? "locked" : "active"])
        case "wallet.balance":
            return .success(balances())
        case "wallet.send":
            let to = arguments["to"]!
            if to == msisdn { return .failure("same_account") }
            guard self.customers[to] != nil else { return .failure("recipient_not_registered") }
            guard customer.balance >= amount else { return .failure("insufficient_funds") }
            let fee = Int(Self.tariff.fee("p2p", cents: Int64(amount)) ?? 0)
            guard customer.balance >= amount + fee else { return .failure("insufficient_funds") }
            customer.balance -= amount + fee
            self.customers[to]!.balance += amount
            return .success(["balance": String(customer.balance), "reference": "TX12345678", "fee": String(fee)])
        case "wallet.save":
            guard customer.balance >= amount else { return .failure("insufficient_funds") }
            customer.balance -= amount
            customer.savings += amount
            return .success(balances())
        case "wallet.unsave":
            guard customer.savings >= amount else { return .failure("insufficient_funds") }
            customer.savings -= amount
            customer.balance += amount
            return .success(balances())
        case "wallet.statement":
            return .success(["statement": "21/11 Sent KES 500 to 0722***111\n20/11 Deposit KES 2,000"])
        case "wallet.verifyPin":
            customer.pinChangeGranted = true
            return .success([:])
        case "wallet.changePin":
            guard customer.pinChangeGranted else { return .failure("token_expired") }
            customer.pinChangeGranted = false
            if ["0000", "1234", "1111"].contains(arguments["new_pin"]) { return .failure("weak_pin") }
            customer.pin = arguments["new_pin"]!
            return .success([:])
        case "wallet.setLanguage":
            customer.language = arguments["language"]!
            return .success([:])
        case "mpesa.deposit":
            return self.unavailable ? .failure("unavailable") : .success([:])
        case "mpesa.withdraw":
            if self.unavailable { return .failure("unavailable") }
            let fee = Int(Self.tariff.fee("withdrawal", cents: Int64(amount)) ?? 0)
            guard customer.balance >= amount + fee else { return .failure("insufficient_funds") }
            customer.balance -= amount + fee
            return .success(["balance": String(customer.balance), "fee": String(fee)])
        default:
            return .failure("unknown_action")
        }
    }
}

/// A handset walking the journeys: dial, type, and read each page, as a user would.
///
/// Every page is checked against the budget, and every state the host would save is checked to
/// hold no PIN typed in the session.
struct Phone {
    let engine: Engine
    let wallet: FakeWallet
    let msisdn: String
    var state: SessionState?
    var pages: [Page] = []
    var typedSecrets: [String] = []

    init(engine: Engine, wallet: FakeWallet, msisdn: String = "254712345678") {
        self.engine = engine
        self.wallet = wallet
        self.msisdn = msisdn
    }

    var last: Page { self.pages.last! }
    var ended: Bool { !self.last.continues }

    @discardableResult
    mutating func dial(language: String? = nil, code: String = "*384*96#", sourceLocation: SourceLocation = #_sourceLocation) -> String {
        self.state = nil
        let segments = Shortcut.extensionSegments(of: code, serviceCodes: self.engine.graph.document.serviceCodes) ?? []
        return self.run(self.engine.start(variables: ["msisdn": self.msisdn], language: language, extension: segments), sourceLocation: sourceLocation)
    }

    /// Types `input` (a PIN when `secret`) and returns the page shown.
    @discardableResult
    mutating func type(_ input: String, secret: Bool = false, sourceLocation: SourceLocation = #_sourceLocation) -> String {
        guard let state = self.state, !self.ended else {
            Issue.record("typed \(input) after the session ended", sourceLocation: sourceLocation)
            return ""
        }
        if secret { self.typedSecrets.append(input) }
        return self.run(self.engine.advance(state, input: input), sourceLocation: sourceLocation)
    }

    private mutating func run(_ first: Step, sourceLocation: SourceLocation) -> String {
        var step = first
        while true {
            switch step {
            case .perform(let request, let state):
                step = self.engine.resume(state, with: self.wallet.perform(request))
            case .show(let page, let state):
                self.pages.append(page)
                self.state = state
                let measure = self.engine.graph.budget.measure(page.text)
                #expect(measure.fits, "page \(page.screen) is \(measure.cost) over \(measure.limit):\n\(page.text)", sourceLocation: sourceLocation)
                let saved = String(decoding: try! JSONEncoder().encode(state), as: UTF8.self)
                for secret in self.typedSecrets {
                    #expect(!saved.contains(secret), "a PIN reached the session state: \(saved)", sourceLocation: sourceLocation)
                    #expect(!page.text.contains(secret), "a PIN was echoed on \(page.screen)", sourceLocation: sourceLocation)
                }
                return page.text
            }
        }
    }
}
