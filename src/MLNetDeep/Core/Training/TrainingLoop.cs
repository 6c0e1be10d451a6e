using System.Diagnostics;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetDeep;

/// <summary>
/// The training loop shared by every network family: epochs of shuffled mini-batches, optimizer and schedule,
/// gradient clipping, NaN detection, validation, early stopping, history, callbacks, progress, checkpoints and
/// cancellation (checked before every batch).
/// </summary>
internal sealed class TrainingLoop
{
    private readonly IHost _host;
    private readonly IChannel _ch;
    private readonly DeepTrainerOptions _o;
    private readonly TaskHead _task;
    private readonly nn.Module<Tensor, Tensor> _net;
    private readonly TrainingData _train;
    private readonly TrainingData? _valid;
    private readonly Device _device;
    private readonly int _seed;
    private readonly string _fingerprint;
    private readonly bool _hasBatchNorm;

    public TrainingLoop(IHost host, IChannel ch, DeepTrainerOptions options, TaskHead task, nn.Module<Tensor, Tensor> network,
        TrainingData train, TrainingData? valid, Device device, int seed, string fingerprint)
    {
        _host = host;
        _ch = ch;
        _o = options;
        _task = task;
        _net = network;
        _train = train;
        _valid = valid;
        _device = device;
        _seed = seed;
        _fingerprint = fingerprint;
        _hasBatchNorm = network.modules().Any(m => m is TorchSharp.Modules.BatchNorm1d or TorchSharp.Modules.BatchNorm2d);
    }

    private SafeOptimizer CreateOptimizer() => SafeOptimizer.Create(_o, _net.parameters().Where(p => p.requires_grad));

    /// <summary>Trains; returns the history of all epochs (including those of a resumed checkpoint).</summary>
    public List<EpochMetrics> Run()
    {
        if (_hasBatchNorm && _train.RowCount < 2)
            throw new InvalidOperationException($"The network has batch norm layers, which need batches of at least 2 rows, but the training data has {_train.RowCount} row. "
                + "Train on more rows, or use a network without batch norm (e.g. BatchNorm = false).");
        if (_hasBatchNorm && _o.BatchSize < 2)
            throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.BatchSize), _o.BatchSize,
                "BatchSize 1 cannot train a network with batch norm layers (the statistics of one row are undefined); use BatchSize 2 or more.");
        using var optimizer = CreateOptimizer();
        long batchesPerEpoch = (_train.RowCount + _o.BatchSize - 1) / _o.BatchSize;
        if (_hasBatchNorm && _train.RowCount % _o.BatchSize == 1 && _train.RowCount > 1) batchesPerEpoch--;
        var schedule = new LearningRateScheduler(_o, batchesPerEpoch);
        var state = new CheckpointState { Fingerprint = _fingerprint };

        if (_o.CheckpointDirectory is string dir && CheckpointState.TryLoad(dir) is CheckpointState saved)
        {
            if (saved.Fingerprint != _fingerprint)
                throw new InvalidOperationException($"The checkpoint in '{dir}' was written for another network, data or options; it differs in "
                    + $"{TrainingFingerprint.Differences(saved.Fingerprint, _fingerprint)}. Use another CheckpointDirectory or delete '{Path.Combine(dir, CheckpointState.FileName)}'.");
            state = saved;
            using (var ms = new MemoryStream(saved.Weights)) _net.load(ms);
            if (saved.OptimizerState.Length > 0)
                using (var ms = new MemoryStream(saved.OptimizerState))
                using (var r = new BinaryReader(ms))
                    optimizer.Load(r);
            if (saved.RandomState.Length > 0)
                using (var rs = torch.tensor(saved.RandomState)) torch.random.set_rng_state(rs);
            schedule.PlateauScale = saved.PlateauScale;
            schedule.PlateauBest = saved.PlateauBest;
            schedule.PlateauBadEpochs = saved.PlateauBadEpochs;
            _ch.Info($"MLNetDeep: resuming from the checkpoint in '{dir}' after epoch {saved.CompletedEpochs}"
                + (saved.Stopped ? " (training had stopped early)." : "."));
        }

        var history = state.History;
        bool monitorValidation = _valid is not null;
        using var pch = _host.StartProgressChannel("MLNetDeep training");
        int epochShown = state.CompletedEpochs;
        pch.SetHeader(new ProgressHeader(new[] { "train loss" }, new[] { "epochs" }), e => e.SetProgress(0, epochShown, _o.NumberOfEpochs));

        for (int epoch = state.CompletedEpochs; epoch < _o.NumberOfEpochs && !state.Stopped; epoch++)
        {
            var watch = Stopwatch.StartNew();
            double trainLoss = TrainEpoch(optimizer, schedule, epoch, batchesPerEpoch);
            if (!WeightsFinite())
                throw new InvalidOperationException($"Training diverged: the network's weights became NaN or infinite during epoch {epoch + 1} "
                    + $"(learning rate up to {_o.LearningRate:G3}), although every batch's loss was finite. Lower LearningRate, set GradientClipNorm "
                    + "(e.g. 1.0), or normalize the features (e.g. NormalizeMeanVariance).");
            double? validLoss = null, validMetric = null;
            if (_valid is not null)
            {
                var (l, m) = Evaluate(_valid);
                validLoss = l;
                validMetric = m;
            }
            double monitored = validLoss ?? trainLoss;
            if (schedule.EndEpoch(monitored))
                _ch.Info($"MLNetDeep: validation loss has not improved for {_o.PlateauPatience + 1} epochs; learning rate reduced to {schedule.Rate(epoch + 1, 0):G3}.");
            var record = new EpochMetrics(epoch + 1, trainLoss, validLoss, _task.MetricName, validMetric, schedule.Rate(epoch, batchesPerEpoch - 1), watch.Elapsed.TotalSeconds);
            history.Add(record);
            epochShown = epoch + 1;
            pch.Checkpoint(trainLoss, epoch + 1);
            _ch.Info("MLNetDeep: " + record);
            if (_o.ShowProgress) ConsoleProgress.EpochDone(record, _o.NumberOfEpochs);
            _o.EpochCallback?.Invoke(record);

            if (monitored < state.BestLoss - _o.EarlyStoppingMinDelta)
            {
                state.BestLoss = monitored;
                state.BestEpoch = epoch + 1;
                state.EpochsWithoutImprovement = 0;
                if (_o.EarlyStoppingPatience > 0 && _o.RestoreBestWeights) state.BestWeights = DeepModelParameters.SerializeWeights(_net);
            }
            else if (_o.EarlyStoppingPatience > 0 && ++state.EpochsWithoutImprovement >= _o.EarlyStoppingPatience)
            {
                state.Stopped = true;
                _ch.Info($"MLNetDeep: early stopping after epoch {epoch + 1}: the {(monitorValidation ? "validation" : "training")} loss has not improved by "
                    + $"{_o.EarlyStoppingMinDelta} for {_o.EarlyStoppingPatience} epochs (best {state.BestLoss:G5} at epoch {state.BestEpoch}).");
            }

            state.CompletedEpochs = epoch + 1;
            if (_o.CheckpointDirectory is string cdir)
            {
                state.PlateauScale = schedule.PlateauScale;
                state.PlateauBest = schedule.PlateauBest;
                state.PlateauBadEpochs = schedule.PlateauBadEpochs;
                state.Weights = DeepModelParameters.SerializeWeights(_net);
                using (var ms = new MemoryStream())
                {
                    using (var w = new BinaryWriter(ms, System.Text.Encoding.UTF8, leaveOpen: true)) optimizer.Save(w);
                    state.OptimizerState = ms.ToArray();
                }
                using (var rs = torch.random.get_rng_state()) state.RandomState = rs.bytes.ToArray();
                state.Save(cdir);
            }
        }

        if (_o.EarlyStoppingPatience > 0 && _o.RestoreBestWeights && state.BestWeights is not null && state.BestEpoch != state.CompletedEpochs)
        {
            using (var ms = new MemoryStream(state.BestWeights)) _net.load(ms);
            _ch.Info($"MLNetDeep: restored the weights of the best epoch ({state.BestEpoch}).");
        }
        if (!OutputsFinite())
            throw new InvalidOperationException("Training diverged: the trained network predicts NaN or infinite values for the first training rows "
                + $"(its weights are finite but too large; learning rate up to {_o.LearningRate:G3}). Lower LearningRate, set GradientClipNorm (e.g. 1.0), "
                + "or normalize the features (e.g. NormalizeMeanVariance).");
        if (_o.PlotDirectory is string plotDir && history.Count > 0)
        {
            string png = Path.Combine(plotDir, "training-curves.png");
            try { DeepPlots.SaveTrainingCurves(history, png); _ch.Info($"MLNetDeep: training curves written to '{png}'."); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or TypeInitializationException or DllNotFoundException or InvalidOperationException)
            { _ch.Warning($"MLNetDeep: could not write the training curves to '{png}': {e.Message}"); }
        }
        return history;
    }

    private double TrainEpoch(SafeOptimizer optimizer, LearningRateScheduler schedule, int epoch, long batchesPerEpoch)
    {
        _net.train();
        (_net as IEpochAware)?.BeginEpoch(_seed, epoch);
        var shuffle = new Random(unchecked(_seed * 7919 + epoch * 104729 + 17));
        double lossSum = 0;
        long rows = 0, batch = 0;
        var progress = _o.ShowProgress ? new ConsoleProgress(epoch + 1, _o.NumberOfEpochs, batchesPerEpoch) : null;
        bool bucket = _o is SequenceOptions { BucketByLength: true };
        using var batches = _train.Batches(_o.BatchSize, shuffle, _device, dropSingletonLast: _hasBatchNorm, _o.ShufflePoolRows, bucket).GetEnumerator();
        while (true)
        {
            _host.CheckAlive();
            _o.CancellationToken.ThrowIfCancellationRequested();
            using var scope = torch.NewDisposeScope();
            if (!batches.MoveNext()) break;
            _o.BatchStarting?.Invoke(epoch, batch);
            var (x, y, w) = batches.Current;
            double lr = schedule.Rate(epoch, batch);
            optimizer.LearningRate = lr;
            optimizer.ZeroGrad();
            var output = _net.forward(x);
            var loss = _task.Loss(output, y, w);
            double value = loss.item<float>();
            if (!double.IsFinite(value))
                throw new InvalidOperationException($"Training diverged: the loss became {value} at epoch {epoch + 1}, batch {batch + 1} (learning rate {lr:G3}). "
                    + "Lower LearningRate, set GradientClipNorm (e.g. 1.0), or normalize the features (e.g. NormalizeMeanVariance).");
            loss.backward();
            if (_o.GradientClipNorm > 0) nn.utils.clip_grad_norm_(_net.parameters(), _o.GradientClipNorm);
            optimizer.Step();
            long n = y.shape[0];
            lossSum += value * n;
            rows += n;
            batch++;
            progress?.Batch(batch, value);
        }
        progress?.Clear();
        return lossSum / Math.Max(1, rows);
    }

    /// <summary>Whether every weight and floating-point buffer (batch-norm statistics) is finite: the last step of an epoch can
    /// overflow after a finite loss, and a model must never be returned that predicts NaN.</summary>
    private bool WeightsFinite()
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        foreach (var t in _net.parameters().Concat(_net.buffers()))
            if (t.is_floating_point() && !torch.isfinite(t).all().item<bool>()) return false;
        return true;
    }

    /// <summary>Whether the trained network's outputs (evaluation mode) on the first training rows are finite.</summary>
    private bool OutputsFinite()
    {
        _net.eval();
        try
        {
            using var noGrad = torch.no_grad();
            // One training-sized batch: the size training just ran with fits in memory (256 rows of 512 tokens through
            // explicit attention took gigabytes more than the training batches of 64 did).
            using var batches = _train.Batches(Math.Min(_o.BatchSize, 256), null, _device, dropSingletonLast: false).GetEnumerator();
            using var scope = torch.NewDisposeScope();
            return !batches.MoveNext() || torch.isfinite(_net.forward(batches.Current.Item1)).all().item<bool>();
        }
        finally
        {
            _net.train();
        }
    }

    /// <summary>Mean loss and task metric over a data set, in evaluation mode.</summary>
    public (double Loss, double Metric) Evaluate(TrainingData data)
    {
        _net.eval();
        var acc = new MetricAccumulator();
        double lossSum = 0;
        long rows = 0;
        using var noGrad = torch.no_grad();
        int batchSize = Math.Max(_o.BatchSize, 256);
        using var batches = data.Batches(batchSize, null, _device, dropSingletonLast: false).GetEnumerator();
        while (true)
        {
            _host.CheckAlive();
            _o.CancellationToken.ThrowIfCancellationRequested();
            using var scope = torch.NewDisposeScope();
            if (!batches.MoveNext()) break;
            var (x, y, _) = batches.Current;
            var output = _net.forward(x);
            long n = y.shape[0];
            lossSum += _task.Loss(output, y).item<float>() * n;
            rows += n;
            _task.Accumulate(output, y, acc);
        }
        _net.train();
        return (lossSum / Math.Max(1, rows), _task.Metric(acc));
    }
}

/// <summary>
/// A one-line console progress display (standard error), refreshed at most every 200 ms. When standard error is not a
/// terminal (a redirected CI log), the line is not redrawn at all: only the one line per epoch is written.
/// </summary>
internal sealed class ConsoleProgress
{
    /// <summary>Whether the batch line is redrawn (standard error is a terminal); tests set it.</summary>
    internal static bool Redraw = !Console.IsErrorRedirected;

    private readonly int _epoch, _epochs;
    private readonly long _batches;
    private readonly Stopwatch _watch = Stopwatch.StartNew();
    private long _lastDraw = -1000;

    public ConsoleProgress(int epoch, int epochs, long batches)
    {
        _epoch = epoch;
        _epochs = epochs;
        _batches = Math.Max(1, batches);
    }

    public void Batch(long done, double loss)
    {
        if (!Redraw) return;
        long now = _watch.ElapsedMilliseconds;
        if (now - _lastDraw < 200 && done < _batches) return;
        _lastDraw = now;
        int width = 30, filled = (int)(width * Math.Min(1.0, done / (double)_batches));
        Console.Error.Write($"\repoch {_epoch}/{_epochs} [{new string('#', filled)}{new string('.', width - filled)}] {done}/{_batches} loss {loss:F4} {now / 1000.0:F0}s ");
    }

    public void Clear()
    {
        if (Redraw) Console.Error.Write("\r" + new string(' ', 90) + "\r");
    }

    public static void EpochDone(EpochMetrics m, int epochs) => Console.Error.WriteLine($"[{m.Epoch}/{epochs}] {m}");
}
