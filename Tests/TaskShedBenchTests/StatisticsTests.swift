import TaskShedBenchKit
import Testing

@Suite struct StatisticsTests {
    @Test func percentilesUseNearestRank() {
        let distribution = LagDistribution(micros: (1...100).map(Double.init).reversed())
        #expect(distribution.percentile(50) == 50)
        #expect(distribution.percentile(90) == 90)
        #expect(distribution.percentile(99) == 99)
        #expect(distribution.percentile(99.9) == 100)
        #expect(distribution.percentile(100) == 100)
        #expect(distribution.min == 1)
        #expect(distribution.max == 100)
    }

    @Test func percentilesOfFewSamplesAreSamples() {
        let distribution = LagDistribution(micros: [30, 10, 20])
        #expect(distribution.percentile(50) == 20)
        #expect(distribution.percentile(1) == 10)
        #expect(distribution.summary().map(\.label) == ["p50", "p90", "p99", "p99.9", "max"])
    }

    @Test func emptyDistributionHasNoFigures() {
        let distribution = LagDistribution(micros: [])
        #expect(distribution.percentile(50) == nil)
        #expect(distribution.summary().isEmpty)
        #expect(distribution.mean == nil)
    }

    @Test func lagRunCountsDuplicatesAndMissing() {
        let run = LagRun.from(name: "x", expected: 4,
                              records: [(index: 0, micros: 5), (index: 2, micros: 7), (index: 0, micros: 900),
                                        (index: 9, micros: 1)])
        #expect(run.duplicates == 1)
        #expect(run.missing == 2)
        // The first arrival counts, not the duplicate.
        #expect(run.lag.sortedMicros == [5, 7])
    }

    @Test func randomInstantsAreSortedInWindowAndRepeatable() {
        let a = RandomInstants.micros(count: 500, startMicros: 1_000, spanMicros: 2_000, seed: 9)
        let b = RandomInstants.micros(count: 500, startMicros: 1_000, spanMicros: 2_000, seed: 9)
        #expect(a == b)
        #expect(a == a.sorted())
        #expect(a.allSatisfy { $0 >= 1_000 && $0 < 3_000 })
        #expect(Set(a).count > 1)
    }

    @Test func rateFigureDerivesRates() {
        let figure = RateFigure(name: "r", tasks: 1_000, nanos: 2_000_000_000)
        #expect(figure.tasksPerSecond == 500)
        #expect(figure.microsPerTask == 2_000)
    }

    @Test func jsonEscapesAndKeepsKeyOrder() {
        let value = BenchJSON.object([("b", .integer(1)), ("a", .string("q\"\\\n\u{1}")), ("c", .array([.null, .bool(true)]))])
        #expect(value.text == #"{"b":1,"a":"q\"\\\n\u0001","c":[null,true]}"#)
    }

    @Test func groupedFormatting() {
        #expect(formatGrouped(1_234_567) == "1,234,567")
        #expect(formatGrouped(999) == "999")
        #expect(formatGrouped(-1_000) == "-1,000")
    }

    @Test(arguments: ["raw", "client", "raw-polling:500000", "client-polling:100000"])
    func workerModesRoundTrip(text: String) {
        #expect(LagBenchmark.WorkerKind(modeArgument: text)?.modeArgument == text)
    }

    @Test(arguments: ["", "raw-polling", "raw-polling:0", "client-polling:x", "other"])
    func badWorkerModesAreRejected(text: String) {
        #expect(LagBenchmark.WorkerKind(modeArgument: text) == nil)
    }
}
