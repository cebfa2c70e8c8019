/// How many characters a page may hold as the handset receives it.
///
/// USSD pages travel in GSM-7 when every character is in its alphabet (the extension characters
/// `^{}\[~]|€` take two septets each), and in UCS-2 otherwise, where the limit is much lower.
public struct TextBudget: Sendable, Hashable, Codable {
    /// Septets per page in GSM-7 (default 160, hard ceiling 182).
    public var gsm7: Int
    /// UTF-16 code units per page once any character falls outside GSM-7.
    public var ucs2: Int

    public init(gsm7: Int = 160, ucs2: Int = 70) {
        self.gsm7 = gsm7
        self.ucs2 = ucs2
    }

    /// The hard ceiling of any USSD page, in GSM-7 septets.
    public static let ceiling = 182

    /// The cost of `text` in its encoding and whether it still fits.
    public func measure(_ text: String) -> Measure {
        var septets = 0
        for scalar in text.unicodeScalars {
            if GSM7.basic.contains(scalar) {
                septets += 1
            } else if GSM7.extended.contains(scalar) {
                septets += 2
            } else {
                let units = text.utf16.count
                return Measure(encoding: .ucs2, cost: units, limit: self.ucs2)
            }
        }
        return Measure(encoding: .gsm7, cost: septets, limit: self.gsm7)
    }

    /// True when `text` fits one page.
    public func fits(_ text: String) -> Bool { self.measure(text).fits }

    /// `text` cut to fit, ending in "..." when anything was cut.
    public func truncate(_ text: String) -> String {
        if self.fits(text) { return text }
        var characters = Array(text)
        while !characters.isEmpty {
            characters.removeLast()
            let candidate = String(characters) + "..."
            if self.fits(candidate) { return candidate }
        }
        return ""
    }

    public struct Measure: Sendable, Hashable {
        public enum Encoding: String, Sendable { case gsm7 = "GSM-7", ucs2 = "UCS-2" }
        public let encoding: Encoding
        /// Septets in GSM-7, UTF-16 code units in UCS-2.
        public let cost: Int
        public let limit: Int
        public var fits: Bool { self.cost <= self.limit }
    }
}

/// The GSM 03.38 default alphabet and its extension table.
public enum GSM7 {
    static let basic: Set<Unicode.Scalar> = Set(
        ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
            .unicodeScalars
    )
    static let extended: Set<Unicode.Scalar> = Set("^{}\\[~]|€\u{0C}".unicodeScalars)

    /// True when every character of `text` can be sent in GSM-7.
    public static func canEncode(_ text: String) -> Bool {
        text.unicodeScalars.allSatisfy { basic.contains($0) || extended.contains($0) }
    }
}
