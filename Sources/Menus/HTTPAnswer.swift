import Basics

/// What an `http` action keeps of a backend's answer (``MenuDocument/HTTPCall``): pure, so the
/// gateway's runner and the fuzzer read answers the same way. A backend is outside input: its
/// values are cut to their declared length with control characters made spaces, its lists to their
/// declared number of items, before anything reaches a session or a screen.
public enum HTTPAnswer {
    /// A 2xx answer's body, read as `call` says: the variables it sets, or the result code it gives.
    public static func read(_ body: [UInt8], _ call: MenuDocument.HTTPCall) -> ActionResult {
        let needsBody = !(call.results ?? [:]).isEmpty || call.list != nil || call.resultField != nil
        guard needsBody else { return .success([:]) }
        // Nested no deeper than a provider's callback may be, checked on the bytes before the
        // recursive decoder sees them.
        guard JSONValue.nestingDepth(body) <= JSONValue.Limits.callbacks.depth, let json = JSONValue.parse(body) else { return .failure("bad_response") }
        if let field = call.resultField.flatMap(JSONPath.init), let value = field.value(in: json).flatMap(JSONPath.text), !value.isEmpty {
            return (call.codes ?? []).contains(value) ? .failure(value) : .failure("bad_response")
        }
        var variables: [String: String] = [:]
        for (name, value) in call.results ?? [:] {
            guard let path = JSONPath(value.path) else { return .failure("bad_response") }
            variables[name] = path.value(in: json).flatMap(JSONPath.text).map { Self.cut($0, value.maxLength) } ?? ""
        }
        if let list = call.list {
            guard let path = JSONPath(list.path), let found = path.values(in: json) else { return .failure("bad_response") }
            let items = found.prefix(list.maxItems).map { item in
                list.fields.mapValues { field in
                    JSONPath(field.path).flatMap { $0.value(in: item) }.flatMap(JSONPath.text).map { Self.cut($0, field.maxLength) } ?? ""
                }
            }
            variables[list.variable] = ListItems.encode(Array(items))
        }
        return .success(variables)
    }

    /// A non-2xx status as the call maps it: the exact status, then its class; else a 4xx is
    /// `rejected` and anything else `unavailable`.
    public static func code(for status: Int, _ call: MenuDocument.HTTPCall) -> String {
        let map = call.status ?? [:]
        if let code = map[String(status)] { return code }
        let family = status / 100
        if let code = map["\(family)xx"] { return code }
        return family == 4 ? "rejected" : "unavailable"
    }

    /// A backend's text fit for a screen: control characters made spaces, cut to `length` characters.
    public static func cut(_ text: String, _ length: Int) -> String {
        let cleaned = String(String.UnicodeScalarView(text.unicodeScalars.map { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) ? " " : $0 }))
        return String(cleaned.prefix(max(0, length)))
    }
}
