import Basics
import MoMo

/// MTN MoMo's callback bodies and status answers (the same object): what the decoder accepts is
/// bounded, names one party by digits, has an amount MoMo's reader turns into minor units without
/// overflow or refuses, and a reason only in MoMo's code shape.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let answer = try? MoMoTransaction.decodeCallback(bytes) else { return 0 }
    precondition(bytes.count <= MoMoTransaction.maximumBodyBytes, "an unbounded body taken")
    precondition(!answer.party.partyId.isEmpty && answer.party.partyId.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }, "a party that is not digits")
    for decimals in 0...3 {
        if let minor = MoMoAmount.minorUnits(answer.amount, decimals: decimals) {
            precondition(minor >= 0, "a negative amount")
            precondition(MoMoAmount.string(minorUnits: minor, decimals: decimals) != nil, "an amount that does not write back")
        }
    }
    if let reason = answer.reason {
        precondition((1...64).contains(reason.code.utf8.count), "an unbounded reason code")
    }
    precondition(answer.currency.utf8.count <= 512 && (answer.externalId?.utf8.count ?? 0) <= 512, "an unbounded field")
    return 0
}
