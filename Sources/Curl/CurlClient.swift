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
