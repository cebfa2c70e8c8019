/// Everything a USSD session remembers between hops: small, Codable, and free of secrets.
///
/// PINs never enter it. A PIN that a later screen must confirm is kept only as the host's seal
/// (a keyed hash, see ``SecretSealer``).
public struct SessionState: Sendable, Hashable, Codable {
    /// The screen waiting for input (a menu or input), or the action being performed.
    public var screen: String
    public var variables: [String: String]
    /// Interactive screens behind this one, for the back key.
    public var history: [String]
    public var language: String
    /// The menu page on show.
    public var page: Int
    /// Wrong inputs in a row on this screen.
    public var wrongInputs: Int
    /// Seals of secrets awaiting confirmation, by variable.
    public var sealed: [String: String]
    /// A random value of this session that every seal is bound to (set at the first seal).
    public var nonce: String

    public init(screen: String, variables: [String: String], language: String) {
        self.screen = screen
        self.variables = variables
        self.history = []
        self.language = language
        self.page = 0
        self.wrongInputs = 0
        self.sealed = [:]
        self.nonce = ""
    }

    private enum CodingKeys: String, CodingKey {
        case screen = "s", variables = "v", history = "h", language = "l", page = "p", wrongInputs = "w", sealed = "x", nonce = "k"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.screen = try container.decode(String.self, forKey: .screen)
        self.variables = try container.decodeIfPresent([String: String].self, forKey: .variables) ?? [:]
        self.history = try container.decodeIfPresent([String].self, forKey: .history) ?? []
        self.language = try container.decode(String.self, forKey: .language)
        self.page = try container.decodeIfPresent(Int.self, forKey: .page) ?? 0
        self.wrongInputs = try container.decodeIfPresent(Int.self, forKey: .wrongInputs) ?? 0
        self.sealed = try container.decodeIfPresent([String: String].self, forKey: .sealed) ?? [:]
        self.nonce = try container.decodeIfPresent(String.self, forKey: .nonce) ?? ""
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.screen, forKey: .screen)
        if !self.variables.isEmpty { try container.encode(self.variables, forKey: .variables) }
        if !self.history.isEmpty { try container.encode(self.history, forKey: .history) }
        try container.encode(self.language, forKey: .language)
        if self.page != 0 { try container.encode(self.page, forKey: .page) }
        if self.wrongInputs != 0 { try container.encode(self.wrongInputs, forKey: .wrongInputs) }
        if !self.sealed.isEmpty { try container.encode(self.sealed, forKey: .sealed) }
        if !self.nonce.isEmpty { try container.encode(self.nonce, forKey: .nonce) }
    }
}
