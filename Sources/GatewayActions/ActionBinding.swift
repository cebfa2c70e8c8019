import Menus
import Wallet

/// One action the menus may name: its contract (the arguments it reads, the variables it sets,
/// the error codes it fails with, which `menus lint` checks) next to what it does.
public struct ActionBinding: Sendable {
    public let spec: ActionSpec
    /// It looks something up and changes nothing: its hop needs no claim.
    public let isLookup: Bool
    let perform: @Sendable (WalletActions, ActionRequest, ActionContext) async throws -> ActionResult

    init(
        _ spec: ActionSpec, isLookup: Bool = false, _ perform: @escaping @Sendable (WalletActions, ActionRequest, ActionContext) async throws -> ActionResult
    ) {
        self.spec = spec
        self.isLookup = isLookup
        self.perform = perform
    }
}
