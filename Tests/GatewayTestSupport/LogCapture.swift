import Foundation
@testable import GatewayActions
@testable import GatewayHTTP
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
@testable import MPesaGateway
@testable import SMSChannel
import Synchronization
import TestSupport
import Testing
@testable import USSDChannel
@testable import USSDGateway

/// Keeps every log record, to check what reaches the logs.
final class LogCapture: Sendable {
    struct Record: Sendable {
        let message: String
        let metadata: [String: String]
        var level: Logger.Level = .info
    }

    private let records = Mutex<[Record]>([])
    var all: [Record] { self.records.withLock { $0 } }

    var logger: Logger {
        Logger(label: "test") { _ in Handler(capture: self) }
    }

    struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { self.metadata[key] }
            set { self.metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let merged = self.metadata.merging(event.metadata ?? [:]) { $1 }
            let record = Record(message: "\(event.message)", metadata: merged.mapValues { "\($0)" }, level: event.level)
            self.capture.records.withLock { $0.append(record) }
        }
    }
}
