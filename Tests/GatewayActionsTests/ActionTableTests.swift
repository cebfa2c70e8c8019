import Foundation
import Menus
import Testing
@testable import GatewayActions

/// The one action table: each action's contract and its implementation side by side.
@Suite struct ActionTableTests {
    static var menus: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("menus.json")
    }

    @Test func theDefaultMenusNameOnlyBoundActionsAndUseTheirContracts() throws {
        let graph = try MenuGraph.load(contentsOf: Self.menus)
        #expect(graph.lint(actions: ActionTable.specs) == [])
    }

    @Test func eachActionIsBoundOnceAndOnlyLookupsSkipTheClaim() {
        let names = ActionTable.all.map(\.spec.name)
        #expect(Set(names).count == names.count, "no action bound twice")
        #expect(ActionTable.all.filter(\.isLookup).map(\.spec.name) == ["wallet.profile", "wallet.fee"], "every other action may change something")
    }

    @Test func aProvidersOutcomeIsWordedForTheMenus() {
        #expect(ActionTable.result(.prompted) == .success([:]))
        #expect(ActionTable.result(.paying(available: .init(cents: 12_300))) == .success(["balance": "12300"]))
        #expect(ActionTable.result(.outsideLimits) == .failure("limit_exceeded"))
        #expect(ActionTable.result(.unavailable) == .failure("unavailable"))
    }
}
