/// The years a rule allows: every year (cron, and systemd's `*`), or an explicit sorted list (systemd allows
/// 1970…2199).
struct YearSet: Sendable, Hashable {
    /// The allowed years in increasing order, or `nil` for every year.
    var years: [Int]?

    /// Every year.
    static let any = YearSet(years: nil)

    /// Whether `year` is allowed.
    func contains(_ year: Int) -> Bool {
        guard let years else { return true }
        return index(atOrAfter: year).map { years[$0] == year } ?? false
    }

    /// The smallest allowed year `>= year`, or `nil`.
    func next(atOrAfter year: Int) -> Int? {
        guard let years else { return year }
        return index(atOrAfter: year).map { years[$0] }
    }

    /// The largest allowed year `<= year`, or `nil`.
    func previous(atOrBefore year: Int) -> Int? {
        guard let years else { return year }
        if let i = index(atOrAfter: year), years[i] == year { return year }
        let i = index(atOrAfter: year) ?? years.count
        return i == 0 ? nil : years[i - 1]
    }

    private func index(atOrAfter year: Int) -> Int? {
        guard let years else { return nil }
        var low = 0
        var high = years.count
        while low < high {
            let mid = (low + high) / 2
            if years[mid] < year { low = mid + 1 } else { high = mid }
        }
        return low < years.count ? low : nil
    }
}
