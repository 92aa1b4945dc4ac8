/// A throughput figure: tasks handled in a measured time.
public struct RateFigure: Sendable, Hashable {
    /// Row name.
    public var name: String
    /// Tasks handled.
    public var tasks: Int
    /// Elapsed nanoseconds.
    public var nanos: Int64
    /// Further facts for the row's last column ("16 clients", "encode 41 ms").
    public var detail: String

    /// Creates a figure.
    /// - Parameters:
    ///   - name: Row name.
    ///   - tasks: Tasks handled.
    ///   - nanos: Elapsed nanoseconds.
    ///   - detail: Further facts.
    public init(name: String, tasks: Int, nanos: Int64, detail: String = "") {
        self.name = name
        self.tasks = tasks
        self.nanos = nanos
        self.detail = detail
    }

    /// Tasks per second.
    public var tasksPerSecond: Double { nanos <= 0 ? 0 : Double(tasks) * 1e9 / Double(nanos) }
    /// Microseconds of elapsed time per task.
    public var microsPerTask: Double { tasks == 0 ? 0 : Double(nanos) / 1000 / Double(tasks) }

    /// The figure as JSON.
    public var json: BenchJSON {
        .object([("name", .string(name)), ("tasks", .integer(Int64(tasks))), ("seconds", .number(Double(nanos) / 1e9)),
                 ("tasks_per_s", .number(tasksPerSecond)), ("us_per_task", .number(microsPerTask)),
                 ("detail", .string(detail))])
    }

    /// A table of figures.
    /// - Parameters:
    ///   - title: Scenario name.
    ///   - figures: The rows.
    ///   - notes: Lines under the table.
    ///   - extra: Further JSON fields of the scenario.
    /// - Returns: The table.
    public static func table(title: String, figures: [RateFigure], notes: [String] = [],
                             extra: [(String, BenchJSON)] = []) -> BenchTable {
        BenchTable(
            title: title, columns: [title, "tasks", "seconds", "tasks/s", "µs/task", "detail"],
            rows: figures.map {
                [$0.name, formatGrouped(Double($0.tasks)), formatDecimal(Double($0.nanos) / 1e9, digits: 3),
                 formatGrouped($0.tasksPerSecond), formatDecimal($0.microsPerTask, digits: 2), $0.detail]
            },
            notes: notes,
            json: .object([("scenario", .string(title))] + extra + [("figures", .array(figures.map(\.json)))]))
    }
}
