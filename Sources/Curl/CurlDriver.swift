import CCurl
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// One transfer the driver runs, of any protocol (an HTTP request, a mail): its easy handle, made
/// on the driver thread, and how it ends.
///
/// From ``CurlDriver/submit(_:)`` on, only the driver thread calls these; each job resumes its
/// caller once, whichever of ``complete(code:)`` and ``fail(_:)`` comes first.
protocol CurlJob: AnyObject, Sendable {
    /// The easy handle while the transfer is on the multi handle.
    var handle: UnsafeMutableRawPointer? { get }
    /// Creates and configures the easy handle.
    func makeHandle(configuration: CurlConfiguration) throws(CurlError) -> UnsafeMutableRawPointer
    /// libcurl finished the transfer with `code`.
    func complete(code: CURLcode)
    /// The transfer ends without libcurl's verdict: cancelled, shut down, or never started.
    func fail(_ error: any Error)
}

/// The thread that owns the multi handle and every transfer on it.
///
/// `@unchecked Sendable`: the multi handle and `active` are touched only by the driver thread;
/// other threads only append to the mutex-guarded inbox and call `curl_multi_wakeup`, which
/// libcurl documents as safe from any thread.
final class CurlDriver: @unchecked Sendable {
    private struct Inbox {
        var submitted: [any CurlJob] = []
        var cancelled: [any CurlJob] = []
        var started = false
        var stopping = false
        var stopped = false
        var waitingForStop: [CheckedContinuation<Void, Never>] = []
    }

    private let configuration: CurlConfiguration
    private let logger: Logger
    private let multi: UnsafeMutableRawPointer
    private let inbox = Mutex(Inbox())
    private var active: [UnsafeMutableRawPointer: any CurlJob] = [:]

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

    func submit(_ transfer: any CurlJob) {
        let accepted = self.inbox.withLock { inbox -> Bool in
            guard !inbox.stopping else { return false }
            inbox.submitted.append(transfer)
            return true
        }
        guard accepted else {
            transfer.fail(CurlError(code: .shutdown, detail: "client shut down"))
            return
        }
        self.start()
        curl_multi_wakeup(self.multi)
    }

    func cancel(_ transfer: any CurlJob) {
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
                transfer.fail(CancellationError())
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
            transfer.fail(CurlError(code: .shutdown, detail: "client shut down with the request in flight"))
        }
        self.active = [:]
        for transfer in leftovers {
            transfer.fail(CurlError(code: .shutdown, detail: "client shut down"))
        }
        for continuation in waiting { continuation.resume() }
    }

    private func add(_ transfer: any CurlJob) {
        do {
            let handle = try transfer.makeHandle(configuration: self.configuration)
            let code = curl_multi_add_handle(self.multi, handle)
            guard code == CURLM_OK else {
                throw CurlError(code: .transfer, detail: String(cString: curl_multi_strerror(code)))
            }
            self.active[handle] = transfer
        } catch {
            transfer.fail(error)
        }
    }
}
