import Basics
import Foundation

/// A text with `{name}` placeholders and optional formatters: `{amount|amount}` renders integer
/// minor units in the deployment's currency (`GHS 12.50`, ``Currency/format(_:)``),
/// `{recipient|phone}` masks `254712345678` as `0712***678`, and `{currency}` and `{mobileMoney}`
/// are always the deployment's (``Market``), so no text names them. Nothing else is evaluated: a
/// template cannot reach code or the environment. `{{` and `}}` stand for braces.
public struct Template: Sendable, Hashable {
    public enum Part: Sendable, Hashable {
        case literal(String)
        case variable(String, Formatter)
    }

    /// How a placeholder's value is shown.
    public enum Formatter: String, Sendable, Hashable, CaseIterable {
        case plain
        /// Integer minor units in the template's currency: `GHS 1,250`, `GHS 12.50`.
        case amount
        /// A normalised MSISDN as a local number with the middle hidden: `0712***678`.
        case phone
    }

    public let parts: [Part]
    /// The currency `{…|amount}` shows, and the constants `{currency}` and `{mobileMoney}`.
    public let market: Market
    public var currency: Currency { self.market.currency }

    /// A template of these parts.
    init(parts: [Part], market: Market) {
        self.parts = parts
        self.market = market
    }

    /// Parses `source`; a malformed placeholder is a ``TemplateError``.
    public init(_ source: String, market: Market = .kenya) throws(TemplateError) {
        self.market = market
        var parts: [Part] = []
        var literal = ""
        var index = source.startIndex
        while index < source.endIndex {
            let character = source[index]
            let next = source.index(after: index)
            if character == "{" {
                if next < source.endIndex, source[next] == "{" {
                    literal.append("{")
                    index = source.index(after: next)
                    continue
                }
                guard let close = source[next...].firstIndex(of: "}") else {
                    throw TemplateError(template: source, problem: "a { has no closing }")
                }
                let inside = source[next..<close].split(separator: "|", omittingEmptySubsequences: false).map {
                    $0.trimmingCharacters(in: .whitespaces)
                }
                let name = inside[0]
                guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." }) else {
                    throw TemplateError(template: source, problem: "placeholder {\(source[next..<close])} is not a variable name")
                }
                var formatter = Formatter.plain
                if inside.count == 2 {
                    guard let known = Formatter(rawValue: inside[1]) else {
                        throw TemplateError(template: source, problem: "unknown formatter \(inside[1]) (known: amount, phone)")
                    }
                    formatter = known
                } else if inside.count > 2 {
                    throw TemplateError(template: source, problem: "placeholder {\(source[next..<close])} has more than one formatter")
                }
                if !literal.isEmpty { parts.append(.literal(literal)) }
                literal = ""
                parts.append(.variable(name, formatter))
                index = source.index(after: close)
            } else if character == "}" {
                if next < source.endIndex, source[next] == "}" {
                    literal.append("}")
                    index = source.index(after: next)
                    continue
                }
                throw TemplateError(template: source, problem: "a } has no opening {")
            } else {
                literal.append(character)
                index = next
            }
        }
        if !literal.isEmpty { parts.append(.literal(literal)) }
        self.parts = parts
    }

    /// The variable names the template reads from its values (not ``Market``'s constants).
    public var variables: [String] {
        self.parts.compactMap { part in
            if case .variable(let name, _) = part, !Market.constantNames.contains(name) { return name }
            return nil
        }
    }

    /// Renders with `values`; a missing variable renders empty.
    public func render(_ values: [String: String]) -> String {
        var text = ""
        for part in self.parts {
            switch part {
            case .literal(let literal): text += literal
            case .variable(let name, let formatter):
                text += self.market.constant(name) ?? Self.format(values[name] ?? "", formatter, self.currency)
            }
        }
        return text
    }

    /// Applies a formatter; values it cannot read are shown as they are.
    public static func format(_ value: String, _ formatter: Formatter, _ currency: Currency) -> String {
        switch formatter {
        case .plain: return value
        case .amount: return Int64(value).map(currency.format) ?? value
        case .phone: return maskPhone(value)
        }
    }

    /// `254712345678` -> `0712***678`; anything else keeps only its last three digits visible.
    public static func maskPhone(_ value: String) -> String {
        let local = MSISDN(value)?.local ?? value
        guard local.count >= 7 else { return String(repeating: "*", count: local.count) }
        return local.prefix(4) + "***" + local.suffix(3)
    }
}

/// A placeholder the parser could not read.
public struct TemplateError: Error, Sendable, Hashable, CustomStringConvertible {
    public let template: String
    public let problem: String
    public var description: String { self.problem }
}
