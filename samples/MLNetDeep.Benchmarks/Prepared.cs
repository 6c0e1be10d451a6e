// The MLP benchmark's data: featurized once, cached, and read into tensors for the raw loop.
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
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
    public required Tensor Y;             // regression: the label standardized as the trainer does (Standardize); binary: 0/1 float32
    public required Tensor YRaw;          // the label as read (regression: original units)
    public required long N;
    public required int D;
    /// <summary>Regression: the trainer's own label head, prepared on this data (its label statistics); null for binary.</summary>
    public RegressionHead? Head;
    public double PrepareSeconds;

    public void Dispose()
    {
        X.Dispose();
        Y.Dispose();
        YRaw.Dispose();
        Head?.Dispose();
    }

    /// <summary>
    /// Regression: a label (or score) tensor in the units the network trains on, with <see cref="Head"/>'s mean and
    /// scale, as its loss standardizes each batch's label (SafeOps.Affine(y, 1 / Scale, -Mean / Scale)).
    /// </summary>
    public Tensor Standardize(Tensor y) => SafeOps.Affine(y, 1 / Head!.Scale, -Head.Mean / Head.Scale);

    public static Prepared Load(string data) => data == "bike" ? Bike() : Sms();

    public static Prepared Bike()
    {
        var watch = Stopwatch.StartNew();
        var ml = new MLContext(Seed);
        var raw = RealData.BikeTrain(ml);
        // Featurization as the tests' Pipelines.BikeFeatures, run once; the trainer then gets the cached result.
        var featurizer = ml.Transforms.Concatenate("Features", BikeRow.FeatureColumns).Append(ml.Transforms.NormalizeMeanVariance("Features")).Fit(raw);
        var view = ml.Data.Cache(featurizer.Transform(raw), "Features", "Label");
        return Read(ml, "bike", TaskKind.Regression, view, watch);
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
        return Read(ml, "sms", TaskKind.Binary, view, watch);
    }

    /// <summary>Reads the cached view once (which also fills ML.NET's cache) into dense tensors, in the view's row order.</summary>
    private static Prepared Read(MLContext ml, string name, TaskKind task, IDataView view, Stopwatch watch)
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
            // The trainer's own label standardization: its RegressionHead (squared error, StandardizeLabel, as in
            // TrainerSide.Options), prepared on the data as the trainer reads it, gives the statistics; the raw loop
            // trains on the label standardized once up front (the trainer standardizes per batch, in its loss).
            p.Head = new RegressionHead(RegressionLoss.SquaredError, 1, standardize: true);
            using (var ch = ((IHostEnvironment)ml).Start("label statistics"))
            using (var data = TrainingData.Load(ch, view, DenseEncoder.FromSchema(view.Schema, "Features", "training"), p.Head, "Features", "Label", "training",
                DataCaching.Memory, int.MaxValue))
                p.Head.Prepare(data, torch.CPU);
            p.Y = p.Standardize(yRaw).DetachFromDisposeScope();
        }
        GC.Collect();
        p.PrepareSeconds = watch.Elapsed.TotalSeconds;
        return p;
    }
}
