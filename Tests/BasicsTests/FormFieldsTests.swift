import Basics
import Testing

/// Forms and URL queries as callbacks send them.
@Suite struct FormFieldsTests {
    @Test func aQueryIsReadAsARouterReadsItAndNeverRefused() {
        let fields = FormFields.query("msisdn=+254712345678&input=50%25&raw=50%&both=%41&both=B&flag")
        #expect(fields["msisdn"] == "+254712345678", "+ stays in a query")
        #expect(fields["input"] == "50%" && fields["raw"] == "50%", "an escape is decoded, a stray % kept")
        #expect(fields["both"] == "A" && fields["flag"] == "")
    }

    /// `&` followed by a combining mark is one Character; the separator is the byte.
    @Test func aQuerySplitsOnTheSeparatorBytesNotOnCharacters() {
        let fields = FormFields.query("a=1&\u{0656}b=2")
        #expect(fields["a"] == "1" && fields["\u{0656}b"] == "2", "\(fields)")
    }

    @Test func aFormRefusesABadEscapeEvenInALaterRepeatOfAName() throws {
        #expect(throws: MalformedCallback.self) { try FormFields.parse(Array("a=1&a=%zz".utf8)) }
        #expect(try FormFields.parse(Array("a=1&a=2&b=x+y".utf8)) == ["a": "1", "b": "x y"])
    }
}
