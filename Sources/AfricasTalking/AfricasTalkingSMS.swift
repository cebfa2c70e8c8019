import Basics
import Curl
import Foundation
import Logging

/// Africa's Talking's messaging API over libcurl: `POST {base}/version1/messaging` with a form body
/// and the `apiKey` header, answered 201 with a status per recipient. The key never reaches a log
/// or an error.
public final class AfricasTalkingSMS: Sendable {
    public struct Configuration: Sendable, CustomStringConvertible {
        /// Live; the sandbox is ``sandboxURL``.
        public static let liveURL = "https://api.africastalking.com"
        public static let sandboxURL = "https://api.sandbox.africastalking.com"

        public var baseURL: String
        public var username: String
        public var apiKey: String
        /// Sender id or shortcode (`from`); nil sends from the account's default.
        public var senderID: String?
        public var requestTimeout: Duration = .seconds(30)

        public init(baseURL: String = Configuration.liveURL, username: String, apiKey: String, senderID: String? = nil) {
            self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
            self.username = username
            self.apiKey = apiKey
            self.senderID = senderID
        }

        public var description: String { "AfricasTalking(base: \(self.baseURL), username: \(self.username), from: \(self.senderID ?? "default"))" }
    }

    /// What Africa's Talking said of one recipient.
    public struct RecipientStatus: Sendable, Hashable {
        public let number: String
        public let statusCode: Int
        public let status: String
        public let messageID: String?

        /// 100 Processed, 101 Sent, 102 Queued: accepted (acceptance is not delivery).
        public var accepted: Bool { (100...102).contains(self.statusCode) }
        /// 500 InternalServerError, 501 GatewayError, 502 RejectedByGateway: try again later.
        public var transient: Bool { (500...502).contains(self.statusCode) }
    }

    /// Why a send got no per-recipient answer.
    public enum SendError: Error, Sendable, Hashable, CustomStringConvertible {
        /// No answer (connect failure, timeout): may be retried.
        case transport(String)
        /// An HTTP status with no usable body; 5xx may be retried, 4xx not (e.g. 401 bad key).
        case http(status: Int, message: String)

        public var transient: Bool {
            switch self {
            case .transport: return true
            case .http(let status, _): return status >= 500 || status == 429
            }
        }

        public var description: String {
            switch self {
            case .transport(let detail): return "no answer from Africa's Talking: \(detail)"
            case .http(let status, let message): return "Africa's Talking answered \(status): \(message)"
            }
        }
    }

    public let configuration: Configuration
    private let http: CurlClient

    public init(configuration: Configuration, http: CurlClient) {
        self.configuration = configuration
        self.http = http
    }

    /// Sends `message` to one number (`+2547...`). Returns that recipient's status.
    public func send(to number: String, message: String) async throws(SendError) -> RecipientStatus {
        var fields = [("username", self.configuration.username), ("to", number), ("message", message)]
        if let from = self.configuration.senderID { fields.append(("from", from)) }
        let body = fields.map { "\($0.0)=\(Self.formEncode($0.1))" }.joined(separator: "&")
        let request = CurlRequest(
            method: "POST", url: self.configuration.baseURL + "/version1/messaging",
            headers: [
                ("apiKey", self.configuration.apiKey), ("Accept", "application/json"), ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            body: Array(body.utf8), timeout: self.configuration.requestTimeout
        )
        let response: CurlResponse
        do {
            response = try await self.http.execute(request)
        } catch let error as CurlError {
            throw .transport(error.description)
        } catch {
            throw .transport("cancelled")
        }
        guard response.status == 201 || response.status == 200 else {
            throw .http(status: response.status, message: String(response.text.prefix(200)))
        }
        guard let data = JSONValue.parse(response.body)?["SMSMessageData"], case .object = data else {
            throw .http(status: response.status, message: "no SMSMessageData in the answer")
        }
        guard let first = data["Recipients"]?.array?.first else {
            // No recipient at all: Africa's Talking explains in Message (e.g. "InvalidSenderId").
            throw .http(status: 400, message: String((data["Message"]?.string ?? "no recipients").prefix(200)))
        }
        return RecipientStatus(
            number: first["number"]?.string ?? number, statusCode: Int(first["statusCode"]?.integer ?? 0), status: first["status"]?.string ?? "",
            messageID: first["messageId"]?.string.flatMap { $0.isEmpty || $0 == "None" ? nil : $0 }
        )
    }

    /// `application/x-www-form-urlencoded` encoding of one value.
    public static func formEncode(_ value: String) -> String {
        var out = ""
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: " "):
                out += "+"
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }
}
