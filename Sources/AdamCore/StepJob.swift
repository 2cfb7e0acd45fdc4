import CAdamCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The executor: the fixed split of a step into work items, and the job the worker pool runs over them. The
// optimizer runs its registered tensors on it; a stateless call is a plan of one tensor (`StepJob.runOne`).

/// Elements per work item. A multiple of the kernels' reduction block, so an item's partial sums are the blocks
/// of a whole-tensor run, and big enough (32 KiB of float32) that claiming an item costs nothing by comparison.
package let chunkElements = 8 * reductionBlock

/// A fixed unit of a step's work: elements [start, end) of tensor `first` when `end > 0`, else the whole tensors
/// first..<last (a run of small tensors, up to chunkElements in all). The split depends only on the registered
/// tensors, never on the thread count.
struct WorkItem {
    let first: Int, last: Int
    let start: Int, end: Int

    func range(of tensor: Tensor) -> Range<Int> { end > 0 ? start..<end : 0..<tensor.count }

    /// Item `index` of a plan of one tensor of `count` elements (what `split` makes of it, without the array).
    static func chunk(_ index: Int, of count: Int) -> WorkItem {
        guard count > chunkElements else { return WorkItem(first: 0, last: 1, start: 0, end: 0) }
        let start = index * chunkElements
        return WorkItem(first: 0, last: 1, start: start, end: Swift.min(start + chunkElements, count))
    }

    static func chunkCount(of count: Int) -> Int { count > chunkElements ? (count + chunkElements - 1) / chunkElements : 1 }

    static func split(_ tensors: ContiguousArray<Tensor>) -> ContiguousArray<WorkItem> {
        var items: ContiguousArray<WorkItem> = []
        var runStart = 0, runElements = 0
        func flush(upTo index: Int) {
            if index > runStart { items.append(WorkItem(first: runStart, last: index, start: 0, end: 0)) }
            runStart = index
            runElements = 0
        }
        for (i, t) in tensors.enumerated() {
            if t.count > chunkElements {
                flush(upTo: i)
                for start in stride(from: 0, to: t.count, by: chunkElements) {
                    items.append(WorkItem(first: i, last: i + 1, start: start, end: Swift.min(start + chunkElements, t.count)))
                }
                runStart = i + 1
            } else {
                if runElements + t.count > chunkElements { flush(upTo: i) }
                runElements += t.count
            }
        }
        flush(upTo: tensors.count)
        return items
    }
}

/// One phase of a step over the work items; owned by its optimizer and reused, so a step allocates nothing.
/// Everything threads write goes to raw buffers (a Swift array mutated from several threads is an exclusivity
/// violation even at distinct indices).
final class StepJob: ParallelTask {
    /// `.gate`: 1 where a tensor's max|g| reaches its group's threshold; `.maxAbs`: max|g| itself.
    enum Phase { case update, updateWithStats, gate, maxAbs, difference, differenceFromPrevious, nonFinite }

    let kernels: KernelSet
    var phase = Phase.update
    var itemCount = 0
    var tensors: UnsafePointer<Tensor>?
    var items: UnsafePointer<WorkItem>?                 // nil: tensor 0 alone, in chunks (WorkItem.chunk)
    var coefficients: UnsafePointer<GroupCoefficients>?
    var grads: UnsafePointer<UnsafeRawPointer?>?        // per tensor; nil entries are not in this step
    var coefficientIndex: UnsafePointer<Int>?           // per tensor: its entry in `coefficients`
    var others: UnsafePointer<UnsafeRawPointer?>?       // .difference: g' per tensor
    var tensorSteps: UnsafePointer<Int64>?              // per tensor: its step count before this step
    var roundingSeed: UInt64 = 0
    var prefetch = false                                // set by execute: prefetchesAhead(elements:)
    private(set) var partials = UnsafeMutablePointer<Double>.allocate(capacity: 1)
    private(set) var thresholds = UnsafeMutablePointer<Double>.allocate(capacity: 1)  // per group: L * lr
    private var partialCapacity = 1, thresholdCapacity = 1
    /// Statistics: one segment per (item, tensor in the item), in item order; segmentStart[item] is the first.
    private(set) var segments: UnsafeMutablePointer<KernelStats> = .allocate(capacity: 1)
    private(set) var segmentStart: ContiguousArray<Int> = []

    init(kernels: KernelSet) { self.kernels = kernels }

    deinit {
        partials.deallocate()
        thresholds.deallocate()
        segments.deallocate()
    }

    func layOutSegments(_ items: ContiguousArray<WorkItem>) {
        segmentStart.removeAll(keepingCapacity: true)
        var total = 0
        for w in items {
            segmentStart.append(total)
            total += w.last - w.first
        }
        segments.deallocate()
        segments = .allocate(capacity: Swift.max(total, 1))
        segments.initialize(repeating: KernelStats(), count: Swift.max(total, 1))
    }

    func reserve(items: Int, groups: Int) {
        if items > partialCapacity {
            partials.deallocate()
            partialCapacity = Swift.max(items, 2 * partialCapacity)
            partials = .allocate(capacity: partialCapacity)
        }
        if groups > thresholdCapacity {
            thresholds.deallocate()
            thresholdCapacity = Swift.max(groups, 2 * thresholdCapacity)
            thresholds = .allocate(capacity: thresholdCapacity)
        }
    }

    @inline(__always) private func workItem(_ item: Int) -> WorkItem {
        items?[item] ?? WorkItem.chunk(item, of: tensors![0].count)
    }

    /// Consecutive items on one thread. An update whose kernel returns nothing (every algorithm but AdaFix, whose
    /// ||dx||^2 is summed per item) runs adjacent chunks of one tensor as one pass: the same elements through the
    /// same vector code, so the same bits, without a kernel call per 8192 elements.
    func run(items range: Range<Int>) {
        var i = range.lowerBound
        while i < range.upperBound {
            let w = workItem(i)
            guard phase == .update, w.end > 0, let g = grads![w.first],
                  let c = coefficients?[coefficientIndex![w.first]], !c.sumsPerElement else {
                run(item: i)
                i += 1
                continue
            }
            var next = i + 1, end = w.end
            while next < range.upperBound {
                let x = workItem(next)
                guard x.end > 0, x.first == w.first, x.start == end else { break }
                end = x.end
                next += 1
            }
            partials[i] = run(tensor: w.first, grad: g, w.start..<end, segment: nil)
            for k in (i + 1)..<next { partials[k] = 0 }
            i = next
        }
    }

    func run(item: Int) {
        let w = workItem(item)
        var total = 0.0
        for index in w.first..<w.last {
            let segment = phase == .updateWithStats ? segments + segmentStart[item] + (index - w.first) : nil
            guard let g = grads![index] else {
                segment?.pointee = KernelStats()
                continue
            }
            let result = run(tensor: index, grad: g, w.range(of: tensors![index]), segment: segment)
            total = phase == .maxAbs ? Swift.max(total, result) : total + result
        }
        partials[item] = total
    }

    /// This job's phase over elements `range` of tensor `index`, whose gradient is `g`.
    @inline(__always)
    private func run(tensor index: Int, grad g: UnsafeRawPointer, _ range: Range<Int>,
                     segment: UnsafeMutablePointer<KernelStats>?) -> Double {
        let tensor = tensors![index]
        return perform(phase, tensor, g, range, kernels, coefficients: coefficients.map { $0[coefficientIndex![index]] },
                       key: tensorRoundingKey(tensor, seed: roundingSeed, step: tensorSteps![index] &+ 1, index: index),
                       other: others?[index], threshold: phase == .gate ? thresholds[tensor.group] : 0,
                       segment: segment, prefetch: prefetch)
    }

    /// Runs `phase` over the `itemCount` items, in parallel when they hold `elements` >= Threading.minimumElements,
    /// and returns the items' results combined in item order (summed; the maximum for .maxAbs), so the result
    /// never depends on the thread count.
    func execute(_ phase: Phase, elements: Int) -> Double {
        self.phase = phase
        prefetch = prefetchesAhead(elements: elements)
        guard itemCount > 0 else { return 0 }
        WorkerPool.shared.run(self, threads: elements >= Threading.minimumElements ? Threading.threadCount : 1)
        var total = partials[0]
        for i in 1..<itemCount { total = phase == .maxAbs ? Swift.max(total, partials[i]) : total + partials[i] }
        return total
    }

    /// A stateless call: `phase` over one caller-owned tensor (gradient `grad`; `other`: g' of .difference), as a
    /// plan of one tensor on this executor: its items are the optimizer's chunks, so the bits are the optimizer's
    /// for any thread count. `step` is the step being taken (it keys stochastic rounding with `seed`). Up to one
    /// item runs inline, with no job object and no allocation; a larger tensor gets a job for the call.
    static func runOne(_ phase: Phase, _ tensor: Tensor, grad: UnsafeRawPointer, other: UnsafeRawPointer? = nil,
                       coefficients: GroupCoefficients? = nil, step: Int64 = 1, seed: UInt64 = 0,
                       kernels: KernelSet) -> Double {
        guard tensor.count > chunkElements else {
            return perform(phase, tensor, grad, 0..<tensor.count, kernels, coefficients: coefficients,
                           key: tensorRoundingKey(tensor, seed: seed, step: step, index: 0), other: other, threshold: 0,
                           segment: nil, prefetch: prefetchesAhead(elements: tensor.count))
        }
        let job = StepJob(kernels: kernels)
        job.itemCount = WorkItem.chunkCount(of: tensor.count)
        job.reserve(items: job.itemCount, groups: 1)
        job.roundingSeed = seed
        var plan = OneTensorPlan(tensor: tensor, grad: grad, other: other, index: 0, stepsBefore: step &- 1)
        return withUnsafePointer(to: &plan) { p in
            job.tensors = p.pointer(to: \.tensor)
            job.grads = p.pointer(to: \.grad)
            job.others = p.pointer(to: \.other)
            job.coefficientIndex = p.pointer(to: \.index)
            job.tensorSteps = p.pointer(to: \.stepsBefore)
            guard let coefficients else { return job.execute(phase, elements: tensor.count) }
            return withUnsafePointer(to: coefficients) { c in
                job.coefficients = c
                return job.execute(phase, elements: tensor.count)
            }
        }
    }
}

/// The per-tensor arrays of a one-tensor plan, in one value the job points into.
private struct OneTensorPlan {
    let tensor: Tensor
    let grad: UnsafeRawPointer?
    let other: UnsafeRawPointer?
    let index: Int
    let stepsBefore: Int64
}

/// What `phase` does to elements `range` of one tensor: the one definition that the job's items and an inline
/// stateless call both run. `coefficients` for the update phases, `other` for .difference, `threshold` for .gate,
/// `segment` for .updateWithStats.
@inline(__always)
private func perform(_ phase: StepJob.Phase, _ tensor: Tensor, _ g: UnsafeRawPointer, _ range: Range<Int>,
                     _ k: KernelSet, coefficients: GroupCoefficients?, key: UInt64, other: UnsafeRawPointer?,
                     threshold: Double, segment: UnsafeMutablePointer<KernelStats>?, prefetch: Bool) -> Double {
    switch phase {
    case .update: return tensor.update(g, coefficients!, k, range, key: key, prefetch: prefetch)
    case .updateWithStats:
        return tensor.updateWithStats(g, coefficients!, k, range, segment!, key: key, prefetch: prefetch)
    case .gate: return tensor.maxAbs(g, k, range) >= threshold ? 1 : 0
    case .maxAbs: return tensor.maxAbs(g, k, range)
    case .difference: return tensor.diffNormSquared(g, other!, k, range)
    case .differenceFromPrevious: return tensor.diffNormSquared(g, tensor.state[2]!, k, range, bIsState: true)
    case .nonFinite: return tensor.nonFiniteCount(g, k, range)
    }
}

/// The stochastic-rounding key of tensor `index`'s step number `step`: (seed, step, index); 0 when the tensor
/// rounds to nearest only.
@inline(__always)
private func tensorRoundingKey(_ tensor: Tensor, seed: UInt64, step: Int64, index: Int) -> UInt64 {
    tensor.layout.stochasticRounding.isEmpty ? 0 : roundingKey(seed: seed, step: step, tensor: index)
}
