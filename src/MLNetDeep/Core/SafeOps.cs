using TorchSharp;
using static TorchSharp.torch;

namespace MLNetDeep;

/// <summary>
/// Building blocks that never hand libtorch a <see cref="Scalar"/> the garbage collector may free during the call.
/// TorchSharp 0.107 frees Scalars in their finalizer and passes <c>scalar.Handle</c> to native code without keeping
/// the Scalar alive, so a temporary Scalar (an implicit conversion such as <c>x * 2.0</c> or <c>x.gt(0)</c>, or one
/// made inside TorchSharp, e.g. the alpha of <c>a + b</c>, <c>add_(s)</c>, BatchNorm's batch counter, LeakyReLU's
/// slope) can be freed while libtorch reads it when another thread triggers a collection: training then fails at
/// random ("Unknown scalar type") or reads garbage. MLNetDeep uses only long-lived or explicitly held Scalars;
/// <c>GcSafetyTests</c> scans the assembly for the other kind and trains under allocation pressure.
/// </summary>
internal static class SafeOps
{
    /// <summary>Process-lifetime Scalars (static fields: always reachable).</summary>
    public static readonly Scalar Zero = 0.0.ToScalar(), One = 1.0.ToScalar(), Half = 0.5.ToScalar(),
        LongZero = 0L.ToScalar(), LongOne = 1L.ToScalar(), LongMinusOne = (-1L).ToScalar(), NegativeInfinity = double.NegativeInfinity.ToScalar(),
        True = true.ToScalar(), Tiny = 1e-12.ToScalar();

    /// <summary><paramref name="a"/> + <paramref name="b"/> with an explicit alpha.</summary>
    public static Tensor Add(Tensor a, Tensor b) => a.add(b, One);

    /// <summary><paramref name="x"/> · <paramref name="scale"/> + <paramref name="offset"/>.</summary>
    public static Tensor Affine(Tensor x, double scale, double offset)
    {
        using var s = scale.ToScalar();
        using var o = offset.ToScalar();
        return x.mul(s).add_(o, One);
    }

    /// <summary>Batch normalization without the batch counter (unused with the default momentum of 0.1), whose
    /// in-place increment passes a temporary Scalar.</summary>
    public static nn.Module<Tensor, Tensor> BatchNorm1d(long features)
    {
        var bn = nn.BatchNorm1d(features);
        bn.num_batches_tracked = null;
        return bn;
    }

    /// <inheritdoc cref="BatchNorm1d"/>
    public static TorchSharp.Modules.BatchNorm2d BatchNorm2d(long features)
    {
        var bn = nn.BatchNorm2d(features);
        bn.num_batches_tracked = null;
        return bn;
    }

    /// <summary>LeakyReLU holding its slope.</summary>
    public sealed class LeakyRelu : nn.Module<Tensor, Tensor>
    {
        private readonly Scalar _slope;
        public LeakyRelu(double slope) : base(nameof(LeakyRelu))
        {
            Slope = slope;
            _slope = slope.ToScalar();
        }
        public double Slope { get; }
        public override Tensor forward(Tensor x) => x.leaky_relu(_slope);
        protected override void Dispose(bool disposing) { if (disposing) _slope.Dispose(); base.Dispose(disposing); }
    }

    /// <summary>ELU (alpha 1) holding its constants.</summary>
    public sealed class Elu : nn.Module<Tensor, Tensor>
    {
        private readonly Scalar _alpha = 1.0.ToScalar(), _scale = 1.0.ToScalar(), _inputScale = 1.0.ToScalar();
        public Elu() : base(nameof(Elu)) { }
        public override Tensor forward(Tensor x) => x.elu(_alpha, _scale, _inputScale);
        protected override void Dispose(bool disposing)
        {
            if (disposing) { _alpha.Dispose(); _scale.Dispose(); _inputScale.Dispose(); }
            base.Dispose(disposing);
        }
    }
}
