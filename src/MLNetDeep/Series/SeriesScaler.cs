using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNetDeep;

/// <summary>
/// The standardization of a series' columns made by <see cref="ForecastWindows.Create"/>: per column, the mean and
/// standard deviation of the training part only. <c>scaled = (value - mean) / sd</c>; <see cref="Unscale(double, string?)"/>
/// turns forecasts (in scaled units) back into series units. When standardization is off it is the identity
/// (means 0, standard deviations 1).
/// </summary>
public sealed class SeriesScaler
{
    private readonly MLContext _mlContext;
    private readonly string[] _columns;
    private readonly double[] _means;
    private readonly double[] _sds;

    internal SeriesScaler(MLContext mlContext, string[] columns, double[] means, double[] sds, bool isIdentity)
    {
        _mlContext = mlContext;
        _columns = columns;
        _means = means;
        _sds = sds;
        IsIdentity = isIdentity;
    }

    /// <summary>The scaler that changes nothing, for the given columns.</summary>
    internal static SeriesScaler Identity(MLContext mlContext, string[] columns) =>
        new(mlContext, columns, new double[columns.Length], Enumerable.Repeat(1.0, columns.Length).ToArray(), isIdentity: true);

    /// <summary>
    /// Fits on the first <paramref name="trainingRows"/> values of every column: mean, and sample standard
    /// deviation (n - 1 denominator, as R's <c>sd</c>); a column constant over the training part keeps sd 1.
    /// </summary>
    internal static SeriesScaler Fit(MLContext mlContext, string[] columns, double[][] values, int trainingRows)
    {
        var means = new double[columns.Length];
        var sds = new double[columns.Length];
        for (int c = 0; c < columns.Length; c++)
        {
            double mean = 0;
            for (int i = 0; i < trainingRows; i++) mean += values[c][i];
            mean /= trainingRows;
            double ss = 0;
            for (int i = 0; i < trainingRows; i++) ss += (values[c][i] - mean) * (values[c][i] - mean);
            double sd = trainingRows > 1 ? Math.Sqrt(ss / (trainingRows - 1)) : 0;
            means[c] = mean;
            sds[c] = sd > 0 && double.IsFinite(sd) ? sd : 1;
        }
        return new SeriesScaler(mlContext, columns, means, sds, isIdentity: false);
    }

    /// <summary>True when standardization is off: every method returns its input unchanged.</summary>
    public bool IsIdentity { get; }

    /// <summary>The series' columns, in step order: the target first, then other series, then covariates.</summary>
    public IReadOnlyList<string> ColumnNames => _columns;

    /// <summary>The mean of each column of <see cref="ColumnNames"/> over the training part (0 when <see cref="IsIdentity"/>).</summary>
    public IReadOnlyList<double> Means => _means;

    /// <summary>
    /// The sample standard deviation of each column of <see cref="ColumnNames"/> over the training part (1 when
    /// <see cref="IsIdentity"/>, or for a column constant over the training part).
    /// </summary>
    public IReadOnlyList<double> StandardDeviations => _sds;

    /// <summary>The forecast column (the first of <see cref="ColumnNames"/>).</summary>
    public string TargetColumn => _columns[0];

    /// <summary>Scales a value of a column (the target when <paramref name="columnName"/> is null) into standardized units.</summary>
    /// <exception cref="ArgumentException"><paramref name="columnName"/> is not one of <see cref="ColumnNames"/>.</exception>
    public double Scale(double value, string? columnName = null)
    {
        int c = IndexOf(columnName);
        return (value - _means[c]) / _sds[c];
    }

    /// <summary>Turns a standardized value of a column (the target when <paramref name="columnName"/> is null) back into series units.</summary>
    /// <exception cref="ArgumentException"><paramref name="columnName"/> is not one of <see cref="ColumnNames"/>.</exception>
    public double Unscale(double value, string? columnName = null)
    {
        int c = IndexOf(columnName);
        return value * _sds[c] + _means[c];
    }

    /// <summary>Scales target values (a label vector, say) into standardized units; returns a new array.</summary>
    public float[] Scale(ReadOnlySpan<float> values)
    {
        var result = new float[values.Length];
        for (int i = 0; i < values.Length; i++) result[i] = (float)((values[i] - _means[0]) / _sds[0]);
        return result;
    }

    /// <summary>Turns standardized target values (a <c>Score</c> vector, say) back into series units; returns a new array. NaN stays NaN.</summary>
    public float[] Unscale(ReadOnlySpan<float> values)
    {
        var result = new float[values.Length];
        for (int i = 0; i < values.Length; i++) result[i] = (float)(values[i] * _sds[0] + _means[0]);
        return result;
    }

    /// <summary>
    /// Returns <paramref name="data"/> with the target-valued column <paramref name="columnName"/> (a
    /// <c>float</c> or a known-size <c>vector&lt;float&gt;</c>, such as a forecaster's <c>Score</c> or the windows'
    /// <c>Label</c>) turned back into series units; the other columns pass through. Lazy, like any ML.NET transform.
    /// </summary>
    /// <exception cref="ArgumentException">The column is missing or is not <c>float</c> / known-size <c>vector&lt;float&gt;</c>.</exception>
    public IDataView Unscale(IDataView data, string columnName = DefaultColumnNames.Score)
    {
        ArgumentNullException.ThrowIfNull(data);
        var column = data.Schema.GetColumnOrNull(columnName)
            ?? throw new ArgumentException($"Column '{columnName}' is not in the data; columns: {string.Join(", ", data.Schema.Select(c => c.Name))}.", nameof(columnName));
        double mean = _means[0], sd = _sds[0];
        if (column.Type == NumberDataViewType.Single)
        {
            if (IsIdentity) return data;
            var input = SchemaDefinition.Create(typeof(ScalarValue));
            input[0].ColumnName = columnName;
            var output = SchemaDefinition.Create(typeof(ScalarValue));
            output[0].ColumnName = columnName;
            var mapping = _mlContext.Transforms.CustomMapping<ScalarValue, ScalarValue>(
                (src, dst) => dst.Value = (float)(src.Value * sd + mean), contractName: null, input, output);
            return mapping.Fit(data).Transform(data);
        }
        if (column.Type is VectorDataViewType { ItemType: NumberDataViewType n } vt && n == NumberDataViewType.Single && vt.IsKnownSize)
        {
            if (IsIdentity) return data;
            var input = SchemaDefinition.Create(typeof(VectorValue));
            input[0].ColumnName = columnName;
            input[0].ColumnType = vt;
            var output = SchemaDefinition.Create(typeof(VectorValue));
            output[0].ColumnName = columnName;
            output[0].ColumnType = new VectorDataViewType(NumberDataViewType.Single, vt.Size);
            var mapping = _mlContext.Transforms.CustomMapping<VectorValue, VectorValue>(
                (src, dst) =>
                {
                    var v = new float[src.Value.Length];
                    for (int i = 0; i < v.Length; i++) v[i] = (float)(src.Value[i] * sd + mean);
                    dst.Value = v;
                }, contractName: null, input, output);
            return mapping.Fit(data).Transform(data);
        }
        throw new ArgumentException($"Column '{columnName}' has type {column.Type}; Unscale needs Single or a known-size Vector<Single>.", nameof(columnName));
    }

    /// <summary>One line per column: name, mean, standard deviation.</summary>
    public override string ToString() =>
        IsIdentity ? "identity (no standardization)"
        : string.Join(Environment.NewLine, _columns.Select((c, i) => $"{c}: mean {_means[i]:G6}, sd {_sds[i]:G6}"));

    private int IndexOf(string? columnName)
    {
        if (columnName is null) return 0;
        int c = Array.IndexOf(_columns, columnName);
        if (c < 0)
            throw new ArgumentException($"Column '{columnName}' is not scaled by this scaler; its columns: {string.Join(", ", _columns)}.", nameof(columnName));
        return c;
    }

    internal sealed class ScalarValue { public float Value { get; set; } }

    internal sealed class VectorValue { public float[] Value { get; set; } = Array.Empty<float>(); }
}
