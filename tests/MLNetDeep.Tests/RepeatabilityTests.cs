using System.Reflection;
using MLNetDeep.TestData;
using Xunit;
using Xunit.Abstractions;

namespace MLNetDeep.Tests;

/// <summary>
/// README's promise: the same data, options and MLContext seed give bit-identical predictions run after run on the CPU,
/// with the engine's default thread count. Guarded with the configuration of issue 11's report (MLP [256, 128], dropout
/// 0.3, one-cycle, 30 epochs, seed 1, text features), each training in its own fresh process.
/// </summary>
public sealed class RepeatabilityTests
{
    private readonly ITestOutputHelper _out;
    public RepeatabilityTests(ITestOutputHelper output) => _out = output;

    [Fact]
    public void SameSeed_InSeparateProcesses_GivesBitIdenticalPredictions()
    {
        string program = typeof(RepeatabilityTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "Repeatability").Value!;
        Assert.True(File.Exists(program), "repeatability program not built: " + program);
        const int Runs = 5;
        var dumps = new List<string[]>();
        for (int run = 0; run < Runs; run++)
        {
            string output = Path.Combine(TestUtil.TempDir(), "predictions.txt");
            TestUtil.RunDotnet(new[] { program, output }, environment: new Dictionary<string, string> { ["MLNETDEEP_DATA"] = DataPaths.Root }, what: $"training run {run + 1}");
            dumps.Add(File.ReadAllLines(output));
        }
        Assert.True(dumps[0].Length > 100, $"{dumps[0].Length} predictions");
        for (int run = 1; run < Runs; run++)
        {
            int differing = dumps[0].Zip(dumps[run]).Count(p => p.First != p.Second);
            Assert.True(differing == 0, $"run {run + 1}: {differing} of {dumps[0].Length} predictions differ from run 1");
        }
        _out.WriteLine($"{Runs} separate processes: {dumps[0].Length} predictions bit-identical");
    }

    /// <summary>
    /// The engine's BLAS (Intel oneMKL inside libtorch) runs in its reproducible mode: MLNetDeep sets MKL_CBWR=AUTO and
    /// MKL_DYNAMIC=FALSE before libtorch's first call unless the application set them. oneMKL's verbose log prints the
    /// mode of every call it makes, so a fresh process trained with MKL_VERBOSE=1 shows which mode was in force.
    /// </summary>
    [Fact]
    public void EngineMath_RunsInOneMklsReproducibleMode_UnlessTheApplicationChoseAnother()
    {
        string program = typeof(RepeatabilityTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "Repeatability").Value!;
        Dictionary<string, int> Modes(Dictionary<string, string> environment)
        {
            environment["MLNETDEEP_DATA"] = DataPaths.Root;
            environment["MKL_VERBOSE"] = "1";
            string output = Path.Combine(TestUtil.TempDir(), "predictions.txt");
            string stdout = TestUtil.RunDotnet(new[] { program, output, "1" }, environment: environment, what: "one-epoch training with MKL_VERBOSE",
                unset: new[] { "MKL_CBWR", "MKL_DYNAMIC" }.Where(k => !environment.ContainsKey(k)));
            return System.Text.RegularExpressions.Regex.Matches(stdout, @"CNR:\w+ Dyn:\d").GroupBy(m => m.Value).ToDictionary(g => g.Key, g => g.Count());
        }

        var defaults = Modes(new Dictionary<string, string>());
        _out.WriteLine("defaults: " + string.Join(", ", defaults.Select(kv => $"{kv.Key} × {kv.Value}")));
        Assert.True(defaults.Count == 1 && defaults.ContainsKey("CNR:AUTO Dyn:0"), "oneMKL modes seen: " + string.Join(", ", defaults.Keys));
        Assert.True(defaults["CNR:AUTO Dyn:0"] > 100, $"{defaults["CNR:AUTO Dyn:0"]} oneMKL calls logged");

        var chosen = Modes(new Dictionary<string, string> { ["MKL_CBWR"] = "COMPATIBLE", ["MKL_DYNAMIC"] = "TRUE" });
        _out.WriteLine("application's own: " + string.Join(", ", chosen.Select(kv => $"{kv.Key} × {kv.Value}")));
        Assert.True(chosen.Count == 1 && chosen.ContainsKey("CNR:COMPATIBLE Dyn:1"), "oneMKL modes seen: " + string.Join(", ", chosen.Keys));

        var optedOut = Modes(new Dictionary<string, string> { ["MLNETDEEP_MKL_DEFAULTS"] = "1" });
        Assert.True(optedOut.Count == 1 && optedOut.ContainsKey("CNR:OFF Dyn:1"), "oneMKL modes seen: " + string.Join(", ", optedOut.Keys));
    }
}
