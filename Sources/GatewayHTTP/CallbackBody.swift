import Basics
import Hummingbird
import Logging
import NIOCore

/// How every provider route reads a callback: the body up to ``maximum`` bytes (413 beyond), as
/// bytes or as an urlencoded form, and a malformed one turned into a 400 with its reason logged.
public enum CallbackBody {
    /// The largest callback body taken: 64 KiB.
    public static let maximum = 64 * 1024

    /// The body's bytes; 413 beyond ``maximum``.
    public static func bytes(_ request: Request, logger: Logger, route: String) async throws -> [UInt8] {
        do {
            return Array(try await request.body.collect(upTo: Self.maximum).readableBytesView)
        } catch {
            logger.warning("callback over 64 KiB", metadata: ["route": .string(route)])
            throw HTTPError(.contentTooLarge)
        }
    }

    /// The body as an urlencoded form (``FormFields``); 413 beyond ``maximum``, 400 when malformed.
    public static func form(
        _ request: Request, logger: Logger, route: String, guardian: CallbackGuard? = nil, context: (some RequestContext & RemoteAddressRequestContext)? = nil
    ) async throws -> [String: String] {
        let bytes = try await Self.bytes(request, logger: logger, route: route)
        do {
            return try FormFields.parse(bytes)
        } catch {
            if let guardian, let context { throw guardian.refuse(error.description, request, context, route: route) }
            throw Self.refuse(error.description, logger: logger, route: route)
        }
    }

    /// A ``CallbackCall``'s body as an urlencoded form; a malformed one refused through `guardian` (400).
    public static func form(_ call: CallbackCall, guardian: CallbackGuard, route: String) throws(BadCallback) -> [String: String] {
        do {
            return try FormFields.parse(call.body.readableBytesView)
        } catch {
            throw guardian.refuse(error.description, call, route: route)
        }
    }

    /// A malformed callback: the reason logged (never the body), 400 to the caller.
    public static func refuse(_ reason: String, logger: Logger, route: String) -> BadCallback {
        logger.warning("malformed callback", metadata: ["route": .string(route), "reason": .string(reason)])
        return BadCallback(reason: reason)
    }
}
