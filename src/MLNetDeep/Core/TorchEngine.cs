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
    // time in a process: each holds this lock from seeding to its last epoch. Reentrant (a training started from an
    // epoch callback on the same thread does not deadlock).
    private static readonly object TrainingGate = new();

    /// <summary>How many trainings had to wait for another one (a test reads it).</summary>
    internal static int TrainingWaits;

    /// <summary>
    /// Takes the process-wide training lock (waiting, cancellably, while another training runs) and applies the thread
    /// count; disposing restores the thread count the process had and releases the lock.
    /// </summary>
    public static IDisposable EnterTraining(int? threads, CancellationToken cancel, Action checkAlive, IChannel ch)
    {
        EnsureLoaded();
        if (!Monitor.TryEnter(TrainingGate))
        {
            Interlocked.Increment(ref TrainingWaits);
            ch.Info("MLNetDeep: another training is running in this process; trainings run one at a time (the engine's random generator is process-wide), waiting for it to finish.");
            while (!Monitor.TryEnter(TrainingGate, 50))
            {
                cancel.ThrowIfCancellationRequested();
                checkAlive();
            }
        }
        try
        {
            int previous = torch.get_num_threads();
            if (threads is int n && n != previous) torch.set_num_threads(n);
            return new TrainingSession(previous);
        }
        catch
        {
            Monitor.Exit(TrainingGate);
            throw;
        }
    }

    private sealed class TrainingSession : IDisposable
    {
        private readonly int _previousThreads;
        private bool _disposed;

        public TrainingSession(int previousThreads) => _previousThreads = previousThreads;

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            try
            {
                if (torch.get_num_threads() != _previousThreads) torch.set_num_threads(_previousThreads);
            }
            finally
            {
                Monitor.Exit(TrainingGate);
            }
        }
    }
}
