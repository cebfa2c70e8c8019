import Basics
import Foundation
@testable import GatewayActions
@testable import GatewayHTTP
import GatewayTelemetry
@testable import GatewayTestSupport
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Menus
@testable import MPesaGateway
import MetricsTestKit
import Postgres
@testable import SMSChannel
import Testing
import TestSupport
@testable import USSDChannel
@testable import USSDGateway
import Wallet

@Suite struct USSDJourneyTests {
    /// The gateway's parts record to the metrics their builder hands them: here a test's own
    /// factory, which sees this test's hops and nothing of any other's.
    @Test func theHopsAreCountedInTheMetricsTheGatewayIsGiven() async throws {
        let harness = try await USSDHarness.make()
        let recorded = TestMetrics()
        let local = freshLocal()
        try await harness.run(metrics: MetricCache(factory: recorded)) { client in
            var phone = Phone(client, local, graph: harness.graph)
            #expect(try await phone.dial() == "CON Welcome! We keep your name, number and payments to run your wallet (privacy notice: *384*96*7#). Enter your full name")
            _ = try await phone.repeatLast()
        }
        let hops = try recorded.expectCounter("ussd_hops_total", [("provider", "africastalking"), ("screen", "reg.name"), ("outcome", "con")])
        let replays = try recorded.expectCounter("ussd_hops_total", [("provider", "africastalking"), ("screen", "reg.name"), ("outcome", "replay")])
        #expect(hops.totalValue == 1 && replays.totalValue == 1)
        #expect(recorded.counters(label: "ussd_hops_total").count == 2, "no hop of another test")
        await harness.finish()
    }

    @Test func anUnknownNumberRegistersThenLandsOnTheMainMenu() async throws {
        let harness = try await USSDHarness.make()
        let local = freshLocal()
        try await harness.run { client in
            var phone = Phone(client, local, graph: harness.graph)
            #expect(try await phone.dial() == "CON Welcome! We keep your name, number and payments to run your wallet (privacy notice: *384*96*7#). Enter your full name")
            #expect(try await phone.type("Achieng Otieno").hasPrefix("CON Choose your language"))
            #expect(try await phone.type("1") == "CON Choose a 4-digit PIN")
            #expect(try await phone.type("1234") == "CON Enter the PIN again to confirm. You accept our privacy notice: dial *384*96*7#")
            // A weak PIN is refused by the wallet after confirmation, and asked for again.
            #expect(try await phone.type("1234") == "CON That PIN is too easy to guess. Choose another 4-digit PIN")
            #expect(try await phone.type(TypedPINs.achieng) == "CON Enter the PIN again to confirm. You accept our privacy notice: dial *384*96*7#")
            #expect(try await phone.type("9999").contains("The PINs did not match."), "a mismatch asks again")
            #expect(try await phone.type(TypedPINs.achieng) == "CON Enter the PIN again to confirm. You accept our privacy notice: dial *384*96*7#")
            #expect(try await phone.type(TypedPINs.achieng) == "END Welcome Achieng Otieno! Your wallet is ready. Dial again to use it.")

            let main = try await phone.dial()
            #expect(main.hasPrefix("CON Welcome Achieng Otieno\n1. Check Balance"))
            #expect(try await phone.type("1") == "CON Enter your 4-digit PIN")
            #expect(try await phone.type(TypedPINs.achieng) == "END Balance: KES 0\nSavings: KES 0")
        }
        #expect(try await harness.wallet.profile(MSISDN(parsing: local, plan: .kenya)!).name == "Achieng Otieno")
        // The notice the registration told of, accepted with its version and when.
        let accepted = try await harness.postgres.query(
            "SELECT privacy_notice, privacy_accepted_at IS NOT NULL FROM customers WHERE msisdn = \(MSISDN(parsing: local, plan: .kenya)!.value)"
        ).single()!.decode((String?, Bool).self)
        #expect(accepted.0 == "2026-12" && accepted.1)
        await harness.finish()
    }

    /// Where the privacy notice is, as registration tells it: its own short code (and My Account's
    /// Privacy item) once registered; registration's first screen says what is kept and where.
    @Test func thePrivacyNoticeIsOneDialAway() async throws {
        let harness = try await USSDHarness.make()
        let local = freshLocal()
        _ = try await harness.customer(local, name: "Achieng", pin: TypedPINs.achieng)
        try await harness.run { client in
            var phone = Phone(client, local, graph: harness.graph)
            phone.serviceCode = "*384*96*7#"
            let reply = try await phone.dial()
            #expect(reply == "END Privacy: we keep your name, number, payments and SMS to run your wallet. For a copy or erasure call 0800 720 000.")
        }
        await harness.finish()
    }

    @Test func sendMoneyWithPINMovesMoneyOnceEvenWhenTheHopIsRepeated() async throws {
        let harness = try await USSDHarness.make()
        let (achieng, sender, otieno, recipient) = try await harness.senderAndRecipient()
        try await harness.run { client in
            var phone = Phone(client, achieng, graph: harness.graph)
            _ = try await phone.dial()
            #expect(try await phone.type("4") == "CON Send money. Enter the phone number")
            #expect(try await phone.type(otieno) == "CON Enter amount to send (KES)")
            #expect(try await phone.type("300").hasPrefix("CON Send KES 300 to \(masked(otieno))?"))
            #expect(try await phone.type("1") == "CON Enter your 4-digit PIN")
            let done = try await phone.type(TypedPINs.achieng)
            // The tariff's fee for 300 (KES 7) was shown before the PIN and is charged with it.
            #expect(done.hasPrefix("END Sent KES 300 to \(masked(otieno)). Fee KES 7. New balance KES 693. Ref "), "\(done)")
            // The aggregator did not get our answer and posts the same hop again.
            #expect(try await phone.repeatLast() == done, "byte for byte")
            #expect(try await phone.repeatLast() == done)
            let metrics = String(buffer: try await client.execute(uri: "/metrics", method: .get).body)
            #expect(metrics.contains("ussd_hops_total{provider=\"africastalking\",screen=\"send.done\",outcome=\"end\"}"), "hops by screen and outcome")
            #expect(metrics.contains("outcome=\"replay\"") && metrics.contains("ussd_hop_duration_seconds_bucket"))
            #expect(metrics.contains("ussd_active_sessions"))
        }
        #expect(try await harness.wallet.balances(sender).main == .shillings(693), "300 and its fee of 7")
        #expect(try await harness.wallet.balances(recipient).main == .shillings(300))
        #expect(try await harness.movements(kind: "p2p") == 1)
        try await harness.audit()
        await harness.finish()
    }

    @Test func aDialInShortcutOpensSendMoneyFilledInAndBadDigitsGetTheScreensError() async throws {
        let harness = try await USSDHarness.make()
        let (achieng, sender, otieno, recipient) = try await harness.senderAndRecipient()
        try await harness.run { client in
            var phone = Phone(client, achieng, graph: harness.graph)
            // *384*96*4*<recipient>*300#, as Africa's Talking sends the dialled code.
            phone.serviceCode = "*384*96*4*\(otieno)*300#"
            #expect(try await phone.dial().hasPrefix("CON Send KES 300 to \(masked(otieno))?"), "confirmation first, as by the menus")
            #expect(try await phone.type("1") == "CON Enter your 4-digit PIN")
            let done = try await phone.type(TypedPINs.achieng)
            #expect(done.hasPrefix("END Sent KES 300 to \(masked(otieno)). Fee KES 7."), "\(done)")
            #expect(try await phone.repeatLast() == done, "a repeated hop of a shortcut session is answered the same")

            // Digits the screen refuses: that screen, with its error.
            phone.serviceCode = "*384*96*4*07*300#"
            #expect(try await phone.dial() == "CON Enter a Safaricom or Airtel number, e.g. 0712345678.\nSend money. Enter the phone number")
            #expect(try await phone.type(otieno) == "CON Enter amount to send (KES)")

            // *384*96*1#: the balance's PIN; an unknown extension: home; another code: refused.
            phone.serviceCode = "*384*96*1#"
            #expect(try await phone.dial() == "CON Enter your 4-digit PIN")
            phone.serviceCode = "*384*96*7*7#"
            #expect(try await phone.dial().hasPrefix("CON Welcome Achieng"))
            phone.serviceCode = "*385*96*1#"
            #expect(try await phone.dial() == "END This service is not available.")

            // The same extension in the first hop's text instead, with the bare code: the shortcut
            // too, and the next hop's input is what follows it.
            phone.serviceCode = "*384*96#"
            phone.session = Phone.newSession()
            phone.inputs = ["1"]
            #expect(try await phone.post(text: phone.text) == "CON Enter your 4-digit PIN")
            #expect(try await phone.type(TypedPINs.achieng).hasPrefix("END Balance"), "then the balance, by the usual path")
        }
        #expect(try await harness.wallet.balances(sender).main == .shillings(693))
        #expect(try await harness.wallet.balances(recipient).main == .shillings(300))
        #expect(try await harness.movements(kind: "p2p") == 1)
        try await harness.audit()
        await harness.finish()
    }

    @Test func twoCopiesOfThePINHopPostedTogetherMoveMoneyOnce() async throws {
        let harness = try await USSDHarness.make()
        let (achieng, sender, otieno, _) = try await harness.senderAndRecipient()
        try await harness.run { client in
            var phone = Phone(client, achieng, graph: harness.graph)
            for input in ["", "4", otieno, "250", "1"] { _ = input.isEmpty ? try await phone.dial() : try await phone.type(input) }
            phone.inputs.append(TypedPINs.achieng)
            let pinHop = phone
            let replies = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<4 { group.addTask { try await pinHop.repeatLast() } }
                return try await group.reduce(into: [String]()) { $0.append($1) }
            }
            #expect(Set(replies).count == 1, "every copy got the same reply: \(replies)")
            #expect(replies[0].hasPrefix("END Sent KES 250 to"))
        }
        #expect(try await harness.wallet.balances(sender).main == .shillings(743), "250 and its fee of 7, once")
        #expect(try await harness.movements(kind: "p2p") == 1)
        try await harness.audit()
        await harness.finish()
    }

    @Test func savingsStatementAndAPagedMainMenu() async throws {
        let harness = try await USSDHarness.make()
        let local = freshLocal()
        let msisdn = try await harness.customer(local, name: "Zoë Wanjiru", pin: TypedPINs.achieng, shillings: 2_000)
        try await harness.run { client in
            var phone = Phone(client, local, graph: harness.graph)
            let first = try await phone.dial()
            #expect(first.contains("98. More"), "a name outside GSM-7 makes the page UCS-2 (70 characters), so the menu pages: \(first)")
            #expect(!first.contains("8. Help"))
            let second = try await phone.type("98")
            #expect(second.contains("8. Help"), "numbering continues across pages: \(second)")
            #expect(try await phone.type("5").hasPrefix("CON Savings\n1. Savings balance"))
            #expect(try await phone.type("2") == "CON Save from your balance. Enter amount (KES)")
            #expect(try await phone.type("5") == "CON Enter a whole amount from 10 to 250,000.\nSave from your balance. Enter amount (KES)", "a wrong input repeats the screen with its error")
            #expect(try await phone.type("500").hasPrefix("CON Save KES 500?"))
            #expect(try await phone.type("1") == "CON Enter your 4-digit PIN")
            #expect(try await phone.type(TypedPINs.achieng) == "END Saved KES 500. Savings KES 500. Balance KES 1,500.")

            _ = try await phone.dial()
            for input in ["98", "5", "3", "200", "1"] { _ = try await phone.type(input) }
            #expect(try await phone.type(TypedPINs.achieng) == "END Moved KES 200 to your balance. Savings KES 300. Balance KES 1,700.")

            _ = try await phone.dial()
            for input in ["98", "7", "1"] { _ = try await phone.type(input) }
            let statement = try await phone.type(TypedPINs.achieng)
            #expect(statement.hasPrefix("END "))
            #expect(statement.contains("+200.00 unsave") && statement.contains("-500.00 save") && statement.contains("+2000.00 deposit"), "\(statement)")
        }
        #expect(try await harness.wallet.balances(msisdn) == Wallet.Balances(main: .shillings(1_700), savings: .shillings(300), held: .zero))
        try await harness.audit()
        await harness.finish()
    }

    @Test func changePINThenLanguageThenBackAndHome() async throws {
        let harness = try await USSDHarness.make()
        let local = freshLocal()
        let msisdn = try await harness.customer(local, name: "Kamau", pin: TypedPINs.achieng, shillings: 100)
        try await harness.run { client in
            var phone = Phone(client, local, graph: harness.graph)
            _ = try await phone.dial()
            for input in ["98", "7"] { _ = try await phone.type(input) }
            #expect(try await phone.type("2") == "CON Enter your current PIN")
            #expect(try await phone.type(TypedPINs.newPIN) == "CON Wrong PIN. Enter your current PIN")
            #expect(try await phone.type(TypedPINs.achieng) == "CON Choose a new 4-digit PIN")
            #expect(try await phone.type(TypedPINs.newPIN) == "CON Enter the new PIN again")
            #expect(try await phone.type(TypedPINs.newPIN) == "END Your PIN has been changed.")

            // The old PIN no longer works; the new one does.
            _ = try await phone.dial()
            _ = try await phone.type("1")
            #expect(try await phone.type(TypedPINs.achieng) == "CON Wrong PIN. Enter your 4-digit PIN")
            #expect(try await phone.type(TypedPINs.newPIN) == "END Balance: KES 100\nSavings: KES 0")

            // Language: Kiswahili from the next screen on, and on the next dial.
            _ = try await phone.dial()
            for input in ["98", "7", "3"] { _ = try await phone.type(input) }
            let saved = try await phone.type("2")
            #expect(saved.hasPrefix("END ") && !saved.contains("Language saved"), "\(saved)")
            let swahili = try await phone.dial()
            #expect(swahili.contains("Angalia Salio"), "\(swahili)")

            // Back (0) returns to the previous screen; home (00) to the main menu.
            #expect(try await phone.type("4").hasPrefix("CON "))
            #expect(try await phone.type("0") == swahili, "back from the first screen of a journey is the main menu")
            _ = try await phone.type("4")
            _ = try await phone.type(freshLocal())
            #expect(try await phone.type("00") == swahili)
        }
        #expect(try await harness.wallet.customer(msisdn).language == "sw")
        #expect(try await harness.notices(msisdn, "pin_changed") == 1, "the owner is told the PIN changed")
        await harness.finish()
    }

    @Test func wrongChoicesRepeatTheMenuThenEnd() async throws {
        let harness = try await USSDHarness.make()
        let local = freshLocal()
        _ = try await harness.customer(local, name: "Njeri", pin: TypedPINs.achieng)
        try await harness.run { client in
            var phone = Phone(client, local, graph: harness.graph)
            let main = try await phone.dial()
            #expect(try await phone.type("9") == "CON Invalid choice.\n" + main.dropFirst(4))
            #expect(try await phone.type("x").hasPrefix("CON Invalid choice."))
            #expect(try await phone.type("") == "END Too many wrong entries. Please dial again.")
        }
        await harness.finish()
    }

    @Test func threeWrongPINsLockTheCustomerAndMoveNothing() async throws {
        let harness = try await USSDHarness.make()
        let (achieng, sender, otieno, _) = try await harness.senderAndRecipient()
        try await harness.run { client in
            var phone = Phone(client, achieng, graph: harness.graph)
            _ = try await phone.dial()
            for input in ["4", otieno, "100", "1"] { _ = try await phone.type(input) }
            #expect(try await phone.type(TypedPINs.wrong) == "CON Wrong PIN. Enter your 4-digit PIN")
            #expect(try await phone.type(TypedPINs.wrong) == "CON Wrong PIN. Enter your 4-digit PIN")
            #expect(try await phone.type(TypedPINs.wrong).hasPrefix("END Your wallet is locked"))
            // Locked: even the right PIN gets nowhere, and the main menu says so at once.
            #expect(try await phone.dial().hasPrefix("END Your wallet is locked"))
        }
        #expect(try await harness.wallet.balances(sender).main == .shillings(1_000))
        #expect(try await harness.movements(kind: "p2p") == 0)
        #expect(try await harness.notices(sender, "account_locked") == 1, "one notice per lock")
        try await harness.audit()
        await harness.finish()
    }
}

@Suite struct USSDReplicaTests {
    @Test func hopsAlternatingBetweenTwoReplicasFollowOneSession() async throws {
        // Two gateways on the same Redis and Postgres, as behind a load balancer: each keeps a copy
        // of the sessions it served, which the other one makes stale.
        let harness = try await USSDHarness.make()
        let (achieng, sender, otieno, recipient) = try await harness.senderAndRecipient()
        let other = try buildApplication(config: harness.config, logger: harness.capture.logger, menus: harness.graph)
        try await harness.run { first in
            try await other.test(.live) { second in
                let session = Phone.newSession()
                var inputs: [String] = []
                var replies: [String] = []
                for (index, input) in ["", "4", otieno, "300", "1", TypedPINs.achieng, "again"].enumerated() {
                    var phone = Phone(index % 2 == 0 ? first : second, achieng, graph: harness.graph)
                    (phone.session, phone.inputs) = (session, inputs)
                    if input == "again" {
                        // The final hop repeated on the other replica than the one that answered it.
                        replies.append(try await phone.repeatLast())
                    } else {
                        replies.append(input.isEmpty ? try await phone.post(text: "") : try await phone.type(input))
                    }
                    inputs = phone.inputs
                    if index == 0 {
                        // The first hop repeated on the other replica, which has never seen the session.
                        var repeated = Phone(second, achieng, graph: harness.graph)
                        repeated.session = session
                        #expect(try await repeated.post(text: "") == replies[0])
                    }
                }
                #expect(replies[0].hasPrefix("CON Welcome Achieng"))
                #expect(replies[1] == "CON Send money. Enter the phone number")
                #expect(replies[2] == "CON Enter amount to send (KES)")
                #expect(replies[3].hasPrefix("CON Send KES 300 to \(masked(otieno))?"))
                #expect(replies[4] == "CON Enter your 4-digit PIN")
                #expect(replies[5].hasPrefix("END Sent KES 300 to"))
                #expect(replies[6] == replies[5])
            }
        }
        #expect(try await harness.wallet.balances(sender).main == .shillings(693), "300 and its fee of 7")
        #expect(try await harness.wallet.balances(recipient).main == .shillings(300))
        #expect(try await harness.movements(kind: "p2p") == 1)
        try await harness.audit()
        await harness.finish()
    }
}
