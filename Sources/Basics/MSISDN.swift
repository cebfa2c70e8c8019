/// A mobile number as the gateway stores and sends it: the country code and the national number,
/// digits only (`254712345678`, `233241234567`, `2348031234567`), of a country the deployment
/// serves (its ``NumberingPlan``, from `MSISDN_COUNTRIES`; Kenya by default). The only parser of
/// phone numbers in the gateway: a value of this type is valid wherever it goes.
public struct MSISDN: Sendable, Hashable, CustomStringConvertible {
    public let value: String

    /// A numbering plan the gateway knows: country code, national number length, and the first
    /// digits of its mobile numbers.
    public enum Country: String, Sendable, CaseIterable {
        case kenya = "KE"
        case ghana = "GH"
        case nigeria = "NG"

        public var code: String {
            switch self {
            case .kenya: "254"
            case .ghana: "233"
            case .nigeria: "234"
            }
        }

        /// Digits after the country code (after the trunk `0` in local form).
        public var nationalLength: Int {
            switch self {
            case .kenya, .ghana: 9
            case .nigeria: 10
            }
        }

        /// First national digits of mobile numbers: Kenya 7 and 1 (Safaricom, Airtel, Telkom),
        /// Ghana 2 and 5 (MTN, Telecel, AirtelTigo), Nigeria 7, 8 and 9.
        public var mobilePrefixes: Set<Character> {
            switch self {
            case .kenya: ["7", "1"]
            case .ghana: ["2", "5"]
            case .nigeria: ["7", "8", "9"]
            }
        }

        func accepts(national: Substring) -> Bool {
            national.count == self.nationalLength && national.first.map(self.mobilePrefixes.contains) == true
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
        guard normalised.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            countries.contains(where: { normalised.hasPrefix($0.code) && $0.accepts(national: normalised.dropFirst(3)) })
        else { return nil }
        self.value = normalised
    }

    /// A number in any usual form a person or a provider writes: `0712345678`, `712345678`,
    /// `254712345678`, `+254712345678`, with spaces, dashes, dots or brackets between the digits, of
    /// a country `plan` serves. A local form belongs to the plan's first country.
    public init?(parsing input: String, plan: NumberingPlan) {
        self.init(parsing: input, countries: plan.countries)
    }

    /// The same, for the countries given rather than the deployment's.
    public init?(parsing input: String, countries: [Country]) {
        guard !countries.isEmpty else { return nil }
        var digits = Substring(input.filter { !" -().".contains($0) })
        let international = digits.hasPrefix("+")
        if international { digits.removeFirst() }
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        if countries.contains(where: { digits.hasPrefix($0.code) && digits.count == 3 + $0.nationalLength }) {
            self.init(String(digits), countries: countries)
            return
        }
        guard !international else { return nil }
        let home = countries[0]
        if digits.hasPrefix("0"), digits.count == home.nationalLength + 1 {
            digits.removeFirst()
        } else if digits.count != home.nationalLength {
            return nil
        }
        self.init(home.code + digits, countries: countries)
    }

    /// The plan the number belongs to.
    public var country: Country {
        Country.allCases.first { self.value.hasPrefix($0.code) && $0.accepts(national: self.value.dropFirst(3)) } ?? .kenya
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
