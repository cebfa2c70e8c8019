import GatewayHTTP
import Hummingbird
import Postgres
import Redis

/// How a provider runs: against the provider itself, against the embedded sandbox, or not at all.
enum ProviderMode: String, Sendable {
    case configured
    case sandbox
    case notConfigured = "not configured"
}
