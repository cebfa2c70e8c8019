/// A user-facing text: one string for every language, or one per language.
public enum LocalizedText: Sendable, Hashable, Codable {
    case shared(String)
    case perLanguage([String: String])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            self = .shared(text)
        } else {
            self = .perLanguage(try container.decode([String: String].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .shared(let text): try container.encode(text)
        case .perLanguage(let texts): try container.encode(texts)
        }
    }

    /// The text in `language`, else in `fallback`, else any.
    public func text(_ language: String, fallback: String) -> String {
        switch self {
        case .shared(let text): return text
        case .perLanguage(let texts): return texts[language] ?? texts[fallback] ?? texts.values.sorted().first ?? ""
        }
    }

    /// Languages of `required` this text lacks (a shared string lacks none).
    func missing(_ required: [String]) -> [String] {
        guard case .perLanguage(let texts) = self else { return [] }
        return required.filter { (texts[$0] ?? "").isEmpty }
    }

    /// Every variant, for template checks.
    var variants: [(language: String?, text: String)] {
        switch self {
        case .shared(let text): return [(nil, text)]
        case .perLanguage(let texts): return texts.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        }
    }
}
