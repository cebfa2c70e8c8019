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
        self.measure(Cost(text))
    }

    /// The verdict for a cost, e.g. a page's lines added up with ``Cost/joined(_:)``.
    func measure(_ cost: Cost) -> Measure {
        cost.gsm7 ? Measure(encoding: .gsm7, cost: cost.septets, limit: self.gsm7) : Measure(encoding: .ucs2, cost: cost.utf16, limit: self.ucs2)
    }

    /// A text's cost in both encodings, so lines can be measured once and added up.
    struct Cost {
        var septets: Int
        var utf16: Int
        var gsm7: Bool

        init(_ text: String) {
            var septets = 0
            var gsm7 = true
            for scalar in text.unicodeScalars {
                let value = scalar.value
                if value < 128 {
                    let cost = GSM7.asciiCost[Int(value)]
                    if cost == 0 { gsm7 = false; break }
                    septets += Int(cost)
                } else if GSM7.basic.contains(scalar) {
                    septets += 1
                } else if GSM7.extended.contains(scalar) {
                    septets += 2
                } else {
                    gsm7 = false
                    break
                }
            }
            self.septets = septets
            self.gsm7 = gsm7
            self.utf16 = gsm7 ? 0 : text.utf16.count
            if !gsm7 { self.septets = 0 }
        }

        private init(septets: Int, utf16: Int, gsm7: Bool) {
            self.septets = septets
            self.utf16 = utf16
            self.gsm7 = gsm7
        }

        /// The cost of `texts` (whose costs are `parts`) joined by newlines; once any part is
        /// outside GSM-7 the whole page is UCS-2 and is counted in UTF-16 units from `texts`.
        static func joined(_ parts: [Cost], texts: [String]) -> Cost {
            let separators = max(parts.count - 1, 0)
            if parts.allSatisfy(\.gsm7) {
                return Cost(septets: parts.reduce(0) { $0 + $1.septets } + separators, utf16: 0, gsm7: true)
            }
            return Cost(septets: 0, utf16: texts.reduce(0) { $0 + $1.utf16.count } + separators, gsm7: false)
        }
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

    /// Septets of each ASCII character: 1 in the basic set, 2 in the extension table, 0 outside.
    static let asciiCost: [UInt8] = (0..<128).map { value in
        let scalar = Unicode.Scalar(UInt8(value))
        return basic.contains(scalar) ? 1 : extended.contains(scalar) ? 2 : 0
    }

    /// True when every character of `text` can be sent in GSM-7.
    public static func canEncode(_ text: String) -> Bool {
        text.unicodeScalars.allSatisfy { basic.contains($0) || extended.contains($0) }
    }
}
