import CAdamCore

/// An element type the kernels run on: `Float` (16 lanes) or `Double` (8 lanes), 64 bytes per vector either way.
public protocol KernelScalar: BinaryFloatingPoint & SIMDScalar & Codable where Self.SIMDMaskScalar: FixedWidthInteger & SignedInteger {
    associatedtype Vector: SIMD where Vector.Scalar == Self, Vector.MaskStorage.Scalar == Self.SIMDMaskScalar
    /// Lane-wise square root as one instruction per register (see the shim for why not `squareRoot()`).
    static func vectorSqrt(_ x: Vector) -> Vector
    /// Lane-wise maximum; NaN in either operand gives NaN (torch.maximum's rule).
    static func vectorMaximum(_ a: Vector, _ b: Vector) -> Vector
    /// Lane-wise maximum ignoring a NaN operand.
    static func vectorMaxIgnoringNaN(_ a: Vector, _ b: Vector) -> Vector
    static func vectorAbs(_ x: Vector) -> Vector
    /// 1 in the lanes holding NaN or +-Inf, else 0.
    static func vectorNonFinite(_ x: Vector) -> Vector
    /// Lane-wise minimum ignoring a NaN operand.
    static func vectorMinIgnoringNaN(_ a: Vector, _ b: Vector) -> Vector
    /// 1/x: an estimate (relative error <= 1.5 * 2^-12) for Float, exact for Double. Statistics only.
    static func vectorReciprocalEstimate(_ x: Vector) -> Vector
    /// The lanes' sum in a fixed pairwise order, and their maximum (NaN lanes ignored).
    static func vectorSum(_ x: Vector) -> Double
    static func vectorReduceMax(_ x: Vector) -> Double
    /// The dtype code of the C API.
    static var dtype: adamcore_dtype { get }
}

extension Float: KernelScalar {
    public typealias Vector = SIMD16<Float>
    @inlinable @inline(__always)
    public static func vectorSqrt(_ x: Vector) -> Vector { adamcore_shim_sqrt_f32x16(x) }
    @inlinable @inline(__always)
    public static func vectorMaximum(_ a: Vector, _ b: Vector) -> Vector { adamcore_shim_maximum_f32x16(a, b) }
    @inlinable @inline(__always)
    public static func vectorMaxIgnoringNaN(_ a: Vector, _ b: Vector) -> Vector { adamcore_shim_max_f32x16(a, b) }
    @inlinable @inline(__always)
    public static func vectorAbs(_ x: Vector) -> Vector { adamcore_shim_abs_f32x16(x) }
    @inlinable @inline(__always)
    public static func vectorNonFinite(_ x: Vector) -> Vector { adamcore_shim_nonfinite_f32x16(x) }
    @inlinable @inline(__always)
    public static func vectorSum(_ x: Vector) -> Double { adamcore_shim_sum_f32x16(x) }
    @inlinable @inline(__always)
    public static func vectorMinIgnoringNaN(_ a: Vector, _ b: Vector) -> Vector { adamcore_shim_min_f32x16(a, b) }
    @inlinable @inline(__always)
    public static func vectorReciprocalEstimate(_ x: Vector) -> Vector { adamcore_shim_reciprocal_estimate_f32x16(x) }
    @inlinable @inline(__always)
    public static func vectorReduceMax(_ x: Vector) -> Double { adamcore_shim_reduce_max_f32x16(x) }
    @inlinable public static var dtype: adamcore_dtype { ADAMCORE_FLOAT32 }
}

extension Double: KernelScalar {
    public typealias Vector = SIMD8<Double>
    @inlinable @inline(__always)
    public static func vectorSqrt(_ x: Vector) -> Vector { adamcore_shim_sqrt_f64x8(x) }
    @inlinable @inline(__always)
    public static func vectorMaximum(_ a: Vector, _ b: Vector) -> Vector { adamcore_shim_maximum_f64x8(a, b) }
    @inlinable @inline(__always)
    public static func vectorMaxIgnoringNaN(_ a: Vector, _ b: Vector) -> Vector { adamcore_shim_max_f64x8(a, b) }
    @inlinable @inline(__always)
    public static func vectorAbs(_ x: Vector) -> Vector { adamcore_shim_abs_f64x8(x) }
    @inlinable @inline(__always)
    public static func vectorNonFinite(_ x: Vector) -> Vector { adamcore_shim_nonfinite_f64x8(x) }
    @inlinable @inline(__always)
    public static func vectorSum(_ x: Vector) -> Double { adamcore_shim_sum_f64x8(x) }
    @inlinable @inline(__always)
    public static func vectorMinIgnoringNaN(_ a: Vector, _ b: Vector) -> Vector { adamcore_shim_min_f64x8(a, b) }
    @inlinable @inline(__always)
    public static func vectorReciprocalEstimate(_ x: Vector) -> Vector { adamcore_shim_reciprocal_estimate_f64x8(x) }
    @inlinable @inline(__always)
    public static func vectorReduceMax(_ x: Vector) -> Double { adamcore_shim_reduce_max_f64x8(x) }
    @inlinable public static var dtype: adamcore_dtype { ADAMCORE_FLOAT64 }
}

/// How a kernel computes `a * b + c`. The policy is a type parameter, so each specialization is compiled for one
/// choice; the AVX2 module declares its own fused policy so its specializations never share a symbol with the
/// baseline ones (the linker would merge identical names, and baseline code could end up running AVX2 code).
public protocol ArithmeticPolicy {
    static func multiplyAdd<V: SIMD>(_ a: V, _ b: V, _ c: V) -> V where V.Scalar: FloatingPoint
}

/// Separate multiply and add: two roundings, identical on every CPU, and cheap without FMA hardware
/// (`addingProduct` would become a libm `fma()` call per lane there).
public enum UnfusedArithmetic: ArithmeticPolicy {
    @inlinable @inline(__always)
    public static func multiplyAdd<V: SIMD>(_ a: V, _ b: V, _ c: V) -> V where V.Scalar: FloatingPoint {
        a * b + c
    }
}
