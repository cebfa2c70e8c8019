import Basics
import Foundation
@testable import GatewayTestSupport
import HummingbirdTesting
import Postgres
import Redis
import Synchronization
import Testing
import TestSupport
@testable import USSDGateway
import Wallet

/// Sessions on a real Redis Cluster while the operator fails a primary over to its replica.
@Suite struct USSDClusterTests {
    /// What the handsets saw.
    final class Seen: Sendable {
        let hops = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
        /// Sessions told "Sent", by sender index.
        let sent = Mutex<[Int: [String]]>([:])
        /// Anything but the expected page, and every hop answered differently the second time.
        let problems = Mutex<[String]>([])
    }

    @Test func aReplicaPromotedMidTrafficAnswersNoHopTwiceDifferentlyAndMovesNoMoneyTwice() async throws {
        let control = try ClusterControl()
        try await ClusterControl.exclusively {
            // Two gateways on the cluster and one database, as behind a load balancer; eight senders
            // with 1,000 KES each, each sending KES 10 to a recipient of their own, again and again.
            let harness = try await USSDHarness.make { config in
                config.redis = control.configuration
                // Each sender makes several journeys a minute: no per-number hop limit here.
                config.ussd.rateLimitPerMinute = 0
            }
            var pairs: [(String, MSISDN, String, MSISDN)] = []
            for _ in 0..<8 { pairs.append(try await harness.senderAndRecipient()) }
            let senders = pairs
            let other = try buildApplication(config: harness.config, logger: harness.capture.logger, menus: harness.graph)
            let seen = Seen()
            let victim = try await control.primary(ofSlot: 0)
            try await harness.run { first in
                try await other.test(.live) { second in
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for (index, (achieng, _, otieno, _)) in senders.enumerated() {
                            group.addTask {
                                while !seen.stop.load(ordering: .relaxed) && !Task.isCancelled {
                                    try await Self.sendTen(from: achieng, to: otieno, index: index, first, second, harness: harness, seen: seen)
                                }
                            }
                        }
                        group.addTask {
                            defer { seen.stop.store(true, ordering: .relaxed) }
                            // The failover starts once traffic flows and traffic goes on after it.
                            try await control.waitUntil(within: .seconds(60)) { seen.hops.load(ordering: .relaxed) >= 100 }
                            try await control.failover(victim)
                            let after = seen.hops.load(ordering: .relaxed)
                            try await control.waitUntil(within: .seconds(60)) { seen.hops.load(ordering: .relaxed) >= after + 100 }
                        }
                        try await group.waitForAll()
                    }
                }
            }
            #expect(try await control.primary(ofSlot: 0).id != victim.id, "a replica serves slot 0 now")

            // No hop was answered twice differently, and no page was an apology.
            #expect(seen.problems.withLock { $0 } == [])
            // Every "Sent" has exactly its transfer, and there is no other.
            let sent = seen.sent.withLock { $0 }
            let told = sent.values.reduce(0) { $0 + $1.count }
            #expect(told >= 8, "\(told) journeys told Sent")
            #expect(try await harness.movements(kind: "p2p") == told, "one transfer per Sent, none more")
            for (index, (_, sender, _, recipient)) in senders.enumerated() {
                let count = Int64(sent[index]?.count ?? 0)
                #expect(try await harness.wallet.balances(sender).main == .shillings(1_000 - 10 * count))
                #expect(try await harness.wallet.balances(recipient).main == .shillings(10 * count))
                for session in sent[index] ?? [] {
                    let key = "ussd:\(session):6"
                    let rows = try await harness.postgres.query("SELECT count(*) FROM transfers WHERE id = \(key)").single()!.decode(Int.self, column: 0)
                    #expect(rows == 1, "the transfer of a session told Sent")
                }
            }
            try await harness.audit()
            await harness.finish()
        }
    }

    /// One send-money journey of KES 10. Each hop goes to one gateway and is then repeated on the
    /// other (an aggregator's retry after a lost answer): both answers must be the same.
    static func sendTen(
        from achieng: String, to otieno: String, index: Int, _ first: any TestClientProtocol, _ second: any TestClientProtocol,
        harness: USSDHarness, seen: Seen
    ) async throws {
        let session = Phone.newSession()
        var inputs: [String] = []
        let expected = ["CON Welcome Achieng", "CON Send money. Enter the phone number", "CON Enter amount to send (KES)", "CON Send KES 10 to", "CON Enter your 4-digit PIN", "END Sent KES 10 to"]
        for (hop, input) in ["", "4", otieno, "10", "1", TypedPINs.achieng].enumerated() {
            if hop > 0 { inputs.append(input) }
            var phone = Phone(hop % 2 == 0 ? first : second, achieng, graph: harness.graph)
            (phone.session, phone.inputs) = (session, inputs)
            let reply = try await phone.post(text: phone.text)
            var again = Phone(hop % 2 == 0 ? second : first, achieng, graph: harness.graph)
            (again.session, again.inputs) = (session, inputs)
            let repeated = try await again.post(text: again.text)
            seen.hops.add(2, ordering: .relaxed)
            if repeated != reply { seen.problems.withLock { $0.append("hop \(hop + 1) of \(session): \(reply) / \(repeated)") } }
            guard reply.hasPrefix(expected[hop]) else {
                seen.problems.withLock { $0.append("hop \(hop + 1) of \(session): \(reply)") }
                return
            }
        }
        seen.sent.withLock { $0[index, default: []].append(session) }
    }
}
