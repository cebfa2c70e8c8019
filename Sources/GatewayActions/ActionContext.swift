import Basics
import Wallet

/// Who runs an action and on behalf of whom: the number comes from the aggregator's callback, never
/// from what the user typed; the key makes money-moving actions exactly-once per hop.
public struct ActionContext: Sendable {
    public let msisdn: MSISDN
    /// `ussd:{sessionId}:{hop}` for USSD (the same on a retried hop), `sms:{message id}` for SMS.
    public let idempotencyKey: String
    public let channel: String
    /// The conversation the action belongs to: `ussd:<sessionId>` or `sms:<message id>`. A PIN-change
    /// grant is bound to it.
    public let conversation: String

    public init(msisdn: MSISDN, idempotencyKey: String, channel: String, conversation: String) {
        self.msisdn = msisdn
        self.idempotencyKey = idempotencyKey
        self.channel = channel
        self.conversation = conversation
    }
}
