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

/// Seals a secret so a later input can be compared with it without storing it: the gateway uses
/// an HMAC keyed with its server-side pepper. Must be deterministic for equal inputs; the engine
/// binds what it seals to the session's nonce and the variable.
public protocol SecretSealer: Sendable {
    func seal(_ secret: String) -> String
}

/// What the engine asks its host to do next.
public enum Step: Sendable {
    /// Show `page`; when it continues, keep `state` for the next hop.
    case show(Page, SessionState)
    /// Run an action, then call ``Engine/resume(_:with:)`` with `state` and the result.
    case perform(ActionRequest, SessionState)
}

/// One screen as the handset shows it.
public struct Page: Sendable, Hashable {
    public let text: String
    /// `CON` (the user may answer) or `END`.
    public let continues: Bool
    /// The screen it shows, for logs and metrics.
    public let screen: String
}

/// An action the host runs: name and rendered arguments (which may hold a secret from this hop).
public struct ActionRequest: Sendable, Hashable {
    public let action: String
    public let arguments: [String: String]
    /// Argument names whose values are secrets (never log them).
    public let secretArguments: Set<String>
}

/// How an action ended.
public enum ActionResult: Sendable, Hashable {
    case success([String: String])
    /// An error code from the action's contract (`insufficient_funds`, ...), with any variables
    /// the error screen may show (e.g. `attempts_left`).
    case failure(String, [String: String] = [:])
}
