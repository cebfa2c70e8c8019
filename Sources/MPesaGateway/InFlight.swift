import Foundation
import Jobs
import GatewayActions
import GatewayHTTP
import Logging
import Menus
import Metrics
import MPesa
import ServiceLifecycle
import Synchronization
import Wallet

/// Keys of provider requests queued or running in this process.
final class InFlight: Sendable {
    private let keys = Mutex<Set<String>>([])
    func claim(_ key: String) -> Bool { self.keys.withLock { $0.insert(key).inserted } }
    func release(_ key: String) { _ = self.keys.withLock { $0.remove(key) } }
    func contains(_ key: String) -> Bool { self.keys.withLock { $0.contains(key) } }
}
