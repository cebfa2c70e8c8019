// swift-tools-version:6.0
import PackageDescription

/// What the gateway's end-to-end suites and their shared harness import: the whole gateway.
let gatewayTestDependencies: [Target.Dependency] = [
    "USSDGateway", "GatewayTelemetry", "TestSupport", "Curl", "Postgres", "Menus", "MPesa", "Wallet", "MPesaBook", "Settings", "AfricasTalking", "Sandbox", "MoMo",
    "GatewayHTTP", "GatewayActions", "USSDChannel", "SMSChannel", "MPesaGateway", "MoMoGateway", "Basics", "StaffDesk",
    .product(name: "HummingbirdOTP", package: "hummingbird-auth"),
    .product(name: "MetricsTestKit", package: "swift-metrics"),
    .product(name: "HTTPTypes", package: "swift-http-types"),
    .product(name: "Hummingbird", package: "hummingbird"),
    .product(name: "Logging", package: "swift-log"),
    .product(name: "HummingbirdTesting", package: "hummingbird"),
]

let package = Package(
    name: "ussd-gateway",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "ussd-gateway", targets: ["ussd-gateway"]),
        .executable(name: "gateway-bench", targets: ["gateway-bench"]),
    ],
    dependencies: [
        // Every package pinned to one release, so a build resolves the same code anywhere
        // (Package.resolved stays out of git: this machine's package mirror has commit ids of its own).
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", exact: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", exact: "1.16.2"),
        .package(url: "https://github.com/apple/swift-configuration.git", exact: "1.4.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", exact: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", exact: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", exact: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", exact: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", exact: "2.37.6"),
        .package(url: "https://github.com/apple/swift-crypto.git", exact: "4.5.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", exact: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", exact: "1.35.2"),
        .package(url: "https://github.com/apple/swift-collections.git", exact: "1.6.0"),
        .package(url: "https://github.com/swift-otel/swift-w3c-trace-context.git", exact: "1.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", exact: "2.5.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", exact: "2.1.1"),
    ],
    targets: [
        // C libraries from Debian's packages, wrapped as system-library targets.
        .systemLibrary(name: "CHiredis", pkgConfig: "hiredis", providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // The PKCS#11 header as p11-kit ships it, and the few calls the PIN keys make into a module
        // (an HSM's, or SoftHSM2's in the tests) loaded by path at run time.
        // QR codes for the staff desk's TOTP enrolment (libqrencode).
        .systemLibrary(name: "CQRencode", pkgConfig: "libqrencode", providers: [.apt(["libqrencode-dev"])]),
        .systemLibrary(name: "CP11Kit", pkgConfig: "p11-kit-1", providers: [.apt(["libp11-kit-dev"])]),
        .target(name: "CPKCS11", dependencies: ["CP11Kit"]),

        // A bounded pool of connections whose blocking C calls run on threads of their own.
        .target(
            name: "ConnectionPool",
            dependencies: [
                "Basics",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .target(
            name: "Redis",
            dependencies: [
                "CHiredis", "ConnectionPool", "Basics", "Settings",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "Postgres",
            dependencies: [
                "CLibPQ", "ConnectionPool", "Basics", "Settings",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "Curl",
            dependencies: [
                "CCurl", "Basics",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The ledger on Postgres: customers, PINs, accounts, transfers, holds, the audit trail, outbox.
        .target(
            name: "Wallet",
            dependencies: [
                "Postgres", "Basics", "ConnectionPool", "CPKCS11", "Settings",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [.copy("Migrations"), .copy("KeyStoreMigrations")]
        ),
        // Settings: each part reads its own through swift-configuration, checked the same way.
        .target(
            name: "Settings",
            dependencies: [
                "Basics",
                .product(name: "Configuration", package: "swift-configuration"),
            ]
        ),
        // MTN MoMo as the mobile-money rail (MOBILE_MONEY=mtn-momo): its service, callbacks and reconciler.
        .target(
            name: "MoMoGateway",
            dependencies: [
                "MoMo", "MPesaBook", "Wallet", "Basics", "GatewayActions", "GatewayHTTP", "GatewayTelemetry", "Jobs", "Settings",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // M-Pesa's records beside the ledger: deposits, payouts, paybill payments, status queries, review.
        .target(
            name: "MPesaBook",
            dependencies: [
                "Wallet", "Postgres", "Basics",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "MPesa",
            dependencies: [
                "Curl", "Basics", "GatewayTelemetry",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // MTN MoMo Open API: Collections (request to pay) and Disbursements (transfer), per-product tokens.
        .target(
            name: "MoMo",
            dependencies: [
                "Curl", "Basics", "GatewayTelemetry",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "AfricasTalking",
            dependencies: [
                "Curl", "Basics",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Every aggregator's USSD dialect as one canonical hop: a decoder and a renderer each.
        .target(name: "USSDDialects", dependencies: ["AfricasTalking", "Basics"]),
        // Pure value types every layer shares: the one parser of phone numbers, callback fields
        // checked at the edge, forms, and errors safe to log.
        .target(name: "Basics"),
        // The process's Prometheus registry and the counters and timers the parts record to.
        .target(
            name: "GatewayTelemetry",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "W3CTraceContext", package: "swift-w3c-trace-context"),
            ]
        ),
        .target(name: "Menus", dependencies: ["Basics"]),
        // Work requests hand on to a service that owns it until graceful shutdown.
        .target(name: "Jobs", dependencies: [.product(name: "ServiceLifecycle", package: "swift-service-lifecycle")]),
        // The embedded sandbox of a development gateway: simulated Daraja and Africa's Talking
        // messaging, the handsets' inboxes, a mail server that keeps what it is sent, and the
        // browser phone. Never switched on in production.
        .target(
            name: "Sandbox",
            dependencies: [
                "Curl", "MPesa", "MoMo", "AfricasTalking", "Basics", "Jobs",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // HTTP plumbing every channel shares: request context, callback guard, body limits, request
        // log, method check. Hummingbird and Basics, nothing of ours above them.
        .target(
            name: "GatewayHTTP",
            dependencies: [
                "Basics", "GatewayTelemetry",
                .product(name: "W3CTraceContext", package: "swift-w3c-trace-context"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The one table of actions the menus may name, bound to the wallet and the mobile-money provider.
        .target(
            name: "GatewayActions",
            dependencies: [
                "Menus", "Wallet", "GatewayTelemetry", "Curl", "Basics", .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // USSD: every aggregator's hops through Redis sessions and the menu engine to the actions.
        .target(
            name: "USSDChannel",
            dependencies: [
                "Menus", "Wallet", "Redis", "AfricasTalking", "GatewayHTTP", "GatewayTelemetry", "GatewayActions", "USSDDialects", "Basics", "Settings",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        // SMS: inbound commands, the outbox sender, delivery reports.
        .target(
            name: "SMSChannel",
            dependencies: [
                "Menus", "Wallet", "Postgres", "Redis", "AfricasTalking", "GatewayHTTP", "GatewayTelemetry", "GatewayActions", "Basics", "Settings",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // M-Pesa: deposits by STK push, withdrawals by B2C, their callbacks and the reconciler.
        .target(
            name: "MPesaGateway",
            dependencies: [
                "Menus", "Wallet", "MPesaBook", "MPesa", "GatewayHTTP", "GatewayTelemetry", "GatewayActions", "Jobs", "Basics", "Settings",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Configuration and composition: builds the application from the parts above.
        // The staff desk: a web back-office on the admin listener, people signed in with a password
        // and TOTP, acting in the database as themselves (SET LOCAL ROLE).
        .target(
            name: "StaffDesk",
            dependencies: [
                "Wallet", "MPesaBook", "Redis", "Postgres", "Basics", "ConnectionPool", "CQRencode",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdOTP", package: "hummingbird-auth"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [.copy("Templates")]
        ),
        .target(
            name: "USSDGateway",
            dependencies: [
                "Redis", "Postgres", "Curl", "Menus", "Wallet", "MPesaBook", "MPesa", "AfricasTalking", "Sandbox", "Basics", "Settings",
                "GatewayHTTP", "GatewayTelemetry", "GatewayActions", "USSDChannel", "SMSChannel", "MPesaGateway", "MoMoGateway", "MoMo", "StaffDesk",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "ussd-gateway",
            dependencies: [
                "USSDGateway", "Wallet", "MPesaBook", "Curl", "Postgres", "Menus", "Sandbox", "MPesaGateway", "SMSChannel", "GatewayActions", "MPesa", "Basics", "Settings",
                "GatewayTelemetry", "StaffDesk",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Benchmarks and their seeded data: a separate executable, never in the production binary.
        .executableTarget(
            name: "gateway-bench",
            dependencies: [
                "USSDGateway", "GatewayActions", "Wallet", "MPesaBook", "Redis", "Postgres", "Curl", "Menus", "Basics", "Settings",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/GatewayBench"
        ),

        // Helpers the test targets share: the servers `make test` started, private ones to restart.
        .target(name: "TestSupport", dependencies: ["Redis", "Postgres", "Wallet"], path: "Tests/TestSupport"),

        .testTarget(name: "ConnectionPoolTests", dependencies: ["ConnectionPool", "TestSupport"]),
        .testTarget(name: "MenusTests", dependencies: ["Menus", "Basics"]),
        .testTarget(name: "USSDDialectsTests", dependencies: ["USSDDialects", "AfricasTalking"]),
        .testTarget(name: "USSDChannelTests", dependencies: ["USSDChannel", "Menus", "USSDDialects", "Basics", "Settings"]),
        .testTarget(name: "GatewayActionsTests", dependencies: ["GatewayActions", "Menus"]),
        // A fresh ledger database and a wallet on it, for the ledger's and the providers' books' tests.
        .target(name: "LedgerTestSupport", dependencies: ["Wallet", "MPesaBook", "Postgres", "Basics", "TestSupport"], path: "Tests/LedgerTestSupport"),
        .testTarget(
            name: "WalletTests",
            dependencies: ["Wallet", "MPesaBook", "LedgerTestSupport", "Postgres", "Settings", "TestSupport", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .testTarget(
            name: "StaffDeskTests",
            dependencies: [
                "StaffDesk", "Wallet", "LedgerTestSupport", "Postgres", "Redis", "Basics", "TestSupport",
                .product(name: "HummingbirdOTP", package: "hummingbird-auth"), .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(name: "MPesaBookTests", dependencies: ["MPesaBook", "Wallet", "LedgerTestSupport", "Postgres", "Basics", "TestSupport"]),
        .testTarget(name: "BasicsTests", dependencies: ["Basics"]),
        .testTarget(name: "SettingsTests", dependencies: ["Settings"]),
        .testTarget(name: "AfricasTalkingTests", dependencies: ["AfricasTalking", "Basics"]),
        .testTarget(name: "MPesaTests", dependencies: ["MPesa", "Basics"]),
        .testTarget(
            name: "GatewayHTTPTests",
            dependencies: [
                "GatewayHTTP", .product(name: "Hummingbird", package: "hummingbird"), .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "HummingbirdTesting", package: "hummingbird"), .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"), .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "JobsTests",
            dependencies: [
                "Jobs", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"), .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "MPesaGatewayTests", dependencies: ["MPesaGateway", "MPesaBook", "MPesa", "Wallet", "Basics"]),
        .testTarget(
            name: "GatewayTelemetryTests",
            dependencies: ["GatewayTelemetry", .product(name: "MetricsTestKit", package: "swift-metrics")]
        ),
        .testTarget(name: "RedisTests", dependencies: ["Redis", "TestSupport"]),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres", "TestSupport"]),
        .testTarget(
            name: "CurlTests",
            dependencies: [
                "Curl", "TestSupport",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
        // The end-to-end harness the gateway's suites share: the gateway on throwaway servers, the
        // providers' fakes, the simulated handsets, the browser.
        .target(
            name: "GatewayTestSupport",
            dependencies: gatewayTestDependencies,
            path: "Tests/GatewayTestSupport"
        ),
        // The gateway as one process: configuration, production refusals, the edge, hostile input, the sandbox, the operator's commands.
        .testTarget(
            name: "USSDGatewayTests",
            dependencies: ["GatewayTestSupport"] + gatewayTestDependencies + [
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // The USSD channel end to end: every aggregator's journeys, sessions, replicas, PIN keys, jobs.
        .testTarget(
            name: "USSDEndToEndTests",
            dependencies: ["GatewayTestSupport"] + gatewayTestDependencies
        ),
        // The SMS channel end to end: commands, the outbox, delivery reports.
        .testTarget(
            name: "SMSEndToEndTests",
            dependencies: ["GatewayTestSupport"] + gatewayTestDependencies
        ),
        // M-Pesa end to end: STK, B2C, paybill, status queries, the reconciler, Daraja's client.
        .testTarget(
            name: "MPesaEndToEndTests",
            dependencies: ["GatewayTestSupport"] + gatewayTestDependencies
        ),
        // MTN MoMo's client against the strict fake MoMo: tokens, creates, statuses, errors, callbacks.
        .testTarget(
            name: "MoMoTests",
            dependencies: ["GatewayTestSupport"] + gatewayTestDependencies
        ),
    ],
    swiftLanguageModes: [.v6]
)

// Release builds of the gateway's own modules are optimised across module boundaries: a hop
// crosses a dozen of them (Basics, ConnectionPool, Redis, Menus, USSDChannel, GatewayHTTP, ...),
// and without this their generic code (the lease pool, futures of their types) is called
// unspecialised, through metadata looked up at run time (BENCHMARKS.md, "Speed, second round").
// Postgres is left out: Swift 6.3.1's optimiser crashes on its parameter packs.
for target in package.targets where (target.type == .regular || target.type == .executable) && target.name != "Postgres" {
    target.swiftSettings = (target.swiftSettings ?? []) + [.unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))]
}
