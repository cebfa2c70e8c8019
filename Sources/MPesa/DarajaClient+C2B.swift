import Basics

extension DarajaClient {
    /// The words Safaricom refuses in registered C2B URLs.
    public static let forbiddenURLWords = ["m-pesa", "mpesa", "safaricom", "exe", "exec", "cmd", "sql", "query"]

    /// Registers the paybill's confirmation and validation URLs (`/mpesa/c2b/v2/registerurl`).
    /// Both must be https (or loopback http in tests) and free of the words Safaricom refuses.
    /// Returns Daraja's `ResponseDescription`.
    public func registerC2B(shortcode: String, responseType: C2BResponseType, confirmationURL: String, validationURL: String)
        async throws(DarajaError)
        -> String
    {
        for (field, url) in [("ConfirmationURL", confirmationURL), ("ValidationURL", validationURL)] {
            try Validate.callbackURL(url, field: field)
            if let word = Self.forbiddenURLWords.first(where: { url.lowercased().contains($0) }) {
                throw .invalidRequest("\(field) must not contain \"\(word)\": Safaricom refuses it in registered URLs")
            }
        }
        try Validate.length(shortcode, field: "ShortCode", in: 5...7)
        let reply = try await self.call(
            "/mpesa/c2b/v2/registerurl",
            [
                ("ShortCode", .string(shortcode)), ("ResponseType", .string(responseType.rawValue)), ("ConfirmationURL", .string(confirmationURL)),
                ("ValidationURL", .string(validationURL)),
            ]
        )
        guard reply["ResponseCode"]?.string == "0" || reply["ResponseCode"]?.string == "00000000" else {
            throw .api(status: 200, code: reply["ResponseCode"]?.string ?? "?", message: reply["ResponseDescription"]?.string ?? "not accepted")
        }
        return reply["ResponseDescription"]?.string ?? "Success"
    }
}
