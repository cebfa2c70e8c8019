import GatewayActions
import GatewayHTTP
import Menus
import Wallet

/// Seals under the PIN vault's seal key (derived apart from the PIN keys): deterministic, so a PIN
/// typed twice (or a hop's `text`) can be compared without keeping it.
public struct VaultSealer: SecretSealer {
    let pins: PINVault
    public init(pins: PINVault) { self.pins = pins }
    public func seal(_ secret: String) -> String { self.pins.seal(secret) }
}
