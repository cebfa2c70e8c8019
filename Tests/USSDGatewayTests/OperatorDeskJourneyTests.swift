import Foundation
@testable import GatewayTestSupport
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Menus
import Postgres
import TestSupport
import Testing
import Wallet

@testable import GatewayActions
@testable import USSDGateway

/// What the operator desk's changes look like on a handset: a reset PIN, a block, a tier's
/// limits, a send's fee; and refused callbacks written to the audit trail.
@Suite struct OperatorDeskJourneyTests {
    let desk = try! OperatorAction(reason: "caller verified with national ID")

    @Test func aResetPINMustBeSetOnTheNextDialAndThenWorks() async throws {
        let harness = try await USSDHarness.make()
        let (achieng, sender, _, _) = try await harness.senderAndRecipient()
        try await harness.approvedPINReset(sender)
        try await harness.run { client in
            var phone = Phone(client, achieng, graph: harness.graph)
            #expect(try await phone.dial() == "CON Your PIN was reset. Choose a new 4-digit PIN")
            #expect(try await phone.type("1234") == "CON Enter the new PIN again")
            #expect(try await phone.type("1234") == "CON That PIN is too easy to guess. Choose another 4-digit PIN")
            #expect(try await phone.type(TypedPINs.newPIN) == "CON Enter the new PIN again")
            #expect(try await phone.type(TypedPINs.newPIN) == "END Your new PIN is set. Dial again to use your wallet.")
            // Repeated by the aggregator: the same answer, nothing run twice.
            #expect(try await phone.repeatLast() == "END Your new PIN is set. Dial again to use your wallet.")

            #expect(try await phone.dial().hasPrefix("CON Welcome Achieng"))
            _ = try await phone.type("1")
            #expect(try await phone.type(TypedPINs.achieng).hasPrefix("CON Wrong PIN"), "the old PIN is gone")
            #expect(try await phone.type(TypedPINs.newPIN) == "END Balance: KES 1,000\nSavings: KES 0")
        }
        #expect(try await harness.notices(sender, "pin_reset") == 1)
        #expect(try await harness.notices(sender, "pin_changed") == 1)
        #expect(
            try await harness.wallet.auditTrail(sender).map(\.action).prefix(4) == [
                "pin.reset_completed", "ledger.pin_reset_approved", "pin.reset", "pin.reset_requested",
            ])
        await harness.finish()
    }

    /// After an approved PIN reset, a send above the cooling-off limit is refused on USSD and SMS
    /// alike, with a screen, a reply and an SMS that say why and until when; smaller sends work,
    /// and once the window has passed (time passed in) so do large ones.
    @Test func afterAPINResetLargeSendsWaitOutTheCoolingOffOnUSSDAndSMS() async throws {
        let clock = TestClock()
        let rig = try await SMSRig.make { config in
            config.now = { clock.now }
            config.wallet.pinResetCooldown = Wallet.PINResetCooldown(window: .seconds(24 * 3600), limit: .shillings(100))
        }
        let harness = rig.harness
        let (achieng, sender, otieno, recipient) = try await harness.senderAndRecipient()
        try await harness.approvedPINReset(sender)
        try await harness.run(.live) { client in
            var phone = Phone(client, achieng, graph: harness.graph)
            #expect(try await phone.dial() == "CON Your PIN was reset. Choose a new 4-digit PIN")
            _ = try await phone.type(TypedPINs.newPIN)
            #expect(try await phone.type(TypedPINs.newPIN) == "END Your new PIN is set. Dial again to use your wallet.")
            let completed = try #require(try await harness.wallet.customer(sender).pinResetCompletedAt)
            clock.now = completed.addingTimeInterval(3600)
            let until = WalletActions.localTime(completed.addingTimeInterval(24 * 3600))

            func send(_ shillings: String) async throws -> String {
                _ = try await phone.dial()
                for input in ["4", otieno, shillings, "1"] { _ = try await phone.type(input) }
                return try await phone.type(TypedPINs.newPIN)
            }
            #expect(
                try await send("200")
                    == "END Your PIN was reset recently. For your safety, large sends and withdrawals are paused until \(until). Nothing was sent.")
            #expect(try await send("50").hasPrefix("END Sent KES 50"), "a small send works")
            #expect(try await send("60").hasPrefix("END Your PIN was reset recently"), "small sends add up to the limit")
            try await sms(client, from: sender, "SEND \(otieno) 300 \(TypedPINs.newPIN)")
            try await rig.texts(sender) { texts in
                texts.contains("Your PIN was reset recently: large sends and withdrawals are paused until \(until). Nothing was sent.")
                    && texts.contains { $0.hasPrefix("Your PIN was reset. For your safety, sends and withdrawals over KES 100 are paused until \(until).") }
            }
            #expect(try await harness.wallet.balances(recipient).main == .shillings(50))

            clock.now = completed.addingTimeInterval(24 * 3600 + 1)
            #expect(try await send("200").hasPrefix("END Sent KES 200"), "after the window")
        }
        #expect(try await harness.notices(sender, "cooling_off") == 1, "one notice per window, however often refused")
        #expect(try await harness.wallet.balances(recipient).main == .shillings(250))
        await rig.finish()
    }

    @Test func aBlockedCustomerCanCheckTheBalanceAndNothingElse() async throws {
        let harness = try await USSDHarness.make()
        let (achieng, sender, otieno, recipient) = try await harness.senderAndRecipient()
        #expect(try await harness.wallet.block(sender, by: self.desk) == .changed)
        try await harness.run { client in
            var phone = Phone(client, achieng, graph: harness.graph)
            let blocked = try await phone.dial()
            #expect(blocked == "CON Your wallet is blocked. You can only check your balance. Call 100 for help.\n1. Check Balance")
            _ = try await phone.type("1")
            #expect(try await phone.type(TypedPINs.achieng) == "END Balance: KES 1,000\nSavings: KES 0")

            // The main menu is a key away, and the wallet refuses the send at the PIN.
            _ = try await phone.dial()
            #expect(try await phone.type("00").hasPrefix("CON Welcome Achieng"))
            for input in ["4", otieno, "100", "1"] { _ = try await phone.type(input) }
            let refused = try await phone.type(TypedPINs.achieng)
            #expect(refused == "END Your wallet is blocked: you can only check your balance. Call 100 for help.")
        }
        #expect(try await harness.wallet.balances(sender).main == .shillings(1_000))
        #expect(try await harness.wallet.balances(recipient).main == .zero)
        #expect(try await harness.movements(kind: "p2p") == 0)
        #expect(try await harness.notices(sender, "account_blocked") == 1)
        await harness.finish()
    }

    @Test func theConfirmationShowsTheFeeAndTotalBeforeThePINAndTheLimitsEndOnTheirScreens() async throws {
        let harness = try await USSDHarness.make()
        let (achieng, sender, otieno, recipient) = try await harness.senderAndRecipient()
        let juma = freshLocal()
        let rich = try await harness.customer(juma, name: "Juma", pin: TypedPINs.otieno, shillings: 1_000)
        // The tiers once everyone is funded (a deposit of 1,000 is over basic's 500 per transaction).
        try await harness.wallet.applyConfiguration(
            tiers: [
                KYCTier(name: "basic", perTransaction: 50_000, daily: 80_000, maxBalance: 120_000),
                KYCTier(name: "full", perTransaction: 1_000_000, daily: 2_000_000, maxBalance: 5_000_000),
            ],
            defaultTier: "basic", settings: [:]
        )
        try await harness.wallet.setTier(rich, to: "full", by: self.desk)
        try await harness.run { client in
            var phone = Phone(client, achieng, graph: harness.graph)
            _ = try await phone.dial()
            for input in ["4", otieno] { _ = try await phone.type(input) }
            let confirm = try await phone.type("400")
            #expect(confirm == "CON Send KES 400 to \(masked(otieno))? Fee KES 7. Total KES 407\n1. Confirm\n2. Cancel\n0. Back")
            _ = try await phone.type("1")
            #expect(try await phone.type(TypedPINs.achieng).hasPrefix("END Sent KES 400 to \(masked(otieno)). Fee KES 7. New balance KES 593."))

            // Over the tier's 500 per send.
            _ = try await phone.dial()
            for input in ["4", otieno, "501", "1"] { _ = try await phone.type(input) }
            let tooMuch = try await phone.type(TypedPINs.achieng)
            #expect(tooMuch == "END That is over your limit (per transaction, per day or wallet balance). Nothing was done.")
            // Over the day's 800: 400 sent already.
            _ = try await phone.dial()
            for input in ["4", otieno, "401", "1"] { _ = try await phone.type(input) }
            let dayFull = try await phone.type(TypedPINs.achieng)
            #expect(dayFull.hasPrefix("END That is over your limit"))

            // Otieno holds 400 of at most 1,200: Juma (full tier) cannot send him 801.
            var jumaPhone = Phone(client, juma, graph: harness.graph)
            _ = try await jumaPhone.dial()
            for input in ["4", otieno, "801", "1"] { _ = try await jumaPhone.type(input) }
            let full = try await jumaPhone.type(TypedPINs.otieno)
            #expect(full == "END \(masked(otieno)) cannot receive that much now: it is over their wallet limit. Nothing was sent.")
        }
        #expect(try await harness.wallet.balances(sender).main == .shillings(593))
        #expect(try await harness.wallet.balances(recipient).main == .shillings(400))
        #expect(
            try await harness.postgres.query("SELECT balance FROM account_balances WHERE kind = 'fee_income'").single()!.decode(Int64.self, column: 0)
                == 700)
        try await harness.audit()
        await harness.finish()
    }

    @Test func forgedAndMalformedCallbacksAreWrittenToTheAuditTrail() async throws {
        let harness = try await USSDHarness.make { $0.callbackToken = "desk-token-0123456789" }
        try await harness.run(.live) { client in
            let forged = try await client.execute(
                uri: "/ussd/africastalking/not-the-token", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "sessionId=x&phoneNumber=%2B254712345678&serviceCode=*384*96%23&text=")
            )
            #expect(forged.status == .notFound)
            let malformed = try await client.execute(
                uri: "/ussd/africastalking/desk-token-0123456789", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "sessionId=x&text=1*4826")
            )
            #expect(malformed.status == .badRequest)
            // Written off the request path: wait for both rows.
            var rows: [(String, String)] = []
            _ = try await eventually(within: .seconds(30), every: .milliseconds(50)) {
                rows = try await harness.postgres.query(
                    "SELECT reason, status::text FROM callback_refusals ORDER BY id"
                ).map { try $0.decode((String, String).self) }
                return rows.count >= 2
            }
            #expect(rows.count == 2, "\(rows)")
            #expect(rows.first { $0.1 == "404" }?.0.contains("wrong or missing callback token") == true, "\(rows)")
            #expect(rows.first { $0.1 == "400" }?.0.hasPrefix("ussd") == true, "\(rows)")
            // Nothing of the body: no typed input, no token.
            let trail = try await harness.postgres.query(
                "SELECT coalesce(reason, '') || coalesce(after::text, '') FROM audit_log UNION ALL SELECT reason || coalesce(source, '') FROM callback_refusals")
                .map { try $0.decode(String.self, column: 0) }.joined()
            #expect(!trail.contains("4826") && !trail.contains("desk-token") && !trail.contains("not-the-token"), "\(trail)")
        }
        await harness.finish()
    }
}
