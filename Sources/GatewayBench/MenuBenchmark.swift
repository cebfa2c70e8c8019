import Basics
import Foundation
import GatewayActions
import Menus
import USSDGateway

/// Engine speed and load+lint time, for `gateway-bench menus`.
public enum MenuBenchmark {
    /// A sealer for the benchmark only; the gateway's own is keyed with its seal key.
    struct BenchSealer: SecretSealer {
        func seal(_ secret: String) -> String { String(secret.reversed()) }
    }

    /// Walks the send-money journey of `graph` `journeys` times; each journey is 8 engine steps
    /// (start, resume, 5 inputs, resume), with canned action results.
    public static func engineSteps(graph: MenuGraph, journeys: Int) -> ClientBenchmark.Result {
        let engine = Engine(graph: graph, sealer: BenchSealer())
        var steps = 0
        var checksum = 0
        let start = ContinuousClock.now
        for index in 0..<journeys {
            var step = engine.start(variables: ["msisdn": "254712345678"])
            steps += 1
            guard case .perform(_, let profile) = step else { fatalError("the journey did not start with the profile action") }
            step = engine.resume(profile, with: .success(["name": "Achieng", "language": "en", "status": "active"]))
            steps += 1
            for input in ["4", index % 2 == 0 ? "0722000111" : "0733000222", "500", "1", "2580"] {
                guard case .show(_, let state) = step else { fatalError("expected a page before input \(input)") }
                step = engine.advance(state, input: input)
                steps += 1
            }
            guard case .perform(_, let sending) = step else { fatalError("expected the send action") }
            step = engine.resume(sending, with: .success(["balance": "450000", "reference": "TX1"]))
            steps += 1
            if case .show(let page, _) = step { checksum &+= page.text.utf8.count }
        }
        let elapsed = ContinuousClock.now - start
        precondition(checksum > 0)
        return ClientBenchmark.Result(name: "menu engine steps", operations: steps, seconds: elapsed.inSeconds)
    }

    /// A generated file of `groups` x 4 screens (menu, input, action, end per group), chained.
    public static func generatedMenus(groups: Int) throws -> Data {
        var screens: [String: Any] = [:]
        for group in 0..<groups {
            let next = group + 1 < groups ? "menu\(group + 1)" : "end0"
            screens["menu\(group)"] = [
                "type": "menu", "text": ["en": "Group \(group), {name}", "sw": "Kundi \(group), {name}"],
                "options": [
                    ["label": ["en": "Pay", "sw": "Lipa"], "next": "input\(group)"],
                    ["label": ["en": "Next", "sw": "Inayofuata"], "next": next],
                    ["label": ["en": "Only if rich", "sw": "Tajiri tu"], "next": "end\(group)", "when": ["variable": "balance", "greaterThan": 1000]],
                ],
            ]
            screens["input\(group)"] = [
                "type": "input", "text": ["en": "Amount", "sw": "Kiasi"], "variable": "amount",
                "validator": ["type": "amount", "min": 10, "max": 250_000], "error": ["en": "10 to 250,000", "sw": "10 hadi 250,000"],
                "next": "action\(group)",
            ]
            screens["action\(group)"] = [
                "type": "action", "action": "wallet.profile", "arguments": ["msisdn": "{msisdn}"], "next": "end\(group)",
                "errors": ["*": "end\(group)"],
            ]
            screens["end\(group)"] = ["type": "end", "text": ["en": "Paid {amount|amount}, {name}", "sw": "Umelipa {amount|amount}, {name}"]]
        }
        screens["start"] = [
            "type": "action", "action": "wallet.profile", "arguments": ["msisdn": "{msisdn}"], "next": "menu0", "errors": ["*": "end0"],
        ]
        let document: [String: Any] = [
            "version": 1, "serviceCodes": ["*1#"], "languages": ["en", "sw"], "defaultLanguage": "en",
            "settings": ["pageBudget": 160], "start": "start", "context": ["msisdn": ["maxLength": 12]],
            "variables": ["balance": ["maxLength": 12]], "screens": screens,
        ]
        return try JSONSerialization.data(withJSONObject: document, options: [.sortedKeys])
    }

    /// Loads and lints `data` `runs` times; the median run in milliseconds.
    public static func loadAndLint(_ data: Data, runs: Int) throws -> (milliseconds: Double, problems: Int) {
        var times: [Duration] = []
        var problems = 0
        for _ in 0..<runs {
            let start = ContinuousClock.now
            let graph = try MenuGraph.load(data: data)
            problems = graph.lint(actions: ActionTable.specs).count
            times.append(ContinuousClock.now - start)
        }
        return (times.sorted()[times.count / 2].inSeconds * 1000, problems)
    }
}


