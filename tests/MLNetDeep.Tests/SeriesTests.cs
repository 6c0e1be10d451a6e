using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetDeep.TestData;
using Xunit;
using Xunit.Abstractions;

namespace MLNetDeep.Tests;

/// <summary>
/// Forecast windows, time splits, scaling and forecast metrics on the real sunspot series (1700-2008, 309 values),
/// checked against the CSV read by hand and against the R peers' figures in ../shared/data/README.md.
/// </summary>
public sealed class SeriesTests
{
    private const int N = 309;
    private readonly ITestOutputHelper _out;
    private static readonly (int Year, double Value)[] Raw = Sunspots.ReadRaw();
    private static double[] Y => Raw.Select(r => r.Value).ToArray();

    public SeriesTests(ITestOutputHelper output) => _out = output;

    private static ForecastWindowOptions Options(int lookback = 20, int horizon = 5, int testCount = 30, bool standardize = false) => new()
    {
        TargetColumn = nameof(SunspotRow.SUNACTIVITY),
        Lookback = lookback,
        Horizon = horizon,
        TestCount = testCount,
        Standardize = standardize,
    };

    private sealed class Window
    {
        public float[] Features { get; set; } = Array.Empty<float>();
        public float[] Label { get; set; } = Array.Empty<float>();
        public long Origin { get; set; }
    }

    private static List<Window> Rows(MLContext ml, IDataView windows) =>
        ml.Data.CreateEnumerable<Window>(windows, reuseRowObject: false).ToList();

    [Fact]
    public void SeriesWindows_HoldTheCsvValuesAtTheirOffsets()
    {
        Assert.Equal(N, Raw.Length);
        Assert.Equal((1700, 5.0), Raw[0]);
        Assert.Equal((2008, 2.9), Raw[^1]);
        var ml = new MLContext(seed: 1);
        var prep = ForecastWindows.Create(ml, Sunspots.Load(ml), Options());
        var train = Rows(ml, prep.Train);

        // First training window: inputs 1700-1719, label 1720-1724 (values copied from the CSV).
        Assert.Equal(19, train[0].Origin);
        Assert.Equal(new float[] { 5, 11, 16, 23, 36, 58, 29, 20, 10, 8, 3, 0, 0, 2, 11, 27, 47, 63, 60, 39 }, train[0].Features);
        Assert.Equal(new float[] { 28, 26, 22, 11, 21 }, train[0].Label);

        // Last training window: label ends at 1978 (row 278), the last training point.
        Assert.Equal(273, train[^1].Origin);
        Assert.Equal(1978, Raw[278].Year);
        Assert.Equal((float)Raw[278].Value, train[^1].Label[^1]);

        // First test window: inputs 1959-1978, label 1979-1983 = 155.4 154.6 140.4 115.9 66.6.
        var test = Rows(ml, prep.Test!);
        Assert.Equal(278, test[0].Origin);
        Assert.Equal(new float[] { 155.4f, 154.6f, 140.4f, 115.9f, 66.6f }, test[0].Label);
        Assert.Equal((float)Raw[259].Value, test[0].Features[0]);
        Assert.Equal(1959, Raw[259].Year);

        // Every window of every part against the hand-parsed file.
        foreach (var w in train.Concat(test))
        {
            for (int k = 0; k < 20; k++) Assert.Equal((float)Y[w.Origin - 19 + k], w.Features[k]);
            for (int h = 0; h < 5; h++)
                if (w.Origin + 1 + h < N) Assert.Equal((float)Y[w.Origin + 1 + h], w.Label[h]);
        }
    }

    [Fact]
    public void WindowSchema_HasLookbackByFeatureDimensions_KnownRowCounts_AndSlotNames()
    {
        var ml = new MLContext(seed: 1);
        var o = Options();
        o.CovariateColumns = new[] { nameof(SunspotRow.YEAR) };
        var prep = ForecastWindows.Create(ml, Sunspots.Load(ml), o);

        var features = Assert.IsType<VectorDataViewType>(prep.Train.Schema["Features"].Type);
        Assert.Equal(NumberDataViewType.Single, features.ItemType);
        Assert.Equal(new[] { 20, 2 }, features.Dimensions.ToArray());
        var label = Assert.IsType<VectorDataViewType>(prep.Train.Schema["Label"].Type);
        Assert.Equal(5, label.Size);
        Assert.Equal(NumberDataViewType.Int64, prep.Train.Schema[ForecastWindows.OriginColumnName].Type);
        Assert.Equal(2, prep.FeaturesPerStep);

        // Training origins 19..273 (label inside rows 0..278), test origins 278..307.
        Assert.Equal(255L, prep.Train.GetRowCount());
        Assert.Equal(30L, prep.Test!.GetRowCount());
        Assert.Null(prep.Validation);
        Assert.Equal(1L, prep.Latest.GetRowCount());
        Assert.Equal(255, ml.Data.CreateEnumerable<Window>(prep.Train, false).Count());

        VBuffer<ReadOnlyMemory<char>> names = default;
        prep.Train.Schema["Features"].GetSlotNames(ref names);
        var slots = names.DenseValues().Select(s => s.ToString()).ToArray();
        Assert.Equal(40, slots.Length);
        Assert.Equal("SUNACTIVITY[t-19]", slots[0]);
        Assert.Equal("YEAR[t-19]", slots[1]);
        Assert.Equal("YEAR[t]", slots[^1]);
    }

    [Fact]
    public void Stride_SpacesTrainingOrigins_TestStaysRollingOrigin()
    {
        var ml = new MLContext(seed: 1);
        var o = Options();
        o.Stride = 7;
        var prep = ForecastWindows.Create(ml, Sunspots.Load(ml), o);
        var train = Rows(ml, prep.Train);
        var expected = Enumerable.Range(0, 1000).Select(i => 19L + 7 * i).TakeWhile(x => x <= 273).ToArray();
        Assert.Equal(expected, train.Select(w => w.Origin).ToArray());
        Assert.Equal(expected.Length, prep.Train.GetRowCount());
        Assert.Equal(37, expected.Length);
        var third = train[2];
        Assert.Equal(33, third.Origin);
        Assert.Equal(Y.Skip(14).Take(20).Select(v => (float)v), third.Features);
        Assert.Equal(Y.Skip(34).Take(5).Select(v => (float)v), third.Label);
        Assert.Equal(Enumerable.Range(278, 30).Select(i => (long)i), Rows(ml, prep.Test!).Select(w => w.Origin));
    }

    private sealed class Multi
    {
        public float Sun { get; set; }
        public float Root { get; set; }
        public float Year { get; set; }
    }

    [Fact]
    public void OtherSeriesAndCovariates_FollowTheTargetInEachStep_LabelFromTheTarget()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Raw.Select(r => new Multi { Sun = (float)r.Value, Root = (float)Math.Sqrt(r.Value), Year = r.Year }).ToList());
        var prep = ForecastWindows.Create(ml, data, new ForecastWindowOptions
        {
            TargetColumn = "Sun", OtherSeriesColumns = new[] { "Root" }, CovariateColumns = new[] { "Year" },
            Lookback = 4, Horizon = 2, TestCount = 10, Standardize = false,
        });
        Assert.Equal(new[] { "Sun", "Root", "Year" }, prep.StepColumnNames);
        var w = Rows(ml, prep.Train)[5];
        Assert.Equal(8, w.Origin);
        // Steps 5..8 (1705-1708), row-major [step][Sun, Root, Year].
        var expected = Enumerable.Range(5, 4).SelectMany(i => new[] { (float)Y[i], (float)Math.Sqrt(Y[i]), (float)Raw[i].Year }).ToArray();
        Assert.Equal(expected, w.Features);
        Assert.Equal(new float[] { 1708, 10 }, new[] { w.Features[3 * 3 + 2], w.Features[3 * 3] });
        Assert.Equal(new[] { (float)Y[9], (float)Y[10] }, w.Label);

        // A double column is read too (and its statistics are those of the exact values).
        var doubles = ml.Data.LoadFromEnumerable(Raw.Select(r => new DoubleRow { Sun = r.Value }).ToList());
        var fromDouble = ForecastWindows.Create(ml, doubles, new ForecastWindowOptions { TargetColumn = "Sun", Lookback = 4, Horizon = 2, TestCount = 10 });
        Assert.Equal(Y.Take(299).Average(), fromDouble.Scaler.Means[0], 12);
        Assert.Equal(prep.GetOrigins(ForecastSplit.Training), fromDouble.GetOrigins(ForecastSplit.Training));
    }

    private sealed class DoubleRow { public double Sun { get; set; } }

    [Fact]
    public void TimeSplit_TrainingWindowsNeverTouchValidationOrTestRows()
    {
        var ml = new MLContext(seed: 1);
        var o = Options();
        o.ValidationCount = 40;
        var prep = ForecastWindows.Create(ml, Sunspots.Load(ml), o);
        Assert.Equal((239, 40, 30), (prep.TrainingLength, prep.ValidationLength, prep.TestLength));

        var train = Rows(ml, prep.Train);
        Assert.All(train, w => Assert.True(w.Origin + 5 < 239, $"training window {w.Origin} reaches row {w.Origin + 5}"));
        Assert.Equal(233, train[^1].Origin);
        Assert.Equal((float)Y[238], train[^1].Label[^1]);

        // Validation: whole label in rows 239..278, inputs may come from training rows.
        var valid = Rows(ml, prep.Validation!);
        Assert.Equal(Enumerable.Range(238, 36).Select(i => (long)i), valid.Select(w => w.Origin));
        Assert.All(valid, w => Assert.True(w.Origin + 1 >= 239 && w.Origin + 5 <= 278));
        Assert.Equal((float)Y[219], valid[0].Features[0]);
        Assert.Equal(36L, prep.Validation!.GetRowCount());

        // Test: labels from rows 279.. only.
        var test = Rows(ml, prep.Test!);
        Assert.Equal(278, test[0].Origin);
        Assert.Equal((float)Y[279], test[0].Label[0]);

        // Fractions: 10 % of 309 rounds to 31.
        var f = Options(testCount: 0);
        f.TestFraction = 0.1;
        f.ValidationFraction = 0.1;
        var byFraction = ForecastWindows.Create(ml, Sunspots.Load(ml), f);
        Assert.Equal((247, 31, 31), (byFraction.TrainingLength, byFraction.ValidationLength, byFraction.TestLength));
    }

    [Fact]
    public void Scaler_UsesTrainingStatisticsOnly_AndUnscaleInvertsScale()
    {
        var ml = new MLContext(seed: 1);
        var prep = ForecastWindows.Create(ml, Sunspots.Load(ml), Options(standardize: true));
        // The loader reads float columns: the statistics are those of the float values (exact to ~1e-8 relative).
        var train = Y.Take(279).Select(v => (double)(float)v).ToArray();
        double mean = train.Average();
        double sd = Math.Sqrt(train.Sum(v => (v - mean) * (v - mean)) / (train.Length - 1));
        double wholeMean = Y.Average();
        _out.WriteLine($"training mean {mean:F4} sd {sd:F4}; whole-series mean {wholeMean:F4}");
        Assert.Equal(mean, prep.Scaler.Means[0], 9);
        Assert.Equal(sd, prep.Scaler.StandardDeviations[0], 9);
        Assert.True(Math.Abs(wholeMean - prep.Scaler.Means[0]) > 0.5, "the whole series' mean would leak the test part");
        Assert.False(prep.Scaler.IsIdentity);

        // Windows are in scaled units; the label too.
        var first = Rows(ml, prep.Train)[0];
        Assert.Equal((5 - mean) / sd, first.Features[0], 5);
        Assert.Equal((28 - mean) / sd, first.Label[0], 5);

        // Unscale(Scale(x)) == x, scalar, span and IDataView.
        foreach (double x in new[] { 0, 2.9, 155.4, -3, 1e4 })
            Assert.Equal(x, prep.Scaler.Unscale(prep.Scaler.Scale(x)), 9);
        var values = Y.Skip(279).Select(v => (float)v).ToArray();
        var back = prep.Scaler.Unscale(prep.Scaler.Scale(values));
        for (int i = 0; i < values.Length; i++) Assert.Equal(values[i], back[i], 3);
        var unscaled = Rows(ml, prep.Scaler.Unscale(prep.Test!, "Label"));
        Assert.Equal(new[] { 155.4, 154.6, 140.4, 115.9, 66.6 }, unscaled[0].Label.Select(v => Math.Round(v, 3)));
        Assert.True(float.IsNaN(unscaled[^1].Label[1]));
        Assert.Throws<ArgumentException>(() => prep.Scaler.Scale(1, "NOPE"));

        // A covariate gets its own training statistics: years 1700-1978 have mean 1839 and sd sqrt(279 * 280 / 12).
        var o = Options(standardize: true);
        o.CovariateColumns = new[] { nameof(SunspotRow.YEAR) };
        var withYear = ForecastWindows.Create(ml, Sunspots.Load(ml), o);
        double yearSd = Math.Sqrt(279 * 280 / 12.0);
        Assert.Equal(1839, withYear.Scaler.Means[1], 9);
        Assert.Equal(yearSd, withYear.Scaler.StandardDeviations[1], 9);
        Assert.Equal(mean, withYear.Scaler.Means[0], 9);
        var w = Rows(ml, withYear.Train)[0];
        Assert.Equal((1700 - 1839) / yearSd, w.Features[1], 5);
        Assert.Equal((1719 - 1839) / yearSd, w.Features[39], 5);
        Assert.Equal((5 - mean) / sd, w.Features[0], 5);
        Assert.Equal(2008, withYear.Scaler.Unscale(withYear.Scaler.Scale(2008, "YEAR"), "YEAR"), 9);
    }

    [Fact]
    public void RollingOrigin_LeavesNaNLabelSlotsAtTheEnd()
    {
        var ml = new MLContext(seed: 1);
        var prep = ForecastWindows.Create(ml, Sunspots.Load(ml), Options());
        var test = Rows(ml, prep.Test!);
        Assert.Equal(30, test.Count);
        foreach (var w in test)
        {
            int available = (int)Math.Min(5, N - 1 - w.Origin);   // R's hmax = min(H, n - origin), origin 1-based
            for (int h = 0; h < 5; h++)
                Assert.Equal(h >= available, float.IsNaN(w.Label[h]));
        }
        Assert.Equal(new[] { (float)Y[308], float.NaN, float.NaN, float.NaN, float.NaN }, test[^1].Label);
        Assert.Equal(3, test[^2].Label.Count(float.IsNaN));   // origin 306: rows 307 and 308, then 3 NaN
        Assert.Equal(new[] { (float)Y[307], (float)Y[308] }, test[^2].Label.Take(2));

        var latest = Rows(ml, prep.Latest).Single();
        Assert.Equal(308, latest.Origin);
        Assert.All(latest.Label, v => Assert.True(float.IsNaN(v)));
        Assert.Equal((float)Y[308], latest.Features[^1]);
    }

    private sealed class TextYear
    {
        [LoadColumn(0)] public string YEAR { get; set; } = "";
        [LoadColumn(1)] public float SUNACTIVITY { get; set; }
    }

    [Fact]
    public void BadOptionsAndColumns_ThrowNamingTheOptionOrColumn()
    {
        var ml = new MLContext(seed: 1);
        var data = Sunspots.Load(ml);

        var e1 = Assert.Throws<ArgumentOutOfRangeException>(() => ForecastWindows.Create(ml, data, Options(lookback: 0)));
        Assert.Equal("Lookback", e1.ParamName);
        Assert.Contains("Lookback must be positive", e1.Message);
        var e2 = Assert.Throws<ArgumentOutOfRangeException>(() => ForecastWindows.Create(ml, data, Options(horizon: -2)));
        Assert.Equal("Horizon", e2.ParamName);

        var missing = Options();
        missing.TargetColumn = "SUNSPOTS";
        var e3 = Assert.Throws<ArgumentException>(() => ForecastWindows.Create(ml, data, missing));
        Assert.Equal("TargetColumn", e3.ParamName);
        Assert.Contains("'SUNSPOTS'", e3.Message);
        Assert.Contains("SUNACTIVITY", e3.Message);  // lists the columns there are

        var text = ml.Data.LoadFromTextFile<TextYear>(DataPaths.File(Sunspots.RelativePath), separatorChar: ',', hasHeader: true);
        var covariate = Options();
        covariate.CovariateColumns = new[] { "YEAR" };
        var e4 = Assert.Throws<ArgumentException>(() => ForecastWindows.Create(ml, text, covariate));
        Assert.Equal("CovariateColumns", e4.ParamName);
        Assert.Contains("'YEAR'", e4.Message);
        Assert.Contains("String", e4.Message);

        var e5 = Assert.Throws<ArgumentException>(() => ForecastWindows.Create(ml, data, Options(lookback: 276)));
        Assert.Contains("Too few rows", e5.Message);
        Assert.Contains("Lookback + Horizon = 281", e5.Message);
        Assert.Contains("279", e5.Message);

        var both = Options();
        both.TestFraction = 0.1;
        Assert.Equal("TestFraction", Assert.Throws<ArgumentException>(() => ForecastWindows.Create(ml, data, both)).ParamName);
        var twice = Options();
        twice.CovariateColumns = new[] { "SUNACTIVITY" };
        Assert.Equal("CovariateColumns", Assert.Throws<ArgumentException>(() => ForecastWindows.Create(ml, data, twice)).ParamName);
        var shortValidation = Options();
        shortValidation.ValidationCount = 3;
        Assert.Equal("ValidationCount", Assert.Throws<ArgumentException>(() => ForecastWindows.Create(ml, data, shortValidation)).ParamName);

        var withNaN = ml.Data.LoadFromEnumerable(Raw.Select((r, i) => new Multi { Sun = i == 42 ? float.NaN : (float)r.Value, Year = r.Year }).ToList());
        var nanOptions = Options();
        nanOptions.TargetColumn = "Sun";
        var e6 = Assert.Throws<InvalidOperationException>(() => ForecastWindows.Create(ml, withNaN, nanOptions));
        Assert.Contains("'Sun'", e6.Message);
        Assert.Contains("row 42", e6.Message);

        var prep = ForecastWindows.Create(ml, data, Options());
        Assert.Equal("period", Assert.Throws<ArgumentOutOfRangeException>(() => prep.EvaluateSeasonalNaive(0)).ParamName);
        Assert.Equal("period", Assert.Throws<ArgumentOutOfRangeException>(() => prep.EvaluateSeasonalNaive(300)).ParamName);
        Assert.Throws<InvalidOperationException>(() => prep.EvaluateNaive(ForecastSplit.Validation));
        var e7 = Assert.Throws<ArgumentException>(() => prep.Evaluate(prep.Test!));   // no Score column
        Assert.Contains("'Score'", e7.Message);
    }

    [Fact]
    public void NaiveAndSeasonalNaive_ReproduceTheRPeersFigures()
    {
        var ml = new MLContext(seed: 1);
        var prep = ForecastWindows.Create(ml, Sunspots.Load(ml), Options(standardize: true));
        var naive = prep.EvaluateNaive();
        var snaive = prep.EvaluateSeasonalNaive(11);
        _out.WriteLine(ForecastMetrics.ToTable(naive, snaive));
        _out.WriteLine(naive.ToString());
        _out.WriteLine(snaive.ToString());

        // ../shared/data/README.md, measured by ../shared/tools/series-baselines.R.
        Assert.Equal("17.531", prep.MaseScale.ToString("F3", System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(new[] { 24.40, 45.12, 64.90, 78.30, 85.29 }, naive.MeanAbsoluteErrorByHorizon.Select(v => Math.Round(v, 2)));
        Assert.Equal(59.60, Math.Round(naive.MeanAbsoluteError, 2));
        Assert.Equal(3.400, Math.Round(naive.MeanAbsoluteScaledError, 3));
        Assert.Equal(new[] { 26.63, 25.84, 25.01, 24.61, 23.66 }, snaive.MeanAbsoluteErrorByHorizon.Select(v => Math.Round(v, 2)));
        Assert.Equal(25.15, Math.Round(snaive.MeanAbsoluteError, 2));
        Assert.Equal(1.435, Math.Round(snaive.MeanAbsoluteScaledError, 3));

        // Rolling origin: horizon h has 30 - h + 1 labels.
        Assert.Equal(new long[] { 30, 29, 28, 27, 26 }, naive.CountByHorizon);
        Assert.Equal(30, naive.WindowCount);
        Assert.Contains("MAE", naive.ToString());
        Assert.Contains("24.40", naive.ToString());
    }

    private sealed class Scored
    {
        public float[] Label { get; set; } = Array.Empty<float>();
        public float[] Score { get; set; } = Array.Empty<float>();
    }

    private static IDataView ScoredView(MLContext ml, IEnumerable<Scored> rows, int horizon)
    {
        var schema = SchemaDefinition.Create(typeof(Scored));
        schema["Label"].ColumnType = new VectorDataViewType(NumberDataViewType.Single, horizon);
        schema["Score"].ColumnType = new VectorDataViewType(NumberDataViewType.Single, horizon);
        return ml.Data.LoadFromEnumerable(rows.ToList(), schema);
    }

    [Fact]
    public void Evaluate_UnscalesScores_SkipsNaNLabels_AndAgreesWithTheNaiveBaseline()
    {
        var ml = new MLContext(seed: 1);
        var prep = ForecastWindows.Create(ml, Sunspots.Load(ml), Options(standardize: true));
        // The naive forecast written as a model's Score in scaled units: the last input step's target, repeated.
        var scored = ScoredView(ml, Rows(ml, prep.Test!).Select(w => new Scored { Label = w.Label, Score = Enumerable.Repeat(w.Features[^1], 5).ToArray() }), 5);
        var viaView = prep.Evaluate(scored, name: "naive as a model");
        var naive = prep.EvaluateNaive();
        for (int h = 0; h < 5; h++)
        {
            Assert.Equal(naive.MeanAbsoluteErrorByHorizon[h], viaView.MeanAbsoluteErrorByHorizon[h], 3);
            Assert.Equal(naive.RootMeanSquaredErrorByHorizon[h], viaView.RootMeanSquaredErrorByHorizon[h], 3);
            Assert.Equal(naive.SymmetricMeanAbsolutePercentageErrorByHorizon[h], viaView.SymmetricMeanAbsolutePercentageErrorByHorizon[h], 3);
        }
        Assert.Equal(naive.CountByHorizon, viaView.CountByHorizon);

        // Hand-checked figures on two windows (series units, no MASE scale).
        var tiny = ScoredView(ml, new[]
        {
            new Scored { Label = new float[] { 10, 0 }, Score = new float[] { 12, 0 } },
            new Scored { Label = new float[] { 20, float.NaN }, Score = new float[] { 16, 5 } },
        }, 2);
        var m = ForecastEvaluator.Evaluate(tiny);
        Assert.Equal(new[] { 3.0, 0.0 }, m.MeanAbsoluteErrorByHorizon);
        Assert.Equal(Math.Sqrt((4 + 16) / 2.0), m.RootMeanSquaredErrorByHorizon[0], 12);
        Assert.Equal((200 * 2 / 22.0 + 200 * 4 / 36.0) / 2, m.SymmetricMeanAbsolutePercentageErrorByHorizon[0], 12);
        Assert.Equal(0.0, m.SymmetricMeanAbsolutePercentageErrorByHorizon[1]);   // y = f = 0 counts 0
        Assert.Equal(new long[] { 2, 1 }, m.CountByHorizon);
        Assert.Equal(1.5, m.MeanAbsoluteError, 12);
        Assert.True(double.IsNaN(m.MeanAbsoluteScaledError));
    }

    private sealed class ScalarRow
    {
        [VectorType(20)] public float[] Features { get; set; } = Array.Empty<float>();
        public float Label { get; set; }
    }

    private sealed class ScalarScore { public float Score { get; set; } }

    [Fact]
    public void FastTreePerHorizon_OnTheWindows_BeatsNaiveAtOneStep()
    {
        var ml = new MLContext(seed: 1);
        var prep = ForecastWindows.Create(ml, Sunspots.Load(ml), Options(standardize: true));
        var train = Rows(ml, prep.Train);
        var test = Rows(ml, prep.Test!);
        var forecasts = test.Select(_ => new float[5]).ToArray();
        for (int h = 0; h < 5; h++)
        {
            int step = h;
            var data = ml.Data.LoadFromEnumerable(train.Select(w => new ScalarRow { Features = w.Features, Label = w.Label[step] }).ToList());
            var model = ml.Regression.Trainers.FastTree(numberOfLeaves: 8, numberOfTrees: 100, minimumExampleCountPerLeaf: 5).Fit(data);
            var scores = ml.Data.CreateEnumerable<ScalarScore>(
                model.Transform(ml.Data.LoadFromEnumerable(test.Select(w => new ScalarRow { Features = w.Features }).ToList())), false).ToArray();
            for (int i = 0; i < test.Count; i++) forecasts[i][h] = scores[i].Score;
        }
        var scored = ScoredView(ml, test.Select((w, i) => new Scored { Label = w.Label, Score = forecasts[i] }), 5);
        var tree = prep.Evaluate(scored, name: "FastTree per horizon");
        var naive = prep.EvaluateNaive();
        _out.WriteLine(ForecastMetrics.ToTable(tree, naive, prep.EvaluateSeasonalNaive(11)));
        Assert.True(tree.MeanAbsoluteErrorByHorizon[0] < naive.MeanAbsoluteErrorByHorizon[0],
            $"FastTree h1 MAE {tree.MeanAbsoluteErrorByHorizon[0]:F2} should beat naive {naive.MeanAbsoluteErrorByHorizon[0]:F2}");
        Assert.True(tree.MeanAbsoluteError < naive.MeanAbsoluteError);
    }
}
