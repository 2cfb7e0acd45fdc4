// The header's "Statistics and advice" section.
import AdamCore
import CAdamCore
#if canImport(Glibc)
import Glibc
#endif

func publicStats(_ st: StepStats, into out: UnsafeMutablePointer<adamcore_step_stats>?) throws(AdamCoreError) {
    guard out != nil else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
    try writeSized(adamcore_step_stats(
        struct_size: 0, adafix_v_frozen: st.adafixVFrozen ? 1 : 0, step: st.step,
        count: UInt64(st.count), nonfinite_grads: UInt64(st.nonFiniteGradients), max_step_over_lr: st.maxStepOverLR,
        step_bound: st.stepBound, min_effective_lr: st.minEffectiveLR, max_effective_lr: st.maxEffectiveLR,
        mean_effective_lr: st.meanEffectiveLR, m_norm: st.mNorm, v_norm: st.vNorm, step_norm: st.stepNorm,
        lipschitz: st.lipschitz), to: out, oldest: oldestStepStatsSize)
}

@_cdecl("adamcore_optimizer_set_stats")
public func adamcore_optimizer_set_stats_(_ handle: OpaquePointer?, _ enabled: Int32) -> Int32 {
    status { () throws(AdamCoreError) in try optimizer(handle).setStatsInterval(Int(enabled)) }
}

@_cdecl("adamcore_optimizer_get_stats")
public func adamcore_optimizer_get_stats_(_ handle: OpaquePointer?, _ out: UnsafeMutablePointer<adamcore_step_stats>?) -> Int32 {
    status { () throws(AdamCoreError) in try publicStats(try optimizer(handle).lastStats, into: out) }
}

@_cdecl("adamcore_optimizer_get_tensor_stats")
public func adamcore_optimizer_get_tensor_stats_(_ handle: OpaquePointer?, _ tensor: UInt,
                                                 _ out: UnsafeMutablePointer<adamcore_step_stats>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let opt = try optimizer(handle)
        let index = position(tensor)
        guard opt.lastTensorStats.indices.contains(index) else { throw AdamCoreError(ADAMCORE_E_INDEX) }
        try publicStats(opt.lastTensorStats[index], into: out)
    }
}

@_cdecl("adamcore_advise")
public func adamcore_advise_(_ c: UnsafePointer<adamcore_config>?, _ dtype: Int32,
                             _ out: UnsafeMutablePointer<adamcore_advice>?, _ capacity: UInt,
                             _ total: UnsafeMutablePointer<UInt>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let cfg = try config(c)
        guard let precision = StatePrecision(rawValue: dtype) else { throw AdamCoreError(ADAMCORE_E_DTYPE) }
        guard let total else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        guard capacity == 0 || out != nil else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        let list = try advise(Config(raw: cfg), precision: precision)
        for (i, a) in list.enumerated() where UInt(i) < capacity {
            out![i] = adamcore_advice(code: a.code.rawValue, severity: a.severity.rawValue, value: a.value,
                                      message: cString(a.message))
        }
        total.pointee = UInt(list.count)
    }
}
