import Foundation
@testable import GatewayActions
@testable import GatewayHTTP
import MPesa
@testable import MPesaGateway
import Menus
@testable import SMSChannel
import Settings
import TestSupport
import Testing
@testable import USSDChannel
import USSDGateway
import Wallet

/// The `ussd-gateway` executable, built next to the test bundle by `swift build --build-tests`.
enum GatewayBinary {
    static var path: String {
        let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent("ussd-gateway").path
    }
}

/// Files of this repository the tests read.
enum RepoFiles {
    static var menus: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("menus.json").path
    }
}
