using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MLNetDeep;

/// <summary>
/// Random image augmentation applied to training batches only (never when scoring or validating), on the whole
/// batch at once, from a generator seeded by the MLContext seed and the epoch, so a run is reproducible.
/// </summary>
public sealed class ImageAugmentation
{
    /// <summary>Mirror left–right with probability 0.5. Default false.</summary>
    public bool HorizontalFlip { get; set; }

    /// <summary>Random crop with this much zero padding on each side, in pixels (a random shift of up to that many pixels). Default 0.</summary>
    public int CropPadding { get; set; }

    /// <summary>Random rotation of up to ± this many degrees. Default 0.</summary>
    public float MaxRotationDegrees { get; set; }

    /// <summary>Random translation of up to ± this fraction of the image size. Default 0.</summary>
    public float MaxTranslation { get; set; }

    /// <summary>Probability of random erasing (Zhong et al., 2017): a random rectangle of 2–33 % of the image set to zero. Default 0.</summary>
    public float ErasingProbability { get; set; }

    /// <summary>No augmentation.</summary>
    public static ImageAugmentation None => new();

    /// <summary>Flip and a 2-pixel random crop: a good default for small natural images.</summary>
    public static ImageAugmentation Standard => new() { HorizontalFlip = true, CropPadding = 2 };

    /// <summary>Flip, 2-pixel random crop and random erasing with probability 0.5: for longer training of larger networks.</summary>
    public static ImageAugmentation Strong => new() { HorizontalFlip = true, CropPadding = 2, ErasingProbability = 0.5f };

    /// <summary>The enabled transformations, e.g. <c>flip, crop(pad 2), erasing(p 0.5)</c>, or <c>none</c>.</summary>
    public override string ToString()
    {
        var parts = new List<string>();
        if (HorizontalFlip) parts.Add("flip");
        if (CropPadding > 0) parts.Add($"crop(pad {CropPadding})");
        if (MaxRotationDegrees > 0) parts.Add(FormattableString.Invariant($"rotation(±{MaxRotationDegrees}°)"));
        if (MaxTranslation > 0) parts.Add(FormattableString.Invariant($"translation(±{MaxTranslation:P0})"));
        if (ErasingProbability > 0) parts.Add(FormattableString.Invariant($"erasing(p {ErasingProbability})"));
        return parts.Count == 0 ? "none" : string.Join(", ", parts);
    }

    internal bool IsNone => !HorizontalFlip && CropPadding == 0 && MaxRotationDegrees == 0 && MaxTranslation == 0 && ErasingProbability == 0;

    internal void Validate()
    {
        if (CropPadding < 0) throw new ArgumentOutOfRangeException(nameof(CropPadding), CropPadding, "CropPadding must be zero or positive.");
        if (!(MaxRotationDegrees >= 0 && MaxRotationDegrees <= 180)) throw new ArgumentOutOfRangeException(nameof(MaxRotationDegrees), MaxRotationDegrees, "MaxRotationDegrees must be in [0, 180].");
        if (!(MaxTranslation >= 0 && MaxTranslation < 1)) throw new ArgumentOutOfRangeException(nameof(MaxTranslation), MaxTranslation, "MaxTranslation must be in [0, 1).");
        if (!(ErasingProbability >= 0 && ErasingProbability <= 1)) throw new ArgumentOutOfRangeException(nameof(ErasingProbability), ErasingProbability, "ErasingProbability must be in [0, 1].");
    }

    /// <summary>
    /// Augments a batch [B, C, H, W]; returns a new tensor. Random numbers come from <paramref name="g"/> (seeded per
    /// epoch). Every Scalar handed to libtorch is held until the batch is done (see <see cref="SafeOps"/>).
    /// </summary>
    internal Tensor Apply(Tensor x, Generator g)
    {
        long b = x.shape[0], h = x.shape[2], w = x.shape[3];
        var device = x.device;
        var held = new List<Scalar>();
        Scalar S(double value)
        {
            var s = value.ToScalar();
            held.Add(s);
            return s;
        }
        var one = SafeOps.One;
        Tensor Rand() => torch.rand(new[] { b }, generator: g);
        Tensor Signed(Tensor u) => u.mul(S(2)).sub(S(1)); // uniform in [-1, 1)
        try
        {
            if (CropPadding > 0 || MaxRotationDegrees > 0 || MaxTranslation > 0)
            {
                var angle = Signed(Rand()).mul(S(MaxRotationDegrees * Math.PI / 180));
                var tx = Signed(Rand()).mul(S(2 * MaxTranslation));
                var ty = Signed(Rand()).mul(S(2 * MaxTranslation));
                if (CropPadding > 0)
                {
                    // Whole-pixel shifts in [-p, p], in normalized coordinates (2 / size per pixel).
                    tx = tx.add(torch.randint(-CropPadding, CropPadding + 1, new[] { b }, generator: g).to_type(ScalarType.Float32).mul(S(2.0 / w)), one);
                    ty = ty.add(torch.randint(-CropPadding, CropPadding + 1, new[] { b }, generator: g).to_type(ScalarType.Float32).mul(S(2.0 / h)), one);
                }
                var cos = angle.cos();
                var sin = angle.sin();
                var theta = torch.stack(new[] { cos, sin.negative(), tx, sin, cos, ty }, 1).view(b, 2, 3).to(device);
                var grid = F.affine_grid(theta, new[] { b, x.shape[1], h, w }, align_corners: false);
                x = F.grid_sample(x, grid, MaxRotationDegrees > 0 || MaxTranslation > 0 ? GridSampleMode.Bilinear : GridSampleMode.Nearest,
                    GridSamplePaddingMode.Zeros, align_corners: false);
            }
            if (HorizontalFlip)
            {
                var flip = Rand().lt(S(0.5)).view(b, 1, 1, 1).to(device);
                x = torch.where(flip, x.flip(3), x);
            }
            if (ErasingProbability > 0)
            {
                // A rectangle of 2–33 % of the image, aspect ratio log-uniform in [0.3, 3.3] (Zhong et al., 2017).
                var area = Rand().mul(S(0.31)).add(S(0.02), one).mul(S(h * w));
                var logRatio = Rand().mul(S(Math.Log(3.3) - Math.Log(0.3))).add(S(Math.Log(0.3)), one);
                var ratio = logRatio.exp();
                var eh = area.mul(ratio).sqrt().clamp(S(1), S(h)).floor();
                var ew = area.div(ratio).sqrt().clamp(S(1), S(w)).floor();
                var y0 = Rand().mul(eh.negative().add(S(h), one).add(S(1), one)).floor();
                var x0 = Rand().mul(ew.negative().add(S(w), one).add(S(1), one)).floor();
                var apply = Rand().lt(S(ErasingProbability));
                var rows = torch.arange(S(0), S(h), S(1), ScalarType.Float32).view(1, h, 1);
                var cols = torch.arange(S(0), S(w), S(1), ScalarType.Float32).view(1, 1, w);
                var mask = rows.ge(y0.view(b, 1, 1)) & rows.lt(y0.add(eh, one).view(b, 1, 1))
                         & cols.ge(x0.view(b, 1, 1)) & cols.lt(x0.add(ew, one).view(b, 1, 1)) & apply.view(b, 1, 1);
                x = x.masked_fill(mask.unsqueeze(1).to(device), SafeOps.Zero);
            }
            return x;
        }
        finally
        {
            foreach (var s in held) s.Dispose();
        }
    }
}
