import Basics
import Foundation
import Wallet

/// The day's reconciliation as people read it: the text `report daily` prints, the CSV for a
/// spreadsheet, and the one-line headline a mail's subject carries.
extension DailyReport {
    /// One row of the report: a section, an item, a count and an amount (either may be absent).
    public typealias Row = (section: String, item: String, count: Int64?, cents: Int64?)

    /// Nairobi, whose days the report counts (East Africa Time has no daylight saving: UTC+3 when
    /// the system has no time-zone data).
    public static let timeZone = TimeZone(identifier: "Africa/Nairobi") ?? TimeZone(secondsFromGMT: 3 * 3600)!

    /// The day before `now`'s in Nairobi, `YYYY-MM-DD`: what a morning's schedule reports on.
    public static func yesterday(now: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = Self.timeZone
        let day = calendar.date(byAdding: .day, value: -1, to: now)!
        let parts = calendar.dateComponents([.year, .month, .day], from: day)
        return String(format: "%04d-%02d-%02d", parts.year!, parts.month!, parts.day!)
    }

    /// The ledger's currency with every decimal it has: finance reads exact figures.
    var currency: Currency { Currency(code: self.currencyCode, fractions: true) ?? .kenyanShilling }

    /// `1200.00`: an amount in the report's currency, ungrouped, with all its decimals.
    func plain(_ minor: Int64) -> String {
        String(self.currency.format(minor).dropFirst(self.currencyCode.count + 1)).replacingOccurrences(of: ",", with: "")
    }

    /// `1,200.00`: an amount's size (no sign) with its thousands grouped, for a headline.
    func grouped(_ minor: Int64) -> String {
        String(self.currency.format(Int64(clamping: minor.magnitude)).dropFirst(self.currencyCode.count + 1))
    }

    /// Every figure of the report in order, the differences included.
    public var rows: [Row] {
        var rows: [Row] = []
        rows += self.deposits.map { ("deposits started", $0.status, $0.count, $0.sum) }
        rows.append(("deposits", "credited", self.depositsCredited.count, self.depositsCredited.sum))
        rows += self.payouts.map { ("payouts started", $0.status, $0.count, $0.sum) }
        rows.append(("payouts", "paid", self.payoutsPaid.count, self.payoutsPaid.sum))
        rows += self.movements.map { ("movements", $0.status, $0.count, $0.sum) }
        rows.append(("fees", "earned", nil, self.feesEarned))
        rows += [
            ("ledger", "mpesa_float net", nil, self.floatMovement), ("ledger", "payouts_in_flight net", nil, self.inFlightMovement),
            ("ledger", "fee_income net", nil, self.feeIncomeMovement), ("ledger", "suspense net", nil, self.suspenseMovement),
        ]
        rows += self.comparisons.map { ("difference", $0.name, nil, $0.difference) }
        rows.append(("review", "open items", self.openReviewItems, nil))
        rows.append(("review", "received that day", self.reviewItemsReceived, nil))
        return rows
    }

    /// `date,section,item,count,amount_kes` (the ledger's currency) and a line per row (`report daily --csv`).
    public var csv: String {
        func field(_ text: String) -> String {
            text.contains(where: { ",\"\n".contains($0) }) ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
        }
        var lines = ["date,section,item,count,amount_" + self.currencyCode.lowercased()]
        for row in self.rows {
            lines.append([self.date, row.section, row.item, row.count.map(String.init) ?? "", row.cents.map(self.plain) ?? ""].map(field).joined(separator: ","))
        }
        return lines.joined(separator: "\n")
    }

    /// The report as `report daily` prints it, sections and then each comparison with its reasons.
    public var text: String {
        var lines = ["Daily reconciliation \(self.date) (Africa/Nairobi)"]
        var section = ""
        for row in self.rows where row.section != "difference" {
            if row.section != section {
                section = row.section
                lines.append(section + ":")
            }
            let figures = [row.count.map { "\($0)" }, row.cents.map { "\(self.currencyCode) \(self.plain($0))" }].compactMap { $0 }
            lines.append("  \(row.item): " + figures.joined(separator: ", "))
        }
        lines.append("reconciliation:")
        for comparison in self.comparisons {
            let code = self.currencyCode
            let state = comparison.difference == 0 ? "ok" : "DIFFERENCE \(code) \(self.plain(comparison.difference))"
            lines.append("  \(comparison.name): reported \(code) \(self.plain(comparison.reported)), ledger \(code) \(self.plain(comparison.ledger)): \(state)")
            for reason in comparison.reasons { lines.append("    because \(reason)") }
        }
        lines.append(self.balanced ? "everything reconciles" : "NOT RECONCILED")
        return lines.joined(separator: "\n")
    }

    /// `reconciles`, or `DOES NOT RECONCILE — ` and each figure that does not, as `what vs what
    /// off by KES 1,200.00` (the ledger's currency): a mail's subject names what to look at before it is opened.
    public var headline: String {
        guard !self.balanced else { return "reconciles" }
        let off = self.comparisons.filter { $0.difference != 0 }.map { comparison in
            "\(comparison.name.replacingOccurrences(of: " / ", with: " vs ")) off by \(self.currencyCode) \(self.grouped(comparison.difference))"
        }
        return "DOES NOT RECONCILE — " + off.joined(separator: "; ")
    }
}
