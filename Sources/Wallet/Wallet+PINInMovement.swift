import Basics
import Foundation
import Synchronization

/// What the PIN checked inside a movement's statement (migration 0017) answers instead of moving.
enum PINInMovement: String, Error {
    /// Not checked and nothing changed: a lock, a pending reset, too many attempts being checked,
    /// a cooling-off window, or a number that no longer belongs to the id.
    case unavailable = "pin_unavailable"
    /// Did not match the value under the newest key; the attempt is counted and still to be judged.
    case wrong = "pin_wrong"

    /// The PIN as the movement carries it.
    struct Check: Sendable {
        /// The customer id the value was made for.
        let customer: Int64
        /// The PIN's value under the newest key (``PINVault/value(for:customer:)``).
        let value: String
        /// A PIN reset completed after this is still in its cooling-off window.
        let coolingSince: Date
    }
}

/// The customer id last seen for each number, at most `capacity` of them (all are forgotten when
/// it fills). An id is only a guess the database checks: a number that changed hands since makes
/// the send take the usual way.
package final class CustomerIDs: Sendable {
    private let ids = Mutex<[String: Int64]>([:])
    let capacity: Int

    init(capacity: Int = 100_000) {
        self.capacity = capacity
    }

    func id(of msisdn: MSISDN) -> Int64? {
        self.ids.withLock { $0[msisdn.value] }
    }

    package func remember(_ id: Int64, for msisdn: MSISDN) {
        self.ids.withLock { ids in
            if ids.count >= self.capacity, ids[msisdn.value] == nil { ids.removeAll(keepingCapacity: true) }
            ids[msisdn.value] = id
        }
    }
}

extension Wallet {
    /// Checks the sender's PIN, then sends as ``send(from:to:amount:fee:key:)``, with the same
    /// answers as ``verifyPIN(_:pin:)`` followed by ``checkCoolingOff(_:amount:)`` and that send.
    ///
    /// When the sender's id is known (their profile was read, or a PIN checked, since this
    /// process started), the PIN travels with the movement and is checked in its statement: one
    /// round trip and one commit instead of three. A wrong value there is judged here (an older
    /// key's value may still be right) without being counted twice; anything the statement could
    /// not decide takes the usual way.
    public func send(from sender: MSISDN, to recipient: MSISDN, amount: Amount, fee: Amount = .zero, key: IdempotencyKey, pin: String) async throws -> TransferReceipt {
        if PINPolicy.isWellFormed(pin), let id = self.customerIDs.id(of: sender),
            let value = try? await self.pins.value(for: pin, customer: id)
        {
            let window = TimeInterval(self.pinResetCooldown.window.components.seconds)
            let check = PINInMovement.Check(customer: id, value: value, coolingSince: self.now().addingTimeInterval(-window))
            do {
                let receipt = try await self.move(
                    kind: "p2p", key: key, amount: amount, fee: fee, initiator: sender,
                    debit: .customer(sender, "main"), credit: .customer(recipient, "main"), pin: check
                )
                self.pinsCheckedInMovements.add(1, ordering: .relaxed)
                return receipt
            } catch PINInMovement.unavailable {
                // The usual way below says why.
            } catch PINInMovement.wrong {
                self.pinsCheckedInMovements.add(1, ordering: .relaxed)
                let (customer, stored) = try await self.counted(id)
                try await self.checkCoolingOff(try await self.judge(pin, reserved: customer, stored: stored, msisdn: sender), amount: amount)
                return try await self.send(from: sender, to: recipient, amount: amount, fee: fee, key: key)
            } catch let refusal as WalletError {
                // Refused after a right PIN (insufficient funds, a limit): the statement answered.
                self.pinsCheckedInMovements.add(1, ordering: .relaxed)
                throw refusal
            }
        }
        try await self.checkCoolingOff(try await self.verifyPIN(sender, pin: pin), amount: amount)
        return try await self.send(from: sender, to: recipient, amount: amount, fee: fee, key: key)
    }

    /// The customer whose attempt a movement counted, and their stored PIN value.
    private func counted(_ id: Int64) async throws -> (Customer, String) {
        guard let row = try await self.postgres.query(
            """
            SELECT id, msisdn, name_sealed, language, status, locked_until, pin_reset_required, tier, pin_hash, failed_pin_attempts, pin_reset_completed_at,
                subject::text AS subject, erased_at
            FROM customers WHERE id = \(id)
            """
        ).single() else { throw WalletError.notRegistered }
        return (try Self.customer(row), try row.decode(String.self, column: 8))
    }
}
