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

    struct Reader {
        let values: [String: String]
        /// Every name asked for: the gateway's own settings, which a backend may never be given.
        let asked = AskedNames()

        func value(_ name: String) -> String? {
            self.asked.names.withLock { _ = $0.insert(name) }
            guard let value = self.values[name]?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
            return value
        }

        func string(_ name: String, default fallback: String) throws(ConfigError) -> String {
            self.value(name) ?? fallback
        }

        func integer(_ name: String, default fallback: Int, in range: ClosedRange<Int>) throws(ConfigError) -> Int {
            guard let text = self.value(name) else { return fallback }
            guard let number = Int(text), range.contains(number) else {
                throw ConfigError(variable: name, problem: "must be a whole number from \(range.lowerBound) to \(range.upperBound) (got \"\(text)\")")
            }
            return number
        }

        /// A callback token: at least ``GatewayConfig/minimumTokenLength`` letters, digits, `-` or `_`
        /// (it is a path segment). Never echoed.
        func milliseconds(_ name: String, default fallback: Duration, in range: ClosedRange<Int>) throws(ConfigError) -> Duration {
            .milliseconds(try self.integer(name, default: Int(fallback.inMilliseconds), in: range))
        }

        func seconds(_ name: String, default fallback: Duration, in range: ClosedRange<Int>) throws(ConfigError) -> Duration {
            .seconds(try self.integer(name, default: Int(fallback.components.seconds), in: range))
        }

        func token(_ name: String) throws(ConfigError) -> String? {
            guard let token = self.value(name) else { return nil }
            guard token.utf8.count >= GatewayConfig.minimumTokenLength, token.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_".contains($0)) }) else {
                throw ConfigError(variable: name, problem: "must be at least \(GatewayConfig.minimumTokenLength) letters, digits, '-' or '_'")
            }
            return token
        }

        func cidrs(_ name: String) throws(ConfigError) -> [CIDR] {
            guard let text = self.value(name) else { return [] }
            var networks: [CIDR] = []
            for item in text.split(separator: ",") {
                let item = item.trimmingCharacters(in: .whitespaces)
                guard let network = CIDR(item) else {
                    throw ConfigError(variable: name, problem: "\"\(item)\" is not an address or network (e.g. 10.0.0.0/8, 2001:db8::/32)")
                }
                networks.append(network)
            }
            return networks
        }

        func oneOf<T: RawRepresentable & CaseIterable>(_ name: String, default fallback: T) throws(ConfigError) -> T where T.RawValue == String {
            guard let text = self.value(name) else { return fallback }
            guard let value = T.allCases.first(where: { $0.rawValue.lowercased() == text.lowercased() }) else {
                let allowed = T.allCases.map(\.rawValue).joined(separator: ", ")
                throw ConfigError(variable: name, problem: "must be one of \(allowed) (got \"\(text)\")")
            }
            return value
        }
    }
}
