// CNN benchmark (`--cnn`): the MLNetDeep CNN trainer on Fashion-MNIST against a hand-written TorchSharp loop over the
// same network (the library's SmallCnn and head, built from the trainer's options: LibraryNetworks.Cnn), optimizer,
// loss, batch size and per-epoch shuffle, in the same run; batch scoring (Transform over the 10 000 test images)
// against a raw forward pass; PredictionEngine latency; and the peak RSS of a whole training run on the 60 000
// training images, in a child process. See README.md.
using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetDeep.TestData;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace MLNetDeep.Benchmarks;

internal static class CnnBenchmark
{
    public const string Flag = "--cnn";
    public const string MemoryChildFlag = "--cnn-memory-child";
    private const int Seed = 20261123;
    private const double LearningRate = 1e-3, WeightDecay = 1e-4;
    private const int Classes = 10, Side = 28;

    private static int _epochs = 3, _batch = 128, _trainRows = 60_000, _scoringRepeats = 5, _latencyCalls = 2_000, _memoryEpochs = 1;
    private static string _memoryArchitecture = "small";

    private static CnnMulticlassTrainer.Options TrainerOptions(int epochs, Action<EpochMetrics>? callback, string architecture = "small") => new()
    {
        Architecture = architecture == "resnet" ? CnnArchitecture.ResNet(new[] { 2, 2, 2 }, 32) : CnnArchitecture.SmallCnn(),
        Augmentation = architecture == "resnet" ? ImageAugmentation.Strong : null,
        NumberOfEpochs = epochs, BatchSize = _batch, Optimizer = DeepOptimizer.AdamW, LearningRate = LearningRate, WeightDecay = WeightDecay,
        Schedule = LearningRateSchedule.Constant, EpochCallback = callback,
    };

    public static int Run(string[] args)
    {
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{a} needs a value");
            switch (a)
            {
                case Flag: break;
                case "--epochs": _epochs = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--batch": _batch = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--train-rows": _trainRows = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--scoring-repeats": _scoringRepeats = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--latency-calls": _latencyCalls = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--memory-architecture": _memoryArchitecture = Next(); break;
                case "--memory-epochs": _memoryEpochs = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "-h":
                case "--help":
                default:
                    Console.Error.WriteLine($"{(a is "-h" or "--help" ? "" : $"unknown argument '{a}'. ")}usage: --cnn [--epochs N (3 timed, after 1 warm-up)] [--batch N (128)] [--train-rows N (60000)]"
                        + " [--scoring-repeats N (5)] [--latency-calls N (2000)] [--memory-architecture small|resnet] [--memory-epochs N (1)]");
                    return 2;
            }
        }
        if (_epochs < 1 || _batch < 2 || _trainRows < _batch || _scoringRepeats < 1 || _latencyCalls < 10 || _memoryEpochs < 1 || _memoryArchitecture is not ("small" or "resnet"))
        { Console.Error.WriteLine("invalid option value"); return 2; }

        var total = Stopwatch.StartNew();
        using (var probe = torch.zeros(1)) { }
        Console.WriteLine("MLNetDeep CNN benchmark: Fashion-MNIST, SmallCnn trainer vs the same network in a raw TorchSharp loop");
        Console.WriteLine($"  {DateTime.Now:yyyy-MM-dd HH:mm}, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, {Environment.ProcessorCount} logical cores, torch threads {torch.get_num_threads()}");
        Console.WriteLine($"  {_trainRows} training images, batch {_batch}, AdamW lr {LearningRate} weight decay {WeightDecay}, constant rate, no augmentation; 1 warm-up + {_epochs} timed epochs per side");

        var ml = new MLContext(Seed);
        var train = FashionMnist.Train(ml, _trainRows);
        var test = FashionMnist.Test(ml);
        var (xTrain, yTrain) = ToTensors(train);
        var (xTest, yTest) = ToTensors(test);
        long n = xTrain.shape[0];
        Console.WriteLine($"  data read: train {n} images, test {xTest.shape[0]} images; RSS {Memory.RssKiB() / 1024.0:F0} MiB");
        Console.WriteLine();

        // ---------------------------------------------------------------- training throughput, interleaved
        torch.manual_seed(Seed); // the trainer seeds the same way before building: same initial weights
        var rawNet = LibraryNetworks.Cnn(TrainerOptions(_epochs + 1, null), train.Schema, Classes); // the trainer's SmallCnn and head
        var rawOptimizer = torch.optim.AdamW(rawNet.parameters(), LearningRate, weight_decay: WeightDecay);
        var rawEpochs = new List<double>();
        double RawEpoch()
        {
            var watch = Stopwatch.StartNew();
            rawNet.train();
            using var perm = torch.randperm(n);
            for (long start = 0; start < n; start += _batch)
            {
                using var scope = torch.NewDisposeScope();
                long len = Math.Min(_batch, n - start);
                if (len < 2) break; // batch norm needs two rows (the trainer drops a singleton last batch too)
                var idx = perm.narrow(0, start, len);
                var x = xTrain.index_select(0, idx);
                var y = yTrain.index_select(0, idx);
                rawOptimizer.zero_grad();
                var loss = F.cross_entropy(rawNet.forward(x), y);
                loss.backward();
                rawOptimizer.step();
            }
            return watch.Elapsed.TotalSeconds;
        }

        Console.WriteLine("Training (one raw epoch before the trainer's first, then one after each of its epochs):");
        var trainerEpochs = new List<double>();
        double w0 = RawEpoch();
        Console.WriteLine($"  raw warm-up epoch {w0:F1} s");
        ITransformer? model = null;
        var fitWatch = Stopwatch.StartNew();
        var fitCpu = CpuSnapshot.Take();
        double rawInsideFit = 0;
        model = ml.MulticlassClassification.Trainers.Cnn(TrainerOptions(_epochs + 1, m =>
        {
            trainerEpochs.Add(m.Seconds);
            double r = RawEpoch();
            rawInsideFit += r;
            if (m.Epoch > 1) rawEpochs.Add(r);
            Console.WriteLine($"  trainer epoch {m.Epoch}{(m.Epoch == 1 ? " (warm-up)" : "")} {m.Seconds:F1} s (train loss {m.TrainLoss:F4}) | raw epoch {r:F1} s");
        })).Fit(train);
        double fitSeconds = fitWatch.Elapsed.TotalSeconds - rawInsideFit;
        double foreign = CpuSnapshot.Take().ForeignCoresSince(fitCpu);
        long rawParameters = LibraryNetworks.SameParameterCount(rawNet, model);

        double trainerMedian = Bench.Median(trainerEpochs.Skip(1)), rawMedian = Bench.Median(rawEpochs);
        double epochRows = n;
        Console.WriteLine($"  same network: {rawParameters} parameters on both sides; other processes used {foreign:F2} cores on average during the Fit");
        Console.WriteLine($"  raw loop: median {rawMedian:F2} s/epoch = {epochRows / rawMedian:F0} images/s");
        Console.WriteLine($"  trainer : median {trainerMedian:F2} s/epoch = {epochRows / trainerMedian:F0} images/s; whole Fit {fitSeconds:F1} s for {_epochs + 1} epochs (reading the IDataView and building included)");
        Console.WriteLine($"  => training throughput trainer / raw = {rawMedian / trainerMedian:F3}   (goal >= 0.95)");
        Console.WriteLine();

        // ---------------------------------------------------------------- batch scoring, interleaved
        Console.WriteLine($"Batch scoring of the {xTest.shape[0]} test images (Transform + reading Score and PredictedLabel through a cursor, vs a raw eval-mode forward pass in batches of 256 + softmax + copying out):");
        var scored = model.Transform(test);
        var scoreCol = scored.Schema["Score"];
        var predCol = scored.Schema["PredictedLabel"];
        int testRows = (int)xTest.shape[0];
        var trainerScores = new float[testRows * Classes];
        var rawScores = new float[testRows * Classes];
        var trainerPred = new uint[testRows];
        var rawPred = new long[testRows];
        double TrainerScoring()
        {
            var watch = Stopwatch.StartNew();
            using var cursor = model.Transform(test).GetRowCursor(new[] { scoreCol, predCol });
            var getScore = cursor.GetGetter<VBuffer<float>>(scoreCol);
            var getPred = cursor.GetGetter<uint>(predCol);
            VBuffer<float> score = default;
            uint pred = 0;
            int i = 0;
            while (cursor.MoveNext())
            {
                getScore(ref score);
                getPred(ref pred);
                score.GetValues().CopyTo(trainerScores.AsSpan(i * Classes, Classes));
                trainerPred[i++] = pred;
            }
            return watch.Elapsed.TotalSeconds;
        }
        double RawScoring()
        {
            var watch = Stopwatch.StartNew();
            using var noGrad = torch.no_grad();
            rawNet.eval();
            for (int start = 0; start < testRows; start += 256)
            {
                using var scope = torch.NewDisposeScope();
                int len = Math.Min(256, testRows - start);
                var probabilities = F.softmax(rawNet.forward(xTest.narrow(0, start, len)), 1);
                probabilities.data<float>().CopyTo(rawScores, start * Classes);
                probabilities.argmax(1).data<long>().CopyTo(rawPred, start);
            }
            return watch.Elapsed.TotalSeconds;
        }
        TrainerScoring(); RawScoring(); // warm-up
        var trainerScoring = new List<double>();
        var rawScoring = new List<double>();
        for (int r = 0; r < _scoringRepeats; r++)
        {
            if (r % 2 == 0) { rawScoring.Add(RawScoring()); trainerScoring.Add(TrainerScoring()); }
            else { trainerScoring.Add(TrainerScoring()); rawScoring.Add(RawScoring()); }
        }
        double trainerScoringMedian = Bench.Median(trainerScoring), rawScoringMedian = Bench.Median(rawScoring);
        var labels = yTest.data<long>().ToArray();
        double trainerAccuracy = Enumerable.Range(0, testRows).Count(i => trainerPred[i] - 1 == labels[i]) / (double)testRows;
        double rawAccuracy = Enumerable.Range(0, testRows).Count(i => rawPred[i] == labels[i]) / (double)testRows;
        Console.WriteLine($"  raw forward: median {rawScoringMedian * 1000:F0} ms = {testRows / rawScoringMedian:F0} images/s (all: {string.Join(", ", rawScoring.Select(s => (s * 1000).ToString("F0")))} ms)");
        Console.WriteLine($"  Transform  : median {trainerScoringMedian * 1000:F0} ms = {testRows / trainerScoringMedian:F0} images/s (all: {string.Join(", ", trainerScoring.Select(s => (s * 1000).ToString("F0")))} ms)");
        Console.WriteLine($"  => batch scoring throughput Transform / raw = {rawScoringMedian / trainerScoringMedian:F3}   (goal >= 0.9)");
        Console.WriteLine($"  sanity: test accuracy after {_epochs + 1} epochs — trainer {trainerAccuracy:F4}, raw loop {rawAccuracy:F4}; ML.NET evaluator on the trainer: "
            + $"{ml.MulticlassClassification.Evaluate(scored).MicroAccuracy:F4}");
        Console.WriteLine();

        // ---------------------------------------------------------------- single-image latency
        Console.WriteLine($"Single-image latency over {_latencyCalls} calls (after 100 warm-up calls), cycling through the test images:");
        var images = new float[testRows][];
        var all = xTest.data<float>().ToArray();
        for (int i = 0; i < testRows; i++) images[i] = all.AsSpan(i * Side * Side, Side * Side).ToArray();
        var engine = ml.Model.CreatePredictionEngine<Image, Prediction>(model);
        var input = new Image();
        var output = new Prediction();
        var engineTimes = Bench.Latencies(i => { input.Features = images[i % testRows]; engine.Predict(input, ref output); }, _latencyCalls);
        var rawOne = new float[Classes];
        rawNet.eval();
        var rawTimes = Bench.Latencies(i =>
        {
            using var noGrad = torch.no_grad();
            using var scope = torch.NewDisposeScope();
            var x = torch.tensor(images[i % testRows], new long[] { 1, 1, Side, Side });
            F.softmax(rawNet.forward(x), 1).data<float>().CopyTo(rawOne, 0);
        }, _latencyCalls);
        Console.WriteLine($"  PredictionEngine.Predict: p50 {Bench.Percentile(engineTimes, 0.5):F3} ms, p90 {Bench.Percentile(engineTimes, 0.9):F3} ms, p99 {Bench.Percentile(engineTimes, 0.99):F3} ms");
        Console.WriteLine($"  raw forward of one image: p50 {Bench.Percentile(rawTimes, 0.5):F3} ms, p90 {Bench.Percentile(rawTimes, 0.9):F3} ms, p99 {Bench.Percentile(rawTimes, 0.99):F3} ms");
        // A leak per prediction would show as growth here (tensors or native memory not released).
        Bench.Settle();
        double rssBefore = Memory.RssKiB() / 1024.0, managedBefore = Memory.ManagedLiveMiB();
        int more = 10 * _latencyCalls;
        for (int i = 0; i < more; i++) { input.Features = images[i % testRows]; engine.Predict(input, ref output); }
        Bench.Settle();
        Console.WriteLine($"  {more} more predictions: RSS {rssBefore:F0} -> {Memory.RssKiB() / 1024.0:F0} MiB, managed live {managedBefore:F1} -> {Memory.ManagedLiveMiB():F1} MiB");
        Console.WriteLine();

        xTrain.Dispose(); yTrain.Dispose(); xTest.Dispose(); yTest.Dispose();

        // ---------------------------------------------------------------- peak memory of a whole run, in a child process
        Console.WriteLine($"Peak memory of a training run on {_trainRows} images ({_memoryArchitecture}, {_memoryEpochs} epoch(s), default options) + Transform over the test set, in a fresh process:");
        Console.WriteLine("  " + RunMemoryChild());
        Console.WriteLine();
        Console.WriteLine($"total CNN benchmark time {total.Elapsed.TotalMinutes:F1} min");
        return 0;
    }

    /// <summary>The pixels as [N, 1, 28, 28] and the labels as 0-based int64 (the IDataView's key minus one), in order.</summary>
    private static (Tensor X, Tensor Y) ToTensors(IDataView view)
    {
        var features = view.Schema["Features"];
        var label = view.Schema["Label"];
        long count = view.GetRowCount() ?? Bench.CountRows(view, label);
        var pixels = new float[count * Side * Side];
        var labels = new long[count];
        long row = 0;
        using (var cursor = view.GetRowCursor(new[] { features, label }))
        {
            var getFeatures = cursor.GetGetter<VBuffer<float>>(features);
            var getLabel = cursor.GetGetter<uint>(label);
            VBuffer<float> f = default;
            uint l = 0;
            while (cursor.MoveNext())
            {
                getFeatures(ref f);
                getLabel(ref l);
                f.GetValues().CopyTo(pixels.AsSpan((int)(row * Side * Side), Side * Side));
                labels[row++] = l - 1;
            }
        }
        return (torch.tensor(pixels, new long[] { count, 1, Side, Side }), torch.tensor(labels));
    }

    private static string RunMemoryChild()
    {
        var (exitCode, output, error) = ChildProcess.RunSelf(MemoryChildFlag, _memoryArchitecture,
            _trainRows.ToString(CultureInfo.InvariantCulture), _memoryEpochs.ToString(CultureInfo.InvariantCulture));
        var line = output.Split('\n').FirstOrDefault(l => l.StartsWith("CNNMEM ", StringComparison.Ordinal));
        return exitCode == 0 && line is not null ? line["CNNMEM ".Length..].Trim() : $"(memory child failed, exit {exitCode}: {error})";
    }

    /// <summary>The child: what a user's process does — load the images, Fit, score the test set — and its peak RSS.</summary>
    public static int MemoryChild(string architecture, int rows, int epochs)
    {
        _trainRows = rows;
        double start = Memory.RssKiB() / 1024.0;
        var ml = new MLContext(Seed);
        var train = FashionMnist.Train(ml, rows);
        var test = FashionMnist.Test(ml);
        double afterLoad = Memory.RssKiB() / 1024.0;
        var watch = Stopwatch.StartNew();
        var model = ml.MulticlassClassification.Trainers.Cnn(TrainerOptions(epochs, null, architecture)).Fit(train);
        double fitSeconds = watch.Elapsed.TotalSeconds;
        double peakFit = Memory.HwmKiB() / 1024.0;
        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(test));
        double peak = Memory.HwmKiB() / 1024.0;
        Console.WriteLine(FormattableString.Invariant(
            $"CNNMEM peak RSS {peak:F0} MiB for the whole process (VmHWM; {peakFit:F0} MiB by the end of Fit). RSS at start {start:F0} MiB, after loading the images into IDataViews {afterLoad:F0} MiB; Fit {fitSeconds:F0} s, test accuracy {metrics.MicroAccuracy:F4}"));
        return 0;
    }

    private sealed class Image
    {
        [VectorType(1, Side, Side)] public float[] Features { get; set; } = Array.Empty<float>();
    }

    private sealed class Prediction
    {
        public uint PredictedLabel { get; set; }
        public float[] Score { get; set; } = Array.Empty<float>();
    }
}
