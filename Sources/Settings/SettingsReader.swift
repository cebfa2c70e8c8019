import Basics
import Configuration
import Synchronization

/// The settings of one process, as each part reads its own: a swift-configuration `ConfigReader`
/// over the environment (and a config file beneath it), with the checks every setting gets. A
/// setting's key is the environment variable's own name (`MPESA_C2B_SHORTCODE`), which the
/// environment provider encodes to itself, so the documented names and the keys in code are one.
///
/// Each read says what is wrong with a value by the variable's name (``ConfigError``), never by
/// echoing a secret; a value out of its range is refused rather than clamped or ignored. Every name
/// asked for is remembered: the gateway's own settings, which a menus backend may never be given.
public struct SettingsReader: Sendable {
    public let config: ConfigReader
    /// What was read, for the names the gateway itself reads.
    public let values: [String: String]
    private let asked = AskedNames()

    /// The settings in `environment`, over those of a config file (`file`).
    public init(environment: [String: String], file: [String: String] = [:]) {
        let values = file.merging(environment) { _, fromEnvironment in fromEnvironment }
        self.values = values
        self.config = ConfigReader(provider: EnvironmentVariablesProvider(environmentVariables: values))
    }

    /// Every name a part asked for so far.
    public var askedNames: Set<String> { self.asked.names.withLock { $0 } }

    /// The value of `name`, trimmed; nil when unset or empty.
    public func value(_ name: String, secret: Bool = false) -> String? {
        self.asked.names.withLock { _ = $0.insert(name) }
        guard let value = self.config.string(forKey: ConfigKey(name), isSecret: secret)?.trimmingCharacters(in: .whitespaces), !value.isEmpty else {
            return nil
        }
        return value
    }

    public func string(_ name: String, default fallback: String) -> String {
        self.value(name) ?? fallback
    }

    /// A whole number within `range`.
    public func integer(_ name: String, default fallback: Int, in range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard let text = self.value(name) else { return fallback }
        guard let number = Int(text), range.contains(number) else {
            throw ConfigError(variable: name, problem: "must be a whole number from \(range.lowerBound) to \(range.upperBound) (got \"\(text)\")")
        }
        return number
    }

    /// A whole number of `unit`s within `range` (of units), as a duration.
    public func duration(
        _ name: String, default fallback: Duration, in range: ClosedRange<Int>, unit: Duration
    ) throws(ConfigError) -> Duration {
        let (perUnit, fallbackUnits) = (unit.inMilliseconds, fallback.inMilliseconds / max(unit.inMilliseconds, 1))
        return .milliseconds(Int64(try self.integer(name, default: Int(fallbackUnits), in: range)) * perUnit)
    }

    public func milliseconds(_ name: String, default fallback: Duration, in range: ClosedRange<Int>) throws(ConfigError) -> Duration {
        try self.duration(name, default: fallback, in: range, unit: .milliseconds(1))
    }

    public func seconds(_ name: String, default fallback: Duration, in range: ClosedRange<Int>) throws(ConfigError) -> Duration {
        try self.duration(name, default: fallback, in: range, unit: .seconds(1))
    }

    /// One of `T`'s cases, by its raw value, in any case.
    public func oneOf<T: RawRepresentable & CaseIterable>(_ name: String, default fallback: T) throws(ConfigError) -> T where T.RawValue == String {
        guard let text = self.value(name) else { return fallback }
        guard let value = T.allCases.first(where: { $0.rawValue.lowercased() == text.lowercased() }) else {
            let allowed = T.allCases.map(\.rawValue).joined(separator: ", ")
            throw ConfigError(variable: name, problem: "must be one of \(allowed) (got \"\(text)\")")
        }
        return value
    }

    /// A comma-separated list, each item parsed by `parse`; empty when unset. An item that does not
    /// parse (a blank one included, unless `skipBlanks`) is refused with `problem(item)`.
    public func list<T>(
        _ name: String, skipBlanks: Bool = false, problem: (String) -> String, _ parse: (String) -> T?
    ) throws(ConfigError) -> [T] {
        guard let text = self.value(name) else { return [] }
        var items: [T] = []
        for item in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !(skipBlanks && item.isEmpty) {
            guard let parsed = parse(item) else { throw ConfigError(variable: name, problem: problem(item)) }
            items.append(parsed)
        }
        return items
    }
}

/// A configuration value that cannot be used: which variable, and what is wrong with it.
/// Values are echoed only for plain settings, never for URLs (they can hold passwords).
public struct ConfigError: LogSafeError, Sendable {
    public let variable: String
    public let problem: String
    public var description: String { "\(self.variable): \(self.problem)" }

    public init(variable: String, problem: String) {
        (self.variable, self.problem) = (variable, problem)
    }
}

/// Names a reader was asked for.
final class AskedNames: Sendable {
    let names = Mutex<Set<String>>([])
}
