using System.Diagnostics;
using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using MLNetDeep.Build;
using MLNetDeep.TestData;
using Xunit;
using Xunit.Abstractions;

namespace MLNetDeep.Tests;

/// <summary>
/// The package as a user gets it. <c>dotnet pack</c> builds src/MLNetDeep. A new console project that references only the
/// packed package (a local folder source first, nuget.org second) then trains, evaluates, saves, loads in a new MLContext
/// and predicts. A second process only loads and predicts, and must print the same predictions. When the host's libstdc++
/// lacks a version that TorchSharp's native shim needs (Debian 12), the test also checks that the package's buildTransitive
/// target patched the consumer's copy and left the package cache's copy as shipped.
/// </summary>
/// <remarks>
/// Kept fast and hermetic. The sources are packed from a copy, so the repository's bin/obj are never touched. The package
/// gets a unique prerelease version, so a cached MLNetDeep is never picked up. The consumer restores into its own
/// globalPackagesFolder and uses the user's package cache as a read-only fallback folder, so Microsoft.ML and TorchSharp
/// are not downloaded again and nothing is written to the user's cache.
/// </remarks>
[Trait("Category", "Package")]
public sealed partial class PackageConsumerTests
{
    private static readonly TimeSpan PackTimeout = TimeSpan.FromMinutes(10);
    private static readonly TimeSpan BuildTimeout = TimeSpan.FromMinutes(20);
    private static readonly TimeSpan RunTimeout = TimeSpan.FromMinutes(10);

    private readonly ITestOutputHelper _out;
    public PackageConsumerTests(ITestOutputHelper output) => _out = output;

    [Fact]
    public void PackedPackage_InAFreshConsoleProject_TrainsSavesLoadsAndPredicts_AcrossProcesses()
    {
        var total = Stopwatch.StartNew();
        string repo = FindRepoRoot();
        string data = DataPaths.Root;
        string work = TestUtil.TempDir();
        string sources = Path.Combine(work, "repo");
        string feed = Path.Combine(work, "feed");
        string packages = Path.Combine(work, "packages");
        string consumer = Path.Combine(work, "Consumer");
        Directory.CreateDirectory(feed);
        Directory.CreateDirectory(packages);
        Directory.CreateDirectory(consumer);

        // 1. Pack a copy of the sources with a version no cache can already hold.
        CopySources(repo, sources);
        string version = PackageVersion(Path.Combine(repo, "src", "MLNetDeep", "MLNetDeep.csproj"));
        Run("pack", sources, PackTimeout, "pack", Path.Combine(sources, "src", "MLNetDeep", "MLNetDeep.csproj"),
            "-c", "Release", "-o", feed, "-p:Version=" + version, "-p:UseSharedCompilation=false", "-nodeReuse:false");
        string nupkg = Path.Combine(feed, $"MLNetDeep.{version}.nupkg");
        Assert.True(File.Exists(nupkg), $"dotnet pack did not write {nupkg}; the feed has: {string.Join(", ", Directory.GetFiles(feed))}");
        AssertPackageContents(nupkg, Path.Combine(repo, "src", "Directory.Build.props"));

        // 2. A new console project that references only MLNetDeep.
        string userCache = UserPackageCache();
        File.WriteAllText(Path.Combine(consumer, "Consumer.csproj"), ConsumerProject(version));
        File.WriteAllText(Path.Combine(consumer, "nuget.config"), NuGetConfig(feed, packages, userCache));
        File.WriteAllText(Path.Combine(consumer, "Program.cs"), ConsumerProgram);
        // Keep any Directory.Build.* above the temp folder out of the consumer's build.
        File.WriteAllText(Path.Combine(consumer, "Directory.Build.props"), "<Project />\n");
        File.WriteAllText(Path.Combine(consumer, "Directory.Build.targets"), "<Project />\n");

        string build = Run("build", consumer, BuildTimeout, "build", "-c", "Release", "-p:UseSharedCompilation=false", "-nodeReuse:false");

        // 3. Train, evaluate, save, load with a new MLContext and predict, all in one process...
        string model = Path.Combine(work, "model.zip");
        string first = Run("train", consumer, RunTimeout, "run", "-c", "Release", "--no-build", "--", "train", data, model);
        Assert.True(File.Exists(model), "the consumer did not save " + model + "\n" + first);
        double r2 = double.Parse(Line(first, "R2: "), CultureInfo.InvariantCulture);
        Assert.True(r2 > 0.2, $"R² {r2} is too low for a model that learned something\n{first}");
        string trained = Line(first, "PREDICTIONS trained: ");
        string reloaded = Line(first, "PREDICTIONS loaded: ");
        Assert.Equal(20, trained.Split(' ').Length);
        Assert.True(trained == reloaded, $"in-process reload changed the predictions:\n{trained}\n{reloaded}");

        // ...then only load and predict, in a second process.
        string second = Run("load", consumer, RunTimeout, "run", "-c", "Release", "--no-build", "--", "load", data, model);
        string otherProcess = Line(second, "PREDICTIONS loaded: ");
        Assert.True(trained == otherProcess, $"the second process predicted differently:\n{trained}\n{otherProcess}\n--- first process ---\n{first}\n--- second process ---\n{second}");

        // ...and as a single-file app, whose bundle must carry the patched shim (linux-x64 hosts).
        if (OperatingSystem.IsLinux() && System.Runtime.InteropServices.RuntimeInformation.OSArchitecture == System.Runtime.InteropServices.Architecture.X64)
        {
            string single = Path.Combine(work, "single");
            Run("publish single-file", consumer, BuildTimeout, "publish", "-c", "Release", "-r", "linux-x64", "--self-contained", "false",
                "-p:PublishSingleFile=true", "-p:IncludeNativeLibrariesForSelfExtract=true", "-o", single, "-p:UseSharedCompilation=false", "-nodeReuse:false");
            string third = RunFile(Path.Combine(single, "Consumer"), "load (single-file)", consumer, RunTimeout, "load", data, model);
            Assert.True(trained == Line(third, "PREDICTIONS loaded: "), $"the single-file app predicted differently:\n{trained}\n{third}");
        }

        // 4. The native shim: patched in the consumer's output when this host needs it; never in the package cache.
        CheckNativeShim(consumer, build);

        _out.WriteLine($"R² {r2.ToString("F4", CultureInfo.InvariantCulture)}; predictions: {trained}");
        _out.WriteLine($"total {total.Elapsed.TotalSeconds:F1}s");
        TryDelete(work);
    }

    /// <summary>The library with its docs, the build step, the readme; exact dependencies; nothing of the build-only Publicizer.</summary>
    private static void AssertPackageContents(string nupkg, string buildProps)
    {
        using var zip = ZipFile.OpenRead(nupkg);
        var entries = zip.Entries.Select(e => e.FullName).ToList();
        string listing = string.Join("\n", entries);
        foreach (var expected in new[]
        {
            "lib/net10.0/MLNetDeep.dll", "lib/net10.0/MLNetDeep.xml", "README.md",
            "buildTransitive/MLNetDeep.targets", "buildTransitive/MLNetDeep.NativeShimPatch.cs",
        })
            Assert.True(entries.Contains(expected), $"{Path.GetFileName(nupkg)} lacks {expected}; it has:\n{listing}");
        Assert.True(!entries.Any(e => e.Contains("Publicizer", StringComparison.OrdinalIgnoreCase)), "the build-only Publicizer was packed:\n" + listing);

        XDocument nuspec;
        using (var stream = zip.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open())
            nuspec = XDocument.Load(stream);
        string dependencies = string.Join(", ", nuspec.Descendants().Where(x => x.Name.LocalName == "dependency")
            .Select(x => $"{x.Attribute("id")?.Value} {x.Attribute("version")?.Value}").OrderBy(d => d, StringComparer.Ordinal));
        string props = File.ReadAllText(buildProps);
        string Property(string name) => Regex.Match(props, $"<{name}>([^<]+)</{name}>").Groups[1].Value;
        // Microsoft.ML, Microsoft.ML.Tokenizers (with its two vocabulary packages) and TorchSharp-cpu pinned exactly;
        // SkiaSharp (for DeepPlots) held on the 2.x line ImageAnalytics needs.
        string tokenizers = Property("MicrosoftMLTokenizersVersion");
        Assert.Equal($"Microsoft.ML [{Property("MicrosoftMLVersion")}], Microsoft.ML.Tokenizers [{tokenizers}], Microsoft.ML.Tokenizers.Data.Cl100kBase [{tokenizers}], "
            + $"Microsoft.ML.Tokenizers.Data.O200kBase [{tokenizers}], SkiaSharp [2.88.9, 3.0.0), SkiaSharp.NativeAssets.Linux.NoDependencies [2.88.9, 3.0.0), "
            + $"TorchSharp-cpu [{Property("TorchSharpVersion")}]", dependencies);
    }

    private void CheckNativeShim(string consumer, string buildOutput)
    {
        string? libstdcxx = OperatingSystem.IsLinux() ? ElfVersionPatcher.FindHostLibStdCxx() : null;
        if (libstdcxx is null)
        {
            _out.WriteLine("native shim check skipped: not Linux, or no libstdc++.so.6 found");
            return;
        }
        var host = ElfVersionPatcher.ReadVersionDefinitions(File.ReadAllBytes(libstdcxx), libstdcxx);
        string[] Missing(string path, bool weak) => ElfVersionPatcher.ReadVersionNeeds(File.ReadAllBytes(path), path)
            .Where(n => n.File.StartsWith("libstdc++", StringComparison.Ordinal) && !host.Contains(n.Name) && n.IsWeak == weak)
            .Select(n => n.Name).ToArray();

        string output = Path.Combine(consumer, "bin", "Release");
        var shims = Directory.GetFiles(output, "libLibTorchSharp.so", SearchOption.AllDirectories);
        Assert.True(shims.Length > 0, "no libLibTorchSharp.so under " + output);
        string cached = CachedTorchSharpShim(consumer);
        string[] needed = Missing(cached, weak: false).Concat(Missing(cached, weak: true)).ToArray();
        if (needed.Length == 0)
        {
            _out.WriteLine($"native shim check: {libstdcxx} has every version the shim needs; nothing to patch");
            return;
        }
        foreach (var shim in shims)
            Assert.True(Missing(shim, weak: false).Length == 0,
                $"{shim} still strictly needs {string.Join(", ", Missing(shim, weak: false))}, which {libstdcxx} lacks\n{buildOutput}");
        Assert.True(Missing(cached, weak: true).Length == 0, $"the package cache's {cached} was modified (made weak: {string.Join(", ", Missing(cached, weak: true))})");
        _out.WriteLine($"native shim: {string.Join(", ", needed)} weak in {shims.Length} output cop{(shims.Length == 1 ? "y" : "ies")}, not in the package cache ({cached})");
    }

    /// <summary>The package cache's libLibTorchSharp.so used by the consumer, found through its project.assets.json.</summary>
    private static string CachedTorchSharpShim(string consumer)
    {
        using var assets = JsonDocument.Parse(File.ReadAllText(Path.Combine(consumer, "obj", "project.assets.json")));
        var torchSharp = assets.RootElement.GetProperty("libraries").EnumerateObject()
            .Single(l => l.Name.StartsWith("TorchSharp/", StringComparison.OrdinalIgnoreCase));
        string relative = torchSharp.Value.GetProperty("path").GetString()!;
        foreach (var folder in assets.RootElement.GetProperty("packageFolders").EnumerateObject())
        {
            string candidate = Path.Combine(folder.Name, relative, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
            if (File.Exists(candidate)) return candidate;
        }
        throw new FileNotFoundException($"no {relative}/runtimes/linux-x64/native/libLibTorchSharp.so in the consumer's package folders");
    }

    private static string FindRepoRoot()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "MLNetDeep.sln")))
                    return dir.FullName;
        throw new DirectoryNotFoundException("No directory containing MLNetDeep.sln above " + AppContext.BaseDirectory);
    }

    /// <summary>Copies the repository's top-level files (README.md, ...) and src/ without bin/ and obj/.</summary>
    private static void CopySources(string repo, string destination)
    {
        Directory.CreateDirectory(destination);
        foreach (var file in Directory.GetFiles(repo))
            File.Copy(file, Path.Combine(destination, Path.GetFileName(file)));
        CopyTree(Path.Combine(repo, "src"), Path.Combine(destination, "src"));

        static void CopyTree(string from, string to)
        {
            Directory.CreateDirectory(to);
            foreach (var file in Directory.GetFiles(from))
                File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
            foreach (var dir in Directory.GetDirectories(from))
            {
                string name = Path.GetFileName(dir);
                if (name is "bin" or "obj" || name.StartsWith('.')) continue;
                CopyTree(dir, Path.Combine(to, name));
            }
        }
    }

    /// <summary>The project's version without any prerelease label, plus a unique one: 0.1.0 becomes 0.1.0-test20250101120000123.</summary>
    private static string PackageVersion(string csproj)
    {
        var match = Regex.Match(File.ReadAllText(csproj), @"<Version>\s*([0-9]+(\.[0-9]+){1,3})");
        string release = match.Success ? match.Groups[1].Value : "0.0.0";
        return $"{release}-test{DateTime.UtcNow:yyyyMMddHHmmssfff}";
    }

    private static string UserPackageCache()
    {
        string? env = Environment.GetEnvironmentVariable("NUGET_PACKAGES");
        return string.IsNullOrEmpty(env)
            ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages")
            : env;
    }

    private static string ConsumerProject(string version) => $"""
        <Project Sdk="Microsoft.NET.Sdk">
          <PropertyGroup>
            <OutputType>Exe</OutputType>
            <TargetFramework>net10.0</TargetFramework>
            <ImplicitUsings>enable</ImplicitUsings>
            <Nullable>enable</Nullable>
          </PropertyGroup>
          <ItemGroup>
            <PackageReference Include="MLNetDeep" Version="{version}" />
          </ItemGroup>
        </Project>
        """;

    private static string NuGetConfig(string feed, string packages, string userCache) => $"""
        <?xml version="1.0" encoding="utf-8"?>
        <configuration>
          <config>
            <add key="globalPackagesFolder" value="{packages}" />
          </config>
          <fallbackPackageFolders>
            <clear />
            <add key="user-package-cache" value="{userCache}" />
          </fallbackPackageFolders>
          <packageSources>
            <clear />
            <add key="local" value="{feed}" />
            <add key="nuget.org" value="https://api.nuget.org/v3/index.json" protocolVersion="3" />
          </packageSources>
        </configuration>
        """;

    private const string ConsumerProgram = """
        using System.Globalization;
        using Microsoft.ML;
        using Microsoft.ML.Data;
        using MLNetDeep;

        // Consumer train <dataDir> <model.zip>: train, evaluate, save, load with a new MLContext, predict.
        // Consumer load <dataDir> <model.zip>: load and predict.
        string mode = args[0], dataDir = args[1], modelPath = args[2];
        string testPath = Path.Combine(dataDir, "tabular", "bike-hour-test.csv");

        if (mode == "train")
        {
            var ml = new MLContext(seed: 1);
            var train = ml.Data.LoadFromTextFile<BikeRow>(Path.Combine(dataDir, "tabular", "bike-hour-train.csv"), separatorChar: ',', hasHeader: true);
            var test = ml.Data.LoadFromTextFile<BikeRow>(testPath, separatorChar: ',', hasHeader: true);
            var pipeline = ml.Transforms.Concatenate("Features", BikeRow.FeatureColumns)
                .Append(ml.Transforms.NormalizeMeanVariance("Features"))
                .Append(ml.Regression.Trainers.Mlp(hiddenLayers: new[] { 64, 32 }, numberOfEpochs: 5, batchSize: 128, learningRate: 3e-3));
            var model = pipeline.Fit(train);
            var metrics = ml.Regression.Evaluate(model.Transform(test));
            Console.WriteLine("R2: " + metrics.RSquared.ToString("R", CultureInfo.InvariantCulture));
            ml.Model.Save(model, train.Schema, modelPath);
            Print("trained", model, ml, testPath);
        }
        else if (mode != "load")
        {
            Console.Error.WriteLine("usage: Consumer train|load <dataDir> <model.zip>");
            return 2;
        }

        var fresh = new MLContext(seed: 2);
        var loaded = fresh.Model.Load(modelPath, out _);
        Print("loaded", loaded, fresh, testPath);
        return 0;

        static void Print(string tag, ITransformer model, MLContext ml, string testPath)
        {
            var engine = ml.Model.CreatePredictionEngine<BikeRow, BikePrediction>(model);
            var rows = ml.Data.CreateEnumerable<BikeRow>(ml.Data.LoadFromTextFile<BikeRow>(testPath, separatorChar: ',', hasHeader: true), reuseRowObject: false).Take(20);
            Console.WriteLine($"PREDICTIONS {tag}: " + string.Join(" ", rows.Select(r => engine.Predict(r).Score.ToString("R", CultureInfo.InvariantCulture))));
        }

        public sealed class BikeRow
        {
            [LoadColumn(2)] public float Season { get; set; }
            [LoadColumn(3)] public float Year { get; set; }
            [LoadColumn(4)] public float Month { get; set; }
            [LoadColumn(5)] public float Hour { get; set; }
            [LoadColumn(6)] public float Holiday { get; set; }
            [LoadColumn(7)] public float Weekday { get; set; }
            [LoadColumn(8)] public float WorkingDay { get; set; }
            [LoadColumn(9)] public float Weather { get; set; }
            [LoadColumn(10)] public float Temperature { get; set; }
            [LoadColumn(11)] public float FeelsLike { get; set; }
            [LoadColumn(12)] public float Humidity { get; set; }
            [LoadColumn(13)] public float WindSpeed { get; set; }
            [LoadColumn(16), ColumnName("Label")] public float Count { get; set; }

            public static readonly string[] FeatureColumns =
                { nameof(Season), nameof(Year), nameof(Month), nameof(Hour), nameof(Holiday), nameof(Weekday), nameof(WorkingDay), nameof(Weather), nameof(Temperature), nameof(FeelsLike), nameof(Humidity), nameof(WindSpeed) };
        }

        public sealed class BikePrediction
        {
            public float Score { get; set; }
        }
        """;

    private static string Line(string output, string prefix)
    {
        var line = output.Split('\n').Select(l => l.TrimEnd('\r')).FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
        Assert.True(line is not null, $"no line starting with '{prefix}' in:\n{output}");
        return line!.Substring(prefix.Length).Trim();
    }

    /// <summary>
    /// Runs dotnet with a clean build environment and returns stdout and stderr, interleaved. Fails the test, with that
    /// output, on a non-zero exit code or a timeout.
    /// </summary>
    private string Run(string step, string workingDirectory, TimeSpan timeout, params string[] args) =>
        RunFile("dotnet", step, workingDirectory, timeout, args);

    private string RunFile(string fileName, string step, string workingDirectory, TimeSpan timeout, params string[] args) =>
        RunFileExpecting(0, fileName, step, workingDirectory, timeout, args);

    private string RunFileExpecting(int exitCode, string fileName, string step, string workingDirectory, TimeSpan timeout, params string[] args)
    {
        var psi = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        // The `dotnet test` running this test sets MSBuild variables for its own SDK; NUGET_PACKAGES would override the
        // consumer's globalPackagesFolder. Build nodes and compiler servers that outlive the command would hold its pipes.
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase) || k == "NUGET_PACKAGES").ToList())
            psi.Environment.Remove(key);
        psi.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        psi.Environment["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0";
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        psi.Environment["DOTNET_CLI_UI_LANGUAGE"] = "en";

        var output = new StringBuilder();
        var stdoutDone = new TaskCompletionSource();
        var stderrDone = new TaskCompletionSource();
        using var process = new Process { StartInfo = psi };
        process.OutputDataReceived += (_, e) => { if (e.Data is null) stdoutDone.TrySetResult(); else lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is null) stderrDone.TrySetResult(); else lock (output) output.AppendLine("[stderr] " + e.Data); };
        var watch = Stopwatch.StartNew();
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        string command = fileName + " " + string.Join(" ", args);
        if (!process.WaitForExit(timeout))
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            Task.WaitAll(new Task[] { stdoutDone.Task, stderrDone.Task }, TimeSpan.FromSeconds(10));
            lock (output) Assert.Fail($"{step}: `{command}` timed out after {timeout.TotalMinutes} min (in {workingDirectory})\n{output}");
        }
        // Read to the end of both streams, but not forever should a grandchild still hold them.
        Task.WaitAll(new Task[] { stdoutDone.Task, stderrDone.Task }, TimeSpan.FromSeconds(30));
        string text;
        lock (output) text = output.ToString();
        _out.WriteLine($"{step}: `{command}` exited {process.ExitCode} in {watch.Elapsed.TotalSeconds:F1}s");
        Assert.True(process.ExitCode == exitCode, $"{step}: `{command}` exited with code {process.ExitCode}, expected {exitCode} (in {workingDirectory})\n{text}");
        return text;
    }

    private static void TryDelete(string dir)
    {
        try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
