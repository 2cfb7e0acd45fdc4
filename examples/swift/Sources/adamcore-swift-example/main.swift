// Least squares with two parameter tensors, trained by AdamCore's Optimizer (AdamW) and, for comparison, by the
// stateless Adam step; then a deliberate mistake, to show the typed errors.
import AdamCore
#if canImport(Glibc)
import Glibc
#endif

let features = 8, samples = 256
var rng = SystemRandomNumberGenerator()
let truth = (0..<features).map { _ in Float.random(in: -1...1, using: &rng) }
let x = (0..<samples).map { _ in (0..<features).map { _ in Float.random(in: -1...1, using: &rng) } }
let y = x.map { row in zip(row, truth).map(*).reduce(0, +) + 0.3 }

/// Mean squared error and its gradient for weights w and bias b.
func lossAndGradient(_ w: [Float], _ b: Float, _ gw: UnsafeMutableBufferPointer<Float>) -> (Float, Float) {
    var loss: Float = 0, gb: Float = 0
    for j in 0..<features { gw[j] = 0 }
    for i in 0..<samples {
        let r = zip(x[i], w).map(*).reduce(b, +) - y[i]
        loss += r * r / Float(samples)
        for j in 0..<features { gw[j] += 2 * r * x[i][j] / Float(samples) }
        gb += 2 * r / Float(samples)
    }
    return (loss, gb)
}

// Storage the optimizer steps in place and retains, so it lives as long as the optimizer needs it.
let w = TensorStorage(repeating: Float(0), count: features), gw = TensorStorage(repeating: Float(0), count: features)
let b = TensorStorage(repeating: Float(0), count: 1), gb = TensorStorage(repeating: Float(0), count: 1)

do {
    let optimizer = try Optimizer(.adamW(lr: 0.05, weightDecay: 1e-4))
    _ = try optimizer.addTensor(w, grad: gw)
    _ = try optimizer.addTensor(b, grad: gb)
    var loss: Float = 0
    for step in 1...300 {
        (loss, gb[0]) = gw.withUnsafeMutableBufferPointer { lossAndGradient(w.array, b[0], $0) }
        try optimizer.step()
        if step == 1 || step % 100 == 0 { print("AdamW step \(step): loss \(loss)") }
    }
    precondition(loss < 1e-3, "the example should converge")

    // The stateless form on arrays: the caller owns the state (one array per slot, from makeState).
    var p: [Double] = [3, -2]
    var state = try Step.makeState(for: .adam(lr: 0.1), count: 2, as: Double.self)
    for t: Int64 in 1...500 {
        try Step.step(.adam(lr: 0.1), step: t, param: &p, grad: p.map { 2 * $0 }, state: &state)  // gradient of |p|^2
    }
    print("stateless Adam on |p|^2 from (3, -2): p = \(p)")

    // Errors are values of AdamCoreError, named as in the C header.
    do {
        _ = try Optimizer(.adam(betas: (1.0, 0.999)))
    } catch {
        print("rejected as expected: \(error)")
    }
} catch {
    print("adamcore error: \(error)")
    exit(1)
}
