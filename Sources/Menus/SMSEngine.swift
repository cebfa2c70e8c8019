import Basics

/// Reads SMS commands (`BAL`, `TUMA 0712345678 500 1234`) with the same validators and actions
/// as the USSD journeys, and words the replies. Pure, like ``Engine``.
public struct SMSEngine: Sendable {
    public let graph: MenuGraph
    /// Whose numbers a phone-number argument accepts.
    public let plan: NumberingPlan

    public init(graph: MenuGraph, plan: NumberingPlan = .kenya) {
        self.graph = graph
        self.plan = plan
    }

    /// What to do with one incoming message.
    public enum Step: Sendable, Hashable {
        /// Run the action; word the outcome with ``reply(to:result:language:variables:)``.
        case perform(command: String, request: ActionRequest, language: String, variables: [String: String])
        /// Reply at once (help, or the command's usage after bad arguments).
        case reply(String)
    }

    /// Interprets `text` from a sender whose preferred language may be known; the keyword's own
    /// language wins when the sender's is unknown. `context` carries e.g. the sender's `msisdn`.
    public func interpret(_ text: String, language preferred: String? = nil, context: [String: String] = [:]) -> Step {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).map(String.init)
        let fallback = preferred.flatMap { self.graph.languages.contains($0) ? $0 : nil } ?? self.graph.defaultLanguage
        guard let sms = self.graph.document.sms, let keyword = words.first?.uppercased() else {
            return .reply(self.graph.render("sms.help", fallback, context))
        }
        for command in sms.commands {
            guard let language = self.graph.languages.first(where: { (command.keywords[$0] ?? []).contains { $0.uppercased() == keyword } }) else {
                continue
            }
            let replyLanguage = preferred.flatMap { self.graph.languages.contains($0) ? $0 : nil } ?? language
            let given = Array(words.dropFirst())
            let expected = command.arguments ?? []
            var variables = context
            var secrets: Set<String> = []
            guard given.count == expected.count else {
                return .reply(self.graph.render("sms.\(command.name).usage", replyLanguage, variables))
            }
            for (argument, word) in zip(expected, given) {
                guard let value = argument.validator.validate(word, plan: self.plan, currency: self.graph.currency) else {
                    return .reply(self.graph.render("sms.\(command.name).usage", replyLanguage, variables))
                }
                variables[argument.variable] = value
                if argument.secret == true { secrets.insert(argument.variable) }
            }
            var arguments: [String: String] = [:]
            var secretArguments: Set<String> = []
            for (name, _) in command.actionArguments ?? [:] {
                let key = "sms.\(command.name).argument.\(name)"
                arguments[name] = self.graph.render(key, replyLanguage, variables)
                if self.graph.texts[key]?.fallback.variables.contains(where: secrets.contains) == true { secretArguments.insert(name) }
            }
            for secret in secrets { variables[secret] = nil }
            return .perform(
                command: command.name,
                request: ActionRequest(action: command.action, arguments: arguments, secretArguments: secretArguments),
                language: replyLanguage,
                variables: variables
            )
        }
        return .reply(self.graph.render("sms.help", fallback, context))
    }

    /// `text` fit to store and log: the words a command declares secret (the PIN) become `****`.
    /// When the words do not match a command's shape, every word of four to six digits is masked,
    /// since one of them may still be a PIN.
    public func masked(_ text: String) -> String {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }).map(String.init)
        var secret = Set<Int>()
        if let keyword = words.first?.uppercased(),
            let command = self.graph.document.sms?.commands.first(where: { $0.keywords.values.contains { $0.contains { $0.uppercased() == keyword } } }),
            words.count == (command.arguments?.count ?? 0) + 1
        {
            for (index, argument) in (command.arguments ?? []).enumerated() where argument.secret == true { secret.insert(index + 1) }
        } else {
            // Not a command's shape: any run of four to six digits, even glued to a word
            // (`BAL1234`), may be a PIN.
            return words.map(Self.maskingDigitRuns).joined(separator: " ")
        }
        return words.enumerated().map { secret.contains($0.offset) ? "****" : $0.element }.joined(separator: " ")
    }

    private static func maskingDigitRuns(_ word: String) -> String {
        var out = ""
        var run = ""
        func flush() {
            out += (4...6).contains(run.count) ? "****" : run
            run = ""
        }
        for character in word {
            if character.isASCIIDigit {
                run.append(character)
            } else {
                flush()
                out.append(character)
            }
        }
        flush()
        return out
    }

    /// The reply to a command once its action ran; `variables` are those ``interpret`` returned.
    public func reply(to command: String, result: ActionResult, language: String, variables: [String: String]) -> String {
        switch result {
        case .success(let values):
            return self.graph.render("sms.\(command).reply", language, variables.merging(values) { $1 })
        case .failure(let code, let values):
            let merged = variables.merging(values) { $1 }
            for key in ["sms.\(command).errors.\(code)", "sms.errors.\(code)", "sms.\(command).errors.*", "sms.errors.*"]
            where self.graph.texts[key] != nil {
                return self.graph.render(key, language, merged)
            }
            return self.graph.systemText("failure", language)
        }
    }
}
