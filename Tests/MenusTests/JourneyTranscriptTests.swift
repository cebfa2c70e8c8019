import Foundation
import Menus
import Testing

/// Walks every journey of the default menus.json, in both languages, as a handset would.
@Suite struct JourneyTranscriptTests {
    let graph: MenuGraph
    let engine: Engine

    init() throws {
        self.graph = try MenuGraph.load(contentsOf: defaultMenusURL())
        self.engine = Engine(graph: self.graph, sealer: TestSealer())
    }

    /// Words each language shows, so one transcript serves both.
    struct Words {
        let welcome, balance, savings, wrongPIN, invalid, confirm, sent, back, more, tooMany, locked, noWallet: String
        static let en = Words(
            welcome: "Welcome Achieng", balance: "Balance: KES 5,000", savings: "Savings: KES 1,000", wrongPIN: "Wrong PIN.",
            invalid: "Invalid choice.", confirm: "1. Confirm", sent: "Sent KES 500 to 0722***111", back: "0. Back", more: "98. More",
            tooMany: "Too many wrong entries", locked: "locked", noWallet: "has no wallet"
        )
        static let sw = Words(
            welcome: "Karibu Achieng", balance: "Salio: KES 5,000", savings: "Akiba: KES 1,000", wrongPIN: "PIN si sahihi.",
            invalid: "Chaguo si sahihi.", confirm: "1. Thibitisha", sent: "Umetuma KES 500 kwa 0722***111", back: "0. Rudi",
            more: "98. Zaidi", tooMany: "Makosa mengi", locked: "imefungwa", noWallet: "hana pochi"
        )
        static func of(_ language: String) -> Words { language == "sw" ? .sw : .en }
    }

    func phone(_ language: String) -> (Phone, FakeWallet) {
        let wallet = FakeWallet()
        wallet.register("254712345678", language: language)
        wallet.register("254722000111", name: "Otieno")
        return (Phone(engine: self.engine, wallet: wallet), wallet)
    }

    @Test(arguments: ["en", "sw"]) func registrationOfAnUnknownNumber(language: String) {
        let wallet = FakeWallet()
        var phone = Phone(engine: self.engine, wallet: wallet, msisdn: "254799000001")
        #expect(phone.dial().hasPrefix("Welcome! We keep your name, number and payments to run your wallet (privacy notice: *384*96*7#). Enter your full name"))
        #expect(phone.type("").hasPrefix("Use 1 to 20 letters."), "empty name is refused with the screen's error")
        phone.type("Wanjiku Kamau")
        #expect(phone.type(language == "sw" ? "2" : "1").contains(language == "sw" ? "Chagua PIN" : "Choose a 4-digit PIN"))
        phone.type("4829", secret: true)
        #expect(phone.type("4820", secret: true).hasPrefix(language == "sw" ? "PIN hazikulingana." : "The PINs did not match."))
        phone.type("1234", secret: true)
        #expect(phone.type("1234", secret: true).contains(language == "sw" ? "rahisi kukisia" : "too easy to guess"))
        phone.type("4829", secret: true)
        let done = phone.type("4829", secret: true)
        #expect(phone.ended)
        #expect(done.contains(language == "sw" ? "Karibu Wanjiku Kamau! Pochi yako iko tayari" : "Welcome Wanjiku Kamau! Your wallet is ready"))
        #expect(wallet.customers["254799000001"]?.pin == "4829")
        #expect(wallet.customers["254799000001"]?.language == language)
        #expect(wallet.requests.last?.secretArguments == ["pin"], "the host is told which argument is secret")
    }

    @Test(arguments: ["en", "sw"]) func checkBalanceWithAWrongPINFirst(language: String) {
        let words = Words.of(language)
        var (phone, _) = self.phone(language)
        #expect(phone.dial().hasPrefix(words.welcome))
        #expect(phone.type("1").contains("PIN"))
        #expect(phone.type("9999", secret: true).hasPrefix(words.wrongPIN))
        let shown = phone.type("2580", secret: true)
        #expect(shown == "\(words.balance)\n\(words.savings)")
        #expect(phone.ended)
    }

    @Test(arguments: ["en", "sw"]) func sendMoneyWithBackHomeAndWrongInput(language: String) {
        let words = Words.of(language)
        var (phone, wallet) = self.phone(language)
        phone.dial()
        phone.type("4")
        #expect(phone.type("07123").contains(language == "sw" ? "k.m. 0712345678" : "e.g. 0712345678"), "a short number is refused")
        phone.type("0722 000 111")
        phone.type("0")  // back to the number
        phone.type("+254722000111")
        phone.type("500")
        let confirm = phone.last.text
        #expect(confirm.contains("KES 500") && confirm.contains("0722***111") && confirm.contains(words.confirm))
        // The tariff's fee, and the total, before the PIN is asked (Kenya's charge disclosure).
        #expect(confirm.contains("KES 7") && confirm.contains("KES 507"), "\(confirm)")
        #expect(phone.type("7").hasPrefix(words.invalid))
        #expect(phone.type("00").hasPrefix(words.welcome), "home goes back to the main menu")
        phone.type("4")
        phone.type("0722000111")
        phone.type("500")
        phone.type("1")
        let done = phone.type("2580", secret: true)
        #expect(done.hasPrefix(words.sent))
        #expect(done.contains("KES 4,493") && done.contains("KES 7") && done.contains("TX12345678"), "\(done)")
        #expect(wallet.customers["254722000111"]?.balance == 550_000)
    }

    @Test(arguments: ["en", "sw"]) func sendMoneyFailuresEndPolitely(language: String) {
        var (phone, wallet) = self.phone(language)
        phone.dial()
        for input in ["4", "0733444555", "100", "1"] { phone.type(input) }
        #expect(phone.type("2580", secret: true).contains(Words.of(language).noWallet))
        phone.dial()
        for input in ["4", "0712345678", "100", "1"] { phone.type(input) }
        #expect(phone.type("2580", secret: true).contains(language == "sw" ? "Huwezi kujitumia" : "cannot send money to yourself"))
        phone.dial()
        for input in ["4", "0722000111", "250000", "1"] { phone.type(input) }
        #expect(phone.type("2580", secret: true).contains(language == "sw" ? "halitoshi" : "not enough"))
        #expect(wallet.customers["254712345678"]?.balance == 500_000, "nothing moved")
    }

    @Test(arguments: ["en", "sw"]) func depositAndWithdrawThroughMPesa(language: String) {
        var (phone, wallet) = self.phone(language)
        phone.dial()
        phone.type("2")
        #expect(phone.type("5").contains(language == "sw" ? "kuanzia 10" : "from 10 to 250,000"), "below the minimum")
        phone.type("1,000")
        #expect(phone.last.text.contains("KES 1,000") && phone.last.text.contains("0712***678"))
        phone.type("1")
        #expect(phone.type("2580", secret: true).contains(language == "sw" ? "weka PIN ya M-Pesa" : "enter your M-Pesa PIN"))
        #expect(wallet.requests.last?.arguments["amount"] == "100000", "amounts travel as integer cents")

        phone.dial()
        for input in ["3", "200"] { phone.type(input) }
        #expect(phone.last.text.contains("KES 10") && phone.last.text.contains("KES 210"), "the fee and total before the PIN: \(phone.last.text)")
        phone.type("1")
        // 200 and the tariff's withdrawal fee of 10.
        #expect(phone.type("2580", secret: true).contains("KES 4,790"))
        wallet.unavailable = true
        phone.dial()
        for input in ["3", "200", "1"] { phone.type(input) }
        #expect(phone.type("2580", secret: true).contains("M-Pesa"))
    }

    @Test(arguments: ["en", "sw"]) func savingsBalanceSaveAndWithdraw(language: String) {
        let words = Words.of(language)
        var (phone, wallet) = self.phone(language)
        phone.dial()
        phone.type("5")
        phone.type("1")
        #expect(phone.type("2580", secret: true) == words.savings)
        phone.dial()
        for input in ["5", "2", "300", "1"] { phone.type(input) }
        #expect(phone.type("2580", secret: true).contains("KES 300"))
        phone.dial()
        for input in ["5", "3", "100", "2"] { phone.type(input) }  // cancel returns to the main menu
        #expect(phone.last.text.hasPrefix(words.welcome))
        for input in ["5", "3", "100", "1"] { phone.type(input) }
        phone.type("2580", secret: true)
        #expect(wallet.customers["254712345678"]?.savings == 120_000)
        #expect(wallet.customers["254712345678"]?.balance == 480_000)
    }

    @Test(arguments: ["en", "sw"]) func myAccountStatementChangePINAndLanguage(language: String) {
        var (phone, wallet) = self.phone(language)
        phone.dial()
        phone.type("7")
        phone.type("1")
        #expect(phone.type("2580", secret: true).contains("21/11 Sent KES 500"))

        phone.dial()
        for input in ["7", "2"] { phone.type(input) }
        phone.type("2580", secret: true)
        phone.type("7391", secret: true)
        #expect(phone.type("7392", secret: true).hasPrefix(language == "sw" ? "PIN hazikulingana." : "The PINs did not match."))
        phone.type("7391", secret: true)
        #expect(phone.type("7391", secret: true).contains(language == "sw" ? "imebadilishwa" : "has been changed"))
        #expect(wallet.customers["254712345678"]?.pin == "7391")

        phone.dial()
        for input in ["7", "3"] { phone.type(input) }
        let other = language == "sw" ? "1" : "2"
        let saved = phone.type(other)
        #expect(saved == (language == "sw" ? "Language saved." : "Lugha imehifadhiwa."), "the new language shows at once")
        #expect(wallet.customers["254712345678"]?.language == (language == "sw" ? "en" : "sw"))
    }

    @Test(arguments: ["en", "sw"]) func helpAndTooManyWrongInputs(language: String) {
        let words = Words.of(language)
        var (phone, _) = self.phone(language)
        phone.dial()
        #expect(phone.type("8").contains("0800 720 000"))
        phone.dial()
        phone.type("9")
        phone.type("x")
        #expect(phone.type("12").hasPrefix(words.tooMany))
        #expect(phone.ended)
    }

    @Test(arguments: ["en", "sw"]) func threeWrongPINsLockAndTheNextSessionSaysSo(language: String) {
        var (phone, _) = self.phone(language)
        phone.dial()
        phone.type("1")
        phone.type("1111", secret: true)
        phone.type("1112", secret: true)
        #expect(phone.type("1113", secret: true).contains(Words.of(language).locked))
        #expect(phone.dial().contains(Words.of(language).locked), "the start route sends a locked wallet to the locked screen")
    }

    @Test(arguments: ["en", "sw"]) func tighterBudgetPagesTheMainMenuWithMoreAndBack(language: String) throws {
        // An operator whose network allows only 60 characters sees the same journeys, paged.
        var document = self.graph.document
        document.settings.pageBudget = 60
        let engine = Engine(graph: try MenuGraph(document: document), sealer: TestSealer())
        let words = Words.of(language)
        let wallet = FakeWallet()
        wallet.register("254712345678", language: language)
        var phone = Phone(engine: engine, wallet: wallet)
        let first = phone.dial()
        #expect(first.hasPrefix(words.welcome) && first.contains(words.more))
        var seen = first
        while phone.last.text.contains(words.more) { seen += "\n" + phone.type("98") }
        for number in 1...8 { #expect(seen.contains("\(number). "), "option \(number) is on some page") }
        // Numbers stay global across pages: 7 is My Account wherever it shows.
        #expect(phone.type("7").contains(words.back))
        #expect(phone.type("0").hasPrefix(words.welcome), "back returns to the main menu's first page")
        // A wrong choice on a later page: the first page again, with the notice on it.
        _ = phone.type("98")
        #expect(phone.type("x").hasPrefix(words.invalid), "the notice shows wherever the wrong choice was made")
    }

    @Test(arguments: ["en", "sw"]) func dialInShortcutsOpenTheirScreenAfterTheProfileAndStillAskForConfirmationAndPIN(language: String) {
        let words = Words.of(language)
        let en = language == "en"
        var (phone, wallet) = self.phone(language)
        // *384*96*1#: straight to the balance's PIN.
        #expect(phone.dial(code: "*384*96*1#").hasPrefix(en ? "Enter your 4-digit PIN" : "Weka PIN yako ya tarakimu 4"))
        #expect(phone.type("2580", secret: true).contains(words.balance))

        // *384*96*4*0722000111*500#: Send Money with recipient and amount filled, then the same
        // confirmation and PIN as by the menus.
        let confirm = phone.dial(code: "*384*96*4*0722000111*500#")
        #expect(confirm.contains("0722***111") && confirm.contains(words.confirm), "\(confirm)")
        _ = phone.type("1")
        #expect(phone.type("2580", secret: true).contains(words.sent))
        #expect(wallet.requests.filter { $0.action == "wallet.send" }.count == 1)

        // Bad digits: the screen those digits belong to, with its error; then on as by the menus,
        // and back goes home.
        let wrong = phone.dial(code: "*384*96*4*07*500#")
        #expect(wrong.hasPrefix(en ? "Enter a Safaricom or Airtel number" : "Weka nambari ya simu, k.m."), "\(wrong)")
        #expect(phone.last.screen == "send.to")
        #expect(phone.type("0722000111").hasPrefix(en ? "Enter amount to send (KES)" : "Weka kiasi cha kutuma (KES)"))
        _ = phone.type("0")
        _ = phone.type("0")
        #expect(phone.last.screen == "main", "back twice reaches home")

        // An extension no shortcut knows, or none: home, as the bare code.
        #expect(phone.dial(code: "*384*96*9*9#").contains(words.welcome))
        #expect(phone.dial(code: "*384*96#").contains(words.welcome))
    }

    @Test func aShortcutWaitsForRegistrationFirst() {
        let wallet = FakeWallet()
        var phone = Phone(engine: self.engine, wallet: wallet, msisdn: "254799000001")
        #expect(phone.dial(code: "*384*96*1#").contains("Enter your full name"), "registration comes before any shortcut")
    }
}
