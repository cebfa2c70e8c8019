import AfricasTalking
import Basics
import Curl
import Foundation
@testable import GatewayActions
@testable import GatewayHTTP
import GatewayTelemetry
@testable import GatewayTestSupport
import Hummingbird
import HummingbirdTesting
import Logging
import Menus
@testable import MPesaGateway
import Postgres
@testable import SMSChannel
import Testing
import TestSupport
@testable import USSDChannel
import USSDGateway
import Wallet

@Suite struct SMSTests {
    @Test func everyCommandInBothLanguages() async throws {
        let rig = try await SMSRig.make()
        let (achiengLocal, otienoLocal, juma) = (freshLocal(), freshLocal(), freshLocal())
        let achieng = try await rig.harness.customer(achiengLocal, name: "Achieng", pin: TypedPINs.achieng, shillings: 1_000)
        let otieno = try await rig.harness.customer(otienoLocal, name: "Otieno", pin: TypedPINs.otieno, shillings: 1_000, language: "sw")
        let stranger = MSISDN(parsing: juma, plan: .kenya)!
        try await rig.harness.run(.live) { client in
            // The funding deposits' receipts go out first.
            try await rig.texts(achieng) { $0.count == 1 }
            try await rig.texts(otieno) { $0.count == 1 }
            // English, with the customer's own spacing and case.
            try await sms(client, from: achieng, "  bal   \(TypedPINs.achieng) ")
            try await rig.texts(achieng) { $0.contains("Balance KES 1,000. Savings KES 0.") }
            try await sms(client, from: achieng, "SEND +254\(otienoLocal.dropFirst()) 100 \(TypedPINs.achieng)")
            try await rig.texts(achieng) { texts in
                texts.contains { $0.hasPrefix("Sent KES 100 to \(masked(otienoLocal)). Fee KES 0. Balance KES 900.") }
                    && texts.contains { $0.hasPrefix("You sent KES 100 to \(masked(otienoLocal)). Ref ") }
            }
            try await rig.texts(otieno) { $0.contains { $0.hasPrefix("Umepokea KES 100 kutoka \(masked(achiengLocal)). Kumb ") } }
            try await sms(client, from: achieng, "SAVE 200 \(TypedPINs.achieng)")
            try await rig.texts(achieng) { $0.contains("You saved KES 200. Savings KES 200.") }
            try await sms(client, from: achieng, "MINI \(TypedPINs.achieng)")
            try await rig.texts(achieng) { $0.contains { $0.contains("-KES 100 \(otienoLocal)") || $0.contains("-100") } }
            try await sms(client, from: achieng, "DEPOSIT 100 \(TypedPINs.achieng)")
            try await sms(client, from: achieng, "WITHDRAW 100 \(TypedPINs.achieng)")
            try await rig.texts(achieng) { $0.filter { $0 == "M-Pesa is not available right now. Please try again later." }.count == 2 }
            try await sms(client, from: achieng, "HELLO there")
            try await rig.texts(achieng) { $0.contains { $0.hasPrefix("Commands: BAL <PIN>") } }
            try await sms(client, from: achieng, "SEND 0712")
            try await rig.texts(achieng) { $0.contains { $0.contains("SEND <phone> <amount> <PIN>") } }

            // Swahili, from a Swahili customer.
            try await sms(client, from: otieno, "SALIO \(TypedPINs.otieno)")
            try await rig.texts(otieno) { $0.contains("Salio KES 1,100. Akiba KES 0.") }
            try await sms(client, from: otieno, "tuma \(achiengLocal) 50 \(TypedPINs.otieno)")
            try await rig.texts(otieno) { $0.contains { $0.hasPrefix("Umetuma KES 50 kwa \(masked(achiengLocal))") } }
            try await sms(client, from: otieno, "HIFADHI 100 \(TypedPINs.otieno)")
            try await rig.texts(otieno) { $0.contains("Umehifadhi KES 100. Akiba KES 100.") }
            try await sms(client, from: otieno, "TAARIFA \(TypedPINs.otieno)")
            try await sms(client, from: otieno, "WEKA 100 \(TypedPINs.otieno)")
            try await sms(client, from: otieno, "TOA 100 \(TypedPINs.otieno)")
            try await rig.texts(otieno) { $0.filter { $0 == "M-Pesa haipatikani sasa. Tafadhali jaribu tena baadaye." }.count == 2 }
            try await sms(client, from: otieno, "SALIO 0000")
            try await rig.texts(otieno) { $0.contains("PIN si sahihi. Hakuna kilichofanyika.") }
            try await sms(client, from: otieno, "habari")
            try await rig.texts(otieno) { $0.contains { $0.hasPrefix("Amri: SALIO <PIN>") } }

            // A number without a wallet learns how to open one.
            try await sms(client, from: stranger, "BAL \(TypedPINs.newPIN)")
            try await rig.texts(stranger) { $0 == ["This number has no wallet. Dial *384*96# to open one."] }

            // What was stored of the commands has the PIN masked.
            // (This test's own senders' rows only, and a PIN as the word it was typed as: another
            // test's phone number, or this one's, may hold the same four digits.)
            // Kept sealed, each for its sender (the month's key for the number without a wallet).
            let (one, two, three) = (achieng.value, otieno.value, stranger.value)
            let personalData = try #require(rig.harness.wallet.personalData)
            var stored: [String] = []
            for row in try await rig.harness.postgres.query(
                "SELECT id, subject::text, text_sealed, text_masked FROM sms_inbound WHERE sender IN (\(one), \(two), \(three))")
            {
                let (id, subject, sealed, clear) = try row.decode((String, String, Data, String?).self)
                #expect(clear == nil)
                stored.append(try #require(try await personalData.open(sealed, for: UUID(uuidString: subject)!, at: .inboundText(id))))
            }
            #expect(stored.contains("bal ****") && stored.contains("SEND +254\(otienoLocal.dropFirst()) 100 ****"), "\(stored)")
            let words = Set(stored.flatMap { $0.split(separator: " ").map(String.init) })
            for pin in TypedPINs.all { #expect(!words.contains(pin), "a PIN was stored") }
        }
        // A backup of the database after all that holds no name, command or reply in clear.
        let dump = try await TestServers.dump(rig.harness.postgres.configuration)
        for clear in ["Achieng", "Otieno", "HELLO there", "habari", "Balance KES 1,000", "Salio KES 1,100", "This number has no wallet", "TAARIFA"] {
            #expect(!dump.contains(clear), "\(clear) is in clear in the backup")
        }
        try await rig.harness.audit()
        await rig.finish()
    }

    @Test func threeWrongPINsBySMSLockTheWalletAndSayItOnce() async throws {
        let rig = try await SMSRig.make { $0.sms.senderID = "WALLET" }
        let local = freshLocal()
        let msisdn = try await rig.harness.customer(local, name: "Chege", pin: TypedPINs.achieng)
        try await rig.harness.run(.live) { client in
            for _ in 0..<3 { try await sms(client, from: msisdn, "BAL \(TypedPINs.wrong)") }
            try await sms(client, from: msisdn, "BAL \(TypedPINs.achieng)")
            // The outbox sends in no promised order: wait for every reply, not only the lock's.
            let texts = try await rig.texts(msisdn) { texts in
                texts.filter { $0.hasPrefix("Your wallet is locked after 3 wrong PINs") }.count == 2 && texts.contains { $0.hasPrefix("Your wallet is locked for 30 minutes") }
                    && texts.filter { $0 == "Wrong PIN. Nothing was done." }.count >= 2
            }
            #expect(texts.filter { $0 == "Wrong PIN. Nothing was done." }.count == 2, "\(texts)")
            #expect(texts.filter { $0.hasPrefix("Your wallet is locked for") }.count == 1, "one notice per lock: \(texts)")
            #expect(rig.fake.messages.allSatisfy { $0.from == "WALLET" }, "AT_SENDER_ID goes as from")
        }
        await rig.finish()
    }

    @Test func aRetriedInboundIDRunsNothingTwice() async throws {
        let rig = try await SMSRig.make()
        let (senderLocal, recipientLocal) = (freshLocal(), freshLocal())
        let sender = try await rig.harness.customer(senderLocal, name: "Wambui", pin: TypedPINs.achieng, shillings: 500)
        let recipient = try await rig.harness.customer(recipientLocal, name: "Kiprono", pin: TypedPINs.otieno)
        try await rig.harness.run(.live) { client in
            let id = "ATXid_dup_" + UUID().uuidString
            let text = "SEND \(recipientLocal) 200 \(TypedPINs.achieng)"
            async let first = sms(client, from: sender, text, id: id)
            async let second = sms(client, from: sender, text, id: id)
            _ = try await (first, second)
            try await sms(client, from: sender, text, id: id)
            // The funding receipt, one reply and one send receipt; one receipt for the recipient.
            try await rig.texts(sender) { $0.count >= 3 }
            try await rig.texts(recipient) { $0.count >= 1 }
            #expect(try await throughout(.milliseconds(200)) { rig.fake.texts(to: sender.value).count == 3 }, "\(rig.fake.texts(to: sender.value))")
            #expect(rig.fake.texts(to: recipient.value).count == 1)
            #expect(try await rig.harness.wallet.balances(sender).available.cents == 29_300, "200 and its fee of 7, once")
            #expect(try await rig.harness.wallet.balances(recipient).available.cents == 20_000)
        }
        try await rig.harness.audit()
        await rig.finish()
    }

    @Test func transientFailuresAreRetriedAndPermanentOnesAreNot() async throws {
        let rig = try await SMSRig.make { $0.sms.maxAttempts = 3 }
        let (a, b, c) = (freshLocal(), freshLocal(), freshLocal())
        let first = MSISDN(parsing: a, plan: .kenya)!
        let second = MSISDN(parsing: b, plan: .kenya)!
        let third = MSISDN(parsing: c, plan: .kenya)!
        try await rig.harness.run(.live) { _ in
            rig.fake.state.withLock { $0.script = [.http(500), .recipient(502, "RejectedByGateway")] }
            let retried = try await SMSService.queue(rig.harness.postgres, personalData: rig.harness.wallet.personalData, to: first, text: "Retried until it goes")
            var row = try await rig.settled(retried)
            #expect(row.status == "sent" && row.attempts == 3, "\(row)")
            #expect(rig.fake.texts(to: first.value) == ["Retried until it goes"])

            rig.fake.state.withLock { $0.script = [.recipient(403, "InvalidPhoneNumber")] }
            let refused = try await SMSService.queue(rig.harness.postgres, personalData: rig.harness.wallet.personalData, to: second, text: "Never retried")
            row = try await rig.settled(refused)
            #expect(row.status == "failed" && row.attempts == 1 && row.error == "403 InvalidPhoneNumber", "\(row)")

            rig.fake.state.withLock { $0.script = [.hang, .http(503), .http(503)] }
            let hopeless = try await SMSService.queue(rig.harness.postgres, personalData: rig.harness.wallet.personalData, to: third, text: "Given up on")
            row = try await rig.settled(hopeless)
            #expect(row.status == "failed" && row.attempts == 3 && row.error?.hasPrefix("gave up after 3 attempts") == true, "\(row)")
            #expect(try await throughout(.milliseconds(200)) { rig.fake.state.withLock { $0.requests } == 7 }, "three for the retried one, one for the refused one, three for the hopeless one")
        }
        await rig.finish()
    }

    @Test func deliveryReportsUpdateTheMessage() async throws {
        let rig = try await SMSRig.make()
        let msisdn = MSISDN(parsing: freshLocal(), plan: .kenya)!
        try await rig.harness.run(.live) { client in
            let id = try await SMSService.queue(rig.harness.postgres, personalData: rig.harness.wallet.personalData, to: msisdn, text: "Report on me")
            _ = try await rig.settled(id)
            let messageID = try #require(rig.fake.messages.first { $0.to == "+" + msisdn.value }?.messageID)
            func report(_ fields: [String: String]) async throws -> TestResponse {
                try await client.execute(
                    uri: "/sms/africastalking/delivery", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                    body: ByteBuffer(string: Phone.form(fields))
                )
            }
            #expect(try await report(["id": messageID, "status": "Buffered", "phoneNumber": "+" + msisdn.value, "networkCode": "63902"]).status == .ok)
            #expect(try await report(["id": messageID, "status": "Failed", "failureReason": "UserInBlackList", "phoneNumber": "+" + msisdn.value, "retryCount": "0"]).status == .ok)
            // A late in-progress report does not undo a final one.
            #expect(try await report(["id": messageID, "status": "Sent"]).status == .ok)
            let row = try await rig.harness.postgres.query("SELECT delivery_status, failure_reason FROM outbox WHERE id = \(id)").single()!.decode((String?, String?).self)
            #expect(row.0 == "Failed" && row.1 == "UserInBlackList")
            #expect(try await report(["id": "ATXid_unknown", "status": "Success"]).status == .ok, "an unknown id is answered and logged")
            #expect(try await report(["status": "Success"]).status == .badRequest)
        }
        await rig.finish()
    }

    @Test func aMessageLeftPendingByACrashIsSentAfterTheRestart() async throws {
        let rig = try await SMSRig.make()
        let msisdn = MSISDN(parsing: freshLocal(), plan: .kenya)!
        // A sender claimed this row and died: its claim has run out.
        let id = try await SMSService.queue(rig.harness.postgres, personalData: rig.harness.wallet.personalData, to: msisdn, text: "Survived a crash")
        try await rig.harness.postgres.query("UPDATE outbox SET attempts = 1, claimed_until = now() - interval '1 second' WHERE id = \(id)")
        // And one claimed by a sender that is still alive is left to it.
        let held = try await SMSService.queue(rig.harness.postgres, personalData: rig.harness.wallet.personalData, to: msisdn, text: "Someone else's")
        try await rig.harness.postgres.query("UPDATE outbox SET attempts = 1, claimed_until = now() + interval '1 hour' WHERE id = \(held)")
        try await rig.harness.run(.live) { _ in
            let row = try await rig.settled(id)
            #expect(row.status == "sent" && row.attempts == 2)
            #expect(try await rig.status(held).status == "pending")
            #expect(rig.fake.texts(to: msisdn.value) == ["Survived a crash"])
        }
        await rig.finish()
    }

    @Test func twoSendersNeverSendTheSameRowTwice() async throws {
        let rig = try await SMSRig.make()
        let msisdn = MSISDN(parsing: freshLocal(), plan: .kenya)!
        for index in 0..<40 { _ = try await SMSService.queue(rig.harness.postgres, personalData: rig.harness.wallet.personalData, to: msisdn, text: "Message \(index)") }
        let http = CurlClient()
        let (one, two) = (rig.sender(http: http), rig.sender(http: http))
        // Each sends a first batch (so both take part however the two are scheduled), then both
        // race for the rest.
        let (firstA, firstB) = (try await one.sendDue(limit: 3), try await two.sendDue(limit: 3))
        async let left: Int = { var total = 0; while true { let n = try await one.sendDue(limit: 3); total += n; if n == 0 { return total } } }()
        async let right: Int = { var total = 0; while true { let n = try await two.sendDue(limit: 3); total += n; if n == 0 { return total } } }()
        let (a, b) = try await (firstA + left, firstB + right)
        #expect(a + b == 40 && firstA > 0 && firstB > 0, "both senders worked: \(a) + \(b)")
        let texts = rig.fake.texts(to: msisdn.value)
        #expect(texts.count == 40 && Set(texts).count == 40, "each message once: \(texts.count) sent")
        await http.shutdown()
        await rig.finish()
    }

    /// Two gateway processes (`ussd-gateway serve`, as two replicas run it) on one database: every
    /// row goes out once, and both take part. Each replica signs with its own sender id, so the
    /// fake can tell who sent what.
    @Test func twoSenderProcessesNeverSendTheSameRowTwice() async throws {
        let rig = try await SMSRig.make()
        let msisdn = MSISDN(parsing: freshLocal(), plan: .kenya)!
        var environment = ProcessInfo.processInfo.environment
        environment.merge([
            "LOG_LEVEL": "warning", "ENVIRONMENT": "development", "MENUS_PATH": RepoFiles.menus,
            "DATABASE_URL": rig.harness.config.postgres.connectionString,
            "AT_USERNAME": FakeAfricasTalking.username, "AT_API_KEY": FakeAfricasTalking.apiKey, "AT_SMS_BASE_URL": rig.fake.baseURL,
            // Ten a second: a replica's batch of 20 takes two seconds, so the other one claims the next.
            "SMS_RATE_PER_SECOND": "10",
        ]) { $1 }
        environment.merge(rig.harness.personalDataEnvironment) { $1 }
        var replicas: [(name: String, process: ChildProcess, port: Int)] = []
        for name in ["REPLICA1", "REPLICA2"] {
            // The first replica may not have bound its port yet when the second looks for one.
            var port = 0
            while port == 0 || replicas.contains(where: { $0.port == port }) {
                port = try await PrivateServer.freePort()
            }
            let process = try ChildProcess.start(GatewayBinary.path, ["serve"], environment: environment.merging(["HTTP_PORT": String(port), "AT_SENDER_ID": name]) { $1 })
            replicas.append((name, process, port))
        }
        let curl = CurlClient()
        for replica in replicas {
            let ready = try await waitUntilReady(curl, "http://127.0.0.1:\(replica.port)/readyz")
            #expect(ready?.status == 200, "\(replica.name) never became ready: \(replica.process.errorOutput)")
        }
        // Queued once both replicas are polling.
        let queuedAt = ContinuousClock.now
        for index in 0..<60 { _ = try await SMSService.queue(rig.harness.postgres, personalData: rig.harness.wallet.personalData, to: msisdn, text: "Message \(index)") }
        _ = try await eventually(within: .seconds(30)) { rig.fake.texts(to: msisdn.value).count >= 60 }
        for replica in replicas {
            replica.process.signal(SIGTERM)
            #expect(await replica.process.wait() == 0, "\(replica.name) did not stop cleanly: \(replica.process.errorOutput)")
        }
        await curl.shutdown()

        let sent = rig.fake.messages.filter { $0.to == "+" + msisdn.value }
        #expect(sent.count == 60 && Set(sent.map(\.text)).count == 60, "each message once: \(sent.count) sent")
        let bySender = Dictionary(grouping: sent, by: { $0.from ?? "none" }).mapValues(\.count)
        #expect(bySender["REPLICA1", default: 0] > 0 && bySender["REPLICA2", default: 0] > 0, "both replicas sent: \(bySender)")
        // SMS_RATE_PER_SECOND holds per replica: its n-th message cannot leave before n - 1 slots of
        // 100 ms have passed since the rows were queued (a lower bound, which a slow machine only
        // makes easier to meet).
        for (sender, messages) in Dictionary(grouping: sent, by: { $0.from ?? "none" }) {
            let last = messages.map(\.receivedAt).max()!
            #expect(last - queuedAt >= .milliseconds(100) * (messages.count - 1), "\(sender) sent \(messages.count) faster than 10 a second")
        }
        let unsent = try await rig.harness.postgres.query("SELECT count(*) FROM outbox WHERE recipient = \(msisdn.value) AND status <> 'sent'").single()!.decode(Int64.self, column: 0)
        #expect(unsent == 0)
        await rig.finish()
    }

    @Test func aClaimThatRanOutAndWasTakenOverIsNotSentTwice() async throws {
        let rig = try await SMSRig.make()
        let msisdn = MSISDN(parsing: freshLocal(), plan: .kenya)!
        let id = try await SMSService.queue(rig.harness.postgres, personalData: rig.harness.wallet.personalData, to: msisdn, text: "Only once")
        let http = CurlClient()
        let (slow, other) = (rig.sender(http: http), rig.sender(http: http))
        // The slow sender claims the row, then takes longer than its claim.
        let claimed = try #require(try await slow.outbox.claimDue(limit: 1).first)
        try await rig.harness.postgres.query("UPDATE outbox SET claimed_until = now() - interval '1 second' WHERE id = \(id)")
        let taken = try #require(try await other.outbox.claimDue(limit: 1).first, "the run-out claim is free to take")
        #expect(await slow.send(claimed) == .skipped, "the other sender holds it now")
        #expect(await other.send(taken) == .sent)
        #expect(rig.fake.texts(to: msisdn.value) == ["Only once"])
        #expect(try await rig.status(id).status == "sent")
        // A claim that ran out but that nobody took is renewed and sent.
        let late = try await SMSService.queue(rig.harness.postgres, personalData: rig.harness.wallet.personalData, to: msisdn, text: "Late but sent")
        let mine = try #require(try await slow.outbox.claimDue(limit: 1).first)
        try await rig.harness.postgres.query("UPDATE outbox SET claimed_until = now() - interval '1 second' WHERE id = \(late)")
        #expect(await slow.send(mine) == .sent)
        #expect(rig.fake.texts(to: msisdn.value) == ["Only once", "Late but sent"])
        await http.shutdown()
        await rig.finish()
    }

    @Test func operatorsQueueAndListMessagesFromTheCommandLine() async throws {
        let rig = try await SMSRig.make()
        var environment = ProcessInfo.processInfo.environment
        // A member of staff's own login: the message is audited under it.
        let staff = try await TestServers.login("wanjiru", in: "ussd_operator", to: rig.harness.postgres.configuration)
        environment.merge(["LOG_LEVEL": "warning", "ENVIRONMENT": "development", "DATABASE_URL": staff.connectionString]) { $1 }
        environment.merge(rig.harness.personalDataEnvironment) { $1 }
        let local = freshLocal()
        let send = try ChildProcess.start(
            GatewayBinary.path, ["sms", "send", "--to", local, "--text", "Office closed on Monday", "--reason", "notice 12"], environment: environment)
        #expect(await send.wait() == 0, "\(send.errorOutput)")
        #expect(send.output.contains("queued as outbox #"))
        let list = try ChildProcess.start(GatewayBinary.path, ["sms", "outbox"], environment: environment)
        #expect(await list.wait() == 0)
        #expect(list.output.contains("pending") && list.output.contains(MSISDN.masked("254" + local.dropFirst())) && !list.output.contains("254" + local.dropFirst()) && list.output.contains("operator"), "\(list.output)")
        let bad = try ChildProcess.start(GatewayBinary.path, ["sms", "send", "--to", "12345", "--text", "x", "--reason", "y"], environment: environment)
        #expect(await bad.wait() == 2)
        let unexplained = try ChildProcess.start(GatewayBinary.path, ["sms", "send", "--to", local, "--text", "x"], environment: environment)
        #expect(await unexplained.wait() != 0, "a staff SMS needs a reason")
        let audited = try await rig.harness.postgres.query("SELECT actor, reason FROM audit_log WHERE action = 'sms.sent'").map { try $0.decode((String, String).self) }
        #expect(audited.count == 1 && audited[0].0 == URLComponents(string: staff.connectionString)?.user && audited[0].1 == "notice 12", "\(audited)")
        await rig.finish()
    }

    @Test func malformedInboundCallbacksAre400() async throws {
        let rig = try await SMSRig.make()
        try await rig.harness.run(.live) { client in
            for body in ["from=%2B254712345678&text=BAL", "id=ATX1&text=BAL", "id=ATX1&from=%2B254712345678", "id=%ZZ&from=x&text=y"] {
                let response = try await client.execute(uri: "/sms/africastalking/inbound", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"], body: ByteBuffer(string: body))
                #expect(response.status == .badRequest, "\(body)")
            }
            // The longest text the callback may carry, in characters of four bytes each: answered,
            // and kept sealed (the sealed column holds it).
            let longest = String(repeating: "\u{1F600}", count: 1_600)
            let response = try await sms(client, from: MSISDN(parsing: freshLocal(), plan: .kenya)!, longest)
            #expect(response.status == .ok)
            #expect(try await rig.harness.postgres.query("SELECT max(length(text_sealed)) FROM sms_inbound").single()!.decode(Int.self, column: 0) > 6_400)
        }
        await rig.finish()
    }
}
