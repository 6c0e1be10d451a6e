// RNN benchmark (`--rnn`): the MLNetDeep recurrent trainer (LSTM over word tokens) on the SMS spam messages against a
// hand-written TorchSharp loop over the same network (the library's RnnNetwork, built from the trainer's options:
// LibraryNetworks.Rnn), optimizer, loss, gradient clipping and batches (the trainer's own shuffle and per-batch
// padding, replicated), in the same run; batch scoring (Transform over all messages) against a raw forward pass;
// PredictionEngine latency through the whole pipeline (tokenization included) and a leak check; the peak RSS of a
// whole training run in a child process; and how the cost grows with the sequence length and what BucketByLength buys
// on SMS's ragged lengths. See README.md.
using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetDeep.TestData;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

using static MLNetDeep.Benchmarks.TokenBench;

namespace MLNetDeep.Benchmarks;

internal static class RnnBenchmark
{
    public const string Flag = "--rnn";
    public const string MemoryChildFlag = "--rnn-memory-child";
    private const int Seed = 20261123;
    private const double LearningRate = 1e-3, WeightDecay = 1e-4, ClipNorm = 1.0; // ClipNorm: RnnOptions' default GradientClipNorm
    private const int EmbeddingSize = 64, HiddenSize = 64, ScoringBatch = 256;
    private const int MaximumLength = 256;   // SequenceOptions.MaximumSequenceLength's default: longer messages keep their first 256 tokens
    private const float DropoutRate = 0.2f;  // RnnOptions.Dropout's default (before the head; one layer has no dropout between layers)
    private const int PoolBatches = 50;      // TrainingData: BucketByLength sorts pools of 50 batches by length

    private static int _epochs = 5, _batch = 64, _trainRows, _scoringRepeats = 5, _latencyCalls = 2_000, _memoryEpochs = 10,
        _lengthRows = 1_024, _lengthEpochs = 2, _bucketEpochs = 3;
    private static int[] _lengths = { 32, 128, 512 };
    private static int? _threads;

    private static RnnBinaryTrainer.Options TrainerOptions(int epochs, Action<EpochMetrics>? callback, bool bucket = false, int maxLength = MaximumLength) => new()
    {
        FeatureColumnName = "Tokens", LabelColumnName = "Label",
        Cell = RecurrentCell.Lstm, EmbeddingSize = EmbeddingSize, HiddenSize = HiddenSize, NumberOfLayers = 1, Bidirectional = false,
        Dropout = DropoutRate, Pooling = SequencePooling.Last, MaximumSequenceLength = maxLength, BucketByLength = bucket,
        NumberOfEpochs = epochs, BatchSize = _batch, Optimizer = DeepOptimizer.AdamW, LearningRate = LearningRate, WeightDecay = WeightDecay,
        GradientClipNorm = ClipNorm, Schedule = LearningRateSchedule.Constant, Caching = DataCaching.Memory, EpochCallback = callback,
    };

    private static (long[] Order, List<long> Starts) EpochBatches(TokenBench.TokenData d, int epoch, bool bucket) =>
        TokenBench.EpochBatches(d, epoch, bucket, Seed, _batch, PoolBatches);

    /// <summary>Padding of one epoch's batches: padded share of the slots, and the LSTM's sequential steps (the sum of the batches' longest rows).</summary>
    private static (double PaddingFraction, long Steps) Padding(TokenBench.TokenData d, int epoch, bool bucket)
    {
        var (order, starts) = EpochBatches(d, epoch, bucket);
        long tokens = 0, slots = 0, steps = 0;
        foreach (long start in starts)
        {
            int len = (int)Math.Min(_batch, d.Count - start), t = 1;
            for (int i = 0; i < len; i++)
            {
                int l = d.Rows[order[start + i]].Length;
                tokens += l;
                t = Math.Max(t, l);
            }
            slots += (long)len * t;
            steps += t;
        }
        return (1 - tokens / (double)slots, steps);
    }

    /// <summary>The minimal raw loop: per batch pad, zero_grad, forward, BCE with logits, backward, clip_grad_norm_, AdamW step.</summary>
    private sealed class RawLoop : IDisposable
    {
        private readonly TokenBench.TokenData _d;
        private readonly bool _bucket;
        public readonly nn.Module<Tensor, Tensor> Net;
        private readonly OptimizerHelper _optimizer;

        /// <summary>A loop over <paramref name="d"/>, the rows of the token column of <paramref name="schema"/>, the trainer's network for it.</summary>
        public RawLoop(DataViewSchema schema, TokenBench.TokenData d, bool bucket, int maxLength = MaximumLength)
        {
            _d = d;
            _bucket = bucket;
            torch.manual_seed(Seed); // the trainer seeds the same way before building its network: same initial weights
            Net = LibraryNetworks.Rnn(TrainerOptions(1, null, bucket, maxLength), schema, outputs: 1); // RnnNetwork: embedding, packed LSTM, last step, dropout, head
            _optimizer = torch.optim.AdamW(Net.parameters(), LearningRate, weight_decay: WeightDecay);
        }

        /// <summary>Mean training loss of the last epoch run with <c>meanLoss: true</c> (as the trainer's EpochMetrics.TrainLoss).</summary>
        public double LastLoss { get; private set; } = double.NaN;

        /// <summary>
        /// One epoch with the batches of the trainer's epoch <paramref name="epoch"/> (0-based); seconds. With
        /// <paramref name="meanLoss"/> (sanity check only, not in timed epochs) it also reads every batch's loss.
        /// </summary>
        public double Epoch(int epoch, bool meanLoss = false)
        {
            var watch = Stopwatch.StartNew();
            Net.train();
            var (order, starts) = EpochBatches(_d, epoch, _bucket);
            double lossSum = 0;
            foreach (long start in starts)
            {
                using var scope = torch.NewDisposeScope();
                var rows = order.AsSpan((int)start, (int)Math.Min(_batch, _d.Count - start));
                var x = PadIds(_d, rows);
                var y = BatchLabels(_d, rows);
                _optimizer.zero_grad();
                var loss = F.binary_cross_entropy_with_logits(Net.forward(x).squeeze(1), y);
                if (meanLoss) lossSum += loss.item<float>() * (double)rows.Length;
                loss.backward();
                nn.utils.clip_grad_norm_(Net.parameters(), ClipNorm);
                _optimizer.step();
            }
            if (meanLoss) LastLoss = lossSum / _d.Count;
            return watch.Elapsed.TotalSeconds;
        }

        public void Dispose()
        {
            _optimizer.Dispose();
            Net.Dispose();
        }
    }

    /// <summary>The epoch times of an interleaved run; element 0 of each is warm-up.</summary>
    private sealed record Interleaving(List<double> Trainer, List<double> Raw, double RawWarmUp, double FitSeconds, double ForeignCores, ITransformer Model, RawLoop Loop)
    {
        public double TrainerMedian => Bench.Median(Trainer.Skip(1));
        public double RawMedian => Bench.Median(Raw.Skip(1));
    }

    /// <summary>
    /// One raw epoch, then a trainer Fit of 1 + <paramref name="epochs"/> epochs with a raw epoch run inside its epoch
    /// callback after each of its epochs (so both sides meet the same machine state), on the batches of the trainer's
    /// epoch it follows. The trainer's first epoch and the raw epoch after it are warm-up. The caller disposes the loop.
    /// </summary>
    private static Interleaving Interleaved(IDataView view, TokenBench.TokenData d, int epochs, bool bucket, int maxLength, Action<EpochMetrics, double>? onEpoch = null, Action<double>? onRawWarmUp = null)
    {
        var ml = new MLContext(Seed);
        var loop = new RawLoop(view.Schema, d, bucket, maxLength);
        double warm = loop.Epoch(0);
        onRawWarmUp?.Invoke(warm);
        var trainer = new List<double>();
        var raw = new List<double>();
        double rawInsideFit = 0;
        var cpu = CpuSnapshot.Take();
        var watch = Stopwatch.StartNew();
        var model = ml.BinaryClassification.Trainers.Rnn(TrainerOptions(epochs + 1, m =>
        {
            trainer.Add(m.Seconds);
            double r = loop.Epoch(m.Epoch - 1);
            rawInsideFit += r;
            raw.Add(r);
            onEpoch?.Invoke(m, r);
        }, bucket, maxLength)).Fit(view);
        double fit = watch.Elapsed.TotalSeconds - rawInsideFit;
        double foreign = CpuSnapshot.Take().ForeignCoresSince(cpu);
        LibraryNetworks.SameParameterCount(loop.Net, model);
        return new Interleaving(trainer, raw, warm, fit, foreign, model, loop);
    }

    /// <summary>
    /// Sanity check (untimed; also warms both sides up): one epoch of the raw loop, then a one-epoch trainer Fit, each
    /// right after torch.manual_seed(seed). Same initial weights, same batches and the same dropout masks (both draw
    /// from the global generator in the same order), so the mean training losses agree up to float rounding — unless
    /// the raw side is not the trainer's computation.
    /// </summary>
    private static void SameComputation(IDataView view, TokenBench.TokenData d)
    {
        using var loop = new RawLoop(view.Schema, d, bucket: false);
        loop.Epoch(0, meanLoss: true);
        double trainerLoss = double.NaN;
        new MLContext(Seed).BinaryClassification.Trainers.Rnn(TrainerOptions(1, m => trainerLoss = m.TrainLoss)).Fit(view);
        double difference = Math.Abs(trainerLoss - loop.LastLoss);
        Console.WriteLine($"  sanity (untimed, also warm-up): one epoch from the same seed: mean training loss trainer {trainerLoss:F6}, raw loop {loop.LastLoss:F6} "
            + $"({(difference < 1e-4 ? "the same computation" : "DIFFERENT: the raw loop does not reproduce the trainer's network, batches or optimizer")})");
        Bench.Settle();
    }

    // ---------------------------------------------------------------- the benchmark

    public static int Run(string[] args)
    {
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{a} needs a value");
            int NextInt() => int.Parse(Next(), CultureInfo.InvariantCulture);
            switch (a)
            {
                case Flag: break;
                case "--epochs": _epochs = NextInt(); break;
                case "--batch": _batch = NextInt(); break;
                case "--train-rows": _trainRows = NextInt(); break;
                case "--scoring-repeats": _scoringRepeats = NextInt(); break;
                case "--latency-calls": _latencyCalls = NextInt(); break;
                case "--memory-epochs": _memoryEpochs = NextInt(); break;
                case "--lengths": _lengths = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(x => int.Parse(x, CultureInfo.InvariantCulture)).ToArray(); break;
                case "--length-rows": _lengthRows = NextInt(); break;
                case "--length-epochs": _lengthEpochs = NextInt(); break;
                case "--bucket-epochs": _bucketEpochs = NextInt(); break;
                case "--threads": _threads = NextInt(); break;
                case "-h":
                case "--help":
                default:
                    Console.Error.WriteLine($"{(a is "-h" or "--help" ? "" : $"unknown argument '{a}'. ")}usage: --rnn [--epochs N (5 timed, after 1 warm-up)] [--batch N (64)]"
                        + " [--train-rows N (0 = all 5574 SMS messages)] [--scoring-repeats N (5)] [--latency-calls N (2000)] [--memory-epochs N (10)]"
                        + " [--lengths L,L,... (32,128,512)] [--length-rows N (1024)] [--length-epochs N (2 timed, after 1 warm-up)] [--bucket-epochs N (3 timed, after 1 warm-up)]"
                        + " [--threads N (torch default)]");
                    return 2;
            }
        }
        if (_epochs < 1 || _batch < 2 || _trainRows < 0 || (_trainRows > 0 && _trainRows < _batch) || _scoringRepeats < 1 || _latencyCalls < 10 || _memoryEpochs < 1
            || _lengths.Length == 0 || _lengths.Any(l => l < 1) || _lengthRows < _batch || _lengthEpochs < 1 || _bucketEpochs < 1 || _threads < 1)
        { Console.Error.WriteLine("invalid option value (try --rnn --help)"); return 2; }

        var total = Stopwatch.StartNew();
        using (var probe = torch.zeros(1)) { }
        if (_threads is int threads) torch.set_num_threads(threads);
        var ml = new MLContext(Seed);
        var rawAll = RealData.Sms(ml);
        var tokenModel = SmsTokens(ml).Fit(rawAll);
        var tokensAll = ml.Data.Cache(tokenModel.Transform(rawAll), "Tokens", "Label");
        var trainView = _trainRows > 0 ? ml.Data.TakeRows(tokensAll, _trainRows) : tokensAll;
        var all = ReadTokens(tokensAll, MaximumLength);
        var train = ReadTokens(trainView, MaximumLength);
        int keyCount = all.Vocabulary - 2;
        var lengths = all.Rows.Select(r => r.Length).OrderBy(l => l).ToArray();
        var (fullLengths, truncated) = FullLengths(tokensAll);

        Console.WriteLine("MLNetDeep RNN benchmark: SMS spam, LSTM trainer vs the same network in a raw TorchSharp loop");
        Console.WriteLine($"  {DateTime.Now:yyyy-MM-dd HH:mm}, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, {Environment.ProcessorCount} logical cores, torch threads {torch.get_num_threads()}");
        Console.WriteLine($"  LSTM: embedding {EmbeddingSize} (vocabulary {all.Vocabulary} = {keyCount} word keys + padding + unknown), 1 layer of {HiddenSize}, last-step pooling, dropout {DropoutRate}, head 1");
        Console.WriteLine($"  AdamW lr {LearningRate} weight decay {WeightDecay}, gradient clipping at norm {ClipNorm}, BCE with logits, batch {_batch}, constant rate; 1 warm-up + {_epochs} timed epochs per side");
        Console.WriteLine($"  data: {all.Count} messages ({all.Labels.Count(l => l > 0)} spam), training on {train.Count}; tokens per message: mean {lengths.Average():F1}, median {lengths[lengths.Length / 2]}, "
            + $"p90 {lengths[(int)(0.9 * lengths.Length)]}, max {fullLengths} ({truncated} message(s) cut to {MaximumLength}), {lengths.Count(l => l == 0)} empty; RSS {Memory.RssKiB() / 1024.0:F0} MiB");
        Console.WriteLine();

        // ---------------------------------------------------------------- 1. training throughput, interleaved
        Console.WriteLine($"1. Training on {train.Count} messages (one raw epoch before the trainer's first, then one after each of its epochs, on the batches of that trainer epoch):");
        SameComputation(trainView, train);
        var main = Interleaved(trainView, train, _epochs, bucket: false, MaximumLength, (m, r) =>
            Console.WriteLine($"  trainer epoch {m.Epoch}{(m.Epoch == 1 ? " (warm-up)" : "")} {m.Seconds:F2} s (train loss {m.TrainLoss:F4}) | raw epoch {r:F2} s"),
            w => Console.WriteLine($"  raw warm-up epoch before the Fit {w:F2} s"));
        var model = main.Model;
        var rawNet = main.Loop.Net;
        var parameters = ((ISingleFeaturePredictionTransformer<DeepBinaryModelParameters>)model).Model;
        var pad = Enumerable.Range(1, _epochs).Select(e => Padding(train, e, bucket: false)).ToArray();
        Console.WriteLine($"  same network: {parameters.ParameterCount} parameters on both sides ({parameters.Architecture}); other processes used {main.ForeignCores:F2} cores on average during the Fit");
        Console.WriteLine($"  batches: {(train.Count + _batch - 1) / _batch} per epoch, padded to their longest row: {pad.Average(p => p.PaddingFraction) * 100:F1} % of the slots are padding, "
            + $"{pad.Average(p => p.Steps):F0} sequential LSTM steps per epoch (means over the timed epochs)");
        Console.WriteLine($"  raw loop: median {main.RawMedian:F3} s/epoch = {train.Count / main.RawMedian:F0} messages/s (all: {Join(main.Raw.Skip(1))} s)");
        Console.WriteLine($"  trainer : median {main.TrainerMedian:F3} s/epoch = {train.Count / main.TrainerMedian:F0} messages/s (all: {Join(main.Trainer.Skip(1))} s); "
            + $"whole Fit {main.FitSeconds:F1} s for {_epochs + 1} epochs (reading the IDataView and building included)");
        Console.WriteLine($"  => training throughput trainer / raw = {main.RawMedian / main.TrainerMedian:F3}   (goal >= 0.95)");
        Console.WriteLine();
        Bench.Settle();

        // ---------------------------------------------------------------- 2. batch scoring, alternating
        Console.WriteLine($"2. Batch scoring of all {all.Count} messages (Transform of the cached token view + reading Score and Probability through a cursor, "
            + $"vs a raw eval-mode forward in batches of {ScoringBatch}, padded per batch, + sigmoid + copying out):");
        var scoredTokens = model.Transform(tokensAll);
        var chain = tokenModel.Append(model);
        int n = all.Count;
        var trainerScores = new float[n];
        var trainerProbabilities = new float[n];
        var rawScores = new float[n];
        var rawProbabilities = new float[n];
        double TrainerScoring(IDataView scored)
        {
            var watch = Stopwatch.StartNew();
            var s = scored.Schema["Score"];
            var p = scored.Schema["Probability"];
            using var cursor = scored.GetRowCursor(new[] { s, p });
            var getScore = cursor.GetGetter<float>(s);
            var getProbability = cursor.GetGetter<float>(p);
            int i = 0;
            while (cursor.MoveNext())
            {
                getScore(ref trainerScores[i]);
                getProbability(ref trainerProbabilities[i]);
                i++;
            }
            if (i != n) throw new InvalidOperationException($"scored {i} rows, expected {n}");
            return watch.Elapsed.TotalSeconds;
        }
        var consecutive = Enumerable.Range(0, n).Select(i => (long)i).ToArray();
        double RawScoring()
        {
            var watch = Stopwatch.StartNew();
            using var noGrad = torch.no_grad();
            rawNet.eval();
            for (int start = 0; start < n; start += ScoringBatch)
            {
                using var scope = torch.NewDisposeScope();
                int len = Math.Min(ScoringBatch, n - start);
                var logits = rawNet.forward(PadIds(all, consecutive.AsSpan(start, len))).squeeze(1);
                logits.data<float>().CopyTo(rawScores, start);
                logits.sigmoid().data<float>().CopyTo(rawProbabilities, start);
            }
            return watch.Elapsed.TotalSeconds;
        }
        TrainerScoring(model.Transform(tokensAll)); RawScoring(); TrainerScoring(chain.Transform(rawAll)); // warm-up
        var trainerScoring = new List<double>();
        var rawScoring = new List<double>();
        var textScoring = new List<double>();
        for (int r = 0; r < _scoringRepeats; r++)
        {
            if (r % 2 == 0) { rawScoring.Add(RawScoring()); trainerScoring.Add(TrainerScoring(model.Transform(tokensAll))); }
            else { trainerScoring.Add(TrainerScoring(model.Transform(tokensAll))); rawScoring.Add(RawScoring()); }
        }
        for (int r = 0; r < _scoringRepeats; r++) textScoring.Add(TrainerScoring(chain.Transform(rawAll)));
        double trainerScoringMedian = Bench.Median(trainerScoring), rawScoringMedian = Bench.Median(rawScoring), textScoringMedian = Bench.Median(textScoring);
        TrainerScoring(model.Transform(tokensAll));
        var evaluation = ml.BinaryClassification.Evaluate(scoredTokens);
        double trainerAccuracy = Enumerable.Range(0, n).Count(i => (trainerScores[i] > 0) == (all.Labels[i] > 0)) / (double)n;
        double rawAccuracy = Enumerable.Range(0, n).Count(i => (rawScores[i] > 0) == (all.Labels[i] > 0)) / (double)n;
        Console.WriteLine($"  raw forward: median {rawScoringMedian * 1000:F0} ms = {n / rawScoringMedian:F0} messages/s (all: {Join(rawScoring.Select(s => s * 1000), "F0")} ms)");
        Console.WriteLine($"  Transform  : median {trainerScoringMedian * 1000:F0} ms = {n / trainerScoringMedian:F0} messages/s (all: {Join(trainerScoring.Select(s => s * 1000), "F0")} ms)");
        Console.WriteLine($"  => batch scoring throughput Transform / raw = {rawScoringMedian / trainerScoringMedian:F3}   (goal >= 0.9)");
        Console.WriteLine($"  (for information: the whole fitted pipeline from the text, tokenization included: median {textScoringMedian * 1000:F0} ms = {n / textScoringMedian:F0} messages/s)");
        Console.WriteLine($"  sanity: accuracy on all {n} messages after {_epochs + 1} epochs (the training messages included) — trainer {trainerAccuracy:F4}, raw loop {rawAccuracy:F4}; "
            + $"ML.NET evaluator on the trainer: accuracy {evaluation.Accuracy:F4}, AUC {evaluation.AreaUnderRocCurve:F4}");
        Console.WriteLine();

        // ---------------------------------------------------------------- 3. single-message latency and leak check
        Console.WriteLine($"3. Single-message latency over {_latencyCalls} calls (after 100 warm-up calls), cycling through the messages:");
        var messages = ReadMessages(rawAll);
        var engine = ml.Model.CreatePredictionEngine<SmsInput, SmsPrediction>(chain);
        var input = new SmsInput();
        var output = new SmsPrediction();
        var engineTimes = Bench.Latencies(i => { input.Message = messages[i % n]; engine.Predict(input, ref output); }, _latencyCalls);
        rawNet.eval();
        float rawOne = 0;
        var rawTimes = Bench.Latencies(i =>
        {
            using var noGrad = torch.no_grad();
            using var scope = torch.NewDisposeScope();
            rawOne = rawNet.forward(PadIds(all, consecutive.AsSpan(i % n, 1))).sigmoid().item<float>();
        }, _latencyCalls);
        Console.WriteLine($"  PredictionEngine.Predict (text -> normalize -> words -> keys -> LSTM): p50 {Bench.Percentile(engineTimes, 0.5):F3} ms, "
            + $"p90 {Bench.Percentile(engineTimes, 0.9):F3} ms, p99 {Bench.Percentile(engineTimes, 0.99):F3} ms");
        Console.WriteLine($"  raw forward of one message's token ids (already tokenized): p50 {Bench.Percentile(rawTimes, 0.5):F3} ms, "
            + $"p90 {Bench.Percentile(rawTimes, 0.9):F3} ms, p99 {Bench.Percentile(rawTimes, 0.99):F3} ms");
        Bench.Settle();
        double rssBefore = Memory.RssKiB() / 1024.0, managedBefore = Memory.ManagedLiveMiB();
        int more = 10 * _latencyCalls;
        int half = more / 2;
        double rssHalf = 0, managedHalf = 0;
        for (int i = 0; i < more; i++)
        {
            input.Message = messages[i % n];
            engine.Predict(input, ref output);
            if (i == half) { Bench.Settle(); rssHalf = Memory.RssKiB() / 1024.0; managedHalf = Memory.ManagedLiveMiB(); }
        }
        Bench.Settle();
        Console.WriteLine($"  {more} more predictions: RSS {rssBefore:F0} -> {rssHalf:F0} (half-way) -> {Memory.RssKiB() / 1024.0:F0} MiB, "
            + $"managed live {managedBefore:F1} -> {managedHalf:F1} -> {Memory.ManagedLiveMiB():F1} MiB");
        Console.WriteLine();
        main.Loop.Dispose();
        Bench.Settle();

        // ---------------------------------------------------------------- 4. peak memory of a whole run, in a child process
        Console.WriteLine($"4. Peak memory of a training run on {train.Count} messages (the whole pipeline: tokens + this LSTM, {_memoryEpochs} epoch(s)) + Transform over all messages, in a fresh process:");
        Console.WriteLine("  " + RunMemoryChild());
        Console.WriteLine();

        // ---------------------------------------------------------------- 5a. cost against sequence length
        Console.WriteLine($"5a. Sequence length: {_lengthRows} synthetic rows of exactly L random token ids (keys 1..{keyCount}, SMS's vocabulary), random labels; "
            + $"per length one raw epoch, then a trainer Fit of 1 + {_lengthEpochs} epochs with a raw epoch after each (first of each side warm-up):");
        var lengthRows = new List<(int L, double Trainer, double Raw, double PeakMiB)>();
        foreach (int l in _lengths)
        {
            var (view, data) = Synthetic(l, keyCount);
            Memory.ResetPeak();
            var run = Interleaved(view, data, _lengthEpochs, bucket: false, Math.Max(l, MaximumLength));
            double peak = Memory.PeakRssMiB();
            run.Loop.Dispose();
            lengthRows.Add((l, run.TrainerMedian, run.RawMedian, peak));
            double tokens = (double)_lengthRows * l;
            Console.WriteLine($"  L {l,4}: trainer {run.TrainerMedian:F3} s/epoch ({run.TrainerMedian / tokens * 1e6:F2} us/token), raw {run.RawMedian:F3} s/epoch ({run.RawMedian / tokens * 1e6:F2} us/token), "
                + $"trainer / raw throughput {run.RawMedian / run.TrainerMedian:F3}; peak RSS of the process during this length {peak:F0} MiB; other processes {run.ForeignCores:F2} cores");
            Bench.Settle();
        }
        var first = lengthRows[0];
        Console.WriteLine("  | L | trainer s/epoch | raw s/epoch | trainer / raw | trainer time vs L " + first.L + " | L ratio | us per token (trainer) |");
        Console.WriteLine("  |---:|---:|---:|---:|---:|---:|---:|");
        foreach (var r in lengthRows)
            Console.WriteLine($"  | {r.L} | {r.Trainer:F3} | {r.Raw:F3} | {r.Raw / r.Trainer:F3} | {r.Trainer / first.Trainer:F2}x | {r.L / (double)first.L:F2}x | {r.Trainer / ((double)_lengthRows * r.L) * 1e6:F2} |");
        Console.WriteLine();

        // ---------------------------------------------------------------- 5b. BucketByLength on SMS's ragged lengths
        Console.WriteLine($"5b. BucketByLength on the {train.Count} training messages (batches of {_batch}; bucketing sorts pools of {PoolBatches} batches = {PoolBatches * _batch} rows by length): "
            + $"a Fit of 1 + {_bucketEpochs} epochs without, then one with, each with the raw loop on the same batches interleaved:");
        var plainPad = Enumerable.Range(1, _bucketEpochs).Select(e => Padding(train, e, bucket: false)).ToArray();
        var bucketPad = Enumerable.Range(1, _bucketEpochs).Select(e => Padding(train, e, bucket: true)).ToArray();
        Console.WriteLine($"  padding (means over the timed epochs' batches): without {plainPad.Average(p => p.PaddingFraction) * 100:F1} % of the slots, {plainPad.Average(p => p.Steps):F0} sequential LSTM steps per epoch; "
            + $"with {bucketPad.Average(p => p.PaddingFraction) * 100:F1} %, {bucketPad.Average(p => p.Steps):F0} steps ({train.Tokens} real tokens per epoch)");
        var plain = Interleaved(trainView, train, _bucketEpochs, bucket: false, MaximumLength);
        plain.Loop.Dispose();
        Bench.Settle();
        Console.WriteLine($"  without: trainer {plain.TrainerMedian:F3} s/epoch, raw {plain.RawMedian:F3} s/epoch (trainer / raw {plain.RawMedian / plain.TrainerMedian:F3}); other processes {plain.ForeignCores:F2} cores");
        try
        {
            var bucketed = Interleaved(trainView, train, _bucketEpochs, bucket: true, MaximumLength);
            bucketed.Loop.Dispose();
            Console.WriteLine($"  with   : trainer {bucketed.TrainerMedian:F3} s/epoch, raw {bucketed.RawMedian:F3} s/epoch (trainer / raw {bucketed.RawMedian / bucketed.TrainerMedian:F3}); other processes {bucketed.ForeignCores:F2} cores");
            Console.WriteLine($"  => BucketByLength: trainer epoch {plain.TrainerMedian / bucketed.TrainerMedian:F2}x faster (raw loop {plain.RawMedian / bucketed.RawMedian:F2}x)");
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            Console.WriteLine($"  with   : the trainer FAILED: {e.GetType().Name}: {e.Message.Split('\n')[0]}");
            using var loop = new RawLoop(trainView.Schema, train, bucket: true);
            var rawEpochs = Enumerable.Range(0, _bucketEpochs + 1).Select(e => loop.Epoch(e)).Skip(1).ToArray();
            Console.WriteLine($"           raw loop alone with bucketing: {Bench.Median(rawEpochs):F3} s/epoch => raw loop {plain.RawMedian / Bench.Median(rawEpochs):F2}x faster with bucketing");
        }
        Console.WriteLine();
        Console.WriteLine($"total RNN benchmark time {total.Elapsed.TotalMinutes:F1} min");
        return 0;
    }

    private static string Join(IEnumerable<double> values, string format = "F3") => string.Join(", ", values.Select(v => v.ToString(format, CultureInfo.InvariantCulture)));

    /// <summary>The longest message in tokens before the 256-token cut, and how many messages were cut.</summary>
    private static (int Max, int Truncated) FullLengths(IDataView view)
    {
        var tokens = view.Schema["Tokens"];
        int max = 0, cut = 0;
        using var cursor = view.GetRowCursor(new[] { tokens });
        var get = cursor.GetGetter<VBuffer<uint>>(tokens);
        VBuffer<uint> buffer = default;
        while (cursor.MoveNext())
        {
            get(ref buffer);
            max = Math.Max(max, buffer.Length);
            if (buffer.Length > MaximumLength) cut++;
        }
        return (max, cut);
    }

    private static string[] ReadMessages(IDataView raw)
    {
        var col = raw.Schema[nameof(SmsRow.Message)];
        var messages = new List<string>();
        using var cursor = raw.GetRowCursor(new[] { col });
        var get = cursor.GetGetter<ReadOnlyMemory<char>>(col);
        ReadOnlyMemory<char> text = default;
        while (cursor.MoveNext()) { get(ref text); messages.Add(text.ToString()); }
        return messages.ToArray();
    }

    /// <summary><see cref="_lengthRows"/> rows of exactly <paramref name="length"/> random keys and random labels: an IDataView of vector&lt;key&gt; and the same rows as a ragged array.</summary>
    private static (IDataView View, TokenBench.TokenData Data) Synthetic(int length, int keyCount)
    {
        var random = new Random(Seed + length);
        var rows = new SyntheticRow[_lengthRows];
        for (int i = 0; i < rows.Length; i++)
        {
            var keys = new uint[length];
            for (int j = 0; j < length; j++) keys[j] = (uint)random.Next(1, keyCount + 1);
            rows[i] = new SyntheticRow { Tokens = keys, Label = random.Next(2) == 1 };
        }
        var ml = new MLContext(Seed);
        var schema = SchemaDefinition.Create(typeof(SyntheticRow));
        schema[nameof(SyntheticRow.Tokens)].ColumnType = new VectorDataViewType(new KeyDataViewType(typeof(uint), (ulong)keyCount));
        var view = ml.Data.LoadFromEnumerable(rows, schema);
        var data = new TokenBench.TokenData
        {
            Rows = rows.Select(r => r.Tokens.Select(k => (int)k + 1).ToArray()).ToArray(),
            Labels = rows.Select(r => r.Label ? 1f : 0f).ToArray(),
            Vocabulary = keyCount + 2,
        };
        return (view, data);
    }

    private static string RunMemoryChild()
    {
        var (exitCode, output, error) = ChildProcess.RunSelf(MemoryChildFlag, _trainRows.ToString(CultureInfo.InvariantCulture), _memoryEpochs.ToString(CultureInfo.InvariantCulture),
            _batch.ToString(CultureInfo.InvariantCulture), (_threads ?? 0).ToString(CultureInfo.InvariantCulture));
        var line = output.Split('\n').FirstOrDefault(l => l.StartsWith("RNNMEM ", StringComparison.Ordinal));
        return exitCode == 0 && line is not null ? line["RNNMEM ".Length..].Trim() : $"(memory child failed, exit {exitCode}: {error})";
    }

    /// <summary>The child: what a user's process does — load the messages, Fit tokens + LSTM, score all messages — and its peak RSS.</summary>
    public static int MemoryChild(int rows, int epochs, int batch, int threads)
    {
        _batch = batch;
        double start = Memory.RssKiB() / 1024.0;
        using (var probe = torch.zeros(1)) { } // loads libtorch
        if (threads > 0) torch.set_num_threads(threads);
        var ml = new MLContext(Seed);
        var all = RealData.Sms(ml);
        var train = rows > 0 ? ml.Data.TakeRows(all, rows) : all;
        long count = Bench.CountRows(train, train.Schema["Label"]);
        double afterLoad = Memory.RssKiB() / 1024.0;
        var watch = Stopwatch.StartNew();
        var model = SmsTokens(ml).Append(ml.BinaryClassification.Trainers.Rnn(TrainerOptions(epochs, null))).Fit(train);
        double fitSeconds = watch.Elapsed.TotalSeconds;
        double peakFit = Memory.HwmKiB() / 1024.0;
        var metrics = ml.BinaryClassification.Evaluate(model.Transform(all));
        double peak = Memory.HwmKiB() / 1024.0;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"RNNMEM peak RSS {peak:F0} MiB for the whole process (VmHWM; {peakFit:F0} MiB by the end of Fit). RSS at start {start:F0} MiB, after loading libtorch and reading the {count} messages once {afterLoad:F0} MiB; Fit {fitSeconds:F0} s, accuracy on all messages {metrics.Accuracy:F4}"));
        return 0;
    }
}
