@testable import Basics
import Testing

/// Numbers of the countries a deployment serves (`MSISDN_COUNTRIES`): Kenya by default, Ghana and
/// Nigeria known too. The tests name their countries: the deployment's list is process-wide.
@Suite struct MSISDNTests {
    @Test func kenyaAloneAcceptsEveryUsualKenyanFormAndNothingElse() {
        let kenya: [MSISDN.Country] = [.kenya]
        for form in ["0712345678", "712345678", "254712345678", "+254712345678", "+254 712-345 678", "0112345678"] {
            #expect(MSISDN(parsing: form, countries: kenya) != nil, "\(form)")
        }
        #expect(MSISDN(parsing: "0712345678", countries: kenya)?.value == "254712345678")
        for form in ["+233241234567", "0241234567x", "0612345678", "+2348031234567", "25471234567"] {
            #expect(MSISDN(parsing: form, countries: kenya) == nil, "\(form)")
        }
        #expect(NumberingPlan.kenya.countries == [.kenya] && NumberingPlan(countries: []) == nil, "the default deployment serves Kenya; a plan names a country")
    }

    @Test func ghanaAndNigeriaByTheirPlansWithLocalFormsInTheFirstCountry() throws {
        let westAfrica: [MSISDN.Country] = [.ghana, .nigeria]
        let ghana = try #require(MSISDN(parsing: "024 123 4567", countries: westAfrica))
        #expect(ghana.value == "233241234567" && ghana.country == .ghana && ghana.local == "0241234567")
        #expect(MSISDN(parsing: "+233 54 491 9953", countries: westAfrica)?.value == "233544919953")
        let nigeria = try #require(MSISDN(parsing: "+234 803 123 4567", countries: westAfrica))
        #expect(nigeria.value == "2348031234567" && nigeria.country == .nigeria && nigeria.local == "08031234567")
        #expect(MSISDN(parsing: "08031234567", countries: westAfrica) == nil, "a local form is the first country's (Ghana: 10 digits)")
        #expect(MSISDN(parsing: "08031234567", countries: [.nigeria, .ghana])?.value == "2348031234567")
        #expect(MSISDN(parsing: "0341234567", countries: westAfrica) == nil, "not a Ghanaian mobile prefix")
        #expect(MSISDN(parsing: "+254712345678", countries: westAfrica) == nil, "Kenya is not served here")
        #expect(MSISDN("233241234567", countries: westAfrica) != nil && MSISDN("233241234567", countries: [.kenya]) == nil)
    }

    /// Tanzania, Uganda and Rwanda: each in its local and international forms, a local number
    /// belonging to the first country served, a fixed line or a country not served refused.
    @Test func tanzaniaUgandaAndRwandaByTheirPlans() throws {
        let eastAfrica: [MSISDN.Country] = [.tanzania, .uganda, .rwanda]
        for (input, value, country) in [
            ("0754 123 456", "255754123456", MSISDN.Country.tanzania), ("+255 65 123 4567", "255651234567", .tanzania), ("255 612 345 678", "255612345678", .tanzania),
            ("+256 772 123456", "256772123456", .uganda), ("256-701-234-567", "256701234567", .uganda),
            ("+250 788 123 456", "250788123456", .rwanda), ("250(72)1234567", "250721234567", .rwanda),
        ] {
            let number = try #require(MSISDN(parsing: input, countries: eastAfrica), "\(input)")
            #expect(number.value == value && number.country == country, "\(input)")
            #expect(number.local == "0" + value.dropFirst(3) && number.international == "+" + value)
            #expect(MSISDN(value) == number, "stored form of any known country")
        }
        // Local forms belong to the first country served.
        #expect(MSISDN(parsing: "0772123456", countries: [.uganda, .tanzania])?.value == "256772123456")
        #expect(MSISDN(parsing: "0788123456", countries: [.rwanda])?.value == "250788123456")
        // Fixed lines (Dar es Salaam 022, Kampala 041, Kigali 025) and too short or too long: refused.
        for input in ["+255 22 211 2345", "+256 41 423 4567", "+250 25 252 1234", "+255 75412345", "+256 7721234567", "0654123"] {
            #expect(MSISDN(parsing: input, countries: eastAfrica) == nil, "\(input)")
        }
        // A country not served is refused, in any form.
        #expect(MSISDN(parsing: "+255754123456", countries: [.kenya]) == nil)
        #expect(MSISDN(parsing: "+254712345678", countries: eastAfrica) == nil)
        #expect(MSISDN("250788123456", countries: [.kenya, .uganda]) == nil)
    }

    /// The byte parser's codes and first digits are the countries' published ones.
    @Test func theByteParserKnowsEachCountryAsItsPublicFieldsSay() {
        for country in MSISDN.Country.allCases {
            #expect(country.codeDigits.elementsEqual(country.code.utf8), "\(country)")
            for digit in 0...9 {
                let first = Character(String(digit))
                let national = [UInt8(ascii: "0") + UInt8(digit)] + Array(repeating: UInt8(ascii: "1"), count: country.nationalLength - 1)
                #expect(country.accepts(national: national) == country.mobilePrefixes.contains(first), "\(country) \(digit)")
            }
        }
    }

    /// The parser reads bytes (it runs on every hop); it gives the same answers as reading the
    /// number as characters, the way it was first written (kept here as the reference), over many
    /// generated inputs: digits, separators, plus signs, letters, combining marks and emoji.
    @Test func readingBytesAnswersAsReadingCharactersDid() {
        var generator = SystemRandomNumberGenerator()
        let pieces = [
            "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "254", "233", "234", "255", "256", "250", "+", " ", "-", "(", ")", ".", "x", "\u{301}", "٣", "🇰🇪",
            "07", "0712345678",
        ]
        let plans: [[MSISDN.Country]] = [
            [.kenya], [.ghana, .nigeria], [.nigeria, .ghana], [.kenya, .ghana, .nigeria], [.tanzania, .uganda, .rwanda], [.rwanda, .kenya], MSISDN.Country.allCases,
        ]
        for _ in 0..<20_000 {
            let input = (0..<Int.random(in: 0...12, using: &generator)).map { _ in pieces.randomElement(using: &generator)! }.joined()
            for countries in plans {
                #expect(MSISDN(parsing: input, countries: countries)?.value == Self.reference(input, countries), "\(input.unicodeScalars.map { String($0.value, radix: 16) })")
            }
        }
    }

    /// The character-reading parser the byte-reading one replaced.
    static func reference(_ input: String, _ countries: [MSISDN.Country]) -> String? {
        func normalised(_ number: String) -> String? {
            guard number.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                countries.contains(where: { number.hasPrefix($0.code) && accepts($0, number.dropFirst(3)) })
            else { return nil }
            return number
        }
        func accepts(_ country: MSISDN.Country, _ national: Substring) -> Bool {
            national.count == country.nationalLength && national.first.map(country.mobilePrefixes.contains) == true
        }
        guard !countries.isEmpty else { return nil }
        var digits = Substring(input.filter { !" -().".contains($0) })
        let international = digits.hasPrefix("+")
        if international { digits.removeFirst() }
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        if countries.contains(where: { digits.hasPrefix($0.code) && digits.count == 3 + $0.nationalLength }) { return normalised(String(digits)) }
        guard !international else { return nil }
        let home = countries[0]
        if digits.hasPrefix("0"), digits.count == home.nationalLength + 1 {
            digits.removeFirst()
        } else if digits.count != home.nationalLength {
            return nil
        }
        return normalised(home.code + digits)
    }
}
