/// A mobile number as the gateway stores and sends it: the country code and the national number,
/// digits only (`254712345678`, `233241234567`, `2348031234567`, `255712345678`), of a country the deployment
/// serves (its ``NumberingPlan``, from `MSISDN_COUNTRIES`; Kenya by default). The only parser of
/// phone numbers in the gateway: a value of this type is valid wherever it goes.
public struct MSISDN: Sendable, Hashable, CustomStringConvertible {
    public let value: String

    /// The number with its middle hidden, `2547***678`, for whoever reads it without a reason to
    /// see it whole (a counterparty in an export, a report).
    public var masked: String { Self.masked(self.value) }

    /// Any string of digits so: its first four and last three kept.
    public static func masked(_ digits: String) -> String {
        digits.count > 7 ? digits.prefix(4) + "***" + digits.suffix(3) : String(repeating: "*", count: digits.count)
    }

    /// A numbering plan the gateway knows: country code, national number length, and the first
    /// digits of its mobile numbers.
    public enum Country: String, Sendable, CaseIterable {
        case kenya = "KE"
        case ghana = "GH"
        case nigeria = "NG"
        case tanzania = "TZ"
        case uganda = "UG"
        case rwanda = "RW"

        public var code: String {
            switch self {
            case .kenya: "254"
            case .ghana: "233"
            case .nigeria: "234"
            case .tanzania: "255"
            case .uganda: "256"
            case .rwanda: "250"
            }
        }

        /// Digits after the country code (after the trunk `0` in local form).
        public var nationalLength: Int {
            switch self {
            case .kenya, .ghana, .tanzania, .uganda, .rwanda: 9
            case .nigeria: 10
            }
        }

        /// First national digits of mobile numbers: Kenya 7 and 1 (Safaricom, Airtel, Telkom),
        /// Ghana 2 and 5 (MTN, Telecel, AirtelTigo), Nigeria 7, 8 and 9, Tanzania 6 and 7 (Vodacom,
        /// Airtel, Yas, Halotel, TTCL: 61 to 79), Uganda 7 (MTN, Airtel, Lyca: 70 to 79), Rwanda 7
        /// (MTN, Airtel: 72, 73, 78, 79).
        public var mobilePrefixes: Set<Character> {
            switch self {
            case .kenya: ["7", "1"]
            case .ghana: ["2", "5"]
            case .nigeria: ["7", "8", "9"]
            case .tanzania: ["6", "7"]
            case .uganda, .rwanda: ["7"]
            }
        }

        /// The code's digits, as the parser compares them.
        var codeDigits: [UInt8] {
            switch self {
            case .kenya: Self.kenyaCode
            case .ghana: Self.ghanaCode
            case .nigeria: Self.nigeriaCode
            case .tanzania: Self.tanzaniaCode
            case .uganda: Self.ugandaCode
            case .rwanda: Self.rwandaCode
            }
        }

        private static let kenyaCode = Array("254".utf8)
        private static let ghanaCode = Array("233".utf8)
        private static let nigeriaCode = Array("234".utf8)
        private static let tanzaniaCode = Array("255".utf8)
        private static let ugandaCode = Array("256".utf8)
        private static let rwandaCode = Array("250".utf8)

        /// Whether `national` (ASCII digits) is a mobile number's national part here.
        func accepts(national: some Collection<UInt8>) -> Bool {
            guard national.count == self.nationalLength, let first = national.first else { return false }
            switch self {
            case .kenya: return first == UInt8(ascii: "7") || first == UInt8(ascii: "1")
            case .ghana: return first == UInt8(ascii: "2") || first == UInt8(ascii: "5")
            case .nigeria: return first >= UInt8(ascii: "7") && first <= UInt8(ascii: "9")
            case .tanzania: return first == UInt8(ascii: "6") || first == UInt8(ascii: "7")
            case .uganda, .rwanda: return first == UInt8(ascii: "7")
            }
        }

        /// Whether `digits` are this country's code and a mobile number's national part.
        func holds(_ digits: some Collection<UInt8>) -> Bool {
            digits.starts(with: self.codeDigits) && self.accepts(national: digits.dropFirst(3))
        }
    }

    /// A number already in the stored form (`254712345678`) of any country the gateway knows: what
    /// the database holds or a provider sends normalised was checked on its way in. Input from
    /// people and aggregators goes through ``init(parsing:plan:)``, which keeps to the countries served.
    public init?(_ normalised: String) {
        self.init(normalised, countries: Country.allCases)
    }

    /// The same, for the countries given rather than the deployment's.
    public init?(_ normalised: String, countries: [Country]) {
        let digits = normalised.utf8
        guard digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }), countries.contains(where: { $0.holds(digits) }) else { return nil }
        self.value = normalised
    }

    /// A number in any usual form a person or a provider writes: `0712345678`, `712345678`,
    /// `254712345678`, `+254712345678`, with spaces, dashes, dots or brackets between the digits, of
    /// a country `plan` serves. A local form belongs to the plan's first country.
    public init?(parsing input: String, plan: NumberingPlan) {
        self.init(parsing: input, countries: plan.countries)
    }

    /// The same, for the countries given rather than the deployment's. Read as UTF-8 bytes (a hop
    /// parses one): whatever is not a separator must be an ASCII digit, so a byte is a character.
    public init?(parsing input: String, countries: [Country]) {
        guard !countries.isEmpty else { return nil }
        var digits: [UInt8] = []
        digits.reserveCapacity(16)
        var international = false
        for byte in input.utf8 {
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "-"), UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "."):
                continue
            case UInt8(ascii: "+") where digits.isEmpty && !international:
                international = true
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                digits.append(byte)
            default:
                return nil
            }
        }
        guard !digits.isEmpty else { return nil }
        if countries.contains(where: { digits.count == 3 + $0.nationalLength && digits.starts(with: $0.codeDigits) }) {
            guard countries.contains(where: { $0.holds(digits) }) else { return nil }
            self.value = String(decoding: digits, as: UTF8.self)
            return
        }
        guard !international else { return nil }
        let home = countries[0]
        var national = digits[...]
        if digits.first == UInt8(ascii: "0"), digits.count == home.nationalLength + 1 {
            national = digits.dropFirst()
        } else if digits.count != home.nationalLength {
            return nil
        }
        guard home.accepts(national: national) else { return nil }
        self.value = home.code + String(decoding: national, as: UTF8.self)
    }

    /// The plan the number belongs to.
    public var country: Country {
        Country.allCases.first { $0.holds(self.value.utf8) } ?? .kenya
    }

    /// `+254712345678`, as Africa's Talking writes numbers.
    public var international: String { "+" + self.value }

    /// `0712345678`, as a person in that country reads a number.
    public var local: String { "0" + self.value.dropFirst(3) }

    public var description: String { self.value }
}

/// The countries a deployment serves (`MSISDN_COUNTRIES`), the first the one a local number
/// (`0712345678`) belongs to: a value handed to every part that parses people's numbers, never a
/// process-wide setting.
public struct NumberingPlan: Sendable, Hashable {
    public let countries: [MSISDN.Country]

    /// Nil without a country.
    public init?(countries: [MSISDN.Country]) {
        guard !countries.isEmpty else { return nil }
        self.countries = countries
    }

    /// Kenya's numbers alone: the default deployment's.
    public static let kenya = NumberingPlan(countries: [.kenya])!
}
