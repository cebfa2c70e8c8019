import CCurl
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// An async HTTP client on libcurl's multi interface.
///
/// One driver thread of its own runs `curl_multi_poll` and every transfer, so hundreds of
/// requests can be in flight while no Swift concurrency thread waits: callers suspend on a
/// continuation that the driver resumes. TLS is verified unless the configuration says otherwise.
/// As a `Service` it fails nothing in flight until graceful shutdown, then stops the thread.
public final class CurlClient: Sendable, Service {
    public let configuration: CurlConfiguration
    private let driver: CurlDriver

    public init(configuration: CurlConfiguration = CurlConfiguration(), logger: Logger = Logger(label: "http.client")) {
        CurlGlobal.initializeOnce()
        self.configuration = configuration
        self.driver = CurlDriver(configuration: configuration, logger: logger)
    }

    /// Sends the request and returns the response; any HTTP status is a response, not an error.
    public func execute(_ request: CurlRequest) async throws -> CurlResponse {
        try Task.checkCancellation()
        let box = CurlTransferBox()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let transfer = CurlTransfer(request: request, maximumResponseBytes: self.configuration.maximumResponseBytes, continuation: continuation)
                box.transfer.withLock { $0 = transfer }
                self.driver.submit(transfer)
            }
        } onCancel: {
            if let transfer = box.transfer.withLock({ $0 }) { self.driver.cancel(transfer) }
        }
    }

    /// Waits for graceful shutdown, then stops the driver (failing transfers still in flight).
    public func run() async throws {
        self.driver.start()
        try? await gracefulShutdown()
        await self.shutdown()
    }

    /// Stops the driver thread; requests in flight fail with ``CurlError/Code/shutdown``.
    /// Returns once the thread has finished. Safe to call more than once.
    public func shutdown() async {
        await self.driver.stop()
    }
}

/// Lets the cancellation handler find the transfer the operation created.
private final class CurlTransferBox: Sendable {
    let transfer = Mutex<CurlTransfer?>(nil)
}

private enum CurlGlobal {
    /// `curl_global_init` must run once before any other thread uses curl.
    static let initialized: Bool = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK
    static func initializeOnce() { precondition(initialized, "curl_global_init failed") }
}

/// The thread that owns the multi handle and every transfer on it.
///
/// `@unchecked Sendable`: the multi handle and `active` are touched only by the driver thread;
/// other threads only append to the mutex-guarded inbox and call `curl_multi_wakeup`, which
/// libcurl documents as safe from any thread.
final class CurlDriver: @unchecked Sendable {
    private struct Inbox {
        var submitted: [CurlTransfer] = []
        var cancelled: [CurlTransfer] = []
        var started = false
        var stopping = false
        var stopped = false
        var waitingForStop: [CheckedContinuation<Void, Never>] = []
    }

    private let configuration: CurlConfiguration
    private let logger: Logger
    private let multi: UnsafeMutableRawPointer
    private let inbox = Mutex(Inbox())
    private var active: [UnsafeMutableRawPointer: CurlTransfer] = [:]

    init(configuration: CurlConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.multi = curl_multi_init()!
        _ = ccurlm_setopt_long(self.multi, CURLMOPT_MAXCONNECTS, configuration.maximumCachedConnections)
    }

    /// Starts the driver thread unless it runs already (or has stopped): with the first transfer,
    /// or with the client's `run`.
    func start() {
        let start = self.inbox.withLock { inbox -> Bool in
            guard !inbox.started, !inbox.stopping else { return false }
            inbox.started = true
            return true
        }
        guard start else { return }
        let thread = Thread { [self] in self.loop() }
        thread.name = "curl-driver"
        thread.start()
    }

    deinit {
        curl_multi_cleanup(self.multi)
    }

    func submit(_ transfer: CurlTransfer) {
        let accepted = self.inbox.withLock { inbox -> Bool in
            guard !inbox.stopping else { return false }
            inbox.submitted.append(transfer)
            return true
        }
        guard accepted else {
            transfer.finish(.failure(CurlError(code: .shutdown, detail: "client shut down")))
            return
        }
        self.start()
        curl_multi_wakeup(self.multi)
    }

    func cancel(_ transfer: CurlTransfer) {
        let accepted = self.inbox.withLock { inbox -> Bool in
            guard !inbox.stopped else { return false }
            inbox.cancelled.append(transfer)
            return true
        }
        if accepted { curl_multi_wakeup(self.multi) }
    }

    /// Stops the loop and waits (without blocking a thread) for it to finish.
    func stop() async {
        await withCheckedContinuation { continuation in
            let alreadyStopped = self.inbox.withLock { inbox -> Bool in
                inbox.stopping = true
                if !inbox.started { inbox.stopped = true }
                if inbox.stopped { return true }
                inbox.waitingForStop.append(continuation)
                return false
            }
            if alreadyStopped {
                continuation.resume()
            } else {
                curl_multi_wakeup(self.multi)
            }
        }
    }

    private func loop() {
        while true {
            let (submitted, cancelled, stopping) = self.inbox.withLock { inbox in
                defer {
                    inbox.submitted = []
                    inbox.cancelled = []
                }
                return (inbox.submitted, inbox.cancelled, inbox.stopping)
            }
            for transfer in submitted { self.add(transfer) }
            for transfer in cancelled {
                guard let handle = transfer.handle, self.active.removeValue(forKey: handle) != nil else { continue }
                curl_multi_remove_handle(self.multi, handle)
                transfer.finish(.failure(CancellationError()))
            }
            if stopping { break }

            var running: Int32 = 0
            curl_multi_perform(self.multi, &running)
            var queued: Int32 = 0
            while let message = curl_multi_info_read(self.multi, &queued) {
                guard message.pointee.msg == CURLMSG_DONE, let handle = message.pointee.easy_handle else { continue }
                let code = message.pointee.data.result
                curl_multi_remove_handle(self.multi, handle)
                self.active.removeValue(forKey: handle)?.complete(code: code)
            }
            curl_multi_poll(self.multi, nil, 0, 1000, nil)
        }
        let (leftovers, waiting) = self.inbox.withLock { inbox in
            inbox.stopped = true
            defer {
                inbox.submitted = []
                inbox.waitingForStop = []
            }
            return (inbox.submitted, inbox.waitingForStop)
        }
        for (handle, transfer) in self.active {
            curl_multi_remove_handle(self.multi, handle)
            transfer.finish(.failure(CurlError(code: .shutdown, detail: "client shut down with the request in flight")))
        }
        self.active = [:]
        for transfer in leftovers {
            transfer.finish(.failure(CurlError(code: .shutdown, detail: "client shut down")))
        }
        for continuation in waiting { continuation.resume() }
    }

    private func add(_ transfer: CurlTransfer) {
        do {
            let handle = try transfer.makeHandle(configuration: self.configuration)
            let code = curl_multi_add_handle(self.multi, handle)
            guard code == CURLM_OK else {
                throw CurlError(code: .transfer, detail: String(cString: curl_multi_strerror(code)))
            }
            self.active[handle] = transfer
        } catch {
            transfer.finish(.failure(error))
        }
    }
}
