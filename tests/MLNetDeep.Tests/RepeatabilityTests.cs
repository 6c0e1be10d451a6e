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
}
