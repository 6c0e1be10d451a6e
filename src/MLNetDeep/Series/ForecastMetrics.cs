using System.Globalization;
using System.Text;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNetDeep;

/// <summary>
/// Accuracy of multi-step forecasts, per horizon step and averaged over the steps, in series units. Label slots
/// that are NaN (past the end of the series in the rolling-origin test) are skipped.
/// </summary>
/// <remarks>
/// Per horizon step h, over the windows whose label at h is not NaN: MAE = mean |y - f|, RMSE = sqrt(mean (y - f)²),
/// sMAPE = mean 200 |y - f| / (|y| + |f|) in percent (a term with y = f = 0 counts 0), MASE = MAE / <see cref="MaseScale"/>.
/// The headline figures (<see cref="MeanAbsoluteError"/>, ...) are the means over the horizon steps of the per-step
/// figures, as R's <c>mean(colMeans(err, na.rm = TRUE))</c>; steps without any label are left out of the means.
/// </remarks>
public sealed class ForecastMetrics
{
    internal ForecastMetrics(string name, double maseScale, long windows, long[] counts, double[] mae, double[] rmse, double[] smape)
    {
        Name = name;
        MaseScale = maseScale;
        WindowCount = windows;
        CountByHorizon = counts;
        MeanAbsoluteErrorByHorizon = mae;
        RootMeanSquaredErrorByHorizon = rmse;
        SymmetricMeanAbsolutePercentageErrorByHorizon = smape;
        MeanAbsoluteScaledErrorByHorizon = mae.Select(m => m / maseScale).ToArray();
        MeanAbsoluteError = MeanOverSteps(mae, counts);
        RootMeanSquaredError = MeanOverSteps(rmse, counts);
        SymmetricMeanAbsolutePercentageError = MeanOverSteps(smape, counts);
        MeanAbsoluteScaledError = MeanAbsoluteError / maseScale;
    }

    /// <summary>What was evaluated: "model", "naive", "seasonal naive (period 11)", ...</summary>
    public string Name { get; }

    /// <summary>Number of horizon steps (H).</summary>
    public int Horizon => CountByHorizon.Count;

    /// <summary>Number of windows (rows) evaluated.</summary>
    public long WindowCount { get; }

    /// <summary>Number of labels (non-NaN) evaluated at each horizon step.</summary>
    public IReadOnlyList<long> CountByHorizon { get; }

    /// <summary>
    /// The denominator of MASE: the in-sample one-step naive MAE of the training part, <c>mean(|diff(train)|)</c>
    /// (NaN when unknown, which makes MASE NaN).
    /// </summary>
    public double MaseScale { get; }

    /// <summary>Mean absolute error at each horizon step (index 0 is one step ahead).</summary>
    public IReadOnlyList<double> MeanAbsoluteErrorByHorizon { get; }

    /// <summary>Root mean squared error at each horizon step.</summary>
    public IReadOnlyList<double> RootMeanSquaredErrorByHorizon { get; }

    /// <summary>Symmetric mean absolute percentage error (0 to 200, percent) at each horizon step.</summary>
    public IReadOnlyList<double> SymmetricMeanAbsolutePercentageErrorByHorizon { get; }

    /// <summary>Mean absolute scaled error (MAE / <see cref="MaseScale"/>) at each horizon step.</summary>
    public IReadOnlyList<double> MeanAbsoluteScaledErrorByHorizon { get; }

    /// <summary>Mean over the horizon steps of <see cref="MeanAbsoluteErrorByHorizon"/>.</summary>
    public double MeanAbsoluteError { get; }

    /// <summary>Mean over the horizon steps of <see cref="RootMeanSquaredErrorByHorizon"/>.</summary>
    public double RootMeanSquaredError { get; }

    /// <summary>Mean over the horizon steps of <see cref="SymmetricMeanAbsolutePercentageErrorByHorizon"/>.</summary>
    public double SymmetricMeanAbsolutePercentageError { get; }

    /// <summary><see cref="MeanAbsoluteError"/> / <see cref="MaseScale"/> (the mean over the steps of the per-step MASE).</summary>
    public double MeanAbsoluteScaledError { get; }

    /// <summary>A small table: a row per metric (MAE, RMSE, sMAPE, MASE, labels), a column per horizon step and their mean.</summary>
    public override string ToString()
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.Append(ci, $"{Name}: {WindowCount} windows, MASE scale {MaseScale:F3}").AppendLine();
        sb.Append("metric ");
        for (int h = 1; h <= Horizon; h++) sb.Append(ci, $"{"h" + h,9}");
        sb.Append(ci, $"{"mean",9}").AppendLine();
        void Row(string name, IReadOnlyList<double> values, double mean, string format)
        {
            sb.Append(ci, $"{name,-7}");
            foreach (var v in values) sb.Append(v.ToString(format, ci).PadLeft(9));
            sb.Append(mean.ToString(format, ci).PadLeft(9)).AppendLine();
        }
        Row("MAE", MeanAbsoluteErrorByHorizon, MeanAbsoluteError, "F2");
        Row("RMSE", RootMeanSquaredErrorByHorizon, RootMeanSquaredError, "F2");
        Row("sMAPE", SymmetricMeanAbsolutePercentageErrorByHorizon, SymmetricMeanAbsolutePercentageError, "F2");
        Row("MASE", MeanAbsoluteScaledErrorByHorizon, MeanAbsoluteScaledError, "F3");
        sb.Append("n      ");
        foreach (var n in CountByHorizon) sb.Append(n.ToString(ci).PadLeft(9));
        return sb.ToString();
    }

    /// <summary>
    /// Several results side by side, one row each: MAE per horizon step, mean MAE, mean RMSE, mean sMAPE and mean MASE
    /// (like the table of the R peers).
    /// </summary>
    public static string ToTable(params ForecastMetrics[] results)
    {
        ArgumentNullException.ThrowIfNull(results);
        var ci = CultureInfo.InvariantCulture;
        int width = Math.Max(5, results.Select(r => r.Name.Length).DefaultIfEmpty(5).Max());
        int horizon = results.Select(r => r.Horizon).DefaultIfEmpty(0).Max();
        var sb = new StringBuilder();
        sb.Append("model".PadRight(width));
        for (int h = 1; h <= horizon; h++) sb.Append(ci, $"{"MAE h" + h,9}");
        sb.Append(ci, $"{"MAE",9}{"RMSE",9}{"sMAPE",9}{"MASE",9}").AppendLine();
        foreach (var r in results)
        {
            sb.Append(r.Name.PadRight(width));
            for (int h = 0; h < horizon; h++)
                sb.Append((h < r.Horizon ? r.MeanAbsoluteErrorByHorizon[h].ToString("F2", ci) : "").PadLeft(9));
            sb.Append(r.MeanAbsoluteError.ToString("F2", ci).PadLeft(9))
              .Append(r.RootMeanSquaredError.ToString("F2", ci).PadLeft(9))
              .Append(r.SymmetricMeanAbsolutePercentageError.ToString("F2", ci).PadLeft(9))
              .Append(r.MeanAbsoluteScaledError.ToString("F3", ci).PadLeft(9)).AppendLine();
        }
        return sb.ToString();
    }

    private static double MeanOverSteps(double[] values, long[] counts)
    {
        double sum = 0;
        int steps = 0;
        for (int h = 0; h < values.Length; h++)
            if (counts[h] > 0) { sum += values[h]; steps++; }
        return steps > 0 ? sum / steps : double.NaN;
    }

    /// <summary>Sums of errors per horizon step; NaN labels are skipped.</summary>
    internal sealed class Accumulator
    {
        private readonly long[] _counts;
        private readonly double[] _abs, _squared, _smape;
        private long _windows;

        public Accumulator(int horizon)
        {
            _counts = new long[horizon];
            _abs = new double[horizon];
            _squared = new double[horizon];
            _smape = new double[horizon];
        }

        /// <summary>Adds one window: its label and forecast, in series units (length H).</summary>
        public void Add(ReadOnlySpan<double> label, ReadOnlySpan<double> forecast)
        {
            _windows++;
            for (int h = 0; h < _counts.Length; h++)
            {
                double y = label[h];
                if (double.IsNaN(y)) continue;
                double f = forecast[h], e = Math.Abs(y - f), denominator = Math.Abs(y) + Math.Abs(f);
                _counts[h]++;
                _abs[h] += e;
                _squared[h] += e * e;
                _smape[h] += denominator == 0 && e == 0 ? 0 : 200 * e / denominator;
            }
        }

        public ForecastMetrics ToMetrics(string name, double maseScale)
        {
            int n = _counts.Length;
            var mae = new double[n];
            var rmse = new double[n];
            var smape = new double[n];
            for (int h = 0; h < n; h++)
            {
                mae[h] = _counts[h] > 0 ? _abs[h] / _counts[h] : double.NaN;
                rmse[h] = _counts[h] > 0 ? Math.Sqrt(_squared[h] / _counts[h]) : double.NaN;
                smape[h] = _counts[h] > 0 ? _smape[h] / _counts[h] : double.NaN;
            }
            return new ForecastMetrics(name, maseScale, _windows, (long[])_counts.Clone(), mae, rmse, smape);
        }
    }
}

/// <summary>Computes <see cref="ForecastMetrics"/> from scored data.</summary>
public static class ForecastEvaluator
{
    /// <summary>
    /// Evaluates forecasts: every row's label (a known-size <c>vector&lt;float&gt;</c> of H values, or a <c>float</c>
    /// for H = 1) against its score of the same shape, both in series units (see <see cref="SeriesScaler.Unscale(IDataView, string)"/>
    /// or <see cref="ForecastWindows.Evaluate"/> for standardized windows). NaN label slots are skipped.
    /// </summary>
    /// <param name="data">Scored data, e.g. a forecaster's <c>Transform</c> of <see cref="ForecastWindows.Test"/>.</param>
    /// <param name="maseScale">MASE's denominator, e.g. <see cref="ForecastWindows.MaseScale"/>; NaN (the default) leaves MASE NaN.</param>
    /// <param name="labelColumnName">The label column. Default <c>Label</c>.</param>
    /// <param name="scoreColumnName">The score (forecast) column. Default <c>Score</c>.</param>
    /// <param name="name">The name shown by <see cref="ForecastMetrics.ToString"/>. Default "model".</param>
    /// <exception cref="ArgumentException">A column is missing, has the wrong type, or label and score differ in size.</exception>
    public static ForecastMetrics Evaluate(IDataView data, double maseScale = double.NaN, string labelColumnName = DefaultColumnNames.Label,
        string scoreColumnName = DefaultColumnNames.Score, string name = "model") =>
        Evaluate(data, maseScale, labelColumnName, scoreColumnName, name, mean: 0, sd: 1);

    /// <summary>Evaluates after mapping label and score by <c>x * sd + mean</c> (unscaling) in double precision.</summary>
    internal static ForecastMetrics Evaluate(IDataView data, double maseScale, string labelColumnName, string scoreColumnName, string name, double mean, double sd)
    {
        ArgumentNullException.ThrowIfNull(data);
        var label = FindColumn(data, labelColumnName, nameof(labelColumnName), out int labelSize);
        var score = FindColumn(data, scoreColumnName, nameof(scoreColumnName), out int scoreSize);
        if (labelSize != scoreSize)
            throw new ArgumentException($"Score column '{scoreColumnName}' has {scoreSize} values per row, label column '{labelColumnName}' {labelSize}; they must match (one per horizon step).", nameof(scoreColumnName));

        int horizon = labelSize;
        var acc = new ForecastMetrics.Accumulator(horizon);
        var y = new double[horizon];
        var f = new double[horizon];
        using var cursor = data.GetRowCursor(new[] { label, score });
        var readLabel = Reader(cursor, label, horizon);
        var readScore = Reader(cursor, score, horizon);
        while (cursor.MoveNext())
        {
            readLabel(y);
            readScore(f);
            for (int h = 0; h < horizon; h++)
            {
                y[h] = y[h] * sd + mean;
                f[h] = f[h] * sd + mean;
            }
            acc.Add(y, f);
        }
        return acc.ToMetrics(name, maseScale);
    }

    private static DataViewSchema.Column FindColumn(IDataView data, string columnName, string parameter, out int size)
    {
        if (string.IsNullOrWhiteSpace(columnName))
            throw new ArgumentException($"{parameter} must name a column.", parameter);
        var column = data.Schema.GetColumnOrNull(columnName)
            ?? throw new ArgumentException($"Column '{columnName}' ({parameter}) is not in the data; columns: {string.Join(", ", data.Schema.Select(c => c.Name))}.", parameter);
        if (column.Type == NumberDataViewType.Single)
        {
            size = 1;
            return column;
        }
        if (column.Type is VectorDataViewType { ItemType: NumberDataViewType n, IsKnownSize: true } vt && n == NumberDataViewType.Single)
        {
            size = vt.Size;
            return column;
        }
        throw new ArgumentException($"Column '{columnName}' ({parameter}) has type {column.Type}; it must be Single or a known-size Vector<Single>.", parameter);
    }

    private delegate void ReadInto(Span<double> destination);

    private static ReadInto Reader(DataViewRowCursor cursor, DataViewSchema.Column column, int size)
    {
        if (column.Type is VectorDataViewType)
        {
            var getter = cursor.GetGetter<VBuffer<float>>(column);
            var buffer = default(VBuffer<float>);
            return destination =>
            {
                getter(ref buffer);
                destination.Clear();
                var values = buffer.GetValues();
                if (buffer.IsDense)
                    for (int i = 0; i < size; i++) destination[i] = values[i];
                else
                {
                    var indices = buffer.GetIndices();
                    for (int i = 0; i < values.Length; i++) destination[indices[i]] = values[i];
                }
            };
        }
        var scalar = cursor.GetGetter<float>(column);
        return destination =>
        {
            float v = 0;
            scalar(ref v);
            destination[0] = v;
        };
    }
}
