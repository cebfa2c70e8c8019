
extension MenuGraph {
    /// Checks the journeys against the gateway's action registry. Empty means clean; the gateway
    /// refuses to start otherwise.
    /// `hopDeadlineMilliseconds`: the longest an `http` action may take, retries included (the
    /// gateway passes `HOP_DEADLINE_MS`). `backendVariables`: which variables a backend's `env:`
    /// may name (the gateway passes `BACKEND_ENV_ALLOW` and its own settings).
    public func lint(actions: [ActionSpec], hopDeadlineMilliseconds: Int = 4000, backendVariables: BackendVariables = BackendVariables()) -> [LintProblem] {
        var linter = Linter(
            graph: self, actions: Dictionary(actions.map { ($0.name, $0) }) { first, _ in first }, hopDeadline: hopDeadlineMilliseconds,
            backendVariables: backendVariables)
        linter.run()
        return linter.problems.sorted { ($0.location, $0.message) < ($1.location, $1.message) }
    }
}

/// One lint run: the document, what the gateway offers it, and the problems found. Its checks
/// live by subject in the `Lint+*.swift` files.
struct Linter {
    let graph: MenuGraph
    let actions: [String: ActionSpec]
    let hopDeadline: Int
    let backendVariables: BackendVariables
    var problems: [LintProblem] = []
    var document: MenuDocument { self.graph.document }

    mutating func report(_ location: String, _ message: String) {
        self.problems.append(LintProblem(location: location, message: message))
    }

    mutating func run() {
        self.checkTargets()
        self.checkReachability()
        self.checkDeadEnds()
        self.checkOptions()
        self.checkActions()
        self.checkTranslations()
        self.checkCurrencyCodes()
        self.checkVariablesAndSecrets()
        self.checkLengths()
        self.checkSMS()
        self.checkTariffs()
        self.checkTiers()
        self.checkShortcuts()
        self.checkBackends()
        self.checkLists()
    }

    // MARK: Dial-in shortcuts

    mutating func checkShortcuts() {
        // Variables starting with `_` are the engine's own (a dialled shortcut waits in one).
        for (id, screen) in self.document.screens.sorted(by: { $0.key < $1.key }) {
            let names = [screen.variable].compactMap { $0 } + (screen.options ?? []).flatMap { ($0.set ?? [:]).keys.sorted() }
            for name in names where name.hasPrefix("_") { self.report(id, "variable \(name) starts with _, which the engine reserves") }
        }
        var seen: [String: Int] = [:]
        for (index, shortcut) in (self.document.shortcuts ?? []).enumerated() {
            let location = "shortcuts[\(index)]"
            guard let segments = shortcut.segments else {
                self.report(location, "dial must be up to 8 *-separated segments, each digits or {an input screen} (got \(shortcut.dial))")
                continue
            }
            if let first = seen[shortcut.dial] { self.report(location, "dial \(shortcut.dial) is also shortcuts[\(first)]'s: only the first would ever open") }
            seen[shortcut.dial] = seen[shortcut.dial] ?? index
            if self.graph.screen(shortcut.screen) == nil { self.report(location, "screen \(shortcut.screen) does not exist") }
            if shortcut.screen == self.graph.home { self.report(location, "opens the home screen, as the bare code does") }
            // The digits in the dial are what the user would type on these screens: each must
            // check them with a validator, and none may hold a secret (a PIN must never be dialled).
            for case .input(let id) in segments {
                guard let screen = self.graph.screen(id), screen.type == .input, screen.validator != nil, screen.variable != nil else {
                    self.report(location, "{\(id)} must be an input screen with a validator")
                    continue
                }
                if screen.secret == true { self.report(location, "{\(id)} holds a secret: a PIN is never dialled") }
            }
        }
    }

    // MARK: Tariffs and tiers

    /// The action that makes each kind of movement a tariff may charge.
    static let tariffActions = ["p2p": "wallet.send", "withdrawal": "mpesa.withdraw"]

    mutating func checkTariffs() {
        for (kind, bands) in (self.document.tariffs ?? [:]).sorted(by: { $0.key < $1.key }) {
            let location = "tariffs.\(kind)"
            guard Tariff.kinds.contains(kind) else {
                self.report(location, "fees on \(kind) are not supported (known: \(Tariff.kinds.sorted().joined(separator: ", ")))")
                continue
            }
            guard !bands.isEmpty else {
                self.report(location, "a tariff needs at least one band")
                continue
            }
            let action = Self.tariffActions[kind] ?? ""
            let amounts = self.amountRanges(for: action)
            // The smallest amount the first band can meet: the lowest any validator lets through.
            var previous = max(0, (amounts.map(\.1).min() ?? 1) - 1)
            for (index, band) in bands.enumerated() {
                if band.upTo <= previous || band.upTo > 100_000_000 {
                    self.report(location, "band \(index + 1): upTo must rise from band to band, within 1 to 100,000,000 (got \(band.upTo) after \(previous))")
                }
                // The smallest amount of the band is previous + 1: a fee must be less than it.
                if band.fee < 0 || band.fee > previous {
                    self.report(location, "band \(index + 1): the fee \(band.fee) must be from 0 to less than the band's smallest amount (\(previous + 1))")
                }
                previous = max(previous, band.upTo)
            }
            // Every amount the menus or SMS commands let through to the action has a fee.
            for (where_, _, largest) in amounts where largest > previous {
                self.report(location, "\(where_) allows amounts up to \(largest), above the last band (\(previous))")
            }
        }
    }

    /// Where each amount passed to `action` comes from, with the smallest and largest whole-shilling
    /// amounts its validator allows.
    func amountRanges(for action: String) -> [(String, Int, Int)] {
        var result: [(String, Int, Int)] = []
        for (_, screen) in self.document.screens where screen.type == .action && screen.action == action {
            guard let template = screen.arguments?["amount"], template.hasPrefix("{"), template.hasSuffix("}") else { continue }
            let variable = String(template.dropFirst().dropLast())
            for (inputID, input) in self.document.screens where input.type == .input && input.variable == variable {
                if case .amount(let min, let max) = input.validator { result.append((inputID, min, max)) }
            }
        }
        for command in self.document.sms?.commands ?? [] where command.action == action {
            guard let template = command.actionArguments?["amount"], template.hasPrefix("{"), template.hasSuffix("}") else { continue }
            let variable = String(template.dropFirst().dropLast())
            for argument in command.arguments ?? [] where argument.variable == variable {
                if case .amount(let min, let max) = argument.validator { result.append(("sms.\(command.name)", min, max)) }
            }
        }
        return result.sorted { $0.0 < $1.0 }
    }

    mutating func checkTiers() {
        // The fee screens name a kind the tariff knows.
        for (id, screen) in self.document.screens where screen.type == .action && screen.action == "wallet.fee" {
            let kind = screen.arguments?["kind"] ?? ""
            if !Tariff.kinds.contains(kind) { self.report(id, "wallet.fee's kind must be one of \(Tariff.kinds.sorted().joined(separator: ", ")) (got \(kind))") }
        }
        guard let tiers = self.document.tiers else { return }
        if tiers.levels[tiers.default] == nil { self.report("tiers.default", "tier \(tiers.default) is not among the levels") }
        for (name, limits) in tiers.levels.sorted(by: { $0.key < $1.key }) {
            let location = "tiers.levels.\(name)"
            if name.range(of: "^[a-z][a-z0-9_]{0,29}$", options: .regularExpression) == nil {
                self.report(location, "a tier name is 1 to 30 lowercase letters, digits or _, starting with a letter")
            }
            let ceiling = 100_000_000
            if !(1...ceiling).contains(limits.perTransaction) || !(1...ceiling).contains(limits.daily)
                || !(1...ceiling).contains(limits.maxBalance ?? 1)
            {
                self.report(location, "limits must be from 1 to \(ceiling) shillings")
            }
            if limits.daily < limits.perTransaction { self.report(location, "daily (\(limits.daily)) is below perTransaction (\(limits.perTransaction))") }
            if let maxBalance = limits.maxBalance, maxBalance < limits.perTransaction {
                self.report(location, "maxBalance (\(maxBalance)) is below perTransaction (\(limits.perTransaction))")
            }
        }
    }
}
