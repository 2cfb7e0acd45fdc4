// The header's "Stateless steps" section.
import AdamCore
import CAdamCore
#if canImport(Glibc)
import Glibc
#endif

@_cdecl("adamcore_adam_step_f32")
public func adamcore_adam_step_f32_(_ c: UnsafePointer<adamcore_config>?, _ step: Int64, _ n: UInt,
                                    _ param: UnsafeMutablePointer<Float>?, _ grad: UnsafePointer<Float>?,
                                    _ m: UnsafeMutablePointer<Float>?, _ v: UnsafeMutablePointer<Float>?,
                                    _ vmax: UnsafeMutablePointer<Float>?) -> Int32 {
    status { () throws(AdamCoreError) in
        try Step.plainUpdate(config(c), .adam, step, count(n), .float32, param, grad,
                             StateSlots(m, v, vmax), activeKernels)
    }
}

@_cdecl("adamcore_adam_step_f64")
public func adamcore_adam_step_f64_(_ c: UnsafePointer<adamcore_config>?, _ step: Int64, _ n: UInt,
                                    _ param: UnsafeMutablePointer<Double>?, _ grad: UnsafePointer<Double>?,
                                    _ m: UnsafeMutablePointer<Double>?, _ v: UnsafeMutablePointer<Double>?,
                                    _ vmax: UnsafeMutablePointer<Double>?) -> Int32 {
    status { () throws(AdamCoreError) in
        try Step.plainUpdate(config(c), .adam, step, count(n), .float64, param, grad,
                             StateSlots(m, v, vmax), activeKernels)
    }
}

@_cdecl("adamcore_adafix_step_f32")
public func adamcore_adafix_step_f32_(_ c: UnsafePointer<adamcore_config>?, _ step: Int64, _ n: UInt,
                                      _ param: UnsafeMutablePointer<Float>?, _ grad: UnsafePointer<Float>?,
                                      _ m: UnsafeMutablePointer<Float>?, _ v: UnsafeMutablePointer<Float>?,
                                      _ lipschitz: Double, _ result: UnsafeMutablePointer<adamcore_adafix_result>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let r = try Step.plainAdafix(config(c), step, count(n), .float32, param, grad, StateSlots(m, v),
                                     lipschitz, activeKernels)
        result?.pointee = r.raw
    }
}

@_cdecl("adamcore_adafix_step_f64")
public func adamcore_adafix_step_f64_(_ c: UnsafePointer<adamcore_config>?, _ step: Int64, _ n: UInt,
                                      _ param: UnsafeMutablePointer<Double>?, _ grad: UnsafePointer<Double>?,
                                      _ m: UnsafeMutablePointer<Double>?, _ v: UnsafeMutablePointer<Double>?,
                                      _ lipschitz: Double, _ result: UnsafeMutablePointer<adamcore_adafix_result>?) -> Int32 {
    status { () throws(AdamCoreError) in
        let r = try Step.plainAdafix(config(c), step, count(n), .float64, param, grad, StateSlots(m, v),
                                     lipschitz, activeKernels)
        result?.pointee = r.raw
    }
}

@_cdecl("adamcore_adafix_lipschitz_f32")
public func adamcore_adafix_lipschitz_f32_(_ n: UInt, _ grad: UnsafePointer<Float>?, _ newGrad: UnsafePointer<Float>?,
                                           _ stepNormSq: Double, _ lipschitz: UnsafeMutablePointer<Double>?) -> Int32 {
    status { () throws(AdamCoreError) in
        guard let lipschitz else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        lipschitz.pointee = try Step.plainLipschitz(count(n), .float32, grad, newGrad, stepNormSq, lipschitz.pointee,
                                                    activeKernels)
    }
}

@_cdecl("adamcore_adafix_lipschitz_f64")
public func adamcore_adafix_lipschitz_f64_(_ n: UInt, _ grad: UnsafePointer<Double>?, _ newGrad: UnsafePointer<Double>?,
                                           _ stepNormSq: Double, _ lipschitz: UnsafeMutablePointer<Double>?) -> Int32 {
    status { () throws(AdamCoreError) in
        guard let lipschitz else { throw AdamCoreError(ADAMCORE_E_NULL_POINTER) }
        lipschitz.pointee = try Step.plainLipschitz(count(n), .float64, grad, newGrad, stepNormSq, lipschitz.pointee,
                                                    activeKernels)
    }
}

@_cdecl("adamcore_sgd_step_f32")
public func adamcore_sgd_step_f32_(_ c: UnsafePointer<adamcore_config>?, _ step: Int64, _ n: UInt,
                                   _ param: UnsafeMutablePointer<Float>?, _ grad: UnsafePointer<Float>?,
                                   _ buf: UnsafeMutablePointer<Float>?) -> Int32 {
    status { () throws(AdamCoreError) in
        try Step.plainUpdate(config(c), .sgd, step, count(n), .float32, param, grad, StateSlots(buf), activeKernels)
    }
}

@_cdecl("adamcore_sgd_step_f64")
public func adamcore_sgd_step_f64_(_ c: UnsafePointer<adamcore_config>?, _ step: Int64, _ n: UInt,
                                   _ param: UnsafeMutablePointer<Double>?, _ grad: UnsafePointer<Double>?,
                                   _ buf: UnsafeMutablePointer<Double>?) -> Int32 {
    status { () throws(AdamCoreError) in
        try Step.plainUpdate(config(c), .sgd, step, count(n), .float64, param, grad, StateSlots(buf), activeKernels)
    }
}

@_cdecl("adamcore_rmsprop_step_f32")
public func adamcore_rmsprop_step_f32_(_ c: UnsafePointer<adamcore_config>?, _ step: Int64, _ n: UInt,
                                       _ param: UnsafeMutablePointer<Float>?, _ grad: UnsafePointer<Float>?,
                                       _ sq: UnsafeMutablePointer<Float>?, _ ga: UnsafeMutablePointer<Float>?,
                                       _ buf: UnsafeMutablePointer<Float>?) -> Int32 {
    status { () throws(AdamCoreError) in
        try Step.plainRMSprop(config(c), step, count(n), .float32, param, grad, sq, ga, buf, activeKernels)
    }
}

@_cdecl("adamcore_rmsprop_step_f64")
public func adamcore_rmsprop_step_f64_(_ c: UnsafePointer<adamcore_config>?, _ step: Int64, _ n: UInt,
                                       _ param: UnsafeMutablePointer<Double>?, _ grad: UnsafePointer<Double>?,
                                       _ sq: UnsafeMutablePointer<Double>?, _ ga: UnsafeMutablePointer<Double>?,
                                       _ buf: UnsafeMutablePointer<Double>?) -> Int32 {
    status { () throws(AdamCoreError) in
        try Step.plainRMSprop(config(c), step, count(n), .float64, param, grad, sq, ga, buf, activeKernels)
    }
}

@_cdecl("adamcore_adagrad_step_f32")
public func adamcore_adagrad_step_f32_(_ c: UnsafePointer<adamcore_config>?, _ step: Int64, _ n: UInt,
                                       _ param: UnsafeMutablePointer<Float>?, _ grad: UnsafePointer<Float>?,
                                       _ sum: UnsafeMutablePointer<Float>?) -> Int32 {
    status { () throws(AdamCoreError) in
        try Step.plainUpdate(config(c), .adagrad, step, count(n), .float32, param, grad,
                             StateSlots(sum), activeKernels)
    }
}

@_cdecl("adamcore_adagrad_step_f64")
public func adamcore_adagrad_step_f64_(_ c: UnsafePointer<adamcore_config>?, _ step: Int64, _ n: UInt,
                                       _ param: UnsafeMutablePointer<Double>?, _ grad: UnsafePointer<Double>?,
                                       _ sum: UnsafeMutablePointer<Double>?) -> Int32 {
    status { () throws(AdamCoreError) in
        try Step.plainUpdate(config(c), .adagrad, step, count(n), .float64, param, grad,
                             StateSlots(sum), activeKernels)
    }
}

@_cdecl("adamcore_step_desc")
public func adamcore_step_desc_(_ c: UnsafePointer<adamcore_config>?, _ step: Int64,
                                _ desc: UnsafePointer<adamcore_tensor_desc>?, _ seed: UInt64) -> Int32 {
    status { () throws(AdamCoreError) in
        let d = try readSized(desc, oldest: oldestTensorDescSize, defaults: adamcore_tensor_desc())
        try Step.update(config(c), step: step, layout: layout(of: d), count: count(UInt(bitPattern: d.count)),
                       param: d.param, grad: d.grad, state: d.state, stateCount: position(UInt(bitPattern: d.state_count)),
                       master: d.master, copy: d.copy, seed: seed, kernels: activeKernels)
    }
}
