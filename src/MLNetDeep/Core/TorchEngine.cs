using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using Microsoft.ML.Runtime;
using TorchSharp;

namespace MLNetDeep;

/// <summary>Thrown when the native deep-learning engine (libtorch and TorchSharp's shim) cannot be loaded.</summary>
public sealed class DeepEngineLoadException : Exception
{
    internal DeepEngineLoadException(string message, Exception? inner) : base(message, inner) { }
}

/// <summary>Loads the engine once per process, with a diagnosis when it cannot.</summary>
internal static class TorchEngine
{
    private static readonly object Gate = new();
    private static bool _loaded;

    /// <summary>Makes sure libtorch and LibTorchSharp are loaded; throws <see cref="DeepEngineLoadException"/> otherwise.</summary>
    public static void EnsureLoaded()
    {
        if (_loaded) return;
        lock (Gate)
        {
            if (_loaded) return;
            try
            {
                ReproducibleMath.Request();
                torch.InitializeDeviceType(DeviceType.CPU);
                using var probe = torch.zeros(1);
                _loaded = true;
            }
            catch (Exception e) when (e is not DeepEngineLoadException)
            {
                throw new DeepEngineLoadException(Diagnose(e), e);
            }
        }
    }

    internal static string Diagnose(Exception e)
    {
        string text = e.ToString();
        if (RuntimeInformation.IsOSPlatform(OSPlatform.Linux) && text.Contains("GLIBCXX_", StringComparison.Ordinal))
        {
            int i = text.IndexOf("GLIBCXX_", StringComparison.Ordinal);
            int end = i;
            while (end < text.Length && (char.IsLetterOrDigit(text[end]) || text[end] == '_' || text[end] == '.')) end++;
            string version = text[i..end].TrimEnd('.');
            return $"MLNetDeep could not load TorchSharp's native library libLibTorchSharp.so: it requires {version}, which this "
                + "machine's libstdc++.so.6 does not provide (Debian 12, Ubuntu 22.04 and RHEL 9 stop at GLIBCXX_3.4.30). "
                + "Fix: build the application through the MLNetDeep package (its build step writes a patched copy of "
                + "libLibTorchSharp.so into the output directory; keep the MSBuild property MLNetDeepNativeShimPatch at 'auto', "
                + "or set it to 'always' when building on a newer distribution than the one you deploy to), "
                + "or install a libstdc++ from GCC 13 or later. Original error: " + FirstLine(e);
        }
        return "MLNetDeep could not load the native deep-learning engine (libtorch and LibTorchSharp from the TorchSharp-cpu "
            + "package). Make sure the application was built or published with its runtimes/<rid>/native files. Original error: "
            + FirstLine(e);
    }

    private static string FirstLine(Exception e)
    {
        var inner = e;
        while (inner.InnerException is not null) inner = inner.InnerException;
        return inner.GetType().Name + ": " + inner.Message.Split('\n')[0];
    }

    /// <summary>Picks the device: CUDA when asked for and present, else CPU (with a warning) or an error.</summary>
    public static torch.Device ResolveDevice(DeepDevice wanted, bool fallbackToCpu, IChannel? ch)
    {
        EnsureLoaded();
        if (wanted == DeepDevice.Cpu) return torch.CPU;
        bool cuda;
        try { cuda = torch.cuda.is_available(); }
        catch (Exception) { cuda = false; }
        if (cuda) return torch.CUDA;
        const string message = "Device = Cuda was requested, but no CUDA device or CUDA build of the engine is available "
            + "(MLNetDeep references TorchSharp-cpu; add TorchSharp-cuda-linux or TorchSharp-cuda-windows to use a GPU).";
        if (!fallbackToCpu)
            throw new InvalidOperationException(message + " Set FallbackToCpu = true to train on the CPU instead.");
        ch?.Warning(message + " Falling back to the CPU.");
        return torch.CPU;
    }

    // The engine's random generator (weight initialisation, dropout) and its thread count are process-wide, so two
    // trainings interleaving on two threads would draw each other's random numbers. Trainings therefore run one at a
    // time in a process: each holds this lock from reading its data to its last epoch.
    private static readonly object TrainingGate = new();

    /// <summary>How many trainings had to wait for another one (a test reads it).</summary>
    internal static int TrainingWaits;

    // Every training runs on this one long-lived thread. libtorch's CPU kernels run on OpenMP (libgomp), which keeps a
    // pool of worker threads per thread that starts parallel work; once the pools of all such threads hold more
    // threads than the machine has cores, libgomp stops letting idle workers spin (GOMP's "throttled" spin count) and
    // every one of the many short parallel regions of a training waits for a sleeping worker to wake up. Measured
    // before this thread existed: a 30-epoch MLP took 1.8 s on the thread that had trained first and 4.0 s on any other
    // (2.2x), which is what a server training on thread-pool threads would get. One training thread keeps one pool.
    private static readonly object TrainingThreadGate = new();
    private static Thread? _trainingThread;
    private static BlockingCollection<Action>? _trainingWork;

    /// <summary>The managed id of the thread trainings run on (null before the first training; a test reads it).</summary>
    internal static int? TrainingThreadId => _trainingThread?.ManagedThreadId;

    /// <summary>
    /// Runs a training: takes the process-wide training lock on the caller's thread (waiting, cancellably, while another
    /// training runs), then runs <paramref name="body"/> on the engine's training thread with the thread count applied,
    /// and returns its result or rethrows its exception (with its stack trace). The caller's execution context (culture,
    /// async-local values) flows to the training thread. A training started from inside another (an epoch or batch
    /// callback runs on the training thread) runs there at once: it is already inside the outer training's lock.
    /// </summary>
    public static T RunTraining<T>(int? threads, CancellationToken cancel, Action checkAlive, IChannel ch, Func<T> body)
    {
        EnsureLoaded();
        if (Thread.CurrentThread == _trainingThread)
        {
            using var nested = ApplyThreads(threads);
            return body();
        }
        using var held = AcquireTrainingLock(cancel, checkAlive, ch);
        return OnTrainingThread(() =>
        {
            using var applied = ApplyThreads(threads);
            return body();
        });
    }

    /// <summary>
    /// Runs a batch forward pass of scoring on the training thread when no training is running, so that libtorch's
    /// parallel work stays in that thread's OpenMP pool (batch scoring on the caller's thread made the trainings after
    /// it 2x slower; see above). While a training runs — or when called from the training thread, e.g. by a pipeline
    /// that scores with one model while training another — it runs on the calling thread instead of waiting.
    /// </summary>
    internal static void RunScoringBatch(Action work)
    {
        if (Thread.CurrentThread == _trainingThread || !Monitor.TryEnter(TrainingGate))
        {
            work();
            return;
        }
        try
        {
            Volatile.Write(ref _scoringHoldsGate, true);
            Interlocked.Increment(ref ScoringBatchesOnTrainingThread);
            OnTrainingThread(() => { work(); return 0; });
        }
        finally
        {
            Volatile.Write(ref _scoringHoldsGate, false);
            Monitor.Exit(TrainingGate);
        }
    }

    private static bool _scoringHoldsGate;

    /// <summary>How many scoring batches ran on the training thread (a test reads it).</summary>
    internal static int ScoringBatchesOnTrainingThread;

    /// <summary>
    /// Runs <paramref name="work"/> on the engine's training thread (at once when already on it), without the training
    /// lock: for the benchmarks, whose raw TorchSharp loops must run where the trainers run, or their OpenMP pools
    /// would slow both sides. A training started inside <paramref name="work"/> runs inline.
    /// </summary>
    internal static T RunOnEngineThread<T>(Func<T> work)
    {
        EnsureLoaded();
        return Thread.CurrentThread == _trainingThread ? work() : OnTrainingThread(work);
    }

    private static IDisposable AcquireTrainingLock(CancellationToken cancel, Action checkAlive, IChannel ch)
    {
        // A scoring batch holds the gate for milliseconds: wait for it without counting or logging a wait.
        bool entered = false;
        while (!entered && Volatile.Read(ref _scoringHoldsGate)) entered = Monitor.TryEnter(TrainingGate, 1);
        if (!entered && !Monitor.TryEnter(TrainingGate))
        {
            Interlocked.Increment(ref TrainingWaits);
            ch.Info("MLNetDeep: another training is running in this process; trainings run one at a time (the engine's random generator is process-wide), waiting for it to finish.");
            while (!Monitor.TryEnter(TrainingGate, 50))
            {
                cancel.ThrowIfCancellationRequested();
                checkAlive();
            }
        }
        return new Release(() => Monitor.Exit(TrainingGate));
    }

    /// <summary>Applies the thread count on the calling thread; disposing restores the count it had.</summary>
    private static IDisposable ApplyThreads(int? threads)
    {
        int previous = torch.get_num_threads();
        if (threads is int n && n != previous) torch.set_num_threads(n);
        return new Release(() =>
        {
            if (torch.get_num_threads() != previous) torch.set_num_threads(previous);
        });
    }

    private static T OnTrainingThread<T>(Func<T> work)
    {
        var queue = TrainingQueue();
        var context = ExecutionContext.Capture();
        T result = default!;
        ExceptionDispatchInfo? error = null;
        using var done = new ManualResetEventSlim();
        queue.Add(() =>
        {
            try
            {
                if (context is null) result = work();
                else ExecutionContext.Run(context, _ => result = work(), null);
            }
            catch (Exception e)
            {
                error = ExceptionDispatchInfo.Capture(e);
            }
            finally
            {
                done.Set();
            }
        });
        done.Wait();
        error?.Throw();
        return result;
    }

    private static BlockingCollection<Action> TrainingQueue()
    {
        lock (TrainingThreadGate)
        {
            if (_trainingWork is not null) return _trainingWork;
            var queue = new BlockingCollection<Action>();
            // 16 MiB of stack: libtorch's autograd and the data pipeline's cursors run here.
            var thread = new Thread(() => { foreach (var work in queue.GetConsumingEnumerable()) work(); }, 16 * 1024 * 1024)
            {
                IsBackground = true,
                Name = "MLNetDeep training",
            };
            thread.Start();
            _trainingThread = thread;
            return _trainingWork = queue;
        }
    }

    private sealed class Release : IDisposable
    {
        private Action? _release;
        public Release(Action release) => _release = release;
        public void Dispose() => Interlocked.Exchange(ref _release, null)?.Invoke();
    }
}
