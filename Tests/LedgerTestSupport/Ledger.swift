import Basics
import Foundation
import MPesaBook
import Postgres
import Synchronization
import TestSupport
import Testing
import Wallet

/// A fresh database with the ledger schema, and a wallet on it.
struct Ledger {
    let postgres: PostgresClient
    let wallet: Wallet
    /// M-Pesa's records beside the ledger, on the same wallet.
    let book: MPesaBook
    /// Clients of other logins (staff), shut down with ``shutdown()``; and the transfers this test
    /// posted by hand, which the ledger audit rightly names as having no cause.
    let extras = Extras()

    final class Extras: @unchecked Sendable {
        private let lock = NSLock()
        private var clients: [PostgresClient] = []
        private var posted: Set<String> = []
        func add(_ client: PostgresClient) { self.lock.withLock { self.clients.append(client) } }
        func post(_ id: String) { _ = self.lock.withLock { self.posted.insert(id) } }
        var handPosted: Set<String> { self.lock.withLock { self.posted } }
        func drain() -> [PostgresClient] { self.lock.withLock { defer { self.clients = [] }; return self.clients } }
    }

    /// A member of staff: their database login and a wallet connected as it.
    struct Person {
        let name: String
        let client: PostgresClient
        let wallet: Wallet
        var book: MPesaBook { MPesaBook(wallet: self.wallet) }
    }

    static let pins = PINVault(key: Array("test-pepper-of-32-bytes-at-least".utf8))

    static func make(now: @escaping @Sendable () -> Date = { Date() }) async throws -> Ledger {
        let postgres = PostgresClient(configuration: try await TestServers.freshDatabase("wallet"))
        try await postgres.migrate(try WalletMigrations.all())
        let wallet = Wallet(postgres: postgres, pins: Self.pins, lockDuration: .seconds(2), personalData: try await TestPersonalData.make(), now: now)
        return Ledger(postgres: postgres, wallet: wallet, book: MPesaBook(wallet: wallet))
    }

    /// A new login in `role` (`ussd_operator` may ask, `ussd_approver` may decide), as the staff
    /// desk or the CLI would connect; its name starts with `name`.
    func staff(_ name: String, _ role: String = "ussd_approver") async throws -> Person {
        let client = PostgresClient(configuration: try await TestServers.login(name, in: role, to: self.postgres.configuration))
        self.extras.add(client)
        let wallet = Wallet(postgres: client, pins: Self.pins, personalData: self.wallet.personalData)
        return Person(name: try await wallet.databaseIdentity().user, client: client, wallet: wallet)
    }

    func shutdown() async {
        for client in self.extras.drain() { await client.shutdown() }
        await self.wallet.personalData?.store.shutdown()
        await self.postgres.shutdown()
    }

    func account(_ msisdn: String, _ kind: String) async throws -> Int64 {
        try await self.postgres.query(
            "SELECT a.id FROM accounts a JOIN customers c ON c.id = a.customer_id WHERE c.msisdn = \(msisdn) AND a.kind = \(kind)"
        ).single()!.decode(Int64.self, column: 0)
    }

    func systemAccount(_ kind: String) async throws -> Int64 {
        try await self.postgres.query("SELECT id FROM accounts WHERE customer_id IS NULL AND kind = \(kind)").single()!.decode(Int64.self, column: 0)
    }

    /// Posts a transfer straight into the table, as the schema's owner (by hand: it names no cause).
    func post(_ id: String, from debit: Int64, to credit: Int64, cents: Int64, kind: String = "p2p", status: String = "posted") async throws {
        self.extras.post(id)
        try await self.postgres.query(
            "INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status) VALUES (\(id), \(debit), \(credit), \(cents), \(kind), \(status))"
        )
    }

    /// The invariants every test ends with: balances sum to zero; no customer below zero.
    func audit(sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let row = try await self.postgres.query(
            "SELECT coalesce(sum(balance), 0)::bigint, count(*) FILTER (WHERE customer_id IS NOT NULL AND balance - held < 0) FROM account_balances"
        ).single()!
        let (sum, negative) = try row.decode((Int64, Int).self)
        #expect(sum == 0, "balances sum to \(sum)", sourceLocation: sourceLocation)
        #expect(negative == 0, sourceLocation: sourceLocation)
        // And every check `ussd-gateway ledger audit` makes; the transfers this test posted by hand
        // are the only ones allowed to name no cause.
        let audit = try await self.book.auditLedger()
        let posted = self.extras.handPosted
        let breaches = audit.checks.filter { !$0.passed }.filter { check in
            check.name != "every transfer names its cause" || check.details.contains { detail in !posted.contains { detail.hasPrefix("transfer \($0) (") } }
        }
        #expect(breaches.isEmpty, "\(breaches)", sourceLocation: sourceLocation)
    }
}

extension Ledger {
    /// A system account's balance, shards included.
    func systemBalance(_ kind: String) async throws -> Int64 {
        try await self.postgres.query("SELECT balance FROM account_balances WHERE customer_id IS NULL AND kind = \(kind)").single()!.decode(
            Int64.self, column: 0)
    }

    func actions(_ msisdn: MSISDN) async throws -> [String] {
        try await self.wallet.auditTrail(msisdn).map(\.action)
    }

    func queued(_ msisdn: MSISDN, _ template: String) async throws -> [String] {
        try await self.postgres.query("SELECT params::text FROM outbox WHERE recipient = \(msisdn.value) AND template = \(template) ORDER BY id")
            .map { try $0.decode(String.self, column: 0) }
    }

    /// Today in Nairobi, as the daily report names days.
    func nairobiToday() async throws -> String {
        try await self.postgres.query("SELECT to_char(now() AT TIME ZONE 'Africa/Nairobi', 'YYYY-MM-DD')").single()!.decode(String.self, column: 0)
    }
}

extension Ledger {
    /// Registers `msisdn` and deposits `cents` straight from the float (the M-Pesa issue's path).
    func funded(_ msisdn: String, cents: Int64, name: String = "Customer") async throws -> MSISDN {
        let number = MSISDN(msisdn)!
        try await self.wallet.register(msisdn: number, name: name, pin: "4826", language: "en")
        if cents > 0 {
            // A paid deposit, completed by the wallet's own function (as a confirmed STK payment
            // is), so the credit has its cause; no limit of the wallet's code stands in the way.
            // Neither the key nor the receipt names the number: a production key never does.
            let tag = String(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12))
            let reference = "fund-\(tag)"
            try await self.postgres.query(
                """
                INSERT INTO deposits (idempotency_key, customer_id, msisdn, amount, checkout_request_id)
                SELECT \(reference), id, msisdn, \(cents), \(reference) FROM customers WHERE msisdn = \(msisdn)
                """
            )
            let outcome = try await self.postgres.query(
                "SELECT outcome FROM wallet_complete_deposit(\(reference), \("FUND" + tag.prefix(8)), \(cents), \(msisdn), '{}'::jsonb, true)"
            ).single()!.decode(String.self, column: 0)
            precondition(outcome == "credited", "funding \(msisdn): \(outcome)")
        }
        return number
    }
}

func key(_ value: String) -> IdempotencyKey { IdempotencyKey(value)! }
