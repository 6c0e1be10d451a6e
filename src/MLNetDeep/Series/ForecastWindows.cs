using System.Collections;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNetDeep;

/// <summary>A part of a series split by time.</summary>
public enum ForecastSplit
{
    /// <summary>The training part: the start of the series.</summary>
    Training,
    /// <summary>The validation part: the points just before the test part.</summary>
    Validation,
    /// <summary>The test part: the end of the series, evaluated by rolling origin.</summary>
    Test,
}

/// <summary>
/// Supervised windows cut from an ordered series for forecasters, split by time into training, validation and test
/// parts, optionally standardized with the training part's statistics, with forecast evaluation and the naive and
/// seasonal-naive baselines over the same windows. Like Keras' <c>timeseries_dataset_from_array</c>, for ML.NET.
/// </summary>
/// <remarks>
/// <para>
/// Every window view has three columns: <c>Features</c>, a <c>vector&lt;float&gt;</c> with dimensions
/// [<see cref="Lookback"/>, <see cref="FeaturesPerStep"/>] (row-major: step 0 is the oldest, each step's values
/// contiguous in the order of <see cref="StepColumnNames"/>); <c>Label</c>, a <c>vector&lt;float&gt;</c> of the next
/// <see cref="Horizon"/> target values; and <c>Origin</c> (<c>long</c>), the 0-based row index in the series of the
/// window's last input step (R's 1-based <c>origin</c> minus one). The label of origin <c>o</c> is the target at
/// rows <c>o + 1 ... o + H</c>. Row counts are known (<see cref="IDataView.GetRowCount"/>).
/// </para>
/// <para>
/// The series (n rows) is split by time, never shuffled: training rows <c>[0, TrainingLength)</c>, then validation,
/// then test. Training windows use training rows only, for inputs and labels (origins <c>Lookback - 1</c>,
/// <c>+ Stride</c>, ... while the label stays in the training part). Validation windows have their whole label in
/// the validation part and may take inputs from earlier rows. Test windows follow the rolling-origin protocol of R's
/// <c>forecast</c> peers (<c>origin in ntrain:(n-1)</c>): one window per origin from the last row before the test
/// part to the second-to-last row, inputs up to the origin, label the next H values, NaN where the series ends.
/// </para>
/// </remarks>
public sealed class ForecastWindows
{
    /// <summary>Name of the window's origin column: the 0-based row index of its last input step.</summary>
    public const string OriginColumnName = "Origin";

    private readonly MLContext _mlContext;
    private readonly double[][] _raw;      // [column][row], series units
    private readonly float[][] _scaled;    // [column][row], standardized (or raw) units
    private readonly Dictionary<ForecastSplit, long[]> _origins = new();

    private ForecastWindows(MLContext mlContext, ForecastWindowOptions options, string[] columns, double[][] raw,
        int trainingLength, int validationLength, int testLength)
    {
        _mlContext = mlContext;
        Options = options;
        StepColumnNames = columns;
        _raw = raw;
        SeriesLength = raw[0].Length;
        TrainingLength = trainingLength;
        ValidationLength = validationLength;
        TestLength = testLength;

        Scaler = options.Standardize
            ? SeriesScaler.Fit(mlContext, columns, raw, trainingLength)
            : SeriesScaler.Identity(mlContext, columns);
        _scaled = new float[columns.Length][];
        for (int c = 0; c < columns.Length; c++)
        {
            double mean = Scaler.Means[c], sd = Scaler.StandardDeviations[c];
            _scaled[c] = raw[c].Select(v => (float)((v - mean) / sd)).ToArray();
        }

        double sum = 0;
        for (int i = 1; i < trainingLength; i++) sum += Math.Abs(raw[0][i] - raw[0][i - 1]);
        MaseScale = sum / (trainingLength - 1);

        int L = options.Lookback, H = options.Horizon, S = options.Stride;
        _origins[ForecastSplit.Training] = Origins(L - 1, trainingLength - 1 - H, S);
        _origins[ForecastSplit.Validation] = Origins(trainingLength - 1, trainingLength + validationLength - 1 - H, S);
        _origins[ForecastSplit.Test] = Origins(trainingLength + validationLength - 1, SeriesLength - 2, 1);

        Train = View(_origins[ForecastSplit.Training]);
        Validation = validationLength > 0 ? View(_origins[ForecastSplit.Validation]) : null;
        Test = testLength > 0 ? View(_origins[ForecastSplit.Test]) : null;
        Latest = View(new long[] { SeriesLength - 1 });
    }

    /// <summary>
    /// Reads the series (its rows in time order) and makes the windows.
    /// </summary>
    /// <param name="mlContext">The ML.NET context.</param>
    /// <param name="series">The ordered series: one row per time step, with the <c>float</c> (or <c>double</c>) columns the options name.</param>
    /// <param name="options">Columns, window shape, split and scaling.</param>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the exception's parameter name is the option's.</exception>
    /// <exception cref="ArgumentException">
    /// A column named by the options is missing or not numeric (the message names the column and the option), or
    /// the series has too few rows for one training window (and one validation window when asked for).
    /// </exception>
    /// <exception cref="InvalidOperationException">A value of a used column is NaN or infinite (the message names column and row).</exception>
    public static ForecastWindows Create(MLContext mlContext, IDataView series, ForecastWindowOptions options)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(series);
        ArgumentNullException.ThrowIfNull(options);
        options = options.Clone();
        options.Validate();

        var names = options.StepColumns();
        var columns = new DataViewSchema.Column[names.Length];
        for (int c = 0; c < names.Length; c++)
        {
            string option = options.OptionOf(c);
            var column = series.Schema.GetColumnOrNull(names[c])
                ?? throw new ArgumentException($"Column '{names[c]}' named by {option} is not in the data; columns: {string.Join(", ", series.Schema.Select(s => s.Name))}.", option);
            if (column.Type != NumberDataViewType.Single && column.Type != NumberDataViewType.Double)
                throw new ArgumentException($"Column '{names[c]}' named by {option} has type {column.Type}; series columns must be Single (float) or Double.", option);
            columns[c] = column;
        }

        var raw = Read(series, columns);
        int n = raw[0].Length;
        int test = Part(options.TestCount, options.TestFraction, n);
        int validation = Part(options.ValidationCount, options.ValidationFraction, n);
        int L = options.Lookback, H = options.Horizon;
        int training = n - test - validation;
        string split = $"{n} rows, {test} for test, {validation} for validation";
        if (training < L + H)
            throw new ArgumentException(
                $"Too few rows: the training part has {Math.Max(training, 0)} ({split}); one training window needs {nameof(ForecastWindowOptions.Lookback)} + {nameof(ForecastWindowOptions.Horizon)} = {L + H}.",
                nameof(series));
        if (validation > 0 && validation < H)
            throw new ArgumentException(
                $"Too few validation rows: {validation} ({split}); one validation window needs {nameof(ForecastWindowOptions.Horizon)} = {H} of them.",
                options.ValidationFraction > 0 ? nameof(ForecastWindowOptions.ValidationFraction) : nameof(ForecastWindowOptions.ValidationCount));
        return new ForecastWindows(mlContext, options, names, raw, training, validation, test);
    }

    /// <summary>The options the windows were made with (a copy).</summary>
    public ForecastWindowOptions Options { get; }

    /// <summary>Number of input steps per window (L).</summary>
    public int Lookback => Options.Lookback;

    /// <summary>Number of future target values per label (H).</summary>
    public int Horizon => Options.Horizon;

    /// <summary>Number of values per input step (F): the target, other series and covariates.</summary>
    public int FeaturesPerStep => StepColumnNames.Count;

    /// <summary>The series' columns in the order of each step's values: the target first, then other series, then covariates.</summary>
    public IReadOnlyList<string> StepColumnNames { get; }

    /// <summary>Number of rows (time steps) of the series.</summary>
    public int SeriesLength { get; }

    /// <summary>Number of rows in the training part (the first rows).</summary>
    public int TrainingLength { get; }

    /// <summary>Number of rows in the validation part (0 when none).</summary>
    public int ValidationLength { get; }

    /// <summary>Number of rows in the test part (the last rows; 0 when none).</summary>
    public int TestLength { get; }

    /// <summary>Training windows: inputs and labels from the training part only.</summary>
    public IDataView Train { get; }

    /// <summary>Validation windows (whole labels in the validation part), or null without a validation part.</summary>
    public IDataView? Validation { get; }

    /// <summary>Rolling-origin test windows (one per test point; NaN label slots past the series' end), or null without a test part.</summary>
    public IDataView? Test { get; }

    /// <summary>
    /// One window whose input ends at the series' last row (its label is all NaN): a forecaster's <c>Transform</c>
    /// of it forecasts the <see cref="Horizon"/> steps after the data.
    /// </summary>
    public IDataView Latest { get; }

    /// <summary>The standardization (training part's statistics), or the identity when <see cref="ForecastWindowOptions.Standardize"/> is off.</summary>
    public SeriesScaler Scaler { get; }

    /// <summary>MASE's denominator: the in-sample one-step naive MAE of the training part's target, <c>mean(|diff(train)|)</c>.</summary>
    public double MaseScale { get; }

    /// <summary>The window origins (0-based row index of the last input step) of a part, in time order.</summary>
    public IReadOnlyList<long> GetOrigins(ForecastSplit split) => _origins[split];

    /// <summary>The windows of a part (<see cref="Train"/>, <see cref="Validation"/> or <see cref="Test"/>).</summary>
    /// <exception cref="InvalidOperationException">The part is empty (no validation or test part was asked for).</exception>
    public IDataView GetWindows(ForecastSplit split) => split switch
    {
        ForecastSplit.Training => Train,
        ForecastSplit.Validation => Validation ?? throw NoPart(split),
        ForecastSplit.Test => Test ?? throw NoPart(split),
        _ => throw new ArgumentOutOfRangeException(nameof(split), split, $"Unknown {nameof(ForecastSplit)} {split}."),
    };

    /// <summary>The target's value at a row of the series, in series units.</summary>
    public double GetTargetValue(int row) => _raw[0][row];

    /// <summary>
    /// Evaluates a forecaster's output on these windows (e.g. <c>model.Transform(windows.Test)</c>): the score
    /// vector (H values, in the windows' units) and the label are turned back into series units with
    /// <see cref="Scaler"/>, then compared; NaN label slots are skipped; MASE uses <see cref="MaseScale"/>.
    /// </summary>
    /// <param name="scored">Scored windows with the label and score columns.</param>
    /// <param name="scoreColumnName">The score column. Default <c>Score</c>.</param>
    /// <param name="labelColumnName">The label column. Default <c>Label</c>.</param>
    /// <param name="name">The name shown in the metrics' table. Default "model".</param>
    /// <exception cref="ArgumentException">A column is missing, has the wrong type, or is not <see cref="Horizon"/> values wide.</exception>
    public ForecastMetrics Evaluate(IDataView scored, string scoreColumnName = DefaultColumnNames.Score, string labelColumnName = DefaultColumnNames.Label, string name = "model")
    {
        ArgumentNullException.ThrowIfNull(scored);
        var label = scored.Schema.GetColumnOrNull(labelColumnName);
        if (label is { } column && (column.Type is VectorDataViewType vt ? vt.Size : 1) != Horizon)
            throw new ArgumentException($"Label column '{labelColumnName}' has type {column.Type}; these windows' labels have {Horizon} values.", nameof(labelColumnName));
        return ForecastEvaluator.Evaluate(scored, MaseScale, labelColumnName, scoreColumnName, name, Scaler.Means[0], Scaler.StandardDeviations[0]);
    }

    /// <summary>
    /// The naive (last value) forecast, <c>f(o + h) = y[o]</c>, evaluated over the windows of a part (by default the
    /// rolling-origin test), in series units, as R's <c>rep(y[origin], hmax)</c>.
    /// </summary>
    /// <exception cref="InvalidOperationException">The part is empty.</exception>
    public ForecastMetrics EvaluateNaive(ForecastSplit split = ForecastSplit.Test) =>
        EvaluateBaseline(split, "naive", (o, h) => o);

    /// <summary>
    /// The seasonal-naive forecast with period P, <c>f(o + h) = y[o + h - P * ceil(h / P)]</c> (the value one season
    /// before, from the history up to the origin), evaluated over the windows of a part (by default the rolling-origin
    /// test), in series units, exactly as R's <c>y[origin + h - period * ceiling(h / period)]</c>.
    /// </summary>
    /// <param name="period">The season's length in steps, e.g. 11 for the yearly sunspot cycle; 1 is the naive forecast.</param>
    /// <param name="split">The part whose windows are forecast. Default the test part.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="period"/> is not positive or reaches before the series' start for the part's first origin.</exception>
    /// <exception cref="InvalidOperationException">The part is empty.</exception>
    public ForecastMetrics EvaluateSeasonalNaive(int period, ForecastSplit split = ForecastSplit.Test)
    {
        if (period <= 0)
            throw new ArgumentOutOfRangeException(nameof(period), period, $"{nameof(period)} must be positive, not {period}.");
        var origins = _origins[split];
        if (origins.Length > 0 && origins[0] + 1 - period < 0)
            throw new ArgumentOutOfRangeException(nameof(period), period,
                $"{nameof(period)} {period} reaches before the series' start: the first {split} window's origin is row {origins[0]}, and a seasonal-naive forecast needs period - 1 earlier rows.");
        return EvaluateBaseline(split, $"seasonal naive (period {period})", (o, h) => o + h - period * (long)Math.Ceiling(h / (double)period));
    }

    private ForecastMetrics EvaluateBaseline(ForecastSplit split, string name, Func<long, int, long> sourceRow)
    {
        var origins = _origins[split];
        if (origins.Length == 0) throw NoPart(split);
        int H = Horizon;
        var y = _raw[0];
        var acc = new ForecastMetrics.Accumulator(H);
        var label = new double[H];
        var forecast = new double[H];
        foreach (long o in origins)
        {
            for (int h = 1; h <= H; h++)
            {
                long row = o + h;
                label[h - 1] = row < y.Length ? y[row] : double.NaN;
                forecast[h - 1] = y[sourceRow(o, h)];
            }
            acc.Add(label, forecast);
        }
        return acc.ToMetrics(name, MaseScale);
    }

    private static InvalidOperationException NoPart(ForecastSplit split) =>
        new($"There is no {split} part: set {(split == ForecastSplit.Test ? "TestCount or TestFraction" : "ValidationCount or ValidationFraction")} in the options.");

    private static long[] Origins(long first, long last, int stride)
    {
        var list = new List<long>();
        for (long o = first; o <= last; o += stride) list.Add(o);
        return list.ToArray();
    }

    private static int Part(int count, double fraction, int n) =>
        count > 0 ? count : fraction > 0 ? Math.Max(1, (int)Math.Round(fraction * n, MidpointRounding.AwayFromZero)) : 0;

    private static double[][] Read(IDataView series, DataViewSchema.Column[] columns)
    {
        var values = columns.Select(_ => new List<double>()).ToArray();
        using var cursor = series.GetRowCursor(columns);
        var getters = columns.Select<DataViewSchema.Column, Func<double>>(column =>
        {
            if (column.Type == NumberDataViewType.Single)
            {
                var g = cursor.GetGetter<float>(column);
                return () => { float v = 0; g(ref v); return v; };
            }
            var d = cursor.GetGetter<double>(column);
            return () => { double v = 0; d(ref v); return v; };
        }).ToArray();
        long row = 0;
        while (cursor.MoveNext())
        {
            for (int c = 0; c < columns.Length; c++)
            {
                double v = getters[c]();
                if (!double.IsFinite(v))
                    throw new InvalidOperationException($"Column '{columns[c].Name}' has a {(double.IsNaN(v) ? "missing (NaN)" : "infinite")} value at row {row}; windows need a complete series: fill or drop it first.");
                values[c].Add(v);
            }
            row++;
        }
        return values.Select(v => v.ToArray()).ToArray();
    }

    private IDataView View(long[] origins)
    {
        int L = Lookback, F = FeaturesPerStep, H = Horizon;
        var schema = SchemaDefinition.Create(typeof(WindowRow));
        var features = schema[nameof(WindowRow.Features)];
        features.ColumnType = new VectorDataViewType(NumberDataViewType.Single, L, F);
        var featureNames = new ReadOnlyMemory<char>[L * F];
        for (int k = 0; k < L; k++)
            for (int c = 0; c < F; c++)
                featureNames[k * F + c] = $"{StepColumnNames[c]}[t{(k == L - 1 ? "" : (k - L + 1).ToString(System.Globalization.CultureInfo.InvariantCulture))}]".AsMemory();
        features.AddAnnotation(AnnotationUtils.Kinds.SlotNames, new VBuffer<ReadOnlyMemory<char>>(featureNames.Length, featureNames),
            new VectorDataViewType(TextDataViewType.Instance, featureNames.Length));
        var label = schema[nameof(WindowRow.Label)];
        label.ColumnType = new VectorDataViewType(NumberDataViewType.Single, H);
        var labelNames = Enumerable.Range(1, H).Select(h => $"{StepColumnNames[0]}[t+{h}]".AsMemory()).ToArray();
        label.AddAnnotation(AnnotationUtils.Kinds.SlotNames, new VBuffer<ReadOnlyMemory<char>>(H, labelNames),
            new VectorDataViewType(TextDataViewType.Instance, H));
        return _mlContext.Data.LoadFromEnumerable(new WindowList(this, origins), schema);
    }

    private WindowRow MakeRow(long origin)
    {
        int L = Lookback, F = FeaturesPerStep, H = Horizon;
        var features = new float[L * F];
        long first = origin - L + 1;
        for (int k = 0; k < L; k++)
            for (int c = 0; c < F; c++)
                features[k * F + c] = _scaled[c][first + k];
        var label = new float[H];
        var target = _scaled[0];
        for (int h = 0; h < H; h++)
        {
            long row = origin + 1 + h;
            label[h] = row < target.Length ? target[row] : float.NaN;
        }
        return new WindowRow { Features = features, Label = label, Origin = origin };
    }

    /// <summary>One window, as ML.NET reads it.</summary>
    internal sealed class WindowRow
    {
        public float[] Features { get; set; } = Array.Empty<float>();
        public float[] Label { get; set; } = Array.Empty<float>();
        public long Origin { get; set; }
    }

    /// <summary>
    /// The windows of a list of origins, made on demand when enumerated (memory stays that of the series); a
    /// collection, so ML.NET's enumerable view knows its row count.
    /// </summary>
    private sealed class WindowList : ICollection<WindowRow>, IReadOnlyList<WindowRow>
    {
        private readonly ForecastWindows _owner;
        private readonly long[] _origins;

        public WindowList(ForecastWindows owner, long[] origins)
        {
            _owner = owner;
            _origins = origins;
        }

        public int Count => _origins.Length;
        public bool IsReadOnly => true;
        public WindowRow this[int index] => _owner.MakeRow(_origins[index]);

        public IEnumerator<WindowRow> GetEnumerator()
        {
            foreach (long o in _origins) yield return _owner.MakeRow(o);
        }

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
        public bool Contains(WindowRow item) => Array.IndexOf(_origins, item.Origin) >= 0;
        public void CopyTo(WindowRow[] array, int arrayIndex)
        {
            for (int i = 0; i < _origins.Length; i++) array[arrayIndex + i] = this[i];
        }
        public void Add(WindowRow item) => throw new NotSupportedException();
        public void Clear() => throw new NotSupportedException();
        public bool Remove(WindowRow item) => throw new NotSupportedException();
    }
}
