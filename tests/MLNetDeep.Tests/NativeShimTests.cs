using MLNetDeep.Build;
using TorchSharp;
using Xunit;

namespace MLNetDeep.Tests;

/// <summary>The build-time fix that lets TorchSharp's native shim load on libstdc++ older than GCC 13's.</summary>
public sealed class NativeShimTests
{
    private static string OutputShim =>
        Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");

    private static HashSet<string> HostVersions()
    {
        var path = ElfVersionPatcher.FindHostLibStdCxx();
        Assert.NotNull(path);
        return ElfVersionPatcher.ReadVersionDefinitions(File.ReadAllBytes(path!), path!);
    }

    [Fact]
    public void Engine_Loads_InTheTestProcess()
    {
        using var x = torch.ones(2, 3);
        Assert.Equal(6f, x.sum().item<float>());
    }

    [Fact]
    public void OutputCopy_IsPatchedExactlyWhenTheHostLacksTheVersion()
    {
        if (!OperatingSystem.IsLinux()) return;
        var needs = ElfVersionPatcher.ReadVersionNeeds(File.ReadAllBytes(OutputShim), OutputShim);
        var v32 = needs.Single(n => n.Name == "GLIBCXX_3.4.32");
        bool hostHasIt = HostVersions().Contains("GLIBCXX_3.4.32");
        Assert.Equal(!hostHasIt, v32.IsWeak);
        Assert.All(needs.Where(n => n.Name != "GLIBCXX_3.4.32"), n => Assert.False(n.IsWeak));
    }

    /// <summary>Rebuilds the shipped (unpatched) bytes from the output copy by clearing the weak bit.</summary>
    private static string PristineCopy()
    {
        string dir = TestUtil.TempDir();
        string path = Path.Combine(dir, "libLibTorchSharp.so");
        var bytes = File.ReadAllBytes(OutputShim);
        foreach (var n in ElfVersionPatcher.ReadVersionNeeds(bytes, path).Where(n => n.IsWeak))
            bytes[n.FlagsOffset] &= unchecked((byte)~ElfVersionPatcher.VerFlgWeak);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void Patch_ChangesOnlyThatFlag_IsIdempotent_AndReplacesRatherThanWritesThrough()
    {
        string path = PristineCopy();
        var before = File.ReadAllBytes(path);
        string link = path + ".hardlink";
        using (var ln = System.Diagnostics.Process.Start("ln", new[] { path, link })!)
        {
            ln.WaitForExit();
            Assert.Equal(0, ln.ExitCode);
        }

        var host = new HashSet<string>(ElfVersionPatcher.ReadVersionNeeds(before, path).Select(n => n.Name).Where(n => n != "GLIBCXX_3.4.32"));
        Assert.Equal(ElfPatchOutcome.Patched, ElfVersionPatcher.PatchFile(path, host, force: false, out var message));
        Assert.Contains("GLIBCXX_3.4.32", message);
        var after = File.ReadAllBytes(path);
        var differing = Enumerable.Range(0, before.Length).Where(i => before[i] != after[i]).ToList();
        Assert.Single(differing);
        var entry = ElfVersionPatcher.ReadVersionNeeds(after, path).Single(n => n.Name == "GLIBCXX_3.4.32");
        Assert.Equal(entry.FlagsOffset, differing[0]);
        Assert.True(entry.IsWeak);
        Assert.Equal(before, File.ReadAllBytes(link)); // a hard link (as into a package cache) is left untouched

        Assert.Equal(ElfPatchOutcome.AlreadyPatched, ElfVersionPatcher.PatchFile(path, host, force: false, out _));
        Assert.Equal(after, File.ReadAllBytes(path));
    }

    [Fact]
    public void Patch_IsANoOp_WhenTheHostHasEveryVersion_AndRefusesVersionsWithRealSymbols()
    {
        string path = PristineCopy();
        var before = File.ReadAllBytes(path);
        var all = new HashSet<string>(ElfVersionPatcher.ReadVersionNeeds(before, path).Select(n => n.Name));
        Assert.Equal(ElfPatchOutcome.NotNeeded, ElfVersionPatcher.PatchFile(path, all, force: false, out _));
        Assert.Equal(before, File.ReadAllBytes(path));

        // A host stopping at GLIBCXX_3.4.29 lacks 3.4.30 too, which real code uses: refuse, change nothing.
        all.Remove("GLIBCXX_3.4.30");
        all.Remove("GLIBCXX_3.4.32");
        Assert.Equal(ElfPatchOutcome.Refused, ElfVersionPatcher.PatchFile(path, all, force: false, out var message));
        Assert.Contains("GLIBCXX_3.4.30", message);
        Assert.Equal(before, File.ReadAllBytes(path));
    }

    [Fact]
    public void OnlyTheIostreamMarker_IsBoundToGlibcxx3432_AndNoRelocationUsesIt()
    {
        string path = PristineCopy();
        var bytes = File.ReadAllBytes(path);
        var need = ElfVersionPatcher.ReadVersionNeeds(bytes, path).Single(n => n.Name == "GLIBCXX_3.4.32");
        var symbols = ElfVersionPatcher.SymbolsOfVersion(bytes, path, need.Index);
        var only = Assert.Single(symbols);
        Assert.Equal("_ZSt21ios_base_library_initv", only.Key);
        Assert.False(only.Value);
    }

    [Fact]
    public void LoadFailure_IsExplainedWithLibraryVersionAndFix()
    {
        var inner = new DllNotFoundException("Unable to load shared library 'LibTorchSharp' or one of its dependencies: /lib/x86_64-linux-gnu/libstdc++.so.6: version `GLIBCXX_3.4.32' not found (required by libLibTorchSharp.so)");
        string message = TorchEngine.Diagnose(new TypeInitializationException("TorchSharp.torch", inner));
        if (!OperatingSystem.IsLinux()) return;
        Assert.Contains("libLibTorchSharp.so", message);
        Assert.Contains("GLIBCXX_3.4.32", message);
        Assert.Contains("MLNetDeepNativeShimPatch", message);
        Assert.Contains("GCC 13", message);
    }
}
