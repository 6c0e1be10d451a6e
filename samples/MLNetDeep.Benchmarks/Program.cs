// MLNetDeep benchmarks: the command line and which benchmark it runs. By default the MLP benchmark (MlpBenchmark.cs:
// the ML.NET trainers against a hand-written TorchSharp loop on the same tensors, network, optimizer, loss, batch size,
// shuffle and epochs; plus peak memory); with --gc-stress, GcStress.cs. With --cnn, the CNN benchmark in
// CnnBenchmark.cs instead; with --rnn, the RNN benchmark in RnnBenchmark.cs; with --transformer, the Transformer
// benchmark in TransformerBenchmark.cs; with --onnx, ONNX Runtime scoring in OnnxBenchmark.cs; with
// --prediction-rss [count], resident memory over many PredictionEngine calls (PredictionRss.cs); --training-threads
// [repeats], trainings from different threads (TrainingThreads.cs). Child processes (memory
// probes) come back here with their own flags. See README.md.
//
//   dotnet run -c Release --project samples/MLNetDeep.Benchmarks [-- --epochs N --repeats N]   (--help for the other options)
using System.Globalization;
using static MLNetDeep.Benchmarks.MlpSettings;

namespace MLNetDeep.Benchmarks;

internal static class Program
{
    public static int Main(string[] args)
    {
        CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
        CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
        // Trainings from other threads are what this mode measures: it stays on the main thread.
        if (args.Length > 0 && args[0] is TrainingThreads.Flag or "--training-threads-child") return TrainingThreads.Run(args);
        // Everything else runs on MLNetDeep's engine thread, where its trainings run: the raw TorchSharp loops on another
        // thread would give libtorch's OpenMP a second worker pool and slow both sides (see README: training threads).
        return TorchEngine.RunOnEngineThread(() => Dispatch(args));
    }

    private static int Dispatch(string[] args)
    {
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
        if (args.Length > 0 && args[0] == PredictionRss.Flag) return PredictionRss.Run(args);
        if (!ParseArgs(args)) return 2;
        if (GcStressSeconds > 0) return GcStress.Run(GcStressSeconds);
        return MlpBenchmark.Run();
    }

    /// <summary>The MLP benchmark's options, into <see cref="MlpSettings"/>; false after --help or an error.</summary>
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
}
