import Foundation
import Menus

/// The SMS command parser on the shipped menus.json (`FUZZ_MENUS`, default `menus.json`): any text
/// from any sender is interpreted, masked for storage and answered, in every language, without
/// trapping.
let engine: SMSEngine = {
    let path = ProcessInfo.processInfo.environment["FUZZ_MENUS"] ?? "menus.json"
    guard let graph = try? MenuGraph.load(contentsOf: URL(fileURLWithPath: path)) else { fatalError("FUZZ_MENUS: cannot load \(path)") }
    return SMSEngine(graph: graph)
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    for language in [nil, "en", "sw", "xx"] {
        switch engine.interpret(text, language: language, context: ["msisdn": "254712345678"]) {
        case .reply(let reply):
            precondition(!reply.isEmpty, "an empty reply")
        case .perform(let name, let request, let replyLanguage, let variables):
            for result in [ActionResult.success(["balance": "100", "savings": "0", "reference": "ABC"]), .failure("wrong_pin", ["attempts_left": "2"])] {
                _ = engine.reply(to: name, result: result, language: replyLanguage, variables: variables)
            }
            _ = request
        }
    }
    _ = engine.masked(text)
    return 0
}
