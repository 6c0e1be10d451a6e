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
    /// Augments a batch [B, C, H, W]; returns a new tensor. The random numbers come from <paramref name="g"/> (seeded
    /// per epoch); the per-image parameters (angle, shift, flip, erased rectangle) are computed on the CPU side and
    /// only whole tensors go to libtorch (no temporary Scalars, see <see cref="SafeOps"/>).
    /// </summary>
    internal Tensor Apply(Tensor x, Generator g)
    {
        int b = (int)x.shape[0], h = (int)x.shape[2], w = (int)x.shape[3];
        var device = x.device;
        float[] Uniform() // one number in [0, 1) per image
        {
            using var r = torch.rand(new long[] { b }, generator: g);
            return r.data<float>().ToArray();
        }
        if (CropPadding > 0 || MaxRotationDegrees > 0 || MaxTranslation > 0)
        {
            float[] uAngle = Uniform(), uTx = Uniform(), uTy = Uniform();
            float[]? uCropX = CropPadding > 0 ? Uniform() : null, uCropY = CropPadding > 0 ? Uniform() : null;
            var theta = new float[b * 6];
            for (int i = 0; i < b; i++)
            {
                double angle = (uAngle[i] * 2 - 1) * (MaxRotationDegrees * Math.PI / 180);
                double tx = (uTx[i] * 2 - 1) * (2 * MaxTranslation), ty = (uTy[i] * 2 - 1) * (2 * MaxTranslation);
                if (uCropX is not null && uCropY is not null)
                {
                    // Whole-pixel shifts in [-p, p], in normalized coordinates (2 / size per pixel).
                    tx += Shift(uCropX[i]) * 2.0 / w;
                    ty += Shift(uCropY[i]) * 2.0 / h;
                }
                double cos = Math.Cos(angle), sin = Math.Sin(angle);
                theta[i * 6 + 0] = (float)cos; theta[i * 6 + 1] = (float)-sin; theta[i * 6 + 2] = (float)tx;
                theta[i * 6 + 3] = (float)sin; theta[i * 6 + 4] = (float)cos; theta[i * 6 + 5] = (float)ty;
            }
            var affine = torch.tensor(theta, new long[] { b, 2, 3 }, device: device);
            var grid = F.affine_grid(affine, new long[] { b, x.shape[1], h, w }, align_corners: false);
            x = F.grid_sample(x, grid, MaxRotationDegrees > 0 || MaxTranslation > 0 ? GridSampleMode.Bilinear : GridSampleMode.Nearest,
                GridSamplePaddingMode.Zeros, align_corners: false);
        }
        if (HorizontalFlip)
        {
            var flip = Uniform().Select(u => u < 0.5f).ToArray();
            var mask = torch.tensor(flip, new long[] { b, 1, 1, 1 }, device: device);
            x = torch.where(mask, x.flip(3), x);
        }
        if (ErasingProbability > 0)
        {
            float[] uApply = Uniform(), uArea = Uniform(), uRatio = Uniform(), uY = Uniform(), uX = Uniform();
            var erase = new bool[b * h * w];
            for (int i = 0; i < b; i++)
            {
                if (uApply[i] >= ErasingProbability) continue;
                // A rectangle of 2–33 % of the image, aspect ratio log-uniform in [0.3, 3.3] (Zhong et al.).
                double area = (uArea[i] * 0.31 + 0.02) * h * w;
                double ratio = Math.Exp(uRatio[i] * (Math.Log(3.3) - Math.Log(0.3)) + Math.Log(0.3));
                int eh = (int)Math.Floor(Math.Clamp(Math.Sqrt(area * ratio), 1, h));
                int ew = (int)Math.Floor(Math.Clamp(Math.Sqrt(area / ratio), 1, w));
                int y0 = Math.Min(h - eh, (int)Math.Floor(uY[i] * (h - eh + 1)));
                int x0 = Math.Min(w - ew, (int)Math.Floor(uX[i] * (w - ew + 1)));
                for (int r = y0; r < y0 + eh; r++)
                    Array.Fill(erase, true, (i * h + r) * w + x0, ew);
            }
            var mask = torch.tensor(erase, new long[] { b, 1, h, w }, device: device);
            x = x.masked_fill(mask, SafeOps.Zero);
        }
        return x;
    }

    /// <summary>A whole-pixel shift in [-CropPadding, CropPadding] from a uniform number in [0, 1).</summary>
    private int Shift(float u) => Math.Min(CropPadding, (int)Math.Floor(u * (2 * CropPadding + 1)) - CropPadding);
}
