import Foundation
import Postgres
import Testing
import TestSupport
import Wallet

/// A fresh database with the ledger schema, and a wallet on it.
struct Ledger {
    let postgres: PostgresClient
    let wallet: Wallet

    static func make() async throws -> Ledger {
        let postgres = PostgresClient(configuration: try await TestServers.freshDatabase("wallet"))
        try await postgres.migrate(try WalletMigrations.all())
        let pins = PINHasher(pepper: Array("test-pepper-of-32-bytes-at-least".utf8), cost: .testing)
        return Ledger(postgres: postgres, wallet: Wallet(postgres: postgres, pins: pins, lockDuration: .seconds(2)))
    }

    func account(_ msisdn: String, _ kind: String) async throws -> Int64 {
        try await self.postgres.query(
            "SELECT a.id FROM accounts a JOIN customers c ON c.id = a.customer_id WHERE c.msisdn = \(msisdn) AND a.kind = \(kind)"
        ).single()!.decode(Int64.self, column: 0)
    }

    func systemAccount(_ kind: String) async throws -> Int64 {
        try await self.postgres.query("SELECT id FROM accounts WHERE customer_id IS NULL AND kind = \(kind)").single()!.decode(Int64.self, column: 0)
    }

    /// Posts a transfer straight into the table, as the wallet's own code will.
    func post(_ id: String, from debit: Int64, to credit: Int64, cents: Int64, kind: String = "p2p", status: String = "posted") async throws {
        try await self.postgres.query(
            "INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status) VALUES (\(id), \(debit), \(credit), \(cents), \(kind), \(status))"
        )
    }

    /// The invariants every test ends with: balances sum to zero; no customer below zero.
    func audit(sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let row = try await self.postgres.query(
            "SELECT coalesce(sum(balance), 0)::bigint, count(*) FILTER (WHERE customer_id IS NOT NULL AND balance - held < 0) FROM accounts"
        ).single()!
        let (sum, negative) = try row.decode((Int64, Int).self)
        #expect(sum == 0, "balances sum to \(sum)", sourceLocation: sourceLocation)
        #expect(negative == 0, sourceLocation: sourceLocation)
    }
}

@Suite struct LedgerSchemaTests {
    @Test func transfersMoveMoneyAndKeepTheSumAtZero() async throws {
        let ledger = try await Ledger.make()
        try await ledger.wallet.register(msisdn: MSISDN("254712345678")!, name: "Achieng", pin: "2580", language: "en")
        try await ledger.wallet.register(msisdn: MSISDN("254722000111")!, name: "Otieno", pin: "4829", language: "sw")
        let float = try await ledger.systemAccount("mpesa_float")
        let achieng = try await ledger.account("254712345678", "main")
        let otieno = try await ledger.account("254722000111", "main")

        try await ledger.post("dep-1", from: float, to: achieng, cents: 100_000, kind: "deposit")
        try await ledger.post("p2p-1", from: achieng, to: otieno, cents: 30_000)

        let balances = try await ledger.wallet.balances(MSISDN("254712345678")!)
        #expect(balances.main == Amount(cents: 70_000))
        #expect(try await ledger.wallet.balances(MSISDN("254722000111")!).main == Amount(cents: 30_000))
        try await ledger.audit()
        await ledger.postgres.shutdown()
    }

    @Test func theDatabaseRefusesANegativeCustomerBalance() async throws {
        let ledger = try await Ledger.make()
        try await ledger.wallet.register(msisdn: MSISDN("254712345678")!, name: "Achieng", pin: "2580", language: "en")
        let float = try await ledger.systemAccount("mpesa_float")
        let main = try await ledger.account("254712345678", "main")
        try await ledger.post("dep-1", from: float, to: main, cents: 5_000, kind: "deposit")

        let overdraft = await #expect(throws: PostgresError.self) { try await ledger.post("wd-1", from: main, to: float, cents: 5_001, kind: "withdrawal") }
        #expect(overdraft?.isCheckViolation == true)
        #expect(overdraft?.constraint == "customer_balance_never_negative")

        let direct = await #expect(throws: PostgresError.self) {
            try await ledger.postgres.query("UPDATE accounts SET balance = -1 WHERE id = \(main)")
        }
        #expect(direct?.sqlState == "23001", "balances change only through transfers")
        let directUp = await #expect(throws: PostgresError.self) {
            try await ledger.postgres.query("UPDATE accounts SET balance = balance + 100 WHERE id = \(main)")
        }
        #expect(directUp?.sqlState == "23001", "not even upwards: money comes from somewhere")
        await #expect(throws: PostgresError.self) { try await ledger.postgres.query("DELETE FROM accounts WHERE id = \(main)") }
        try await ledger.audit()
        await ledger.postgres.shutdown()
    }

    @Test func postedTransfersCanNeitherChangeNorBeDeleted() async throws {
        let ledger = try await Ledger.make()
        try await ledger.wallet.register(msisdn: MSISDN("254712345678")!, name: "Achieng", pin: "2580", language: "en")
        let float = try await ledger.systemAccount("mpesa_float")
        let main = try await ledger.account("254712345678", "main")
        try await ledger.post("dep-1", from: float, to: main, cents: 5_000, kind: "deposit")

        for statement: PostgresQuery in [
            "UPDATE transfers SET amount = 1 WHERE id = 'dep-1'",
            "UPDATE transfers SET status = 'voided' WHERE id = 'dep-1'",
            "DELETE FROM transfers WHERE id = 'dep-1'",
        ] {
            let error = await #expect(throws: PostgresError.self) { try await ledger.postgres.query(statement) }
            #expect(error?.sqlState == "23001")
        }
        let duplicate = await #expect(throws: PostgresError.self) { try await ledger.post("dep-1", from: float, to: main, cents: 5_000, kind: "deposit") }
        #expect(duplicate?.isUniqueViolation == true, "an idempotency key moves money once")
        #expect(try await ledger.wallet.balances(MSISDN("254712345678")!).main == Amount(cents: 5_000))
        try await ledger.audit()
        await ledger.postgres.shutdown()
    }

    @Test func pendingTransfersHoldFundsUntilPostedOrVoidedOnce() async throws {
        let ledger = try await Ledger.make()
        let msisdn = MSISDN("254712345678")!
        try await ledger.wallet.register(msisdn: msisdn, name: "Achieng", pin: "2580", language: "en")
        let float = try await ledger.systemAccount("mpesa_float")
        let inFlight = try await ledger.systemAccount("payouts_in_flight")
        let main = try await ledger.account("254712345678", "main")
        try await ledger.post("dep-1", from: float, to: main, cents: 10_000, kind: "deposit")

        // A withdrawal reserves 6,000: spendable drops to 4,000 while the balance stays.
        try await ledger.post("wd-1", from: main, to: inFlight, cents: 6_000, kind: "withdrawal", status: "pending")
        var balances = try await ledger.wallet.balances(msisdn)
        #expect(balances.main == Amount(cents: 10_000) && balances.held == Amount(cents: 6_000) && balances.available == Amount(cents: 4_000))
        let spendHeld = await #expect(throws: PostgresError.self) { try await ledger.post("p2p-1", from: main, to: float, cents: 4_001) }
        #expect(spendHeld?.constraint == "customer_balance_never_negative", "held funds are not spendable")

        try await ledger.postgres.query("UPDATE transfers SET status = 'posted' WHERE id = 'wd-1'")
        balances = try await ledger.wallet.balances(msisdn)
        #expect(balances.main == Amount(cents: 4_000) && balances.held == .zero)
        await #expect(throws: PostgresError.self) { try await ledger.postgres.query("UPDATE transfers SET status = 'voided' WHERE id = 'wd-1'") }

        try await ledger.post("wd-2", from: main, to: inFlight, cents: 3_000, kind: "withdrawal", status: "pending")
        try await ledger.postgres.query("UPDATE transfers SET status = 'voided' WHERE id = 'wd-2'")
        balances = try await ledger.wallet.balances(msisdn)
        #expect(balances.main == Amount(cents: 4_000) && balances.held == .zero, "a voided hold gives the money back")
        try await ledger.audit()
        await ledger.postgres.shutdown()
    }
}
