import Basics
import Foundation
@testable import GatewayActions
@testable import GatewayHTTP
@testable import GatewayTestSupport
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Menus
import MPesa
@testable import MPesaGateway
@testable import SMSChannel
import Testing
import TestSupport
@testable import USSDChannel
import USSDGateway
import MPesaBook
import Wallet

/// A reproducible random source (SplitMix64), so a failing body can be found again by its seed.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Bodies as an attacker sends them: the documented shapes with every field swapped for a hostile
/// value, then bytes flipped, inserted, cut and repeated, and some plain noise.
struct HostileBodies {
    var random: SeededRandom

    /// Values that have broken parsers before: huge and negative numbers, numbers as strings, NUL and
    /// other control characters, escapes, lone surrogates, deep nesting, long strings, wrong types.
    static let jsonValues = [
        "1", "0", "-5", "1.5", "1e300", "-1e300", "1e-400", "100000000000000000", "9223372036854775807", "18446744073709551616",
        "123456789012345678901234567890", #""92233720368547758""#, #""9223372036854775807000""#, #""-1""#, #""1.50""#, #""ten""#,
        #""\u0000""#, #""ws_CO_\u0000""#, #""a\u0007b""#, #""\ud800""#, #""é😀""#, #""\u202e""#, "null", "true", "false", "[]", "{}",
        String(repeating: "[", count: 200) + String(repeating: "]", count: 200), "\"" + String(repeating: "A", count: 5000) + "\"",
        #""254708374149""#, "254708374149", "2547083741490000000", #""NLJ7RT61SV""#, #""SG 632""#, #""Completed""#, #""Failed""#,
        #""ws_CO_fuzz""#, #""fuzz-payout""#, #""'; DROP TABLE customers; --""#,
    ]

    static let formValues = [
        "", "0", "-1", "1e400", "100000000000000000", "92233720368547758", "\u{0}", "a\u{0}b", "\u{7F}", "\u{1B}[31m", "\u{202E}", "é", "😀",
        "+254712345678", "254712345678", "0712345678", "+2547123456789999", String(repeating: "9", count: 300), String(repeating: "A", count: 5000),
        "ATUid_1", "ATUid:1", "*", "**", "1*1*1*1", "#", "'; DROP TABLE customers; --", "\r\n", "Success", "Failed", "Teleported", "ATXid_1",
        "BAL 1234", "SEND 0712345678 99999999999999999999 1234", "SEND 0712345678 -5 1234", "SAVE 1e9 1234",
    ]

    mutating func pick<T>(_ values: [T]) -> T { values[Int(self.random.next() % UInt64(values.count))] }
    mutating func chance(_ percent: UInt64) -> Bool { self.random.next() % 100 < percent }

    /// A form: each field valid or hostile (percent-encoded, or sometimes raw), then byte mutations.
    mutating func form(_ fields: [String: String]) -> [UInt8] {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        var parts: [String] = []
        for (name, valid) in fields.sorted(by: { $0.key < $1.key }) {
            if self.chance(10) { continue }
            let value = self.chance(60) ? self.pick(Self.formValues) : valid
            let encoded = self.chance(85) ? (value.addingPercentEncoding(withAllowedCharacters: allowed) ?? "") : value
            parts.append(name + "=" + encoded)
        }
        if self.chance(10) { parts.append(parts.first ?? "x=1") }
        return self.mutate(Array(parts.joined(separator: "&").utf8))
    }

    /// A JSON body from a template whose `$` placeholders are filled valid or hostile, then mutated.
    mutating func json(_ template: String, valid: [String]) -> [UInt8] {
        var body = ""
        var index = 0
        for character in template {
            if character == "$" {
                body += self.chance(50) ? self.pick(Self.jsonValues) : valid[index % valid.count]
                index += 1
            } else {
                body.append(character)
            }
        }
        return self.mutate(Array(body.utf8))
    }

    /// Flips, inserts, cuts or repeats bytes (or leaves the body alone).
    mutating func mutate(_ bytes: [UInt8]) -> [UInt8] {
        var bytes = bytes
        let rounds = self.chance(50) ? 0 : Int(self.random.next() % 4) + 1
        for _ in 0..<rounds where !bytes.isEmpty {
            let at = Int(self.random.next() % UInt64(bytes.count))
            switch self.random.next() % 5 {
            case 0: bytes[at] = UInt8(truncatingIfNeeded: self.random.next())
            case 1: bytes.insert(self.pick([0, 0x25, 0x22, 0x5C, 0x7B, 0x5B, 0x2A, 0x26, 0x3D, 0xFF, 0xC3]), at: at)
            case 2: bytes.removeSubrange(at..<min(bytes.count, at + Int(self.random.next() % 8) + 1))
            case 3: bytes = Array(bytes[..<at])
            default: bytes.insert(contentsOf: bytes[at..<min(bytes.count, at + 16)], at: at)
            }
        }
        return bytes
    }

    mutating func noise() -> [UInt8] {
        (0..<Int(self.random.next() % 300)).map { _ in UInt8(truncatingIfNeeded: self.random.next()) }
    }
}

@Suite struct HostileInputTests {
    static let stk =
        #"{"Body":{"stkCallback":{"MerchantRequestID":$,"CheckoutRequestID":$,"ResultCode":$,"ResultDesc":$,"CallbackMetadata":{"Item":[{"Name":"Amount","Value":$},{"Name":"MpesaReceiptNumber","Value":$},{"Name":"Balance"},{"Name":"TransactionDate","Value":$},{"Name":"PhoneNumber","Value":$}]}}}}"#
    static let b2c =
        #"{"Result":{"ResultType":$,"ResultCode":$,"ResultDesc":$,"OriginatorConversationID":$,"ConversationID":$,"TransactionID":$,"ResultParameters":{"ResultParameter":[{"Key":"TransactionAmount","Value":$},{"Key":"TransactionReceipt","Value":$},{"Key":"TransactionStatus","Value":$},{"Key":"ReceiptNo","Value":$}]}}}"#

    static let balance =
        #"{"Result":{"ResultType":$,"ResultCode":$,"ResultDesc":$,"OriginatorConversationID":$,"ConversationID":$,"TransactionID":$,"ResultParameters":{"ResultParameter":[{"Key":"AccountBalance","Value":$},{"Key":"BOCompletedTime","Value":$}]}}}"#

    /// Thousands of generated bodies against every provider route: none gets a 5xx, none crashes the
    /// process (a trap would end this test run), no money moves, and the gateway still answers.
    @Test func thousandsOfRandomAndMutatedBodiesGetNoServerError() async throws {
        let rig = try await MPesaRig.make { $0.ussd.rateLimitPerMinute = 0 }
        let local = "0712345678"
        let msisdn = try await rig.harness.customer(local, name: "Fuzz", pin: TypedPINs.achieng, shillings: 1_000)
        let deposit = try await rig.harness.book.beginDeposit(msisdn, amount: .shillings(100), key: IdempotencyKey("fuzz-deposit")!)
        try await rig.harness.book.recordCheckout(depositID: deposit.id, checkoutRequestID: "ws_CO_fuzz")
        _ = try await rig.harness.book.reserveWithdrawal(msisdn, amount: .shillings(100), key: IdempotencyKey("fuzz-payout")!)
        let before = try await rig.harness.wallet.balances(msisdn)
        try await rig.harness.run { client in
            var bodies = HostileBodies(random: SeededRandom(state: 20_261_128))
            var statuses: [Int: Int] = [:]
            func post(_ path: String, _ body: [UInt8], json: Bool) async throws {
                let response = try await client.execute(
                    uri: path, method: .post, headers: [.contentType: json ? "application/json" : "application/x-www-form-urlencoded"],
                    body: ByteBuffer(bytes: body)
                )
                statuses[response.status.code, default: 0] += 1
                #expect(response.status.code < 500, "\(path) answered \(response.status.code) to \(String(decoding: body.prefix(200), as: UTF8.self))")
            }
            let ussd = ["sessionId": "ATUid_fuzz", "phoneNumber": "+254712345678", "serviceCode": "*384*96#", "text": "1", "networkCode": "63902"]
            for round in 0..<360 {
                try await post("/ussd/africastalking", bodies.form(ussd.merging(["sessionId": "ATUid_fuzz\(round % 40)"]) { $1 }), json: false)
                try await post("/ussd/africastalking/events", bodies.form(["sessionId": "ATUid_fuzz", "phoneNumber": "+254712345678", "status": "Incomplete", "input": "1*3857"]), json: false)
                try await post("/sms/africastalking/inbound", bodies.form(["id": "ATXid_fuzz\(round)", "from": "+254712345678", "to": "20880", "text": "BAL 3857"]), json: false)
                try await post("/sms/africastalking/delivery", bodies.form(["id": "ATXid_1", "status": "Success", "failureReason": "UserInBlackList"]), json: false)
                try await post("/mpesa/stk/callback", bodies.json(Self.stk, valid: [#""1""#, #""ws_CO_fuzz""#, "0", #""ok""#, "100.00", #""NLJ7RT61SV""#, "20191219102115", "254712345678"]), json: true)
                try await post("/mpesa/b2c/result", bodies.json(Self.b2c, valid: ["0", "0", #""ok""#, #""fuzz-payout""#, #""AG_1""#, #""SG6""#, "100", #""SG632NMUAB""#, #""Completed""#, #""SG6""#]), json: true)
                try await post("/mpesa/b2c/timeout", bodies.json(Self.b2c, valid: ["0", "1", #""timeout""#, #""fuzz-payout""#, #""AG_1""#, #""""#, "100", "null", "null", "null"]), json: true)
                try await post(
                    "/mpesa/balance/result",
                    bodies.json(
                        Self.balance,
                        valid: [
                            "0", "0", #""ok""#, #""fuzz-balance""#, #""AG_bal""#, #""SG6""#,
                            #""Working Account|KES|100.00|100.00|0.00|0.00&Utility Account|KES|5000.50|5000.50|0.00|0.00""#, "20261207120000",
                        ]),
                    json: true)
                if round % 3 == 0 {
                    let path = bodies.pick(["/ussd/africastalking", "/sms/africastalking/inbound", "/mpesa/stk/callback", "/mpesa/b2c/result", "/mpesa/balance/result"])
                    try await post(path, bodies.noise(), json: path.hasPrefix("/mpesa"))
                }
            }
            let healthy = try await client.execute(uri: "/healthz", method: .get)
            #expect(healthy.status == .ok)
            #expect(statuses.values.reduce(0, +) >= 2_500, "\(statuses)")
            #expect(statuses[200, default: 0] > 100 && statuses[400, default: 0] > 100, "both well-formed and malformed bodies were sent: \(statuses)")
        }
        // Whatever was credited or refunded went through the ledger's rules: the books balance.
        try await rig.harness.audit()
        let after = try await rig.harness.wallet.balances(msisdn)
        #expect(after.main.cents >= before.main.cents - 100_000, "no money left except through a PIN-checked action")
        await rig.finish()
    }

    /// Absurd amounts in a well-formed STK callback (integer, string, float, negative) are kept for
    /// review with 200, wrong types get 400, and nothing is credited or crashes.
    @Test func absurdAmountsAnswer200Or400AndTheProcessStaysUp() async throws {
        let rig = try await MPesaRig.make()
        let local = freshLocal()
        let msisdn = try await rig.harness.customer(local, name: "Absurd", pin: TypedPINs.achieng)
        let deposit = try await rig.harness.book.beginDeposit(msisdn, amount: .shillings(100), key: IdempotencyKey("absurd-\(local)")!)
        try await rig.harness.book.recordCheckout(depositID: deposit.id, checkoutRequestID: "ws_CO_absurd_\(local)")
        try await rig.harness.run(.live) { client in
            func amount(_ value: String) -> String {
                #"{"Body":{"stkCallback":{"MerchantRequestID":"1","CheckoutRequestID":"ws_CO_absurd_\#(local)","ResultCode":0,"ResultDesc":"ok","CallbackMetadata":{"Item":[{"Name":"Amount","Value":\#(value)},{"Name":"MpesaReceiptNumber","Value":"ABSURD1"},{"Name":"PhoneNumber","Value":\#(msisdn.value)}]}}}}"#
            }
            let kept = ["100000000000000000", #""92233720368547758""#, "1e300", "-5", "-100.00", "0", "100.5", #""1e2""#]
            for value in kept where value != #""1e2""# {
                try await callback(client, "/mpesa/stk/callback", amount(value))
            }
            for value in ["true", "{}", #""ten""#, #""1e2""#, "null"] {
                let response = try await client.execute(uri: "/mpesa/stk/callback", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: amount(value)))
                #expect(response.status == .badRequest, "\(value)")
            }
            // A result code too large for its column is an out-of-range value, not a malformed body.
            try await callback(client, "/mpesa/stk/callback", MPesaRig.stkFailure("ws_CO_absurd_\(local)", code: 99_999_999_999, text: "?"))
            #expect(try await client.execute(uri: "/healthz", method: .get).status == .ok)
            #expect(try await rig.balance(msisdn) == 0)
            let review = try await rig.harness.postgres.query("SELECT count(*) FROM mpesa_review WHERE reference = \("ws_CO_absurd_" + local)").single()!.decode(Int.self, column: 0)
            #expect(review == kept.count)
            // The real amount still credits once.
            try await callback(client, "/mpesa/stk/callback", amount("100.00"))
            #expect(try await rig.balance(msisdn) == 10_000)
        }
        try await rig.harness.audit()
        await rig.finish()
    }

    /// Every final result that contradicts an earlier final one lands in review as a conflict with
    /// both results, is logged at error and counted, and moves no money; `mpesa review` lists it.
    @Test func eachContradictionLandsInReview() async throws {
        let rig = try await MPesaRig.make()
        let local = freshLocal()
        let msisdn = try await rig.harness.customer(local, name: "Conflict", pin: TypedPINs.achieng, shillings: 1_000)
        let book = rig.harness.book
        let credited = try await book.beginDeposit(msisdn, amount: .shillings(100), key: IdempotencyKey("c-credited-\(local)")!)
        try await book.recordCheckout(depositID: credited.id, checkoutRequestID: "ws_CO_credited_\(local)")
        let failed = try await book.beginDeposit(msisdn, amount: .shillings(100), key: IdempotencyKey("c-failed-\(local)")!)
        try await book.recordCheckout(depositID: failed.id, checkoutRequestID: "ws_CO_failed_\(local)")
        let paid = try await book.reserveWithdrawal(msisdn, amount: .shillings(200), key: IdempotencyKey("c-paid-\(local)")!)
        let refunded = try await book.reserveWithdrawal(msisdn, amount: .shillings(300), key: IdempotencyKey("c-refunded-\(local)")!)
        let queried = try await book.reserveWithdrawal(msisdn, amount: .shillings(50), key: IdempotencyKey("c-queried-\(local)")!)
        // Daraja acknowledged each B2C request: a result must name these pairs.
        for payout in [paid, refunded, queried] {
            try await book.markWithdrawalSent(payout.id, conversationID: "AG_\(payout.id)", originatorConversationID: payout.id)
        }
        // Two of them were refunded on a Transaction Status answer that said Failed.
        try await book.failWithdrawal(refunded.id, code: 0, text: "transaction status: failed")
        try await book.failWithdrawal(queried.id, code: 0, text: "transaction status: failed")
        // A later status query about the third, acknowledged.
        let queryID = StatusQueryID.random()
        try await book.recordStatusQuery(id: queryID, subject: .payout, reference: queried.id)
        try await book.acknowledgeStatusQuery(id: queryID, conversationID: "AG_query_\(local)")
        try await rig.harness.run(.live) { client in
            try await callback(client, "/mpesa/stk/callback", MPesaRig.stkSuccess("ws_CO_credited_\(local)", shillings: 100, receipt: "FIRST1", phone: msisdn.value))
            try await callback(client, "/mpesa/stk/callback", MPesaRig.stkSuccess("ws_CO_credited_\(local)", shillings: 100, receipt: "FIRST1", phone: msisdn.value))
            try await callback(client, "/mpesa/stk/callback", MPesaRig.stkSuccess("ws_CO_credited_\(local)", shillings: 100, receipt: "OTHER2", phone: msisdn.value))
            try await callback(client, "/mpesa/stk/callback", MPesaRig.stkFailure("ws_CO_credited_\(local)", code: 1032, text: "Request cancelled by user"))
            try await callback(client, "/mpesa/stk/callback", MPesaRig.stkFailure("ws_CO_failed_\(local)", code: 1032, text: "Request cancelled by user"))
            try await callback(client, "/mpesa/stk/callback", MPesaRig.stkSuccess("ws_CO_failed_\(local)", shillings: 100, receipt: "LATE3", phone: msisdn.value))
            try await callback(client, "/mpesa/b2c/result", MPesaRig.b2cResult(paid.id, code: 0, receipt: "SGPAID1", conversation: "AG_\(paid.id)"))
            try await callback(client, "/mpesa/b2c/result", MPesaRig.b2cResult(paid.id, code: 2001, conversation: "AG_\(paid.id)"))
            try await callback(client, "/mpesa/b2c/result", MPesaRig.b2cResult(refunded.id, code: 2001, conversation: "AG_\(refunded.id)"))
            try await callback(client, "/mpesa/b2c/result", MPesaRig.b2cResult(refunded.id, code: 0, receipt: "SGLATE2", conversation: "AG_\(refunded.id)"))
            try await callback(client, "/mpesa/b2c/result", MPesaRig.b2cResult(queried.id, code: 2001, conversation: "AG_\(queried.id)"))
            try await callback(client, "/mpesa/b2c/result", MPesaRig.b2cResult(queryID, code: 0, receipt: "SGQ9", status: "Completed", conversation: "AG_query_\(local)"))
            let metrics = String(buffer: try await client.execute(uri: "/metrics", method: .get).body)
            #expect(metrics.contains("mpesa_conflicts_total"))
        }
        let conflicts = try await book.reviewItems().filter { $0.reason == ReviewItem.conflict }
        #expect(conflicts.count == 6, "\(conflicts.map { ($0.reference, $0.earlierResult ?? "", $0.newResult ?? "") })")
        #expect(conflicts.filter { $0.depositID == credited.id }.count == 2)
        #expect(conflicts.contains { $0.depositID == failed.id && $0.earlierResult?.contains("1032") == true && $0.newResult?.contains("LATE3") == true })
        #expect(conflicts.contains { $0.payoutID == paid.id && $0.earlierResult == "paid" && $0.newResult?.contains("not paid") == true })
        #expect(conflicts.contains { $0.payoutID == refunded.id && $0.earlierResult?.contains("refunded") == true && $0.newResult?.contains("SGLATE2") == true })
        #expect(conflicts.contains { $0.payoutID == queried.id && $0.newResult?.contains("transaction status: completed") == true })
        #expect(rig.harness.capture.all.filter { $0.message == "M-Pesa reports disagree; kept for review" && $0.level == .error }.count == 6)
        // Money: one credit, one payout; the refunds and the first failure stand.
        let balances = try await book.wallet.balances(msisdn)
        #expect(balances.main == .shillings(1_000 + 100 - 200) && balances.held == .zero)

        var environment = ProcessInfo.processInfo.environment
        environment["ENVIRONMENT"] = "development"
        environment["DATABASE_URL"] = rig.harness.config.postgres.connectionString
        environment["LOG_LEVEL"] = "warning"
        let listing = try await ChildProcess.run(GatewayBinary.path, ["mpesa", "review"], environment: environment)
        #expect(listing.split(separator: "\n").filter { $0.contains("conflict") }.count == 6, "\(listing)")
        #expect(listing.contains(paid.id) && listing.contains("SGLATE2") && listing.contains("deposit \(failed.id)"), "\(listing)")
        try await rig.harness.audit()
        await rig.finish()
    }

    /// The first B2C attempt gets no answer; the reconciler's re-send is refused with an error nobody
    /// planned for. The payout may have been paid by the first attempt, so the hold stays until a
    /// transaction-status answer settles it; one still open after its last check waits for a person.
    @Test func aRefusedResendAfterATimedOutB2CKeepsTheHoldUntilAStatusAnswer() async throws {
        let rig = try await MPesaRig.make { $0.mpesa.requestTimeout = .milliseconds(300) }
        let local = freshLocal()
        let msisdn = try await rig.harness.customer(local, name: "Resend", pin: TypedPINs.otieno, shillings: 500)
        rig.fake.state.withLock { $0.b2c = [.hang, .error(status: 400, code: "400.009.99", message: "Bad Request - Something new")] }
        try await rig.harness.run(.live) { client in
            try rig.live(client)
            var phone = Phone(client, local, graph: rig.harness.graph)
            _ = try await phone.withdraw(200, pin: TypedPINs.otieno)
            try await rig.logged("B2C unanswered")
            let replica = rig.replica()
            try await rig.makeDue()
            _ = try await replica.reconcile()
            _ = try await rig.request("/mpesa/b2c/v3/paymentrequest", count: 2)
            var payout = try await rig.payoutStatus(msisdn)
            #expect(payout.status == "unknown" && payout.held == 20_000, "the refusal of a re-send refunds nothing")
            #expect(try await rig.balance(msisdn) == 29_000, "200 held, its fee of 10 charged")

            try await rig.makeDue()
            let changes = try await replica.reconcile()
            #expect(changes.contains { $0.contains("transaction status asked") }, "\(changes)")
            _ = try await rig.request("/mpesa/transactionstatus/v1/query")
            // Safaricom's answer: the first attempt, whose answer was lost, paid.
            try await rig.answerStatusQueries()
            payout = try await rig.payoutStatus(msisdn)
            #expect(payout.status == "paid" && payout.held == 0)
            #expect(try await rig.balance(msisdn) == 29_000, "200 held, its fee of 10 charged")

            // Another payout nobody ever settles: after its last check it waits for a person.
            _ = try await phone.withdraw(100, pin: TypedPINs.otieno)
            _ = try await rig.request("/mpesa/b2c/v3/paymentrequest", count: 3)
            let stuck = try await rig.payoutStatus(msisdn)
            try await rig.harness.postgres.query("UPDATE payouts SET checks = 12 WHERE id = \(stuck.id)")
            let escalated = try await replica.reconcile()
            #expect(escalated.contains { $0.contains("needs review") }, "\(escalated)")
            #expect(try await rig.payoutStatus(msisdn).status == "needs_review")
            #expect(try await rig.payoutStatus(msisdn).held == 10_000, "its hold kept")
            #expect(rig.harness.capture.all.contains { $0.message == "payout still unsettled after its last check; held for review" && $0.level == .error })
            let metrics = String(buffer: try await client.execute(uri: "/metrics", method: .get).body)
            #expect(metrics.contains("mpesa_payouts_needs_review_total"))
        }
        #expect(rig.fake.violations.filter { !$0.contains("stale or missing token") }.isEmpty, "\(rig.fake.violations)")
        try await rig.harness.audit()
        await rig.finish()
    }

    /// The third lock in a row lasts until an operator lifts it with `ussd-gateway customer unlock`;
    /// `customer show` and `audit` show the lock and the unlock.
    @Test func anOperatorUnlocksAPermanentLockFromTheCommandLine() async throws {
        let harness = try await USSDHarness.make()
        let local = freshLocal()
        let msisdn = try await harness.customer(local, name: "Locked", pin: TypedPINs.achieng)
        try await harness.postgres.query("UPDATE customers SET locked_until = now() + interval '100 years', pin_locks = 3 WHERE msisdn = \(msisdn.value)")
        var environment = ProcessInfo.processInfo.environment
        environment["ENVIRONMENT"] = "development"
        // The operator's own login: the audit trail names it.
        let wanjiru = try await TestServers.login("wanjiru", in: "ussd_operator", to: harness.postgres.configuration)
        environment["DATABASE_URL"] = wanjiru.connectionString
        environment["LOG_LEVEL"] = "warning"
        environment.merge(harness.personalDataEnvironment) { $1 }
        let login = try #require(URLComponents(string: wanjiru.connectionString)?.user)
        let refused = try ChildProcess.start(GatewayBinary.path, ["customer", "unlock", local, "--reason", ""], environment: environment)
        #expect(await refused.wait() == 2)
        // What the desk sees first: locked, three locks in a row.
        let shown = try await ChildProcess.run(GatewayBinary.path, ["customer", "show", local, "--json", "--reason", "caller verified"], environment: environment)
        let view = try JSONSerialization.jsonObject(with: Data(shown.utf8)) as? [String: Any]
        #expect(view?["locked"] as? Bool == true && view?["locksInARow"] as? Int == 3 && view?["name"] as? String == "Locked", "\(shown)")
        #expect(view?["main"] as? String == "0.00")
        #expect(view?["currency"] as? String == "KES")
        let output = try await ChildProcess.run(GatewayBinary.path, ["customer", "unlock", local, "--reason", "caller verified"], environment: environment)
        #expect(output.contains("unlocked \(msisdn.value)"))
        try await harness.wallet.verifyPIN(msisdn, pin: TypedPINs.achieng)
        let text = try await ChildProcess.run(GatewayBinary.path, ["customer", "show", local, "--reason", "caller verified"], environment: environment)
        #expect(text.contains("Locked (\(msisdn.value))") && text.contains("PIN not locked"), "\(text)")
        // The unlock is in the customer's audit trail, with who and why.
        let trail = try await ChildProcess.run(GatewayBinary.path, ["audit", "--number", local], environment: environment)
        #expect(trail.contains("\(login) pin.unlocked — caller verified") && trail.contains("\"locks_in_a_row\": 3"), "\(trail)")
        let unknown = try ChildProcess.start(GatewayBinary.path, ["customer", "show", freshLocal(), "--reason", "caller verified"], environment: environment)
        #expect(await unknown.wait() == 1)
        await harness.finish()
    }

    /// The logs' PIN scanner: a PIN glued to nothing is found; the same digits as a group of a
    /// message id's UUID are not (they were a false alarm one run in a few thousand).
    @Test func theLeakScannerFindsAPINButNotAUUIDsGroup() {
        #expect(USSDHarness.containsToken("text=1*9146 status=200", "9146"))
        #expect(USSDHarness.containsToken("pin 9146-", "9146"))
        #expect(!USSDHarness.containsToken("sms=ATXid_in_D8F85C04-AC2D-4627-9146-F7869E672F8C command=help", "9146"))
        #expect(!USSDHarness.containsToken("request 9146ab0c-1234-4d2e-8f00-aa11bb22cc33", "9146"))
    }

    /// Over `SMS_RATE_LIMIT_PER_MINUTE`, one polite reply and then silence; other numbers unaffected.
    @Test func smsCommandsAreRateLimitedPerNumber() async throws {
        let rig = try await SMSRig.make { $0.sms.rateLimitPerMinute = 3 }
        let (busy, calm) = (freshLocal(), freshLocal())
        let busyMSISDN = try await rig.harness.customer(busy, name: "Busy", pin: TypedPINs.achieng)
        let calmMSISDN = try await rig.harness.customer(calm, name: "Calm", pin: TypedPINs.otieno)
        // The count is per minute: start well inside one.
        rig.harness.clock.leaveEndOfMinute()
        try await rig.harness.run(.live) { client in
            for _ in 0..<6 { try await sms(client, from: busyMSISDN, "HELP") }
            try await sms(client, from: calmMSISDN, "HELP")
            let texts = try await rig.texts(busyMSISDN) { $0.count >= 4 }
            try await rig.texts(calmMSISDN) { $0.count >= 1 }
            #expect(try await throughout(.milliseconds(300)) { rig.fake.texts(to: busyMSISDN.value).count == 4 }, "three answers and one polite refusal: \(texts)")
            #expect(texts.filter { $0.contains("Too many messages") }.count == 1)
        }
        let limited = try await rig.harness.postgres.query("SELECT count(*) FROM sms_inbound WHERE sender = \(busyMSISDN.value) AND status = 'done'").single()!.decode(Int.self, column: 0)
        #expect(limited == 6, "every message is recorded as handled")
        await rig.finish()
    }
}
