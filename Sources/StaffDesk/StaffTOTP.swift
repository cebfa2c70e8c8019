import Foundation
import HummingbirdOTP

/// The second factor: TOTP (RFC 6238, six digits, 30-second steps, HMAC-SHA-1 as authenticator
/// apps expect), computed by hummingbird-auth's OTP module. A code is accepted for the step before
/// and after the current one (a phone's clock drifts) and for a step later than the last one
/// accepted, never the same step twice (``StaffDirectory/acceptSecondFactor``).
public enum StaffTOTP {
    public static let timeStep = 30

    /// A new secret: 32 characters of the base32 alphabet (160 bits). hummingbird-auth's TOTP keys
    /// HMAC with the secret's bytes and writes them base32-encoded into the enrolment URI.
    public static func newSecret() -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        return String((0..<32).map { _ in alphabet[Int.random(in: 0..<alphabet.count)] })
    }

    /// The `otpauth://` URI an authenticator app reads from the QR code.
    public static func enrolmentURI(secret: String, login: String, issuer: String) -> String {
        TOTP(secret: secret).createAuthenticatorURL(label: "\(issuer):\(login)", issuer: issuer)
    }

    /// The step `date` falls in.
    public static func step(at date: Date) -> Int64 { Int64(date.timeIntervalSince1970) / Int64(self.timeStep) }

    /// The code for `step`, six digits with leading zeros.
    public static func code(secret: String, step: Int64) -> String {
        let value = TOTP(secret: secret).compute(date: Date(timeIntervalSince1970: TimeInterval(step * Int64(self.timeStep))))
        let digits = String(value)
        return String(repeating: "0", count: max(0, 6 - digits.count)) + digits
    }

    /// The step `code` is right for, among the one `now` falls in and its neighbours; nil when none.
    public static func matchingStep(_ code: String, secret: String, now: Date) -> Int64? {
        let typed = code.filter { !$0.isWhitespace }
        guard typed.count == 6, typed.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        let current = self.step(at: now)
        var found: Int64?
        // Every candidate is computed, whichever matches, so the answer's time says nothing.
        for step in [current - 1, current, current + 1] where Self.code(secret: secret, step: step).utf8.elementsEqual(typed.utf8) {
            found = step
        }
        return found
    }

    /// The key as a person types it into an authenticator app: the secret's bytes in base32
    /// (RFC 4648, no padding), as the enrolment URI carries it.
    public static func typedKey(_ secret: String) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        var output = ""
        var buffer = 0
        var bits = 0
        for byte in secret.utf8 {
            buffer = (buffer << 8) | Int(byte)
            bits += 8
            while bits >= 5 {
                output.append(alphabet[(buffer >> (bits - 5)) & 31])
                bits -= 5
            }
            buffer &= (1 << bits) - 1
        }
        if bits > 0 { output.append(alphabet[(buffer << (5 - bits)) & 31]) }
        return output
    }
}
