import CAdamCore
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// How steps run on this CPU: the choices that change speed and never a bit of any result. This file is the one
// place that makes them; every figure behind the table is in docs/PERFORMANCE.md under the CPU it was measured on.
//
// 1. The work split is not tuned: each thread streams one contiguous range of every buffer and steals from the
//    others' ends when it finishes early (WorkerPool). That is right on every CPU measured, so it is not a choice.
// 2. The kernel tier: the widest the CPU runs, except for the memory-bound float32/float64 kernels where 512-bit
//    operations are double-pumped (two 256-bit halves: Zen 4). There the AVX-512 tier lost 3-28% against AVX2
//    from 64K elements up (L2, L3, DRAM; +7-10% only at 4K), while the 16-bit layouts' kernels, bound by their
//    conversions, ran 1.1-1.6x faster on it (32 registers). So such a CPU runs each family on its better tier
//    (KernelSet(streams:sixteenBit:)). Tiers that fuse multiply-adds give the same bits, so the choice is free.
// 3. Software prefetch in loops that stream from DRAM (steps of >= 4M elements): only where it was measured to
//    help. Zen 5: +10-18% from DRAM (measured with the earlier, interleaved split). Zen 4: -35% (why was not
//    found without counters; its hardware prefetchers alone keep a plain loop at the roofline). Unmeasured CPUs
//    leave it to the hardware; the bench's bandwidth probe shows on any CPU whether it pays.
//
// | CPU (cpuid vendor, family, model)              | float32/64 tier | 16-bit tier   | prefetch | measured            |
// |------------------------------------------------|-----------------|---------------|----------|---------------------|
// | AMD 0x19, models 0x10-0x1f, 0x60-0x7f, 0xa0-0xaf (Zen 4) | AVX2+FMA | AVX-512 | off   | Zen 4 EPYC, 2026-12-07 |
// | AMD 0x19, other models (Zen 3: no AVX-512)     | AVX2+FMA        | AVX2+FMA      | off      | not for prefetch    |
// | AMD 0x1a (Zen 5)                               | AVX-512         | AVX-512       | on       | Zen 5 EPYC, 2026-12-03 |
// | every other CPU                                | widest it runs  | widest        | off      | not measured        |
//
// The environment fixes either choice for one process: ADAMCORE_ISA=baseline|avx2_fma|avx512 (the C library's
// tier; read in AdamCoreABI) and ADAMCORE_PREFETCH=0|1.

/// This CPU's row of the table above.
package struct CPUTuning: Sendable {
    /// Whether the memory-bound float32/float64 kernels use the AVX-512 tier when the CPU runs it (false: AVX2+FMA
    /// for those, AVX-512 still for the 16-bit layouts' kernels).
    package let avx512ForStreams: Bool
    /// Whether loops that stream from DRAM prefetch ahead (by the table; ADAMCORE_PREFETCH overrides it).
    package let prefetchFromDRAM: Bool

    package static let current = CPUTuning()

    private init() {
        var vendor: Int32 = 0, family: Int32 = 0, model: Int32 = 0   // vendor: 1 AMD, 2 Intel, 0 other
        adamcore_shim_cpu_signature(&vendor, &family, &model)
        switch (vendor, family) {
        case (1, 0x19) where (0x10...0x1f).contains(model) || (0x60...0x7f).contains(model) || (0xa0...0xaf).contains(model):
            (avx512ForStreams, prefetchFromDRAM) = (false, false)   // Zen 4
        case (1, 0x19):
            (avx512ForStreams, prefetchFromDRAM) = (false, false)   // Zen 3 (no AVX-512)
        case (1, 0x1a):
            (avx512ForStreams, prefetchFromDRAM) = (true, true)     // Zen 5
        default:
            (avx512ForStreams, prefetchFromDRAM) = (true, false)
        }
    }
}

/// Whether steps prefetch from DRAM in this process: ADAMCORE_PREFETCH=0|1, else the table.
let prefetchFromEnvironment: Bool? = {
    guard let raw = getenv("ADAMCORE_PREFETCH") else { return nil }
    switch String(cString: raw) {
    case "0": return false
    case "1": return true
    default: return nil
    }
}()

/// Tests force prefetch on or off (0: as configured, 1: off, 2: on) to check that it never changes a bit.
package let prefetchOverride = Atomic<Int>(0)

/// Whether a step over `elements` elements in all runs its loops with software prefetch (`VectorStreams.prefetch`):
/// when the CPU's row says so and its buffers cannot stay in cache between steps (4M elements: 64 MiB of fp32 Adam
/// buffers, twice the 32 MiB L3 of a Zen 4 or Zen 5; in cache, prefetches only cost load slots). A constant, not
/// the cache size a VM reports, which can be any number (a Zen 5 VM's sysconf said 384 MiB of L3).
package func prefetchesAhead(elements: Int) -> Bool {
    guard elements >= 1 << 22 else { return false }
    switch prefetchOverride.load(ordering: .relaxed) {
    case 1: return false
    case 2: return true
    default: return prefetchFromEnvironment ?? CPUTuning.current.prefetchFromDRAM
    }
}
