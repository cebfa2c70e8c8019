import Settings
import Testing
@testable import USSDChannel

/// The USSD channel reads its own settings, each checked where it is read.
@Suite struct USSDSettingsTests {
    @Test func theChannelsSettingsAreReadAndChecked() throws {
        let read = try USSDSettings(
            reader: SettingsReader(environment: [
                "SESSION_TTL_SECONDS": "90", "HOP_DEADLINE_MS": "3000", "USSD_RATE_LIMIT_PER_MINUTE": "0", "USSD_REPEAT_WINDOW_MS": "500",
                "USSD_DIALECTS": "Hubtel, flares, hubtel", "FLARES_USERID": "airtel", "FLARES_PASSWORD": "s3cret-flares",
            ]))
        #expect(read.sessionTTLSeconds == 90 && read.hopDeadline == .milliseconds(3000) && read.rateLimitPerMinute == 0)
        #expect(read.repeatWindow == .milliseconds(500) && read.dialects == ["hubtel", "flares"] && read.flaresUser == "airtel")
        #expect(read.audited["flares.credentials"] == "set" && !read.audited.values.contains("s3cret-flares"), "a secret is audited as set, never as itself")
        let service = USSDService.Settings(read, menusResumeWindow: 60)
        #expect(service.resumeWindowSeconds == 60 && service.sessionTTLSeconds == 90, "the menus' resume window when the setting is unset")
    }

    @Test(arguments: [
        ("SESSION_TTL_SECONDS", "5"), ("HOP_DEADLINE_MS", "20000"), ("USSD_DIALECTS", "hubtel,vodacom"), ("USSD_REPEAT_WINDOW_MS", "soon"),
        ("FLARES_USERID", "airtel"),
    ])
    func aValueOutOfItsRangeIsRefusedByName(name: String, value: String) {
        let error = #expect(throws: ConfigError.self) { try USSDSettings(reader: SettingsReader(environment: [name: value])) }
        #expect(error?.variable == (name == "FLARES_USERID" ? "FLARES_PASSWORD" : name))
    }
}
