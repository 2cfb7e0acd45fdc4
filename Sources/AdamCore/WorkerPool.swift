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
}

/// A small persistent thread pool (no OpenMP). The calling thread works too. Workers spin briefly after a job, so
/// back-to-back optimizer steps find them awake, then sleep on a condition variable.
///
/// Items are claimed through one atomic ticket holding (generation, next item): a worker that wakes late can never
/// claim an item of a newer job. A caller that finds the pool busy (another thread is stepping) runs its job alone:
/// threads are never oversubscribed by concurrent optimizers.
@usableFromInline package final class WorkerPool: @unchecked Sendable {
    @usableFromInline package static let shared = WorkerPool()

    private static let indexBits = 32
    private static let indexMask = (1 << indexBits) - 1

    private let ticket = Atomic<Int>(0)          // generation << 32 | next item
    private let jobItems = Atomic<Int>(0)        // item count of the current job
    private let remaining = Atomic<Int>(0)       // items not yet finished in the current job
    private let inUse = Atomic<Bool>(false)
    private let sleepers = Atomic<Int>(0)
    private let activeWorkers = Atomic<Int>(0)   // workers allowed to join the current job
    // Published before the generation changes. Read only by a thread holding a claimed, unfinished item of the
    // current job, so the caller (which waits for every item) can never replace it under a reader.
    private var task: ParallelTask?
    private var mutex = pthread_mutex_t()
    private var wake = pthread_cond_t()
    private var workers = 0
    private var creation = pthread_mutex_t()
    private let parallelJobCount = Atomic<Int>(0)

    /// Jobs that ran on more than one thread since the process started (for tests and diagnostics).
    @usableFromInline package var parallelJobs: Int { parallelJobCount.load(ordering: .relaxed) }

    private init() {
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
        activeWorkers.store(0, ordering: .relaxed)
        inUse.store(false, ordering: .relaxed)
    }

    /// Runs every item of `task`, on up to `threads` threads (the caller included). Returns when all are done.
    @usableFromInline package func run(_ task: ParallelTask, threads: Int) {
        let items = task.itemCount
        guard threads > 1, items > 1, inUse.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
        else {
            for i in 0..<items { task.run(item: i) }
            return
        }
        let helpers = min(threads - 1, items - 1)
        startWorkers(upTo: helpers)
        parallelJobCount.add(1, ordering: .relaxed)
        self.task = task
        jobItems.store(items, ordering: .relaxed)
        remaining.store(items, ordering: .relaxed)
        activeWorkers.store(helpers, ordering: .relaxed)
        let generation = ((ticket.load(ordering: .relaxed) >> Self.indexBits) &+ 1) & 0x7fff_ffff
        // Publish (task and counts), then look for sleepers. A sleeping worker does the mirror image (count itself,
        // then re-read the ticket); both pairs are sequentially consistent so they cannot miss each other. (Were a
        // wake-up lost, the caller would still finish every item itself: slower, never stuck.)
        ticket.store(generation << Self.indexBits, ordering: .sequentiallyConsistent)
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
            pthread_mutex_lock(&mutex)
            pthread_cond_broadcast(&wake)
            pthread_mutex_unlock(&mutex)
        }
        work(generation: generation)
        var spins = 0
        while remaining.load(ordering: .acquiring) > 0 {
            spins += 1
            if spins > 1000 { sched_yield() }
        }
        inUse.store(false, ordering: .releasing)
    }

    /// Claims and runs items of `generation` until none are left (or a newer job has started).
    private func work(generation: Int) {
        var current: ParallelTask?
        while true {
            let t = ticket.load(ordering: .acquiring)
            guard t >> Self.indexBits == generation else { return }
            let index = t & Self.indexMask
            guard index < jobItems.load(ordering: .relaxed) else { return }
            if ticket.compareExchange(expected: t, desired: t &+ 1, ordering: .acquiringAndReleasing).exchanged {
                if current == nil { current = task }  // safe: this claimed item keeps the job alive
                current!.run(item: index)
                remaining.subtract(1, ordering: .releasing)
            }
        }
    }

    private func startWorkers(upTo count: Int) {
        guard workers < count else { return }
        pthread_mutex_lock(&creation)
        defer { pthread_mutex_unlock(&creation) }
        do {
            while workers < count {
                var thread = pthread_t()
                let context = Unmanaged.passUnretained(self).toOpaque()
                let index = workers
                let box = UnsafeMutablePointer<(UnsafeMutableRawPointer, Int)>.allocate(capacity: 1)
                box.initialize(to: (context, index))
                guard pthread_create(&thread, nil, { raw in
                    let args = raw!.assumingMemoryBound(to: (UnsafeMutableRawPointer, Int).self)
                    let (pool, index) = args.pointee
                    args.deallocate()
                    Unmanaged<WorkerPool>.fromOpaque(pool).takeUnretainedValue().workerLoop(index: index)
                    return nil
                }, box) == 0 else {
                    box.deallocate()
                    return // fewer helpers: the caller still finishes every item
                }
                pthread_detach(thread)
                workers += 1
            }
        }
    }

    private func workerLoop(index: Int) {
        var seen = ticket.load(ordering: .acquiring) >> Self.indexBits
        while true {
            // Wait for a new generation: spin about 20 us, then sleep.
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
            guard index < activeWorkers.load(ordering: .acquiring) else { continue }
            work(generation: generation)
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
