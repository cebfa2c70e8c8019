import Logging
import Synchronization

/// The one log line per request, and the request id it names, for both servers: Hummingbird's
/// (``RequestLogMiddleware``) and the hop server's (``HopServer``).
///
/// The line names the route *pattern*, never the path, which would carry the callback token, and
/// never the body, which carries PINs.
public struct RequestLog: Sendable {
    let logger: Logger

    public init(logger: Logger) {
        self.logger = logger
    }

    /// `request` at info (error for a 5xx): method, route, status, duration, request id.
    public func log(method: String, route: String, status: Int, since start: ContinuousClock.Instant, requestID: String) {
        let level: Logger.Level = status >= 500 ? .error : .info
        guard self.logger.logLevel <= level else { return }
        let elapsed = ContinuousClock.now - start
        self.logger.log(
            level: level, "request",
            metadata: [
                "method": .string(method),
                "route": .string(route),
                "status": .stringConvertible(status),
                "duration_ms": .string(Self.milliseconds(elapsed)),
                "request_id": .string(requestID),
            ]
        )
    }

    /// A duration in milliseconds with three decimals (`12.345`).
    static func milliseconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let micros = max(0, seconds * 1_000_000 + attoseconds / 1_000_000_000_000)
        let fraction = String(micros % 1000)
        return String(micros / 1000) + "." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }

    /// A caller-supplied id, accepted only when short and plain (it lands in our logs).
    public static func acceptedID(_ value: String?) -> String? {
        guard let value, (1...64).contains(value.utf8.count),
            value.utf8.allSatisfy({ $0.isPlainIDByte })
        else { return nil }
        return value
    }

    /// A new request id: 32 hex digits, a random prefix for the process and a counter, written in
    /// one string.
    public static func newID() -> String {
        let count = Self.counter.add(1, ordering: .relaxed).newValue
        return String(unsafeUninitializedCapacity: 32) { text in
            for index in 0..<16 {
                text[index] = Self.digit(Self.prefix >> (60 - 4 * UInt64(index)))
                text[16 + index] = Self.digit(count >> (60 - 4 * UInt64(index)))
            }
            return 32
        }
    }

    private static let prefix = UInt64.random(in: .min ... .max)
    private static let counter = Atomic<UInt64>(UInt64.random(in: 0...UInt64(UInt32.max)))

    @inline(__always)
    private static func digit(_ value: UInt64) -> UInt8 {
        let nibble = UInt8(truncatingIfNeeded: value & 0x0F)
        return nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }
}

extension UInt8 {
    fileprivate var isPlainIDByte: Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(self) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(self)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self) || self == UInt8(ascii: "-") || self == UInt8(ascii: "_")
            || self == UInt8(ascii: ".")
    }
}
