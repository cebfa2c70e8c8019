import Basics
import Foundation
@testable import GatewayActions
@testable import GatewayHTTP
import GatewayTelemetry
import HTTPTypes
import Hummingbird
import HummingbirdTesting
@testable import MPesaGateway
import Menus
import MetricsTestKit
import Postgres
@testable import SMSChannel
import TestSupport
import Testing
@testable import USSDChannel
@testable import USSDGateway
import Wallet

/// A fresh Safaricom-style local number for one test (sessions, rate counters and resume snapshots
/// are keyed by number in the shared Redis).
/// A random number whose last four digits are none of the typed PINs (a PIN may not be the
/// number's own last four digits).
func freshLocal() -> String {
    while true {
        let local = "07" + String(format: "%08d", Int.random(in: 0..<100_000_000))
        if !TypedPINs.all.contains(String(local.suffix(4))) { return local }
    }
}

/// A number as the menus show it: `0712***678`.
func masked(_ local: String) -> String { local.prefix(4) + "***" + local.suffix(3) }
