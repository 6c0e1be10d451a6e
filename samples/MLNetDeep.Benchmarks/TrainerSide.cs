// The MLP benchmark's measured side: one Fit of the MLNetDeep trainer on the prepared IDataView.
using System.Diagnostics;
using Microsoft.ML;
using TorchSharp;
using static MLNetDeep.Benchmarks.MlpSettings;

namespace MLNetDeep.Benchmarks;

internal sealed record TrainerResult(double LoopSeconds, double FitSeconds, long Batches, long LoopAllocatedBytes, int Gen0, double LastEpochTrainLoss, double ForeignCores, double OwnCores, double[] EpochSeconds)
{
    /// <summary>The fitted model, kept only to compute the sanity loss of the last run.</summary>
    public ITransformer? FinalLossModel { get; set; }
}

internal static class TrainerSide
{
    /// <summary>
    /// The trainer's options for a case: ReLU, dropout 0, no batch norm, AdamW, squared error on the standardized label
    /// (regression), all rows cached. The raw loop builds its network from these options too (<see cref="LibraryNetworks.Mlp"/>).
    /// </summary>
    public static MlpOptions Options(Prepared p, Case c, int epochs, Action<EpochMetrics>? onEpoch = null)
    {
        MlpOptions o = p.Task == TaskKind.Regression ? new MlpRegressionTrainer.Options() : new MlpBinaryTrainer.Options();
        o.HiddenLayers = c.Hidden;
        o.Dropout = 0;
        o.BatchNorm = false;
        o.Activation = DeepActivation.Relu;
        o.NumberOfEpochs = epochs;
        o.BatchSize = c.Batch;
        o.Optimizer = DeepOptimizer.AdamW;
        o.LearningRate = LearningRate;
        o.WeightDecay = WeightDecay;
        if (p.Task == TaskKind.Regression)
        {
            o.RegressionLoss = RegressionLoss.SquaredError;
            o.StandardizeLabel = true;
        }
        o.Caching = DataCaching.Memory;
        o.EpochCallback = onEpoch;
        return o;
    }

    /// <summary>
    /// One Fit of the MLNetDeep trainer. The loop time is the sum of EpochMetrics.Seconds (the epochs only: no data
    /// loading, network building or model creation). <paramref name="afterEpoch"/> runs inside the epoch callback,
    /// i.e. after the trainer stopped that epoch's clock and before it starts the next one's.
    /// </summary>
    public static TrainerResult Train(Prepared p, Case c, int epochs, Action<string>? log = null, Action<int>? afterEpoch = null)
    {
        var ml = new MLContext(Seed);
        if (log is not null) ml.Log += (_, e) => log(e.Message);
        double loopSeconds = 0, lastLoss = double.NaN;
        var epochSeconds = new List<double>();
        long loopAlloc = 0, mark = 0;
        int gen0 = 0, gen0Mark = 0;
        void OnEpoch(EpochMetrics m)
        {
            // Managed allocations of epochs 2..E (epoch 1 also holds data loading), excluding afterEpoch's own.
            if (m.Epoch > 1)
            {
                loopAlloc += GC.GetAllocatedBytesForCurrentThread() - mark;
                gen0 += GC.CollectionCount(0) - gen0Mark;
            }
            loopSeconds += m.Seconds;
            epochSeconds.Add(m.Seconds);
            lastLoss = m.TrainLoss;
            afterEpoch?.Invoke(m.Epoch);
            mark = GC.GetAllocatedBytesForCurrentThread();
            gen0Mark = GC.CollectionCount(0);
        }
        var cpu = CpuSnapshot.Take();
        var watch = Stopwatch.StartNew();
        var o = Options(p, c, epochs, OnEpoch);
        ITransformer model = o is MlpRegressionTrainer.Options r
            ? ml.Regression.Trainers.Mlp(r).Fit(p.View)
            : ml.BinaryClassification.Trainers.Mlp((MlpBinaryTrainer.Options)o).Fit(p.View);
        watch.Stop();
        var cpuEnd = CpuSnapshot.Take();
        long batchesPerEpoch = (p.N + c.Batch - 1) / c.Batch;
        long measuredBatches = batchesPerEpoch * Math.Max(0, epochs - 1);
        return new TrainerResult(loopSeconds, watch.Elapsed.TotalSeconds, batchesPerEpoch * epochs, measuredBatches > 0 ? loopAlloc * epochs / (epochs - 1) : 0, gen0, lastLoss,
            cpuEnd.ForeignCoresSince(cpu), cpuEnd.OwnCoresSince(cpu), epochSeconds.ToArray()) { FinalLossModel = model };
    }

    /// <summary>Loss of the trainer's model on all training rows, through ML.NET scoring (in the label units the trainer trains on).</summary>
    public static double FullLoss(Prepared p, ITransformer model)
    {
        var scored = model.Transform(p.View);
        var scores = new float[p.N];
        using (var cursor = scored.GetRowCursor(new[] { scored.Schema["Score"] }))
        {
            var get = cursor.GetGetter<float>(scored.Schema["Score"]);
            long i = 0;
            float s = 0;
            while (cursor.MoveNext()) { get(ref s); scores[i++] = s; }
        }
        using var scope = torch.NewDisposeScope();
        var output = torch.tensor(scores).unsqueeze(1);
        if (p.Task == TaskKind.Regression) output = p.Standardize(output); // Score is in label units; the loop's loss is on the standardized label
        return RawLoop.Loss(p.Task, output, p.Y).item<float>();
    }
}
