import Basics
import Foundation
@testable import LedgerTestSupport
import Postgres
import Testing
import TestSupport
import Wallet

/// One ledger, one currency: the first start claims it, a start naming another is refused, and
/// nobody changes it afterwards.
@Suite struct LedgerCurrencyTests {
    @Test func theFirstStartClaimsTheCurrencyAndAnotherIsRefused() async throws {
        let ledger = try await Ledger.make()
        // The gateway's own login claims it (through the wallet's function).
        let app = try await ledger.staff("gateway", "ussd_app")
        let cedis = Currency(code: "GHS", fractions: true)!
        try await app.wallet.claimCurrency(cedis)
        try await app.wallet.claimCurrency(Currency(code: "GHS")!)
        await #expect(throws: LedgerCurrencyMismatch.self) { try await app.wallet.claimCurrency(.kenyanShilling) }
        await #expect(throws: LedgerCurrencyMismatch.self) { try await app.wallet.claimCurrency(Currency(code: "UGX")!) }
        let mismatch = await #expect(throws: LedgerCurrencyMismatch.self) { try await ledger.wallet.claimCurrency(.kenyanShilling) }
        #expect(mismatch?.description.hasPrefix("the ledger counts in GHS and CURRENCY is KES") == true)
        // Not even the schema's owner changes or removes it.
        let update = await #expect(throws: PostgresError.self) { try await ledger.postgres.query("UPDATE ledger_currency SET code = 'KES'") }
        #expect(update?.sqlState == "UL022")
        let delete = await #expect(throws: PostgresError.self) { try await ledger.postgres.query("DELETE FROM ledger_currency") }
        #expect(delete?.sqlState == "UL022")
        // The gateway may not write it by hand, not even on an empty ledger: only the function claims.
        let direct = await #expect(throws: PostgresError.self) { try await app.client.query("DELETE FROM ledger_currency") }
        #expect(direct?.sqlState == "42501", "insufficient privilege")
        let fresh = try await Ledger.make()
        let stranger = try await fresh.staff("gateway", "ussd_app")
        let written = await #expect(throws: PostgresError.self) { try await stranger.client.query("INSERT INTO ledger_currency (code, minor_units) VALUES ('KES', 2)") }
        #expect(written?.sqlState == "42501")
        await fresh.shutdown()
        await ledger.shutdown()
    }

    /// A ledger that already moved money before currencies existed counted shillings: migration
    /// 0024 seeds KES, and a start with another currency is refused, not allowed to read cents as pesewas.
    @Test func aLedgerThatHeldMoneyBeforeCurrenciesIsShillings() async throws {
        let postgres = PostgresClient(configuration: try await TestServers.freshDatabase("wallet"))
        let all = try WalletMigrations.all()
        try await postgres.migrate(all.filter { $0.version < 24 })
        let float = try await postgres.query("SELECT id FROM accounts WHERE customer_id IS NULL AND kind = 'mpesa_float'").single()!.decode(Int64.self, column: 0)
        let inFlight = try await postgres.query("SELECT id FROM accounts WHERE customer_id IS NULL AND kind = 'payouts_in_flight'").single()!.decode(Int64.self, column: 0)
        try await postgres.query(
            "INSERT INTO transfers (id, debit_account, credit_account, amount, kind, status) VALUES ('before-currencies', \(float), \(inFlight), 100, 'deposit', 'posted')")
        try await postgres.migrate(all)
        let wallet = Wallet(postgres: postgres, pins: Ledger.pins)
        await #expect(throws: LedgerCurrencyMismatch.self) { try await wallet.claimCurrency(Currency(code: "GHS")!) }
        try await wallet.claimCurrency(.kenyanShilling)
        await postgres.shutdown()
    }
}
