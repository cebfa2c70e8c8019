import Basics
import Foundation
@testable import LedgerTestSupport
import Postgres
import Testing
import TestSupport
import MPesaBook
import Wallet

@Suite struct LedgerSchemaTests {
    /// Migration 5: failure notices queued before it under the credit's key 'deposit:<id>' move to
    /// 'deposit-failed:<id>', so a payment arriving later still gets its receipt; other keys stay.
    @Test func failureNoticesQueuedBeforeMigrationFiveGiveTheCreditItsKeyBack() async throws {
        let postgres = PostgresClient(configuration: try await TestServers.freshDatabase("wallet"))
        try await postgres.migrate(try WalletMigrations.all().filter { $0.version <= 4 })
        for (template, key) in [("deposit_failed", "deposit:7"), ("deposit_received", "deposit:8"), ("withdrawal_failed", "payout:9")] {
            try await postgres.query("INSERT INTO outbox (kind, recipient, language, template, dedupe_key) VALUES ('sms', '254700000000', 'en', \(template), \(key))")
        }
        try await postgres.migrate(try WalletMigrations.all())
        let keys = try await postgres.query("SELECT template, dedupe_key FROM outbox ORDER BY id").map { try $0.decode((String, String).self) }
        #expect(keys.map(\.1) == ["deposit-failed:7", "deposit:8", "payout:9"], "\(keys)")
        await postgres.shutdown()
    }

    @Test func transfersMoveMoneyAndKeepTheSumAtZero() async throws {
        let ledger = try await Ledger.make()
        try await ledger.wallet.register(msisdn: MSISDN("254712345678")!, name: "Achieng", pin: "4826", language: "en")
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
        try await ledger.wallet.register(msisdn: MSISDN("254712345678")!, name: "Achieng", pin: "4826", language: "en")
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
        try await ledger.wallet.register(msisdn: MSISDN("254712345678")!, name: "Achieng", pin: "4826", language: "en")
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
        try await ledger.wallet.register(msisdn: msisdn, name: "Achieng", pin: "4826", language: "en")
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

@Suite struct HotAccountTests {
    @Test func systemAccountsKeepTheirBalanceInShardsOnlyTransfersChange() async throws {
        let ledger = try await Ledger.make()
        try await ledger.wallet.register(msisdn: MSISDN("254712345678")!, name: "Achieng", pin: "4826", language: "en")
        let float = try await ledger.systemAccount("mpesa_float")
        let main = try await ledger.account("254712345678", "main")
        try await ledger.post("dep-1", from: float, to: main, cents: 7_000, kind: "deposit")
        try await ledger.post("dep-2", from: float, to: main, cents: 3_000, kind: "deposit")

        // The float's own row is untouched; its balance is the sum of its shards.
        let row = try await ledger.postgres.query("SELECT a.balance, v.balance FROM accounts a JOIN account_balances v USING (id) WHERE a.id = \(float)").single()!
        let (own, total) = try row.decode((Int64, Int64).self)
        #expect(own == 0 && total == -10_000)
        let shards = try await ledger.postgres.query("SELECT count(*) FROM account_shards WHERE account_id = \(float)").single()!.decode(Int.self, column: 0)
        #expect(shards == 16)

        for statement: PostgresQuery in [
            "UPDATE account_shards SET balance = balance + 5 WHERE account_id = \(float)",
            "DELETE FROM account_shards WHERE account_id = \(float)",
            "INSERT INTO account_shards (account_id, shard, balance) VALUES (\(main), 0, 100)",
            "UPDATE accounts SET id = 999 WHERE id = \(float)",
        ] {
            let error = await #expect(throws: PostgresError.self) { try await ledger.postgres.query(statement) }
            #expect(error?.sqlState == "23001")
        }
        try await ledger.audit()
        await ledger.postgres.shutdown()
    }

    @Test func aTransferToAnAccountThatDoesNotExistIsRefused() async throws {
        let ledger = try await Ledger.make()
        try await ledger.wallet.register(msisdn: MSISDN("254712345678")!, name: "Achieng", pin: "4826", language: "en")
        let float = try await ledger.systemAccount("mpesa_float")
        let main = try await ledger.account("254712345678", "main")
        try await ledger.post("dep-1", from: float, to: main, cents: 5_000, kind: "deposit")
        for (debit, credit, status) in [(float, Int64(424_242), "posted"), (Int64(424_242), main, "posted"), (main, Int64(424_242), "pending")] {
            let error = await #expect(throws: PostgresError.self) {
                try await ledger.post("bad-\(debit)-\(credit)", from: debit, to: credit, cents: 100, kind: "deposit", status: status)
            }
            #expect(error?.sqlState == "23503", "foreign_key_violation")
        }
        try await ledger.audit()
        await ledger.postgres.shutdown()
    }
}

@Suite struct LedgerUpgradeTests {
    @Test func upgradingALedgerWithMoneyKeepsBalancesAndTheDaysSends() async throws {
        // A database on migration 0001 with money in it: the float paid two customers, one sent.
        let postgres = PostgresClient(configuration: try await TestServers.freshDatabase("wallet_upgrade"))
        let migrations = try WalletMigrations.all()
        try await postgres.migrate(Array(migrations.prefix(1)))
        try await postgres.query(
            "INSERT INTO customers (msisdn, name, pin_hash) VALUES ('254712345678', 'Achieng', 'x'), ('254722000111', 'Otieno', 'x')"
        )
        try await postgres.query("INSERT INTO accounts (customer_id, kind) SELECT id, k FROM customers, (VALUES ('main'), ('savings')) v(k)")
        try await postgres.query(
            """
            INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status)
            SELECT 'fund-' || a.id, f.id, a.id, 40000000, 'deposit', 'posted'
            FROM accounts a, accounts f WHERE a.kind = 'main' AND f.kind = 'mpesa_float'
            """
        )
        try await postgres.query(
            """
            INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status)
            SELECT 'sent-today', a.id, b.id, 30000000, 'p2p', 'posted'
            FROM accounts a JOIN customers c ON c.id = a.customer_id, accounts b JOIN customers d ON d.id = b.customer_id
            WHERE c.msisdn = '254712345678' AND a.kind = 'main' AND d.msisdn = '254722000111' AND b.kind = 'main'
            """
        )

        // Then 0002: the sum still balances, and today's send still counts against the daily limit.
        try await postgres.migrate(migrations)
        let pins = PINVault(key: Array("test-pepper-of-32-bytes-at-least".utf8))
        let wallet = Wallet(postgres: postgres, pins: pins)
        let ledger = Ledger(postgres: postgres, wallet: wallet, book: MPesaBook(wallet: wallet))
        // Migration 0014 gives the old rows their causes from their ids and links: the send is a
        // movement; the test's funding, written by hand with no deposit behind it, has none.
        let causes = try await postgres.query("SELECT id, cause FROM transfers ORDER BY id").map { try $0.decode((String, String?).self) }
        #expect(causes.first { $0.0 == "sent-today" }?.1 == "movement:sent-today" && causes.filter { $0.0.hasPrefix("fund-") }.allSatisfy { $0.1 == nil })
        for (id, _) in causes where id.hasPrefix("fund-") { ledger.extras.post(id) }
        try await ledger.audit()
        // Migration 0009's default tier caps a wallet at 500,000 KES, which Otieno would pass.
        try await ledger.wallet.applyConfiguration(
            tiers: [KYCTier(name: "standard", perTransaction: 25_000_000, daily: 50_000_000, maxBalance: 100_000_000)], defaultTier: "standard", settings: [:]
        )
        let achieng = MSISDN("254712345678")!, otieno = MSISDN("254722000111")!
        #expect(try await ledger.wallet.balances(achieng).main == .shillings(100_000))
        await #expect(throws: WalletError.limitExceeded) { try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(200_001), key: key("u1")) }
        _ = try await ledger.wallet.send(from: achieng, to: otieno, amount: .shillings(100_000), key: key("u2"))
        let deposit = try await ledger.book.beginDeposit(otieno, amount: .shillings(500), key: key("u3"))
        try await ledger.book.recordCheckout(depositID: deposit.id, checkoutRequestID: "ws_CO_upgrade")
        try await ledger.book.completeDeposit(checkoutRequestID: "ws_CO_upgrade", receipt: "UPG1", amount: .shillings(500), phone: otieno)
        #expect(try await ledger.wallet.balances(otieno).main == .shillings(800_500))
        try await ledger.audit()
        await postgres.shutdown()
    }
}
