import Basics
import Foundation
import Logging
import Postgres
import Synchronization

/// The customers' money on Postgres, to the standard of a real ledger: integer cents, immutable
/// transfers keyed by the caller's idempotency key, and invariants the database enforces
/// (see `Migrations/0001_ledger.sql`).
public final class Wallet: Sendable {
    package let postgres: PostgresClient
    public let pins: PINVault
    /// How long three wrong PINs lock a customer (`PIN_LOCK_MINUTES`, default 30).
    let lockDuration: Duration
    package let limits: WalletLimits
    let logger: Logger
    /// Large sends and withdrawals wait this out after a PIN reset.
    let pinResetCooldown: PINResetCooldown
    /// The time the cooling-off window is measured against (injected by tests).
    let now: @Sendable () -> Date
    /// Gathers concurrent sends, saves and unsaves into shared commits.
    let moves: GroupCommitter<MoveCall>
    /// The customer id last seen for each number: what a send's PIN value is made for before the
    /// database confirms it (``send(from:to:amount:fee:key:pin:)``).
    package let customerIDs = CustomerIDs()
    /// Sends whose PIN the movement's statement answered (right or wrong), for tests.
    package let pinsCheckedInMovements = Atomic<Int>(0)
    /// How concurrent calls share commits: the movements here, and a provider's completions in its
    /// own book.
    package let groupCommit: GroupCommit
    /// The profiles kept for menus (``profile(_:)``); nil reads every one from Postgres.
    public let profiles: CustomerProfiles?
    /// The keys that seal names and texts (``PersonalData``); nil in a wallet that never reads or
    /// writes them (benchmarks of money paths, key checks), where registering is refused.
    public let personalData: PersonalData?

    /// How movements and deposit completions share commits: at most `lanes` batches in flight, each of at most
    /// `maximumBatch` movements. `maximumBatch` 1 turns group commit off.
    public struct GroupCommit: Sendable {
        public var lanes: Int
        public var maximumBatch: Int

        public init(lanes: Int = 1, maximumBatch: Int = 64) {
            self.lanes = lanes
            self.maximumBatch = maximumBatch
        }

        /// Every movement its own transaction, as many at once as the pool allows.
        public static let off = GroupCommit(lanes: 1, maximumBatch: 1)
    }

    public init(
        postgres: PostgresClient, pins: PINVault, lockDuration: Duration = .seconds(30 * 60), limits: WalletLimits = WalletLimits(),
        groupCommit: GroupCommit = GroupCommit(), pinResetCooldown: PINResetCooldown = PINResetCooldown(),
        profiles: CustomerProfiles? = nil, personalData: PersonalData? = nil, now: @escaping @Sendable () -> Date = { Date() },
        logger: Logger = Logger(label: "wallet")
    ) {
        self.postgres = postgres
        self.personalData = personalData
        self.profiles = profiles
        self.pinResetCooldown = pinResetCooldown
        self.now = now
        self.pins = pins
        self.lockDuration = lockDuration
        self.limits = limits
        self.logger = logger
        self.groupCommit = groupCommit
        self.moves = GroupCommitter(
            lanes: groupCommit.lanes, maximumBatch: groupCommit.maximumBatch,
            batch: { calls in try await Self.moveBatch(calls, postgres: postgres, limits: limits) },
            single: { call in try await Self.moveOne(call, postgres: postgres, limits: limits) },
            lane: { body in
                try await postgres.withBlockingConnection { connection in
                    body { calls in
                        calls.count == 1 ? [try Self.moveOne(calls[0], on: connection, limits: limits)] : try Self.moveBatch(calls, on: connection, limits: limits)
                    }
                }
            },
            othersWaiting: { postgres.poolUsage.waiting > 0 }
        )
    }

    /// A registered customer.
    public struct Customer: Sendable, Hashable {
        /// Active customers use the wallet; suspended ones (blocked by an operator) may only check
        /// their balance; closed ones are refused.
        public enum Status: String, Sendable {
            case active, suspended, closed
        }

        public let id: Int64
        public let msisdn: MSISDN
        /// The customer's pseudonymous id: their data key's in the key store, and what the
        /// ledger's rows stay attached to after an erasure.
        public let subject: UUID
        /// The name, sealed with the customer's data key (``Wallet/name(of:)`` opens it); nil once
        /// erased, or for a row `migrate` has not sealed yet.
        public let sealedName: Data?
        /// When the customer's personal data was erased (``PersonalData``): their fields read as erased.
        public let erasedAt: Date?
        public let language: String
        public let status: Status
        public let lockedUntil: Date?
        /// An operator reset the PIN: the next dial must set a new one.
        public let pinResetRequired: Bool
        /// The KYC tier, or nil for the default one.
        public let tier: String?
        /// When the customer last set the PIN an approved reset asked for (the database's time):
        /// the cooling-off window runs from here.
        public let pinResetCompletedAt: Date?

        public var isBlocked: Bool { self.status == .suspended }

        /// True while three wrong PINs keep the customer out.
        public func isLocked(at now: Date = Date()) -> Bool { self.lockedUntil.map { $0 > now } ?? false }
    }

    // MARK: Customers and PINs

    /// Opens a wallet: the customer, a main and a savings account. Weak PINs are refused.
    @discardableResult
    /// `privacyNotice` is the version of the privacy notice the customer was told of and accepted
    /// by registering (menus.json's registration screens), recorded with when.
    public func register(msisdn: MSISDN, name: String, pin: String, language: String, privacyNotice: String? = nil) async throws -> Customer {
        let name = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...60).contains(name.count) else { throw WalletError.invalidArgument("name must be 1 to 60 characters") }
        guard language.count == 2, language.allSatisfy({ $0.isLowercase && $0.isASCII }) else {
            throw WalletError.invalidArgument("language must be a two-letter code")
        }
        guard PINPolicy.isWellFormed(pin) else { throw WalletError.invalidArgument("a PIN is four digits") }
        guard PINPolicy.isAcceptable(pin, msisdn: msisdn.value) else { throw WalletError.weakPIN }
        if let privacyNotice, !(1...40).contains(privacyNotice.count) { throw WalletError.invalidArgument("a privacy notice's version is 1 to 40 characters") }
        let personalData = try self.requirePersonalData()
        // The name is sealed with a data key of the customer's own, made here under a new subject;
        // a registration that fails leaves only an unused key behind.
        let subject = UUID()
        let sealed = try await personalData.seal(name, for: subject, at: .customerName(subject))
        let index = try await personalData.blindIndex(name)
        do {
            return try await self.postgres.transaction { tx in
                // The PIN's value names the customer's id, known once the row exists: the row is
                // written with no value anyone can match, then given its value, in one transaction.
                let row = try await tx.query(
                    """
                    INSERT INTO customers (msisdn, subject, name_sealed, name_index, language, pin_hash, privacy_notice, privacy_accepted_at)
                    VALUES (\(msisdn.value), \(subject.uuidString), \(sealed), \(Self.byteaArray(index))::bytea[], \(language), 'unset', \(privacyNotice),
                            CASE WHEN \(privacyNotice)::text IS NULL THEN NULL ELSE now() END)
                    RETURNING id, msisdn, name_sealed, language, status, locked_until, pin_reset_required, tier, pin_reset_completed_at,
                        subject::text AS subject, erased_at
                    """
                ).single()!
                let customer = try Self.customer(row)
                let value = try await self.pins.value(for: pin, customer: customer.id)
                try await tx.query("UPDATE customers SET pin_hash = \(value) WHERE id = \(customer.id)")
                try await tx.query("INSERT INTO accounts (customer_id, kind) VALUES (\(customer.id), 'main'), (\(customer.id), 'savings')")
                return customer
            }
        } catch let error as PostgresError where error.isUniqueViolation {
            throw WalletError.alreadyRegistered
        }
    }

    /// Drops the kept profile of a customer this process is changing, whatever the outcome: its
    /// own next lookup then reads the change, without waiting for Postgres' notice of it.
    func forgetProfile(_ msisdn: MSISDN) { self.profiles?.changed(msisdn.value) }

    /// The customer behind a number.
    public func customer(_ msisdn: MSISDN) async throws -> Customer {
        guard let row = try await self.postgres.query(
            """
            SELECT id, msisdn, name_sealed, language, status, locked_until, pin_reset_required, tier, pin_reset_completed_at, subject::text AS subject, erased_at
            FROM customers WHERE msisdn = \(msisdn.value)
            """
        ).single() else { throw WalletError.notRegistered }
        let customer = try Self.customer(row)
        self.customerIDs.remember(customer.id, for: msisdn)
        return customer
    }

    /// Checks a PIN. An attempt is reserved atomically before the slow hash is computed, so no
    /// number of concurrent guesses (USSD sessions, SMS commands, replicas) gets more than three
    /// tries past the lock; a fourth while three are being checked is refused as locked. Three
    /// wrong in a row lock the customer: the first lock for the lock duration, the second for a
    /// day, the third until an operator unlocks. A right PIN releases its attempt and starts both
    /// counts again.
    @discardableResult
    public func verifyPIN(_ msisdn: MSISDN, pin: String) async throws -> Customer {
        defer { self.forgetProfile(msisdn) }
        let (customer, stored) = try await self.reservePINAttempt(msisdn)
        return try await self.judge(pin, reserved: customer, stored: stored, msisdn: msisdn)
    }

    /// Judges a PIN attempt already counted for `customer` against their `stored` value: gives it
    /// back when the check itself fails, releases it when right, locks at the limit when wrong.
    func judge(_ pin: String, reserved customer: Customer, stored: String, msisdn: MSISDN) async throws -> Customer {
        defer { self.forgetProfile(msisdn) }
        let check: PINVault.Check
        do {
            check = PINPolicy.isWellFormed(pin) ? try await self.pins.check(pin, customer: customer.id, against: stored) : .wrong
        } catch {
            // The check itself failed (a token unreachable, a key this host lacks): the attempt was
            // never judged, so it is given back; kept, three such failures would shut the customer out.
            try? await self.postgres.query(
                "UPDATE customers SET failed_pin_attempts = greatest(failed_pin_attempts - 1, 0) WHERE id = \(customer.id) AND locked_until IS NULL"
            )
            throw error
        }
        if case .right(let replacement) = check {
            // Releases this attempt and the earlier wrong ones, unless a concurrent wrong one locked
            // the customer meanwhile. A value under an older key (or an scrypt hash) moves to the
            // newest key here, unless the PIN was changed meanwhile.
            let reset = try await self.postgres.query(
                """
                UPDATE customers SET failed_pin_attempts = 0, pin_locks = 0,
                    pin_hash = CASE WHEN pin_hash = \(stored) THEN coalesce(\(replacement), pin_hash) ELSE pin_hash END
                WHERE id = \(customer.id) AND locked_until IS NULL RETURNING id
                """
            )
            if reset.isEmpty { throw WalletError.locked(until: try await self.customer(msisdn).lockedUntil ?? Date()) }
            return customer
        }
        try await self.lockAfterWrongPIN(customer)
        let current = try await self.customer(msisdn)
        if let until = current.lockedUntil, current.isLocked() { throw WalletError.locked(until: until) }
        let used = try await self.postgres.query("SELECT failed_pin_attempts FROM customers WHERE id = \(customer.id)").single()!.decode(Int.self, column: 0)
        throw WalletError.wrongPIN(attemptsLeft: max(0, PINPolicy.attemptsBeforeLock - used))
    }

    /// Counts one PIN attempt before it is checked (a lock that ran out starts a new count): the
    /// customer and their PIN hash, or why no attempt is left.
    private func reservePINAttempt(_ msisdn: MSISDN) async throws -> (Customer, String) {
        guard let row = try await self.postgres.query(
            """
            UPDATE customers SET
                failed_pin_attempts = CASE WHEN locked_until <= now() THEN 1 ELSE failed_pin_attempts + 1 END,
                locked_until = CASE WHEN locked_until <= now() THEN NULL ELSE locked_until END
            WHERE msisdn = \(msisdn.value) AND NOT pin_reset_required
                AND (locked_until <= now() OR (locked_until IS NULL AND failed_pin_attempts < \(PINPolicy.attemptsBeforeLock)))
            RETURNING id, msisdn, name_sealed, language, status, locked_until, pin_reset_required, tier, pin_hash, failed_pin_attempts, pin_reset_completed_at,
                subject::text AS subject, erased_at
            """
        ).single() else {
            let customer = try await self.customer(msisdn)
            if customer.pinResetRequired { throw WalletError.pinResetRequired }
            if let until = customer.lockedUntil, customer.isLocked() { throw WalletError.locked(until: until) }
            // Every attempt left is being checked right now.
            throw WalletError.tooManyAttempts
        }
        let customer = try Self.customer(row)
        self.customerIDs.remember(customer.id, for: msisdn)
        return (customer, try row.decode(String.self, column: 8))
    }

    /// A wrong PIN: its attempt stays counted, and at the limit it locks the customer, for longer
    /// each time in a row (throws ``WalletError/locked(until:)`` then).
    private func lockAfterWrongPIN(_ customer: Customer) async throws {
        let firstLock = Double(self.lockDuration.components.seconds)
        // The lock and its row in the audit trail, in one statement.
        let failed = try await self.postgres.query(
            """
            WITH locked AS (
                UPDATE customers SET
                    pin_locks = pin_locks + 1,
                    locked_until = now() + CASE pin_locks WHEN 0 THEN make_interval(secs => \(firstLock)) WHEN 1 THEN interval '24 hours' ELSE interval '100 years' END,
                    updated_at = now()
                WHERE id = \(customer.id) AND failed_pin_attempts >= \(PINPolicy.attemptsBeforeLock) AND locked_until IS NULL
                RETURNING msisdn, failed_pin_attempts, locked_until, pin_locks
            ), logged AS (
                INSERT INTO audit_log (actor, action, msisdn, before, after)
                SELECT 'system', 'pin.locked', msisdn, jsonb_build_object('locked_until', NULL),
                       jsonb_build_object('locked_until', locked_until, 'locks_in_a_row', pin_locks)
                FROM locked
            )
            SELECT failed_pin_attempts, locked_until FROM locked
            """
        ).single()
        if let failed, let until = try failed.decode(Date?.self, column: 1) {
            self.logger.notice("PIN locked after wrong attempts", metadata: ["customer": .stringConvertible(customer.id)])
            throw WalletError.locked(until: until)
        }
    }

    /// Replaces the PIN after checking the current one.
    public func changePIN(_ msisdn: MSISDN, current: String, new: String) async throws {
        defer { self.forgetProfile(msisdn) }
        let customer = try await self.verifyPIN(msisdn, pin: current)
        guard PINPolicy.isWellFormed(new) else { throw WalletError.invalidArgument("a PIN is four digits") }
        guard PINPolicy.isAcceptable(new, msisdn: msisdn.value), new != current else { throw WalletError.weakPIN }
        let hash = try await self.pins.value(for: new, customer: customer.id)
        try await self.postgres.query(
            "UPDATE customers SET pin_hash = \(hash), pin_change_grant = NULL, pin_change_grant_until = NULL, updated_at = now() WHERE id = \(customer.id)"
        )
    }

    /// How long a PIN-change grant stays good.
    public static let pinChangeGrantLifetime = Duration.seconds(300)

    /// Checks the current PIN and grants one PIN change to `conversation` (the USSD session that
    /// asked) for ``pinChangeGrantLifetime``. The grant lives in the database, bound to the session:
    /// nothing secret or derived from a secret has to travel through the session store between the
    /// screen that asks for the current PIN and the one that sets the new one.
    public func grantPINChange(_ msisdn: MSISDN, pin: String, conversation: String) async throws {
        let customer = try await self.verifyPIN(msisdn, pin: pin)
        try await self.postgres.query(
            """
            UPDATE customers SET pin_change_grant = \(conversation),
                pin_change_grant_until = now() + make_interval(secs => \(Double(Self.pinChangeGrantLifetime.components.seconds)))
            WHERE id = \(customer.id)
            """
        )
    }

    /// Sets a new PIN under a grant from ``grantPINChange(_:pin:conversation:)`` to the same
    /// conversation. A grant that expired, was used, or was given to another session is
    /// `tokenExpired`. A successful change uses the grant up; a weak new PIN leaves it for another try.
    public func changePIN(_ msisdn: MSISDN, conversation: String, new: String) async throws {
        defer { self.forgetProfile(msisdn) }
        let customer = try await self.customer(msisdn)
        if let until = customer.lockedUntil, customer.isLocked() { throw WalletError.locked(until: until) }
        guard PINPolicy.isWellFormed(new) else { throw WalletError.invalidArgument("a PIN is four digits") }
        guard PINPolicy.isAcceptable(new, msisdn: msisdn.value) else { throw WalletError.weakPIN }
        guard let row = try await self.postgres.query(
            """
            SELECT pin_hash FROM customers
            WHERE id = \(customer.id) AND pin_change_grant = \(conversation) AND pin_change_grant_until > now()
            """
        ).single() else { throw WalletError.tokenExpired }
        let current = try row.decode(String.self, column: 0)
        guard try await !self.pins.matches(new, customer: customer.id, stored: current) else { throw WalletError.weakPIN }
        let hash = try await self.pins.value(for: new, customer: customer.id)
        // Only under the grant it was checked with, and only once.
        let updated = try await self.postgres.query(
            """
            UPDATE customers SET pin_hash = \(hash), pin_change_grant = NULL, pin_change_grant_until = NULL, updated_at = now()
            WHERE id = \(customer.id) AND pin_hash = \(current) AND pin_change_grant = \(conversation) AND pin_change_grant_until > now()
            RETURNING id
            """
        )
        if updated.isEmpty { throw WalletError.tokenExpired }
    }

    /// Customers per kind of stored PIN value: (`pvv1`, key version) or (`scrypt`, nil).
    public func pinKeyStatus() async throws -> [(scheme: String, version: Int?, customers: Int64)] {
        try await self.postgres.query("SELECT scheme, key_version, customers FROM ledger_pin_key_status()").map { row in
            (try row.decode(String.self, column: 0), try row.decode(Int?.self, column: 1), try row.decode(Int64.self, column: 2))
        }
    }

    /// Records each key version's check value, and returns the versions whose recorded value
    /// differs: another host made a different key under the same number, and values written under
    /// one would not verify under the other.
    public func checkPINKeys() async throws -> [Int] {
        var mismatched: [Int] = []
        for (version, value) in try await self.pins.checkValues() {
            let recorded = try await self.postgres.query(
                """
                WITH added AS (
                    INSERT INTO pin_key_versions (version, check_value) VALUES (\(version), \(value)) ON CONFLICT (version) DO NOTHING RETURNING check_value
                )
                SELECT check_value FROM added UNION ALL SELECT check_value FROM pin_key_versions WHERE version = \(version)
                """
            ).first.map { try $0.decode(String.self, column: 0) }
            if recorded != value { mismatched.append(version) }
        }
        return mismatched
    }

    /// Sets the language menus and SMS replies use.
    public func setLanguage(_ msisdn: MSISDN, language: String) async throws {
        defer { self.forgetProfile(msisdn) }
        guard language.count == 2, language.allSatisfy({ $0.isLowercase && $0.isASCII }) else {
            throw WalletError.invalidArgument("language must be a two-letter code")
        }
        let updated = try await self.postgres.query(
            "UPDATE customers SET language = \(language), updated_at = now() WHERE msisdn = \(msisdn.value) RETURNING id"
        )
        if updated.isEmpty { throw WalletError.notRegistered }
    }
}
