import ConnectionPool
import Curl
import Postgres
import Redis

/// What may be logged of an error: our own error types' descriptions, which never carry values,
/// and only the type name of anything else, whose message might repeat a request's raw input
/// (Hummingbird's form decoder does, and USSD input carries PINs).
func safeDescription(of error: any Error) -> String {
    switch error {
    case let error as RedisError: return error.description
    case let error as PostgresError: return error.description
    case let error as CurlError: return error.description
    case let error as ConnectionPoolError: return error.description
    case let error as ConfigError: return error.description
    case is CancellationError: return "cancelled"
    default: return String(reflecting: type(of: error))
    }
}
