import CCurl

/// One request in flight: its easy handle, header list, response buffers and the continuation to
/// resume.
///
/// `@unchecked Sendable`: created on the caller's task and handed to the driver thread once; from
/// then on only the driver thread reads or writes it (a cancellation only queues it for the driver).
final class CurlTransfer: @unchecked Sendable {
    let request: CurlRequest
    let maximumResponseBytes: Int
    private var continuation: CheckedContinuation<CurlResponse, any Error>?
    var handle: UnsafeMutableRawPointer?
    private var headerList: UnsafeMutablePointer<curl_slist>?
    var status = 0
    var headers: [(name: String, value: String)] = []
    var body: [UInt8] = []
    var tooLarge = false

    init(request: CurlRequest, maximumResponseBytes: Int, continuation: CheckedContinuation<CurlResponse, any Error>) {
        self.request = request
        self.maximumResponseBytes = maximumResponseBytes
        self.continuation = continuation
    }

    deinit {
        self.releaseHandle()
    }

    /// Creates and configures the easy handle; on failure the transfer is finished with the error.
    func makeHandle(configuration: CurlConfiguration) throws(CurlError) -> UnsafeMutableRawPointer {
        guard let handle = curl_easy_init() else { throw CurlError(code: .transfer, detail: "curl_easy_init failed") }
        self.handle = handle
        let request = self.request
        var code = ccurl_setopt_string(handle, CURLOPT_URL, request.url)
        func set(_ result: CURLcode) { if code == CURLE_OK { code = result } }
        set(ccurl_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
        set(ccurl_setopt_long(handle, CURLOPT_TIMEOUT_MS, max(1, request.timeout.curlMilliseconds)))
        set(ccurl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, max(1, request.connectTimeout.curlMilliseconds)))
        set(ccurl_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "http,https"))
        set(ccurl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0))
        set(ccurl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, configuration.verifyTLS ? 1 : 0))
        set(ccurl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, configuration.verifyTLS ? 2 : 0))
        if let ca = configuration.caBundlePath { set(ccurl_setopt_string(handle, CURLOPT_CAINFO, ca)) }

        let method = request.method.uppercased()
        if let body = request.body {
            set(ccurl_setopt_off_t(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count)))
            set(body.withUnsafeBytes { bytes in
                ccurl_setopt_pointer(handle, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: bytes.baseAddress ?? UnsafeRawPointer(("" as StaticString).utf8Start)))
            })
            if method != "POST" { set(ccurl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, method)) }
        } else if method == "HEAD" {
            set(ccurl_setopt_long(handle, CURLOPT_NOBODY, 1))
        } else if method != "GET" {
            set(ccurl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, method))
        }

        var list: UnsafeMutablePointer<curl_slist>?
        for header in request.headers {
            list = curl_slist_append(list, "\(header.name): \(header.value)")
        }
        list = curl_slist_append(list, "Expect:")
        self.headerList = list
        set(ccurl_setopt_pointer(handle, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(list)))

        let me = Unmanaged.passUnretained(self).toOpaque()
        set(ccurl_setopt_pointer(handle, CURLOPT_PRIVATE, me))
        set(ccurl_setopt_pointer(handle, CURLOPT_WRITEDATA, me))
        set(ccurl_setopt_pointer(handle, CURLOPT_HEADERDATA, me))
        set(ccurl_setopt_write_function(handle, curlWriteBody))
        set(ccurl_setopt_header_function(handle, curlWriteHeader))
        guard code == CURLE_OK else {
            throw CurlError(curlCode: code, detail: String(cString: curl_easy_strerror(code)))
        }
        return handle
    }

    /// Resumes the caller once; later calls do nothing.
    func finish(_ result: Result<CurlResponse, any Error>) {
        guard let continuation = self.continuation else { return }
        self.continuation = nil
        self.releaseHandle()
        continuation.resume(with: result)
    }

    /// Completes from curl's result code for this transfer.
    func complete(code: CURLcode) {
        if code == CURLE_OK {
            self.finish(.success(CurlResponse(status: self.status, headers: self.headers, body: self.body)))
        } else if self.tooLarge {
            self.finish(.failure(CurlError(code: .transfer, curlCode: Int(code.rawValue), detail: "response larger than \(self.maximumResponseBytes) bytes")))
        } else {
            self.finish(.failure(CurlError(curlCode: code, detail: String(cString: curl_easy_strerror(code)))))
        }
    }

    private func releaseHandle() {
        if let handle { curl_easy_cleanup(handle) }
        self.handle = nil
        if let headerList { curl_slist_free_all(headerList) }
        self.headerList = nil
    }

    fileprivate func receiveHeader(_ line: UnsafeBufferPointer<UInt8>) {
        var text = String(decoding: line, as: UTF8.self)
        // "\r\n" is a single Character in Swift: trim scalars, not characters.
        while let last = text.unicodeScalars.last, last == "\n" || last == "\r" { text.unicodeScalars.removeLast() }
        if text.hasPrefix("HTTP/") {
            // A new status line: an interim 1xx response or a proxy's answer came before; start over.
            self.headers = []
            let parts = text.split(separator: " ", maxSplits: 2)
            self.status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
        } else if let colon = text.firstIndex(of: ":") {
            let name = String(text[..<colon])
            let value = text[text.index(after: colon)...].trimmingCharacters(in: " \t")
            self.headers.append((name, value))
        }
    }

    fileprivate func receiveBody(_ chunk: UnsafeBufferPointer<UInt8>) -> Bool {
        guard self.body.count + chunk.count <= self.maximumResponseBytes else {
            self.tooLarge = true
            return false
        }
        self.body.append(contentsOf: chunk)
        return true
    }
}

private let curlWriteBody: ccurl_data_callback = { data, size, count, user in
    guard let data, let user else { return 0 }
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(user).takeUnretainedValue()
    let length = size * count
    let accepted = data.withMemoryRebound(to: UInt8.self, capacity: length) {
        transfer.receiveBody(UnsafeBufferPointer(start: $0, count: length))
    }
    return accepted ? length : 0
}

private let curlWriteHeader: ccurl_data_callback = { data, size, count, user in
    guard let data, let user else { return 0 }
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(user).takeUnretainedValue()
    let length = size * count
    data.withMemoryRebound(to: UInt8.self, capacity: length) {
        transfer.receiveHeader(UnsafeBufferPointer(start: $0, count: length))
    }
    return length
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var scalars = Substring(self)
        while let first = scalars.first, set.contains(first) { scalars.removeFirst() }
        while let last = scalars.last, set.contains(last) { scalars.removeLast() }
        return String(scalars)
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String { String(self).trimmingCharacters(in: set) }
}

extension Duration {
    var curlMilliseconds: Int {
        Int(self.components.seconds) * 1000 + Int(self.components.attoseconds / 1_000_000_000_000_000)
    }
}
