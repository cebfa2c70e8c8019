import Basics
import Foundation
import Postgres

extension Wallet {
    /// The customer behind a number, for what a menu shows (the home route's profile): from
    /// ``profiles`` when it keeps them, so as fresh as Postgres' notices of changes; read from
    /// Postgres otherwise. Nothing that moves money or checks a PIN reads it.
    public func profile(_ msisdn: MSISDN) async throws -> Profile {
        let load = { () async throws -> Profile in
            let customer = try await self.customer(msisdn)
            // A menu greets without the name rather than fail when the name cannot be opened now
            // (the key store unreachable); logged, never the name.
            do {
                return Profile(customer: customer, name: try await self.name(of: customer))
            } catch {
                self.logger.warning("a customer's name was not opened for the menu", metadata: ["error": .string(safeDescription(of: error))])
                return Profile(customer: customer, name: nil)
            }
        }
        guard let profiles = self.profiles else { return try await load() }
        let profile = try await profiles.lookup(msisdn.value, load: load)
        // Kept for a send's PIN too when that cache forgot it (a hint the movement checks).
        self.customerIDs.remember(profile.customer.id, for: msisdn)
        return profile
    }

    /// A customer with their name opened, as a menu shows it.
    @dynamicMemberLookup
    public struct Profile: Sendable, Hashable {
        public let customer: Customer
        /// Nil once erased.
        public let name: String?

        public subscript<Value>(dynamicMember path: KeyPath<Customer, Value>) -> Value { self.customer[keyPath: path] }

        public func isLocked(at now: Date = Date()) -> Bool { self.customer.isLocked(at: now) }
    }

    /// The customer's name, opened with their data key; nil once erased. Throws
    /// ``PersonalDataError/doesNotOpen(_:)`` for a sealed name that is not this customer's.
    public func name(of customer: Customer) async throws -> String? {
        guard let sealed = customer.sealedName else {
            if customer.erasedAt != nil { return nil }
            // A row from before names were sealed, until `migrate` seals it: the owner reads it.
            return try await self.postgres.query("SELECT name FROM customers WHERE id = \(customer.id)").single()?.decode(String?.self, column: 0)
        }
        return try await self.requirePersonalData().open(sealed, for: customer.subject, at: .customerName(customer.subject))
    }

    func requirePersonalData() throws -> PersonalData {
        guard let personalData = self.personalData else {
            throw PersonalDataError.keys("this wallet has no personal-data keys (PERSONAL_DATA_KEY_FILE and PERSONAL_DATA_KEYS_URL): names and texts cannot be sealed or read")
        }
        return personalData
    }

    /// A `bytea[]` literal of `values` (hex), for a parameter cast to `bytea[]`.
    public static func byteaArray(_ values: [Data]) -> String {
        "{" + values.map { "\"\\\\x" + Hex.encode($0) + "\"" }.joined(separator: ",") + "}"
    }
}
