/// The staged deliveries (`Server.staged`): claimed tasks waiting for their push time, in push-time order.
///
/// A queue with a moving head rather than an array shifted at every push: while store jobs take long (100k-task
/// batches) the dispatch lead grows to seconds and thousands of deliveries wait here, and removing the due ones
/// from the front of an array copied all the others, with a retain and a release of every field, at each push
/// (14 % of the loop's time in `taskshed-bench attack`'s batches phase). Claims come in due order, so an insert
/// is almost always an append.
///
/// - Important: Loop-thread only, like the server.
struct StagedQueue: Sequence {
    private var storage: [StagedDelivery] = []
    /// Index of the first waiting delivery; those before it were taken.
    private var head = 0

    /// An empty queue.
    init() {}

    /// A queue of `deliveries`, which must be in push-time order.
    init(_ deliveries: [StagedDelivery]) {
        storage = deliveries
    }

    /// Whether nothing waits.
    var isEmpty: Bool { head == storage.count }

    /// The delivery with the earliest push time.
    var first: StagedDelivery? { isEmpty ? nil : storage[head] }

    /// Adds a delivery after those with the same or an earlier push time.
    mutating func insert(_ delivery: StagedDelivery) {
        var index = storage.count
        while index > head && storage[index - 1].pushAt > delivery.pushAt { index -= 1 }
        storage.insert(delivery, at: index)
    }

    /// Removes and returns the deliveries whose push time is at or before `now`, earliest first.
    mutating func takeDue(now: Int64) -> [StagedDelivery] {
        var due: [StagedDelivery] = []
        while head < storage.count && storage[head].pushAt <= now {
            due.append(storage[head])
            head += 1
        }
        compactIfWorthIt()
        return due
    }

    /// Removes every delivery that matches.
    mutating func removeAll(where matches: (StagedDelivery) -> Bool) {
        storage.removeSubrange(..<head)
        head = 0
        storage.removeAll(where: matches)
    }

    /// Iterates the waiting deliveries in push-time order.
    func makeIterator() -> ArraySlice<StagedDelivery>.Iterator {
        storage[head...].makeIterator()
    }

    /// Drops the taken deliveries once they are at least half of the storage (amortised O(1) per delivery).
    private mutating func compactIfWorthIt() {
        if head == storage.count {
            storage.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 64 && head * 2 >= storage.count {
            storage.removeSubrange(..<head)
            head = 0
        }
    }
}
