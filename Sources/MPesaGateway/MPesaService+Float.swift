import Basics
import Foundation
import GatewayTelemetry
import Logging
import MPesa
import MPesaBook
import Wallet

/// The float: Account Balance asked about the B2C shortcode once per interval for the whole
/// deployment, its answer kept when it names the query's acknowledgement (``MPesaBook``'s
/// `recordBalanceAnswer`). The gauges (`mpesa_float_balance`) read the latest reading from the
/// database, so every replica reports the same whichever replica took the answer.
extension MPesaService {
    /// Asks for the float unless another replica already did in this interval; whether this
    /// replica asked and Daraja acknowledged it.
    @discardableResult
    public func checkFloat(interval: Duration) async -> Bool {
        do {
            guard let query = try await self.book.claimBalanceQuery(interval: interval, now: self.now()) else { return false }
            let acknowledged = try await self.daraja.accountBalance()
            // The answer must name both ids: without Safaricom's originator none could be matched.
            guard !acknowledged.originatorConversationID.isEmpty else { throw DarajaError.malformedResponse(status: 200) }
            try await self.book.acknowledgeBalanceQuery(
                id: query, conversationID: acknowledged.conversationID, originator: acknowledged.originatorConversationID)
            self.counter("mpesa_float_queries_total", "accepted")
            self.logger.info("Account Balance asked", metadata: ["query": .stringConvertible(query)])
            return true
        } catch {
            self.counter("mpesa_float_queries_total", "failed")
            self.logger.warning("Account Balance not asked; asked again next interval", metadata: ["error": .string(safeDescription(of: error))])
            return false
        }
    }

    /// `POST /mpesa/balance/result`: an Account Balance answer. Kept once when it names an
    /// acknowledged query of ours; a repeat changes nothing; one naming no query is not trusted.
    public func balanceResult(_ body: [UInt8]) async throws -> CallbackOutcome {
        let result = try B2CResult(json: body)
        var accounts: [MPesaBook.FloatAccount] = []
        var reportedAt = self.now()
        if result.succeeded {
            accounts = try AccountBalance.accounts(result.parameters["AccountBalance"]).map {
                MPesaBook.FloatAccount(account: $0.name, currency: $0.currency, available: Amount(cents: $0.cents))
            }
            // M-Pesa's time of the reading; one from the future (beyond a clock's skew) is not
            // believed: the reading counts as read now.
            if let completed = AccountBalance.completedTime(result.parameters["BOCompletedTime"]), completed <= reportedAt.addingTimeInterval(600) {
                reportedAt = completed
            }
        }
        let kept = try await self.recordAnswerOnceAcknowledged(result, accounts: accounts, reportedAt: reportedAt, resultCode: result.resultCodeText)
        return self.balanceOutcome(kept, result, what: "Account Balance answer")
    }

    /// `POST /mpesa/balance/timeout`: the query timed out in Safaricom's queue; it is marked
    /// answered (nothing read) and the next interval asks again.
    public func balanceTimeout(_ body: [UInt8]) async throws -> CallbackOutcome {
        let result = try B2CResult(json: body)
        let kept = try await self.recordAnswerOnceAcknowledged(result, accounts: [], reportedAt: self.now(), resultCode: "timeout")
        return self.balanceOutcome(kept, result, what: "Account Balance timeout")
    }

    /// Keeps the answer; one naming no acknowledged query is looked for again for two seconds: the
    /// answer can overtake the write of the acknowledgement it names (Daraja answers fast, and the
    /// acknowledgement is written after its HTTP reply).
    private func recordAnswerOnceAcknowledged(
        _ result: B2CResult, accounts: [MPesaBook.FloatAccount], reportedAt: Date, resultCode: String
    ) async throws -> MPesaBook.BalanceAnswer {
        var kept = MPesaBook.BalanceAnswer.unknown
        for attempt in 0..<5 {
            if attempt > 0 { try await Task.sleep(for: .milliseconds(400)) }
            kept = try await self.book.recordBalanceAnswer(
                conversationID: result.conversationID, originator: result.originatorConversationID, resultCode: resultCode,
                resultText: result.resultDescription, accounts: accounts, reportedAt: reportedAt
            )
            if kept != .unknown || result.conversationID.isEmpty { break }
        }
        return kept
    }

    private func balanceOutcome(_ kept: MPesaBook.BalanceAnswer, _ result: B2CResult, what: String) -> CallbackOutcome {
        let metadata: Logger.Metadata = ["conversation": .string(result.conversationID), "code": .string(result.resultCodeText)]
        switch kept {
        case .kept(let accounts):
            self.logger.info("\(what) kept", metadata: metadata.merging(["accounts": .stringConvertible(accounts)]) { $1 })
            return result.succeeded ? .credited : .failed
        case .repeated:
            return .alreadyFinal
        case .unknown:
            self.logger.warning("\(what) naming no acknowledged query of ours; not trusted, nothing kept", metadata: metadata)
            return .ignored
        }
    }
}
