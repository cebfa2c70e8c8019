import Basics
import CCurl

extension CurlClient {
    /// Sends `message` to its `To` addresses through `server` over SMTP (libcurl's: `MAIL FROM`,
    /// one `RCPT TO` each, `DATA` fed from the rendered message), on the client's driver thread like
    /// every HTTP request: no Swift concurrency thread or event loop waits. Returns once the server
    /// has taken the message (its 250 after the data); throws ``MailError`` before connecting when the
    /// message cannot be written, and ``CurlError`` when the server cannot be reached, TLS fails, the
    /// login or a recipient is refused, or `timeout` passes. A recipient refused fails the whole send.
    public func sendMail(_ message: MailMessage, via server: MailServer, timeout: Duration = .seconds(60), connectTimeout: Duration = .seconds(10))
        async throws
    {
        let bytes = try message.rendered()
        let mail = CurlMail(server: server, from: message.from, recipients: message.to, message: bytes, timeout: timeout, connectTimeout: connectTimeout)
        try await self.perform { continuation in CurlMailTransfer(mail: mail, continuation: continuation) }
    }
}

/// What one SMTP transfer needs: where, the envelope, the message's bytes and its time limits.
struct CurlMail: Sendable {
    let server: MailServer
    let from: MailAddress
    let recipients: [MailAddress]
    let message: [UInt8]
    let timeout: Duration
    let connectTimeout: Duration
}

/// One mail in flight: its easy handle, the recipients' list, how much of the message libcurl has
/// read, and the continuation to resume.
///
/// `@unchecked Sendable`: as ``CurlTransfer``, created on the caller's task and handed to the
/// driver thread once; from then on only the driver thread touches it.
final class CurlMailTransfer: CurlJob, @unchecked Sendable {
    let mail: CurlMail
    private var continuation: CheckedContinuation<Void, any Error>?
    var handle: UnsafeMutableRawPointer?
    private var recipientList: UnsafeMutablePointer<curl_slist>?
    /// libcurl's words on a failure (`CURLOPT_ERRORBUFFER`), valid while the handle lives.
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE))
    private var sent = 0

    init(mail: CurlMail, continuation: CheckedContinuation<Void, any Error>) {
        self.mail = mail
        self.continuation = continuation
        self.errorBuffer.initialize(to: 0)
    }

    deinit {
        self.releaseHandle()
        self.errorBuffer.deallocate()
    }

    func makeHandle(configuration: CurlConfiguration) throws(CurlError) -> UnsafeMutableRawPointer {
        guard let handle = curl_easy_init() else { throw CurlError(code: .transfer, detail: "curl_easy_init failed", operation: .mail) }
        self.handle = handle
        let mail = self.mail
        var code = ccurl_setopt_string(handle, CURLOPT_URL, mail.server.url)
        func set(_ result: CURLcode) { if code == CURLE_OK { code = result } }
        set(ccurl_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
        set(ccurl_setopt_long(handle, CURLOPT_TIMEOUT_MS, max(1, Int(mail.timeout.inMilliseconds))))
        set(ccurl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, max(1, Int(mail.connectTimeout.inMilliseconds))))
        set(ccurl_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "smtp,smtps"))
        let tls: curl_usessl = mail.server.security == .none ? CURLUSESSL_NONE : CURLUSESSL_ALL
        set(ccurl_setopt_long(handle, CURLOPT_USE_SSL, Int(tls.rawValue)))
        set(ccurl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, configuration.verifyTLS ? 1 : 0))
        set(ccurl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, configuration.verifyTLS ? 2 : 0))
        if let ca = configuration.caBundlePath { set(ccurl_setopt_string(handle, CURLOPT_CAINFO, ca)) }
        set(ccurl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(self.errorBuffer)))

        set(ccurl_setopt_string(handle, CURLOPT_MAIL_FROM, "<\(mail.from.value)>"))
        var list: UnsafeMutablePointer<curl_slist>?
        for recipient in mail.recipients { list = curl_slist_append(list, "<\(recipient.value)>") }
        self.recipientList = list
        set(ccurl_setopt_pointer(handle, CURLOPT_MAIL_RCPT, UnsafeMutableRawPointer(list)))

        let me = Unmanaged.passUnretained(self).toOpaque()
        set(ccurl_setopt_long(handle, CURLOPT_UPLOAD, 1))
        set(ccurl_setopt_off_t(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(mail.message.count)))
        set(ccurl_setopt_pointer(handle, CURLOPT_READDATA, me))
        set(ccurl_setopt_read_function(handle, curlReadMessage))
        set(ccurl_setopt_pointer(handle, CURLOPT_PRIVATE, me))
        guard code == CURLE_OK else {
            throw CurlError(curlCode: code, detail: String(cString: curl_easy_strerror(code)), operation: .mail)
        }
        return handle
    }

    func complete(code: CURLcode) {
        guard code != CURLE_OK else { return self.finish(.success(())) }
        var reply = 0
        if let handle { _ = ccurl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &reply) }
        let words = String(cString: self.errorBuffer)
        self.finish(
            .failure(
                CurlError(curlCode: code, detail: words.isEmpty ? String(cString: curl_easy_strerror(code)) : words, operation: .mail, serverReply: reply)
            )
        )
    }

    func fail(_ error: any Error) { self.finish(.failure(error)) }

    private func finish(_ result: Result<Void, any Error>) {
        guard let continuation = self.continuation else { return }
        self.continuation = nil
        self.releaseHandle()
        continuation.resume(with: result)
    }

    private func releaseHandle() {
        if let handle { curl_easy_cleanup(handle) }
        self.handle = nil
        if let recipientList { curl_slist_free_all(recipientList) }
        self.recipientList = nil
    }

    /// Copies the next bytes of the message into libcurl's buffer; 0 once all is read.
    fileprivate func read(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let count = min(buffer.count, self.mail.message.count - self.sent)
        guard count > 0 else { return 0 }
        self.mail.message.withUnsafeBytes { message in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: message[self.sent..<self.sent + count]))
        }
        self.sent += count
        return count
    }
}

private let curlReadMessage: ccurl_data_callback = { data, size, count, user in
    guard let data, let user else { return 0 }
    let transfer = Unmanaged<CurlMailTransfer>.fromOpaque(user).takeUnretainedValue()
    return transfer.read(into: UnsafeMutableRawBufferPointer(start: data, count: size * count))
}
