import NIOConcurrencyHelpers

/// A fixed set of resources handed to one caller at a time, in arrival order.
///
/// When all are taken, callers queue and fail with ``ConnectionPoolError/acquireTimeout(pool:waited:)``
/// once `acquireTimeout` has passed, or with `CancellationError` when their task is cancelled.
/// ``shutdown()`` refuses new callers, fails the queued ones and waits until every resource is back.
public final class LeasePool<Resource: Sendable>: Sendable {
    /// The pool's name in errors.
    public let name: String
    /// How long a caller waits for a free resource.
    public let acquireTimeout: Duration

    private let state: NIOLockedValueBox<State>

    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Resource, any Error>
        var timer: Task<Void, Never>?
    }

    private struct State {
        var idle: [Resource]
        var waiters: [Waiter] = []
        var leased = 0
        var nextWaiterID: UInt64 = 0
        var isShutdown = false
        var drained: CheckedContinuation<Void, Never>?
    }

    private enum Immediate { case resource(Resource), shutdown, wait(UInt64) }
    private enum Next { case handTo(Waiter), drained(CheckedContinuation<Void, Never>), nothing }

    public init(name: String, resources: [Resource], acquireTimeout: Duration) {
        precondition(!resources.isEmpty, "a pool needs at least one resource")
        self.name = name
        self.acquireTimeout = acquireTimeout
        self.state = NIOLockedValueBox(State(idle: resources))
    }

    /// Resources leased right now and callers waiting.
    public var usage: (leased: Int, waiting: Int) {
        self.state.withLockedValue { ($0.leased, $0.waiters.count) }
    }

    /// Takes a resource when one is free right now; nil otherwise (and once shut down).
    public func tryAcquire() -> Resource? {
        self.state.withLockedValue { state -> Resource? in
            guard !state.isShutdown, let resource = state.idle.popLast() else { return nil }
            state.leased += 1
            return resource
        }
    }

    /// Takes a resource, waiting in line when none is free.
    public func acquire() async throws -> Resource {
        let immediate = self.state.withLockedValue { state -> Immediate in
            if state.isShutdown { return .shutdown }
            if let resource = state.idle.popLast() {
                state.leased += 1
                return .resource(resource)
            }
            state.nextWaiterID &+= 1
            return .wait(state.nextWaiterID)
        }
        let id: UInt64
        switch immediate {
        case .resource(let resource): return resource
        case .shutdown: throw ConnectionPoolError.shutdown(pool: self.name)
        case .wait(let waiterID): id = waiterID
        }

        return try await self.wait(id)
    }

    /// Waits in line as waiter `id` until a resource is handed over, the timeout passes, the pool
    /// shuts down or the caller is cancelled.
    private func wait(_ id: UInt64) async throws -> Resource {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Resource, any Error>) in
                let outcome = self.state.withLockedValue { state -> Immediate in
                    if state.isShutdown { return .shutdown }
                    if let resource = state.idle.popLast() {
                        state.leased += 1
                        return .resource(resource)
                    }
                    state.waiters.append(Waiter(id: id, continuation: continuation, timer: nil))
                    return .wait(id)
                }
                switch outcome {
                case .resource(let resource): continuation.resume(returning: resource)
                case .shutdown: continuation.resume(throwing: ConnectionPoolError.shutdown(pool: self.name))
                case .wait: self.startTimer(for: id)
                }
            }
        } onCancel: {
            self.failWaiter(id, with: CancellationError())
        }
    }

    /// Fails waiter `id` once the acquire timeout passes, unless it was served first.
    private func startTimer(for id: UInt64) {
        let (timeout, name) = (self.acquireTimeout, self.name)
        let timer = Task { [weak self] in
            guard (try? await Task.sleep(for: timeout)) != nil else { return }
            self?.failWaiter(id, with: ConnectionPoolError.acquireTimeout(pool: name, waited: timeout))
        }
        let stillWaiting = self.state.withLockedValue { state -> Bool in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return false }
            state.waiters[index].timer = timer
            return true
        }
        if !stillWaiting { timer.cancel() }
    }

    /// Gives a resource back: to the first caller in line, or to the idle set.
    public func release(_ resource: Resource) {
        let next = self.state.withLockedValue { state -> Next in
            if !state.waiters.isEmpty {
                return .handTo(state.waiters.removeFirst())
            }
            state.leased -= 1
            state.idle.append(resource)
            if state.leased == 0, let drained = state.drained {
                state.drained = nil
                return .drained(drained)
            }
            return .nothing
        }
        switch next {
        case .handTo(let waiter):
            waiter.timer?.cancel()
            waiter.continuation.resume(returning: resource)
        case .drained(let continuation):
            continuation.resume()
        case .nothing:
            break
        }
    }

    /// Refuses new callers, fails queued ones, waits for leased resources to come back, and
    /// returns every resource. Later calls return nothing.
    @discardableResult
    public func shutdown() async -> [Resource] {
        let (waiters, mustWait) = self.state.withLockedValue { state -> ([Waiter], Bool) in
            if state.isShutdown { return ([], false) }
            state.isShutdown = true
            let waiters = state.waiters
            state.waiters = []
            return (waiters, state.leased > 0)
        }
        for waiter in waiters {
            waiter.timer?.cancel()
            waiter.continuation.resume(throwing: ConnectionPoolError.shutdown(pool: self.name))
        }
        if mustWait {
            await withCheckedContinuation { continuation in
                let resumeNow = self.state.withLockedValue { state -> Bool in
                    if state.leased == 0 { return true }
                    state.drained = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
        return self.state.withLockedValue { state -> [Resource] in
            defer { state.idle = [] }
            return state.idle
        }
    }

    private func failWaiter(_ id: UInt64, with error: any Error) {
        let waiter = self.state.withLockedValue { state -> Waiter? in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index)
        }
        guard let waiter else { return }
        waiter.timer?.cancel()
        waiter.continuation.resume(throwing: error)
    }
}
