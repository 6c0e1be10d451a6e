using System.Runtime.InteropServices;

namespace MLNetDeep;

/// <summary>
/// Asks libtorch's BLAS for run-to-run reproducible results before the engine makes its first call into it.
/// </summary>
/// <remarks>
/// On x86, libtorch does its matrix products with Intel's oneMKL (linked into libtorch_cpu). oneMKL promises identical
/// results from run to run only in its "conditional numerical reproducibility" mode (<c>MKL_CBWR</c>) with a thread
/// count it does not change on its own (<c>MKL_DYNAMIC=FALSE</c>); by default both are off (<c>MKL_VERBOSE=1</c> prints
/// <c>CNR:OFF Dyn:1</c>). On AMD processors oneMKL takes a generic code path, but on Intel processors it takes its
/// AVX-512 kernels, where the default mode may round differently between runs. oneMKL reads the two variables from the
/// process environment when it initialises, so they are set here, natively (the .NET copy of the environment is not
/// what native code reads on Unix), before libtorch is first used — unless the application has set them itself, which
/// wins (e.g. <c>MKL_CBWR=COMPATIBLE</c> for results that also agree across processor types; oneMKL reads an unknown
/// value such as <c>OFF</c> as <c>AUTO</c>). <c>MLNETDEEP_MKL_DEFAULTS=1</c> leaves oneMKL in its default mode. Nothing
/// changes when libtorch was already used in the process before MLNetDeep.
/// </remarks>
internal static class ReproducibleMath
{
    /// <summary>The settings requested: variable name and value.</summary>
    internal static readonly (string Name, string Value)[] Settings = { ("MKL_CBWR", "AUTO"), ("MKL_DYNAMIC", "FALSE") };

    public static void Request()
    {
        if (Environment.GetEnvironmentVariable("MLNETDEEP_MKL_DEFAULTS") == "1") return;
        foreach (var (name, value) in Settings)
        {
            try
            {
                if (RuntimeInformation.IsOSPlatform(OSPlatform.Linux)) _ = SetEnvLinux(name, value, 0);
                else if (RuntimeInformation.IsOSPlatform(OSPlatform.OSX)) _ = SetEnvMac(name, value, 0);
                else if (Environment.GetEnvironmentVariable(name) is null) Environment.SetEnvironmentVariable(name, value);
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                // No C library to set it in: the engine runs with oneMKL's default mode.
            }
        }
    }

    [DllImport("libc.so.6", EntryPoint = "setenv", CharSet = CharSet.Ansi, BestFitMapping = false)]
    private static extern int SetEnvLinux(string name, string value, int overwrite);

    [DllImport("libSystem.B.dylib", EntryPoint = "setenv", CharSet = CharSet.Ansi, BestFitMapping = false)]
    private static extern int SetEnvMac(string name, string value, int overwrite);
}
