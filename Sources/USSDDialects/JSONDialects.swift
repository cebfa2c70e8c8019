import AfricasTalking
import Basics

/// The JSON body of a dialect's hop, parsed within the callback limits.
enum DialectJSON {
    static func object(_ body: [UInt8]) throws(MalformedCallback) -> JSONValue {
        switch JSONValue.parseChecked(body) {
        case .success(let value):
            guard case .object = value else { throw MalformedCallback("body is not a JSON object") }
            return value
        case .failure(let failure):
            throw MalformedCallback("body is not JSON within limits: \(failure.description)")
        }
    }

    /// A string field; numbers are taken as their digits (some aggregators send `Mobile` or
    /// `SessionId` as a JSON number).
    static func string(_ object: JSONValue, _ key: String) -> String? {
        switch object[key] {
        case .string(let text): return text
        case .integer(let number): return String(number)
        default: return nil
        }
    }

    /// A boolean field; `"true"` / `"false"` strings are taken too.
    static func bool(_ object: JSONValue, _ key: String) -> Bool? {
        switch object[key] {
        case .bool(let value): return value
        case .string(let text) where text.lowercased() == "true": return true
        case .string(let text) where text.lowercased() == "false": return false
        default: return nil
        }
    }

    static func render(_ members: [String: JSONValue]) -> RenderedReply {
        RenderedReply(contentType: "application/json", headers: [:], body: JSONValue.object(members).serialized)
    }
}

/// Hubtel Programmable Services (Ghana), `POST /ussd/hubtel`.
///
/// Request `{"Type", "Mobile", "SessionId", "ServiceCode", "Message", "Operator", "Sequence",
/// "ClientState", "Platform"}`; reply `{"Type": "Response"|"Release", "Message", "ClientState"}`.
///
/// Assumed where the reference is unsure: `Type` is matched without regard to case (the legacy
/// SMSGH API and the newer one differ); on `Initiation`, `Message` is the whole dial string;
/// `Sequence` is optional (the hop is then identified by its input at its step); `Release` and
/// `Timeout` requests get a `Release` reply with no text, which Hubtel does not show.
public struct HubtelHop: Sendable, Hashable {
    public let canonical: CanonicalHop
    /// Echoed back unchanged, as Hubtel asks.
    public let clientState: String?

    /// Safaricom-sized screens on every Ghanaian network.
    public static let pageBudget = 160

    public init(body: [UInt8]) throws(MalformedCallback) {
        let json = try DialectJSON.object(body)
        let phase: CanonicalHop.Phase
        switch DialectJSON.string(json, "Type")?.lowercased() {
        case "initiation": phase = .begin
        case "response": phase = .continue
        case "release": phase = .end
        case "timeout": phase = .timeout
        default: throw MalformedCallback("Type missing or not Initiation, Response, Release or Timeout")
        }
        let message = try DialectField.input(DialectJSON.string(json, "Message"), "Message", required: phase == .begin || phase == .continue)
        var sequence: Int?
        if let raw = json["Sequence"] {
            guard let number = raw.integer, (1...1_000).contains(number) else { throw MalformedCallback("Sequence malformed") }
            sequence = Int(number)
        }
        let state = DialectJSON.string(json, "ClientState")
        if let state, !CallbackField.isCleanText(state, maxBytes: 256) { throw MalformedCallback("ClientState too long or with control characters") }
        self.clientState = state
        self.canonical = CanonicalHop(
            provider: .hubtel, sessionID: try DialectField.sessionID(DialectJSON.string(json, "SessionId"), "SessionId"),
            phone: try DialectField.phone(DialectJSON.string(json, "Mobile"), "Mobile"),
            serviceCode: try DialectField.token(DialectJSON.string(json, "ServiceCode"), "ServiceCode"),
            dial: phase == .begin ? message : nil, input: phase == .begin ? "" : message, phase: phase,
            network: try DialectField.token(DialectJSON.string(json, "Operator"), "Operator", maxLength: 16), sequence: sequence
        )
    }

    public func render(_ reply: DialectReply) -> RenderedReply {
        var members: [String: JSONValue] = ["Type": .string(reply.ends ? "Release" : "Response"), "Message": .string(reply.text)]
        if let state = self.clientState { members["ClientState"] = .string(state) }
        return DialectJSON.render(members)
    }
}

/// Nalo Solutions (Ghana, Nigeria), `POST /ussd/nalo`.
///
/// Request `{"USERID", "MSISDN", "USERDATA", "MSGTYPE", "NETWORK", "SESSIONID"}`; reply `{"USERID",
/// "MSISDN", "USERDATA", "MSG", "MSGTYPE"}` with `MSGTYPE` true to continue and false to end.
///
/// Assumed where the reference is unsure: `MSGTYPE: true` marks a session's first hop (some
/// adapters read it as "continue"; Nalo's own examples send true on the dial), and `USERDATA` is
/// then the dial string. Nalo sends no end or timeout event.
public struct NaloHop: Sendable, Hashable {
    public let canonical: CanonicalHop
    let userID: String
    let userData: String

    public static let pageBudget = 160

    public init(body: [UInt8]) throws(MalformedCallback) {
        let json = try DialectJSON.object(body)
        guard let first = DialectJSON.bool(json, "MSGTYPE") else { throw MalformedCallback("MSGTYPE missing or not a boolean") }
        let data = try DialectField.input(DialectJSON.string(json, "USERDATA"), "USERDATA")
        guard let user = try DialectField.token(DialectJSON.string(json, "USERID"), "USERID", maxLength: 64) else {
            throw MalformedCallback("USERID missing")
        }
        (self.userID, self.userData) = (user, data)
        self.canonical = CanonicalHop(
            provider: .nalo, sessionID: try DialectField.sessionID(DialectJSON.string(json, "SESSIONID"), "SESSIONID"),
            phone: try DialectField.phone(DialectJSON.string(json, "MSISDN"), "MSISDN"), dial: first ? data : nil, input: first ? "" : data,
            phase: first ? .begin : .continue, network: try DialectField.token(DialectJSON.string(json, "NETWORK"), "NETWORK", maxLength: 16)
        )
    }

    public func render(_ reply: DialectReply) -> RenderedReply {
        DialectJSON.render([
            "USERID": .string(self.userID), "MSISDN": .string(self.canonical.phone), "USERDATA": .string(self.userData),
            "MSG": .string(reply.text), "MSGTYPE": .bool(!reply.ends),
        ])
    }
}

/// Arkesel (Ghana), `POST /ussd/arkesel`.
///
/// Request `{"sessionID", "userID", "newSession", "msisdn", "userData", "network"}`; reply
/// `{"sessionID", "userID", "msisdn", "message", "continueSession"}`.
///
/// Assumed: `userData` is the dial string when `newSession` is true, the latest input otherwise.
/// Arkesel sends no end or timeout event.
public struct ArkeselHop: Sendable, Hashable {
    public let canonical: CanonicalHop
    let userID: String

    public static let pageBudget = 160

    public init(body: [UInt8]) throws(MalformedCallback) {
        let json = try DialectJSON.object(body)
        guard let first = DialectJSON.bool(json, "newSession") else { throw MalformedCallback("newSession missing or not a boolean") }
        let data = try DialectField.input(DialectJSON.string(json, "userData"), "userData")
        guard let user = try DialectField.token(DialectJSON.string(json, "userID"), "userID", maxLength: 64) else {
            throw MalformedCallback("userID missing")
        }
        self.userID = user
        self.canonical = CanonicalHop(
            provider: .arkesel, sessionID: try DialectField.sessionID(DialectJSON.string(json, "sessionID"), "sessionID"),
            phone: try DialectField.phone(DialectJSON.string(json, "msisdn"), "msisdn"), dial: first ? data : nil, input: first ? "" : data,
            phase: first ? .begin : .continue, network: try DialectField.token(DialectJSON.string(json, "network"), "network", maxLength: 16)
        )
    }

    public func render(_ reply: DialectReply) -> RenderedReply {
        DialectJSON.render([
            "sessionID": .string(self.canonical.sessionID), "userID": .string(self.userID), "msisdn": .string(self.canonical.phone),
            "message": .string(reply.text), "continueSession": .bool(!reply.ends),
        ])
    }
}
