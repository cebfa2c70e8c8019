/// Which environment variables a backend's `env:NAME` may name: its URL and headers leave the
/// host, so only variables meant for backends, never the gateway's own settings or secrets.
public struct BackendVariables: Sendable, Hashable {
    /// Names meant for backends start with one of these (`JOBS_API_` is the shipped Jobs backend's).
    public static let prefixes = ["BACKEND_", "JOBS_API_"]

    /// `BACKEND_ENV_ALLOW`: more names a deployment gives its backends.
    public var allowed: Set<String>
    /// The gateway's own settings: refused whatever the prefix or the allowlist says.
    public var forbidden: Set<String>

    public init(allowed: Set<String> = [], forbidden: Set<String> = []) {
        self.allowed = allowed
        self.forbidden = forbidden
    }

    public func permits(_ name: String) -> Bool {
        guard !self.forbidden.contains(name) else { return false }
        return self.allowed.contains(name) || Self.prefixes.contains { name.hasPrefix($0) }
    }

    /// Why `name` may not be given to a backend, for lint and start-up; nil when it may.
    public func refusal(_ name: String) -> String? {
        if self.forbidden.contains(name) { return "env:\(name) is one of the gateway's own settings, which never leave it" }
        guard self.permits(name) else {
            return "env:\(name) is not a backend variable: names start with BACKEND_ or JOBS_API_, or are listed in BACKEND_ENV_ALLOW"
        }
        return nil
    }
}
