using System.Globalization;
using Microsoft.ML.Data;
using SkiaSharp;

namespace MLNetDeep;

/// <summary>
/// Pictures of a training and of its result, written as PNG files: the training curves of a trained model's
/// <see cref="DeepModelParameters.History"/> (or of the figures streamed to <see cref="DeepTrainerOptions.EpochCallback"/>)
/// and the confusion matrix of ML.NET's multiclass or binary metrics. Setting
/// <see cref="DeepTrainerOptions.PlotDirectory"/> makes every training write its curves itself.
/// </summary>
/// <remarks>
/// Drawn with SkiaSharp 2.88 (the version Microsoft.ML.ImageAnalytics 5.0.1 and TorchSharp use) and the system's
/// fonts (DejaVu Sans, Liberation Sans, Noto Sans, Arial, ... whichever is installed first).
/// </remarks>
public static partial class DeepPlots
{
    /// <summary>Width of the training-curves image in pixels.</summary>
    public const int TrainingCurvesWidth = 1000;

    /// <summary>Height of the training-curves image in pixels.</summary>
    public const int TrainingCurvesHeight = 450;

    /// <summary>Width and height of the confusion-matrix image for up to 12 classes (larger for more classes, up to 2400).</summary>
    public const int ConfusionMatrixSize = 800;

    private static readonly SKColor TrainColor = new(0x1f, 0x77, 0xb4);
    private static readonly SKColor ValidationColor = new(0xff, 0x7f, 0x0e);
    private static readonly SKColor MetricColor = new(0x2c, 0xa0, 0x2c);
    private static readonly SKColor TextColor = new(0x22, 0x22, 0x22);
    private static readonly SKColor GridColor = new(0xe4, 0xe4, 0xe4);
    private static readonly SKColor AxisColor = new(0x66, 0x66, 0x66);

    /// <summary>
    /// Writes the training curves as a <see cref="TrainingCurvesWidth"/>×<see cref="TrainingCurvesHeight"/> PNG with
    /// two panels: the loss per epoch (training and, when there is validation data, validation) and the validation
    /// metric per epoch (accuracy for classification, R-squared for regression, named after
    /// <see cref="EpochMetrics.MetricName"/>), with the best epoch marked.
    /// </summary>
    /// <param name="history">The epochs' figures, e.g. <c>model.Model.History</c>; at least one epoch.</param>
    /// <param name="pngPath">The file to write (overwritten); its directory is created when missing.</param>
    /// <param name="title">Title above the panels; default "Training curves".</param>
    /// <exception cref="ArgumentException">The history is empty or the path is empty.</exception>
    public static void SaveTrainingCurves(IReadOnlyList<EpochMetrics> history, string pngPath, string? title = null)
    {
        ArgumentNullException.ThrowIfNull(history);
        if (history.Count == 0) throw new ArgumentException("The training history is empty: there is no epoch to plot.", nameof(history));
        if (history.Any(h => h is null)) throw new ArgumentException("The training history contains null.", nameof(history));
        CheckPath(pngPath);

        int width = TrainingCurvesWidth, height = TrainingCurvesHeight;
        using var surface = SKSurface.Create(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        var fonts = Fonts.Instance;

        string metricName = history.Select(h => h.MetricName).FirstOrDefault(n => !string.IsNullOrWhiteSpace(n)) ?? "metric";
        DrawFitted(canvas, title ?? "Training curves", width / 2f, 30, width - 24, fonts.Bold, 20, TextColor);

        var epochs = history.Select(h => (double)h.Epoch).ToArray();
        var loss = new List<Series>
        {
            new("training loss", TrainColor, history.Select(h => (double?)h.TrainLoss).ToArray()),
        };
        if (history.Any(h => h.ValidationLoss is not null))
            loss.Add(new Series("validation loss", ValidationColor, history.Select(h => h.ValidationLoss).ToArray()));
        var lossPanel = SKRect.Create(0, 45, width / 2f, height - 45);
        DrawLinePanel(canvas, fonts, lossPanel, "Loss", "epoch", "loss", epochs, loss, null);

        var metricPanel = SKRect.Create(width / 2f, 45, width / 2f, height - 45);
        var metric = history.Select(h => h.ValidationMetric).ToArray();
        if (metric.Any(IsFinite))
        {
            int best = -1; // accuracy and R-squared: higher is better
            for (int i = 0; i < metric.Length; i++)
                if (IsFinite(metric[i]) && (best < 0 || metric[i] > metric[best])) best = i;
            string panelTitle = $"Validation {metricName}: best {Format(metric[best]!.Value, 4)} (epoch {history[best].Epoch})";
            DrawLinePanel(canvas, fonts, metricPanel, panelTitle, "epoch", metricName,
                epochs, new[] { new Series("validation " + metricName, MetricColor, metric) }, best);
        }
        else
        {
            DrawText(canvas, $"Validation {metricName}", metricPanel.MidX, metricPanel.Top + 22, fonts.Bold, 15, TextColor, SKTextAlign.Center);
            DrawText(canvas, "No validation data: set ValidationFraction", metricPanel.MidX, metricPanel.MidY - 10, fonts.Regular, 14, AxisColor, SKTextAlign.Center);
            DrawText(canvas, "or ValidationData to follow the " + metricName + " per epoch.", metricPanel.MidX, metricPanel.MidY + 12, fonts.Regular, 14, AxisColor, SKTextAlign.Center);
        }
        WritePng(surface, pngPath);
    }

    /// <summary>
    /// Writes a confusion matrix as a PNG heatmap: one row per true class, one column per predicted class, the count
    /// written in every cell, the cell's colour its share of the true class's rows on a square-root scale (so that
    /// errors of a few per cent stand out, alike for large and small classes), the class names on both axes and the
    /// overall accuracy in the subtitle.
    /// The image is <see cref="ConfusionMatrixSize"/> pixels square for up to 12 classes, larger for more.
    /// </summary>
    /// <param name="matrix">ML.NET's confusion matrix, e.g. <c>mlContext.MulticlassClassification.Evaluate(...).ConfusionMatrix</c>.</param>
    /// <param name="pngPath">The file to write (overwritten); its directory is created when missing.</param>
    /// <param name="classNames">
    /// Names of the classes in the matrix's order (key order: the order of the label's key values). Default: the names
    /// the evaluator recorded, when it had them (the score column's slot names), else 0, 1, ...
    /// </param>
    /// <param name="title">Title above the matrix; default "Confusion matrix".</param>
    /// <exception cref="ArgumentException">The path is empty, or the number of names is not the number of classes.</exception>
    public static void SaveConfusionMatrix(ConfusionMatrix matrix, string pngPath, IReadOnlyList<string>? classNames = null, string? title = null)
    {
        ArgumentNullException.ThrowIfNull(matrix);
        CheckPath(pngPath);
        int n = matrix.NumberOfClasses;
        if (n <= 0) throw new ArgumentException("The confusion matrix has no classes.", nameof(matrix));
        if (classNames is not null && classNames.Count != n)
            throw new ArgumentException($"{classNames.Count} class names were given for a confusion matrix of {n} classes.", nameof(classNames));
        var names = classNames?.Select(s => s ?? "").ToArray() ?? RecordedNames(matrix) ?? Enumerable.Range(0, n).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToArray();
        var counts = matrix.Counts;
        if (counts.Count != n || counts.Any(r => r.Count != n))
            throw new ArgumentException($"The confusion matrix's counts are not {n}×{n}.", nameof(matrix));

        int size = n <= 12 ? ConfusionMatrixSize : Math.Min(2400, ConfusionMatrixSize + 50 * (n - 12));
        using var surface = SKSurface.Create(new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Premul));
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        var fonts = Fonts.Instance;

        double total = 0, correct = 0;
        var rowSums = new double[n];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++) rowSums[i] += counts[i][j];
            total += rowSums[i];
            correct += counts[i][i];
        }

        DrawFitted(canvas, title ?? "Confusion matrix", size / 2f, 32, size - 24, fonts.Bold, 20, TextColor);
        string subtitle = $"{Format(total, 0)} rows, accuracy {(total > 0 ? Format(correct / total, 4) : "n/a")}   ·   rows: true class, columns: predicted class";
        DrawFitted(canvas, subtitle, size / 2f, 56, size - 24, fonts.Regular, 13, AxisColor);

        // Name labels: shrink the font until the longest name takes at most a quarter of the image.
        float nameSize = Math.Clamp(size / (float)(n + 6) * 0.3f, 9, 14);
        float longest;
        while ((longest = names.Max(s => MeasureText(s, fonts.Regular, nameSize))) > size * 0.22f && nameSize > 7) nameSize -= 0.5f;
        const float diagonal = 0.7071f;
        float left = 40 + longest + 10;                    // y-axis title + names
        float bottom = 40 + longest * diagonal + nameSize + 10; // x-axis title + names at 45°
        float top = 75, right = 90;                        // title, colour bar
        float cell = Math.Min((size - left - right) / n, (size - top - bottom) / n);
        float gridW = cell * n;
        float x0 = left + (size - left - right - gridW) / 2, y0 = top;

        float countSize = Math.Clamp(cell * 0.26f, 7, 22);
        while (countSize > 7 && MeasureText(Format(counts.Max(r => r.Max()), 0), fonts.Bold, countSize) > cell * 0.9f) countSize -= 0.5f;
        bool writeCounts = cell >= 14;

        using (var fill = new SKPaint { Style = SKPaintStyle.Fill, IsAntialias = false })
        using (var border = new SKPaint { Style = SKPaintStyle.Stroke, Color = SKColors.White, StrokeWidth = 1, IsAntialias = true })
        {
            for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                double share = rowSums[i] > 0 ? counts[i][j] / rowSums[i] : 0;
                var rect = SKRect.Create(x0 + j * cell, y0 + i * cell, cell, cell);
                fill.Color = Blues(Math.Sqrt(share)); // square-root scale: errors of a few per cent still show
                canvas.DrawRect(rect, fill);
                canvas.DrawRect(rect, border);
                if (writeCounts)
                {
                    var color = share > 0.3 ? SKColors.White : counts[i][j] == 0 ? new SKColor(0xb0, 0xb0, 0xb0) : TextColor;
                    DrawText(canvas, Format(counts[i][j], 0), rect.MidX, rect.MidY + countSize * 0.36f, i == j ? fonts.Bold : fonts.Regular, countSize, color, SKTextAlign.Center);
                }
            }
        }
        using (var frame = new SKPaint { Style = SKPaintStyle.Stroke, Color = AxisColor, StrokeWidth = 1, IsAntialias = true })
            canvas.DrawRect(SKRect.Create(x0, y0, gridW, gridW), frame);

        for (int i = 0; i < n; i++)
        {
            // True classes on the left, right-aligned; predicted classes below, at 45°.
            DrawText(canvas, names[i], x0 - 8, y0 + (i + 0.5f) * cell + nameSize * 0.35f, fonts.Regular, nameSize, TextColor, SKTextAlign.Right);
            canvas.Save();
            canvas.Translate(x0 + (i + 0.5f) * cell + nameSize * 0.3f, y0 + gridW + 8);
            canvas.RotateDegrees(-45);
            DrawText(canvas, names[i], 0, 0, fonts.Regular, nameSize, TextColor, SKTextAlign.Right);
            canvas.Restore();
        }
        DrawText(canvas, "predicted class", x0 + gridW / 2, Math.Min(size - 14, y0 + gridW + 8 + longest * diagonal + nameSize + 26), fonts.Bold, 15, TextColor, SKTextAlign.Center);
        canvas.Save();
        canvas.Translate(22, y0 + gridW / 2);
        canvas.RotateDegrees(-90);
        DrawText(canvas, "true class", 0, 0, fonts.Bold, 15, TextColor, SKTextAlign.Center);
        canvas.Restore();

        // Colour bar: share of the true class.
        float barX = x0 + gridW + 25, barW = 16, barTop = y0, barH = gridW;
        using (var fill = new SKPaint { Style = SKPaintStyle.Fill })
        {
            for (int k = 0; k < (int)barH; k++)
            {
                fill.Color = Blues(1 - k / barH);
                canvas.DrawRect(SKRect.Create(barX, barTop + k, barW, 1.5f), fill);
            }
        }
        using (var frame = new SKPaint { Style = SKPaintStyle.Stroke, Color = AxisColor, StrokeWidth = 1 })
            canvas.DrawRect(SKRect.Create(barX, barTop, barW, barH), frame);
        using (var tick = new SKPaint { Color = AxisColor, StrokeWidth = 1 })
        {
            foreach (int percent in new[] { 0, 2, 10, 25, 50, 100 })
            {
                float y = barTop + barH * (1 - (float)Math.Sqrt(percent / 100.0));
                canvas.DrawLine(barX + barW, y, barX + barW + 3, y, tick);
                DrawText(canvas, $"{percent}%", barX + barW + 5, y + 4, fonts.Regular, 11, AxisColor, SKTextAlign.Left);
            }
        }
        canvas.Save();
        canvas.Translate(barX - 6, barTop + barH / 2);
        canvas.RotateDegrees(-90);
        DrawText(canvas, "share of the true class (square-root scale)", 0, 0, fonts.Regular, 11, AxisColor, SKTextAlign.Center);
        canvas.Restore();

        WritePng(surface, pngPath);
    }

    // ---------------------------------------------------------------------------------------------------------

    private sealed record Series(string Name, SKColor Color, double?[] Values);

    private static bool IsFinite(double? v) => v is double d && double.IsFinite(d);

    /// <summary>One line chart with axes, nice ticks, grid, legend; <paramref name="marked"/> circles that point of the first series.</summary>
    private static void DrawLinePanel(SKCanvas canvas, Fonts fonts, SKRect panel, string title, string xLabel, string yLabel,
        double[] xs, IReadOnlyList<Series> series, int? marked)
    {
        DrawFitted(canvas, title, panel.MidX, panel.Top + 22, panel.Width - 20, fonts.Bold, 15, TextColor);
        var values = series.SelectMany(s => s.Values).Where(IsFinite).Select(v => v!.Value).ToList();
        if (values.Count == 0) values.Add(0);
        double yMin = values.Min(), yMax = values.Max();
        if (yMax - yMin < 1e-12 * Math.Max(1, Math.Abs(yMax))) { double d = Math.Max(Math.Abs(yMax) * 0.05, 1e-3); yMin -= d; yMax += d; }
        double pad = (yMax - yMin) * 0.08;
        yMin -= pad; yMax += pad;
        var yTicks = NiceTicks(yMin, yMax, 6, out int yDecimals);
        double xMin = xs.Min(), xMax = xs.Max();
        if (xMax - xMin < 1) { xMin -= 0.5; xMax += 0.5; }
        else { double xp = (xMax - xMin) * 0.04; xMin -= xp; xMax += xp; }
        var xTicks = NiceTicks(xs.Min(), xs.Max(), 8, out _, integers: true).Where(t => t >= xs.Min() - 1e-9 && t <= xs.Max() + 1e-9).ToList();

        float tickSize = 12;
        float labelWidth = yTicks.Max(t => MeasureText(Format(t, yDecimals), fonts.Regular, tickSize));
        var plot = new SKRect(panel.Left + 30 + labelWidth + 8, panel.Top + 40, panel.Right - 22, panel.Bottom - 48);
        float X(double x) => (float)(plot.Left + (x - xMin) / (xMax - xMin) * plot.Width);
        float Y(double y) => (float)(plot.Bottom - (y - yMin) / (yMax - yMin) * plot.Height);

        using (var grid = new SKPaint { Color = GridColor, StrokeWidth = 1, IsAntialias = false })
        {
            foreach (var t in yTicks) canvas.DrawLine(plot.Left, Y(t), plot.Right, Y(t), grid);
            foreach (var t in xTicks) canvas.DrawLine(X(t), plot.Top, X(t), plot.Bottom, grid);
        }
        using (var axis = new SKPaint { Color = AxisColor, StrokeWidth = 1, Style = SKPaintStyle.Stroke, IsAntialias = false })
        {
            canvas.DrawRect(plot, axis);
            foreach (var t in yTicks) canvas.DrawLine(plot.Left - 4, Y(t), plot.Left, Y(t), axis);
            foreach (var t in xTicks) canvas.DrawLine(X(t), plot.Bottom, X(t), plot.Bottom + 4, axis);
        }
        foreach (var t in yTicks) DrawText(canvas, Format(t, yDecimals), plot.Left - 7, Y(t) + 4, fonts.Regular, tickSize, TextColor, SKTextAlign.Right);
        foreach (var t in xTicks) DrawText(canvas, Format(t, 0), X(t), plot.Bottom + 18, fonts.Regular, tickSize, TextColor, SKTextAlign.Center);
        DrawText(canvas, xLabel, plot.MidX, plot.Bottom + 38, fonts.Regular, 13, TextColor, SKTextAlign.Center);
        canvas.Save();
        canvas.Translate(panel.Left + 16, plot.MidY);
        canvas.RotateDegrees(-90);
        DrawText(canvas, yLabel, 0, 0, fonts.Regular, 13, TextColor, SKTextAlign.Center);
        canvas.Restore();

        bool markers = xs.Length <= 60;
        canvas.Save();
        canvas.ClipRect(plot);
        foreach (var s in series)
        {
            using var line = new SKPaint { Color = s.Color, StrokeWidth = 2.2f, Style = SKPaintStyle.Stroke, IsAntialias = true, StrokeJoin = SKStrokeJoin.Round };
            using var dot = new SKPaint { Color = s.Color, Style = SKPaintStyle.Fill, IsAntialias = true };
            using var path = new SKPath();
            bool open = false;
            for (int i = 0; i < xs.Length; i++)
            {
                if (!IsFinite(s.Values[i])) { open = false; continue; }
                var p = new SKPoint(X(xs[i]), Y(s.Values[i]!.Value));
                if (open) path.LineTo(p); else path.MoveTo(p);
                open = true;
            }
            canvas.DrawPath(path, line);
            if (markers)
                for (int i = 0; i < xs.Length; i++)
                    if (IsFinite(s.Values[i])) canvas.DrawCircle(X(xs[i]), Y(s.Values[i]!.Value), 3.5f, dot);
        }
        if (marked is int m && IsFinite(series[0].Values[m]))
        {
            using var ring = new SKPaint { Color = TextColor, StrokeWidth = 1.5f, Style = SKPaintStyle.Stroke, IsAntialias = true };
            canvas.DrawCircle(X(xs[m]), Y(series[0].Values[m]!.Value), 7, ring);
        }
        canvas.Restore();

        // Legend in the corner with the fewest points under it.
        float legendFont = 12.5f, row = 19;
        float legendW = 40 + series.Max(s => MeasureText(s.Name, fonts.Regular, legendFont)) + 10, legendH = 8 + row * series.Count;
        var corners = new[]
        {
            SKRect.Create(plot.Right - legendW - 8, plot.Top + 8, legendW, legendH),
            SKRect.Create(plot.Right - legendW - 8, plot.Bottom - legendH - 8, legendW, legendH),
            SKRect.Create(plot.Left + 8, plot.Top + 8, legendW, legendH),
            SKRect.Create(plot.Left + 8, plot.Bottom - legendH - 8, legendW, legendH),
        };
        var points = series.SelectMany(s => xs.Select((x, i) => (x, v: s.Values[i])).Where(p => IsFinite(p.v)).Select(p => new SKPoint(X(p.x), Y(p.v!.Value)))).ToList();
        var box = corners.OrderBy(c => points.Count(p => SKRect.Inflate(c, 6, 6).Contains(p))).First();
        using (var bg = new SKPaint { Color = new SKColor(255, 255, 255, 235), Style = SKPaintStyle.Fill })
        using (var frame = new SKPaint { Color = new SKColor(0xbb, 0xbb, 0xbb), Style = SKPaintStyle.Stroke, StrokeWidth = 1 })
        {
            canvas.DrawRect(box, bg);
            canvas.DrawRect(box, frame);
        }
        for (int k = 0; k < series.Count; k++)
        {
            float y = box.Top + 4 + row * (k + 0.5f);
            using var line = new SKPaint { Color = series[k].Color, StrokeWidth = 2.2f, IsAntialias = true };
            canvas.DrawLine(box.Left + 8, y, box.Left + 32, y, line);
            canvas.DrawCircle(box.Left + 20, y, 3.5f, line);
            DrawText(canvas, series[k].Name, box.Left + 40, y + 4.5f, fonts.Regular, legendFont, TextColor, SKTextAlign.Left);
        }
    }

    /// <summary>About <paramref name="count"/> round tick values covering [min, max].</summary>
    private static List<double> NiceTicks(double min, double max, int count, out int decimals, bool integers = false)
    {
        double range = Math.Max(max - min, 1e-12);
        double raw = range / Math.Max(1, count - 1);
        double magnitude = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double[] steps = { 1, 2, 2.5, 5, 10 };
        double step = steps.Select(s => s * magnitude).First(s => s >= raw * 0.999);
        if (integers) step = Math.Max(1, Math.Round(step));
        decimals = integers ? 0 : Math.Max(0, -(int)Math.Floor(Math.Log10(step) + 1e-9)) + (Math.Abs(step / magnitude - 2.5) < 1e-9 && step < 10 ? 1 : 0);
        decimals = Math.Min(decimals, 10);
        var ticks = new List<double>();
        for (double t = Math.Ceiling(min / step - 1e-9) * step; t <= max + step * 1e-9; t += step)
            ticks.Add(Math.Round(t, decimals + 2));
        if (ticks.Count == 0) ticks.Add(Math.Round((min + max) / 2, decimals + 2));
        return ticks;
    }

    /// <summary>Blue sequential colour scale (white to dark blue) for v in [0, 1].</summary>
    private static SKColor Blues(double v)
    {
        (double At, byte R, byte G, byte B)[] stops =
        {
            (0.00, 0xf7, 0xfb, 0xff), (0.10, 0xde, 0xeb, 0xf7), (0.25, 0xc6, 0xdb, 0xef), (0.45, 0x6b, 0xae, 0xd6),
            (0.70, 0x21, 0x71, 0xb5), (1.00, 0x08, 0x30, 0x6b),
        };
        v = double.IsFinite(v) ? Math.Clamp(v, 0, 1) : 0;
        for (int k = 1; k < stops.Length; k++)
        {
            if (v > stops[k].At) continue;
            var (a, b) = (stops[k - 1], stops[k]);
            double f = (v - a.At) / (b.At - a.At);
            byte Mix(byte p, byte q) => (byte)Math.Round(p + (q - p) * f);
            return new SKColor(Mix(a.R, b.R), Mix(a.G, b.G), Mix(a.B, b.B));
        }
        return new SKColor(stops[^1].R, stops[^1].G, stops[^1].B);
    }

    /// <summary>The class names the evaluator recorded in the matrix (internal to ML.NET), when they are names.</summary>
    private static string[]? RecordedNames(ConfusionMatrix m)
    {
        try
        {
            var recorded = m.PredictedClassesIndicators;
            if (recorded is null || recorded.Count != m.NumberOfClasses) return null;
            var names = recorded.Select(r => r.ToString()).ToArray();
            return names.All(string.IsNullOrEmpty) ? null : names;
        }
        catch (MemberAccessException)
        {
            return null;
        }
    }

    private static string Format(double v, int decimals)
    {
        v = Math.Round(v, Math.Clamp(decimals, 0, 15));
        if (v == 0) v = 0; // no "-0.0"
        return v.ToString("F" + decimals.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
    }

    private static void CheckPath(string pngPath)
    {
        if (pngPath is null) throw new ArgumentNullException(nameof(pngPath), "The PNG path is null: give the file to write, e.g. \"plots/training-curves.png\".");
        if (string.IsNullOrWhiteSpace(pngPath)) throw new ArgumentException("The PNG path is empty: give the file to write, e.g. \"plots/training-curves.png\".", nameof(pngPath));
    }

    private static void WritePng(SKSurface surface, string pngPath)
    {
        string full = Path.GetFullPath(pngPath);
        if (Path.GetDirectoryName(full) is string dir) Directory.CreateDirectory(dir);
        using var image = surface.Snapshot();
        using var data = image.Encode(SKEncodedImageFormat.Png, 100)
            ?? throw new InvalidOperationException("SkiaSharp could not encode the plot as PNG.");
        string temp = full + ".tmp";
        using (var file = File.Create(temp)) data.SaveTo(file);
        File.Move(temp, full, overwrite: true);
    }

    private static float MeasureText(string text, SKTypeface typeface, float size)
    {
        using var paint = new SKPaint { Typeface = typeface, TextSize = size, IsAntialias = true };
        return paint.MeasureText(text);
    }

    /// <summary>Centred text, made smaller (down to 60 %) and then shortened with an ellipsis until it fits <paramref name="maxWidth"/>.</summary>
    private static void DrawFitted(SKCanvas canvas, string text, float x, float y, float maxWidth, SKTypeface typeface, float size, SKColor color)
    {
        float s = size;
        while (s > size * 0.6f && MeasureText(text, typeface, s) > maxWidth) s -= 0.5f;
        if (MeasureText(text, typeface, s) > maxWidth)
        {
            int keep = text.Length;
            while (keep > 1 && MeasureText(text[..keep] + "…", typeface, s) > maxWidth) keep--;
            text = text[..keep] + "…";
        }
        DrawText(canvas, text, x, y, typeface, s, color, SKTextAlign.Center);
    }

    private static void DrawText(SKCanvas canvas, string text, float x, float y, SKTypeface typeface, float size, SKColor color, SKTextAlign align)
    {
        using var paint = new SKPaint { Typeface = typeface, TextSize = size, Color = color, IsAntialias = true, SubpixelText = true, TextAlign = align };
        canvas.DrawText(text, x, y, paint);
    }

    /// <summary>A regular and a bold typeface from the installed fonts, looked up once per process (typefaces are immutable and shared).</summary>
    private sealed class Fonts
    {
        private static readonly Lazy<Fonts> Shared = new(() => new Fonts());
        private static readonly string[] Families = { "DejaVu Sans", "Liberation Sans", "Noto Sans", "Arial", "Helvetica", "Segoe UI", "Roboto", "FreeSans" };

        public static Fonts Instance => Shared.Value;
        public SKTypeface Regular { get; }
        public SKTypeface Bold { get; }

        private Fonts()
        {
            Regular = Find(SKFontStyle.Normal);
            Bold = Find(SKFontStyle.Bold);
        }

        private static SKTypeface Find(SKFontStyle style)
        {
            foreach (var family in Families)
            {
                var t = SKTypeface.FromFamilyName(family, style);
                if (t is not null && t.GlyphCount > 0 && string.Equals(t.FamilyName, family, StringComparison.OrdinalIgnoreCase)) return t;
            }
            var fallback = SKTypeface.FromFamilyName(null, style);
            if (fallback is not null && fallback.GlyphCount > 0) return fallback;
            // Font managers without a font list: load a font file directly.
            foreach (var dir in new[] { "/usr/share/fonts", "/usr/local/share/fonts", "/System/Library/Fonts", "/Library/Fonts",
                         Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.Windows), "Fonts") })
            {
                if (string.IsNullOrEmpty(dir) || !Directory.Exists(dir)) continue;
                List<string> files;
                try { files = Directory.EnumerateFiles(dir, "*.ttf", SearchOption.AllDirectories).OrderBy(f => f.Contains("Bold", StringComparison.OrdinalIgnoreCase) == (style.Weight >= 600) ? 0 : 1).ToList(); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
                foreach (var file in files)
                {
                    var t = SKTypeface.FromFile(file);
                    if (t is not null && t.GlyphCount > 0) return t;
                    t?.Dispose();
                }
            }
            return SKTypeface.Default; // no font installed: the pictures have no text
        }
    }
}
