// The MLP benchmark's data: featurized once, cached, and read into tensors for the raw loop.
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Text;
using MLNetDeep.TestData;
using TorchSharp;
using static TorchSharp.torch;
using static MLNetDeep.Benchmarks.MlpSettings;

namespace MLNetDeep.Benchmarks;

/// <summary>A featurized, cached data set: the IDataView the trainer gets and the tensors the raw loop gets (same rows, same order).</summary>
internal sealed class Prepared : IDisposable
{
    public required string Name;
    public required TaskKind Task;
    public required IDataView View;       // cached; Features is a known-size float vector, Label float (regression) or bool (binary)
    public required Tensor X;             // [N, D] float32
    public required Tensor Y;             // regression: standardized label; binary: 0/1 float32
    public required Tensor YRaw;          // the label as read (regression: original units)
    public required long N;
    public required int D;
    public double Mean, Std = 1;           // label moments (regression), as the trainer computes them
    public double PrepareSeconds;

    public void Dispose() { X.Dispose(); Y.Dispose(); YRaw.Dispose(); }

    public static Prepared Load(string data) => data == "bike" ? Bike() : Sms();

    public static Prepared Bike()
    {
        var watch = Stopwatch.StartNew();
        var ml = new MLContext(Seed);
        var raw = RealData.BikeTrain(ml);
        // Featurization as the tests' Pipelines.BikeFeatures, run once; the trainer then gets the cached result.
        var featurizer = ml.Transforms.Concatenate("Features", BikeRow.FeatureColumns).Append(ml.Transforms.NormalizeMeanVariance("Features")).Fit(raw);
        var view = ml.Data.Cache(featurizer.Transform(raw), "Features", "Label");
        return Read("bike", TaskKind.Regression, view, watch);
    }

    public static Prepared Sms()
    {
        var watch = Stopwatch.StartNew();
        var ml = new MLContext(Seed);
        var raw = RealData.Sms(ml);
        // Featurization as the tests' Pipelines.SmsFeatures (word 1-2 grams, char 3-grams, slots seen >= 3 times).
        var featurizer = ml.Transforms.Text.FeaturizeText("Features", new TextFeaturizingEstimator.Options
        {
            WordFeatureExtractor = new WordBagEstimator.Options { NgramLength = 2 },
            CharFeatureExtractor = new WordBagEstimator.Options { NgramLength = 3, UseAllLengths = false },
        }, nameof(SmsRow.Message))
            .Append(ml.Transforms.FeatureSelection.SelectFeaturesBasedOnCount("Features", count: 3))
            .Fit(raw);
        var view = ml.Data.Cache(featurizer.Transform(raw), "Features", "Label");
        return Read("sms", TaskKind.Binary, view, watch);
    }

    /// <summary>Reads the cached view once (which also fills ML.NET's cache) into dense tensors, in the view's row order.</summary>
    private static Prepared Read(string name, TaskKind task, IDataView view, Stopwatch watch)
    {
        var featureCol = view.Schema["Features"];
        var labelCol = view.Schema["Label"];
        int d = ((VectorDataViewType)featureCol.Type).Size;
        long n = view.GetRowCount() ?? Bench.CountRows(view, labelCol);
        // One native tensor, filled row by row through its data span.
        var x = torch.empty(n, d).DetachFromDisposeScope();
        var labels = new float[n];
        using var span = x.data<float>();
        using (var cursor = view.GetRowCursor(new[] { featureCol, labelCol }))
        {
            var getX = cursor.GetGetter<VBuffer<float>>(featureCol);
            ValueGetter<float>? getF = task == TaskKind.Regression ? cursor.GetGetter<float>(labelCol) : null;
            ValueGetter<bool>? getB = task == TaskKind.Binary ? cursor.GetGetter<bool>(labelCol) : null;
            VBuffer<float> buffer = default;
            var row = new float[d];
            float f = 0;
            bool b = false;
            long i = 0;
            while (cursor.MoveNext())
            {
                getX(ref buffer);
                buffer.CopyTo(row);
                span.CopyFrom(row, 0, i * d);
                if (getF is not null) { getF(ref f); labels[i] = f; }
                else { getB!(ref b); labels[i] = b ? 1f : 0f; }
                i++;
            }
            if (i != n) throw new InvalidOperationException($"read {i} rows, expected {n}");
        }
        var yRaw = torch.tensor(labels).DetachFromDisposeScope();
        var p = new Prepared { Name = name, Task = task, View = view, X = x, YRaw = yRaw, Y = yRaw, N = n, D = d };
        if (task == TaskKind.Regression)
        {
            // The trainer's RegressionTask: mean and unbiased std in double, then trains on (y - mean) / std.
            using (var y64 = yRaw.to_type(ScalarType.Float64))
            {
                p.Mean = y64.mean().item<double>();
                p.Std = y64.std().item<double>();
            }
            if (p.Std <= 1e-12) p.Std = 1;
            using var centred = yRaw - p.Mean;
            p.Y = (centred / p.Std).DetachFromDisposeScope();
        }
        GC.Collect();
        p.PrepareSeconds = watch.Elapsed.TotalSeconds;
        return p;
    }
}
