import Basics
import Menus

/// How the planner reads a hop: its dialled code, its seal, whether it repeats the last, and its
/// new input.
extension HopPlanner {
    /// Whether the hop's dialled code is one this menus.json serves (a code, or an extension of
    /// one); a later hop of a latest-input dialect carries none.
    func serves(_ hop: USSDHop) -> Bool {
        if hop.serviceCode.isEmpty { return hop.form != .wholePath && !hop.isFirst }
        return self.serviceCodes.contains(hop.serviceCode) || self.dialExtension(hop) != nil
    }

    /// The digits dialled past a service code this file serves (`*384*96*1#`: `1`), as Africa's
    /// Talking sends the dialled code; nil when the code extends none of them.
    func dialExtension(_ hop: USSDHop) -> [Substring]? {
        Shortcut.extensionSegments(of: hop.serviceCode, serviceCodes: self.serviceCodes)
    }

    /// A new session's dial-in extension: from the dialled code, or else from the first hop's
    /// `text`. Whether Africa's Talking puts the extra digits of `*384*96*1#` in `serviceCode` or in
    /// the first `text` is not documented, so both are read. A session whose record expired in
    /// Redis also arrives here with a `text`: it opens a shortcut only if its path is exactly one,
    /// which is where the user was going anyway. The latest-input dialects carry their extra
    /// digits in the dial only.
    func shortcutSegments(_ hop: USSDHop) -> [Substring] {
        if let segments = self.dialExtension(hop), !segments.isEmpty { return segments }
        guard hop.form == .wholePath else { return [] }
        return hop.text.isEmpty ? [] : hop.text.split(separator: "*", omittingEmptySubsequences: false)
    }

    /// The seal of a hop's `text` (which repeats every PIN typed), bound to the session: the same
    /// inputs in two sessions never give equal seals, so Redis reveals nothing about equal PINs.
    func textSeal(_ text: String, session: String) -> String {
        self.sealer.seal("ussd-text|" + session + "|" + text)
    }

    /// The seal that identifies a hop in its session: of the whole path (Africa's Talking), of the
    /// dialect's sequence and input, or of the latest input alone.
    func seal(_ hop: USSDHop) -> String {
        switch hop.form {
        case .wholePath:
            return self.textSeal(hop.text, session: hop.sessionId)
        case .latestInput(let sequence, _):
            let input = hop.isFirst ? "\u{0}dial|" + hop.serviceCode : hop.text
            if let sequence { return self.sealer.seal("ussd-hop|\(hop.sessionId)|\(sequence)|\(input)") }
            return self.sealer.seal("ussd-input|\(hop.sessionId)|\(input)")
        }
    }

    /// Whether a hop whose seal equals the record's is that hop again. Without a sequence, the same
    /// latest input is a repeat only within the repeat window after the answer: later, it is the
    /// user answering the next screen the same way (`1`, then `1` again).
    func isRepeat(_ hop: USSDHop, of record: SessionRecord, now: Double) -> Bool {
        guard case .latestInput(nil, _) = hop.form, !hop.isFirst, let answeredAt = record.answeredAt else { return true }
        return now - answeredAt <= Double(self.repeatWindow.inMilliseconds) / 1000
    }

    /// The input of a new hop: for Africa's Talking, what follows the previous hop's text (a
    /// prefix of this one); for a latest-input dialect, its input, when its sequence (if any)
    /// follows the last one answered.
    func newInput(_ hop: USSDHop, after record: SessionRecord) -> String? {
        guard hop.form == .wholePath else {
            if let sequence = hop.sequence, let last = record.sequence, sequence != last + 1 { return nil }
            return hop.isFirst ? nil : hop.text
        }
        let bytes = hop.text.utf8
        guard bytes.count >= record.textLength else { return nil }
        let cut = bytes.index(bytes.startIndex, offsetBy: record.textLength)
        let previous = String(decoding: bytes[..<cut], as: UTF8.self)
        guard self.textSeal(previous, session: hop.sessionId) == record.textSeal else { return nil }
        if record.textLength == 0 { return hop.text }
        guard cut < bytes.endIndex, bytes[cut] == UInt8(ascii: "*") else { return nil }
        return String(decoding: bytes[bytes.index(after: cut)...], as: UTF8.self)
    }
}
