import Basics
import Foundation
import Menus
import Testing

/// One small broken file per class of problem `menus lint` catches.
@Suite struct LintTests {
    static let actions = [
        ActionSpec(name: "wallet.balance", arguments: ["msisdn", "pin"], results: ["balance": .init(maxLength: 12)], errors: ["wrong_pin", "locked"]),
        ActionSpec(name: "wallet.profile", arguments: ["msisdn"], results: ["name": .init(maxLength: 20)], errors: ["not_registered"]),
    ]

    /// A clean two-language file; each test breaks one thing.
    static func base() -> [String: Any] {
        [
            "version": 1, "serviceCodes": ["*384*96#"], "languages": ["en", "sw"], "defaultLanguage": "en",
            "settings": ["pageBudget": 160], "start": "main", "context": ["msisdn": ["maxLength": 12]],
            "screens": [
                "main": [
                    "type": "menu", "text": ["en": "Main", "sw": "Menyu"],
                    "options": [
                        ["label": ["en": "Balance", "sw": "Salio"], "next": "pin"],
                        ["label": ["en": "Help", "sw": "Msaada"], "next": "help"],
                    ],
                ],
                "pin": [
                    "type": "input", "text": ["en": "PIN", "sw": "PIN"], "variable": "pin", "validator": ["type": "pin"],
                    "error": ["en": "4 digits", "sw": "tarakimu 4"], "secret": true, "next": "balance",
                ],
                "balance": [
                    "type": "action", "action": "wallet.balance", "arguments": ["msisdn": "{msisdn}", "pin": "{pin}"], "next": "show",
                    "errors": ["wrong_pin": "help", "locked": "help"],
                ],
                "show": ["type": "end", "text": ["en": "Balance {balance|amount}", "sw": "Salio {balance|amount}"]],
                "help": ["type": "end", "text": ["en": "Call us", "sw": "Tupigie"]],
            ],
        ]
    }

    static func lint(market: Market = .kenya, _ change: (inout [String: Any]) -> Void) throws -> [String] {
        var document = base()
        change(&document)
        let data = try JSONSerialization.data(withJSONObject: document)
        return try MenuGraph.load(data: data, market: market).lint(actions: actions).map(\.description)
    }

    /// A text that names a currency is refused (it would greet another market in shillings);
    /// `{currency}` and `{mobileMoney}` are the deployment's, known everywhere.
    @Test func aCurrencyCodeWrittenIntoATextIsRefused() throws {
        let named = try Self.lint { document in
            Self.screens(&document) { $0["show"]!["text"] = ["en": "Balance (KES) {balance|amount}", "sw": "Salio {balance|amount} GHS"] }
        }
        #expect(named == [
            "show.text: names the currency GHS: write {currency} (the deployment's, CURRENCY) or show amounts with {…|amount}",
            "show.text: names the currency KES: write {currency} (the deployment's, CURRENCY) or show amounts with {…|amount}",
        ])
        let constants = try Self.lint { document in
            Self.screens(&document) { $0["show"]!["text"] = ["en": "Balance ({currency}) {balance|amount} in {mobileMoney}", "sw": "Salio {balance|amount} ({currency})"] }
        }
        #expect(constants.isEmpty, "\(constants)")
        // Words that merely contain three capitals are not codes.
        let words = try Self.lint { document in
            Self.screens(&document) { $0["show"]!["text"] = ["en": "PIN OK KESHO {balance|amount}", "sw": "Salio {balance|amount}"] }
        }
        #expect(words.isEmpty, "\(words)")
        // A variable may not take a constant's name: the deployment's value would hide it.
        let shadowed = try Self.lint { document in
            Self.screens(&document) { screens in
                var options = screens["main"]!["options"] as! [[String: Any]]
                options[1]["set"] = ["mobileMoney": "Airtel"]
                screens["main"]!["options"] = options
            }
        }
        #expect(shadowed.contains("main: sets {mobileMoney}, which is the deployment's own (CURRENCY, MOBILE_MONEY): choose another name"), "\(shadowed)")
    }

    /// The worst case of a screen is measured with the longest amount the deployment's currency can
    /// show: a text that fits with Uganda francs' (`UGX 999,999,999,999`) is over the budget with
    /// shillings' cents (`KES 9,999,999,999.99`), and `{mobileMoney}` counts as the rail's name.
    @Test func pagesAreMeasuredWithTheCurrencysLongestAmount() throws {
        func lint(_ market: Market) throws -> [String] {
            try Self.lint(market: market) { document in
                // 160 characters with a 19-character amount.
                let text = "Balance {balance|amount}" + String(repeating: "x", count: 160 - 8 - 19)
                Self.screens(&document) { $0["show"]!["text"] = ["en": text, "sw": "Salio {balance|amount}"] }
            }
        }
        #expect(try lint(Market(currency: Currency(code: "UGX")!, mobileMoney: "MoMo")).isEmpty)
        let kenya = try lint(.kenya)
        #expect(kenya == ["show: text can reach 161 septets in en, over the budget of 160"], "\(kenya)")
        #expect(try lint(Market(currency: Currency(code: "GHS", fractions: true)!, mobileMoney: "MoMo")).count == 1)
    }

    static func screens(_ document: inout [String: Any], _ change: (inout [String: [String: Any]]) -> Void) {
        var screens = document["screens"] as! [String: [String: Any]]
        change(&screens)
        document["screens"] = screens
    }

    /// An error may set variables for its screen (a cooling-off names when it ends): lint knows
    /// them from the action's contract, counts their length in the page budget, and still reports
    /// a variable no error or screen sets.
    @Test func anErrorScreenMayShowWhatItsErrorSets() throws {
        var document = Self.base()
        Self.screens(&document) { screens in
            screens["balance"]!["errors"] = ["wrong_pin": "help", "locked": "locked"]
            screens["locked"] = ["type": "end", "text": ["en": "Locked until {until}", "sw": "Imefungwa hadi {until}"]]
        }
        let graph = try MenuGraph.load(data: try JSONSerialization.data(withJSONObject: document))
        let setting = [
            ActionSpec(
                name: "wallet.balance", arguments: ["msisdn", "pin"], results: ["balance": .init(maxLength: 12)], errors: ["wrong_pin", "locked"],
                errorResults: ["locked": ["until": .init(maxLength: 12)]]),
            Self.actions[1],
        ]
        #expect(graph.lint(actions: setting).isEmpty, "\(graph.lint(actions: setting))")
        #expect(graph.lint(actions: Self.actions).map(\.description) == ["locked: text uses {until}, which no earlier screen or action can have set"])
        // Its longest value counts towards the page budget.
        let long = [
            ActionSpec(
                name: "wallet.balance", arguments: ["msisdn", "pin"], results: ["balance": .init(maxLength: 12)], errors: ["wrong_pin", "locked"],
                errorResults: ["locked": ["until": .init(maxLength: 200)]]),
            Self.actions[1],
        ]
        #expect(graph.lint(actions: long).contains { $0.description.hasPrefix("locked: text can reach") })
    }

    @Test func tariffsAreRisingBandsWithFeesBelowTheirAmountsCoveringEverySendAmount() throws {
        // A send screen whose amounts go up to 250,000.
        func send(_ document: inout [String: Any]) {
            Self.screens(&document) { screens in
                screens["main"]!["options"] = [
                    ["label": ["en": "Balance", "sw": "Salio"], "next": "pin"], ["label": ["en": "Send", "sw": "Tuma"], "next": "amount"],
                ]
                screens["amount"] = [
                    "type": "input", "text": ["en": "Amount", "sw": "Kiasi"], "variable": "amount", "validator": ["type": "amount", "min": 10, "max": 250_000],
                    "error": ["en": "No", "sw": "Hapana"], "next": "do",
                ]
                screens["do"] = [
                    "type": "action", "action": "wallet.send", "arguments": ["amount": "{amount}"], "next": "help", "errors": ["limit_exceeded": "help"],
                ]
            }
        }
        let withSend = Self.actions + [ActionSpec(name: "wallet.send", arguments: ["amount"], errors: ["limit_exceeded"])]
        func lint(_ tariffs: [String: Any]) throws -> [String] {
            var document = Self.base()
            send(&document)
            document["tariffs"] = tariffs
            return try MenuGraph.load(data: try JSONSerialization.data(withJSONObject: document)).lint(actions: withSend).map(\.description)
        }
        #expect(try lint(["p2p": [["upTo": 100, "fee": 0], ["upTo": 250_000, "fee": 100]]]) == [])
        #expect(try lint(["p2p": [["upTo": 100, "fee": 0], ["upTo": 200_000, "fee": 100]]]) == ["tariffs.p2p: amount allows amounts up to 250000, above the last band (200000)"])
        #expect(try lint(["p2p": [["upTo": 500, "fee": 0], ["upTo": 400, "fee": 5], ["upTo": 250_000, "fee": 9]]]).contains {
            $0.hasPrefix("tariffs.p2p: band 2: upTo must rise")
        })
        #expect(try lint(["p2p": [["upTo": 100, "fee": 101], ["upTo": 250_000, "fee": 100]]]) == [
            "tariffs.p2p: band 1: the fee 101 must be from 0 to less than the band's smallest amount (10)"
        ])
        #expect(try lint(["p2p": [["upTo": 100, "fee": 0], ["upTo": 250_000, "fee": -1]]]).count == 1)
        #expect(try lint(["save": [["upTo": 250_000, "fee": 30]]]) == ["tariffs.save: fees on save are not supported (known: p2p, withdrawal)"])
        // The first band starts at the lowest amount a validator lets through (10 here), not at 1.
        #expect(try lint(["p2p": [["upTo": 100, "fee": 9], ["upTo": 250_000, "fee": 100]]]) == [])
        #expect(try lint(["p2p": [] as [Any]]) == ["tariffs.p2p: a tariff needs at least one band"])
        // The fee an amount pays: the first band it fits; nothing above the last.
        let tariff = Tariff(["p2p": [.init(upTo: 100, fee: 0), .init(upTo: 500, fee: 7)]])
        #expect(tariff.fee("p2p", cents: 10_000) == 0 && tariff.fee("p2p", cents: 10_001) == 700 && tariff.fee("p2p", cents: 50_001) == nil)
        #expect(tariff.fee("save", cents: 99_999_999) == 0, "a kind without a tariff is free")
    }

    @Test func tiersNameTheirDefaultAndKeepTheirLimitsInOrder() throws {
        func tiers(_ section: [String: Any]) throws -> [String] {
            try Self.lint { $0["tiers"] = section }
        }
        let basic: [String: Any] = ["perTransaction": 70_000, "daily": 150_000, "maxBalance": 100_000]
        #expect(try tiers(["default": "basic", "levels": ["basic": basic]]) == [])
        let uncapped: [String: Any] = ["perTransaction": 250_000, "daily": 500_000]
        #expect(try tiers(["default": "standard", "levels": ["basic": basic, "standard": uncapped]]) == [], "a tier may have no balance cap")
        #expect(try tiers(["default": "gold", "levels": ["basic": basic]]) == ["tiers.default: tier gold is not among the levels"])
        #expect(try tiers(["default": "basic", "levels": ["basic": basic, "Full Tier": basic]]) == [
            "tiers.levels.Full Tier: a tier name is 1 to 30 lowercase letters, digits or _, starting with a letter"
        ])
        let upsideDown: [String: Any] = ["perTransaction": 70_000, "daily": 50_000, "maxBalance": 60_000]
        #expect(try tiers(["default": "basic", "levels": ["basic": upsideDown]]) == [
            "tiers.levels.basic: daily (50000) is below perTransaction (70000)", "tiers.levels.basic: maxBalance (60000) is below perTransaction (70000)",
        ])
        let zero: [String: Any] = ["perTransaction": 0, "daily": 50_000, "maxBalance": 60_000]
        #expect(try tiers(["default": "basic", "levels": ["basic": zero]]) == ["tiers.levels.basic: limits must be from 1 to 100000000 shillings"])
    }

    @Test func shortcutsOpenScreensThatExistThroughValidatedInputsAndNeverAPIN() throws {
        func shortcuts(_ list: [[String: String]]) throws -> [String] {
            try Self.lint { $0["shortcuts"] = list }.filter { $0.hasPrefix("shortcuts") }
        }
        #expect(try shortcuts([["dial": "1", "screen": "pin"]]) == [], "a clean shortcut")
        #expect(try shortcuts([["dial": "1", "screen": "nowhere"]]) == ["shortcuts[0]: screen nowhere does not exist"])
        #expect(try shortcuts([["dial": "1*{show}", "screen": "pin"]]) == ["shortcuts[0]: {show} must be an input screen with a validator"])
        #expect(try shortcuts([["dial": "2*{pin}", "screen": "show"]]) == ["shortcuts[0]: {pin} holds a secret: a PIN is never dialled"])
        #expect(try shortcuts([["dial": "1#", "screen": "pin"]]) == ["shortcuts[0]: dial must be up to 8 *-separated segments, each digits or {an input screen} (got 1#)"])
        #expect(try shortcuts([["dial": "1", "screen": "pin"], ["dial": "1", "screen": "show"]]) == [
            "shortcuts[1]: dial 1 is also shortcuts[0]'s: only the first would ever open"
        ])
        let reserved = try Self.lint { document in
            Self.screens(&document) { $0["pin"]!["variable"] = "_shortcut" }
        }
        #expect(reserved.contains("pin: variable _shortcut starts with _, which the engine reserves"), "\(reserved)")
    }

    @Test func theBaseFileIsClean() throws {
        #expect(try Self.lint { _ in } == [])
    }

    @Test func smsNoticesAreCountedInSegmentsAtTheirWorstCase() throws {
        func notices(_ notifications: [String: Any]) -> (inout [String: Any]) -> Void {
            { document in
                document["sms"] = ["help": ["en": "Help", "sw": "Msaada"], "commands": [] as [Any], "notifications": notifications]
            }
        }
        let fine = try Self.lint(notices(["sent": ["text": ["en": "Sent {amount|amount} to {to|phone}", "sw": "Umetuma {amount|amount} kwa {to|phone}"], "params": ["amount": ["maxLength": 8], "to": ["maxLength": 12]]]]))
        #expect(fine == [])
        let long = String(repeating: "x", count: 140)
        let over = try Self.lint(notices(["sent": ["text": ["en": long + " {name}", "sw": "Umetuma"], "params": ["name": ["maxLength": 30]]]]))
        #expect(over == ["sms.notifications.sent: can reach 171 septets in en, over 1 segment (160)"])
        let allowedTwo = try Self.lint(notices(["sent": ["text": ["en": long + " {name}", "sw": "Umetuma"], "params": ["name": ["maxLength": 30]], "segments": 2]]))
        #expect(allowedTwo == [])
        let unicode = try Self.lint(notices(["sent": ["text": ["en": "Hi {name}", "sw": "Habari {name}"], "params": ["name": ["maxLength": 66, "unicode": true]]]]))
        #expect(unicode == ["sms.notifications.sent: can reach 73 UCS-2 characters in sw, over 1 segment (70)"], "English fits (69), Swahili does not")
        let unknown = try Self.lint(notices(["sent": ["text": ["en": "Hi {who}", "sw": "Habari {who}"]]]))
        #expect(unknown.contains("sms.notifications.sent: {who} has no entry in params (its longest value)"))
        let three = try Self.lint(notices(["sent": ["text": "Hi", "segments": 3]]))
        #expect(three == ["sms.notifications.sent: segments must be 1 or 2"])
    }

    @Test func theShippedNoticesEachFitOneSegment() throws {
        let graph = try MenuGraph.load(contentsOf: defaultMenusURL())
        #expect(graph.lint(actions: []).filter { $0.location.hasPrefix("sms.notifications") }.isEmpty)
        let names = Set((graph.document.sms?.notifications ?? [:]).keys)
        for template in ["sent", "received", "deposit_received", "deposit_failed", "withdrawal_paid", "withdrawal_failed", "saved", "pin_changed", "account_locked", "ussd_result"] {
            #expect(names.contains(template), "no wording for \(template)")
        }
        #expect(graph.notification("deposit_failed", language: "sw", params: ["amount": "50000", "reason": "cancelled"]) == "Ulighairi ombi la M-Pesa la KES 500. Hakuna kilichotolewa.")
        #expect(graph.notification("deposit_failed", language: "en", params: ["amount": "50000", "reason": "other"])?.hasPrefix("Your deposit of KES 500") == true)
        #expect(graph.notification("nonsense", language: "en", params: [:]) == nil)
    }

    @Test func brokenNextTarget() throws {
        let problems = try Self.lint { Self.screens(&$0) { $0["pin"]!["next"] = "nowhere" } }
        #expect(problems.contains("pin: next leads to nowhere, which does not exist"))
    }

    @Test func unreachableScreen() throws {
        let problems = try Self.lint { Self.screens(&$0) { $0["orphan"] = ["type": "end", "text": "Bye"] } }
        #expect(problems == ["orphan: unreachable from the start screen"])
    }

    @Test func deadEnd() throws {
        let problems = try Self.lint {
            Self.screens(&$0) {
                $0["main"]!["options"] = [["label": ["en": "Loop", "sw": "Mzunguko"], "next": "loop"]]
                $0["loop"] = ["type": "route", "routes": [["when": ["variable": "x", "exists": true], "next": "loop"]], "otherwise": "loop"]
            }
        }
        #expect(problems.contains("loop: dead end: no end screen can be reached from here"))
        let empty = try Self.lint { Self.screens(&$0) { $0["main"]!["options"] = [] } }
        #expect(empty.contains("main: dead end: a menu screen with nowhere to go"))
    }

    @Test func duplicateAndEmptyOptions() throws {
        let problems = try Self.lint {
            Self.screens(&$0) {
                $0["main"]!["options"] = [
                    ["label": ["en": "Balance", "sw": "Salio"], "next": "pin"],
                    ["label": ["en": "balance", "sw": "Salio 2"], "next": "help"],
                    ["label": ["en": " ", "sw": "Tupu"], "next": "help"],
                ]
            }
        }
        #expect(problems.contains("main: options 1 and 2 have the same label \"balance\" in en"))
        #expect(problems.contains("main: option 3 has an empty label in en"))
    }

    @Test func unknownAction() throws {
        let problems = try Self.lint { Self.screens(&$0) { $0["balance"]!["action"] = "wallet.teleport" } }
        #expect(problems.contains("balance: unknown action wallet.teleport"))
    }

    @Test func unmappedAndImpossibleErrorCodes() throws {
        let problems = try Self.lint { Self.screens(&$0) { $0["balance"]!["errors"] = ["wrong_pin": "help", "insufficient_funds": "help"] } }
        #expect(problems.contains("balance: error locked of wallet.balance is not mapped"))
        #expect(problems.contains("balance: error insufficient_funds is mapped but wallet.balance never fails with it"))
        let caught = try Self.lint { Self.screens(&$0) { $0["balance"]!["errors"] = ["*": "help"] } }
        #expect(caught == [], "a * mapping catches every code")
    }

    @Test func missingTranslation() throws {
        let problems = try Self.lint { Self.screens(&$0) { $0["help"]!["text"] = ["en": "Call us"] } }
        #expect(problems == ["help: text has no sw translation"])
    }

    @Test func variableNoEarlierScreenCanHaveSet() throws {
        let problems = try Self.lint { Self.screens(&$0) { $0["help"]!["text"] = ["en": "Call us, {name}", "sw": "Tupigie, {name}"] } }
        #expect(problems == ["help: text uses {name}, which no earlier screen or action can have set"])
    }

    @Test func secretUsedAnywhereButTheFollowingAction() throws {
        let echoed = try Self.lint { Self.screens(&$0) { $0["show"]!["text"] = ["en": "Your PIN {pin}", "sw": "PIN yako {pin}"] } }
        #expect(echoed.contains { $0.hasPrefix("show: secret pin is used in text") })
        let notFollowed = try Self.lint {
            Self.screens(&$0) {
                $0["pin"]!["next"] = "confirm"
                $0["confirm"] = [
                    "type": "menu", "text": ["en": "Sure?", "sw": "Una uhakika?"],
                    "options": [["label": ["en": "Yes", "sw": "Ndiyo"], "next": "balance"]],
                ]
            }
        }
        #expect(notFollowed.contains("pin: secret pin must be followed directly by the action that uses it"))
        #expect(notFollowed.contains { $0.hasPrefix("balance: secret pin is used in argument pin") })
    }

    @Test func worstCaseLengthOverTheBudgetPerLanguage() throws {
        let problems = try Self.lint {
            Self.screens(&$0) {
                $0["show"]!["text"] = [
                    "en": "Balance {balance|amount}",
                    "sw": String(repeating: "Salio lako ni ", count: 12) + "{balance|amount}",
                ]
            }
        }
        #expect(problems.count == 1)
        #expect(problems.first?.hasPrefix("show: text can reach") == true && problems.first?.contains("in sw, over the budget of 160") == true)
        let unicode = try Self.lint { Self.screens(&$0) { $0["help"]!["text"] = ["en": "Call us ☎ " + String(repeating: "x", count: 70), "sw": "Tupigie"] } }
        #expect(unicode == ["help: text can reach 80 UCS-2 characters in en, over the budget of 70"])
    }

    @Test func loadErrorsNameTheScreenOrPosition() throws {
        var document = Self.base()
        Self.screens(&document) { $0["pin"]!["validator"] = ["type": "fingerprint"] }
        let error = #expect(throws: MenuLoadError.self) { try MenuGraph.load(data: JSONSerialization.data(withJSONObject: document)) }
        #expect(error?.location == "screens.pin.validator.type")
        #expect(error?.problem.contains("unknown validator fingerprint") == true)

        Self.screens(&document) { $0["pin"]!["validator"] = ["type": "pin"]; $0["help"]!["text"] = "Hi {name" }
        let template = #expect(throws: MenuLoadError.self) { try MenuGraph.load(data: JSONSerialization.data(withJSONObject: document)) }
        #expect(template?.description == "help.text: bad template: a { has no closing }")

        let syntax = #expect(throws: MenuLoadError.self) { try MenuGraph.load(data: Data("{\"version\": 1,\n \"screens\": [}".utf8)) }
        #expect(syntax?.description.contains("line 2") == true, "\(String(describing: syntax))")
    }
}
