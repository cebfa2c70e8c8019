import Foundation
import Wallet

/// A mini statement as one USSD screen shows it.
public enum StatementText {
    /// The last movements in at most 120 characters: `21/11 -300.00 0722000111`, newest first.
    public static func of(_ entries: [StatementEntry]) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Africa/Nairobi") ?? .gmt
        var lines: [String] = []
        var length = 0
        for entry in entries {
            let day = calendar.dateComponents([.day, .month], from: entry.at)
            let sign = entry.direction == .incoming ? "+" : "-"
            let party = entry.counterparty.map { "0" + $0.value.dropFirst(3) } ?? entry.kind
            let line = String(format: "%02d/%02d ", day.day ?? 0, day.month ?? 0) + sign + entry.amount.description + " " + party
            if length + line.count + (lines.isEmpty ? 0 : 1) > 120 { break }
            length += line.count + (lines.isEmpty ? 0 : 1)
            lines.append(line)
        }
        return lines.isEmpty ? "-" : lines.joined(separator: "\n")
    }
}
