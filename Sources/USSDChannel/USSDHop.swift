import Basics
import Menus
import USSDDialects

/// One hop, decoded and checked at the edge, in the form ``USSDService`` takes from every dialect.
///
/// Africa's Talking sends the whole input path on every hop; the other dialects send only the
/// latest input. The service keeps the path itself for those, as the engine's state (never as text:
/// the path repeats every PIN typed), and recognises a repeated hop by its dialect's sequence, or
/// else by the same latest input at the same step (see ``Form``).
public struct USSDHop: Sendable {
    /// How the hop's `text` relates to the session.
    public enum Form: Sendable, Equatable {
        /// `text` is every input of the session so far, `*`-joined (Africa's Talking). A hop is
        /// the session and its `text`; the new input is what follows the previous hop's `text`.
        case wholePath
        /// `text` is the latest input only. `sequence` numbers the hop where the dialect does
        /// (Hubtel): a repeat is the same sequence. Without one, a repeat is the same input as the
        /// hop answered last, arriving while it runs or within the repeat window after its answer
        /// (``USSDService/Settings/repeatWindow``): no network shows a screen and brings back the
        /// answer to it that fast. `first` is nil where the dialect does not mark a session's first
        /// hop (Flares): the first is then the one whose session the gateway has not seen.
        case latestInput(sequence: Int?, first: Bool?)
    }

    public let sessionId: String
    public let msisdn: MSISDN
    /// The dialled code: `*384*96#`, or an extension of it (`*384*96*1#`) on a session's first hop.
    /// Empty on latest-input hops after the first, which carry none.
    public let serviceCode: String
    /// See ``Form``. Holds PINs: never log or store it.
    public let text: String
    public let form: Form
    /// The aggregator whose dialect brought the hop (``CanonicalHop/Provider``'s name): a label of
    /// the hop's metrics, never part of its session.
    public var provider = CanonicalHop.Provider.africastalking.rawValue

    /// An Africa's Talking hop: the whole path in `text`.
    public init(sessionId: String, msisdn: MSISDN, serviceCode: String, text: String) {
        self.init(sessionId: sessionId, msisdn: msisdn, serviceCode: serviceCode, text: text, form: .wholePath)
    }

    public init(sessionId: String, msisdn: MSISDN, serviceCode: String, text: String, form: Form) {
        self.sessionId = sessionId
        self.msisdn = msisdn
        self.serviceCode = serviceCode
        self.text = text
        self.form = form
    }

    /// Known to open its session: Africa's Talking's empty `text`, a dialect's dial.
    var isFirst: Bool {
        switch self.form {
        case .wholePath: return self.text.isEmpty
        case .latestInput(_, let first): return first == true
        }
    }

    /// The dialect's hop number, where it gives one.
    var sequence: Int? {
        if case .latestInput(let sequence, _) = self.form { return sequence }
        return nil
    }

    /// The length of the path this hop carries (Africa's Talking), which the next hop extends.
    var pathLength: Int { self.form == .wholePath ? self.text.utf8.count : 0 }

    /// The same hop as its session's first: a Flares hop whose session is new dials `serviceCode`.
    func asFirst(dialled serviceCode: String) -> USSDHop {
        var sequence: Int?
        if case .latestInput(let number, _) = self.form { sequence = number }
        var first = USSDHop(
            sessionId: self.sessionId, msisdn: self.msisdn, serviceCode: serviceCode, text: "", form: .latestInput(sequence: sequence, first: true))
        first.provider = self.provider
        return first
    }
}

extension USSDHop {
    /// A hop of any dialect, decoded: Africa's Talking's whole path, or another dialect's latest
    /// input with its sequence, and its dial resolved against the service codes served on a first
    /// hop (where the dialect marks one).
    public init(_ hop: CanonicalHop, msisdn: MSISDN, serviceCodes: [String]) {
        let sessionId = Self.sessionId(of: hop)
        if let path = hop.path {
            self.init(sessionId: sessionId, msisdn: msisdn, serviceCode: hop.serviceCode ?? "", text: path)
        } else if !hop.provider.marksFirstHop {
            self.init(sessionId: sessionId, msisdn: msisdn, serviceCode: "", text: hop.input, form: .latestInput(sequence: hop.sequence, first: nil))
        } else if hop.phase == .begin {
            // The dial string, or the service code when a first hop carries none.
            let dial = hop.dial.flatMap { $0.isEmpty ? nil : $0 } ?? hop.serviceCode ?? ""
            self.init(
                sessionId: sessionId, msisdn: msisdn, serviceCode: Shortcut.dialled(dial, serviceCodes: serviceCodes), text: "",
                form: .latestInput(sequence: hop.sequence, first: true)
            )
        } else {
            self.init(sessionId: sessionId, msisdn: msisdn, serviceCode: "", text: hop.input, form: .latestInput(sequence: hop.sequence, first: false))
        }
        self.provider = hop.provider.rawValue
    }

    /// The session's key: `<provider>-<session id>`, so two aggregators' ids never meet. Africa's
    /// Talking's keep their own ids, as they did before the other dialects came: the wallet's
    /// idempotency keys of its sessions' sends (`ussd:{sessionId}:{hop}`) stay what they were.
    public static func sessionId(of hop: CanonicalHop) -> String {
        hop.provider == .africastalking ? hop.sessionID : hop.provider.rawValue + "-" + hop.sessionID
    }
}
