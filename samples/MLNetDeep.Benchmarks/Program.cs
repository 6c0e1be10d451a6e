// MLNetDeep benchmark: MLP training throughput of the ML.NET trainers against a hand-written TorchSharp loop on
// the same tensors, network, optimizer, loss, batch size, shuffle and epochs; plus peak memory. With --cnn, the CNN
// benchmark in CnnBenchmark.cs instead; with --rnn, the RNN benchmark in RnnBenchmark.cs; with --transformer, the
// Transformer benchmark in TransformerBenchmark.cs; with --onnx, ONNX Runtime scoring in OnnxBenchmark.cs. See README.md.
//
//   dotnet run -c Release --project samples/MLNetDeep.Benchmarks [-- --epochs N --repeats N]   (--help for the other options)
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Text;
using MLNetDeep;
using MLNetDeep.TestData;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MLNetDeep.Benchmarks;

internal enum TaskKind { Regression, Binary }

/// <summary>One benchmark case: a data set, a network and a batch size.</summary>
internal sealed record Case(string Name, TaskKind Task, string Data, int[] Hidden, int Batch);

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
}

/// <summary>Per-batch work the trainer's loop does and a minimal loop does not; added to raw loops in the profile section.</summary>
[Flags]
internal enum Extras
{
    None = 0,
    ItemPerBatch = 1,          // loss.item<float>() and a finiteness check, every batch
    SetLearningRate = 2,       // foreach (var g in optimizer.ParamGroups) g.LearningRate = lr, every batch
    StandardizePerBatch = 4,   // (y - mean) / std on the batch instead of once up front
    ManagedPermutation = 8,    // Fisher-Yates on a long[] in C# + torch.tensor(perm) instead of torch.randperm
    ShapeAndCheck = 16,        // y.shape[0] (allocates a long[]) and a cancellation-style check, every batch
    All = 31,
}

internal sealed record RawResult(double Seconds, long Batches, long AllocatedBytes, int Gen0, double FinalLoss, double ForeignCores, double OwnCores, double[] EpochSeconds);

internal sealed record TrainerResult(double LoopSeconds, double FitSeconds, long Batches, long LoopAllocatedBytes, int Gen0, double LastEpochTrainLoss, double ForeignCores, double OwnCores, double[] EpochSeconds)
{
    /// <summary>The fitted model, kept only to compute the sanity loss of the last run.</summary>
    public ITransformer? FinalLossModel { get; set; }
}

internal static class Program
{
    private const double LearningRate = 1e-3;
    private const double WeightDecay = 1e-4;
    private const int Seed = 20261123;

    private static int Epochs = 10;
    private static int Repeats = 5;
    private static bool Profile = true;
    private static int? Threads;
    private static string[]? OnlyCases;
    private static double QuietThreshold = 0.15; // cores used by other processes above which a measurement pair is repeated
    private static int MaxAttempts = 3;
    private static double MaxQuietWaitSeconds = 60;
    private static bool Verbose;
    private static double GcStressSeconds;
    private static double PreWarmSeconds = 1.5;
    private static double BudgetMinutes = 12;
    private static readonly Stopwatch Clock = Stopwatch.StartNew();
    /// <summary>After this long, stop waiting for quiet and stop repeating noisy measurements (they are flagged instead).</summary>
    private static bool OverBudget => Clock.Elapsed.TotalMinutes > BudgetMinutes;

    private static readonly Case[] AllCases =
    {
        new("bike [128,64] b64", TaskKind.Regression, "bike", new[] { 128, 64 }, 64),
        new("bike [512,512] b256", TaskKind.Regression, "bike", new[] { 512, 512 }, 256),
        new("sms [128,64] b64", TaskKind.Binary, "sms", new[] { 128, 64 }, 64),
    };

    public static int Main(string[] args)
    {
        CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
        CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
        if (args.Length == 3 && args[0] == MemoryProbe.ChildFlag) return MemoryProbe.Child(args[1], args[2]);
        if (args.Length == 4 && args[0] == CnnBenchmark.MemoryChildFlag)
            return CnnBenchmark.MemoryChild(args[1], int.Parse(args[2], CultureInfo.InvariantCulture), int.Parse(args[3], CultureInfo.InvariantCulture));
        if (args.Length > 0 && args[0] == CnnBenchmark.Flag) return CnnBenchmark.Run(args);
        if (args.Length == 5 && args[0] == RnnBenchmark.MemoryChildFlag)
            return RnnBenchmark.MemoryChild(int.Parse(args[1], CultureInfo.InvariantCulture), int.Parse(args[2], CultureInfo.InvariantCulture),
                int.Parse(args[3], CultureInfo.InvariantCulture), int.Parse(args[4], CultureInfo.InvariantCulture));
        if (args.Length > 0 && args[0] == RnnBenchmark.Flag) return RnnBenchmark.Run(args);
        if (args.Length == 8 && args[0] == TransformerBenchmark.MemoryChildFlag) return TransformerBenchmark.MemoryChild(args);
        if (args.Length > 0 && args[0] == TransformerBenchmark.Flag) return TransformerBenchmark.Run(args);
        if (args.Length > 0 && args[0] == OnnxBenchmark.Flag) return OnnxBenchmark.Run(args);
        if (!ParseArgs(args)) return 2;
        if (GcStressSeconds > 0) return GcStress.Run(GcStressSeconds);

        var total = Stopwatch.StartNew();
        if (Threads is int t) torch.set_num_threads(t);
        Header();
        Memory.Report("start (engine loaded)");

        var results = new List<(Case Case, Prepared Data, Summary S)>();
        var prepared = new Dictionary<string, Prepared>();
        var cases = AllCases.Where(c => OnlyCases is null || OnlyCases.Any(o => c.Name.StartsWith(o, StringComparison.OrdinalIgnoreCase) || c.Data.Equals(o, StringComparison.OrdinalIgnoreCase))).ToList();
        foreach (var c in cases)
        {
            if (!prepared.TryGetValue(c.Data, out var data))
            {
                Memory.ResetPeak();
                data = c.Data == "bike" ? PrepareBike() : PrepareSms();
                prepared[c.Data] = data;
                Settle();
                Console.WriteLine($"data '{data.Name}': {data.N} rows x {data.D} features, featurized + cached + read into tensors in {data.PrepareSeconds:F1}s");
                Memory.Report($"after preparing {data.Name}");
            }
            results.Add((c, data, RunCase(c, data)));
        }

        if (Profile && cases.FirstOrDefault(c => c.Data == "bike" && c.Batch == 64) is Case pc)
            ProfileOverheads(pc, prepared[pc.Data]);

        PrintTable(results);
        if (_engineErrors > 0) Console.WriteLine($"engine errors during the benchmark (measurements repeated): {_engineErrors}");
        Memory.Report("end");
        Console.WriteLine($"total benchmark time {total.Elapsed.TotalMinutes:F1} min");
        foreach (var p in prepared.Values) p.Dispose();
        return 0;
    }

    private static bool ParseArgs(string[] args)
    {
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{a} needs a value");
            switch (a)
            {
                case "--epochs": Epochs = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--repeats": Repeats = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--threads": Threads = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--cases": OnlyCases = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries); break;
                case "--no-profile": Profile = false; break;
                case "--verbose": Verbose = true; break;
                case "--prewarm": PreWarmSeconds = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--gc-stress": GcStressSeconds = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--budget-minutes": BudgetMinutes = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--quiet-threshold": QuietThreshold = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--attempts": MaxAttempts = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--max-wait": MaxQuietWaitSeconds = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--profile": Profile = true; break;
                case "-h":
                case "--help":
                    Console.WriteLine("usage: dotnet run -c Release --project samples/MLNetDeep.Benchmarks [-- --epochs N (10) --repeats N (5) --threads N (torch default) --cases bike,sms --no-profile");
                    Console.WriteLine("       --quiet-threshold CORES (0.15) --attempts N (3) --max-wait SECONDS (60)]: on a shared machine, a measurement is repeated when other");
                    Console.WriteLine("       processes used more than CORES during it, after waiting up to SECONDS for them to go quiet; --budget-minutes M (12):");
                    Console.WriteLine("       after M minutes, no more waiting or repeating (noisy runs are flagged). --verbose prints every epoch's time.");
                    Console.WriteLine("       --gc-stress SECONDS: instead of the benchmark, train (trainer, then raw loop) on bike for up to SECONDS each while another");
                    Console.WriteLine("       thread allocates, and report whether training survives (see README: GC stress).");
                    Console.WriteLine("       --cnn [--help for its options]: the CNN benchmark on Fashion-MNIST instead (see README: CNN).");
                    Console.WriteLine("       --rnn [--help for its options]: the RNN (LSTM) benchmark on the SMS spam messages instead (see README: RNN).");
                    Console.WriteLine("       --transformer [--help for its options]: the Transformer benchmark on the SMS spam messages instead (see README: Transformer).");
                    Console.WriteLine("       --onnx [--help for its options]: exported models in ONNX Runtime vs MLNetDeep scoring (see README: ONNX).");
                    return false;
                default:
                    Console.Error.WriteLine($"unknown argument '{a}' (try --help)");
                    return false;
            }
        }
        if (Epochs < 1 || Repeats < 1) { Console.Error.WriteLine("--epochs and --repeats must be positive"); return false; }
        return true;
    }

    private static void Header()
    {
        using (var probe = torch.zeros(1)) { } // loads libtorch through TorchSharp
        string torchSharp = typeof(torch).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion ?? typeof(torch).Assembly.GetName().Version!.ToString();
        Console.WriteLine("MLNetDeep benchmark: MLP trainer vs raw TorchSharp loop");
        Console.WriteLine($"  {DateTime.Now:yyyy-MM-dd HH:mm}, {RuntimeInformation.OSDescription}, {RuntimeInformation.FrameworkDescription}, {Environment.ProcessorCount} logical cores");
        Console.WriteLine($"  TorchSharp {torchSharp.Split('+')[0]}, torch.get_num_threads() = {torch.get_num_threads()}, interop threads = {torch.get_num_interop_threads()}");
        Console.WriteLine($"  epochs {Epochs} per run, repeats {Repeats} (median reported), AdamW lr {LearningRate} weight decay {WeightDecay}, ReLU, dropout 0, no batch norm, MSE / BCE-with-logits");
        Console.WriteLine($"  data: {DataPaths.Root}");
        Console.WriteLine();
    }

    // ---------------------------------------------------------------- data

    private static Prepared PrepareBike()
    {
        var watch = Stopwatch.StartNew();
        var ml = new MLContext(Seed);
        var raw = RealData.BikeTrain(ml);
        // Featurization as the tests' Pipelines.BikeFeatures, run once; the trainer then gets the cached result.
        var featurizer = ml.Transforms.Concatenate("Features", BikeRow.FeatureColumns).Append(ml.Transforms.NormalizeMeanVariance("Features")).Fit(raw);
        var view = ml.Data.Cache(featurizer.Transform(raw), "Features", "Label");
        return Read("bike", TaskKind.Regression, view, watch);
    }

    private static Prepared PrepareSms()
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
        long n = view.GetRowCount() ?? CountRows(view, labelCol);
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

    internal static long CountRows(IDataView view, DataViewSchema.Column column)
    {
        long n = 0;
        using var cursor = view.GetRowCursor(new[] { column });
        while (cursor.MoveNext()) n++;
        return n;
    }

    // ---------------------------------------------------------------- the raw loop

    /// <summary>The layers MlpNetworkSpec builds for (hidden, ReLU, dropout 0, no batch norm), with its initialisation and layer names.</summary>
    private static nn.Module<Tensor, Tensor> BuildNet(int input, int[] hidden)
    {
        var layers = new List<(string, nn.Module<Tensor, Tensor>)>();
        int width = input;
        for (int i = 0; i < hidden.Length; i++)
        {
            var linear = nn.Linear(width, hidden[i], hasBias: true);
            using (torch.no_grad())
            {
                nn.init.kaiming_uniform_(linear.weight!, 0, nn.init.FanInOut.FanIn, nn.init.NonlinearityType.ReLU);
                nn.init.zeros_(linear.bias!);
            }
            layers.Add(($"linear{i}", linear));
            layers.Add(($"activation{i}", nn.ReLU()));
            width = hidden[i];
        }
        var head = nn.Linear(width, 1);
        using (torch.no_grad())
        {
            nn.init.xavier_uniform_(head.weight!);
            nn.init.zeros_(head.bias!);
        }
        layers.Add(("head", head));
        return nn.Sequential(layers);
    }

    internal static Tensor Loss(TaskKind task, Tensor output, Tensor target) => task == TaskKind.Regression
        ? F.mse_loss(output.squeeze(1), target)
        : F.binary_cross_entropy_with_logits(output.squeeze(1), target);

    /// <summary>
    /// The minimal TorchSharp loop, one epoch per call (so that its epochs can be interleaved with the trainer's):
    /// a permutation per epoch, then per batch index_select of x and y, zero_grad, forward, loss, backward and an
    /// AdamW step, inside a dispose scope. <see cref="Extras"/> adds the trainer's per-batch work, for the profile.
    /// </summary>
    internal sealed class RawLoop : IDisposable
    {
        private readonly Prepared _p;
        private readonly Case _c;
        private readonly Extras _extras;
        public Case Case => _c;
        private readonly nn.Module<Tensor, Tensor> _net;
        private readonly TorchSharp.Modules.OptimizerHelper _optimizer;
        private readonly Random _shuffle = new(Seed);
        private long _sink;

        public long Batches { get; private set; }
        public long AllocatedBytes { get; private set; }
        public int Gen0 { get; private set; }
        public List<double> EpochSeconds { get; } = new();

        public RawLoop(Prepared p, Case c, Extras extras = Extras.None)
        {
            _p = p;
            _c = c;
            _extras = extras;
            torch.manual_seed(Seed); // the trainer seeds the same way before building: same initial weights
            _net = BuildNet(p.D, c.Hidden);
            _optimizer = torch.optim.AdamW(_net.parameters(), LearningRate, weight_decay: WeightDecay);
        }

        private bool Has(Extras e) => (_extras & e) != 0;

        public double Epoch()
        {
            var p = _p;
            long n = p.N;
            int b = _c.Batch;
            long alloc = GC.GetAllocatedBytesForCurrentThread();
            int gen0 = GC.CollectionCount(0);
            var watch = Stopwatch.StartNew();
            _net.train();
            using (var perm = Has(Extras.ManagedPermutation) ? ManagedPermutation(n, _shuffle) : torch.randperm(n))
            {
                for (long start = 0; start < n; start += b)
                {
                    if (Has(Extras.ShapeAndCheck) && Volatile.Read(ref _cancelled)) throw new OperationCanceledException();
                    using var scope = torch.NewDisposeScope();
                    long len = Math.Min(b, n - start);
                    var idx = perm.narrow(0, start, len);
                    var x = p.X.index_select(0, idx);
                    var y = (Has(Extras.StandardizePerBatch) ? p.YRaw : p.Y).index_select(0, idx);
                    if (Has(Extras.SetLearningRate))
                        foreach (var g in _optimizer.ParamGroups) g.LearningRate = LearningRate;
                    _optimizer.zero_grad();
                    var output = _net.forward(x);
                    var target = Has(Extras.StandardizePerBatch) ? (y - p.Mean) / p.Std : y;
                    var loss = Loss(p.Task, output, target);
                    if (Has(Extras.ItemPerBatch))
                    {
                        double value = loss.item<float>();
                        if (!double.IsFinite(value)) throw new InvalidOperationException("diverged");
                    }
                    loss.backward();
                    _optimizer.step();
                    if (Has(Extras.ShapeAndCheck)) _sink += y.shape[0];
                    Batches++;
                }
            }
            watch.Stop();
            AllocatedBytes += GC.GetAllocatedBytesForCurrentThread() - alloc;
            Gen0 += GC.CollectionCount(0) - gen0;
            EpochSeconds.Add(watch.Elapsed.TotalSeconds);
            return watch.Elapsed.TotalSeconds;
        }

        public double FullLoss() => Program.FullLoss(_p, _net);

        public void Dispose()
        {
            _optimizer.Dispose();
            _net.Dispose();
        }
    }

    private static bool _cancelled = false; // stands for the trainer's host.CheckAlive() (a flag read per batch)

    private static Tensor ManagedPermutation(long n, Random shuffle)
    {
        var perm = new long[n];
        for (long i = 0; i < n; i++) perm[i] = i;
        for (long i = n - 1; i > 0; i--)
        {
            long j = shuffle.NextInt64(i + 1);
            (perm[i], perm[j]) = (perm[j], perm[i]);
        }
        return torch.tensor(perm).DetachFromDisposeScope();
    }

    /// <summary>
    /// Untimed epochs of a throw-away raw loop (at least one, at least <see cref="PreWarmSeconds"/>) right before a
    /// timed run: after the pauses between runs (garbage collection, waiting for other processes) this machine needs
    /// a while to get back to full speed, and the side that runs first would pay for it.
    /// </summary>
    private static void PreWarm(Prepared p, Case c)
    {
        using var warm = new RawLoop(p, c);
        var watch = Stopwatch.StartNew();
        do warm.Epoch(); while (watch.Elapsed.TotalSeconds < PreWarmSeconds);
    }

    /// <summary>A whole raw training run of <paramref name="epochs"/> epochs, timed as a block.</summary>
    private static RawResult RawTrain(Prepared p, Case c, int epochs, Extras extras = Extras.None, bool evaluate = true)
    {
        using var loop = new RawLoop(p, c, extras);
        var cpu = CpuSnapshot.Take();
        var watch = Stopwatch.StartNew();
        for (int e = 0; e < epochs; e++) loop.Epoch();
        watch.Stop();
        var cpuEnd = CpuSnapshot.Take();
        return new RawResult(watch.Elapsed.TotalSeconds, loop.Batches, loop.AllocatedBytes, loop.Gen0, evaluate ? loop.FullLoss() : double.NaN,
            cpuEnd.ForeignCoresSince(cpu), cpuEnd.OwnCoresSince(cpu), loop.EpochSeconds.ToArray());
    }

    /// <summary>Loss of the trained network on all training rows (eval mode, untimed): a sanity check that both sides learn alike.</summary>
    internal static double FullLoss(Prepared p, nn.Module<Tensor, Tensor> net)
    {
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        net.eval();
        var outputs = new List<Tensor>();
        for (long s = 0; s < p.N; s += 1024) outputs.Add(net.forward(p.X.narrow(0, s, Math.Min(1024, p.N - s))));
        var output = torch.cat(outputs, 0);
        return Loss(p.Task, output, p.Y).item<float>();
    }

    // ---------------------------------------------------------------- the trainer

    /// <summary>
    /// One Fit of the MLNetDeep trainer. The loop time is the sum of EpochMetrics.Seconds (the epochs only: no data
    /// loading, network building or model creation). <paramref name="afterEpoch"/> runs inside the epoch callback,
    /// i.e. after the trainer stopped that epoch's clock and before it starts the next one's.
    /// </summary>
    private static TrainerResult TrainerTrain(Prepared p, Case c, int epochs, Action<string>? log = null, Action<int>? afterEpoch = null)
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
        ITransformer model;
        if (p.Task == TaskKind.Regression)
        {
            var o = new MlpRegressionTrainer.Options
            {
                HiddenLayers = c.Hidden, Dropout = 0, BatchNorm = false, Activation = DeepActivation.Relu,
                NumberOfEpochs = epochs, BatchSize = c.Batch, Optimizer = DeepOptimizer.AdamW, LearningRate = LearningRate, WeightDecay = WeightDecay,
                RegressionLoss = RegressionLoss.SquaredError, StandardizeLabel = true, Caching = DataCaching.Memory, EpochCallback = OnEpoch,
            };
            model = ml.Regression.Trainers.Mlp(o).Fit(p.View);
        }
        else
        {
            var o = new MlpBinaryTrainer.Options
            {
                HiddenLayers = c.Hidden, Dropout = 0, BatchNorm = false, Activation = DeepActivation.Relu,
                NumberOfEpochs = epochs, BatchSize = c.Batch, Optimizer = DeepOptimizer.AdamW, LearningRate = LearningRate, WeightDecay = WeightDecay,
                Caching = DataCaching.Memory, EpochCallback = OnEpoch,
            };
            model = ml.BinaryClassification.Trainers.Mlp(o).Fit(p.View);
        }
        watch.Stop();
        var cpuEnd = CpuSnapshot.Take();
        long batchesPerEpoch = (p.N + c.Batch - 1) / c.Batch;
        long measuredBatches = batchesPerEpoch * Math.Max(0, epochs - 1);
        return new TrainerResult(loopSeconds, watch.Elapsed.TotalSeconds, batchesPerEpoch * epochs, measuredBatches > 0 ? loopAlloc * epochs / (epochs - 1) : 0, gen0, lastLoss,
            cpuEnd.ForeignCoresSince(cpu), cpuEnd.OwnCoresSince(cpu), epochSeconds.ToArray()) { FinalLossModel = model };
    }

    /// <summary>Loss of the trainer's model on all training rows, through ML.NET scoring (in the label units the trainer trains on).</summary>
    private static double TrainerFullLoss(Prepared p, ITransformer model)
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
        if (p.Task == TaskKind.Regression) output = (output - p.Mean) / p.Std; // Score is in label units; the loop's loss is on the standardized label
        return Loss(p.Task, output, p.Y).item<float>();
    }

    /// <summary>
    /// One trainer Fit of <paramref name="epochs"/> epochs with an epoch of every raw loop between two of its epochs
    /// (and, when <paramref name="rawFirst"/>, one before its first): both sides meet the same machine state, so
    /// slow stretches (other processes, the host) hit both alike.
    /// </summary>
    private static (TrainerResult Trainer, double ForeignCores) Interleaved(Prepared p, Case c, int epochs, bool rawFirst, IReadOnlyList<RawLoop> loops)
    {
        void RawEpochs(int round)
        {
            for (int i = 0; i < loops.Count; i++) loops[(i + round) % loops.Count].Epoch(); // rotate the order
        }
        PreWarm(p, loops[0].Case);
        var cpu = CpuSnapshot.Take();
        if (rawFirst) RawEpochs(0);
        var t = TrainerTrain(p, c, epochs, afterEpoch: e => { if (!rawFirst || e < epochs) RawEpochs(e); });
        return (t, CpuSnapshot.Take().ForeignCoresSince(cpu));
    }

    // ---------------------------------------------------------------- one case

    internal sealed record Summary(
        double RawRowsPerSecond, double TrainerRowsPerSecond, double Ratio, double EpochPairRatio,
        double SeparateRawRowsPerSecond, double SeparateTrainerRowsPerSecond, double SeparateRatio,
        double FitRowsPerSecond, double FitRatio, double FitOverheadSeconds,
        double RawLoss, double TrainerLoss, double RawAllocPerBatch, double TrainerAllocPerBatch,
        double PeakRssMiB, double ProcessPeakRssMiB, double RawPeakMiB, double TrainerPeakMiB, double MaxForeignCores, int NoisyRuns);

    private static Summary RunCase(Case c, Prepared p)
    {
        Console.WriteLine($"=== {c.Name}: {c.Task}, {p.N} rows x {p.D} features, hidden [{string.Join(",", c.Hidden)}], batch {c.Batch}, {Epochs} epochs, {Repeats} repeats, torch threads {torch.get_num_threads()}");
        Memory.ResetPeak();
        double rowsPerRun = (double)p.N * Epochs;
        long batchesPerEpoch = (p.N + c.Batch - 1) / c.Batch;
        double maxForeign = 0;
        int noisy = 0;

        // Warm-up: one epoch of each (JIT, libtorch kernels and threads, allocator).
        var wr = RawTrain(p, c, 1, evaluate: false);
        var wt = TrainerTrain(p, c, 1);
        wt.FinalLossModel = null;
        Console.WriteLine($"  warm-up: raw 1 epoch {wr.Seconds:F2}s; trainer 1 epoch {wt.LoopSeconds:F2}s (Fit {wt.FitSeconds:F2}s)"
            + (Verbose ? $"; RSS now {Memory.RssKiB() / 1024.0:F0} MiB, peak since the case started {Memory.HwmKiB() / 1024.0:F0} MiB" : ""));
        Settle();

        // 1. Interleaved: the raw loop's epochs run between the trainer's epochs (inside its EpochCallback).
        Console.WriteLine("  interleaved (a raw epoch between two trainer epochs; trainer time = sum of EpochMetrics.Seconds):");
        var iRaw = new List<double>();
        var iTrainer = new List<double>();
        var iRatios = new List<double>();
        var epochRatios = new List<double>();
        for (int r = 0; r < Repeats; r++)
        {
            for (int attempt = 1; ; attempt++)
            {
                WaitForQuiet();
                bool rawFirst = r % 2 == 1;
                double rawSum, trainerSum, foreign;
                double[] rawEpochs, trainerEpochs;
                try
                {
                    using var loop = new RawLoop(p, c);
                    var (t, f) = Interleaved(p, c, Epochs, rawFirst, new[] { loop });
                    t.FinalLossModel = null;
                    (rawSum, trainerSum, foreign, rawEpochs, trainerEpochs) = (loop.EpochSeconds.Sum(), t.LoopSeconds, f, loop.EpochSeconds.ToArray(), t.EpochSeconds);
                }
                catch (ExternalException e) when (attempt < MaxAttempts) { EngineError(e); continue; }
                finally { Settle(); }
                Console.WriteLine($"    run {r + 1}{(attempt > 1 ? $" (attempt {attempt})" : "")}{(rawFirst ? ", raw first" : ", trainer first")}: raw {rawSum:F2}s = {rowsPerRun / rawSum,9:F0} rows/s | trainer {trainerSum:F2}s = {rowsPerRun / trainerSum,9:F0} rows/s | "
                    + $"ratio {rawSum / trainerSum:F3} | other processes {foreign:F2} cores");
                if (Verbose)
                {
                    Console.WriteLine($"      raw epoch ms:     {string.Join(" ", rawEpochs.Select(x => (x * 1000).ToString("F0")))}");
                    Console.WriteLine($"      trainer epoch ms: {string.Join(" ", trainerEpochs.Select(x => (x * 1000).ToString("F0")))}");
                    Console.WriteLine($"      RSS now {Memory.RssKiB() / 1024.0:F0} MiB, peak since the case started {Memory.HwmKiB() / 1024.0:F0} MiB");
                }
                bool quiet = !(foreign > QuietThreshold);
                if (quiet || attempt >= MaxAttempts || OverBudget)
                {
                    if (!quiet) { noisy++; Console.WriteLine($"    run {r + 1}: other processes used {foreign:F2} cores in all {attempt} attempt(s); kept (flagged)"); }
                    maxForeign = Math.Max(maxForeign, foreign);
                    iRaw.Add(rawSum);
                    iTrainer.Add(trainerSum);
                    iRatios.Add(rawSum / trainerSum);
                    epochRatios.AddRange(rawEpochs.Zip(trainerEpochs, (a, b) => a / b));
                    break;
                }
            }
        }
        double rawRps = rowsPerRun / Median(iRaw), trainerRps = rowsPerRun / Median(iTrainer);
        double ratio = Median(iRatios), epochPairRatio = Median(epochRatios);
        Console.WriteLine($"    median: raw {rawRps:F0} rows/s ({Median(iRaw) / (batchesPerEpoch * Epochs) * 1e6:F0} us/batch), trainer {trainerRps:F0} rows/s ({Median(iTrainer) / (batchesPerEpoch * Epochs) * 1e6:F0} us/batch)");
        Console.WriteLine($"    ratio trainer/raw = {ratio:F2}  (goal >= 0.95: {(ratio >= 0.95 ? "MET" : "NOT MET")}; median of the {Repeats} per-run ratios; median of the {epochRatios.Count} per-epoch ratios {epochPairRatio:F2})");

        // 2. Separate runs, alternating which side goes first: the trainer's whole Fit wall time, allocations, the final loss.
        Console.WriteLine("  separate runs (each side alone, alternating order):");
        var raw = new List<RawResult>();
        var trainer = new List<TrainerResult>();
        for (int r = 0; r < Repeats; r++)
        {
            for (int attempt = 1; ; attempt++)
            {
                WaitForQuiet();
                RawResult rr;
                TrainerResult tt;
                try
                {
                    if (r % 2 == 0) { PreWarm(p, c); rr = RawTrain(p, c, Epochs); Settle(); PreWarm(p, c); tt = TrainerTrain(p, c, Epochs); Settle(); }
                    else { PreWarm(p, c); tt = TrainerTrain(p, c, Epochs); Settle(); PreWarm(p, c); rr = RawTrain(p, c, Epochs); Settle(); }
                }
                catch (ExternalException e) when (attempt < MaxAttempts) { EngineError(e); continue; }
                double foreign = Math.Max(rr.ForeignCores, tt.ForeignCores);
                Console.WriteLine($"    run {r + 1}{(attempt > 1 ? $" (attempt {attempt})" : "")}: raw {rr.Seconds:F2}s = {rowsPerRun / rr.Seconds,9:F0} rows/s | trainer loop {tt.LoopSeconds:F2}s = {rowsPerRun / tt.LoopSeconds,9:F0} rows/s, "
                    + $"Fit {tt.FitSeconds:F2}s = {rowsPerRun / tt.FitSeconds,9:F0} rows/s | CPU cores: own {rr.OwnCores:F2}/{tt.OwnCores:F2}, other processes {rr.ForeignCores:F2}/{tt.ForeignCores:F2}");
                if (Verbose)
                {
                    Console.WriteLine($"      raw epoch ms:     {string.Join(" ", rr.EpochSeconds.Select(x => (x * 1000).ToString("F0")))}");
                    Console.WriteLine($"      trainer epoch ms: {string.Join(" ", tt.EpochSeconds.Select(x => (x * 1000).ToString("F0")))}");
                    Console.WriteLine($"      RSS now {Memory.RssKiB() / 1024.0:F0} MiB, peak since the case started {Memory.HwmKiB() / 1024.0:F0} MiB");
                }
                bool quiet = !(foreign > QuietThreshold);
                if (quiet || attempt >= MaxAttempts || OverBudget)
                {
                    if (!quiet) { noisy++; Console.WriteLine($"    run {r + 1}: other processes used {foreign:F2} cores in all {attempt} attempt(s); kept (flagged)"); }
                    maxForeign = Math.Max(maxForeign, foreign);
                    if (r != Repeats - 1) tt.FinalLossModel = null;
                    raw.Add(rr);
                    trainer.Add(tt);
                    break;
                }
                tt.FinalLossModel = null;
            }
        }
        double sRaw = rowsPerRun / Median(raw.Select(x => x.Seconds));
        double sTrainer = rowsPerRun / Median(trainer.Select(x => x.LoopSeconds));
        double fitRps = rowsPerRun / Median(trainer.Select(x => x.FitSeconds));
        double fitOverhead = Median(trainer.Select(x => x.FitSeconds - x.LoopSeconds));
        double rawLoss = raw[^1].FinalLoss;
        double trainerLoss = TrainerFullLoss(p, trainer[^1].FinalLossModel!);
        trainer[^1].FinalLossModel = null;
        double rawAlloc = raw.Average(x => (double)x.AllocatedBytes / x.Batches);
        double trainerAlloc = trainer.Average(x => (double)x.LoopAllocatedBytes / x.Batches);
        Console.WriteLine($"    median: raw {sRaw:F0} rows/s, trainer loop {sTrainer:F0} rows/s (ratio {sTrainer / sRaw:F2}), trainer whole Fit {fitRps:F0} rows/s (Fit/raw {fitRps / sRaw:F2}; "
            + $"Fit time outside the epochs {fitOverhead:F2}s: reading the IDataView into a tensor, building the network, making the model)");
        Console.WriteLine($"    managed allocations per batch: raw {rawAlloc:F0} B, trainer {trainerAlloc:F0} B; gen0 GCs during the timed epochs: raw {raw.Sum(x => x.Gen0)}, trainer {trainer.Sum(x => x.Gen0)}");
        Console.WriteLine($"    full-data training loss after {Epochs} epochs: raw {rawLoss:F4}, trainer {trainerLoss:F4} ({(p.Task == TaskKind.Regression ? "MSE of the standardized label" : "BCE with logits")}; same initial weights, different shuffles)");
        double peak = Memory.PeakRssMiB(); // since the reset at the start of this case
        Memory.Report($"after {c.Name}");

        // 3. Peak memory of each side alone, each in a fresh process (here, memory the allocators kept from earlier runs hides growth).
        var rawProbe = MemoryProbe.RunChild(c, "raw");
        var trainerProbe = MemoryProbe.RunChild(c, "trainer");
        Console.WriteLine($"  memory of one 1-epoch run in a fresh process, above its RSS after data preparation (the data tensor alone is {p.N * p.D * 4 / 1048576.0:F0} MiB):");
        Console.WriteLine($"    raw     : {rawProbe?.ToString() ?? "probe failed"}");
        Console.WriteLine($"    trainer : {trainerProbe?.ToString() ?? "probe failed"}");
        if (p.N * p.D * 4L > 100L << 20)
        {
            // Several Fits in a row (hyper-parameter search, cross-validation), with no GC forced between them.
            var repeated = MemoryProbe.RunChild(c, "trainer-x5");
            Console.WriteLine($"    trainer, 5 one-epoch Fits in a row: {repeated?.Repeated ?? "probe failed"} (peak {repeated?.PeakMiB ?? double.NaN:F0} MiB)");
        }
        Console.WriteLine();
        return new Summary(rawRps, trainerRps, ratio, epochPairRatio, sRaw, sTrainer, sTrainer / sRaw, fitRps, fitRps / sRaw, fitOverhead,
            rawLoss, trainerLoss, rawAlloc, trainerAlloc, peak, Memory.ProcessPeakRssMiB(),
            rawProbe?.PeakAboveBaselineMiB ?? double.NaN, trainerProbe?.PeakAboveBaselineMiB ?? double.NaN, maxForeign, noisy);
    }

    // ---------------------------------------------------------------- profile of per-batch overheads

    private static void ProfileOverheads(Case c, Prepared p)
    {
        long batchesPerEpoch = (p.N + c.Batch - 1) / c.Batch;
        Console.WriteLine($"=== profile: per-batch work the trainer's loop does and a minimal loop does not, on {c.Name} ({batchesPerEpoch} batches/epoch)");
        Console.WriteLine($"  every variant is a raw loop; their epochs are interleaved (rotating order) between the epochs of a trainer Fit, {Repeats} Fits of {Epochs} epochs");
        var variants = new (string Name, Extras E)[]
        {
            ("raw (minimal)", Extras.None),
            ("+ (y - mean) / std per batch", Extras.StandardizePerBatch),
            ("+ all the trainer's extras", Extras.All),
        };
        const string trainerName = "MLNetDeep trainer";
        RawTrain(p, c, 1, Extras.All, evaluate: false); // warm-up
        var names = variants.Select(v => v.Name).Append(trainerName).ToArray();
        var epochs = names.ToDictionary(n => n, _ => new List<double>());
        var diffs = names.ToDictionary(n => n, _ => new List<double>()); // per epoch: variant - minimal, same round
        double maxForeign = 0;
        for (int r = 0; r < Repeats; r++)
        {
            for (int attempt = 1; ; attempt++)
            {
                WaitForQuiet();
                var loops = variants.Select(v => new RawLoop(p, c, v.E)).ToArray();
                try
                {
                    var (t, foreign) = Interleaved(p, c, Epochs, rawFirst: r % 2 == 1, loops);
                    t.FinalLossModel = null;
                    if (foreign > QuietThreshold && attempt < MaxAttempts && !OverBudget) continue;
                    maxForeign = Math.Max(maxForeign, foreign);
                    for (int e = 0; e < Epochs; e++)
                    {
                        double minimal = loops[0].EpochSeconds[e];
                        for (int v = 0; v < loops.Length; v++)
                        {
                            epochs[variants[v].Name].Add(loops[v].EpochSeconds[e]);
                            diffs[variants[v].Name].Add(loops[v].EpochSeconds[e] - minimal);
                        }
                        epochs[trainerName].Add(t.EpochSeconds[e]);
                        diffs[trainerName].Add(t.EpochSeconds[e] - minimal);
                    }
                    break;
                }
                catch (ExternalException e) when (attempt < MaxAttempts) { EngineError(e); }
                finally
                {
                    foreach (var l in loops) l.Dispose();
                    Settle();
                }
            }
        }
        Console.WriteLine($"  (other processes used at most {maxForeign:F2} cores during these runs)");
        Console.WriteLine($"  {"variant",-36} {"median epoch",12} {"best epoch",11} {"median extra vs minimal (same round)",38}");
        foreach (var name in names)
        {
            double m = Median(epochs[name]), b = epochs[name].Min(), d = Median(diffs[name]);
            Console.WriteLine($"  {name,-36} {m * 1000,9:F1} ms {b * 1000,8:F1} ms {d * 1000,12:F2} ms/epoch = {d / batchesPerEpoch * 1e6,6:F1} us/batch ({d / Median(epochs[variants[0].Name]) * 100,5:F1} %)");
        }

        // Micro-benchmarks of single operations (200k iterations each).
        Console.WriteLine("  the trainer's extras: loss.item() + IsFinite, ParamGroups.LearningRate = lr, (y - mean) / std, C# Fisher-Yates permutation, y.shape[0], cancel check (per batch)");
        Console.WriteLine("  single operations (mean over 200000 calls, 2000 for the per-epoch ones):");
        using var probeNet = BuildNet(p.D, c.Hidden);
        using var opt = torch.optim.AdamW(probeNet.parameters(), LearningRate, weight_decay: WeightDecay);
        using var someLoss = torch.tensor(0.5f);
        using var yb = p.YRaw.narrow(0, 0, c.Batch).clone();
        Micro("NewDisposeScope + Dispose", () => { using var s = torch.NewDisposeScope(); });
        double item = Micro("loss.item<float>()", () => { _ = someLoss.item<float>(); });
        double lr = Micro("foreach ParamGroups: LearningRate = lr", () => { foreach (var g in opt.ParamGroups) g.LearningRate = LearningRate; });
        double std = Micro("(y - mean) / std on a batch (in a scope)", () => { using var s = torch.NewDisposeScope(); _ = (yb - p.Mean) / p.Std; });
        double shape = Micro("y.shape[0]", () => { _ = yb.shape[0]; });
        Micro("y.size(0)", () => { _ = yb.size(0); });
        var shuffle = new Random(1);
        double fy = Micro($"Fisher-Yates of {p.N} + torch.tensor (per epoch)", () => { using var t = ManagedPermutation(p.N, shuffle); }, 2000);
        double rp = Micro($"torch.randperm({p.N}) (per epoch)", () => { using var t = torch.randperm(p.N); }, 2000);
        double perBatch = item + lr + std + shape + (fy - rp) / batchesPerEpoch;
        double minimalBatch = Median(epochs[variants[0].Name]) / batchesPerEpoch * 1e6;
        Console.WriteLine($"  sum of the extras: {perBatch:F1} us per batch = {perBatch / minimalBatch * 100:F1} % of a minimal-loop batch ({minimalBatch:F0} us, median epoch / batches);"
            + $" of which (y - mean) / std {std:F1} us");
        Console.WriteLine();
    }

    private static double Micro(string name, Action a, int n = 200_000)
    {
        for (int i = 0; i < Math.Min(1000, n); i++) a();
        long alloc = GC.GetAllocatedBytesForCurrentThread();
        var w = Stopwatch.StartNew();
        for (int i = 0; i < n; i++) a();
        w.Stop();
        alloc = GC.GetAllocatedBytesForCurrentThread() - alloc;
        Console.WriteLine($"    {name,-50} {w.Elapsed.TotalMilliseconds * 1000 / n,8:F2} us   {alloc / (double)n,7:F0} B managed");
        return w.Elapsed.TotalMilliseconds * 1000 / n;
    }

    // ---------------------------------------------------------------- output

    private static void PrintTable(List<(Case Case, Prepared Data, Summary S)> results)
    {
        Console.WriteLine($"=== summary ({Epochs} epochs per run, median of {Repeats} runs, torch threads {torch.get_num_threads()})");
        Console.WriteLine("| case | rows x features | raw rows/s | trainer rows/s | ratio trainer/raw | goal >= 0.95 | per-epoch ratio | separate runs: raw / trainer rows/s (ratio) | trainer whole Fit rows/s (Fit/raw) | peak RSS of the case / process | RSS growth of one run: raw / trainer | other load (max cores) |");
        Console.WriteLine("|---|---|---:|---:|---:|---|---:|---|---|---|---|---:|");
        foreach (var (c, p, s) in results)
            Console.WriteLine($"| {c.Name} | {p.N} x {p.D} | {s.RawRowsPerSecond:F0} | {s.TrainerRowsPerSecond:F0} | **{s.Ratio:F2}** | {(s.Ratio >= 0.95 ? "met" : "NOT met")} | {s.EpochPairRatio:F2} | "
                + $"{s.SeparateRawRowsPerSecond:F0} / {s.SeparateTrainerRowsPerSecond:F0} ({s.SeparateRatio:F2}) | {s.FitRowsPerSecond:F0} ({s.FitRatio:F2}) | {s.PeakRssMiB:F0} / {s.ProcessPeakRssMiB:F0} MiB | "
                + $"+{s.RawPeakMiB:F0} / +{s.TrainerPeakMiB:F0} MiB | {s.MaxForeignCores:F2}{(s.NoisyRuns > 0 ? $" ({s.NoisyRuns} noisy)" : "")} |");
        Console.WriteLine();
        foreach (var (c, _, s) in results)
            Console.WriteLine($"{c.Name}: ratio trainer/raw = {s.Ratio:F2} -> goal {(s.Ratio >= 0.95 ? "met" : "NOT met")} (separate runs {s.SeparateRatio:F2}); "
                + $"managed alloc per batch raw {s.RawAllocPerBatch:F0} B, trainer {s.TrainerAllocPerBatch:F0} B; Fit time outside the epochs {s.FitOverheadSeconds:F2}s; "
                + $"final training loss raw {s.RawLoss:F4}, trainer {s.TrainerLoss:F4}");
        Console.WriteLine();
    }

    internal static Case FindCase(string name) => AllCases.Single(c => c.Name == name);

    /// <summary>
    /// Training while another thread allocates (so that garbage collections happen at any moment, as in a server or
    /// UI application). Stops each side after <paramref name="seconds"/> or at its first error.
    /// </summary>
    private static class GcStress
    {
        public static int Run(double seconds)
        {
            using var p = PrepareBike();
            var c = AllCases[0];
            Console.WriteLine($"GC stress: {c.Name} with a background thread allocating 2 KiB arrays, up to {seconds:F0}s per side");
            bool failed = false;
            failed |= Side("MLNetDeep trainer", seconds, (stop, epochs) =>
            {
                var ml = new MLContext(Seed);
                var o = new MlpRegressionTrainer.Options
                {
                    HiddenLayers = c.Hidden, Dropout = 0, NumberOfEpochs = 100_000, BatchSize = c.Batch, Caching = DataCaching.Memory,
                    EpochCallback = m => { epochs[0] = m.Epoch; if (stop.IsCancellationRequested) ml.CancelExecution(); },
                };
                try { ml.Regression.Trainers.Mlp(o).Fit(p.View); }
                catch (OperationCanceledException) when (stop.IsCancellationRequested) { }
            });
            failed |= Side("raw TorchSharp loop", seconds, (stop, epochs) =>
            {
                using var loop = new RawLoop(p, c);
                while (!stop.IsCancellationRequested) { loop.Epoch(); epochs[0]++; }
            });
            return failed ? 1 : 0;
        }

        private static bool Side(string name, double seconds, Action<CancellationToken, int[]> train)
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
            var epochs = new int[1];
            bool stopAllocating = false;
            var allocator = new Thread(() =>
            {
                var keep = new object[1024];
                int i = 0;
                while (!Volatile.Read(ref stopAllocating)) keep[i++ & 1023] = new byte[2048];
            }) { IsBackground = true };
            int gcs = GC.CollectionCount(0);
            var watch = Stopwatch.StartNew();
            allocator.Start();
            try
            {
                train(cts.Token, epochs);
                Console.WriteLine($"  {name}: survived {watch.Elapsed.TotalSeconds:F0}s ({epochs[0]} epochs, {GC.CollectionCount(0) - gcs} gen0 GCs)");
                return false;
            }
            catch (Exception e)
            {
                var frames = (e.StackTrace ?? "").Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0).Take(6);
                Console.WriteLine($"  {name}: FAILED after {watch.Elapsed.TotalSeconds:F1}s ({epochs[0]} epochs, {GC.CollectionCount(0) - gcs} gen0 GCs): {e.GetType().Name}: {e.Message.Split('\n')[0]}");
                foreach (var f in frames) Console.WriteLine($"      {f}");
                return true;
            }
            finally
            {
                Volatile.Write(ref stopAllocating, true);
                allocator.Join();
            }
        }
    }

    internal static Prepared PrepareData(string data) => data == "bike" ? PrepareBike() : PrepareSms();

    internal static void RunOnce(Prepared p, Case c, string side, Action<string>? trainerLog = null)
    {
        if (side == "raw") RawTrain(p, c, 1, evaluate: false);
        else if (side == "trainer") TrainerTrain(p, c, 1, trainerLog);
        else // "trainer-xN": N one-epoch Fits in a row, as a hyper-parameter search or cross-validation would do
        {
            int count = int.Parse(side["trainer-x".Length..], CultureInfo.InvariantCulture);
            var line = new List<string>();
            for (int i = 0; i < count; i++)
            {
                TrainerTrain(p, c, 1).FinalLossModel = null;
                line.Add($"{Memory.RssKiB() / 1024.0:F0}/{Memory.HwmKiB() / 1024.0:F0}");
            }
            Console.WriteLine($"REPEATED RSS/peak MiB after each Fit: {string.Join(", ", line)}");
        }
    }

    internal static double Median(IEnumerable<double> values)
    {
        var v = values.OrderBy(x => x).ToArray();
        if (v.Length == 0) return double.NaN;
        return v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }

    private static int _engineErrors;

    /// <summary>
    /// An error from libtorch in the middle of training. Seen here as "Unknown scalar type" / "Expected false to be true"
    /// from AdamW.step: TorchSharp 0.107 lets the GC finalize an implicit Scalar while native code still uses it (see
    /// README and --gc-stress). The measurement is repeated; the count is printed at the end.
    /// </summary>
    private static void EngineError(Exception e)
    {
        _engineErrors++;
        var frame = (e.StackTrace ?? "").Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.Contains("TorchSharp.Modules", StringComparison.Ordinal) || l.Contains("MLNetDeep", StringComparison.Ordinal)) ?? "";
        Console.WriteLine($"    ENGINE ERROR (measurement repeated): {e.GetType().Name}: {e.Message.Split('\n')[0]} {frame}");
    }

    /// <summary>Waits (at most <see cref="MaxQuietWaitSeconds"/>) until other processes have used less than the quiet threshold for 2 s.</summary>
    private static void WaitForQuiet()
    {
        if (OverBudget) return;
        var deadline = Stopwatch.StartNew();
        int quiet = 0;
        while (deadline.Elapsed.TotalSeconds < MaxQuietWaitSeconds && quiet < 4)
        {
            var a = CpuSnapshot.Take();
            Thread.Sleep(500);
            double foreign = CpuSnapshot.Take().ForeignCoresSince(a);
            if (double.IsNaN(foreign)) return;
            quiet = foreign < QuietThreshold ? quiet + 1 : 0;
        }
        if (deadline.Elapsed.TotalSeconds > 5) Console.WriteLine($"  (waited {deadline.Elapsed.TotalSeconds:F0}s for other processes to go quiet{(quiet < 4 ? "; they did not" : "")})");
    }

    /// <summary>Collect between runs so that finalizers of the previous run's modules (the trainer's models) do not run inside the next one.</summary>
    internal static void Settle()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }
}

/// <summary>
/// CPU time used by other processes during a measurement (from /proc/stat minus this process's /proc/self/stat), in
/// cores: this machine is shared, and with libtorch's intra-op threads on every core, another busy process slows
/// a training loop far more than its share. Runs that overlapped such load are flagged.
/// </summary>
internal readonly record struct CpuSnapshot(long TotalBusy, long Own, long Ticks)
{
    public static CpuSnapshot Take()
    {
        try
        {
            var f = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(long.Parse).ToArray();
            long idle = f[3] + (f.Length > 4 ? f[4] : 0);
            long busy = f.Take(Math.Min(8, f.Length)).Sum() - idle; // user nice system idle iowait irq softirq steal
            var st = File.ReadAllText("/proc/self/stat");
            var rest = st[(st.LastIndexOf(')') + 2)..].Split(' ');
            long own = long.Parse(rest[11], CultureInfo.InvariantCulture) + long.Parse(rest[12], CultureInfo.InvariantCulture); // utime, stime
            return new CpuSnapshot(busy, own, Stopwatch.GetTimestamp());
        }
        catch (Exception) { return new CpuSnapshot(-1, -1, Stopwatch.GetTimestamp()); }
    }

    /// <summary>Average number of cores other processes kept busy since <paramref name="start"/> (USER_HZ = 100).</summary>
    public double ForeignCoresSince(CpuSnapshot start)
    {
        if (TotalBusy < 0 || start.TotalBusy < 0) return double.NaN;
        double seconds = (Ticks - start.Ticks) / (double)Stopwatch.Frequency;
        return Math.Max(0, (TotalBusy - start.TotalBusy - (Own - start.Own)) / 100.0 / Math.Max(1e-3, seconds));
    }

    /// <summary>Average number of cores this process kept busy since <paramref name="start"/>.</summary>
    public double OwnCoresSince(CpuSnapshot start)
    {
        double seconds = (Ticks - start.Ticks) / (double)Stopwatch.Frequency;
        return (Own - start.Own) / 100.0 / Math.Max(1e-3, seconds);
    }
}

/// <summary>Peak memory of one side, measured in a child process: prepare the data, then one 1-epoch run.</summary>
internal sealed record MemoryProbe(double BaselineMiB, double PeakMiB, double AfterMiB, double ManagedHeapMiB, double PeakAfterLoadMiB, double ManagedBeforeMiB, double ManagedAfterOneGcMiB)
{
    /// <summary>For "trainer-xN": RSS/peak after each Fit.</summary>
    public string? Repeated { get; init; }

    public const string ChildFlag = "--memory-probe-child";

    public double PeakAboveBaselineMiB => PeakMiB - BaselineMiB;

    public override string ToString() =>
        $"peak RSS {PeakMiB:F0} MiB = baseline {BaselineMiB:F0} + {PeakAboveBaselineMiB:F0} MiB during the run"
        + (PeakAfterLoadMiB > 0 ? $" (+{PeakAfterLoadMiB - BaselineMiB:F0} MiB already when the trainer had loaded its data, before the first batch)" : "")
        + $"; managed live before {ManagedBeforeMiB:F0} MiB, after the run + 1 GC {ManagedAfterOneGcMiB:F0} MiB, + 2nd GC {ManagedHeapMiB:F0} MiB; RSS afterwards {AfterMiB:F0} MiB";

    public static MemoryProbe? RunChild(Case c, string side)
    {
        try
        {
            var (exitCode, output, error) = ChildProcess.RunSelf(ChildFlag, c.Name, side);
            var line = output.Split('\n').FirstOrDefault(l => l.StartsWith("MEMPROBE ", StringComparison.Ordinal));
            if (exitCode != 0 || line is null)
            {
                Console.WriteLine($"    (memory probe '{side}' failed, exit {exitCode}: {error})");
                return null;
            }
            var f = line.Split(' ').Skip(1).Select(x => double.Parse(x, CultureInfo.InvariantCulture)).ToArray();
            var repeated = output.Split('\n').FirstOrDefault(l => l.StartsWith("REPEATED ", StringComparison.Ordinal));
            return new MemoryProbe(f[0], f[1], f[2], f[3], f[4], f[5], f[6]) { Repeated = repeated?["REPEATED ".Length..].Trim() };
        }
        catch (Exception e)
        {
            Console.WriteLine($"    (memory probe '{side}' failed: {e.Message})");
            return null;
        }
    }

    public static int Child(string caseName, string side)
    {
        var c = Program.FindCase(caseName);
        using var p = Program.PrepareData(c.Data);
        // Start from as little resident memory as possible: compact the managed heap (LOH included) and give
        // freed native memory back, so that the run's own allocations show up as growth of the RSS.
        System.Runtime.GCSettings.LargeObjectHeapCompactionMode = System.Runtime.GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        Memory.TrimNative();
        double baseline = Memory.RssKiB() / 1024.0;
        double managedBefore = Memory.ManagedLiveMiB();
        Memory.ResetPeak();
        double peakAfterLoad = 0;
        // The trainer logs "... data cached in memory ..." right after reading its data, before building the network.
        Program.RunOnce(p, c, side, m => { if (m.Contains("data cached in memory", StringComparison.Ordinal) && peakAfterLoad == 0) peakAfterLoad = Memory.HwmKiB() / 1024.0; });
        double peak = Memory.HwmKiB() / 1024.0;
        // One collection frees what is unreachable; objects with finalizers (e.g. tensors nobody disposed, which
        // may pin arrays) are only freed by the collection after their finalizer ran.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        double afterOne = Memory.ManagedLiveMiB();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Console.WriteLine(FormattableString.Invariant($"MEMPROBE {baseline:F1} {peak:F1} {Memory.RssKiB() / 1024.0:F1} {Memory.ManagedLiveMiB():F1} {peakAfterLoad:F1} {managedBefore:F1} {afterOne:F1}"));
        return 0;
    }
}

/// <summary>This benchmark run again in a child process (a fresh process for memory measurements).</summary>
internal static class ChildProcess
{
    /// <summary>Runs this program with <paramref name="args"/>; returns its exit code, standard output and first line of standard error.</summary>
    public static (int ExitCode, string Output, string Error) RunSelf(params string[] args)
    {
        string self = Environment.ProcessPath!;
        var psi = new ProcessStartInfo(self) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") psi.ArgumentList.Add(typeof(ChildProcess).Assembly.Location);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var proc = Process.Start(psi)!;
        var stderr = proc.StandardError.ReadToEndAsync();
        string output = proc.StandardOutput.ReadToEnd();
        proc.WaitForExit();
        return (proc.ExitCode, output, stderr.Result.Split('\n').FirstOrDefault() ?? "");
    }
}

/// <summary>Process memory from /proc/self/status (Linux) and the managed heap.</summary>
internal static class Memory
{
    private static bool _canReset = true;
    private static long _peakBeforeReset;

    [DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int MallocTrim(UIntPtr pad);

    /// <summary>Returns free glibc heap memory to the system (best effort).</summary>
    public static void TrimNative()
    {
        try { MallocTrim(UIntPtr.Zero); } catch (Exception) { }
    }

    public static long HwmKiB() => Field("VmHWM:");
    public static long RssKiB() => Field("VmRSS:");
    public static double PeakRssMiB() => HwmKiB() / 1024.0;
    /// <summary>Peak RSS since the process started (the high-water marks before every reset included).</summary>
    public static double ProcessPeakRssMiB() => Math.Max(_peakBeforeReset, HwmKiB()) / 1024.0;

    /// <summary>Resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0: write 5 to /proc/self/clear_refs).</summary>
    public static void ResetPeak()
    {
        if (!_canReset) return;
        _peakBeforeReset = Math.Max(_peakBeforeReset, HwmKiB());
        try { File.WriteAllText("/proc/self/clear_refs", "5"); }
        catch (Exception e)
        {
            _canReset = false;
            Console.WriteLine($"  (cannot reset the peak RSS: {e.Message}; peaks below are since process start)");
        }
    }

    /// <summary>Managed bytes in use at the last GC (heap size minus fragmentation), in MiB.</summary>
    public static double ManagedLiveMiB()
    {
        var info = GC.GetGCMemoryInfo();
        return (info.HeapSizeBytes - info.FragmentedBytes) / 1048576.0;
    }

    public static void Report(string when)
    {
        var info = GC.GetGCMemoryInfo();
        Console.WriteLine($"  memory {when}: peak RSS {(_canReset ? $"of this section {HwmKiB() / 1024.0:F0} MiB, of the process " : "")}{ProcessPeakRssMiB():F0} MiB (VmHWM), current RSS {RssKiB() / 1024.0:F0} MiB; "
            + $"managed: in use at the last GC {(info.HeapSizeBytes - info.FragmentedBytes) / 1048576.0:F0} MiB, GC heap size {info.HeapSizeBytes / 1048576.0:F0} MiB (fragmented {info.FragmentedBytes / 1048576.0:F0}), committed {info.TotalCommittedBytes / 1048576.0:F0} MiB");
    }

    private static long Field(string name)
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith(name, StringComparison.Ordinal))
                    return long.Parse(line.AsSpan(name.Length).Trim().ToString().Split(' ')[0], CultureInfo.InvariantCulture);
        }
        catch (IOException) { }
        return -1;
    }
}
