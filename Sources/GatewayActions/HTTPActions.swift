import Basics
import Curl
import Foundation
import GatewayTelemetry
import Logging
import Menus
import Metrics
import Synchronization
import Wallet

/// The menus' `http` actions (``MenuDocument/HTTPCall``), run with the gateway's libcurl client.
///
/// - The URL is the backend's (from the environment) plus the call's path, each `{variable}`
///   escaped as a path segment; query values are escaped as query values; a body is a JSON object
///   of rendered strings. Headers come from the environment; a `POST` also carries the hop's
///   idempotency key as `Idempotency-Key`, and is never retried.
/// - A 2xx answer sets the call's variables (values cut to their declared length, control
///   characters made spaces) and its list; a result field or a status maps to the screen's result
///   codes. A timeout is `timeout`; a backend that cannot be reached, a 5xx not mapped, or an
///   open breaker is `unavailable`; a 4xx not mapped is `rejected`; an answer that is not what the
///   call reads is `bad_response`.
/// - Per backend: a circuit breaker, and a cache of `GET` answers where the call allows it.
/// - One log line per call: backend, screen, method, status, outcome, duration. Never the URL, a
///   header or a body: they hold the customer's input and the backend's key.
public final class HTTPActions: Sendable {
    let graph: MenuGraph
    let http: CurlClient
    let backends: [String: Backend]
    let cache = Mutex<[String: Cached]>([:])
    let notices: @Sendable (MSISDN, String, [String: String], String) async -> Void
    let logger: Logger
    let metrics: MetricCache

    /// A backend as the environment configures it.
    struct Backend: Sendable {
        let name: String
        /// Nil while its URL variable is not set: its calls are `unavailable`.
        let baseURL: String?
        let headers: [(name: String, value: String)]
        let breaker: CircuitBreaker
    }

    struct Cached: Sendable {
        let result: ActionResult
        let expires: ContinuousClock.Instant
    }

    /// The most cached answers kept; past it the oldest half goes.
    static let cacheLimit = 1000

    /// `environment` resolves the backends' `env:` references. `notices` queues an SMS notice
    /// (msisdn, template, params, dedupe key).
    public init(
        graph: MenuGraph, environment: [String: String], http: CurlClient,
        notices: @escaping @Sendable (MSISDN, String, [String: String], String) async -> Void, metrics: MetricCache, logger: Logger
    ) {
        self.metrics = metrics
        self.graph = graph
        self.http = http
        self.notices = notices
        self.logger = logger
        var backends: [String: Backend] = [:]
        for (name, backend) in graph.document.backends ?? [:] {
            func resolve(_ reference: String) -> String? {
                guard reference.hasPrefix("env:") else { return nil }
                return environment[String(reference.dropFirst(4))].flatMap { $0.isEmpty ? nil : $0 }
            }
            var base = resolve(backend.url)
            while base?.hasSuffix("/") == true { base?.removeLast() }
            let headers = (backend.headers ?? [:]).sorted { $0.key < $1.key }.compactMap { header, reference in
                resolve(reference).map { (header, $0) }
            }
            // A backend missing its key is as unavailable as one missing its URL.
            if headers.count != (backend.headers ?? [:]).count { base = nil }
            backends[name] = Backend(
                name: name, baseURL: base, headers: headers,
                breaker: CircuitBreaker(failures: backend.breaker?.failures ?? 5, open: .seconds(backend.breaker?.openSeconds ?? 30))
            )
            metrics.gauge("http_backend_breaker_open", [("backend", name)]).record(0)
        }
        self.backends = backends
    }

    /// Whether the backends the file names have their URL set: names of those that do not.
    public var unconfigured: [String] { self.backends.values.filter { $0.baseURL == nil }.map(\.name).sorted() }

    /// Whether `action` is an `http` action of this file.
    public static func handles(_ action: String) -> Bool { action.hasPrefix(Engine.httpActionPrefix) }

    /// A `GET` looks something up: its hop needs no claim. Anything else may change the backend.
    public func isLookup(_ action: String) -> Bool {
        self.call(action)?.call.method == "GET"
    }

    func call(_ action: String) -> (screen: String, call: MenuDocument.HTTPCall, templates: HTTPTemplates)? {
        let screen = String(action.dropFirst(Engine.httpActionPrefix.count))
        guard let call = self.graph.screen(screen)?.http, let templates = self.graph.httpTemplates(screen) else { return nil }
        return (screen, call, templates)
    }

    public func run(_ request: ActionRequest, context: ActionContext) async throws -> ActionResult {
        guard let (screen, call, templates) = self.call(request.action), let backend = self.backends[call.backend] else {
            throw ActionError.unknownAction(request.action)
        }
        let start = ContinuousClock.now
        var status = 0
        var attempts = 0
        let (result, outcome) = await self.perform(call, templates, backend, request.arguments, context, status: &status, attempts: &attempts)
        let elapsed = ContinuousClock.now - start
        self.metrics.counter("http_action_calls_total", [("backend", backend.name), ("outcome", outcome)]).increment()
        self.metrics.timer("http_action_duration_seconds", [("backend", backend.name)]).record(duration: elapsed)
        self.logger.info(
            "http action",
            metadata: [
                "backend": .string(backend.name), "screen": .string(screen), "method": .string(call.method), "status": .stringConvertible(status),
                "outcome": .string(outcome), "attempts": .stringConvertible(attempts), "duration_ms": .stringConvertible(elapsed.inMilliseconds),
            ]
        )
        if case .success = result, let notice = call.notice {
            let params = Dictionary(uniqueKeysWithValues: templates.notice.map { ($0.name, $0.template.render(request.arguments)) })
            await self.notices(context.msisdn, notice.template, params, context.idempotencyKey + ":" + notice.template)
        }
        return result
    }

    /// The call, from the cache when allowed, through the breaker; the result and the outcome label.
    private func perform(
        _ call: MenuDocument.HTTPCall, _ templates: HTTPTemplates, _ backend: Backend, _ values: [String: String], _ context: ActionContext,
        status: inout Int, attempts: inout Int
    ) async -> (ActionResult, String) {
        guard let base = backend.baseURL else { return (.failure("unavailable"), "unconfigured") }
        var url = base + Self.render(templates.path, values, escape: .pathSegment)
        let query = templates.query.map { Self.escape($0.name, .queryValue) + "=" + Self.render($0.template, values, escape: .queryValue) }
        if !query.isEmpty { url += (url.contains("?") ? "&" : "?") + query.joined(separator: "&") }
        let cacheable = call.method == "GET" && (call.cacheSeconds ?? 0) > 0
        if cacheable, let hit = self.cached(url) { return (hit, "cached") }
        guard backend.breaker.allows() else {
            self.metrics.gauge("http_backend_breaker_open", [("backend", backend.name)]).record(1)
            return (.failure("unavailable"), "breaker_open")
        }
        var headers: [(name: String, value: String)] = [("Accept", "application/json"), ("User-Agent", "ussd-gateway")] + backend.headers
        var body: [UInt8]?
        if !templates.body.isEmpty {
            headers.append(("Content-Type", "application/json"))
            let members = Dictionary(uniqueKeysWithValues: templates.body.map { ($0.name, JSONValue.string($0.template.render(values))) })
            body = Array(JSONValue.object(members).serialized.utf8)
        }
        if !call.isIdempotent { headers.append(("Idempotency-Key", context.idempotencyKey)) }
        let tries = 1 + (call.isIdempotent ? max(0, min(call.retries ?? 0, 3)) : 0)
        var outcome: (ActionResult, String) = (.failure("unavailable"), "unavailable")
        for attempt in 1...tries {
            attempts = attempt
            // The hop's trace, a new span per attempt (``HopTrace``).
            let traced = HopTrace.outbound().map { [(name: "traceparent", value: $0)] } ?? []
            let request = CurlRequest(
                method: call.method, url: url, headers: headers + traced, body: body, timeout: .milliseconds(call.timeoutMs),
                connectTimeout: .milliseconds(min(call.timeoutMs, 2000))
            )
            do {
                let response = try await self.http.execute(request)
                status = response.status
                if (500...599).contains(response.status) {
                    outcome = (.failure(HTTPAnswer.code(for: response.status, call)), "server_error")
                    continue
                }
                backend.breaker.record(success: true)
                self.metrics.gauge("http_backend_breaker_open", [("backend", backend.name)]).record(0)
                guard (200...299).contains(response.status) else { return (.failure(HTTPAnswer.code(for: response.status, call)), "client_error") }
                let result = HTTPAnswer.read(response.body, call)
                if case .success = result, cacheable { self.store(url, result, seconds: call.cacheSeconds!) }
                if case .failure(let code, _) = result { return (result, code == "bad_response" ? "bad_response" : "refused") }
                return (result, "ok")
            } catch let error as CurlError {
                outcome = error.code == .timeout ? (.failure("timeout"), "timeout") : (.failure("unavailable"), "unreachable")
                // A timed-out or broken call may have reached the backend: only idempotent ones go again.
                continue
            } catch {
                outcome = (.failure("unavailable"), "unreachable")
                break
            }
        }
        if backend.breaker.record(success: false) {
            self.metrics.gauge("http_backend_breaker_open", [("backend", backend.name)]).record(1)
            self.logger.warning("http backend breaker opened", metadata: ["backend": .string(backend.name)])
        }
        return outcome
    }

    enum Place { case pathSegment, queryValue }

    /// A template with each variable's value escaped for where it goes; the file's own text as it is.
    static func render(_ template: Template, _ values: [String: String], escape place: Place) -> String {
        template.parts.map { part in
            switch part {
            case .literal(let text): return text
            case .variable(let name, let formatter):
                if let constant = template.market.constant(name) { return Self.escape(constant, place) }
                return Self.escape(Template.format(values[name] ?? "", formatter, template.currency), place)
            }
        }.joined()
    }

    /// Everything but RFC 3986's unreserved characters percent-encoded, so a value can never add a
    /// path segment, a query parameter or a fragment; in a path segment the dot too, so `..` cannot
    /// walk up the path.
    static func escape(_ value: String, _ place: Place) -> String {
        var allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_~")
        if place == .queryValue { allowed.insert(charactersIn: ".") }
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }

    private func cached(_ url: String) -> ActionResult? {
        self.cache.withLock { cache in
            guard let entry = cache[url] else { return nil }
            if entry.expires > .now { return entry.result }
            cache[url] = nil
            return nil
        }
    }

    private func store(_ url: String, _ result: ActionResult, seconds: Int) {
        self.cache.withLock { cache in
            if cache.count >= Self.cacheLimit {
                for key in cache.sorted(by: { $0.value.expires < $1.value.expires }).prefix(Self.cacheLimit / 2).map(\.key) { cache[key] = nil }
            }
            cache[url] = Cached(result: result, expires: .now + .seconds(seconds))
        }
    }
}

/// A backend's circuit breaker: closed while calls succeed; open for `open` after `failures`
/// failed calls in a row (calls then fail at once); then half open, letting one call try: its
/// success closes the breaker, its failure opens it again.
final class CircuitBreaker: Sendable {
    let failures: Int
    let open: Duration
    private let state = Mutex<(failed: Int, openUntil: ContinuousClock.Instant?, trying: Bool)>((0, nil, false))

    init(failures: Int, open: Duration) {
        self.failures = max(1, failures)
        self.open = open
    }

    /// Whether a call may go now.
    func allows() -> Bool {
        self.state.withLock { state in
            guard let until = state.openUntil else { return true }
            if ContinuousClock.now < until || state.trying { return false }
            state.trying = true
            return true
        }
    }

    /// Records a call's end; true when this failure opened the breaker.
    @discardableResult
    func record(success: Bool) -> Bool {
        self.state.withLock { state in
            if success {
                state = (0, nil, false)
                return false
            }
            state.failed += 1
            let opens = state.trying || state.failed >= self.failures
            state.trying = false
            if opens { state.openUntil = .now + self.open }
            return opens
        }
    }

    var isOpen: Bool { self.state.withLock { $0.openUntil.map { ContinuousClock.now < $0 } ?? false } }
}
