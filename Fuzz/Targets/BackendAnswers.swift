import Basics
import Foundation
import Menus

/// A backend's answer to the shipped menus' `http` actions (a backend is outside input): read as
/// each call reads it, what reaches a session must keep the file's promises, so worst-case pages
/// hold. The same bytes as a path of the mapping syntax must parse or be refused, never trap.
let calls: [MenuDocument.HTTPCall] = {
    let path = ProcessInfo.processInfo.environment["FUZZ_MENUS"] ?? "menus.json"
    guard let graph = try? MenuGraph.load(contentsOf: URL(fileURLWithPath: path)) else { fatalError("FUZZ_MENUS \(path) does not load") }
    return graph.document.screens.keys.sorted().compactMap { graph.document.screens[$0]?.http }
}()

let sample = JSONValue.parse(Array(#"{"jobs":[{"id":"a","title":"T"}],"total":1,"meta":{"x":[1,2]}}"#.utf8))!

func fits(_ text: String, _ length: Int) -> Bool {
    text.count <= length && !text.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    precondition(!calls.isEmpty, "the shipped menus have no http action to fuzz")
    for call in calls {
        switch HTTPAnswer.read(bytes, call) {
        case .failure(let code, _):
            precondition(call.failureCodes.contains(code), "a result code the call cannot give: \(code)")
        case .success(let variables):
            for (name, value) in call.results ?? [:] {
                precondition(fits(variables[name] ?? "", value.maxLength), "a result over its length or with a control character")
            }
            if let list = call.list {
                let items = ListItems.decode(variables[list.variable] ?? "")
                precondition(items.count <= list.maxItems, "more items than declared")
                for item in items {
                    precondition(Set(item.keys) == Set(list.fields.keys), "an item with other fields than declared")
                    for (field, spec) in list.fields { precondition(fits(item[field] ?? "", spec.maxLength), "a field over its length") }
                }
                precondition(ListItems.decode(ListItems.encode(items)) == items, "a list that does not survive the session")
            }
        }
    }
    if let text = String(bytes: bytes.prefix(200), encoding: .utf8), let path = JSONPath(text) {
        _ = path.isList ? path.values(in: sample).map { _ in () } : path.value(in: sample).map { _ in () }
    }
    return 0
}
