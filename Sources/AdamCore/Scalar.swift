import CAdamCore

/// An element type the kernels run on: `Float` (16 lanes) or `Double` (8 lanes), 64 bytes per vector either way.
@usableFromInline package protocol KernelScalar: BinaryFloatingPoint & SIMDScalar & Codable where Self.SIMDMaskScalar: FixedWidthInteger & SignedInteger {
    associatedtype Vector: SIMD where Vector.Scalar == Self, Vector.MaskStorage.Scalar == Self.SIMDMaskScalar
    /// Half a vector: the statistics' accumulators (each Vector is folded into one, halves first).
    associatedtype Half: SIMD where Half.Scalar == Self
    /// Lane-wise square root as one instruction per register (see the shim for why not `squareRoot()`).
    static func vectorSqrt(_ x: Vector) -> Vector
    /// Lane-wise maximum; NaN in either operand gives NaN (torch.maximum's rule).
    static func vectorMaximum(_ a: Vector, _ b: Vector) -> Vector
    static func vectorAbs(_ x: Vector) -> Vector
    /// 1 in the lanes holding NaN or +-Inf, else 0.
    static func vectorNonFinite(_ x: Vector) -> Vector
    /// 1/x: an estimate (relative error <= 1.5 * 2^-12) for Float, exact for Double. Statistics only.
    static func vectorReciprocalEstimate(_ x: Vector) -> Vector
    /// acc op (x.lo op x.hi) for op = max, min (NaN ignored), +, and acc + x.lo^2 + x.hi^2.
    static func foldMax(_ acc: Half, _ x: Vector) -> Half
    static func foldMin(_ acc: Half, _ x: Vector) -> Half
    static func foldAdd(_ acc: Half, _ x: Vector) -> Half
    static func foldSquares(_ acc: Half, _ x: Vector) -> Half
    /// Lane-wise max and min of acc and x that keep acc where x is NaN (one instruction each).
    static func keepMax(_ acc: Vector, _ x: Vector) -> Vector
    static func keepMin(_ acc: Vector, _ x: Vector) -> Vector
    /// A half's lane sum (fixed order), maximum and minimum.
    static func halfSum(_ x: Half) -> Double
    static func halfMax(_ x: Half) -> Double
    static func halfMin(_ x: Half) -> Double
    /// The dtype code of the C API.
    static var dtype: adamcore_dtype { get }
}

extension Float: KernelScalar {
    @usableFromInline package typealias Vector = SIMD16<Float>
    @usableFromInline package typealias Half = SIMD8<Float>
    @inlinable @inline(__always)
    package static func vectorSqrt(_ x: Vector) -> Vector { adamcore_shim_sqrt_f32x16(x) }
    @inlinable @inline(__always)
    package static func vectorMaximum(_ a: Vector, _ b: Vector) -> Vector { adamcore_shim_maximum_f32x16(a, b) }
    @inlinable @inline(__always)
    package static func vectorAbs(_ x: Vector) -> Vector { adamcore_shim_abs_f32x16(x) }
    @inlinable @inline(__always)
    package static func vectorNonFinite(_ x: Vector) -> Vector { adamcore_shim_nonfinite_f32x16(x) }
    @inlinable @inline(__always)
    package static func foldMax(_ acc: Half, _ x: Vector) -> Half { adamcore_shim_fold_max_f32x16(acc, x) }
    @inlinable @inline(__always)
    package static func foldMin(_ acc: Half, _ x: Vector) -> Half { adamcore_shim_fold_min_f32x16(acc, x) }
    @inlinable @inline(__always)
    package static func foldAdd(_ acc: Half, _ x: Vector) -> Half { adamcore_shim_fold_add_f32x16(acc, x) }
    @inlinable @inline(__always)
    package static func foldSquares(_ acc: Half, _ x: Vector) -> Half { adamcore_shim_fold_squares_f32x16(acc, x) }
    @inlinable @inline(__always)
    package static func keepMax(_ acc: Vector, _ x: Vector) -> Vector { adamcore_shim_keep_max_f32x16(acc, x) }
    @inlinable @inline(__always)
    package static func keepMin(_ acc: Vector, _ x: Vector) -> Vector { adamcore_shim_keep_min_f32x16(acc, x) }
    @inlinable @inline(__always)
    package static func halfSum(_ x: Half) -> Double { adamcore_shim_sum_f32x8(x) }
    @inlinable @inline(__always)
    package static func halfMax(_ x: Half) -> Double { adamcore_shim_reduce_max_f32x8(x) }
    @inlinable @inline(__always)
    package static func halfMin(_ x: Half) -> Double { adamcore_shim_reduce_min_f32x8(x) }
    @inlinable @inline(__always)
    package static func vectorReciprocalEstimate(_ x: Vector) -> Vector { adamcore_shim_reciprocal_estimate_f32x16(x) }
    @inlinable package static var dtype: adamcore_dtype { ADAMCORE_FLOAT32 }
}

extension Double: KernelScalar {
    @usableFromInline package typealias Vector = SIMD8<Double>
    @usableFromInline package typealias Half = SIMD4<Double>
    @inlinable @inline(__always)
    package static func vectorSqrt(_ x: Vector) -> Vector { adamcore_shim_sqrt_f64x8(x) }
    @inlinable @inline(__always)
    package static func vectorMaximum(_ a: Vector, _ b: Vector) -> Vector { adamcore_shim_maximum_f64x8(a, b) }
    @inlinable @inline(__always)
    package static func vectorAbs(_ x: Vector) -> Vector { adamcore_shim_abs_f64x8(x) }
    @inlinable @inline(__always)
    package static func vectorNonFinite(_ x: Vector) -> Vector { adamcore_shim_nonfinite_f64x8(x) }
    @inlinable @inline(__always)
    package static func foldMax(_ acc: Half, _ x: Vector) -> Half { adamcore_shim_fold_max_f64x8(acc, x) }
    @inlinable @inline(__always)
    package static func foldMin(_ acc: Half, _ x: Vector) -> Half { adamcore_shim_fold_min_f64x8(acc, x) }
    @inlinable @inline(__always)
    package static func foldAdd(_ acc: Half, _ x: Vector) -> Half { adamcore_shim_fold_add_f64x8(acc, x) }
    @inlinable @inline(__always)
    package static func foldSquares(_ acc: Half, _ x: Vector) -> Half { adamcore_shim_fold_squares_f64x8(acc, x) }
    @inlinable @inline(__always)
    package static func keepMax(_ acc: Vector, _ x: Vector) -> Vector { adamcore_shim_keep_max_f64x8(acc, x) }
    @inlinable @inline(__always)
    package static func keepMin(_ acc: Vector, _ x: Vector) -> Vector { adamcore_shim_keep_min_f64x8(acc, x) }
    @inlinable @inline(__always)
    package static func halfSum(_ x: Half) -> Double { adamcore_shim_sum_f64x4(x) }
    @inlinable @inline(__always)
    package static func halfMax(_ x: Half) -> Double { adamcore_shim_reduce_max_f64x4(x) }
    @inlinable @inline(__always)
    package static func halfMin(_ x: Half) -> Double { adamcore_shim_reduce_min_f64x4(x) }
    @inlinable @inline(__always)
    package static func vectorReciprocalEstimate(_ x: Vector) -> Vector { adamcore_shim_reciprocal_estimate_f64x8(x) }
    @inlinable package static var dtype: adamcore_dtype { ADAMCORE_FLOAT64 }
}

/// How a kernel computes `a * b + c`. The policy is a type parameter, so each specialization is compiled for one
/// choice; the AVX2 module declares its own fused policy so its specializations never share a symbol with the
/// baseline ones (the linker would merge identical names, and baseline code could end up running AVX2 code).
@usableFromInline package protocol ArithmeticPolicy {
    static func multiplyAdd<V: SIMD>(_ a: V, _ b: V, _ c: V) -> V where V.Scalar: FloatingPoint
    /// Whether the statistics keep full-width accumulators (`FullLanes`: ISAs with 32 vector registers).
    static var fullWidthStatistics: Bool { get }
}

extension ArithmeticPolicy {
    @inlinable package static var fullWidthStatistics: Bool { false }
}

/// Separate multiply and add: two roundings, identical on every CPU, and cheap without FMA hardware
/// (`addingProduct` would become a libm `fma()` call per lane there).
@usableFromInline package enum UnfusedArithmetic: ArithmeticPolicy {
    @inlinable @inline(__always)
    package static func multiplyAdd<V: SIMD>(_ a: V, _ b: V, _ c: V) -> V where V.Scalar: FloatingPoint {
        a * b + c
    }
}
