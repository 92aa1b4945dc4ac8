import Testing
@testable import TaskShedServer

/// `--metrics-listen HOST:PORT` (and the config key `metrics-listen`, which goes through the same parser).
@Suite struct MetricsAddressTests {
    @Test(arguments: [
        ("127.0.0.1:9464", "127.0.0.1", 9464), ("0.0.0.0:0", "0.0.0.0", 0), ("10.1.2.3:65535", "10.1.2.3", 65535),
        ("[::1]:9464", "::1", 9464), ("[::]:0", "::", 0), ("[fd00::1:2]:80", "fd00::1:2", 80),
        ("[::ffff:127.0.0.1]:9464", "::ffff:127.0.0.1", 9464),
    ] as [(String, String, UInt16)])
    func numericAddressesParse(text: String, host: String, port: UInt16) throws {
        let address = try MetricsAddress.parse(text)
        #expect(address == MetricsAddress(host: host, port: port))
        #expect(address.description == text)
        #expect(address.isIPv6 == text.hasPrefix("["))
    }

    @Test(arguments: [
        ("localhost:9464", "has no numeric IPv4 address (host names are not resolved)"),
        ("127.0.0.1", "has no :PORT"),
        ("9464", "has no :PORT"),
        (":9464", "has no host"),
        ("::1:9464", "needs brackets around its IPv6 address"),
        ("[::1]", "has no :PORT after the IPv6 address"),
        ("[::1:9464", "has no ']' after the IPv6 address"),
        ("[127.0.0.1]:9464", "has no IPv6 address in its brackets"),
        ("[fe80::1%eth0]:9464", "has no IPv6 address in its brackets"),
        ("127.1:9464", "has no numeric IPv4 address (host names are not resolved)"),
        ("127.0.0.1:65536", "has no port between 0 and 65535"),
        ("127.0.0.1:-1", "has no port between 0 and 65535"),
        ("127.0.0.1:+80", "has no port between 0 and 65535"),
        ("127.0.0.1:", "has no port between 0 and 65535"),
        ("127.0.0.1:http", "has no port between 0 and 65535"),
        ("", "has no :PORT"),
    ])
    func badValuesNameTheOptionAndWhatIsAllowed(text: String, problem: String) {
        #expect(throws: ConfigurationError(option: "--metrics-listen", message: "'\(text)' \(problem); write "
            + "HOST:PORT with a numeric IPv4 address (127.0.0.1:9464) or an IPv6 address in brackets ([::1]:9464); "
            + "port 0 picks a free port")) {
            try MetricsAddress.parse(text)
        }
    }

    @Test func theEndpointIsOffByDefaultAndItsTimeoutsComeFromTheEnvironmentOnly() throws {
        var configuration = Configuration(socketPath: "/tmp/x.sock", dataDirectory: "/tmp/data")
        #expect(configuration.metricsListen == nil)
        #expect(configuration.metricsRequestTimeoutMicros == 10_000_000)
        #expect(configuration.metricsIdleTimeoutMicros == 30_000_000)
        try configuration.applyMetricsTimeouts(environment: ["TASKSHEDD_METRICS_REQUEST_TIMEOUT": "250ms",
                                                             "TASKSHEDD_METRICS_IDLE_TIMEOUT": "1s"])
        #expect(configuration.metricsRequestTimeoutMicros == 250_000)
        #expect(configuration.metricsIdleTimeoutMicros == 1_000_000)
        #expect(throws: ConfigurationError(option: "TASKSHEDD_METRICS_IDLE_TIMEOUT",
                                           message: "'soon' is not a duration such as 500ms or 10s")) {
            try configuration.applyMetricsTimeouts(environment: ["TASKSHEDD_METRICS_IDLE_TIMEOUT": "soon"])
        }
        configuration.metricsRequestTimeoutMicros = 0
        #expect(throws: ConfigurationError.self) { try configuration.validate() }
    }
}
