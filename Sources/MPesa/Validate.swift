import Basics
import Curl
import Foundation
import Logging

/// Daraja's field rules, checked before anything leaves.
enum Validate {
    static func msisdn(_ value: String, field: String) throws(DarajaError) {
        let bytes = Array(value.utf8)
        guard bytes.count == 12, value.hasPrefix("2547") || value.hasPrefix("2541"), bytes.allSatisfy({ (48...57).contains($0) }) else {
            throw .invalidRequest("\(field) must be 2547XXXXXXXX or 2541XXXXXXXX")
        }
    }

    static func amount(_ shillings: Int, in range: ClosedRange<Int>) throws(DarajaError) {
        guard range.contains(shillings) else {
            throw .invalidRequest("Amount must be whole shillings from \(range.lowerBound) to \(range.upperBound)")
        }
    }

    static func length(_ value: String, field: String, in range: ClosedRange<Int>) throws(DarajaError) {
        guard range.contains(value.count) else { throw .invalidRequest("\(field) must be \(range.lowerBound)-\(range.upperBound) characters") }
    }

    /// https, or plain http to a loopback address (local development and tests).
    static func callbackURL(_ value: String, field: String) throws(DarajaError) {
        let loopback = value.hasPrefix("http://127.0.0.1:") || value.hasPrefix("http://localhost:") || value.hasPrefix("http://[::1]:")
        guard value.hasPrefix("https://") || loopback, !value.contains(" ") else {
            throw .invalidRequest("\(field) must be an https URL")
        }
    }
}
