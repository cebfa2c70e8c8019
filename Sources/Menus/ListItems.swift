import Basics

/// How a list from a backend sits in a session variable: a JSON array of objects whose values are
/// text, `[{"id":"17","title":"Driver"}]`. Written by the `http` action (items and fields already
/// cut to their declared limits), read by `list` screens.
public enum ListItems {
    public static func encode(_ items: [[String: String]]) -> String {
        JSONValue.array(items.map { item in .object(item.mapValues { .string($0) }) }).serialized
    }

    /// The items; none when `text` is not such a list.
    public static func decode(_ text: String) -> [[String: String]] {
        guard case .array(let values)? = JSONValue.parse(Array(text.utf8)) else { return [] }
        return values.compactMap { value in
            guard case .object(let members) = value else { return nil }
            return members.compactMapValues { if case .string(let text) = $0 { return text } else { return nil } }
        }
    }
}
