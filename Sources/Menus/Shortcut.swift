/// A dial-in shortcut (`shortcuts` in menus.json): extra digits dialled after a service code open a
/// screen directly, with variables filled in from the digits. `*384*96*1#` can open Check Balance,
/// and `*384*96*4*0712345678*500#` can open Send Money with the recipient and amount filled, still
/// asking for confirmation and PIN.
///
/// `dial` is the extension as `*`-separated segments, each either literal digits or `{screen}`, an
/// input screen's id (`4*{send.to}*{send.amount}`). The digits there are what the user would have
/// typed on that screen: its validator checks them and its variable keeps them, and a value the
/// screen would refuse opens that screen with its error instead. A shortcut applies
/// when the session reaches the home screen for the first time, so registration, a PIN reset or a
/// blocked customer's menu come first, as on any dial.
public struct Shortcut: Sendable, Codable, Hashable {
    public var dial: String
    public var screen: String

    public init(dial: String, screen: String) {
        self.dial = dial
        self.screen = screen
    }

    /// One segment of the extension pattern.
    public enum Segment: Sendable, Hashable {
        case literal(String)
        /// An input screen's id.
        case input(String)
    }

    /// The pattern's segments; nil when malformed (lint says why).
    public var segments: [Segment]? {
        let parts = self.dial.split(separator: "*", omittingEmptySubsequences: false)
        guard !parts.isEmpty, parts.count <= 8 else { return nil }
        var segments: [Segment] = []
        for part in parts {
            if part.first == "{", part.last == "}", part.count > 2 {
                let name = part.dropFirst().dropLast()
                guard name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_.-".contains($0)) }) else { return nil }
                segments.append(.input(String(name)))
            } else {
                guard (1...12).contains(part.count), part.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
                segments.append(.literal(String(part)))
            }
        }
        return segments
    }

    /// What the extension types on each input screen (by screen id), when it matches this shortcut.
    public func match(_ extensionSegments: [Substring]) -> [String: String]? {
        guard let segments = self.segments, segments.count == extensionSegments.count else { return nil }
        var values: [String: String] = [:]
        for (segment, given) in zip(segments, extensionSegments) {
            switch segment {
            case .literal(let digits): guard given == digits else { return nil }
            case .input(let name):
                guard !given.isEmpty, given.count <= 32 else { return nil }
                values[name] = String(given)
            }
        }
        return values
    }

    /// The extension of a dial string past one of `serviceCodes`: `*384*96*4*0712345678*500#` past
    /// `*384*96#` is `4`, `0712345678`, `500`. Empty for the bare service code; nil when the dial
    /// extends none of them.
    public static func extensionSegments(of dial: String, serviceCodes: [String]) -> [Substring]? {
        for code in serviceCodes where code.hasSuffix("#") {
            if dial == code { return [] }
            let stem = code.dropLast() + "*"
            guard dial.hasPrefix(stem), dial.hasSuffix("#"), dial.count > stem.count + 1 else { continue }
            return dial.dropFirst(stem.count).dropLast().split(separator: "*", omittingEmptySubsequences: false)
        }
        return nil
    }
}

extension Shortcut {
    /// A dial string in the `*...#` form the service codes use. `*713*1#` stays as it is. A Flares
    /// dial comes without `*` and `#` (`384961` for `*384*96*1#`): it becomes the longest served
    /// code whose digits it starts with, and the rest one extension segment (`*384*96*1#`), since
    /// nothing in `384964071234567850` tells where one typed segment ends and the next begins.
    /// Anything else is wrapped as it is (`*920#` from `920`) and matches no code unless it is one.
    public static func dialled(_ dial: String, serviceCodes: [String]) -> String {
        let dial = dial.trimmingCharacters(in: .whitespaces)
        if dial.hasPrefix("*") && dial.hasSuffix("#") { return dial }
        guard !dial.isEmpty, !dial.contains("*"), dial.allSatisfy({ $0.isASCII && $0.isNumber }) else { return "*" + dial + "#" }
        for code in serviceCodes.sorted(by: { $0.count > $1.count }) where code.hasPrefix("*") && code.hasSuffix("#") {
            let digits = code.filter { $0.isASCII && $0.isNumber }
            if dial == digits { return code }
            if dial.hasPrefix(digits) { return code.dropLast() + "*" + dial.dropFirst(digits.count) + "#" }
        }
        return "*" + dial + "#"
    }
}
