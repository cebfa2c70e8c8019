import Foundation

/// Why a menus file could not be loaded: where (a JSON path or screen) and what.
public struct MenuLoadError: Error, Sendable, CustomStringConvertible {
    public let location: String
    public let problem: String

    public init(location: String, problem: String) {
        self.location = location
        self.problem = problem
    }

    /// A JSON syntax error with its line and column (JSONDecoder tells neither; the parser
    /// underneath tells the character offset).
    init?(syntaxOf data: Data) {
        do {
            _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
            return nil
        } catch {
            let message = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "not valid JSON"
            guard let range = message.range(of: #"character (\d+)"#, options: .regularExpression),
                let offset = Int(message[range].dropFirst("character ".count))
            else {
                self.init(location: "menus.json", problem: message)
                return
            }
            let before = data.prefix(offset)
            let line = before.filter { $0 == UInt8(ascii: "\n") }.count + 1
            let column = offset - (before.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0) + 1
            self.init(location: "menus.json line \(line), column \(column)", problem: "not valid JSON: \(message)")
        }
    }

    init(decoding error: DecodingError) {
        func path(_ context: DecodingError.Context) -> String {
            let components = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
            return components.isEmpty ? "menus.json" : components.joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
        }
        switch error {
        case .dataCorrupted(let context):
            // The JSON parser's own error carries the line and column of a syntax error.
            let underlying = context.underlyingError.map { error -> String in
                (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? String(describing: error)
            }
            self.init(location: path(context), problem: [context.debugDescription, underlying].compactMap { $0 }.joined(separator: " "))
        case .keyNotFound(let key, let context):
            self.init(location: path(context), problem: "missing field \(key.stringValue)")
        case .typeMismatch(let type, let context):
            self.init(location: path(context), problem: "expected \(type): \(context.debugDescription)")
        case .valueNotFound(let type, let context):
            self.init(location: path(context), problem: "missing \(type)")
        @unknown default:
            self.init(location: "menus.json", problem: "\(error)")
        }
    }

    public var description: String { "\(self.location): \(self.problem)" }
}
