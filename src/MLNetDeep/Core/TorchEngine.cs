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

    /// <summary>Applies a thread count (process-wide).</summary>
    public static void SetThreads(int? threads)
    {
        EnsureLoaded();
        if (threads is int n && torch.get_num_threads() != n)
            torch.set_num_threads(n);
    }
}
