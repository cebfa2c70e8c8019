import Foundation
import Menus

/// The menus.json loader and lint: any file is loaded or refused with a `MenuLoadError`, and a loaded
/// one is linted (every screen's worst-case page length, every template) without trapping.
let actions: [ActionSpec] = [
    ActionSpec(name: "wallet.profile", arguments: ["msisdn"], results: ["name": .init(maxLength: 20), "status": .init(maxLength: 10)], errors: ["not_registered"]),
    ActionSpec(name: "wallet.balance", arguments: ["msisdn", "pin"], results: ["balance": .init(maxLength: 12)], errors: ["wrong_pin", "locked"]),
    ActionSpec(name: "wallet.send", arguments: ["msisdn", "to", "amount", "pin"], results: ["reference": .init(maxLength: 10)], errors: ["insufficient_funds"]),
]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let graph = try? MenuGraph.load(data: Data(UnsafeBufferPointer(start: data, count: size))) else { return 0 }
    _ = graph.lint(actions: actions)
    _ = graph.mermaid(language: nil)
    let engine = Engine(graph: graph)
    var step = engine.start(variables: ["msisdn": "254712345678"])
    for input in ["1", "0", "00", "98", "", "1234", "0712345678", "500"] {
        guard case .show(let page, let state) = step, page.continues else { break }
        step = engine.advance(state, input: input)
    }
    return 0
}
