import Foundation

/// An e-mail address (`finance@example.co.ke`), checked simply: one `@`, a local part of RFC 5322's
/// dot-atom characters, a domain of letters, digits and hyphens in dot-separated labels (a single
/// label such as `localhost` included). No display name, no quoted local part, no comments: what is
/// left can go into a header or an SMTP command as it is.
public struct MailAddress: Sendable, Hashable, CustomStringConvertible {
    public let value: String

    /// The longest address SMTP carries (RFC 5321: a path of 256 octets, less its brackets).
    public static let maximumLength = 254

    /// The address in `text` (surrounding spaces ignored), or nil when it is not a plain address.
    public init?(_ text: String) {
        let text = text.trimmingCharacters(in: .whitespaces)
        guard text.utf8.count <= Self.maximumLength, text.allSatisfy(\.isASCII) else { return nil }
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, Self.isLocalPart(parts[0]), Self.isDomain(parts[1]) else { return nil }
        self.value = text
    }

    /// What follows the `@`.
    public var domain: Substring { self.value[self.value.index(after: self.value.firstIndex(of: "@")!)...] }

    public var description: String { self.value }

    private static let atext = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~")

    private static func isLocalPart(_ local: Substring) -> Bool {
        guard (1...64).contains(local.utf8.count), local.first != ".", local.last != ".", !local.contains("..") else { return false }
        return local.allSatisfy { $0 == "." || Self.atext.contains($0) }
    }

    private static func isDomain(_ domain: Substring) -> Bool {
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        return !domain.isEmpty && domain.utf8.count <= 253
            && labels.allSatisfy { label in
                (1...63).contains(label.utf8.count) && label.first != "-" && label.last != "-"
                    && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
            }
    }
}
