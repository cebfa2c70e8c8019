import CCurl
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// An async HTTP (and SMTP: ``sendMail(_:via:)``) client on libcurl's multi interface.
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
        try await self.perform { continuation in
            CurlTransfer(request: request, maximumResponseBytes: self.configuration.maximumResponseBytes, continuation: continuation)
        }
    }

    /// Runs the job `make` creates on the driver thread and suspends until it ends; a cancelled
    /// task cancels its transfer.
    func perform<Result: Sendable>(_ make: (CheckedContinuation<Result, any Error>) -> any CurlJob) async throws -> Result {
        try Task.checkCancellation()
        let box = CurlJobBox()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let job = make(continuation)
                box.job.withLock { $0 = job }
                self.driver.submit(job)
            }
        } onCancel: {
            if let job = box.job.withLock({ $0 }) { self.driver.cancel(job) }
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

/// Lets the cancellation handler find the job the operation created.
private final class CurlJobBox: Sendable {
    let job = Mutex<(any CurlJob)?>(nil)
}

private enum CurlGlobal {
    /// `curl_global_init` must run once before any other thread uses curl.
    static let initialized: Bool = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK
    static func initializeOnce() { precondition(initialized, "curl_global_init failed") }
}
