import Basics
import Settings

/// The ledger's settings: PIN locks and the cooling-off after a reset, the limits of staff
/// corrections, and how movements share commits.
public struct WalletSettings: Sendable {
    /// `PIN_LOCK_MINUTES`: how long three wrong PINs lock a customer; default 30.
    public var pinLockMinutes = 30
    /// `PIN_RESET_COOLDOWN_HOURS` (0 to 720, default 24) and `PIN_RESET_COOLDOWN_LIMIT` (whole
    /// units of the deployment's currency, default 1,000): for that long after a customer sets the PIN an approved reset asked
    /// for, sends and withdrawals above the limit are refused (balance and deposits work), as banks
    /// do after a SIM swap. 0 hours turns the window off.
    public var pinResetCooldown = Wallet.PINResetCooldown()
    /// `LEDGER_DUAL_APPROVAL_ABOVE` (whole units of the currency, default 100,000): corrections and
    /// reversals above it need two approvers. `LEDGER_ADJUST_MAX` (default 1,000,000): no
    /// adjustment may exceed it. Written to the database by `ussd-gateway migrate`, where the
    /// checks run. In minor units.
    public var ledgerDualApprovalAbove: Int64 = 10_000_000
    public var ledgerAdjustMax: Int64 = 100_000_000
    /// `WALLET_COMMIT_LANES` (1 to 64, default 1) and `WALLET_COMMIT_BATCH` (1 to 256, default 64;
    /// 1 turns it off): group commit of wallet movements and deposit completions. One lane runs
    /// batch after batch on one connection; more lanes suit a database server with cores of its
    /// own and many customers (two batches in flight on shared cores wait on each other's rows).
    public var groupCommit = Wallet.GroupCommit()
    /// `PROFILE_CACHE_SIZE` (0 to 10,000,000, default 100,000; 0 turns it off): how many customers'
    /// profiles each gateway keeps for the home menu's lookup on every dial, dropped as Postgres
    /// notifies their changes (``CustomerProfiles``).
    public var profileCacheSize = 100_000
    /// How long personal data of each kind is kept (``Retention``).
    public var retention = Retention()

    public init() {}

    /// The ledger's settings from `reader`, each checked; amounts are read in whole units of `currency`.
    public init(reader: SettingsReader, currency: Currency = .kenyanShilling) throws(ConfigError) {
        self.init()
        self.pinLockMinutes = try reader.integer("PIN_LOCK_MINUTES", default: self.pinLockMinutes, in: 1...1440)
        self.pinResetCooldown.window = try reader.duration(
            "PIN_RESET_COOLDOWN_HOURS", default: self.pinResetCooldown.window, in: 0...720, unit: .seconds(3600))
        // The defaults are whole units (1,000, 100,000 and 1,000,000), whatever the currency.
        let limit = try reader.integer("PIN_RESET_COOLDOWN_LIMIT", default: 1_000, in: 0...1_000_000)
        self.pinResetCooldown.limit = Amount(cents: currency.minor(whole: limit))
        self.ledgerDualApprovalAbove = currency.minor(whole: try reader.integer("LEDGER_DUAL_APPROVAL_ABOVE", default: 100_000, in: 1...1_000_000_000))
        self.ledgerAdjustMax = currency.minor(whole: try reader.integer("LEDGER_ADJUST_MAX", default: 1_000_000, in: 1...1_000_000_000))
        self.groupCommit.lanes = try reader.integer("WALLET_COMMIT_LANES", default: self.groupCommit.lanes, in: 1...64)
        self.groupCommit.maximumBatch = try reader.integer("WALLET_COMMIT_BATCH", default: self.groupCommit.maximumBatch, in: 1...256)
        self.profileCacheSize = try reader.integer("PROFILE_CACHE_SIZE", default: self.profileCacheSize, in: 0...10_000_000)
        self.retention.smsDays = try reader.integer("RETENTION_SMS_DAYS", default: self.retention.smsDays, in: 7...3650)
        self.retention.unknownSenderDays = try reader.integer(
            "RETENTION_UNKNOWN_SENDER_DAYS", default: self.retention.unknownSenderDays, in: 7...3650)
        self.retention.refusedCallbackDays = try reader.integer(
            "RETENTION_REFUSED_CALLBACK_DAYS", default: self.retention.refusedCallbackDays, in: 7...3650)
    }

    /// What the audit trail records of these settings when they change between start-ups: four
    /// eyes, corrections, PIN locks and the cooling-off after a PIN reset.
    public var audited: [String: String] {
        [
            "pin.lock_minutes": String(self.pinLockMinutes),
            "ledger.dual_approval_above": String(self.ledgerDualApprovalAbove),
            "ledger.adjust_max": String(self.ledgerAdjustMax),
            "pin.reset_cooldown_hours": String(self.pinResetCooldown.window.components.seconds / 3600),
            "pin.reset_cooldown_limit": String(self.pinResetCooldown.limit.cents),
        ]
    }
}
