import Foundation
import Basics
import GatewayHTTP
import Logging
import Menus
import MPesa
import MPesaGateway
import Postgres
import Redis
import SMSChannel
import Wallet
import Settings
import Synchronization

/// Reading settings: a config file of `KEY=VALUE` lines, and the typed reads every section makes.
extension GatewayConfig {
    /// Reads a config file of `KEY=VALUE` lines (blank lines and `#` comments skipped, values
    /// optionally quoted).
    public static func readFile(at path: String) throws(ConfigError) -> [String: String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigError(variable: "config file \(path)", problem: "cannot be read")
        }
        var values: [String: String] = [:]
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let equals = line.firstIndex(of: "=") else {
                throw ConfigError(variable: "config file \(path)", problem: "line \(number + 1) is not KEY=VALUE")
            }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            var value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
            }
            values[key] = value
        }
        return values
    }

    /// A yes/no setting.
    enum Flag: String, CaseIterable { case on = "1", off = "0" }
}

extension SettingsReader {
    /// A callback token: at least ``GatewayConfig/minimumTokenLength`` letters, digits, `-` or `_`
    /// (it is a path segment). Never echoed.
    func token(_ name: String) throws(ConfigError) -> String? {
        guard let token = self.value(name, secret: true) else { return nil }
        guard token.utf8.count >= GatewayConfig.minimumTokenLength, token.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_".contains($0)) }) else {
            throw ConfigError(variable: name, problem: "must be at least \(GatewayConfig.minimumTokenLength) letters, digits, '-' or '_'")
        }
        return token
    }
}
