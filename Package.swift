// swift-tools-version:6.0
//
// TaskShed: a task scheduler daemon for Linux (libuv event loop, LMDB store, binary protocol over Unix
// sockets) with a Swift client library. Module layout and dependency direction: see README.md.

import PackageDescription

let package = Package(
    name: "TaskShed",
    products: [
        .library(name: "TaskShedProtocol", targets: ["TaskShedProtocol"]),
        .library(name: "TaskShedStore", targets: ["TaskShedStore"]),
        .library(name: "TaskShed", targets: ["TaskShed"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        // The Prometheus text format of the daemon's metrics (TaskShedServer/Metrics).
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // Plugin only (`swift package generate-documentation`, scripts/build-docs.sh): no target links it.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // C libraries, found through pkg-config; apt names the Debian packages that provide them.
        .systemLibrary(
            name: "CLibUV",
            pkgConfig: "libuv",
            providers: [.apt(["libuv1-dev"])]
        ),
        .systemLibrary(
            name: "CLMDB",
            pkgConfig: "lmdb",
            providers: [.apt(["liblmdb-dev"])]
        ),
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        // timerfd(2) from libc, which Swift's Glibc module leaves out (no library to link).
        .systemLibrary(name: "CTimerFD"),
        // Node's HTTP/1.x request parser, for the daemon's opt-in `GET /metrics` endpoint. Debian's package ships
        // no pkg-config file: the header is in /usr/include and the module map links the library by name.
        .systemLibrary(
            name: "CHTTPParser",
            providers: [.apt(["libhttp-parser-dev"])]
        ),

        // The wire format: messages, encoder, incremental decoder. No I/O.
        .target(name: "TaskShedProtocol"),
        // Calendar schedules (cron and systemd syntax, IANA zones read from the system tzdata): pure, no I/O but tzdata.
        .target(name: "TaskShedCalendar"),
        .testTarget(name: "TaskShedCalendarTests", dependencies: ["TaskShedCalendar"]),
        // The client library: scheduler API and the two workers. Talks to taskshedd over its Unix socket only.
        .target(
            name: "TaskShed",
            dependencies: [
                "TaskShedProtocol",
                "TaskShedCalendar",
                "CTimerFD",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Examples (see README): the quick start, and the split scheduler/worker pair.
        .executableTarget(
            name: "QuickStart",
            dependencies: ["TaskShed", .product(name: "Logging", package: "swift-log")],
            path: "Examples/QuickStart"
        ),
        .executableTarget(
            name: "SayHelloScheduler",
            dependencies: ["TaskShed", .product(name: "Logging", package: "swift-log")],
            path: "Examples/SayHelloScheduler"
        ),
        .executableTarget(
            name: "SayHelloWorker",
            dependencies: ["TaskShed", .product(name: "Logging", package: "swift-log")],
            path: "Examples/SayHelloWorker"
        ),

        // A worker process for TaskShedTests (several workers in separate processes, killed workers).
        .executableTarget(
            name: "taskshed-test-worker",
            dependencies: ["TaskShed", .product(name: "Logging", package: "swift-log")],
            path: "Tests/TaskShedTestWorker"
        ),
        // The client's tests; the end-to-end ones start the real daemon and taskshed-test-worker processes (the
        // dependencies on the two executables make `swift build --build-tests` build them).
        .testTarget(
            name: "TaskShedTests",
            dependencies: [
                "TaskShed", "TaskShedProtocol", "TaskShedTestSupport", "taskshedd", "taskshed-test-worker",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Reads proto-spec/vectors through #filePath; FuzzCorpus holds saved fuzzer inputs replayed by a test.
        // The libFuzzer harness (Fuzz/) is built only by scripts/fuzz.sh: it needs -sanitize=fuzzer to link.
        .testTarget(
            name: "TaskShedProtocolTests",
            dependencies: ["TaskShedProtocol"],
            exclude: ["FuzzCorpus"]
        ),

        // The durable task store: a thin LMDB layer and the task store built on it (layout: LAYOUT.md).
        .target(
            name: "TaskShedStore",
            dependencies: ["CLMDB", "TaskShedProtocol", "TaskShedCalendar"],
            exclude: ["LAYOUT.md"]
        ),
        // The PostgreSQL task store (several daemons sharing one database), through libpq: schema in SCHEMA.md.
        .target(
            name: "TaskShedPostgres",
            dependencies: ["CLibPQ", "TaskShedStore", "TaskShedProtocol"],
            exclude: ["SCHEMA.md"]
        ),
        // The crash test runs taskshed-store-crasher (a child that commits batches until SIGKILLed); the full-disk
        // tests mount a small tmpfs through TaskShedTestSupport.
        .testTarget(
            name: "TaskShedStoreTests",
            dependencies: ["TaskShedStore", "TaskShedPostgres", "TaskShedProtocol", "TaskShedTestSupport",
                           "taskshed-store-crasher"]
        ),
        .executableTarget(
            name: "taskshed-store-crasher",
            dependencies: ["TaskShedStore", "TaskShedProtocol"],
            path: "Tests/TaskShedStoreCrasher"
        ),

        // Benchmarks: `taskshed-bench <scenario>`; measurement code lives in TaskShedBenchKit.
        .target(name: "TaskShedBenchKit", dependencies: ["TaskShedStore", "TaskShedPostgres", "TaskShedProtocol", "CLibUV"]),
        .executableTarget(
            name: "taskshed-bench",
            dependencies: [
                "TaskShedBenchKit", "TaskShed",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Runs each scenario of the taskshed-bench binary with tiny sizes (no timed assertions).
        // It depends on both executables so that `swift build --build-tests` builds them.
        .testTarget(name: "TaskShedBenchTests", dependencies: ["TaskShedBenchKit", "taskshed-bench", "taskshedd"]),

        // The libuv layer: loop, Unix and TCP listeners and connections, precise (timerfd) and coarse timers, signals.
        .target(name: "TaskShedEventLoop", dependencies: ["CLibUV"]),
        .testTarget(name: "TaskShedEventLoopTests", dependencies: ["TaskShedEventLoop", "TaskShedTestSupport"]),

        // The daemon core: connections, requests, group commit, timer-driven dispatch, leases, systemd glue, and the
        // opt-in HTTP metrics endpoint.
        .target(
            name: "TaskShedServer",
            dependencies: [
                "TaskShedEventLoop", "TaskShedStore", "TaskShedPostgres", "TaskShedProtocol",
                // The metrics endpoint's HTTP requests (HTTPRequestParser.swift).
                "CHTTPParser",
                .product(name: "Logging", package: "swift-log"),
                // The config file (ConfigurationFile.swift) is TOML.
                .product(name: "TOMLKit", package: "TOMLKit"),
                // The metrics registry and its text exposition (Metrics/ServerMetrics.swift).
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // The daemon executable: flags -> Configuration, logging set-up, Server.run().
        .executableTarget(
            name: "taskshedd",
            dependencies: [
                "TaskShedServer", "TaskShedProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Test-only helpers: run the real daemon on temporary paths, speak raw frames to it.
        .target(name: "TaskShedTestSupport", dependencies: ["TaskShedProtocol"]),
        // Unit tests of the server's parts, and end-to-end tests against the real taskshedd binary (the
        // dependency on the executable makes `swift build --build-tests` build it).
        .testTarget(
            name: "TaskShedServerTests",
            dependencies: ["TaskShedServer", "TaskShedStore", "TaskShedTestSupport", "TaskShedProtocol", "taskshedd",
                           "TaskShedEventLoop", .product(name: "Logging", package: "swift-log")]
        ),

        // taskshedctl: the logic (time parsing, output, commands, the command-running worker) lives in
        // TaskShedCLI so tests reach it; the executable only calls the root command's main.
        .target(
            name: "TaskShedCLI",
            dependencies: [
                "TaskShed",
                "TaskShedProtocol",
                "TaskShedCalendar",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "taskshedctl", dependencies: ["TaskShedCLI"]),
        // Unit tests, and end-to-end tests that run the built taskshedctl against a real taskshedd (depending on
        // both executables makes `swift build --build-tests` build them).
        .testTarget(
            name: "TaskShedCLITests",
            dependencies: [
                "TaskShedCLI", "TaskShed", "TaskShedProtocol", "TaskShedTestSupport", "taskshedctl", "taskshedd",
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
