import Settings
import Testing

/// The checks every setting gets, whichever part reads it.
@Suite struct SettingsReaderTests {
    enum Mode: String, CaseIterable { case on, off }

    @Test func theEnvironmentOverridesTheFileAndBlankIsUnset() throws {
        let reader = SettingsReader(environment: ["A_B": " 7 ", "EMPTY": "  "], file: ["A_B": "3", "ONLY_FILE": "x"])
        #expect(try reader.integer("A_B", default: 1, in: 0...10) == 7)
        #expect(reader.value("ONLY_FILE") == "x" && reader.value("EMPTY") == nil && reader.value("MISSING") == nil)
        #expect(reader.askedNames == ["A_B", "ONLY_FILE", "EMPTY", "MISSING"], "every name asked for is remembered")
    }

    @Test func aValueOutOfItsRangeOrShapeIsRefusedByItsName() throws {
        let reader = SettingsReader(environment: ["N": "11", "WORD": "soon", "MODE": "maybe", "LIST": "1, 2, x", "MS": "-1"])
        #expect(#expect(throws: ConfigError.self) { try reader.integer("N", default: 1, in: 0...10) }?.description == "N: must be a whole number from 0 to 10 (got \"11\")")
        #expect(#expect(throws: ConfigError.self) { try reader.integer("WORD", default: 1, in: 0...10) }?.variable == "WORD")
        #expect(#expect(throws: ConfigError.self) { try reader.oneOf("MODE", default: Mode.off) }?.description == "MODE: must be one of on, off (got \"maybe\")")
        #expect(#expect(throws: ConfigError.self) { try reader.list("LIST", problem: { "\"\($0)\" is not a number" }) { Int($0) } }?.description == "LIST: \"x\" is not a number")
        #expect(#expect(throws: ConfigError.self) { try reader.milliseconds("MS", default: .seconds(1), in: 0...100) }?.variable == "MS")
    }

    @Test func durationsAreReadInTheirUnitAndListsInOrder() throws {
        let reader = SettingsReader(environment: ["HOURS": "48", "MODE": "ON", "LIST": "3,1, 2"])
        #expect(try reader.duration("HOURS", default: .seconds(3600), in: 0...720, unit: .seconds(3600)) == .seconds(48 * 3600))
        #expect(try reader.duration("UNSET_HOURS", default: .seconds(7200), in: 0...720, unit: .seconds(3600)) == .seconds(7200))
        #expect(try reader.oneOf("MODE", default: Mode.off) == .on, "in any case")
        #expect(try reader.list("LIST", problem: { $0 }) { Int($0) } == [3, 1, 2])
        let blanks = SettingsReader(environment: ["LIST": "a, ,b"])
        #expect(try blanks.list("LIST", skipBlanks: true, problem: { $0 }) { $0 } == ["a", "b"])
        #expect(#expect(throws: ConfigError.self) { try blanks.list("LIST", problem: { "\"\($0)\" is blank" }) { $0.isEmpty ? nil : $0 } }?.problem == "\"\" is blank")
    }
}
