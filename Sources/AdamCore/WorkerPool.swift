import CAdamCore
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Work that a pool can split: `count` independent items. Results must not depend on which thread runs an item.
@usableFromInline package protocol ParallelTask: AnyObject {
    var itemCount: Int { get }
    func run(item: Int)
    /// Items `items`, consecutive, on one thread: a task may run them as one pass where its results allow.
    func run(items: Range<Int>)
}

extension ParallelTask {
    @usableFromInline package func run(items: Range<Int>) { for i in items { run(item: i) } }
}

/// A small persistent thread pool (no OpenMP). The calling thread works too. Workers spin briefly after a job, so
/// back-to-back optimizer steps find them awake, then sleep on a condition variable.
///
/// The split keeps every thread's memory streams contiguous. A job's items are cut into one contiguous range
/// ("slot") per thread; a thread walks its slot front to back, so each of a step's buffers streams through it as
/// one run, as in a static OpenMP loop (interleaving fixed-size items between threads restarted every stream at
/// every item and cost up to ~15% from DRAM). A thread that finishes early first adopts a slot nobody has taken
/// (a helper that has not woken yet), then takes items from the back of the others' slots, so a thread slowed by
/// its neighbour (these VMs' two vCPUs differ by up to 1.5x) is helped instead of waited for. Which thread runs an
/// item never changes its result: callers combine item results in item order.
///
/// Joining: the ticket holds (generation, next free slot). A helper counts itself in `members`, then adopts a slot
/// of the open generation by compare-and-swap; the caller closes the ticket when every slot is empty and waits for
/// `members` to reach zero, so no helper can touch a job (its task, its slots) after its `run` returned. A caller
/// that finds the pool busy (another thread is stepping) runs its job alone: threads are never oversubscribed.
@usableFromInline package final class WorkerPool: @unchecked Sendable {
    @usableFromInline package static let shared = WorkerPool()

    private static let indexBits = 32
    private static let indexMask = (1 << indexBits) - 1
    /// The most threads one job uses (Threading.setThreadCount's limit).
    static let maximumSlots = 256
    /// The most items an owner takes from its own slot at once (run as one pass where the task allows): about 32K
    /// elements, so the per-item cost vanishes. Never more than a quarter of what is left in the slot, so the last
    /// items go one at a time and a thread that finishes early can still take them from a slower one (these
    /// VMs' vCPUs differ by up to 1.5x: with whole batches, a 64K-element step waited for the slow half).
    static let ownerBatch = 4

    private let ticket = Atomic<Int>(0)          // generation << 32 | next free slot (indexMask: closed)
    private let slotCount = Atomic<Int>(0)       // slots of the current job
    private let members = Atomic<Int>(0)         // helpers inside a job
    private let inUse = Atomic<Bool>(false)
    private let sleepers = Atomic<Int>(0)
    // Per slot: front << 32 | back, the items [front, back) not yet taken.
    private let slots = UnsafeMutablePointer<Atomic<Int>>.allocate(capacity: maximumSlots)
    // Published before the ticket opens. Read only by a member of the open job, whose caller cannot return (and
    // replace it) before the member leaves.
    private var task: ParallelTask?
    private var mutex = pthread_mutex_t()
    private var wake = pthread_cond_t()
    private var workers = 0
    private var creation = pthread_mutex_t()
    private let parallelJobCount = Atomic<Int>(0)

    /// Jobs that ran on more than one thread since the process started (for tests and diagnostics).
    @usableFromInline package var parallelJobs: Int { parallelJobCount.load(ordering: .relaxed) }

    private init() {
        for i in 0..<Self.maximumSlots { (slots + i).initialize(to: Atomic<Int>(0)) }
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&wake, nil)
        pthread_mutex_init(&creation, nil)
        // A forked child inherits this object but none of its threads, and a mutex a worker held at the fork
        // would stay locked: start the child with an empty pool (it creates workers again when needed).
        pthread_atfork(nil, nil, { WorkerPool.shared.resetInForkedChild() })
    }

    private func resetInForkedChild() {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&wake, nil)
        pthread_mutex_init(&creation, nil)
        workers = 0
        sleepers.store(0, ordering: .relaxed)
        members.store(0, ordering: .relaxed)
        inUse.store(false, ordering: .relaxed)
    }

    /// Runs every item of `task`, on up to `threads` threads (the caller included). Returns when all are done.
    @usableFromInline package func run(_ task: ParallelTask, threads: Int) {
        let items = task.itemCount
        guard threads > 1, items > 1, inUse.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
        else {
            task.run(items: 0..<items)
            return
        }
        let count = min(threads, items, Self.maximumSlots)
        startWorkers(upTo: count - 1)
        parallelJobCount.add(1, ordering: .relaxed)
        self.task = task
        for s in 0..<count {
            slots[s].store(Self.pack(front: s * items / count, back: (s + 1) * items / count), ordering: .relaxed)
        }
        slotCount.store(count, ordering: .relaxed)
        let generation = ((ticket.load(ordering: .relaxed) >> Self.indexBits) &+ 1) & 0x7fff_ffff
        // Publish (task, slots), then look for sleepers. A sleeping worker does the mirror image (count itself,
        // then re-read the ticket); both pairs are sequentially consistent so they cannot miss each other. (Were a
        // wake-up lost, the caller would still run every item itself: slower, never stuck.) Slot 0 is the caller's.
        ticket.store(generation << Self.indexBits | 1, ordering: .sequentiallyConsistent)
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
            pthread_mutex_lock(&mutex)
            pthread_cond_broadcast(&wake)
            pthread_mutex_unlock(&mutex)
        }
        work(task, slot: 0, generation: generation, slots: count)
        // Every slot is empty: close the ticket, then wait for the members still finishing an item.
        ticket.store(generation << Self.indexBits | Self.indexMask, ordering: .sequentiallyConsistent)
        var spins = 0
        while members.load(ordering: .sequentiallyConsistent) > 0 {
            spins += 1
            if spins > 1000 { sched_yield() }
        }
        self.task = nil
        inUse.store(false, ordering: .releasing)
    }

    @inline(__always) private static func pack(front: Int, back: Int) -> Int { front << indexBits | back }

    /// Runs slot `slot` front to back, then adopts free slots, then takes items from the back of the others'.
    private func work(_ task: ParallelTask, slot: Int, generation: Int, slots count: Int) {
        var own = slot
        while true {
            // The own slot, a batch at a time from the front.
            while true {
                let word = slots[own].load(ordering: .relaxed)
                let front = word >> Self.indexBits, back = word & Self.indexMask
                guard front < back else { break }
                let end = front + min(Self.ownerBatch, max(1, (back - front) / 4))
                if slots[own].compareExchange(expected: word, desired: Self.pack(front: end, back: back),
                                              ordering: .relaxed).exchanged {
                    task.run(items: front..<end)
                }
            }
            guard let adopted = adopt(generation: generation, slots: count) else { break }
            own = adopted
        }
        // Everything is taken or owned: help the others from the back of their slots, one item at a time.
        var victim = (own + 1) % count
        var emptyInARow = 0
        while emptyInARow < count {
            let word = slots[victim].load(ordering: .relaxed)
            let front = word >> Self.indexBits, back = word & Self.indexMask
            if front < back {
                if slots[victim].compareExchange(expected: word, desired: Self.pack(front: front, back: back - 1),
                                                 ordering: .relaxed).exchanged {
                    task.run(item: back - 1)
                    emptyInARow = 0
                }
                continue
            }
            emptyInARow += 1
            victim = (victim + 1) % count
        }
    }

    /// Takes the next free slot of the open job `generation`, or nil when none is left (or the job is closed).
    private func adopt(generation: Int, slots count: Int) -> Int? {
        while true {
            let t = ticket.load(ordering: .acquiring)
            let index = t & Self.indexMask
            guard t >> Self.indexBits == generation, index < count else { return nil }
            if ticket.compareExchange(expected: t, desired: t &+ 1, ordering: .acquiringAndReleasing).exchanged {
                return index
            }
        }
    }

    /// A helper's visit to the open job, if any: it joins by adopting a slot, and leaves when nothing is left.
    private func join() {
        members.add(1, ordering: .sequentiallyConsistent)
        defer { members.subtract(1, ordering: .sequentiallyConsistent) }
        let t = ticket.load(ordering: .sequentiallyConsistent)
        let generation = t >> Self.indexBits
        let count = slotCount.load(ordering: .relaxed)
        guard let slot = adopt(generation: generation, slots: count), let task else { return }
        work(task, slot: slot, generation: generation, slots: count)
    }

    private func startWorkers(upTo count: Int) {
        guard workers < count else { return }
        pthread_mutex_lock(&creation)
        defer { pthread_mutex_unlock(&creation) }
        do {
            while workers < count {
                var thread = pthread_t()
                let context = Unmanaged.passUnretained(self).toOpaque()
                guard pthread_create(&thread, nil, { raw in
                    Unmanaged<WorkerPool>.fromOpaque(raw!).takeUnretainedValue().workerLoop()
                    return nil
                }, context) == 0 else {
                    return // fewer helpers: the caller still runs every item
                }
                pthread_detach(thread)
                workers += 1
            }
        }
    }

    private func workerLoop() {
        var seen = ticket.load(ordering: .acquiring) >> Self.indexBits
        while true {
            // Wait for a new generation: spin (measured: ~90 us of CPU time on a Zen 4 VM), then sleep.
            var generation = seen
            var spins = 0
            while generation == seen {
                generation = ticket.load(ordering: .acquiring) >> Self.indexBits
                if generation != seen { break }
                spins += 1
                if spins < 20_000 { continue }
                pthread_mutex_lock(&mutex)
                sleepers.add(1, ordering: .sequentiallyConsistent)
                generation = ticket.load(ordering: .sequentiallyConsistent) >> Self.indexBits
                if generation == seen { pthread_cond_wait(&wake, &mutex) }
                sleepers.subtract(1, ordering: .relaxed)
                pthread_mutex_unlock(&mutex)
                spins = 0
            }
            seen = generation
            join()
        }
    }
}

/// How many threads steps may use: ADAMCORE_NUM_THREADS, or `setThreadCount`, or the CPUs this process may run on.
public enum Threading {
    private static let configured = Atomic<Int>(0)

    /// The CPUs in this process's affinity mask (at least 1).
    public static let availableCPUs = Int(adamcore_shim_available_cpus())

    private static let fromEnvironment: Int = {
        guard let raw = getenv("ADAMCORE_NUM_THREADS"), let n = Int(String(cString: raw)), n > 0 else { return 0 }
        return n
    }()

    /// The thread count in force (>= 1).
    public static var threadCount: Int {
        let set = configured.load(ordering: .relaxed)
        if set > 0 { return set }
        return fromEnvironment > 0 ? fromEnvironment : availableCPUs
    }

    /// 0 restores the default (ADAMCORE_NUM_THREADS, else the available CPUs). At most 256.
    public static func setThreadCount(_ n: Int) throws(AdamCoreError) {
        guard n >= 0, n <= 256 else { throw fail(ADAMCORE_E_THREADS) }
        configured.store(n, ordering: .relaxed)
    }

    /// Below this many elements in a step, threads cost more than they save (measured: a spinning pool starts to
    /// pay at about 16K elements of Adam on this class of machine).
    public static let minimumElements = 32 * 1024
}
