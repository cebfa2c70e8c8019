/// One screen as the handset shows it.
public struct Page: Sendable, Hashable {
    public let text: String
    /// `CON` (the user may answer) or `END`.
    public let continues: Bool
    /// The screen it shows, for logs and metrics.
    public let screen: String
}
