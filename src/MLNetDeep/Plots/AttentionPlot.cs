using System.Globalization;
using SkiaSharp;

namespace MLNetDeep;

public static partial class DeepPlots
{
    /// <summary>
    /// Writes a heat map of a Transformer's attention for one prediction as a PNG: rows are the attending positions
    /// (queries), columns the attended ones (keys), each labelled with its token; darker is more attention.
    /// </summary>
    /// <param name="weights">From <see cref="TransformerInspection.GetAttentionWeights"/>.</param>
    /// <param name="pngPath">The file to write (its folder is created).</param>
    /// <param name="layer">0-based layer; negative counts from the end (default -1: the last layer).</param>
    /// <param name="head">0-based head; null (default) draws the mean over the layer's heads.</param>
    /// <param name="title">Title above the map.</param>
    /// <exception cref="ArgumentOutOfRangeException">No such layer or head.</exception>
    public static void SaveAttentionHeatmap(AttentionWeights weights, string pngPath, int layer = -1, int? head = null, string? title = null)
    {
        ArgumentNullException.ThrowIfNull(weights);
        CheckPath(pngPath);
        int l = layer < 0 ? weights.LayerCount + layer : layer;
        if (l < 0 || l >= weights.LayerCount)
            throw new ArgumentOutOfRangeException(nameof(layer), layer, $"The model has {weights.LayerCount} layers.");
        if (head is int h && (h < 0 || h >= weights.HeadCount))
            throw new ArgumentOutOfRangeException(nameof(head), head, $"The model has {weights.HeadCount} heads per layer.");
        var matrix = head is int hh ? weights.GetWeights(l, hh) : weights.GetMeanOverHeads(l);
        int n = weights.Length;
        var names = weights.Positions.Select(s => s.Length > 18 ? s[..17] + "…" : s).ToArray();

        var fonts = Fonts.Instance;
        float nameSize = Math.Clamp(600f / (n + 4) * 0.45f, 8, 14);
        float longest = names.Max(s => MeasureText(s, fonts.Regular, nameSize));
        float cell = Math.Clamp(640f / n, 6, 40);
        float left = 20 + longest + 8, top = 70 + longest * 0.7071f + 10, right = 90, bottom = 30;
        int widthPx = (int)Math.Ceiling(left + cell * n + right), heightPx = (int)Math.Ceiling(top + cell * n + bottom);
        widthPx = Math.Max(widthPx, 420);
        using var surface = SKSurface.Create(new SKImageInfo(widthPx, heightPx, SKColorType.Rgba8888, SKAlphaType.Premul));
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        string heading = title ?? $"Attention, layer {l + 1} of {weights.LayerCount}, " + (head is int hd ? $"head {hd + 1} of {weights.HeadCount}" : $"mean of {weights.HeadCount} heads");
        DrawFitted(canvas, heading, widthPx / 2f, 28, widthPx - 24, fonts.Bold, 18, TextColor);
        DrawFitted(canvas, "rows: attending position (query) · columns: attended position (key)", widthPx / 2f, 50, widthPx - 24, fonts.Regular, 12, AxisColor);
        float max = Math.Max(1e-6f, matrix.Max());
        using (var fill = new SKPaint { Style = SKPaintStyle.Fill, IsAntialias = false })
        {
            for (int q = 0; q < n; q++)
            for (int k = 0; k < n; k++)
            {
                fill.Color = Blues(matrix[q * n + k] / max);
                canvas.DrawRect(SKRect.Create(left + k * cell, top + q * cell, cell, cell), fill);
            }
        }
        using (var frame = new SKPaint { Style = SKPaintStyle.Stroke, Color = AxisColor, StrokeWidth = 1, IsAntialias = true })
            canvas.DrawRect(SKRect.Create(left, top, cell * n, cell * n), frame);
        for (int i = 0; i < n; i++)
        {
            DrawText(canvas, names[i], left - 6, top + (i + 0.5f) * cell + nameSize * 0.35f, fonts.Regular, nameSize, TextColor, SKTextAlign.Right);
            canvas.Save();
            canvas.Translate(left + (i + 0.5f) * cell + nameSize * 0.3f, top - 6);
            canvas.RotateDegrees(-45);
            DrawText(canvas, names[i], 0, 0, fonts.Regular, nameSize, TextColor, SKTextAlign.Left);
            canvas.Restore();
        }
        // Colour bar: weight relative to the largest in the map.
        float barX = left + cell * n + 25, barW = 14, barH = cell * n;
        using (var fill = new SKPaint { Style = SKPaintStyle.Fill })
            for (int k = 0; k < (int)barH; k++)
            {
                fill.Color = Blues(1 - k / barH);
                canvas.DrawRect(SKRect.Create(barX, top + k, barW, 1.5f), fill);
            }
        DrawText(canvas, max.ToString("F2", CultureInfo.InvariantCulture), barX + barW + 4, top + 10, fonts.Regular, 11, AxisColor, SKTextAlign.Left);
        DrawText(canvas, "0", barX + barW + 4, top + barH, fonts.Regular, 11, AxisColor, SKTextAlign.Left);
        WritePng(surface, pngPath);
    }
}
