import Basics
import CCurl

/// One request in flight: its easy handle, header list, response buffers and the continuation to
/// resume.
///
/// `@unchecked Sendable`: created on the caller's task and handed to the driver thread once; from
/// then on only the driver thread reads or writes it (a cancellation only queues it for the driver).
final class CurlTransfer: CurlJob, @unchecked Sendable {
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
        set(ccurl_setopt_long(handle, CURLOPT_TIMEOUT_MS, max(1, Int(request.timeout.inMilliseconds))))
        set(ccurl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, max(1, Int(request.connectTimeout.inMilliseconds))))
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

    func fail(_ error: any Error) { self.finish(.failure(error)) }

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

    /// One header line as libcurl hands it over, parsed on bytes (no per-character `String` work:
    /// this runs several times for every response).
    fileprivate func receiveHeader(_ line: UnsafeBufferPointer<UInt8>) {
        var end = line.count
        while end > 0, line[end - 1] == UInt8(ascii: "\n") || line[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        let bytes = UnsafeBufferPointer(rebasing: line[0..<end])
        if bytes.starts(with: "HTTP/".utf8) {
            // A new status line: an interim 1xx response or a proxy's answer came before; start over.
            self.headers = []
            self.status = Self.statusCode(bytes)
        } else if let colon = bytes.firstIndex(of: UInt8(ascii: ":")) {
            var start = colon + 1
            var stop = bytes.count
            while start < stop, bytes[start] == UInt8(ascii: " ") || bytes[start] == UInt8(ascii: "\t") { start += 1 }
            while stop > start, bytes[stop - 1] == UInt8(ascii: " ") || bytes[stop - 1] == UInt8(ascii: "\t") { stop -= 1 }
            let name = String(decoding: UnsafeBufferPointer(rebasing: bytes[0..<colon]), as: UTF8.self)
            let value = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<stop]), as: UTF8.self)
            self.headers.append((name, value))
        }
    }

    /// The three digits after "HTTP/x[.y] " in a status line; 0 when they are not there.
    private static func statusCode(_ line: UnsafeBufferPointer<UInt8>) -> Int {
        guard let space = line.firstIndex(of: UInt8(ascii: " ")), space + 3 <= line.count else { return 0 }
        var code = 0
        for index in space + 1..<space + 4 {
            let digit = line[index]
            guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") else { return 0 }
            code = code * 10 + Int(digit - UInt8(ascii: "0"))
        }
        if space + 4 < line.count, line[space + 4] != UInt8(ascii: " ") { return 0 }
        return code
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

