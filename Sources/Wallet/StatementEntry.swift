import Basics
import Foundation
import Postgres

/// One line of a mini statement.
public struct StatementEntry: Sendable, Hashable {
    public enum Direction: String, Sendable { case incoming = "in", outgoing = "out" }
    public let key: String
    public let kind: String
    public let direction: Direction
    public let amount: Amount
    /// The other customer of a send, when there is one.
    public let counterparty: MSISDN?
    public let at: Date
}
