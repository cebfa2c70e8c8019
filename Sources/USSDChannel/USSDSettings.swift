import Basics
import Settings

/// The USSD channel's settings: sessions, hops, their limits, and the aggregators served.
public struct USSDSettings: Sendable {
    /// `SESSION_TTL_SECONDS`: how long a USSD session lives in Redis after its last hop; default 120.
    public var sessionTTLSeconds = 120
    /// `RESUME_WINDOW_SECONDS`: how long after its last hop an unfinished session can be resumed
    /// by dialling again; default menus.json's `resumeWindowSeconds`, else 300. 0 turns resume off.
    public var resumeWindowSeconds: Int?
    /// `HOP_DEADLINE_MS`: longest a hop waits for its action before answering "we are processing
    /// your request" and letting it finish; default 4000.
    public var hopDeadline = Duration.milliseconds(4000)
    /// `USSD_RATE_LIMIT_PER_MINUTE`: new hops per number per minute; 0 turns it off; default 30.
    public var rateLimitPerMinute = 30
    /// `USSD_REPEAT_WINDOW_MS`: in a dialect that sends only the latest input and no hop number
    /// (Nalo, Arkesel, Flares), how long after a hop's answer the same input again is that hop
    /// repeated rather than the answer to the next screen; default 2000.
    public var repeatWindow = Duration.milliseconds(2000)
    /// `USSD_DIALECTS`: the aggregators served besides Africa's Talking, among `hubtel`, `nalo`,
    /// `arkesel` and `flares` (comma-separated); default none. Each adds its route.
    public var dialects: [String] = []
    /// `FLARES_USERID` and `FLARES_PASSWORD`: when set, every Flares query must carry them.
    public var flaresUser: String?
    public var flaresPassword: String?

    /// The dialects `USSD_DIALECTS` may name.
    public static let knownDialects = ["hubtel", "nalo", "arkesel", "flares"]

    public init() {}

    /// The USSD settings from `reader`, each checked.
    public init(reader: SettingsReader) throws(ConfigError) {
        self.init()
        self.sessionTTLSeconds = try reader.integer("SESSION_TTL_SECONDS", default: self.sessionTTLSeconds, in: 10...3600)
        if reader.value("RESUME_WINDOW_SECONDS") != nil {
            self.resumeWindowSeconds = try reader.integer("RESUME_WINDOW_SECONDS", default: 300, in: 0...86_400)
        }
        self.hopDeadline = try reader.milliseconds("HOP_DEADLINE_MS", default: self.hopDeadline, in: 100...14_000)
        self.rateLimitPerMinute = try reader.integer("USSD_RATE_LIMIT_PER_MINUTE", default: self.rateLimitPerMinute, in: 0...100_000)
        self.repeatWindow = try reader.milliseconds("USSD_REPEAT_WINDOW_MS", default: self.repeatWindow, in: 0...10_000)
        let among = Self.knownDialects.joined(separator: ", ")
        let dialects = try reader.list("USSD_DIALECTS", skipBlanks: true, problem: { "must name dialects among \(among) (got \($0.lowercased()))" }) { name -> String? in
            Self.knownDialects.contains(name.lowercased()) ? name.lowercased() : nil
        }
        self.dialects = dialects.reduce(into: []) { if !$0.contains($1) { $0.append($1) } }
        self.flaresUser = reader.value("FLARES_USERID")
        self.flaresPassword = reader.value("FLARES_PASSWORD", secret: true)
        if (self.flaresUser == nil) != (self.flaresPassword == nil) {
            throw ConfigError(variable: "FLARES_PASSWORD", problem: "and FLARES_USERID must be set together")
        }
    }

    /// What the audit trail records of these settings when they change between start-ups.
    public var audited: [String: String] {
        [
            "session.ttl_seconds": String(self.sessionTTLSeconds),
            "hop.deadline_ms": String(self.hopDeadline.inMilliseconds),
            "ussd.rate_limit_per_minute": String(self.rateLimitPerMinute),
            "ussd.dialects": self.dialects.isEmpty ? "none" : self.dialects.joined(separator: ","),
            "ussd.repeat_window_ms": String(self.repeatWindow.inMilliseconds),
            "flares.credentials": self.flaresPassword == nil ? "not set" : "set",
        ]
    }
}

extension USSDService.Settings {
    /// The service's settings from the channel's: the resume window is the setting's, else
    /// menus.json's (`menusResumeWindow`), else 300 seconds.
    public init(_ settings: USSDSettings, menusResumeWindow: Int?) {
        self.init()
        self.sessionTTLSeconds = settings.sessionTTLSeconds
        self.resumeWindowSeconds = settings.resumeWindowSeconds ?? menusResumeWindow ?? 300
        self.hopDeadline = settings.hopDeadline
        self.rateLimitPerMinute = settings.rateLimitPerMinute
        self.repeatWindow = settings.repeatWindow
    }
}
