import CAdamCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The executor: the fixed split of a step into work items, and the job the worker pool runs over them.

/// Elements per work item. A multiple of the kernels' reduction block, so an item's partial sums are the blocks
/// of a whole-tensor run, and big enough (32 KiB of float32) that claiming an item costs nothing by comparison.
public let chunkElements = 8 * reductionBlock  // (the stateless steps use the same chunks)

/// A fixed unit of a step's work: elements [start, end) of tensor `first` when `end > 0`, else the whole tensors
/// first..<last (a run of small tensors, up to chunkElements in all). The split depends only on the registered
/// tensors, never on the thread count.
struct WorkItem {
    let first: Int, last: Int
    let start: Int, end: Int

    func range(of tensor: Tensor) -> Range<Int> { end > 0 ? start..<end : 0..<tensor.count }

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
    enum Phase { case update, updateWithStats, gate, difference, differenceFromPrevious, nonFinite }

    let kernels: KernelSet
    var phase = Phase.update
    var itemCount = 0
    var tensors: UnsafePointer<Tensor>?
    var items: UnsafePointer<WorkItem>?
    var coefficients: UnsafePointer<GroupCoefficients>?
    var grads: UnsafePointer<UnsafeRawPointer?>?        // per tensor; nil entries are not in this step
    var coefficientIndex: UnsafePointer<Int>?           // per tensor: its entry in `coefficients`
    var others: UnsafePointer<UnsafeRawPointer?>?       // .difference: g' per tensor
    var tensorSteps: UnsafePointer<Int64>?              // per tensor: its step count before this step
    var roundingSeed: UInt64 = 0
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

    func run(item: Int) {
        let w = items![item]
        var total = 0.0
        for index in w.first..<w.last {
            guard let g = grads![index] else {
                if phase == .updateWithStats { segments[segmentStart[item] + (index - w.first)] = KernelStats() }
                continue
            }
            let tensor = tensors![index]
            let range = w.range(of: tensor)
            switch phase {
            case .update:
                total += tensor.update(g, coefficients![coefficientIndex![index]], kernels, range, key: key(index, tensor))
            case .updateWithStats:
                let segment = segments + segmentStart[item] + (index - w.first)
                total += tensor.updateWithStats(g, coefficients![coefficientIndex![index]], kernels, range, segment,
                                                key: key(index, tensor))
            case .gate:
                if tensor.maxAbs(g, kernels, range) >= thresholds[tensor.group] { total = 1 }
            case .difference:
                total += tensor.diffNormSquared(g, others![index]!, kernels, range)
            case .differenceFromPrevious:
                total += tensor.diffNormSquared(g, tensor.s2!, kernels, range, bIsState: true)
            case .nonFinite:
                total += tensor.nonFiniteCount(g, kernels, range)
            }
        }
        partials[item] = total
    }

    /// The stochastic-rounding key of tensor `index`'s step: (seed, its step number, index); 0 when it rounds
    /// to nearest only.
    @inline(__always)
    private func key(_ index: Int, _ tensor: Tensor) -> UInt64 {
        tensor.layout.stochasticRounding.isEmpty ? 0
            : roundingKey(seed: roundingSeed, step: tensorSteps![index] &+ 1, tensor: index)
    }
}
