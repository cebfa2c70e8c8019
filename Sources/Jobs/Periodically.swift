import ServiceLifecycle

/// Runs `pass` every `interval` (the first after one interval) until graceful shutdown or
/// cancellation; a shutdown cuts the wait short, never a pass. What a reconciler's loop is.
public func periodically(every interval: Duration, _ pass: () async -> Void) async {
    while !Task.isShuttingDownGracefully && !Task.isCancelled {
        try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        guard !Task.isShuttingDownGracefully && !Task.isCancelled else { break }
        await pass()
    }
}
