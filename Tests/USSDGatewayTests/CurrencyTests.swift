import Basics
import Foundation
import Menus
import Settings
import Testing
@testable import GatewayTestSupport
@testable import USSDGateway

/// The deployment's currency is a setting, never a word in the code or the menus.
@Suite struct CurrencyTests {
    /// Where "KES" may still be written: the currency table, M-Pesa (Kenyan shillings by
    /// definition: its client, its records, its gateway, its simulation), M-Pesa's paybill credit
    /// in a migration that can no longer change, and the migration that says every ledger from
    /// before currencies counted shillings.
    static let allowed = [
        "Sources/Basics/Currency.swift", "Sources/MPesa/", "Sources/MPesaBook/", "Sources/MPesaGateway/", "Sources/Sandbox/DarajaSandbox",
        "Sources/Wallet/Migrations/0013_mpesa_confirmations.sql", "Sources/Wallet/Migrations/0024_ledger_currency.sql",
    ]

    @Test func noShillingsOutsideTheCurrencyTableAndMPesa() throws {
        let root = URL(fileURLWithPath: RepoFiles.menus).deletingLastPathComponent()
        var offenders: [String] = []
        let files = FileManager.default.enumerator(at: root.appendingPathComponent("Sources"), includingPropertiesForKeys: nil)!
        var checked = 0
        for case let url as URL in files where ["swift", "sql", "mustache", "css", "html", "json"].contains(url.pathExtension) {
            let path = String(url.path.dropFirst(root.path.count + 1))
            checked += 1
            guard !Self.allowed.contains(where: { path.hasPrefix($0) }) else { continue }
            let text = try String(contentsOf: url, encoding: .utf8)
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where line.contains("KES") {
                offenders.append("\(path):\(number + 1): \(line.trimmingCharacters(in: .whitespaces))")
            }
        }
        let menus = try String(contentsOfFile: RepoFiles.menus, encoding: .utf8)
        for (number, line) in menus.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where line.contains("KES") || line.contains("M-Pesa") {
            offenders.append("menus.json:\(number + 1): \(line.trimmingCharacters(in: .whitespaces))")
        }
        #expect(checked > 300, "the walk found the sources")
        #expect(offenders.isEmpty, "\(offenders.joined(separator: "\n"))")
    }

    /// `CURRENCY` is an ISO 4217 code from the table, `CURRENCY_FRACTIONS` on or off, `MOBILE_MONEY`
    /// one of the rails; anything else stops start-up with one line.
    @Test func theCurrencySettingsAreChecked() throws {
        let ghana = try GatewayConfig.load(environment: ["CURRENCY": "GHS", "CURRENCY_FRACTIONS": "on", "MOBILE_MONEY": "mtn-momo"], serving: false)
        #expect(ghana.currency == Currency(code: "GHS", fractions: true))
        #expect(ghana.market.mobileMoney == "MoMo")
        let kenya = try GatewayConfig.load(environment: [:], serving: false)
        #expect(kenya.currency == .kenyanShilling && !kenya.currency.fractions && kenya.mobileMoney == .mpesa)
        for (name, value) in [("CURRENCY", "XYZ"), ("CURRENCY", "ghs"), ("CURRENCY_FRACTIONS", "yes"), ("MOBILE_MONEY", "airtel")] {
            #expect(throws: ConfigError.self, "\(name)=\(value)") { _ = try GatewayConfig.load(environment: ["MOBILE_MONEY": "mtn-momo"].merging([name: value]) { $1 }, serving: false) }
        }
        // M-Pesa moves shillings only.
        let cedisOnMPesa = #expect(throws: ConfigError.self) { _ = try GatewayConfig.load(environment: ["CURRENCY": "GHS"], serving: false) }
        #expect(cedisOnMPesa?.variable == "CURRENCY")
        // Limits written in whole units are the currency's: a thousand Uganda francs are 1,000 minor units.
        let uganda = try GatewayConfig.load(environment: ["CURRENCY": "UGX", "MOBILE_MONEY": "mtn-momo", "PIN_RESET_COOLDOWN_LIMIT": "1000"], serving: false)
        #expect(uganda.wallet.pinResetCooldown.limit.cents == 1_000 && uganda.wallet.ledgerAdjustMax == 1_000_000)
        #expect(kenya.wallet.pinResetCooldown.limit.cents == 100_000 && kenya.wallet.ledgerAdjustMax == 100_000_000, "Kenya's as before")
    }
}
