import Logging
import W3CTraceContext

/// One customer's journey across processes: the W3C trace context of the request being answered,
/// carried in the task (``current``) into every outbound call it makes (a `traceparent` header
/// naming the same trace and a new span) and onto every log line written meanwhile (`trace_id`,
/// by ``metadataProvider``).
///
/// A request that arrives with a valid `traceparent` (haproxy makes one at the edge) continues that
/// trace; any other starts one. The trace id is the request's id in the logs as well, so haproxy's
/// log line, each replica's and the Daraja and SMS calls of one hop all name the same 32 hex digits.
public enum HopTrace {
    @TaskLocal public static var current: TraceContext?

    /// The context of a request carrying `traceparent` (when it parses), else a new trace.
    public static func context(traceparent: String?) -> TraceContext {
        if let traceparent, traceparent.utf8.count == 55, let context = try? TraceContext(traceParentHeaderValue: traceparent),
            context.traceID != .null, context.spanID != .null
        {
            return context
        }
        return TraceContext(traceID: .random(), spanID: .random(), flags: .sampled, state: TraceState())
    }

    /// The `traceparent` of an outbound call made now: the current trace, a new span. Nil outside a
    /// traced request.
    public static func outbound() -> String? {
        guard let context = Self.current else { return nil }
        return TraceContext(traceID: context.traceID, spanID: .random(), flags: context.flags, state: TraceState()).traceParentHeaderValue
    }

    /// Adds `trace_id` to every log line written inside a traced request (`LoggingSystem.bootstrap`'s
    /// metadata provider).
    public static let metadataProvider = Logger.MetadataProvider {
        guard let context = HopTrace.current else { return [:] }
        return ["trace_id": .string(context.traceID.description)]
    }
}
