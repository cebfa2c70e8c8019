import Curl
import Foundation
@testable import GatewayActions
@testable import GatewayHTTP
@testable import GatewayTestSupport
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Menus
@testable import MPesaGateway
import Postgres
import Redis
@testable import SMSChannel
@testable import Sandbox
import Testing
import TestSupport
@testable import USSDChannel
@testable import USSDGateway
import Wallet

@Suite struct USSDSessionTests {
    @Test func theSessionKeyExpiresAfterItsTTLAndHoldsNoSecret() async throws {
        let harness = try await USSDHarness.make { $0.ussd.sessionTTLSeconds = 2 }
        let local = freshLocal()
        _ = try await harness.customer(local, name: "Akinyi", pin: TypedPINs.achieng, shillings: 50)
        try await harness.run { client in
            var phone = Phone(client, local, graph: harness.graph)
            _ = try await phone.dial()
            _ = try await phone.type("1")
            _ = try await phone.type(TypedPINs.wrong)
            let key = USSDSessionStore.sessionKey(phone.session)
            guard case .seconds(let ttl) = try await harness.redis.ttl(key) else {
                Issue.record("the session key has no TTL")
                return
            }
            #expect(ttl >= 1 && ttl <= 2)
            let stored = try await harness.redis.get(key) ?? ""
            #expect(!stored.isEmpty && !USSDHarness.containsToken(stored, TypedPINs.wrong), "no PIN in Redis")
            // Redis expires the key on its own clock: the wait is Redis's, an outside delay.
            try await Task.sleep(for: .milliseconds(2_600))
            let after = try await harness.redis.ttl(key)
            #expect(after == .missing, "gone after the TTL")
        }
        await harness.finish()
    }

    /// The active-session index counts a session from its dial to its end, written when it starts
    /// and when it ends, not on every hop between (its score moves only when less than half the
    /// TTL is left of it).
    @Test func theActiveSessionIndexIsWrittenWhenASessionStartsAndEnds() async throws {
        let harness = try await USSDHarness.make()
        let local = freshLocal()
        _ = try await harness.customer(local, name: "Akinyi", pin: TypedPINs.achieng, shillings: 50)
        try await harness.run { client in
            var phone = Phone(client, local, graph: harness.graph)
            _ = try await phone.dial()
            let (key, member) = (USSDSessionStore.activeKey(phone.session), phone.session)
            guard let dialled = try await harness.redis.send(["ZSCORE", key, member]).string.flatMap(Double.init) else {
                Issue.record("the dial did not index the session")
                return
            }
            #expect(abs(dialled - (Date().timeIntervalSince1970 + 120)) < 30, "live until its TTL runs out")
            // Another writer's score, which a hop that rewrote the index would overwrite (in the
            // future: the gauge's sweep, run by any gateway on this Redis, drops past ones).
            let marker = String(Int(Date().timeIntervalSince1970) + 100_000)
            try await harness.redis.send(["ZADD", key, marker, member])
            let savings = try await phone.type("5")
            let menu = try await phone.type("0")
            #expect(savings.hasPrefix("CON ") && menu.hasPrefix("CON Welcome"))
            #expect(try await harness.redis.send(["ZSCORE", key, member]).string == marker, "hops within half the TTL leave the index alone")
            let help = try await phone.type("8")
            #expect(help.hasPrefix("END "))
            #expect(try await harness.redis.send(["ZSCORE", key, member]) == .null, "the end takes the session out")
        }
        await harness.finish()
    }

    /// The write script against a real Redis: the version is the record's prefix (`1|` never
    /// matches `10|`), a version against an absent record and a record not written by the store
    /// lose; a session's snapshot is offered only to its own number, whatever the pointer says; with
    /// resume off, writes that would set or drop a snapshot pass one key.
    @Test func theWriteScriptComparesVersionsExactlyAndResumeKeepsToItsNumber() async throws {
        let harness = try await USSDHarness.make()
        let store = USSDSessionStore(redis: harness.redis, ttlSeconds: 120, resumeWindowSeconds: 300)
        let id = "ATUid_script_\(UUID().uuidString)"
        let live = SessionState(screen: "main", variables: ["msisdn": "254712000111"], language: "en")
        let record = SessionRecord(hop: 1, textLength: 0, textSeal: "s", reply: "CON hi", state: live)
        let snapshot = ResumeSnapshot(sessionId: id, state: live)
        #expect(try await store.save(id, msisdn: "254712000111", expecting: 1, record, previous: nil, resume: .keep) == nil, "no version 1 to replace")
        for version in 0..<10 {
            #expect(try await store.save(id, msisdn: "254712000111", expecting: version, record, previous: nil, resume: .set(snapshot)) != nil)
        }
        #expect(try await store.load(id)?.version == 10)
        #expect(try await store.save(id, msisdn: "254712000111", expecting: 1, record, previous: nil, resume: .keep) == nil, "1| is not 10|")
        #expect(try await store.save(id, msisdn: "254712000111", expecting: 10, record, previous: nil, resume: .drop) != nil)
        #expect(try await harness.redis.get(USSDSessionStore.snapshotKey(id)) == nil, "the end drops the snapshot")

        // A record that is not the store's own writing reads as corrupt and loses every write.
        let odd = "ATUid_odd_\(UUID().uuidString)"
        try await harness.redis.set(USSDSessionStore.sessionKey(odd), to: "05|S2:garbage")
        await #expect(throws: (any Error).self) { try await store.load(odd) }
        #expect(try await store.save(odd, msisdn: "254712000111", expecting: 5, record, previous: nil, resume: .keep) == nil)

        // Another number's session named as this number's latest: not offered.
        let other = "ATUid_other_\(UUID().uuidString)"
        _ = try await store.save(other, msisdn: "254712000222", expecting: 0, record, previous: nil, resume: .set(ResumeSnapshot(sessionId: other, state: live)))
        try await harness.redis.set(USSDSessionStore.latestKey("254712000222"), to: other)
        #expect(try await store.resumeSnapshot("254712000222") == nil, "the snapshot belongs to 254712000111")
        try await harness.redis.set(USSDSessionStore.latestKey("254712000111"), to: other)
        #expect(try await store.resumeSnapshot("254712000111")?.sessionId == other)

        // Resume off: the same writes, one key each.
        let off = USSDSessionStore(redis: harness.redis, ttlSeconds: 120, resumeWindowSeconds: 0)
        let quiet = "ATUid_quiet_\(UUID().uuidString)"
        #expect(try await off.save(quiet, msisdn: "254712000111", expecting: 0, record, previous: nil, resume: .set(snapshot)) != nil)
        #expect(try await off.save(quiet, msisdn: "254712000111", expecting: 1, record, previous: nil, resume: .drop) != nil)
        #expect(try await harness.redis.get(USSDSessionStore.snapshotKey(quiet)) == nil && off.latestTTLSeconds > 0)
        await harness.finish()
    }

    /// The active-session index only feeds a gauge: when it cannot be written (here every shard
    /// is a key of the wrong type, so Redis answers WRONGTYPE), hops are answered all the same.
    @Test func aBrokenActiveSessionIndexNeverFailsAHop() async throws {
        let server = try await PrivateServer.start(.redis)
        let harness = try await USSDHarness.make { $0.redis = server.redisConfiguration }
        for key in USSDSessionStore.activeKeys { try await harness.redis.set(key, to: "not a sorted set") }
        let local = freshLocal()
        _ = try await harness.customer(local, name: "Akinyi", pin: TypedPINs.achieng, shillings: 50)
        try await harness.run { client in
            var phone = Phone(client, local, graph: harness.graph)
            let welcome = try await phone.dial()
            let askPIN = try await phone.type("1")
            let balance = try await phone.type(TypedPINs.achieng)
            #expect(welcome.hasPrefix("CON Welcome Akinyi"))
            #expect(askPIN == "CON Enter your 4-digit PIN")
            #expect(balance.hasPrefix("END Balance"), "\(balance)")
        }
        #expect(try await harness.redis.get(USSDSessionStore.activeKeys[0]) == "not a sorted set", "the index really could not be written")
        await harness.finish()
        await server.remove()
    }

    @Test func aDialAfterADroppedCallOffersToResumeAndContinues() async throws {
        let harness = try await USSDHarness.make()
        let (achieng, sender, otieno, _) = try await harness.senderAndRecipient()
        try await harness.run { client in
            var phone = Phone(client, achieng, graph: harness.graph)
            _ = try await phone.dial()
            _ = try await phone.type("4")
            #expect(try await phone.type(otieno) == "CON Enter amount to send (KES)")
            // The call drops; Africa's Talking reports the session Incomplete.
            let dropped = phone.session
            let event = try await phone.raw(
                Phone.form([
                    "sessionId": dropped, "phoneNumber": phone.number, "serviceCode": "*384*96#", "networkCode": "63902",
                    "date": "2026-11-21 10:00:00", "status": "Incomplete", "input": "4*\(otieno)", "lastAppResponse": "CON Enter amount",
                    "hopsCount": "3", "durationInMillis": "21000", "cost": "KES 0.0",
                ]), path: "/ussd/africastalking/events"
            )
            #expect(event.status == .ok)

            #expect(try await phone.dial() == "CON You left a session unfinished.\n1. Continue where you left off\n2. Start again")
            #expect(try await phone.type("1") == "CON Enter amount to send (KES)", "back where the call dropped")
            #expect(try await phone.type("200").hasPrefix("CON Send KES 200 to \(masked(otieno))?"), "with what was typed before")
            _ = try await phone.type("1")
            #expect(try await phone.type(TypedPINs.achieng).hasPrefix("END Sent KES 200"))

            // Finished with END: the next dial starts afresh.
            #expect(try await phone.dial().hasPrefix("CON Welcome Achieng"))

            // Start again is offered too, and honoured.
            _ = try await phone.type("5")
            _ = try await phone.dial()
            #expect(try await phone.type("2").hasPrefix("CON Welcome Achieng"))
            // A completed session's Success event drops its snapshot.
            _ = try await phone.type("5")
            let finished = phone.session
            _ = try await phone.raw(
                Phone.form(["sessionId": finished, "phoneNumber": phone.number, "serviceCode": "*384*96#", "status": "Success", "input": "5"]),
                path: "/ussd/africastalking/events"
            )
            #expect(try await phone.dial().hasPrefix("CON Welcome Achieng"))
        }
        #expect(try await harness.wallet.balances(sender).main == .shillings(793), "200 and its fee")
        try await harness.audit()
        await harness.finish()
    }

    @Test func eachHopIsMarkedWithItsScreenAndTheEndOfSessionEventIsRecordedByTheScreenLeftOn() async throws {
        let harness = try await USSDHarness.make()
        let (achieng, _, _, _) = try await harness.senderAndRecipient()
        try await harness.run { client in
            var phone = Phone(client, achieng, graph: harness.graph)
            var markers: [String] = []
            for text in ["", "5"] {
                let response = try await phone.raw(Phone.form([
                    "sessionId": phone.session, "phoneNumber": phone.number, "serviceCode": "*384*96#", "text": text,
                ]))
                let marker = try #require(response.headers[HTTPField.Name("at-ussd-hop-metadata")!], "every answered hop carries its marker")
                #expect(marker.utf8.count <= 99 && !marker.contains("|") && harness.graph.screen(marker) != nil, "a screen id: \(marker)")
                markers.append(marker)
            }
            #expect(markers.last == "sav.menu")
            let repeated = try await phone.raw(Phone.form(["sessionId": phone.session, "phoneNumber": phone.number, "serviceCode": "*384*96#", "text": "5"]))
            #expect(repeated.headers[HTTPField.Name("at-ussd-hop-metadata")!] == "sav.menu", "a replayed hop is marked as the first time")

            // Africa's Talking returns the markers with the session's end.
            let event = try await phone.raw(
                Phone.form([
                    "sessionId": phone.session, "phoneNumber": phone.number, "status": "Incomplete", "input": "5", "hopsCount": "2",
                    "durationInMillis": "8400", "hopsMetadata": markers.joined(separator: "|"),
                ]), path: "/ussd/africastalking/events"
            )
            #expect(event.status == .ok)
            for bad in ["start|pin 1234", "a||b", String(repeating: "x", count: 100)] {
                let refused = try await phone.raw(
                    Phone.form(["sessionId": phone.session, "phoneNumber": phone.number, "status": "Incomplete", "hopsMetadata": bad]),
                    path: "/ussd/africastalking/events"
                )
                #expect(refused.status == .badRequest, "hopsMetadata \(bad.prefix(20))")
            }
            let array = try await phone.raw(
                Phone.form(["sessionId": phone.session, "phoneNumber": phone.number, "status": "Success", "hopsMetadata": #"["start", "nowhere"]"#]),
                path: "/ussd/africastalking/events"
            )
            #expect(array.status == .ok, "a JSON array of markers is taken too")
        }
        let ended = harness.capture.all.filter { $0.message == "ussd session ended" }
        #expect(ended.count == 2)
        #expect(ended.first?.metadata["last_screen"] == "sav.menu" && ended.first?.metadata["status"] == "incomplete" && ended.first?.metadata["hops"] == "2")
        #expect(ended.last?.metadata["last_screen"] == "other", "a marker that is not a screen of this menus.json is not a label value")
        await harness.finish()
    }

    @Test func badCallbacksAreRefusedWithoutLosingAnything() async throws {
        let harness = try await USSDHarness.make()
        let local = freshLocal()
        try await harness.run { client in
            var phone = Phone(client, local, graph: harness.graph)
            phone.serviceCode = "*999#"
            #expect(try await phone.dial() == "END This service is not available.")
            for body in [
                "phoneNumber=%2B254712345678&serviceCode=%2A384%2A96%23&text=",
                "sessionId=ATUid_1&phoneNumber=12345&serviceCode=%2A384%2A96%23&text=",
                "sessionId=ATUid_1&phoneNumber=%2B254712345678&text=",
                "sessionId=ATUid_1&phoneNumber=%2B254712345678&serviceCode=%2A384%2A96%23",
                "sessionId=ATUid%201&phoneNumber=%2B254712345678&serviceCode=%2A384%2A96%23&text=",
                "sessionId=%ZZ&text=",
            ] {
                #expect(try await phone.raw(body).status == .badRequest, "\(body)")
            }
            let huge = try await phone.raw("sessionId=ATUid_2&text=" + String(repeating: "1", count: 70_000))
            #expect(huge.status == .contentTooLarge)
            let event = try await phone.raw("sessionId=ATUid_2&status=Success", path: "/ussd/africastalking/events")
            #expect(event.status == .badRequest, "an event without a phone number")
        }
        let warnings = harness.capture.all.filter { $0.message == "malformed callback" }
        #expect(warnings.count >= 7 && warnings.allSatisfy { $0.metadata["reason"]?.isEmpty == false }, "each refusal logged with its reason")
        await harness.finish()
    }

    @Test func theCallbackTokenAndSourceAllowlistGuardTheRoutes() async throws {
        let token = "t0k3n-" + UUID().uuidString.lowercased()
        let harness = try await USSDHarness.make {
            $0.callbackToken = token
            $0.callbackAllowedCIDRs = [CIDR("127.0.0.0/8")!, CIDR("::1")!, CIDR("10.9.0.0/16")!]
            $0.trustedProxyCIDRs = [CIDR("127.0.0.1")!]
        }
        let local = freshLocal()
        // Live: a real TCP peer (127.0.0.1) for the source allowlist.
        try await harness.run(.live) { client in
            var phone = Phone(client, local, graph: harness.graph)
            #expect(try await phone.raw("sessionId=a&phoneNumber=%2B254712345678&serviceCode=x&text=").status == .notFound, "no token")
            #expect(try await phone.raw("x", path: "/ussd/africastalking/wrong-token-0000000000").status == .notFound)
            #expect(try await phone.raw("x", path: "/ussd/africastalking/events").status == .notFound)
            phone.path = "/ussd/africastalking/" + token
            #expect(try await phone.dial() == "CON Welcome! We keep your name, number and payments to run your wallet (privacy notice: *384*96*7#). Enter your full name")
            let event = try await phone.raw(
                Phone.form(["sessionId": phone.session, "phoneNumber": phone.number, "status": "Success"]), path: "/ussd/africastalking/events/" + token
            )
            #expect(event.status == .ok)
        }
        await harness.finish()
    }

    @Test func aBusyNumberIsSlowedPolitely() async throws {
        let harness = try await USSDHarness.make { $0.ussd.rateLimitPerMinute = 3 }
        let local = freshLocal()
        _ = try await harness.customer(local, name: "Baraka", pin: TypedPINs.achieng)
        // The count is per clock minute: start well inside one, or a new minute forgives the hops.
        harness.clock.leaveEndOfMinute()
        try await harness.run { client in
            var phone = Phone(client, local, graph: harness.graph)
            _ = try await phone.dial()
            _ = try await phone.type("98")
            let third = try await phone.type("5")
            #expect(third.hasPrefix("CON Savings"))
            #expect(try await phone.repeatLast() == third, "a repeated hop is not a new one")
            #expect(try await phone.type("1") == "END Too many requests. Please wait a minute and dial again.")
        }
        await harness.finish()
    }

    @Test func anActionPastTheDeadlineEndsPolitelyAndReportsBySMS() async throws {
        let harness = try await USSDHarness.make { $0.ussd.hopDeadline = .milliseconds(1) }
        let local = freshLocal()
        let msisdn = try await harness.customer(local, name: "Chebet", pin: TypedPINs.achieng, shillings: 40)
        // The first screen's profile lookup is made late for sure: the customers table is locked
        // until both hops were answered (a 1 ms deadline alone can lose to a fast database).
        let (release, releasing) = AsyncStream<Void>.makeStream()
        let (locked, lockTaken) = AsyncStream<Void>.makeStream()
        let lock = Task {
            try await harness.postgres.transaction { tx in
                _ = try await tx.query("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
                lockTaken.yield()
                for await _ in release { break }
            }
        }
        for await _ in locked { break }
        try await harness.run { client in
            var phone = Phone(client, local, graph: harness.graph)
            let first = try await phone.dial()
            #expect(first == "END We are processing your request. You will get an SMS.")
            #expect(try await phone.repeatLast() == first)
            // The lookup goes on once the lock goes, while the gateway still runs.
            releasing.yield()
            releasing.finish()
            try await lock.value
        }
        // The lookup finished anyway, and its screen went to the outbox.
        var text: String?
        _ = try await eventually(within: .seconds(30)) {
            text = try await harness.postgres.query(
                "SELECT params->>'text' FROM outbox WHERE recipient = \(msisdn.value) AND template = 'ussd_result'"
            ).single()?.decode(String.self, column: 0)
            return text != nil
        }
        #expect(text?.hasPrefix("Welcome Chebet") == true, "\(text ?? "nothing queued")")
        await harness.finish()
    }

    @Test func anInternalFailureIsALocalisedEndNotA500() async throws {
        let harness = try await USSDHarness.make {
            // A database nobody listens on: the first screen's lookup fails.
            $0.postgres = PostgresConfiguration(connectionString: "postgres://ussd@127.0.0.1:1/nowhere?connect_timeout=1")
        }
        try await harness.run { client in
            var phone = Phone(client, freshLocal(), graph: harness.graph)
            let reply = try await phone.dial()
            #expect(reply == "END Sorry, something went wrong. Please try again.")
        }
        let failure = harness.capture.all.first { $0.message == "ussd hop failed" }
        #expect(failure?.metadata["error_id"]?.count == 8, "logged with an error id")
        await harness.finish()
    }
}

@Suite struct SimulatorTests {
    @Test func theTerminalPhoneSpeaksAfricasTalkingsFormatToALiveGateway() async throws {
        let harness = try await USSDHarness.make()
        let local = freshLocal()
        _ = try await harness.customer(local, name: "Halima", pin: TypedPINs.achieng, shillings: 25)
        try await harness.run(.live) { client in
            let http = CurlClient()
            var phone = try #require(SimulatedPhone(url: "http://127.0.0.1:\(client.port!)/ussd/africastalking", phone: local, serviceCode: "*384*96#", http: http))
            #expect(phone.phoneNumber == "+254" + local.dropFirst())
            let main = try await phone.dial()
            #expect(main.continues && main.text.hasPrefix("Welcome Halima"), "\(main)")
            #expect(try await phone.answer("1") == .init(text: "Enter your 4-digit PIN", continues: true))
            #expect(phone.text == "1")
            #expect(try await phone.answer(TypedPINs.achieng) == .init(text: "Balance: KES 25\nSavings: KES 0", continues: false))
            #expect(phone.text == "1*" + TypedPINs.achieng, "text is kept the way the aggregator keeps it")
            let again = try await phone.dial()
            #expect(again == main && phone.text == "", ":restart starts a new session")
            await http.shutdown()
        }
        await harness.finish()
    }
}

@Suite struct SessionCodecTests {
    @Test func recordsRoundTripAndOlderJSONRecordsStillRead() throws {
        var state = SessionState(screen: "send.amount", variables: ["msisdn": "254712345678", "name": "Zoë: *1*\n2", "recipient": ""], language: "sw")
        state.history = ["main", "send.to"]
        state.page = 1
        state.wrongInputs = 2
        state.sealed = ["pin": "ab12"]
        state.nonce = "0123456789abcdef"
        let record = SessionRecord(
            hop: 7, textLength: 12, textSeal: "f00d", reply: "CON Weka kiasi\n1. Ndiyo: 0712***678", state: state, offer: nil, claim: "beef", claimedAt: 1_763_700_000.25,
            msisdn: "254712345678"
        )
        let bytes = SessionCodec.encode(record)
        let back = try SessionCodec.decode(bytes[...])
        #expect(back.hop == 7 && back.textLength == 12 && back.textSeal == "f00d" && back.reply == record.reply)
        #expect(back.state == state && back.offer == nil && back.claim == "beef" && back.claimedAt == 1_763_700_000.25)
        #expect(back.msisdn == "254712345678" && back.state?.nonce == "0123456789abcdef")
        #expect(back.sequence == nil && back.answeredAt == nil)

        // A latest-input dialect's hop number and answer time survive Redis (a replica reading the
        // record tells a repeat from the next answer by them), and a record without them (the
        // version before wrote none) still reads.
        var dialect = record
        (dialect.sequence, dialect.answeredAt) = (4, 1_763_700_001.5)
        let withDialect = try SessionCodec.decode(SessionCodec.encode(dialect)[...])
        #expect(withDialect.sequence == 4 && withDialect.answeredAt == 1_763_700_001.5 && withDialect.state == state)
        let older = try SessionCodec.decode(bytes.dropLast(6))
        #expect(bytes.suffix(6).elementsEqual("0:0:0:".utf8) && older.state == state && older.sequence == nil && older.answeredAt == nil)

        // Where the active-session index stands survives too, and a record of the version before
        // (which stops after the answer time) reads without it.
        dialect.indexedUntil = 1_763_700_121
        let indexed = SessionCodec.encode(dialect)
        #expect(try SessionCodec.decode(indexed[...]).indexedUntil == 1_763_700_121)
        let unindexed = try SessionCodec.decode(indexed.dropLast(indexed.count - SessionCodec.encode(withDialect).count + 2))
        #expect(unindexed.indexedUntil == nil && unindexed.answeredAt == 1_763_700_001.5)

        let json = try JSONEncoder().encode(record)
        let legacy = try SessionCodec.decode(Array(json)[...])
        #expect(legacy.state == state && legacy.reply == record.reply, "a record written before this codec still reads")

        for corrupt in ["", "S1", "S2:x", "2:S1999:1", "2:S1x:1"] {
            #expect(throws: (any Error).self, "\(corrupt)") { try SessionCodec.decode(Array(corrupt.utf8)[...]) }
        }
        #expect(throws: (any Error).self) { try SessionCodec.decode(bytes.dropLast(5)) }

        let snapshot = ResumeSnapshot(sessionId: "ATUid_1", state: state)
        #expect(try SessionCodec.decodeSnapshot(SessionCodec.encode(snapshot)[...]).state == state)
        #expect(try SessionCodec.decodeSnapshot(Array(try JSONEncoder().encode(snapshot))[...]).sessionId == "ATUid_1")
    }
}
