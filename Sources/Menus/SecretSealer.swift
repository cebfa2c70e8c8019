/// Seals a secret so a later input can be compared with it without storing it: the gateway uses
/// an HMAC under a seal key of its own (PINVault). Must be deterministic for equal inputs; the engine
/// binds what it seals to the session's nonce and the variable.
public protocol SecretSealer: Sendable {
    func seal(_ secret: String) -> String
}
