import Foundation
import Logging
import Postgres

/// The customers' money on Postgres, to the standard of a real ledger: integer cents, immutable
/// transfers keyed by the caller's idempotency key, and invariants the database enforces
/// (see `Migrations/0001_ledger.sql`).
public final class Wallet: Sendable {
    let postgres: PostgresClient
    let pins: PINHasher
    /// How long three wrong PINs lock a customer (`PIN_LOCK_MINUTES`, default 30).
    let lockDuration: Duration
    let limits: WalletLimits
    let logger: Logger

    public init(
        postgres: PostgresClient, pins: PINHasher, lockDuration: Duration = .seconds(30 * 60), limits: WalletLimits = WalletLimits(),
        logger: Logger = Logger(label: "wallet")
    ) {
        self.postgres = postgres
        self.pins = pins
        self.lockDuration = lockDuration
        self.limits = limits
        self.logger = logger
    }

    /// A registered customer.
    public struct Customer: Sendable, Hashable {
        public let id: Int64
        public let msisdn: MSISDN
        public let name: String
        public let language: String
        public let status: String
        public let lockedUntil: Date?

        /// True while three wrong PINs keep the customer out.
        public func isLocked(at now: Date = Date()) -> Bool { self.lockedUntil.map { $0 > now } ?? false }
    }

    // MARK: Customers and PINs

    /// Opens a wallet: the customer, a main and a savings account. Weak PINs are refused.
    @discardableResult
    public func register(msisdn: MSISDN, name: String, pin: String, language: String) async throws -> Customer {
        let name = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...60).contains(name.count) else { throw WalletError.invalidArgument("name must be 1 to 60 characters") }
        guard language.count == 2, language.allSatisfy({ $0.isLowercase && $0.isASCII }) else {
            throw WalletError.invalidArgument("language must be a two-letter code")
        }
        guard PINPolicy.isWellFormed(pin) else { throw WalletError.invalidArgument("a PIN is four digits") }
        guard PINPolicy.isAcceptable(pin) else { throw WalletError.weakPIN }
        let hash = try await self.pins.hash(pin)
        do {
            return try await self.postgres.transaction { tx in
                let row = try await tx.query(
                    """
                    INSERT INTO customers (msisdn, name, language, pin_hash) VALUES (\(msisdn.value), \(name), \(language), \(hash))
                    RETURNING id, msisdn, name, language, status, locked_until
                    """
                ).single()!
                let customer = try Self.customer(row)
                try await tx.query("INSERT INTO accounts (customer_id, kind) VALUES (\(customer.id), 'main'), (\(customer.id), 'savings')")
                return customer
            }
        } catch let error as PostgresError where error.isUniqueViolation {
            throw WalletError.alreadyRegistered
        }
    }

    /// The customer behind a number.
    public func customer(_ msisdn: MSISDN) async throws -> Customer {
        guard let row = try await self.postgres.query(
            "SELECT id, msisdn, name, language, status, locked_until FROM customers WHERE msisdn = \(msisdn.value)"
        ).single() else { throw WalletError.notRegistered }
        return try Self.customer(row)
    }

    /// Checks a PIN. Three wrong in a row lock the customer for the lock duration; a right one
    /// resets the count. The slow hash runs outside any transaction; the count is updated
    /// atomically, so concurrent wrong attempts cannot undercount.
    @discardableResult
    public func verifyPIN(_ msisdn: MSISDN, pin: String) async throws -> Customer {
        guard let row = try await self.postgres.query(
            "SELECT id, msisdn, name, language, status, locked_until, pin_hash, failed_pin_attempts FROM customers WHERE msisdn = \(msisdn.value)"
        ).single() else { throw WalletError.notRegistered }
        let customer = try Self.customer(row)
        if let until = customer.lockedUntil, customer.isLocked() { throw WalletError.locked(until: until) }
        let matches = PINPolicy.isWellFormed(pin) ? try await self.pins.verify(pin, against: try row.decode(String.self, column: 6)) : false
        if matches, customer.lockedUntil == nil, try row.decode(Int.self, column: 7) == 0 {
            // Nothing to reset: no write (the usual case, and a PIN hop's most expensive statement).
            return customer
        }
        if matches {
            // A right PIN resets the count, unless a concurrent wrong one locked the customer meanwhile.
            let reset = try await self.postgres.query(
                """
                UPDATE customers SET failed_pin_attempts = 0, locked_until = NULL, updated_at = now()
                WHERE id = \(customer.id) AND (locked_until IS NULL OR locked_until <= now())
                RETURNING id
                """
            )
            if reset.isEmpty {
                throw WalletError.locked(until: try await self.customer(msisdn).lockedUntil ?? Date())
            }
            return customer
        }
        let lockSeconds = Int(self.lockDuration.components.seconds)
        let failed = try await self.postgres.query(
            """
            UPDATE customers SET
                failed_pin_attempts = CASE WHEN locked_until IS NOT NULL AND locked_until <= now() THEN 1 ELSE failed_pin_attempts + 1 END,
                locked_until = CASE
                    WHEN (CASE WHEN locked_until IS NOT NULL AND locked_until <= now() THEN 1 ELSE failed_pin_attempts + 1 END) >= \(PINPolicy.attemptsBeforeLock)
                    THEN now() + make_interval(secs => \(lockSeconds))
                    WHEN locked_until <= now() THEN NULL
                    ELSE locked_until END,
                updated_at = now()
            WHERE id = \(customer.id)
            RETURNING failed_pin_attempts, locked_until
            """
        ).single()!
        let (attempts, until) = try failed.decode((Int, Date?).self)
        if let until, until > Date() { throw WalletError.locked(until: until) }
        throw WalletError.wrongPIN(attemptsLeft: max(0, PINPolicy.attemptsBeforeLock - attempts))
    }

    /// Replaces the PIN after checking the current one.
    public func changePIN(_ msisdn: MSISDN, current: String, new: String) async throws {
        let customer = try await self.verifyPIN(msisdn, pin: current)
        guard PINPolicy.isWellFormed(new) else { throw WalletError.invalidArgument("a PIN is four digits") }
        guard PINPolicy.isAcceptable(new), new != current else { throw WalletError.weakPIN }
        let hash = try await self.pins.hash(new)
        try await self.postgres.query("UPDATE customers SET pin_hash = \(hash), updated_at = now() WHERE id = \(customer.id)")
    }

    /// How long a PIN-change token stays good.
    public static let pinChangeTokenLifetime: TimeInterval = 300

    /// Checks the current PIN and returns a short-lived token that lets ``changePIN(_:token:new:)``
    /// set a new one without the current PIN passing through another screen. The token is a MAC
    /// over the number, its expiry and the current PIN hash, so it is worthless once the PIN
    /// changes (single use) or the expiry passes, and it holds nothing secret itself.
    public func pinChangeToken(_ msisdn: MSISDN, pin: String, now: Date = Date()) async throws -> String {
        try await self.verifyPIN(msisdn, pin: pin)
        let expiry = Int(now.timeIntervalSince1970 + Self.pinChangeTokenLifetime)
        return "\(expiry)-" + String(self.pins.seal("pin-change|\(msisdn.value)|\(expiry)|\(try await self.pinHash(msisdn))").prefix(20))
    }

    /// Sets a new PIN with a token from ``pinChangeToken(_:pin:now:)``. An expired, used or forged
    /// token is `tokenExpired`.
    public func changePIN(_ msisdn: MSISDN, token: String, new: String, now: Date = Date()) async throws {
        let customer = try await self.customer(msisdn)
        if let until = customer.lockedUntil, customer.isLocked(at: now) { throw WalletError.locked(until: until) }
        let parts = token.split(separator: "-", maxSplits: 1)
        guard parts.count == 2, let expiry = Int(parts[0]), TimeInterval(expiry) >= now.timeIntervalSince1970 else { throw WalletError.tokenExpired }
        let current = try await self.pinHash(msisdn)
        let expected = String(self.pins.seal("pin-change|\(msisdn.value)|\(expiry)|\(current)").prefix(20))
        guard Array(expected.utf8).count == parts[1].utf8.count,
            zip(Array(expected.utf8), Array(parts[1].utf8)).reduce(UInt8(0), { $0 | ($1.0 ^ $1.1) }) == 0
        else { throw WalletError.tokenExpired }
        guard PINPolicy.isWellFormed(new) else { throw WalletError.invalidArgument("a PIN is four digits") }
        guard PINPolicy.isAcceptable(new), try await !self.pins.verify(new, against: current) else { throw WalletError.weakPIN }
        let hash = try await self.pins.hash(new)
        // Only if the PIN did not change meanwhile: the token was for that PIN.
        let updated = try await self.postgres.query(
            "UPDATE customers SET pin_hash = \(hash), updated_at = now() WHERE id = \(customer.id) AND pin_hash = \(current) RETURNING id"
        )
        if updated.isEmpty { throw WalletError.tokenExpired }
    }

    private func pinHash(_ msisdn: MSISDN) async throws -> String {
        guard let row = try await self.postgres.query("SELECT pin_hash FROM customers WHERE msisdn = \(msisdn.value)").single() else {
            throw WalletError.notRegistered
        }
        return try row.decode(String.self, column: 0)
    }

    /// Sets the language menus and SMS replies use.
    public func setLanguage(_ msisdn: MSISDN, language: String) async throws {
        guard language.count == 2, language.allSatisfy({ $0.isLowercase && $0.isASCII }) else {
            throw WalletError.invalidArgument("language must be a two-letter code")
        }
        let updated = try await self.postgres.query(
            "UPDATE customers SET language = \(language), updated_at = now() WHERE msisdn = \(msisdn.value) RETURNING id"
        )
        if updated.isEmpty { throw WalletError.notRegistered }
    }

    // MARK: Balances

    /// A customer's money: posted balances, and what pending withdrawals hold back.
    public struct Balances: Sendable, Hashable {
        public let main: Amount
        public let savings: Amount
        /// Reserved by pending withdrawals; not spendable.
        public let held: Amount
        public var available: Amount { Amount(cents: self.main.cents - self.held.cents) }

        public init(main: Amount, savings: Amount, held: Amount) {
            self.main = main
            self.savings = savings
            self.held = held
        }
    }

    public func balances(_ msisdn: MSISDN) async throws -> Balances {
        try await self.postgres.withConnection { connection in
            guard let balances = try await self.balances(connection, msisdn) else { throw WalletError.notRegistered }
            return balances
        }
    }

    /// A customer's balances as `connection` sees them (inside its transaction, if any); nil when unknown.
    func balances(_ connection: PostgresConnection, _ msisdn: MSISDN) async throws -> Balances? {
        let rows = try await connection.query(
            "SELECT a.kind, a.balance, a.held FROM accounts a JOIN customers c ON c.id = a.customer_id WHERE c.msisdn = \(msisdn.value)"
        )
        guard !rows.isEmpty else { return nil }
        var main = Amount.zero, savings = Amount.zero, held = Amount.zero
        for row in rows {
            let (kind, balance, hold) = try row.decode((String, Int64, Int64).self)
            if kind == "main" {
                main = Amount(cents: balance)
                held = Amount(cents: hold)
            } else {
                savings = Amount(cents: balance)
            }
        }
        return Balances(main: main, savings: savings, held: held)
    }

    /// What an account has sent and withdrawn so far in the current Nairobi day, for the daily
    /// limit (a counter the transfer triggers keep on the account row, migration 0002).
    func debitsToday(_ connection: PostgresConnection, account: Int64) async throws -> Int64 {
        try await connection.query(
            """
            SELECT CASE WHEN debits_day = (now() AT TIME ZONE 'Africa/Nairobi')::date THEN debits_today ELSE 0 END
            FROM accounts WHERE id = \(account)
            """
        ).single()!.decode(Int64.self, column: 0)
    }

    static func customer(_ row: PostgresRow) throws -> Customer {
        let (id, msisdn, name, language, status, lockedUntil) = try row.decode((Int64, String, String, String, String, Date?).self)
        return Customer(id: id, msisdn: MSISDN(msisdn)!, name: name, language: language, status: status, lockedUntil: lockedUntil)
    }
}
