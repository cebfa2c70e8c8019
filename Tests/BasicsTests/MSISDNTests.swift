import Basics
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
}
