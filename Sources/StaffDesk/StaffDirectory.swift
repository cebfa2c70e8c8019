import Basics
import ConnectionPool
import Foundation
import Postgres
import Synchronization
import Wallet

/// A member of staff as the desk knows them (migration 0023's `staff`).
public struct StaffMember: Sendable, Hashable {
    public let login: String
    public let displayName: String
    public let role: DeskRole
    let passwordHash: String
    let totpSecret: String
    public let totpShownAt: Date?
    public let totpEnrolledAt: Date?
    public let failedAttempts: Int
    public let lockedUntil: Date?
    public let sessionEpoch: Int
    public let disabledAt: Date?
    public let lastSignedInAt: Date?
    public let createdAt: Date
    public let createdBy: String

    public func isLocked(at now: Date) -> Bool { self.lockedUntil.map { $0 > now } ?? false }
}

/// Why a staff account could not be made or changed.
public struct StaffError: Error, Sendable, Hashable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The staff accounts, read and changed by the desk's own login (which may update sign-in state
/// only), and created on the command line by the schema's owner. Password hashing runs on a
/// thread of its own.
public final class StaffDirectory: Sendable {
    let postgres: PostgresClient
    private let hashing = OnDemandThreadPool(numberOfThreads: 1)
    /// Passwords being checked or waiting: past ``maximumWaiting`` a sign-in is refused as busy, so
    /// a flood of sign-ins cannot queue every real one behind it for minutes.
    private let waiting = Mutex(0)
    static let maximumWaiting = 16

    /// Refusal rows written in the current minute, and those left out since the last one written.
    private let refusals = Mutex<(minute: Int64, written: Int, suppressed: Int)>((0, 0, 0))
    /// At most this many refusal rows a minute reach the trail from one process: a flood of forged
    /// posts or guesses (from anyone who reaches the admin listener) cannot fill it. The next row
    /// written says how many were left out before it (`suppressed_before`).
    static let refusalsPerMinute = 60
    static let refusalActions: Set<String> = [
        "desk.post_refused", "desk.signin_refused", "desk.csrf_refused", "desk.session_expired", "desk.forbidden", "desk.password_refused",
        "desk.decision_refused",
    ]
    let now: @Sendable () -> Date

    public init(postgres: PostgresClient, now: @escaping @Sendable () -> Date = { Date() }) {
        self.postgres = postgres
        self.now = now
    }

    public func shutdown() async { await self.hashing.shutdown() }

    static let columns = """
        login, display_name, desk_role, password_hash, totp_secret, totp_shown_at, totp_enrolled_at, failed_attempts, locked_until, session_epoch,
        disabled_at, last_signed_in_at, created_at, created_by
        """

    static func member(_ row: PostgresRow) throws -> StaffMember {
        guard let role = DeskRole(rawValue: try row.decode(String.self, column: 2)) else { throw StaffError("an unknown desk role") }
        return StaffMember(
            login: try row.decode(String.self, column: 0), displayName: try row.decode(String.self, column: 1), role: role,
            passwordHash: try row.decode(String.self, column: 3), totpSecret: try row.decode(String.self, column: 4),
            totpShownAt: try row.decode(Date?.self, column: 5), totpEnrolledAt: try row.decode(Date?.self, column: 6),
            failedAttempts: try row.decode(Int.self, column: 7), lockedUntil: try row.decode(Date?.self, column: 8),
            sessionEpoch: try row.decode(Int.self, column: 9), disabledAt: try row.decode(Date?.self, column: 10),
            lastSignedInAt: try row.decode(Date?.self, column: 11), createdAt: try row.decode(Date.self, column: 12),
            createdBy: try row.decode(String.self, column: 13)
        )
    }

    public func member(_ login: String) async throws -> StaffMember? {
        guard Self.isLogin(login) else { return nil }
        return try await self.postgres.query("SELECT \(unescaped: Self.columns) FROM staff WHERE login = \(login)").single().map(Self.member)
    }

    public func all() async throws -> [StaffMember] {
        try await self.postgres.query("SELECT \(unescaped: Self.columns) FROM staff ORDER BY login").map(Self.member)
    }

    /// Whether `password` is the member's, checked off the event loop; an unknown login is checked
    /// against a decoy so that it takes as long.
    public func checkPassword(_ password: String, of member: StaffMember?) async throws -> Bool {
        let stored = member?.passwordHash ?? StaffPassword.decoy
        let admitted = self.waiting.withLock { count -> Bool in
            guard count < Self.maximumWaiting else { return false }
            count += 1
            return true
        }
        guard admitted else { throw StaffError("the desk is busy checking sign-ins: try again in a moment") }
        defer { self.waiting.withLock { $0 -= 1 } }
        let right = try await self.hashing.run { StaffPassword.verify(password, against: stored) }
        return right && member != nil
    }

    /// Hashes `password` off the event loop.
    public func hash(_ password: String) async throws -> String {
        try await self.hashing.run { try StaffPassword.hash(password) }
    }

    /// Reserves one try (a password or a code) before it is judged, so that tries sent at once
    /// cannot outrun the lockout: at most `limit` are judged before the account locks. Nil when the
    /// account may not try at `now`: locked or disabled. A try past the limit (tries in flight, or
    /// one lost to a crash before it was judged) locks the account for `lockFor` then and there, so
    /// a count can never block an account without a lock that ends.
    public func reserveAttempt(_ login: String, limit: Int, lockFor: Duration, now: Date = Date()) async throws -> Int? {
        let row = try await self.postgres.query(
            """
            UPDATE staff SET
                failed_attempts = CASE WHEN failed_attempts >= \(limit) THEN 0 ELSE failed_attempts + 1 END,
                locked_until = CASE WHEN failed_attempts >= \(limit) THEN \(now.addingTimeInterval(lockFor.inSeconds)) ELSE locked_until END
            WHERE login = \(login) AND disabled_at IS NULL AND (locked_until IS NULL OR locked_until <= \(now))
            RETURNING failed_attempts, locked_until IS NOT NULL AND locked_until > \(now)
            """
        ).single()
        guard let (count, locked) = try row?.decode((Int, Bool).self), !locked else { return nil }
        return count
    }

    /// A reserved try that was right (the password: the code is still to come) no longer counts.
    public func releaseAttempt(_ login: String) async throws {
        try await self.postgres.query("UPDATE staff SET failed_attempts = greatest(failed_attempts - 1, 0) WHERE login = \(login)")
    }

    /// A reserved try that was wrong stays counted; at `limit` the account locks for `lockFor` (and
    /// the count starts again). The lock's end when this failure locked it.
    public func recordFailure(_ login: String, limit: Int, lockFor: Duration, now: Date = Date()) async throws -> Date? {
        try await self.postgres.query(
            """
            UPDATE staff SET failed_attempts = 0, locked_until = \(now.addingTimeInterval(lockFor.inSeconds))
            WHERE login = \(login) AND failed_attempts >= \(limit) AND (locked_until IS NULL OR locked_until <= \(now))
            RETURNING locked_until
            """
        ).single()?.decode(Date.self, column: 0)
    }

    /// Takes a second-factor code's step: true only when it is later than the last one taken (a
    /// code is never taken twice, even by two requests at once), the account is neither locked nor
    /// disabled, and no reset or sign-out everywhere came since the password (`epoch`). Confirms an
    /// enrolment, clears the failures and notes the sign-in.
    public func acceptSecondFactor(_ login: String, step: Int64, epoch: Int, now: Date = Date()) async throws -> Bool {
        try await !self.postgres.query(
            """
            UPDATE staff SET totp_last_step = \(step), failed_attempts = 0, totp_enrolled_at = coalesce(totp_enrolled_at, now()), last_signed_in_at = now()
            WHERE login = \(login) AND totp_last_step < \(step) AND disabled_at IS NULL AND (locked_until IS NULL OR locked_until <= \(now))
                AND session_epoch = \(epoch)
            RETURNING login
            """
        ).isEmpty
    }

    /// A new secret for a member who never saw one (created in the desk's absence of a terminal, or
    /// reset by an administrator), noted as shown: nil when one was shown already.
    public func showNewSecret(_ login: String) async throws -> String? {
        let secret = StaffTOTP.newSecret()
        let rows = try await self.postgres.query(
            """
            UPDATE staff SET totp_secret = \(secret), totp_shown_at = now()
            WHERE login = \(login) AND totp_enrolled_at IS NULL AND totp_shown_at IS NULL RETURNING login
            """
        )
        return rows.isEmpty ? nil : secret
    }

    /// Ends every session of `login` (each carries the epoch it began in).
    public func signOutEverywhere(_ login: String) async throws {
        try await self.postgres.query("UPDATE staff SET session_epoch = session_epoch + 1 WHERE login = \(login)")
    }

    /// Lifts a lock before its time (an administrator, after checking with the member).
    public func unlock(_ login: String) async throws -> Bool {
        try await !self.postgres.query("UPDATE staff SET failed_attempts = 0, locked_until = NULL WHERE login = \(login) RETURNING login").isEmpty
    }

    /// An administrator's changes; each also ends the member's sessions. False when no such member.
    public func setDisabled(_ login: String, _ disabled: Bool) async throws -> Bool {
        try await !self.postgres.query(
            """
            UPDATE staff SET disabled_at = CASE WHEN \(disabled) THEN coalesce(disabled_at, now()) END, session_epoch = session_epoch + 1,
                failed_attempts = 0, locked_until = NULL
            WHERE login = \(login) RETURNING login
            """
        ).isEmpty
    }

    public func resetPassword(_ login: String, hash: String) async throws -> Bool {
        try await !self.postgres.query(
            "UPDATE staff SET password_hash = \(hash), session_epoch = session_epoch + 1, failed_attempts = 0, locked_until = NULL WHERE login = \(login) RETURNING login"
        ).isEmpty
    }

    /// The member enrols again at their next sign-in, with a secret shown then.
    public func resetSecondFactor(_ login: String) async throws -> Bool {
        try await !self.postgres.query(
            """
            UPDATE staff SET totp_secret = \(StaffTOTP.newSecret()), totp_shown_at = NULL, totp_enrolled_at = NULL, session_epoch = session_epoch + 1
            WHERE login = \(login) RETURNING login
            """
        ).isEmpty
    }

    /// Writes one of the desk's own rows to the audit trail (`desk.*`, under the desk's login, as
    /// migration 0023 allows): sign-ins, refusals, staff changes. `login` is whom it concerns.
    public func audit(_ action: String, login: String?, reason: String? = nil, details: [String: String] = [:]) async throws {
        var after = details
        if Self.refusalActions.contains(action) {
            let minute = Int64(self.now().timeIntervalSince1970 / 60)
            let suppressed = self.refusals.withLock { state -> Int? in
                if state.minute != minute { (state.minute, state.written) = (minute, 0) }
                guard state.written < Self.refusalsPerMinute else {
                    state.suppressed += 1
                    return nil
                }
                state.written += 1
                defer { state.suppressed = 0 }
                return state.suppressed
            }
            guard let suppressed else { return }
            if suppressed > 0 { after["suppressed_before"] = String(suppressed) }
        }
        if let login { after["login"] = String(login.prefix(63)) }
        let json = String(decoding: try JSONSerialization.data(withJSONObject: after, options: [.sortedKeys]), as: UTF8.self)
        try await self.postgres.query(
            """
            INSERT INTO audit_log (actor, action, reason, after)
            VALUES ('desk', \(action), \(reason.map { String($0.prefix(500)) }.flatMap { $0.isEmpty ? nil : $0 }), \(json)::jsonb)
            """
        )
    }

    static func isLogin(_ text: String) -> Bool {
        text.range(of: #"^[a-z_][a-z0-9_]{0,62}$"#, options: .regularExpression) != nil
    }
}

extension StaffDirectory {
    /// What creating a member of staff made: the sign-in to hand over once.
    public struct Created: Sendable {
        public let member: StaffMember
        /// The password, when one was generated.
        public let password: String?
        public let totpSecret: String
    }

    /// Creates a member of staff, run by the schema's owner (or a login that may create roles):
    /// their database role in the group `role` maps to (a role without LOGIN unless it exists: they
    /// work through the desk), the desk's right to switch to it, and the account with a scrypt hash
    /// of `password` (generated when nil) and a TOTP secret, noted as shown (the caller prints it).
    public static func create(
        owner postgres: PostgresClient, login: String, displayName: String, role: DeskRole, password: String?, cost: StaffPassword.Cost = .standard
    ) async throws -> Created {
        guard Self.isLogin(login) else { throw StaffError("a login is lower-case letters, digits and _, at most 63 characters") }
        let name = displayName.trimmingCharacters(in: .whitespaces)
        guard (1...100).contains(name.count), !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw StaffError("a name is 1 to 100 characters")
        }
        if let password, let problem = StaffPassword.problem(password) { throw StaffError(problem) }
        let chosen = password ?? StaffPassword.generate()
        let hash = try StaffPassword.hash(chosen, cost: cost)
        let secret = StaffTOTP.newSecret()
        _ = try await DatabaseRoles.createLogin(postgres, name: login, group: role.databaseGroup, password: nil, canLogIn: false)
        let row = try await postgres.transaction { tx in
            let row = try await tx.query(
                """
                INSERT INTO staff (login, display_name, desk_role, password_hash, totp_secret, totp_shown_at)
                VALUES (\(login), \(name), \(role.rawValue), \(hash), \(secret), now())
                ON CONFLICT (login) DO NOTHING
                RETURNING \(unescaped: Self.columns)
                """
            ).single()
            guard let row else { throw StaffError("\(login) already has a desk account") }
            try await tx.query("SELECT desk_admit_all()")
            return row
        }
        return Created(member: try Self.member(row), password: password == nil ? chosen : nil, totpSecret: secret)
    }

    /// Break-glass, run by the schema's owner: a new password (generated when nil) and a new
    /// second factor for `login`, every session ended, the lock lifted (a disabled account stays
    /// disabled), written to the audit trail; the caller prints both once.
    public static func reset(owner postgres: PostgresClient, login: String, password: String?) async throws -> Created {
        if let password, let problem = StaffPassword.problem(password) { throw StaffError(problem) }
        let chosen = password ?? StaffPassword.generate()
        let secret = StaffTOTP.newSecret()
        let hash = try StaffPassword.hash(chosen)
        let row = try await postgres.transaction { tx in
            guard
                let row = try await tx.query(
                    """
                    UPDATE staff SET password_hash = \(hash), totp_secret = \(secret), totp_shown_at = now(), totp_enrolled_at = NULL,
                        session_epoch = session_epoch + 1, failed_attempts = 0, locked_until = NULL
                    WHERE login = \(login) RETURNING \(unescaped: Self.columns)
                    """
                ).single()
            else { throw StaffError("\(login) has no desk account") }
            try await tx.query(
                """
                INSERT INTO audit_log (actor, action, after)
                VALUES (current_user, 'desk.staff_reset', jsonb_build_object('login', \(login)::text, 'by', current_user::text, 'change', 'password and second factor'))
                """
            )
            return row
        }
        return Created(member: try Self.member(row), password: password == nil ? chosen : nil, totpSecret: secret)
    }
}
