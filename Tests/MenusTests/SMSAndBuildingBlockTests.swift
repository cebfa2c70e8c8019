import Foundation
import Basics
import Menus
import Testing

@Suite struct SMSEngineTests {
    let sms: SMSEngine
    init() throws { self.sms = SMSEngine(graph: try MenuGraph.load(contentsOf: defaultMenusURL())) }

    @Test func sendCommandInEitherLanguageRunsTheActionWithoutKeepingThePIN() throws {
        for (text, language) in [("SEND 0722000111 500 2580", "en"), ("tuma +254722000111 500 2580", "sw")] {
            guard case .perform(let command, let request, let replyLanguage, let variables) = self.sms.interpret(text, context: ["msisdn": "254712345678"]) else {
                Issue.record("\(text) was not understood")
                continue
            }
            #expect(command == "send")
            #expect(replyLanguage == language, "the keyword's language answers when the sender's is unknown")
            #expect(request.action == "wallet.send")
            #expect(request.arguments == ["msisdn": "254712345678", "to": "254722000111", "amount": "50000", "pin": "2580"])
            #expect(request.secretArguments == ["pin"])
            #expect(variables["pin"] == nil, "the PIN is not kept for the reply")
            let reply = self.sms.reply(to: command, result: .success(["balance": "450000", "reference": "TX1"]), language: replyLanguage, variables: variables)
            #expect(reply.contains("KES 500") && reply.contains("0722***111") && reply.contains("KES 4,500") && !reply.contains("2580"))
        }
    }

    @Test func storedTextsHaveThePINMasked() {
        #expect(self.sms.masked("  send 0712345678  500 1234 ") == "send 0712345678 500 ****", "a command's secret argument, by position")
        #expect(self.sms.masked("TUMA +254712345678 1500 9876") == "TUMA +254712345678 1500 ****")
        #expect(self.sms.masked("BAL1234") == "BAL****", "not a command: digit runs of 4-6 are masked even when glued")
        #expect(self.sms.masked("SEND 0712345678 1234") == "SEND 0712345678 ****", "the wrong shape masks every 4-6 digit run")
        #expect(self.sms.masked("hello there") == "hello there")
    }

    @Test func badArgumentsGetTheUsageAndUnknownTextGetsHelp() {
        #expect(self.sms.interpret("SEND 0722000111 five 2580") == .reply("To send money: SEND <phone> <amount> <PIN>, e.g. SEND 0712345678 500 1234"))
        #expect(self.sms.interpret("SALIO") == .reply("Kuangalia salio tuma: SALIO <PIN>"))
        guard case .reply(let help) = self.sms.interpret("hello there", language: "sw") else { Issue.record("no help"); return }
        #expect(help.hasPrefix("Amri: SALIO <PIN>"))
        guard case .reply(let empty) = self.sms.interpret("   ") else { Issue.record("no help"); return }
        #expect(empty.hasPrefix("Commands: BAL <PIN>"))
    }

    @Test func errorsUseTheSharedRepliesInTheSendersLanguage() {
        guard case .perform(let command, _, let language, let variables) = self.sms.interpret("BAL 2580", language: "sw") else {
            Issue.record("BAL not understood")
            return
        }
        #expect(language == "sw", "a known preference wins over the keyword's language")
        #expect(self.sms.reply(to: command, result: .failure("wrong_pin"), language: language, variables: variables) == "PIN si sahihi. Hakuna kilichofanyika.")
        #expect(self.sms.reply(to: command, result: .failure("something_new"), language: "en", variables: variables) == "Sorry, something went wrong. Please try again.")
    }
}

@Suite struct BuildingBlockTests {
    @Test(arguments: [
        ("0712345678", "254712345678"), ("712345678", "254712345678"), ("+254712345678", "254712345678"),
        ("254 712-345-678", "254712345678"), ("0110345678", "254110345678"),
    ])
    func kenyanNumbersNormalise(input: String, expected: String) {
        #expect(Validator.msisdn.validate(input, plan: .kenya, currency: .kenyanShilling) == expected)
    }

    @Test(arguments: ["0812345678", "07123456", "+1712345678", "2547123456789", "07l2345678", ""])
    func otherNumbersAreRefused(input: String) {
        #expect(Validator.msisdn.validate(input, plan: .kenya, currency: .kenyanShilling) == nil)
    }

    @Test func validatorsAcceptAndNormalise() {
        #expect(Validator.amount(min: 10, max: 250_000).validate("1,250", plan: .kenya, currency: .kenyanShilling) == "125000")
        #expect(Validator.amount(min: 10, max: 250_000).validate("9", plan: .kenya, currency: .kenyanShilling) == nil)
        #expect(Validator.amount(min: 10, max: 250_000).validate("250001", plan: .kenya, currency: .kenyanShilling) == nil)
        #expect(Validator.amount(min: 10, max: 250_000).validate("12.50", plan: .kenya, currency: .kenyanShilling) == nil, "whole shillings only")
        #expect(Validator.pin.validate("0042", plan: .kenya, currency: .kenyanShilling) == "0042")
        #expect(Validator.pin.validate("042", plan: .kenya, currency: .kenyanShilling) == nil)
        #expect(Validator.digits(minLength: 2, maxLength: 3).validate("123", plan: .kenya, currency: .kenyanShilling) == "123")
        #expect(Validator.text(maxLength: 5, allowUnicode: false).validate("Amani", plan: .kenya, currency: .kenyanShilling) == "Amani")
        #expect(Validator.text(maxLength: 5, allowUnicode: false).validate("Ama😀", plan: .kenya, currency: .kenyanShilling) == nil, "GSM-7 only unless allowed")
        #expect(Validator.oneOf(["en", "sw"]).validate("SW", plan: .kenya, currency: .kenyanShilling) == "sw")
        #expect(Validator.regex(pattern: "[A-Z]{2}[0-9]{3}", maxLength: 5).validate("KE254", plan: .kenya, currency: .kenyanShilling) == "KE254")
        #expect(Validator.regex(pattern: "[A-Z]{2}[0-9]{3}", maxLength: 5).validate("KE2545", plan: .kenya, currency: .kenyanShilling) == nil)
    }

    @Test func formattersShowAmountsAndMaskPhones() throws {
        let shillings = Currency.kenyanShilling
        #expect(shillings.format(125_000) == "KES 1,250")
        #expect(shillings.format(125_050) == "KES 1,250.50")
        #expect(shillings.format(5) == "KES 0.05")
        #expect(shillings.format(100_000_000_00) == "KES 100,000,000")
        #expect(Template.maskPhone("254712345678") == "0712***678")
        let template = try Template("Sent {amount|amount} to {to|phone}. {{ok}}")
        #expect(template.render(["amount": "50000", "to": "254722000111"]) == "Sent KES 500 to 0722***111. {ok}")
        #expect(throws: TemplateError.self) { try Template("{amount|upper}") }
        let cedis = try Template("Sent {amount|amount} ({currency}) by {mobileMoney}. Fee {fee|amount}", market: Market(currency: Currency(code: "GHS", fractions: true)!, mobileMoney: "MoMo"))
        #expect(cedis.render(["amount": "1250", "fee": "100", "currency": "KES"]) == "Sent GHS 12.50 (GHS) by MoMo. Fee GHS 1.00", "{currency} is always the deployment's")
    }

    @Test func theDeploymentsCurrencyReadsAndShowsItsOwnMinorUnits() throws {
        let cedis = Currency(code: "GHS", fractions: true)!
        #expect(cedis.format(123_456_789) == "GHS 1,234,567.89")
        #expect(cedis.format(-5) == "GHS -0.05")
        #expect(cedis.parse(typed: "12.50") == 1250)
        #expect(cedis.parse(typed: "12.5") == 1250)
        #expect(cedis.parse(typed: "1,250") == 125_000)
        for refused in ["12.505", "1e3", "-5", "12.", ".5", "", "١٢", "12,50.5.1", "0x10"] { #expect(cedis.parse(typed: refused) == nil, "\(refused)") }
        let wholeCedis = Currency(code: "GHS")!
        #expect(wholeCedis.parse(typed: "12.50") == nil, "fractions are off")
        #expect(wholeCedis.format(1200) == "GHS 12")
        let francs = Currency(code: "UGX", fractions: true)!
        #expect(!francs.fractions, "UGX has no minor unit")
        #expect(francs.format(1_250_000) == "UGX 1,250,000")
        #expect(francs.parse(typed: "5000") == 5000)
        #expect(francs.minor(whole: 5000) == 5000)
        #expect(Currency(code: "XYZ") == nil)
        #expect(Currency(code: "kes") == nil)
        #expect(Validator.amount(min: 1, max: 1000).validate("12.50", plan: NumberingPlan(countries: [.ghana])!, currency: cedis) == "1250")
        #expect(Validator.amount(min: 1, max: 1000).validate("0.50", plan: NumberingPlan(countries: [.ghana])!, currency: cedis) == nil, "below the smallest")
        #expect(Validator.amount(min: 1, max: 1000).validate("1000.01", plan: NumberingPlan(countries: [.ghana])!, currency: cedis) == nil, "above the largest")
        #expect(Validator.amount(min: 1, max: 1000).maxLength(in: cedis) == 6)
        #expect(Validator.amount(min: 1, max: 1000).maxLength(in: francs) == 4)
    }

    @Test func gsm7CountsExtensionCharactersTwiceAndFallsBackToUCS2() {
        let budget = TextBudget(gsm7: 160, ucs2: 70)
        #expect(budget.measure("Salio KES 1,000").cost == 15)
        #expect(budget.measure("[x]").cost == 5, "[ and ] take two septets each")
        #expect(budget.measure("€").cost == 2)
        let unicode = budget.measure("Habari 👋")
        #expect(unicode.encoding == .ucs2 && unicode.limit == 70 && unicode.cost == 9)
        #expect(budget.fits(String(repeating: "a", count: 160)))
        #expect(!budget.fits(String(repeating: "a", count: 159) + "€"))
        let cut = budget.truncate(String(repeating: "ü", count: 300))
        #expect(cut.hasSuffix("...") && budget.fits(cut))
    }

    @Test func sessionStateIsSmallAndRoundTrips() throws {
        var state = SessionState(screen: "send.confirm", variables: ["msisdn": "254712345678", "recipient": "254722000111", "amount": "50000"], language: "sw")
        state.history = ["main", "send.to", "send.amount"]
        let data = try JSONEncoder().encode(state)
        #expect(data.count < 200, "\(data.count) bytes")
        #expect(try JSONDecoder().decode(SessionState.self, from: data) == state)
    }
}

/// A West African number in a screen or an SMS is masked in its own local form.
@Suite struct MaskedNumberTests {
    @Test func numbersAreMaskedInTheirLocalForm() {
        #expect(Template.maskPhone("2348031234567") == "0803***567" && Template.maskPhone("233241234567") == "0241***567")
    }
}
