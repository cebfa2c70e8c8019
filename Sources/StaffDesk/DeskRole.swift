/// What a member of staff does at the desk, and the database group their login is in (migration
/// 0023 checks the pair): the desk shows and accepts only what the role allows, and the database
/// refuses what the group may not do whatever the desk says.
public enum DeskRole: String, CaseIterable, Sendable, Codable {
    /// Looks customers up, unlocks, blocks, asks for PIN resets and decides another agent's.
    case support
    /// Asks for adjustments and reversals; works the M-Pesa review queue and the daily report.
    case financeMaker = "finance-maker"
    /// Decides adjustments and reversals (never their own: the database compares the person).
    case financeApprover = "finance-approver"
    /// Reads everything, changes nothing.
    case auditor
    /// Staff accounts; may decide a PIN reset.
    case admin

    /// The group of issue 20 the person's database role belongs to.
    public var databaseGroup: String {
        switch self {
        case .support, .financeMaker, .admin: return "ussd_operator"
        case .financeApprover: return "ussd_approver"
        case .auditor: return "ussd_report"
        }
    }

    /// As a person reads it.
    public var title: String {
        switch self {
        case .support: return "Support"
        case .financeMaker: return "Finance (maker)"
        case .financeApprover: return "Finance (approver)"
        case .auditor: return "Auditor"
        case .admin: return "Administrator"
        }
    }

    public func may(_ permission: DeskPermission) -> Bool {
        switch permission {
        case .viewCustomers, .viewRequests: return true
        case .searchByName: return self != .auditor
        case .unlock, .block, .askPINReset: return self == .support
        case .decidePINReset: return self == .support || self == .admin
        case .askCorrection: return self == .financeMaker
        case .decideCorrection: return self == .financeApprover
        case .viewReview, .viewReport: return [.financeMaker, .financeApprover, .auditor].contains(self)
        case .resolveReview: return self == .financeMaker || self == .financeApprover
        case .viewAudit: return self == .auditor || self == .admin
        case .viewStaff: return self == .admin || self == .auditor
        case .manageStaff: return self == .admin
        }
    }
}

/// One thing a page shows or a form does; ``DeskRole/may(_:)`` says who.
public enum DeskPermission: String, Sendable, CaseIterable {
    case viewCustomers, searchByName, unlock, block, askPINReset, decidePINReset, askCorrection, decideCorrection
    case viewRequests, viewReview, resolveReview, viewReport, viewAudit, viewStaff, manageStaff
}
