import GatewayActions
import GatewayHTTP
import Menus
import Wallet

/// Keys sealed with the server-side pepper: deterministic, so a PIN typed twice (or a hop's `text`)
/// can be compared without keeping it.
public struct PepperSealer: SecretSealer {
    let pins: PINHasher
    public init(pins: PINHasher) { self.pins = pins }
    public func seal(_ secret: String) -> String { self.pins.seal(secret) }
}
