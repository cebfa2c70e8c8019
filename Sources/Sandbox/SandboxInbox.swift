import Foundation
import Synchronization

/// The simulated handsets' SMS inboxes: what the Africa's Talking sandbox delivered and what the
/// M-Pesa sandbox told the customer, per number, newest last.
///
/// Held in memory (a restart empties it) and bounded: ``perNumber`` messages per number, and at
/// most ``numbers`` numbers, the least recently written number going first.
public final class SandboxInbox: Sendable {
    /// One message on a handset.
    public struct Message: Sendable, Codable, Equatable {
        /// Increasing across the whole inbox: a reader asks for what came after the last one it saw.
        public let sequence: Int
        /// The sender as the handset shows it (the sender id, `AFRICASTKNG`, or `MPESA`).
        public let from: String
        public let text: String
        public let receivedAt: Date
        /// The provider's message id (Africa's Talking's `messageId`), if any.
        public let messageID: String?
        /// `Sent` until the delivery report went back to the gateway, then `Success`.
        public var status: String
    }

    public let perNumber: Int
    public let numbers: Int
    private let state = Mutex<(next: Int, boxes: [String: [Message]], order: [String])>((1, [:], []))

    public init(perNumber: Int = 200, numbers: Int = 10_000) {
        self.perNumber = perNumber
        self.numbers = numbers
    }

    /// Delivers `text` to `phone` (`+2547...`); returns the message as stored.
    @discardableResult
    public func deliver(to phone: String, from: String, text: String, messageID: String? = nil, status: String = "Success") -> Message {
        self.state.withLock { state in
            let message = Message(sequence: state.next, from: from, text: text, receivedAt: Date(), messageID: messageID, status: status)
            state.next += 1
            if state.boxes[phone] == nil {
                if state.order.count >= self.numbers, let oldest = state.order.first {
                    state.order.removeFirst()
                    state.boxes[oldest] = nil
                }
            } else {
                state.order.removeAll { $0 == phone }
            }
            state.order.append(phone)
            state.boxes[phone, default: []].append(message)
            if state.boxes[phone]!.count > self.perNumber { state.boxes[phone]!.removeFirst() }
            return message
        }
    }

    /// Marks the message with this provider id as `status` (its delivery report went out).
    public func mark(messageID: String, phone: String, status: String) {
        self.state.withLock { state in
            guard let index = state.boxes[phone]?.firstIndex(where: { $0.messageID == messageID }) else { return }
            state.boxes[phone]![index].status = status
        }
    }

    /// The messages of `phone` after sequence `after`, oldest first.
    public func messages(for phone: String, after: Int = 0) -> [Message] {
        self.state.withLock { state in (state.boxes[phone] ?? []).filter { $0.sequence > after } }
    }
}
