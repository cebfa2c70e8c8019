import Basics
import Foundation
@testable import LedgerTestSupport
import Postgres
import Testing
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
        // The gateway may not write it by hand.
        let direct = await #expect(throws: PostgresError.self) { try await app.client.query("INSERT INTO ledger_currency (only_row, code, minor_units) VALUES (true, 'KES', 2)") }
        #expect(direct != nil)
        await ledger.shutdown()
    }

    /// A ledger that already moved money before currencies existed was counting shillings: the
    /// first start with another currency is refused, not allowed to read cents as pesewas.
    @Test func aLedgerWithMoneyAndNoClaimIsShillings() async throws {
        let ledger = try await Ledger.make()
        let float = try await ledger.systemAccount("mpesa_float")
        let inFlight = try await ledger.systemAccount("payouts_in_flight")
        try await ledger.post("before-currencies", from: float, to: inFlight, cents: 100, kind: "deposit")
        await #expect(throws: LedgerCurrencyMismatch.self) { try await ledger.wallet.claimCurrency(Currency(code: "GHS")!) }
        try await ledger.wallet.claimCurrency(.kenyanShilling)
        await ledger.shutdown()
    }
}
