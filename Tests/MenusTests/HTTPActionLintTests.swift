import Basics
import Foundation
import Menus
import Testing

/// `http` actions and `list` screens: the path syntax, the engine's paged lists, and one broken
/// file per lint rule.
@Suite struct HTTPActionLintTests {
    /// LintTests' clean file plus a backend, an `http` action that fills a list, a list screen
    /// and an apply call.
    static func base() -> [String: Any] {
        var document = LintTests.base()
        document["backends"] = ["jobs": ["url": "env:JOBS_API_URL", "headers": ["X-Api-Key": "env:JOBS_API_KEY"]]]
        document["sms"] = [
            "help": ["en": "Help", "sw": "Msaada"], "commands": [] as [Any],
            "notifications": ["applied": ["text": ["en": "Applied: {title}", "sw": "Umeomba: {title}"], "params": ["title": ["maxLength": 20]]]],
        ]
        LintTests.screens(&document) { screens in
            screens["main"]!["options"] = [
                ["label": ["en": "Balance", "sw": "Salio"], "next": "pin"], ["label": ["en": "Jobs", "sw": "Kazi"], "next": "fetch"],
                ["label": ["en": "Help", "sw": "Msaada"], "next": "help"],
            ]
            screens["fetch"] = [
                "type": "action", "action": "http", "next": "list", "errors": ["*": "help"],
                "http": [
                    "backend": "jobs", "method": "GET", "path": "/jobs", "query": ["near": "{msisdn}"], "timeoutMs": 1500, "retries": 1,
                    "cacheSeconds": 60,
                    "list": [
                        "variable": "jobs", "path": "$.jobs[*]", "maxItems": 20,
                        "fields": ["id": ["path": "$.id", "maxLength": 8], "title": ["path": "$.title", "maxLength": 20]],
                    ],
                ],
            ]
            screens["list"] = [
                "type": "list", "text": ["en": "Jobs", "sw": "Kazi"], "items": "jobs", "item": "{title}", "variable": "job", "next": "apply",
                "empty": "help",
            ]
            screens["apply"] = [
                "type": "action", "action": "http", "next": "done",
                "errors": ["timeout": "help", "unavailable": "help", "rejected": "help", "bad_response": "help", "taken": "help"],
                "http": [
                    "backend": "jobs", "method": "POST", "path": "/jobs/{job.id}/applications", "body": ["msisdn": "{msisdn}"], "timeoutMs": 3000,
                    "status": ["409": "taken"], "notice": ["template": "applied", "params": ["title": "{job.title}"]],
                ],
            ]
            screens["done"] = ["type": "end", "text": ["en": "Applied for {job.title}", "sw": "Umeomba {job.title}"]]
        }
        return document
    }

    static func lint(hopDeadline: Int = 4000, _ change: (inout [String: [String: Any]], inout [String: Any]) -> Void) throws -> [String] {
        var document = Self.base()
        var screens = document["screens"] as! [String: [String: Any]]
        change(&screens, &document)
        document["screens"] = screens
        let data = try JSONSerialization.data(withJSONObject: document)
        return try MenuGraph.load(data: data).lint(actions: LintTests.actions, hopDeadlineMilliseconds: hopDeadline).map(\.description)
    }

    static func call(_ screens: inout [String: [String: Any]], _ id: String, _ change: (inout [String: Any]) -> Void) {
        var call = screens[id]!["http"] as! [String: Any]
        change(&call)
        screens[id]!["http"] = call
    }

    @Test func theCleanFileIsClean() throws {
        #expect(try Self.lint { _, _ in } == [])
    }

    @Test func pathsSelectValuesAndLists() throws {
        let json = JSONValue.parse(Array(#"{"jobs":[{"id":"a","pay":12},{"id":"b"}],"total":2,"meta":{"tags":["x","y"]}}"#.utf8))!
        #expect(JSONPath("$.total")?.value(in: json) == .integer(2))
        #expect(JSONPath("$.meta.tags[1]")?.value(in: json) == .string("y"))
        #expect(JSONPath("$.jobs[*].id")?.values(in: json) == [.string("a"), .string("b")])
        #expect(JSONPath("$.jobs[*].pay")?.values(in: json) == [.integer(12)], "an item without the field is skipped")
        #expect(JSONPath("$.missing[*]")?.values(in: json) == nil)
        #expect(JSONPath("$.jobs[*]")?.value(in: json) == nil, "a list path has no single value")
        for bad in ["jobs", "$.", "$..x", "$[a]", "$.a[*][*]", "$.a b", "$[-1]"] { #expect(JSONPath(bad) == nil, "\(bad)") }
    }

    @Test func backendsTakeURLsAndKeysFromTheEnvironmentOnly() throws {
        let problems = try Self.lint { _, document in
            document["backends"] = [
                "jobs": ["url": "https://jobs.example.com", "headers": ["X-Api-Key": "s3cret"], "breaker": ["failures": 0, "openSeconds": 30]]
            ]
        }
        #expect(problems.contains("backends.jobs: url must be env:NAME (the URL comes from the environment)"))
        #expect(problems.contains("backends.jobs: header X-Api-Key must be env:NAME: a secret is never written in menus.json"))
        #expect(problems.contains("backends.jobs: breaker needs failures from 1 to 100 and openSeconds from 1 to 3600"))
    }

    /// A backend's URL and headers leave the host: only variables meant for backends resolve.
    @Test func backendsAreGivenOnlyTheirOwnVariablesNeverTheGatewaysSecrets() throws {
        let problems = try Self.lint { _, document in
            document["backends"] = [
                "jobs": ["url": "env:JOBS_API_URL", "headers": ["X-Api-Key": "env:PIN_PEPPER"]],
                "payroll": ["url": "env:DATABASE_URL", "headers": ["Authorization": "env:BACKEND_PAYROLL_TOKEN"]],
            ]
        }
        let prefix = "is not a backend variable: names start with BACKEND_ or JOBS_API_, or are listed in BACKEND_ENV_ALLOW"
        #expect(problems.contains("backends.jobs: header X-Api-Key: env:PIN_PEPPER \(prefix)"), "\(problems)")
        #expect(problems.contains("backends.payroll: url: env:DATABASE_URL \(prefix)"), "\(problems)")
        #expect(!problems.contains { $0.contains("JOBS_API_URL") || $0.contains("BACKEND_PAYROLL_TOKEN") })

        // A name the deployment lists is allowed; one of the gateway's own never is, prefix or list.
        let variables = BackendVariables(allowed: ["PAYROLL_URL"], forbidden: ["DATABASE_URL", "BACKEND_SECRET_OF_OURS"])
        #expect(variables.permits("PAYROLL_URL") && variables.permits("JOBS_API_KEY") && variables.permits("BACKEND_X"))
        #expect(!variables.permits("DATABASE_URL") && !variables.permits("BACKEND_SECRET_OF_OURS") && !variables.permits("PIN_PEPPER"))
        #expect(variables.refusal("BACKEND_SECRET_OF_OURS") == "env:BACKEND_SECRET_OF_OURS is one of the gateway's own settings, which never leave it")
    }

    /// A backend's answer nests no deeper than a provider's callback may (checked before decoding).
    @Test func aBackendAnswerNestedDeeperThanACallbackMayIsABadResponse() throws {
        let call = try JSONDecoder().decode(
            MenuDocument.HTTPCall.self, from: Data(#"{"backend":"jobs","method":"GET","path":"/x","timeoutMs":1000,"results":{"name":{"path":"$.name","maxLength":20}}}"#.utf8))
        #expect(HTTPAnswer.read(Array(#"{"name":"Achieng"}"#.utf8), call) == .success(["name": "Achieng"]))
        let deep = String(repeating: "[", count: 17) + String(repeating: "]", count: 17)
        #expect(HTTPAnswer.read(Array(#"{"name":"x","deep":\#(deep)}"#.utf8), call) == .failure("bad_response"))
        let allowed = String(repeating: "[", count: 15) + String(repeating: "]", count: 15)
        #expect(HTTPAnswer.read(Array(#"{"name":"x","deep":\#(allowed)}"#.utf8), call) == .success(["name": "x"]))
    }

    @Test func timeoutsRetriesCachesAndMethodsAreChecked() throws {
        let problems = try Self.lint(hopDeadline: 3000) { screens, _ in
            Self.call(&screens, "fetch") { $0["timeoutMs"] = 1500 }  // 1500 x 2 attempts > 3000 - 250
            Self.call(&screens, "apply") {
                $0["retries"] = 1
                $0["cacheSeconds"] = 30
                $0["backend"] = "payroll"
            }
        }
        #expect(problems.contains { $0.hasPrefix("fetch: timeoutMs 1500 with 1 retries must stay") })
        #expect(problems.contains("apply: retries only for GET, PUT and DELETE: a POST may have reached the backend"))
        #expect(problems.contains("apply: only a GET's answer may be cached"))
        #expect(problems.contains("apply: backend payroll is not among backends"))
        // The file's numbers meet no arithmetic unbounded: a huge timeout is reported, not a trap.
        let huge = try Self.lint { screens, _ in Self.call(&screens, "fetch") { $0["timeoutMs"] = Int.max / 2 + 1 } }
        #expect(huge.contains { $0.hasPrefix("fetch: timeoutMs \(Int.max / 2 + 1) with 1 retries must stay") })
        #expect(throws: MenuLoadError.self, "a length beyond any variable's is refused as it loads") {
            try Self.lint { screens, _ in
                Self.call(&screens, "fetch") {
                    $0["list"] = ["variable": "jobs", "path": "$.jobs[*]", "maxItems": 5, "fields": ["id": ["path": "$.id", "maxLength": -1]]]
                }
            }
        }
        let method = try Self.lint { screens, _ in Self.call(&screens, "fetch") { $0["method"] = "PATCH" } }
        #expect(method.contains("fetch: method must be GET, POST, PUT or DELETE (got PATCH)"))
    }

    @Test func everyResultCodeHasAScreenAndNoMappedCodeIsImpossible() throws {
        let problems = try Self.lint { screens, _ in
            screens["apply"]!["errors"] = ["timeout": "help", "unavailable": "help", "rejected": "help", "closed": "help"]
        }
        #expect(problems.contains("apply: result bad_response of the call has no screen in errors"))
        #expect(problems.contains("apply: result taken of the call has no screen in errors"))
        #expect(problems.contains("apply: error closed is mapped but the call never gives it"))
        let field = try Self.lint { screens, _ in Self.call(&screens, "apply") { $0["resultField"] = "$.error" } }
        #expect(field.contains("apply: resultField needs codes: the result codes it may hold"))
    }

    @Test func templatesUseKnownVariablesAndNoSecretLeavesForABackend() throws {
        let problems = try Self.lint { screens, _ in
            Self.call(&screens, "fetch") { $0["query"] = ["pin": "{pin}", "near": "{city}"] }
        }
        #expect(problems.contains { $0.hasPrefix("fetch: secret pin is used in call query.pin") }, "\(problems)")
        #expect(problems.contains("fetch: call query.near uses {city}, which no earlier screen or action can have set"))
    }

    @Test func pathsAndListsAreChecked() throws {
        let problems = try Self.lint { screens, _ in
            Self.call(&screens, "fetch") {
                $0["list"] = ["variable": "jobs", "path": "$.jobs", "maxItems": 90, "fields": ["id": ["path": "$.items[*].id", "maxLength": 8]]]
            }
            screens["list"]!["item"] = "{title}"
        }
        #expect(problems.contains("fetch: list path $.jobs must select a list, like $.jobs[*]"))
        #expect(problems.contains("fetch: list maxItems must be from 1 to 50"))
        #expect(problems.contains("fetch: list field id: $.items[*].id selects a list; a value needs one"))
        #expect(problems.contains("list: item uses {title}, which no earlier screen or action can have set"), "\(problems)")
        let orphan = try Self.lint { screens, _ in screens["list"]!["items"] = "gigs" }
        #expect(orphan.contains("list: items gigs is no http action's list"))
        let notice = try Self.lint { screens, _ in Self.call(&screens, "apply") { $0["notice"] = ["template": "hired"] } }
        #expect(notice.contains("apply: notice hired is not among sms.notifications"))
    }

    @Test func theCallsShapeIsChecked() throws {
        let problems = try Self.lint { screens, _ in
            Self.call(&screens, "fetch") {
                $0["path"] = "jobs"
                $0["body"] = ["a": "b"]
                $0["status"] = ["200": "fine", "4xx": "gone"]
                $0["list"] = ["variable": "jobs", "path": "$.jobs[*]", "maxItems": 5, "fields": [String: Any]()]
            }
            screens["fetch"]!["errors"] = ["*": "help"]
            screens["fetch"]!["arguments"] = ["x": "{msisdn}"]
            screens["list"]!["empty"] = nil
            screens["balance"]!["http"] = ["backend": "jobs", "method": "GET", "path": "/x", "timeoutMs": 500]
            screens["other"] = [
                "type": "action", "action": "http", "next": "list", "errors": ["*": "help"],
                "http": [
                    "backend": "jobs", "method": "GET", "path": "/other", "timeoutMs": 500,
                    "list": ["variable": "jobs", "path": "$.others[*]", "maxItems": 5, "fields": ["name": ["path": "$.name", "maxLength": 9]]],
                ],
            ]
            var main = screens["main"]!["options"] as! [[String: Any]]
            main.append(["label": ["en": "Other", "sw": "Nyingine"], "next": "other"])
            screens["main"]!["options"] = main
        }
        #expect(problems.contains("fetch: path must start with /"))
        #expect(problems.contains("fetch: a GET has no body"))
        #expect(problems.contains("fetch: status 200 must be an HTTP status from 300 to 599, 4xx or 5xx"))
        #expect(problems.contains("fetch: a list needs at least one field"))
        #expect(problems.contains("fetch: an http action takes no arguments: its call names the variables it reads"))
        #expect(
            problems.contains {
                $0.hasPrefix("fetch: list jobs is also filled by other with other fields") || $0.hasPrefix("other: list jobs is also filled by fetch")
            })
        #expect(problems.contains("list: a list needs empty: the screen shown when there is no item"))
        #expect(problems.contains("balance: http is only for action \"http\""))
    }

    /// The worst item (every field at its longest, numbered as the last) must fit with the title,
    /// in every language.
    @Test func aListsWorstCaseIsCheckedInBothLanguages() throws {
        let problems = try Self.lint { screens, _ in
            Self.call(&screens, "fetch") {
                $0["list"] = [
                    "variable": "jobs", "path": "$.jobs[*]", "maxItems": 20,
                    "fields": ["id": ["path": "$.id", "maxLength": 8], "title": ["path": "$.title", "maxLength": 130]],
                ]
            }
            screens["list"]!["item"] = ["en": "{title}", "sw": "{title} {title}"]
        }
        #expect(problems.contains { $0.hasPrefix("list: title with the longest item can reach") && $0.hasSuffix("in en, over the budget of 160") })
        #expect(problems.contains { $0.hasPrefix("list: the longest item on a page can reach") && $0.contains("in sw") })
        #expect(!problems.contains { $0.hasPrefix("list: the longest item on a page") && $0.contains("in en") }, "\(problems)")
    }

    /// The engine shows a list as a paged menu, numbers its items across pages and keeps the
    /// chosen item's fields under the screen's variable.
    @Test func listsPageAndKeepThePick() throws {
        var document = Self.base()
        var settings = document["settings"] as! [String: Any]
        settings["pageBudget"] = 60
        document["settings"] = settings
        let graph = try MenuGraph.load(data: try JSONSerialization.data(withJSONObject: document))
        let engine = Engine(graph: graph)
        guard
            case .perform(let request, let waiting) = engine.advance(
                {
                    guard case .show(_, let state) = engine.start(variables: ["msisdn": "254712345678"]) else { fatalError() }; return state
                }(), input: "2"
            )
        else { Issue.record("no call"); return }
        #expect(request.action == "http:fetch" && request.arguments == ["msisdn": "254712345678"], "the call gets the values it reads")
        let items = (1...9).map { ["id": "j\($0)", "title": "Job number \($0)"] }
        guard case .show(let first, var state) = engine.resume(waiting, with: .success(["jobs": ListItems.encode(items)])) else {
            Issue.record("no list"); return
        }
        #expect(first.text.hasPrefix("Jobs\n1. Job number 1\n") && first.text.contains("98. More") && first.text.count <= 60, "\(first.text)")
        var seen = first.text
        while seen.contains("98. More"), case .show(let page, let next) = engine.advance(state, input: "98") {
            seen = page.text
            state = next
        }
        #expect(seen.contains("9. Job number 9") && !seen.contains("98. More"), "\(seen)")
        guard case .perform(let apply, _) = engine.advance(state, input: "9") else { Issue.record("no apply"); return }
        #expect(apply.action == "http:apply" && apply.arguments["job.id"] == "j9" && apply.arguments["job.title"] == "Job number 9")
        guard case .show(let wrong, _) = engine.advance(state, input: "10") else { return }
        #expect(wrong.text.hasPrefix("Invalid choice.\nJobs\n1. Job number 1") && wrong.continues, "a wrong pick: the first page, with the notice")
        guard case .show(let none, _) = engine.resume(waiting, with: .success(["jobs": "[]"])) else { return }
        #expect(none.text == "Call us" && !none.continues, "an empty list goes to its empty screen")
    }
}
