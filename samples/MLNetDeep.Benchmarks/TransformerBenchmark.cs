// Transformer benchmark (`--transformer`): the MLNetDeep Transformer trainer (token encoder, [CLS] pooling) on the SMS
// spam messages against a hand-written TorchSharp loop over the same encoder (the library's TransformerNetwork, built
// from the trainer's options: LibraryNetworks.Transformer; after the same seed it starts from the same weights),
// optimizer, loss, gradient clipping and batches (the trainer's own shuffle, bucketing and per-batch padding,
// replicated), in the same run; batch scoring (Transform over all messages) against a raw forward pass;
// PredictionEngine latency through the whole pipeline (tokenization included) and a leak check; the peak RSS of a
// whole training run in a child process; how the cost grows with the sequence length with libtorch's fused
// scaled_dot_product_attention and with the explicit softmax(QKᵀ/√d)·V; and what BucketByLength buys on SMS's ragged
// lengths. See README.md.
using System.Diagnostics;
using System.Globalization;
using System.IO.Compression;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetDeep.TestData;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

using static MLNetDeep.Benchmarks.TokenBench;

namespace MLNetDeep.Benchmarks;

internal static class TransformerBenchmark
{
    public const string Flag = "--transformer";
    public const string MemoryChildFlag = "--transformer-memory-child";
    private const int Seed = 20261123;
    private const int ScoringBatch = 256;
    private const int MaximumLength = 256;   // SequenceOptions.MaximumSequenceLength's default: longer messages keep their first 256 tokens
    private const int PoolBatches = 50;      // TrainingData: BucketByLength sorts pools of 50 batches by length

    // The trainer's own optimizer settings (TransformerOptions' defaults), stated explicitly on both sides; the schedule
    // is constant for the comparison (the default is WarmupCosine, which the raw loop would have to replicate too).
    private const double LearningRate = 5e-4, WeightDecay = 0.01, Beta1 = 0.9, Beta2 = 0.98, AdamEpsilon = 1e-8, ClipNorm = 1.0;
    // TransformerOptions' defaults for the encoder's regularization and norms.
    private const float DropoutRate = 0.1f, AttentionDropoutRate = 0f; // the trainer's defaults
    private const double LayerNormEpsilon = 1e-5;

    private static int _epochs = 3, _batch = 64, _layers = 2, _width = 64, _heads = 4, _trainRows, _scoringRepeats = 5, _latencyCalls = 2_000,
        _memoryEpochs = 5, _lengthRows = 256, _lengthEpochs = 2, _bucketEpochs = 2;
    private static int[] _lengths = { 32, 128, 512 };
    private static float? _lengthsAttentionDropout; // (c): (a) and (b) again with this attention dropout (off unless asked for)
    private static int? _threads;

    private static int FeedForward => 4 * _width; // TransformerOptions.FeedForwardWidth = 0 means 4 × ModelWidth

    /// <summary>What differs between the runs of one benchmark: the attention kernel, attention dropout, the position table and bucketing.</summary>
    private sealed record Setup(bool Fused, float AttentionDropout, int MaxLength, bool Bucket)
    {
        public static Setup Sms => new(true, AttentionDropoutRate, MaximumLength, false);
    }

    /// <summary>
    /// The raw side's network: the library's TransformerNetwork as the trainer builds it from <see cref="TrainerOptions"/>
    /// for this setup and the token column of <paramref name="schema"/> (<see cref="LibraryNetworks.Transformer"/>).
    /// </summary>
    private static TransformerNetwork RawNetwork(DataViewSchema schema, Setup s) => LibraryNetworks.Transformer(TrainerOptions(s, 1, null), schema, outputs: 1);

    private static TransformerBinaryTrainer.Options TrainerOptions(Setup s, int epochs, Action<EpochMetrics>? callback) => new()
    {
        FeatureColumnName = "Tokens", LabelColumnName = "Label",
        NumberOfLayers = _layers, ModelWidth = _width, NumberOfHeads = _heads, FeedForwardWidth = FeedForward, Activation = TransformerActivation.Gelu,
        Dropout = DropoutRate, AttentionDropout = s.AttentionDropout, PreNorm = true, LayerNormEpsilon = LayerNormEpsilon,
        Positions = PositionEncoding.Learned, Pooling = TransformerPooling.Cls, FusedAttention = s.Fused,
        MaximumSequenceLength = s.MaxLength, BucketByLength = s.Bucket, TokenDropout = 0,
        NumberOfEpochs = epochs, BatchSize = _batch, Optimizer = DeepOptimizer.AdamW, LearningRate = LearningRate, WeightDecay = WeightDecay,
        AdamBeta1 = Beta1, AdamBeta2 = Beta2, AdamEpsilon = AdamEpsilon, GradientClipNorm = ClipNorm, Schedule = LearningRateSchedule.Constant,
        Caching = DataCaching.Memory, EpochCallback = callback,
    };

    private static (long[] Order, List<long> Starts) EpochBatches(TokenBench.TokenData d, int epoch, bool bucket) =>
        TokenBench.EpochBatches(d, epoch, bucket, Seed, _batch, PoolBatches);

    /// <summary>
    /// Padding of one epoch's batches: the padded share of the token slots, the positions the encoder runs per epoch
    /// (Σ rows · (T + 1), [CLS] included) and the attention scores per layer and head (Σ rows · (T + 1)²).
    /// </summary>
    private static (double PaddingFraction, long Positions, long Scores) Padding(TokenBench.TokenData d, int epoch, bool bucket)
    {
        var (order, starts) = EpochBatches(d, epoch, bucket);
        long tokens = 0, slots = 0, positions = 0, scores = 0;
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
            positions += (long)len * (t + 1);
            scores += (long)len * (t + 1) * (t + 1);
        }
        return (1 - tokens / (double)slots, positions, scores);
    }

    /// <summary>The minimal raw loop: per batch pad, zero_grad, forward, BCE with logits, backward, clip_grad_norm_, AdamW step.</summary>
    private sealed class RawLoop : IDisposable
    {
        private readonly TokenBench.TokenData _d;
        private readonly Setup _s;
        public readonly TransformerNetwork Net;
        private readonly OptimizerHelper _optimizer;

        /// <summary>A loop over <paramref name="d"/>, the rows of the token column of <paramref name="schema"/>, the trainer's network for it.</summary>
        public RawLoop(DataViewSchema schema, TokenBench.TokenData d, Setup s)
        {
            _d = d;
            _s = s;
            torch.manual_seed(Seed); // the trainer seeds the same way before building its network: same initial weights
            Net = RawNetwork(schema, s);
            _optimizer = torch.optim.AdamW(Net.parameters(), LearningRate, beta1: Beta1, beta2: Beta2, eps: AdamEpsilon, weight_decay: WeightDecay);
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
            var (order, starts) = EpochBatches(_d, epoch, _s.Bucket);
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

    /// <summary>The epoch times of an interleaved run; element 0 of each is warm-up. Raw is empty when the run had no raw loop.</summary>
    private sealed record Interleaving(List<double> Trainer, List<double> Raw, double FitSeconds, double ForeignCores, double PeakMiB, ITransformer Model, RawLoop? Loop)
    {
        public double TrainerMedian => Bench.Median(Trainer.Skip(1));
        public double RawMedian => Bench.Median(Raw.Skip(1));
    }

    /// <summary>
    /// One raw epoch, then a trainer Fit of 1 + <paramref name="epochs"/> epochs with a raw epoch run inside its epoch
    /// callback after each of its epochs (so both sides meet the same machine state), on the batches of the trainer's
    /// epoch it follows. The trainer's first epoch and the raw epoch after it are warm-up. Without <paramref name="withRaw"/>,
    /// the trainer alone. The caller disposes the loop. PeakMiB: the process's peak RSS during the run (the peak is reset first).
    /// </summary>
    private static Interleaving Interleaved(IDataView view, TokenBench.TokenData d, int epochs, Setup s, bool withRaw = true,
        Action<EpochMetrics, double?>? onEpoch = null, Action<double>? onRawWarmUp = null)
    {
        var ml = new MLContext(Seed);
        Memory.ResetPeak();
        var loop = withRaw ? new RawLoop(view.Schema, d, s) : null;
        if (loop is not null)
        {
            double warm = loop.Epoch(0);
            onRawWarmUp?.Invoke(warm);
        }
        var trainer = new List<double>();
        var raw = new List<double>();
        double rawInsideFit = 0;
        var cpu = CpuSnapshot.Take();
        var watch = Stopwatch.StartNew();
        var model = ml.BinaryClassification.Trainers.Transformer(TrainerOptions(s, epochs + 1, m =>
        {
            trainer.Add(m.Seconds);
            double? r = null;
            if (loop is not null)
            {
                r = loop.Epoch(m.Epoch - 1);
                rawInsideFit += r.Value;
                raw.Add(r.Value);
            }
            onEpoch?.Invoke(m, r);
        })).Fit(view);
        double fit = watch.Elapsed.TotalSeconds - rawInsideFit;
        double foreign = CpuSnapshot.Take().ForeignCoresSince(cpu);
        double peak = Memory.PeakRssMiB();
        if (loop is not null)
        {
            LibraryNetworks.SameParameterCount(loop.Net, model);
        }
        return new Interleaving(trainer, raw, fit, foreign, peak, model, loop);
    }

    /// <summary>The network weights inside a fitted model (the model file's Weights.bin, TorchSharp's save format).</summary>
    private static byte[] TrainerWeights(ITransformer model, DataViewSchema schema)
    {
        using var file = new MemoryStream();
        new MLContext(Seed).Model.Save(model, schema, file);
        file.Position = 0;
        using var zip = new ZipArchive(file, ZipArchiveMode.Read);
        var entry = zip.Entries.Single(e => e.FullName.EndsWith("Weights.bin", StringComparison.Ordinal));
        using var stream = entry.Open();
        using var bytes = new MemoryStream();
        stream.CopyTo(bytes);
        return bytes.ToArray();
    }

    /// <summary>
    /// Same initial weights (untimed): a trainer Fit of one epoch over one batch with learning rate 1e-30 and no weight
    /// decay (so its weights stay its initial ones, to within 1e-30), loaded by name (strict) into a raw network,
    /// against a raw network built right after torch.manual_seed(seed). Prints the largest difference and where.
    /// </summary>
    private static void SameInitialWeights(IDataView view)
    {
        var ml = new MLContext(Seed);
        var options = TrainerOptions(Setup.Sms, 1, null);
        options.LearningRate = 1e-30;
        options.WeightDecay = 0;
        var one = ml.Data.TakeRows(view, _batch);
        var model = ml.BinaryClassification.Trainers.Transformer(options).Fit(one);
        var weights = TrainerWeights(model, one.Schema);
        using var trainer = RawNetwork(view.Schema, Setup.Sms);
        string loaded;
        try
        {
            using var ms = new MemoryStream(weights);
            trainer.load(ms);
            loaded = "loaded by name into the raw network";
        }
        catch (Exception e)
        {
            Console.WriteLine($"  initial weights: the trainer's weights do NOT load into the raw network ({e.GetType().Name}: {e.Message.Split('\n')[0]}): not the same parameter names or shapes");
            return;
        }
        torch.manual_seed(Seed);
        using var raw = RawNetwork(view.Schema, Setup.Sms);
        var theirs = trainer.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        double worst = 0;
        string where = "";
        int count = 0;
        foreach (var (name, p) in raw.named_parameters())
        {
            using var diff = p.sub(theirs[name]).abs().max();
            double v = diff.item<float>();
            if (v > worst) { worst = v; where = name; }
            count++;
        }
        Console.WriteLine($"  initial weights (untimed): the trainer's ({count} tensors, {loaded}) against the raw network's after the same seed: largest difference {worst:G3}"
            + (worst < 1e-6 ? " — the same initial weights" : $" at {where} — DIFFERENT initial weights"));
        using var norm = raw.finalNorm!.weight!.mean();
        using var normStd = raw.finalNorm.weight!.std();
        if (Math.Abs(norm.item<float>() - 1) > 0.1)
            Console.WriteLine($"  note: the final LayerNorm's weight starts at mean {norm.item<float>():F4}, std {normStd.item<float>():F4} (not 1): TransformerNetwork.Initialise's "
                + "ordinal test for \"norm\" misses the parameter name \"finalNorm.weight\", which then gets normal(0, 0.02)");
    }

    /// <summary>
    /// Sanity check (untimed; also warms both sides up): one epoch of the raw loop, then a one-epoch trainer Fit, each
    /// right after torch.manual_seed(seed). Same initial weights, same batches and the same dropout masks (both draw
    /// from the global generator in the same order), so the mean training losses agree up to float rounding — unless
    /// the raw side is not the trainer's computation.
    /// </summary>
    private static void SameComputation(IDataView view, TokenBench.TokenData d, Setup s, string what)
    {
        using var loop = new RawLoop(view.Schema, d, s);
        loop.Epoch(0, meanLoss: true);
        double trainerLoss = double.NaN;
        new MLContext(Seed).BinaryClassification.Trainers.Transformer(TrainerOptions(s, 1, m => trainerLoss = m.TrainLoss)).Fit(view);
        double difference = Math.Abs(trainerLoss - loop.LastLoss);
        Console.WriteLine($"  sanity (untimed, also warm-up), {what}: one epoch from the same seed: mean training loss trainer {trainerLoss:F6}, raw loop {loop.LastLoss:F6} "
            + $"({(difference < 1e-4 ? "the same computation" : "DIFFERENT: the raw loop does not reproduce the trainer's network, batches or optimizer")})");
        Bench.Settle();
    }

    /// <summary>Transform of <paramref name="view"/> read through a cursor (Score): seconds.</summary>
    private static double ScoreSeconds(ITransformer model, IDataView view, float[]? scores = null)
    {
        var watch = Stopwatch.StartNew();
        var scored = model.Transform(view);
        var s = scored.Schema["Score"];
        using var cursor = scored.GetRowCursor(new[] { s });
        var get = cursor.GetGetter<float>(s);
        float value = 0;
        int i = 0;
        while (cursor.MoveNext())
        {
            get(ref value);
            if (scores is not null) scores[i] = value;
            i++;
        }
        return watch.Elapsed.TotalSeconds;
    }

    // ---------------------------------------------------------------- the benchmark

    private static bool ParseArgs(string[] args)
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
                case "--layers": _layers = NextInt(); break;
                case "--width": _width = NextInt(); break;
                case "--heads": _heads = NextInt(); break;
                case "--train-rows": _trainRows = NextInt(); break;
                case "--scoring-repeats": _scoringRepeats = NextInt(); break;
                case "--latency-calls": _latencyCalls = NextInt(); break;
                case "--memory-epochs": _memoryEpochs = NextInt(); break;
                case "--lengths": _lengths = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(x => int.Parse(x, CultureInfo.InvariantCulture)).ToArray(); break;
                case "--length-rows": _lengthRows = NextInt(); break;
                case "--length-epochs": _lengthEpochs = NextInt(); break;
                case "--attention-dropout-lengths": _lengthsAttentionDropout = float.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--bucket-epochs": _bucketEpochs = NextInt(); break;
                case "--threads": _threads = NextInt(); break;
                default:
                    Console.Error.WriteLine($"{(a is "-h" or "--help" ? "" : $"unknown argument '{a}'. ")}usage: --transformer [--epochs N (3 timed, after 1 warm-up)] [--batch N (64)]"
                        + " [--layers N (2)] [--width N (64)] [--heads N (4)] [--train-rows N (0 = all 5574 SMS messages)] [--scoring-repeats N (5)] [--latency-calls N (2000)]"
                        + " [--memory-epochs N (5)] [--lengths L,L,... (32,128,512)] [--length-rows N (256)] [--length-epochs N (2 timed, after 1 warm-up)]"
                        + " [--attention-dropout-lengths RATE (runs 5c: both kinds with this attention dropout; off by default)] [--bucket-epochs N (2 timed, after 1 warm-up; 0 skips part 6)] [--threads N (torch default)]");
                    return false;
            }
        }
        if (_epochs < 1 || _batch < 2 || _layers < 1 || _width < 1 || _heads < 1 || _width % _heads != 0 || _trainRows < 0 || (_trainRows > 0 && _trainRows < _batch)
            || _scoringRepeats < 1 || _latencyCalls < 10 || _memoryEpochs < 1 || _lengths.Length == 0 || _lengths.Any(l => l < 1) || _lengthRows < _batch
            || _lengthEpochs < 1 || _bucketEpochs < 0 || _threads < 1)
        { Console.Error.WriteLine("invalid option value (try --transformer --help)"); return false; }
        return true;
    }

    public static int Run(string[] args)
    {
        if (!ParseArgs(args)) return 2;
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

        Console.WriteLine("MLNetDeep Transformer benchmark: SMS spam, Transformer trainer vs the same encoder in a raw TorchSharp loop");
        Console.WriteLine($"  {DateTime.Now:yyyy-MM-dd HH:mm}, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, {Environment.ProcessorCount} logical cores, torch threads {torch.get_num_threads()}");
        Console.WriteLine($"  encoder: embedding {_width} (vocabulary {all.Vocabulary} = {keyCount} word keys + padding + unknown), [CLS], learned positions ({MaximumLength} + 1), "
            + $"{_layers} pre-norm layers of width {_width}, {_heads} heads, feed-forward {FeedForward} GELU, dropout {DropoutRate}, attention dropout {AttentionDropoutRate}, final LayerNorm, [CLS] pooling, head 1");
        Console.WriteLine($"  AdamW lr {LearningRate} betas ({Beta1}, {Beta2}) eps {AdamEpsilon} weight decay {WeightDecay}, gradient clipping at norm {ClipNorm}, BCE with logits, batch {_batch}, "
            + $"constant rate (the trainer's default is WarmupCosine); 1 warm-up + {_epochs} timed epochs per side");
        Console.WriteLine($"  data: {all.Count} messages ({all.Labels.Count(l => l > 0)} spam), training on {train.Count}; tokens per message: mean {lengths.Average():F1}, median {lengths[lengths.Length / 2]}, "
            + $"p90 {lengths[(int)(0.9 * lengths.Length)]}, max {lengths[^1]}, {lengths.Count(l => l == 0)} empty; RSS {Memory.RssKiB() / 1024.0:F0} MiB");
        Console.WriteLine();

        // ---------------------------------------------------------------- 1. training throughput, interleaved
        Console.WriteLine($"1. Training on {train.Count} messages (fused attention; one raw epoch before the trainer's first, then one after each of its epochs, on the batches of that trainer epoch):");
        SameInitialWeights(trainView);
        SameComputation(trainView, train, Setup.Sms, "without bucketing");
        SameComputation(trainView, train, Setup.Sms with { Bucket = true }, "with BucketByLength");
        SameComputation(trainView, train, Setup.Sms with { Fused = false }, "explicit attention");
        var main = Interleaved(trainView, train, _epochs, Setup.Sms, onEpoch: (m, r) =>
            Console.WriteLine($"  trainer epoch {m.Epoch}{(m.Epoch == 1 ? " (warm-up)" : "")} {m.Seconds:F2} s (train loss {m.TrainLoss:F4}) | raw epoch {r:F2} s"),
            onRawWarmUp: w => Console.WriteLine($"  raw warm-up epoch before the Fit {w:F2} s"));
        var model = main.Model;
        var rawNet = main.Loop!.Net;
        var parameters = ((ISingleFeaturePredictionTransformer<DeepBinaryModelParameters>)model).Model;
        var pad = Enumerable.Range(1, _epochs).Select(e => Padding(train, e, bucket: false)).ToArray();
        Console.WriteLine($"  same network: {parameters.ParameterCount} parameters on both sides ({parameters.Architecture}); other processes used {main.ForeignCores:F2} cores on average during the Fit");
        Console.WriteLine($"  batches: {(train.Count + _batch - 1) / _batch} per epoch, padded to their longest row: {pad.Average(p => p.PaddingFraction) * 100:F1} % of the token slots are padding; "
            + $"{pad.Average(p => p.Positions):F0} encoder positions and {pad.Average(p => p.Scores) / 1e6:F1} M attention scores per layer and head per epoch (means over the timed epochs; {train.Tokens} real tokens)");
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
        var scoringCpu = CpuSnapshot.Take();
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
        Console.WriteLine($"  => batch scoring throughput Transform / raw = {rawScoringMedian / trainerScoringMedian:F3}   (goal >= 0.9); other processes used {CpuSnapshot.Take().ForeignCoresSince(scoringCpu):F2} cores meanwhile");
        Console.WriteLine($"  (for information: the whole fitted pipeline from the text, tokenization included: median {textScoringMedian * 1000:F0} ms = {n / textScoringMedian:F0} messages/s)");
        Console.WriteLine($"  sanity: accuracy on all {n} messages after {_epochs + 1} epochs (the training messages included) — trainer {trainerAccuracy:F4}, raw loop {rawAccuracy:F4}; "
            + $"ML.NET evaluator on the trainer: accuracy {evaluation.Accuracy:F4}, AUC {evaluation.AreaUnderRocCurve:F4}");
        // The trainer's trained weights in a raw network: its eval forward must give the trainer's scores.
        using (var loaded = RawNetwork(tokensAll.Schema, Setup.Sms))
        {
            using (var ms = new MemoryStream(TrainerWeights(model, tokensAll.Schema))) loaded.load(ms);
            var swap = rawNet;
            rawNet = loaded;
            var keep = (float[])rawScores.Clone();
            RawScoring();
            double worst = Enumerable.Range(0, n).Max(i => Math.Abs(rawScores[i] - trainerScores[i]));
            Console.WriteLine($"  sanity: the trainer's trained weights loaded into the raw network give the trainer's scores to {worst:G3} (largest |difference| of the {n} logits)");
            rawNet = swap;
            keep.CopyTo(rawScores, 0);
        }
        Console.WriteLine();

        // ---------------------------------------------------------------- 3. single-message latency and leak check
        Console.WriteLine($"3. Single-message latency over {_latencyCalls} calls (after 100 warm-up calls), cycling through the messages:");
        var messages = ReadMessages(rawAll);
        var engine = ml.Model.CreatePredictionEngine<SmsInput, SmsPrediction>(chain);
        var input = new SmsInput();
        var output = new SmsPrediction();
        var latencyCpu = CpuSnapshot.Take();
        var engineTimes = Bench.Latencies(i => { input.Message = messages[i % n]; engine.Predict(input, ref output); }, _latencyCalls);
        rawNet.eval();
        float rawOne = 0;
        var rawTimes = Bench.Latencies(i =>
        {
            using var noGrad = torch.no_grad();
            using var scope = torch.NewDisposeScope();
            rawOne = rawNet.forward(PadIds(all, consecutive.AsSpan(i % n, 1))).sigmoid().item<float>();
        }, _latencyCalls);
        Console.WriteLine($"  PredictionEngine.Predict (text -> normalize -> words -> keys -> Transformer): p50 {Bench.Percentile(engineTimes, 0.5):F3} ms, "
            + $"p90 {Bench.Percentile(engineTimes, 0.9):F3} ms, p99 {Bench.Percentile(engineTimes, 0.99):F3} ms");
        Console.WriteLine($"  raw forward of one message's token ids (already tokenized): p50 {Bench.Percentile(rawTimes, 0.5):F3} ms, "
            + $"p90 {Bench.Percentile(rawTimes, 0.9):F3} ms, p99 {Bench.Percentile(rawTimes, 0.99):F3} ms; other processes used {CpuSnapshot.Take().ForeignCoresSince(latencyCpu):F2} cores meanwhile");
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
        Console.WriteLine($"4. Peak memory of a training run on {train.Count} messages (the whole pipeline: tokens + this Transformer, {_memoryEpochs} epoch(s)) + Transform over all messages, in a fresh process:");
        Console.WriteLine("  " + RunMemoryChild());
        Console.WriteLine();

        // ---------------------------------------------------------------- 5. cost against sequence length, fused and explicit attention
        Console.WriteLine($"5. Sequence length: {_lengthRows} synthetic rows of exactly L random token ids (keys 1..{keyCount}, SMS's vocabulary), random labels, "
            + $"MaximumSequenceLength max(L, {MaximumLength}); the encoder runs L + 1 positions ([CLS]).");
        Console.WriteLine($"   (a) fused attention (scaled_dot_product_attention), attention dropout {AttentionDropoutRate} (the default): one raw epoch, then a trainer Fit of 1 + {_lengthEpochs} epochs "
            + "with a raw epoch after each (first of each side warm-up); (b) explicit softmax(QK^T/sqrt(d))V, the same Fit without the raw loop;");
        Console.WriteLine($"   (c) {(_lengthsAttentionDropout is null ? "[skipped: --attention-dropout-lengths RATE runs it] " : "")}both kinds with AttentionDropout = {_lengthsAttentionDropout ?? 0.1f}, trainer alone (libtorch's CPU flash kernel takes no dropout: with dropout, the fused call runs its math path);");
        Console.WriteLine($"   (d) eval: Transform of the {_lengthRows} rows with the (a) and (b) models (scoring runs without dropout), mean of 2 after a warm-up.");
        var lengthRows = new List<LengthRow>();
        foreach (int l in _lengths)
        {
            var (view, data) = Synthetic(l, keyCount);
            double tokens = (double)_lengthRows * l;
            int maxLength = Math.Max(l, MaximumLength);
            var row = new LengthRow { L = l };
            foreach (bool fused in new[] { true, false })
            {
                // The raw loop runs beside the fused trainer only: part 1's sanity check already showed the explicit kind to be the same computation.
                var run = Interleaved(view, data, _lengthEpochs, new Setup(fused, AttentionDropoutRate, maxLength, false), withRaw: fused);
                run.Loop?.Dispose();
                ScoreSeconds(run.Model, view);
                double eval = Bench.Median(Enumerable.Range(0, 2).Select(_ => ScoreSeconds(run.Model, view)));
                if (fused) { row.FusedTrainer = run.TrainerMedian; row.FusedRaw = run.RawMedian; row.FusedPeak = run.PeakMiB; row.FusedEval = eval; }
                else { row.ExplicitTrainer = run.TrainerMedian; row.ExplicitPeak = run.PeakMiB; row.ExplicitEval = eval; }
                Console.WriteLine($"  L {l,4} {(fused ? "fused   " : "explicit")}: trainer {run.TrainerMedian:F3} s/epoch ({run.TrainerMedian / tokens * 1e6:F2} us/token)"
                    + (fused ? $", raw {run.RawMedian:F3} s/epoch ({run.RawMedian / tokens * 1e6:F2} us/token), trainer / raw throughput {run.RawMedian / run.TrainerMedian:F3}" : "")
                    + $"; eval {eval * 1000:F0} ms ({eval / tokens * 1e6:F2} us/token); peak RSS during the run {run.PeakMiB:F0} MiB; other processes {run.ForeignCores:F2} cores");
                Bench.Settle();
            }
            if (_lengthsAttentionDropout is float rate)
            {
                foreach (bool fused in new[] { true, false })
                {
                    var run = Interleaved(view, data, _lengthEpochs, new Setup(fused, rate, maxLength, false), withRaw: false);
                    if (fused) { row.FusedWithDropout = run.TrainerMedian; row.FusedWithDropoutPeak = run.PeakMiB; }
                    else { row.ExplicitWithDropout = run.TrainerMedian; row.ExplicitWithDropoutPeak = run.PeakMiB; }
                    Console.WriteLine($"  L {l,4} {(fused ? "fused   " : "explicit")}, attention dropout {rate}: trainer {run.TrainerMedian:F3} s/epoch ({run.TrainerMedian / tokens * 1e6:F2} us/token); "
                        + $"peak RSS during the run {run.PeakMiB:F0} MiB; other processes {run.ForeignCores:F2} cores");
                    Bench.Settle();
                }
            }
            lengthRows.Add(row);
        }
        var first = lengthRows[0];
        Console.WriteLine($"  training, attention dropout {AttentionDropoutRate} (trainer), s/epoch and us/token; explicit / fused = what the fused kernel buys (> 1: fused faster):");
        Console.WriteLine("  | L | fused s/epoch | explicit s/epoch | fused us/token | explicit us/token | explicit / fused | raw fused s/epoch | trainer / raw | fused time vs L " + first.L + " | peak RSS fused / explicit MiB |");
        Console.WriteLine("  |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var r in lengthRows)
        {
            double tk = (double)_lengthRows * r.L;
            Console.WriteLine($"  | {r.L} | {r.FusedTrainer:F3} | {r.ExplicitTrainer:F3} | {r.FusedTrainer / tk * 1e6:F2} | {r.ExplicitTrainer / tk * 1e6:F2} | {r.ExplicitTrainer / r.FusedTrainer:F2} | "
                + $"{r.FusedRaw:F3} | {r.FusedRaw / r.FusedTrainer:F3} | {r.FusedTrainer / first.FusedTrainer:F2}x | {r.FusedPeak:F0} / {r.ExplicitPeak:F0} |");
        }
        if (_lengthsAttentionDropout is float withDropout)
        {
            Console.WriteLine($"  training, AttentionDropout = {withDropout} (trainer):");
            Console.WriteLine("  | L | fused s/epoch | explicit s/epoch | fused us/token | explicit us/token | explicit / fused | peak RSS fused / explicit MiB |");
            Console.WriteLine("  |---:|---:|---:|---:|---:|---:|---:|");
            foreach (var r in lengthRows)
            {
                double tk = (double)_lengthRows * r.L;
                Console.WriteLine($"  | {r.L} | {r.FusedWithDropout:F3} | {r.ExplicitWithDropout:F3} | {r.FusedWithDropout / tk * 1e6:F2} | {r.ExplicitWithDropout / tk * 1e6:F2} | {r.ExplicitWithDropout / r.FusedWithDropout:F2} | {r.FusedWithDropoutPeak:F0} / {r.ExplicitWithDropoutPeak:F0} |");
            }
        }
        Console.WriteLine($"  eval (Transform of {_lengthRows} rows):");
        Console.WriteLine("  | L | fused ms | explicit ms | fused us/token | explicit us/token | explicit / fused |");
        Console.WriteLine("  |---:|---:|---:|---:|---:|---:|");
        foreach (var r in lengthRows)
        {
            double tk = (double)_lengthRows * r.L;
            Console.WriteLine($"  | {r.L} | {r.FusedEval * 1000:F0} | {r.ExplicitEval * 1000:F0} | {r.FusedEval / tk * 1e6:F2} | {r.ExplicitEval / tk * 1e6:F2} | {r.ExplicitEval / r.FusedEval:F2} |");
        }
        Console.WriteLine();

        // ---------------------------------------------------------------- 6. BucketByLength on SMS's ragged lengths
        if (_bucketEpochs > 0)
        {
            Console.WriteLine($"6. BucketByLength on the {train.Count} training messages (batches of {_batch}; bucketing sorts pools of {PoolBatches} batches = {PoolBatches * _batch} rows by length): "
                + $"a Fit of 1 + {_bucketEpochs} epochs without, then one with, each with the raw loop on the same batches interleaved:");
            var plainPad = Enumerable.Range(1, _bucketEpochs).Select(e => Padding(train, e, bucket: false)).ToArray();
            var bucketPad = Enumerable.Range(1, _bucketEpochs).Select(e => Padding(train, e, bucket: true)).ToArray();
            Console.WriteLine($"  padding (means over the timed epochs' batches): without {plainPad.Average(p => p.PaddingFraction) * 100:F1} % of the token slots, {plainPad.Average(p => p.Positions):F0} positions, "
                + $"{plainPad.Average(p => p.Scores) / 1e6:F1} M attention scores per layer and head per epoch; with {bucketPad.Average(p => p.PaddingFraction) * 100:F1} %, "
                + $"{bucketPad.Average(p => p.Positions):F0} positions, {bucketPad.Average(p => p.Scores) / 1e6:F1} M scores ({train.Tokens} real tokens per epoch)");
            var plain = Interleaved(trainView, train, _bucketEpochs, Setup.Sms);
            plain.Loop!.Dispose();
            Bench.Settle();
            Console.WriteLine($"  without: trainer {plain.TrainerMedian:F3} s/epoch, raw {plain.RawMedian:F3} s/epoch (trainer / raw {plain.RawMedian / plain.TrainerMedian:F3}); other processes {plain.ForeignCores:F2} cores");
            var bucketed = Interleaved(trainView, train, _bucketEpochs, Setup.Sms with { Bucket = true });
            bucketed.Loop!.Dispose();
            Bench.Settle();
            Console.WriteLine($"  with   : trainer {bucketed.TrainerMedian:F3} s/epoch, raw {bucketed.RawMedian:F3} s/epoch (trainer / raw {bucketed.RawMedian / bucketed.TrainerMedian:F3}); other processes {bucketed.ForeignCores:F2} cores");
            Console.WriteLine($"  => BucketByLength: trainer epoch {plain.TrainerMedian / bucketed.TrainerMedian:F2}x faster (raw loop {plain.RawMedian / bucketed.RawMedian:F2}x)");
            Console.WriteLine();
        }
        Console.WriteLine($"total Transformer benchmark time {total.Elapsed.TotalMinutes:F1} min");
        return 0;
    }

    private sealed class LengthRow
    {
        public int L;
        public double FusedTrainer, FusedRaw, FusedPeak, FusedEval, ExplicitTrainer, ExplicitPeak, ExplicitEval;
        public double FusedWithDropout = double.NaN, ExplicitWithDropout = double.NaN, FusedWithDropoutPeak = double.NaN, ExplicitWithDropoutPeak = double.NaN;
    }

    private static string Join(IEnumerable<double> values, string format = "F3") => string.Join(", ", values.Select(v => v.ToString(format, CultureInfo.InvariantCulture)));

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
        string I(int v) => v.ToString(CultureInfo.InvariantCulture);
        var (exitCode, output, error) = ChildProcess.RunSelf(MemoryChildFlag, I(_trainRows), I(_memoryEpochs), I(_batch), I(_threads ?? 0), I(_layers), I(_width), I(_heads));
        var line = output.Split('\n').FirstOrDefault(l => l.StartsWith("TRANSFORMERMEM ", StringComparison.Ordinal));
        return exitCode == 0 && line is not null ? line["TRANSFORMERMEM ".Length..].Trim() : $"(memory child failed, exit {exitCode}: {error})";
    }

    /// <summary>The child: what a user's process does — load the messages, Fit tokens + Transformer, score all messages — and its peak RSS.</summary>
    public static int MemoryChild(string[] args)
    {
        var a = args.Skip(1).Select(x => int.Parse(x, CultureInfo.InvariantCulture)).ToArray();
        int rows = a[0], epochs = a[1], threads = a[3];
        (_batch, _layers, _width, _heads) = (a[2], a[4], a[5], a[6]);
        double start = Memory.RssKiB() / 1024.0;
        using (var probe = torch.zeros(1)) { } // loads libtorch
        if (threads > 0) torch.set_num_threads(threads);
        var ml = new MLContext(Seed);
        var all = RealData.Sms(ml);
        var train = rows > 0 ? ml.Data.TakeRows(all, rows) : all;
        long count = Bench.CountRows(train, train.Schema["Label"]);
        double afterLoad = Memory.RssKiB() / 1024.0;
        var watch = Stopwatch.StartNew();
        var model = SmsTokens(ml).Append(ml.BinaryClassification.Trainers.Transformer(TrainerOptions(Setup.Sms, epochs, null))).Fit(train);
        double fitSeconds = watch.Elapsed.TotalSeconds;
        double peakFit = Memory.HwmKiB() / 1024.0;
        var metrics = ml.BinaryClassification.Evaluate(model.Transform(all));
        double peak = Memory.HwmKiB() / 1024.0;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"TRANSFORMERMEM peak RSS {peak:F0} MiB for the whole process (VmHWM; {peakFit:F0} MiB by the end of Fit). RSS at start {start:F0} MiB, after loading libtorch and reading the {count} messages once {afterLoad:F0} MiB; Fit {fitSeconds:F0} s, accuracy on all messages {metrics.Accuracy:F4}"));
        return 0;
    }
}
