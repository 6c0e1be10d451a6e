using SkiaSharp;

namespace MLNetDeep;

public static partial class DeepPlots
{
    private static readonly SKColor[] TrainerColors =
    {
        new(0x1f, 0x77, 0xb4), new(0xff, 0x7f, 0x0e), new(0x2c, 0xa0, 0x2c), new(0xd6, 0x27, 0x28), new(0x94, 0x67, 0xbd),
        new(0x8c, 0x56, 0x4b), new(0xe3, 0x77, 0xc2), new(0x7f, 0x7f, 0x7f), new(0xbc, 0xbd, 0x22), new(0x17, 0xbe, 0xcf),
    };

    /// <summary>
    /// Writes an experiment's leaderboard as a PNG: one point per finished trial, the optimised metric against its
    /// training seconds (log scale), a colour per trainer, the best trial circled; pruned, stopped and failed trials are
    /// counted in the subtitle.
    /// </summary>
    /// <param name="result">The experiment's result.</param>
    /// <param name="pngPath">The file to write (its folder is created).</param>
    /// <param name="title">Title above the chart; default "Experiment: metric against training time".</param>
    public static void SaveLeaderboard(ExperimentResult result, string pngPath, string? title = null)
    {
        ArgumentNullException.ThrowIfNull(result);
        CheckPath(pngPath);
        const int width = 1000, height = 560;
        using var surface = SKSurface.Create(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        var fonts = Fonts.Instance;
        DrawFitted(canvas, title ?? $"Experiment: {result.Metric} against training time", width / 2f, 30, width - 24, fonts.Bold, 20, TextColor);
        var finished = result.Trials.Where(t => t.Status == TrialStatus.Finished && double.IsFinite(t.Metric)).ToList();
        var trainers = result.Trials.Select(t => t.Trainer).Distinct().ToList();
        string counts = string.Join(", ", result.Trials.GroupBy(t => t.Status).Select(g => $"{g.Count()} {g.Key.ToString().ToLowerInvariant()}"));
        DrawText(canvas, $"{result.Trials.Count} trials: {counts}", width / 2f, 54, fonts.Regular, 13, AxisColor, SKTextAlign.Center);
        var plot = new SKRect(90, 75, width - 250, height - 60);
        if (finished.Count == 0)
        {
            DrawText(canvas, "No trial finished.", plot.MidX, plot.MidY, fonts.Regular, 15, AxisColor, SKTextAlign.Center);
            WritePng(surface, pngPath);
            return;
        }
        double X0 = Math.Log10(Math.Max(1e-3, finished.Min(t => t.TrainingSeconds))), X1 = Math.Log10(Math.Max(1e-3, finished.Max(t => t.TrainingSeconds)));
        if (X1 - X0 < 0.5) { X0 -= 0.25; X1 += 0.25; }
        else { double xp = (X1 - X0) * 0.05; X0 -= xp; X1 += xp; }
        double y0 = finished.Min(t => t.Metric), y1 = finished.Max(t => t.Metric);
        if (y1 - y0 < 1e-9) { y0 -= 0.01; y1 += 0.01; }
        double pad = (y1 - y0) * 0.08;
        y0 -= pad; y1 += pad;
        float X(double seconds) => (float)(plot.Left + (Math.Log10(Math.Max(1e-3, seconds)) - X0) / (X1 - X0) * plot.Width);
        float Y(double v) => (float)(plot.Bottom - (v - y0) / (y1 - y0) * plot.Height);

        var yTicks = NiceTicks(y0, y1, 6, out int decimals);
        var xTicks = new List<double>();
        for (int e = (int)Math.Floor(X0); e <= (int)Math.Ceiling(X1); e++)
            foreach (var m in new[] { 1.0, 2, 5 })
            {
                double v = m * Math.Pow(10, e);
                if (Math.Log10(v) >= X0 && Math.Log10(v) <= X1) xTicks.Add(v);
            }
        using (var grid = new SKPaint { Color = GridColor, StrokeWidth = 1 })
        {
            foreach (var t in yTicks) canvas.DrawLine(plot.Left, Y(t), plot.Right, Y(t), grid);
            foreach (var t in xTicks) canvas.DrawLine(X(t), plot.Top, X(t), plot.Bottom, grid);
        }
        using (var axis = new SKPaint { Color = AxisColor, StrokeWidth = 1, Style = SKPaintStyle.Stroke })
            canvas.DrawRect(plot, axis);
        foreach (var t in yTicks) DrawText(canvas, Format(t, decimals), plot.Left - 7, Y(t) + 4, fonts.Regular, 12, TextColor, SKTextAlign.Right);
        foreach (var t in xTicks) DrawText(canvas, t >= 1 ? Format(t, 0) : t.ToString("G2", System.Globalization.CultureInfo.InvariantCulture), X(t), plot.Bottom + 18, fonts.Regular, 12, TextColor, SKTextAlign.Center);
        DrawText(canvas, "training seconds (log scale)", plot.MidX, plot.Bottom + 40, fonts.Regular, 13, TextColor, SKTextAlign.Center);
        canvas.Save();
        canvas.Translate(24, plot.MidY);
        canvas.RotateDegrees(-90);
        DrawText(canvas, $"{result.Metric} (validation)", 0, 0, fonts.Regular, 13, TextColor, SKTextAlign.Center);
        canvas.Restore();

        foreach (var t in finished)
        {
            using var dot = new SKPaint { Color = TrainerColors[trainers.IndexOf(t.Trainer) % TrainerColors.Length], Style = SKPaintStyle.Fill, IsAntialias = true };
            canvas.DrawCircle(X(t.TrainingSeconds), Y(t.Metric), 5, dot);
        }
        if (result.BestTrial is { } best)
        {
            using var ring = new SKPaint { Color = TextColor, StrokeWidth = 1.5f, Style = SKPaintStyle.Stroke, IsAntialias = true };
            canvas.DrawCircle(X(best.TrainingSeconds), Y(best.Metric), 9, ring);
        }
        for (int k = 0; k < trainers.Count; k++)
        {
            float y = plot.Top + 10 + 22 * k;
            using var dot = new SKPaint { Color = TrainerColors[k % TrainerColors.Length], Style = SKPaintStyle.Fill, IsAntialias = true };
            canvas.DrawCircle(plot.Right + 22, y, 5, dot);
            int n = result.Trials.Count(t => t.Trainer == trainers[k]);
            string name = trainers[k].Length > 26 ? trainers[k][..25] + "…" : trainers[k];
            DrawText(canvas, $"{name} ({n})", plot.Right + 32, y + 4.5f, fonts.Regular, 12.5f, TextColor, SKTextAlign.Left);
        }
        WritePng(surface, pngPath);
    }
}
