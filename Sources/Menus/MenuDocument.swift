/// `menus.json` as written: the operator's journeys for USSD screens and SMS commands.
///
/// ``MenuGraph`` checks and compiles a document; the engine only ever sees a graph.
public struct MenuDocument: Sendable, Codable {
    public var version: Int
    /// Short codes this file serves, e.g. `*384*96#`.
    public var serviceCodes: [String]
    public var languages: [String]
    public var defaultLanguage: String
    public var settings: Settings
    /// The first screen of a session.
    public var start: String
    /// Where the home key (`00`) leads; the start screen when absent.
    public var home: String?
    /// Variables the host provides when a session starts (e.g. `msisdn`), with their longest length.
    public var context: [String: VariableSpec]?
    /// Longest lengths of variables whose source cannot tell (used for worst-case page lengths).
    public var variables: [String: VariableSpec]?
    public var screens: [String: Screen]
    public var sms: SMSSection?
    /// Fees by movement kind (`p2p`) and amount band, in whole shillings (``Tariff``).
    public var tariffs: [String: [TariffBand]]?
    /// KYC tiers and their limits (``TiersSection``).
    public var tiers: TiersSection?
    /// Dial-in shortcuts: extensions of a service code that open a screen (``Shortcut``).
    public var shortcuts: [Shortcut]?
    /// The operator's own HTTP services that `http` actions call, by name (``Backend``).
    public var backends: [String: Backend]?

    /// An HTTP service of the operator's. Its base URL and every header value are references to
    /// environment variables (`env:JOBS_API_URL`), never written here: a secret never sits in
    /// menus.json. A backend whose URL variable is not set is unavailable, and its actions fail
    /// with `unavailable`.
    public struct Backend: Sendable, Codable, Hashable {
        /// `env:NAME`: the base URL, `https://...` (plain http only to loopback).
        public var url: String
        /// Header name -> `env:NAME`.
        public var headers: [String: String]?
        /// The circuit breaker: after `failures` failed calls in a row, calls fail at once with
        /// `unavailable` for `openSeconds`; then one call tries again. Default 5 and 30.
        public var breaker: Breaker?
    }

    public struct Breaker: Sendable, Codable, Hashable {
        public var failures: Int
        public var openSeconds: Int
    }

    /// What an `http` action screen calls, and what it keeps of the answer (``HTTPCall``).
    public struct HTTPCall: Sendable, Codable, Hashable {
        public var backend: String
        /// `GET`, `POST`, `PUT` or `DELETE`.
        public var method: String
        /// Appended to the backend's URL; each `{variable}` is escaped as a path segment.
        public var path: String
        /// Query parameters; each `{variable}` is escaped as a query value.
        public var query: [String: String]?
        /// A JSON object of string templates (values JSON-escaped), for `POST` and `PUT`.
        public var body: [String: String]?
        /// Required, and with the retries no longer than the hop deadline.
        public var timeoutMs: Int
        /// Extra attempts after a failure that may not have reached the backend; only for `GET`,
        /// `PUT` and `DELETE`, which may safely be repeated.
        public var retries: Int?
        /// How long a `GET`'s answer may be reused for the same URL (default: never).
        public var cacheSeconds: Int?
        /// Variables set from the answer: name -> a path and the longest value kept.
        public var results: [String: HTTPValue]?
        /// A list kept from the answer, for a `list` screen.
        public var list: HTTPList?
        /// HTTP status -> result code: `"404"`, or a class `"4xx"` / `"5xx"`. Unmapped, a 4xx is
        /// `rejected` and a 5xx `unavailable`.
        public var status: [String: String]?
        /// A field of a 2xx answer that, when it holds text, is the result code (`$.error`); the
        /// codes it may hold are `codes`.
        public var resultField: String?
        public var codes: [String]?
        /// An SMS notice queued when the call succeeds (a template of `sms.notifications`).
        public var notice: HTTPNotice?

        /// The codes every call can fail with, whatever the file says.
        public static let builtInCodes: Set<String> = ["timeout", "unavailable", "rejected", "bad_response"]

        /// Every code this call can fail with.
        public var failureCodes: Set<String> {
            HTTPCall.builtInCodes.union((self.status ?? [:]).values).union(self.codes ?? [])
        }

        /// `GET`, `PUT` and `DELETE` may be repeated; `POST` may not.
        public var isIdempotent: Bool { ["GET", "PUT", "DELETE"].contains(self.method) }
    }

    public struct HTTPValue: Sendable, Codable, Hashable {
        /// A ``JSONPath`` to one value (`$.job.title`), or within a list item (`$.title`).
        public var path: String
        /// Longer values are cut to this many characters, so worst-case pages hold.
        public var maxLength: Int
        /// True when values may hold characters outside GSM-7.
        public var unicode: Bool?

        private enum CodingKeys: String, CodingKey { case path, maxLength, unicode }

        /// `maxLength` from 0 to ``Validator/maximumLength``, as a variable's: lint builds a
        /// worst-case value that long.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            self.path = try container.decode(String.self, forKey: .path)
            self.maxLength = try container.decode(Int.self, forKey: .maxLength)
            self.unicode = try container.decodeIfPresent(Bool.self, forKey: .unicode)
            guard (0...Validator.maximumLength).contains(self.maxLength) else {
                throw DecodingError.dataCorruptedError(forKey: .maxLength, in: container, debugDescription: "must be from 0 to \(Validator.maximumLength)")
            }
        }
    }

    public struct HTTPList: Sendable, Codable, Hashable {
        /// The variable that holds the list (read by a `list` screen's `items`).
        public var variable: String
        /// A ``JSONPath`` with `[*]` to the items (`$.jobs[*]`).
        public var path: String
        /// Items beyond this are dropped.
        public var maxItems: Int
        /// Each item's fields: name -> a path within the item and the longest value kept.
        public var fields: [String: HTTPValue]
    }

    public struct HTTPNotice: Sendable, Codable, Hashable {
        public var template: String
        /// Parameter -> template over the session's variables.
        public var params: [String: String]?
    }

    /// One band of a tariff: amounts above the previous band's `upTo` and up to this one's pay `fee`.
    public struct TariffBand: Sendable, Codable, Hashable {
        public var upTo: Int
        public var fee: Int

        public init(upTo: Int, fee: Int) {
            self.upTo = upTo
            self.fee = fee
        }
    }

    /// KYC tiers: limits in whole shillings per tier, and the tier a new customer gets.
    public struct TiersSection: Sendable, Codable, Hashable {
        public var `default`: String
        public var levels: [String: TierLimits]
    }

    public struct TierLimits: Sendable, Codable, Hashable {
        /// The most one send or withdrawal may move.
        public var perTransaction: Int
        /// The most the sends and withdrawals of one Nairobi day may add up to.
        public var daily: Int
        /// The most a wallet (main and savings) may hold; absent, no cap.
        public var maxBalance: Int?
    }

    public struct Settings: Sendable, Codable {
        /// Septets per page in GSM-7 (default 160, at most 182).
        public var pageBudget: Int?
        /// Characters per page once a character outside GSM-7 appears (default 70).
        public var ucs2PageBudget: Int?
        public var backKey: String?
        public var homeKey: String?
        public var moreKey: String?
        /// How long after a dropped session the same number may resume it, in seconds.
        public var resumeWindowSeconds: Int?
        /// Wrong inputs in a row before the session ends politely (default 3).
        public var maxWrongInputs: Int?
        /// Texts the engine itself shows: `more`, `back`, `home`, `invalidChoice`, `tooManyAttempts`, `failure`.
        public var texts: [String: LocalizedText]?
    }

    public struct VariableSpec: Sendable, Codable, Hashable {
        public var maxLength: Int
        /// True when values may hold characters outside GSM-7 (forcing UCS-2 pages).
        public var unicode: Bool?

        public init(maxLength: Int, unicode: Bool? = nil) {
            self.maxLength = maxLength
            self.unicode = unicode
        }

        private enum CodingKeys: String, CodingKey { case maxLength, unicode }

        /// `maxLength` from 0 to ``Validator/maximumLength``: lint builds a worst-case value that long.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            self.maxLength = try container.decode(Int.self, forKey: .maxLength)
            self.unicode = try container.decodeIfPresent(Bool.self, forKey: .unicode)
            guard (0...Validator.maximumLength).contains(self.maxLength) else {
                throw DecodingError.dataCorruptedError(forKey: .maxLength, in: container, debugDescription: "must be from 0 to \(Validator.maximumLength)")
            }
        }
    }

    /// One screen; its `type` decides which fields apply.
    public struct Screen: Sendable, Codable {
        public enum Kind: String, Sendable, Codable {
            case menu, input, action, route, end, list
        }

        public var type: Kind
        /// Shown text (menu title, input prompt, end text).
        public var text: LocalizedText?
        // menu
        public var options: [Option]?
        // input
        public var variable: String?
        public var validator: Validator?
        /// Shown above the prompt again after a wrong input.
        public var error: LocalizedText?
        /// PINs: never stored, never echoed, only passed to the action right after.
        public var secret: Bool?
        /// For a confirmation input: the earlier secret input this one must equal.
        public var confirms: String?
        /// Where a failed confirmation leads (default: the confirmed input's screen).
        public var mismatch: String?
        // action
        public var action: String?
        public var arguments: [String: String]?
        /// Error code -> screen; `*` catches codes not listed.
        public var errors: [String: String]?
        /// With `action: "http"`: the call (``HTTPCall``).
        public var http: HTTPCall?
        // route
        public var routes: [Route]?
        public var otherwise: String?
        // list: `items` names the list variable (an `http` action's `list`), `item` is each line's
        // template over an item's fields, `variable` the prefix the chosen item's fields are kept
        // under (`job` -> `job.title`), `empty` the screen shown when the list has no item.
        public var items: String?
        public var item: LocalizedText?
        public var empty: String?
        // menu, input, action
        public var next: String?
    }

    public struct Option: Sendable, Codable {
        public var label: LocalizedText
        public var next: String
        /// Shown only when the condition holds.
        public var when: Condition?
        /// Sets variables when chosen (e.g. `{"language": "sw"}`).
        public var set: [String: String]?
    }

    public struct Route: Sendable, Codable {
        public var when: Condition
        public var next: String
    }

    public struct SMSSection: Sendable, Codable {
        /// The reply to anything that is not a command.
        public var help: LocalizedText
        public var commands: [SMSCommand]
        /// Replies per error code shared by every command; a command's own `errors` win.
        public var errors: [String: LocalizedText]?
        /// SMS notices the gateway sends on its own (receipts, alerts), by template name as the
        /// wallet queues them (`sent`, `deposit_failed`, ...). `name.variant` is tried first
        /// when a notice has a `reason` (`deposit_failed.cancelled`).
        public var notifications: [String: Notification]?
    }

    /// One SMS notice: its text and the longest value of each parameter, so lint can count its
    /// worst-case segments.
    public struct Notification: Sendable, Codable {
        public var text: LocalizedText
        public var params: [String: VariableSpec]?
        /// Segments allowed at most (default 1; never more than 2).
        public var segments: Int?
    }

    public struct SMSCommand: Sendable, Codable {
        public var name: String
        /// Keywords per language, e.g. `{"en": ["BAL", "BALANCE"], "sw": ["SALIO"]}`.
        public var keywords: [String: [String]]
        public var arguments: [SMSArgument]?
        public var action: String
        /// Action argument templates, as on action screens.
        public var actionArguments: [String: String]?
        /// The reply on success.
        public var reply: LocalizedText
        /// The reply when the arguments do not validate: usually the command's usage.
        public var usage: LocalizedText
        public var errors: [String: LocalizedText]?
    }

    public struct SMSArgument: Sendable, Codable {
        public var variable: String
        public var validator: Validator
        public var secret: Bool?
    }
}
