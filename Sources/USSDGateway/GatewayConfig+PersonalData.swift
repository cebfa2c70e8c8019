import Foundation
import Logging
import Postgres
import Settings
import Wallet

extension GatewayConfig {
    /// The personal-data keys (KEKs) and the key store, never echoed (SECURITY.md: key hierarchy):
    /// - `PERSONAL_DATA_KEY_FILE`, `PERSONAL_DATA_KEY` or `PERSONAL_DATA_PKCS11_MODULE` (with
    ///   `_SLOT`, `_LABEL` (default `ussd-gateway-personal-data`) and `_PIN`): the KEK versions,
    ///   from the same kinds of source as the PIN keys and apart from them;
    /// - `PERSONAL_DATA_KEYS_URL`: the key store's database, apart from the ledger's.
    /// Both are required outside development; development uses `.data/personal-data.keys` (made
    /// with a random key on first use) and a database named after the ledger's with `_keys`
    /// (made on first use).
    mutating func readPersonalDataKeys(_ reader: SettingsReader, required: Bool) throws(ConfigError) {
        var sources: [(String, PINKeySource)] = []
        if let path = reader.value("PERSONAL_DATA_KEY_FILE") { sources.append(("PERSONAL_DATA_KEY_FILE", .file(path: path))) }
        if let value = reader.value("PERSONAL_DATA_KEY", secret: true) { sources.append(("PERSONAL_DATA_KEY", .environment(value))) }
        if let module = reader.value("PERSONAL_DATA_PKCS11_MODULE") {
            guard let slot = reader.value("PERSONAL_DATA_PKCS11_SLOT") else {
                throw ConfigError(variable: "PERSONAL_DATA_PKCS11_SLOT", problem: "is required with PERSONAL_DATA_PKCS11_MODULE: a slot's number or the token's label")
            }
            guard let pin = reader.value("PERSONAL_DATA_PKCS11_PIN", secret: true) else {
                throw ConfigError(variable: "PERSONAL_DATA_PKCS11_PIN", problem: "is required with PERSONAL_DATA_PKCS11_MODULE: the token's user PIN")
            }
            let label = reader.string("PERSONAL_DATA_PKCS11_LABEL", default: "ussd-gateway-personal-data")
            sources.append(("PERSONAL_DATA_PKCS11_MODULE", .pkcs11(PKCS11Settings(module: module, slot: .init(slot), label: label, pin: pin))))
        }
        guard sources.count <= 1 else {
            throw ConfigError(variable: sources.map(\.0).joined(separator: ", "), problem: "name one source of personal-data keys, not several")
        }
        if let source = sources.first?.1, let pins = self.pinKeys, Self.sameKeys(source, pins) {
            throw ConfigError(variable: sources[0].0, problem: "names the PIN keys: the personal-data keys are keys of their own (retiring one must never touch the other)")
        }
        if let store = reader.value("PERSONAL_DATA_KEYS_URL", secret: true) {
            self.personalDataStore = PostgresConfiguration(connectionString: store)
        }
        if let (_, source) = sources.first {
            self.personalDataKeys = source
        } else if self.environment == .development {
            self.personalDataKeys = .file(path: ".data/personal-data.keys")
            self.personalDataKeyIsDevelopmentDefault = true
        } else if required {
            throw ConfigError(
                variable: "PERSONAL_DATA_KEY_FILE",
                problem: "is required outside development (or PERSONAL_DATA_KEY, or PERSONAL_DATA_PKCS11_MODULE with its slot, label and PIN): the key names and texts are sealed under"
            )
        }
        if required, self.environment != .development {
            guard let store = self.personalDataStore else {
                throw ConfigError(variable: "PERSONAL_DATA_KEYS_URL", problem: "is required outside development: the key store's database, apart from the ledger's")
            }
            if Self.sameDatabase(store.connectionString, self.postgres.connectionString) {
                throw ConfigError(
                    variable: "PERSONAL_DATA_KEYS_URL",
                    problem: "names the ledger's own database: the data keys must live apart from the data (and its backups) for an erasure to reach them")
            }
        }
    }

    /// The key store this configuration uses: `PERSONAL_DATA_KEYS_URL`, or in development the
    /// ledger's server with the ledger's database name and `_keys`.
    public var keyStoreConfiguration: PostgresConfiguration {
        if let store = self.personalDataStore { return store }
        var store = self.postgres
        store.connectionString = Self.replacingDatabase(self.postgres.connectionString) { $0 + "_keys" }
        store.poolSize = 4
        return store
    }

    /// Opens the personal-data keys (development's key file made on first use; a configuration
    /// built in code in development gets a key of this process alone) over a client of the key
    /// store. In development the key store's database is made and migrated on first use.
    public func openPersonalData(logger: Logger = Logger(label: "personal-data")) throws(PINKeyError) -> PersonalData {
        let keys: any PINKeyStore
        if let source = self.personalDataKeys {
            if self.personalDataKeyIsDevelopmentDefault, case .file(let path) = source {
                try SoftwarePINKeys.createIfMissing(file: path, noun: "personal-data key")
            }
            keys = try source.open(noun: "personal-data key", variable: "PERSONAL_DATA_KEY")
        } else {
            guard self.environment == .development else {
                throw PINKeyError("no personal-data keys are configured (PERSONAL_DATA_KEY_FILE, PERSONAL_DATA_KEY or PERSONAL_DATA_PKCS11_MODULE)")
            }
            keys = SoftwarePINKeys(key: SoftwarePINKeys.randomKey(), noun: "personal-data key")
        }
        // Outside development the key store is named, never guessed next to the ledger (a command
        // run without PERSONAL_DATA_KEYS_URL would otherwise use, or half-change, another one).
        guard self.personalDataStore != nil || self.environment == .development else {
            throw PINKeyError("PERSONAL_DATA_KEYS_URL is required outside development: the key store's database, apart from the ledger's")
        }
        let store = self.keyStoreConfiguration
        // Development's own key store (named after the ledger's database) is made on first use; a
        // key store named by PERSONAL_DATA_KEYS_URL is `migrate`'s to make.
        let prepare: (@Sendable () async throws -> Void)? =
            self.environment == .development && self.personalDataStore == nil
            ? { @Sendable in try await Self.prepareKeyStore(store, creating: true, logger: logger) } : nil
        return PersonalData(keys: keys, store: PostgresClient(configuration: store, logger: logger), prepare: prepare)
    }

    /// Makes the key store's database when `creating` and it is missing (development), and applies
    /// its migrations.
    public static func prepareKeyStore(_ store: PostgresConfiguration, creating: Bool, logger: Logger) async throws {
        if creating, let name = Self.databaseName(store.connectionString) {
            var server = store
            server.connectionString = Self.replacingDatabase(store.connectionString) { _ in "postgres" }
            server.poolSize = 1
            server.statementTimeout = nil
            let admin = PostgresClient(configuration: server, logger: logger)
            do {
                let exists = try await !admin.query("SELECT 1 FROM pg_database WHERE datname = \(name)").isEmpty
                // CREATE DATABASE takes no parameters: the name is quoted as an identifier.
                if !exists {
                    do {
                        try await admin.query("CREATE DATABASE \(unescaped: "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\"")")
                    } catch let error as PostgresError where error.sqlState == "42P04" {
                        // Another process made it meanwhile.
                    }
                }
                await admin.shutdown()
            } catch {
                await admin.shutdown()
                throw error
            }
        }
        let client = PostgresClient(configuration: store, logger: logger)
        do {
            // Already current (a login that may not create tables finds it so): nothing to do.
            let migrations = try WalletMigrations.keyStore()
            let applied = try? await client.query("SELECT count(*) FROM schema_migrations").single()?.decode(Int.self, column: 0)
            if applied == migrations.count {
                await client.shutdown()
                return
            }
            do {
                try await client.migrate(migrations)
            } catch let error as PostgresError where error.sqlState == "42501" {
                // A login that may not change the schema (the gateway's, a member of staff's): the
                // key store is `migrate`'s to make; it is there when its keys can be read.
                _ = try await client.query("SELECT 1 FROM data_keys LIMIT 0")
            }
            await client.shutdown()
        } catch {
            await client.shutdown()
            throw error
        }
    }

    static func sameKeys(_ one: PINKeySource, _ other: PINKeySource) -> Bool {
        switch (one, other) {
        case (.file(let a), .file(let b)): return (a as NSString).standardizingPath == (b as NSString).standardizingPath
        case (.environment(let a), .environment(let b)): return a == b
        case (.pkcs11(let a), .pkcs11(let b)): return a.module == b.module && a.slot == b.slot && a.label == b.label
        default: return false
        }
    }

    static func databaseName(_ url: String) -> String? {
        guard let components = URLComponents(string: url), components.scheme?.hasPrefix("postgres") == true else { return nil }
        let name = String(components.path.drop(while: { $0 == "/" }))
        return name.isEmpty ? nil : name
    }

    static func replacingDatabase(_ url: String, _ change: (String) -> String) -> String {
        guard var components = URLComponents(string: url), components.scheme?.hasPrefix("postgres") == true else {
            // A key=value connection string: the dbname entry changed (or added).
            let old = url.split(separator: " ").first { $0.hasPrefix("dbname=") }.map { String($0.dropFirst(7)) } ?? "ussd"
            let rest = url.split(separator: " ").filter { !$0.hasPrefix("dbname=") }.joined(separator: " ")
            return rest + " dbname=" + change(old)
        }
        components.path = "/" + change(Self.databaseName(url) ?? "ussd")
        return components.string ?? url
    }

    /// Whether two connection strings name one database, as libpq reads them (URLs or `key=value`
    /// strings, another user or options aside): host, port and database name. Two names of one host
    /// (`localhost`, `127.0.0.1`) are not resolved.
    static func sameDatabase(_ one: String, _ other: String) -> Bool {
        func place(_ connection: String) -> [String]? {
            let options = PostgresConfiguration(connectionString: connection).declaredOptions
            guard !options.isEmpty else { return nil }
            let host = options["host"] ?? options["hostaddr"] ?? ProcessInfo.processInfo.environment["PGHOST"] ?? "localhost"
            return [host, options["port"] ?? ProcessInfo.processInfo.environment["PGPORT"] ?? "5432", options["dbname"] ?? options["user"] ?? ""]
        }
        guard let a = place(one), let b = place(other) else { return one == other }
        return a == b
    }
}
