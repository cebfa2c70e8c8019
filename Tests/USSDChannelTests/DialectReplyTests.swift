import Menus
import Testing
import USSDDialects
@testable import USSDChannel

@Suite struct DialectReplyTests {
    /// A menus file may allow 182 characters a page (Airtel Kenya shows 184); a dialect whose
    /// networks show 160 gets its reply cut to 160, counted, never sent over.
    @Test func aReplyIsCutToTheDialectsPageBudget() {
        let long = DialectReply(text: String(repeating: "a", count: 150) + "\n" + String(repeating: "b", count: 30), ends: false)
        let (cut, wasCut) = DialectRoutes.fitted(long, dialectBudget: 160, menus: TextBudget(gsm7: 182, ucs2: 70))
        #expect(wasCut && TextBudget(gsm7: 160, ucs2: 70).fits(cut.text) && !cut.ends && cut.text.hasPrefix(String(repeating: "a", count: 150)))
        let short = DialectReply(text: "Welcome\n1. Balance", ends: true)
        #expect(DialectRoutes.fitted(short, dialectBudget: 160, menus: TextBudget(gsm7: 182, ucs2: 70)) == (short, false))
        let swahili = DialectReply(text: String(repeating: "ŵ", count: 80), ends: true)
        #expect(DialectRoutes.fitted(swahili, dialectBudget: 160, menus: TextBudget(gsm7: 160, ucs2: 70)).0.text.count <= 70, "UCS-2: 70")
    }
}
