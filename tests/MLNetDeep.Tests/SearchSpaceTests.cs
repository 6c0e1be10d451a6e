using Microsoft.ML.SearchSpace;
using Xunit;

namespace MLNetDeep.Tests;

/// <summary>Search spaces from attributes or code, decoding, and the searchers' determinism and behaviour (no training).</summary>
public sealed class SearchSpaceTests
{
    private sealed class ToyOptions
    {
        [Range(1e-4, 1e-1, 1e-3, true)] public double LearningRate { get; set; }
        [Range(1, 8, 2)] public int Layers { get; set; }
        [Choice(new object[] { "relu", "gelu", "tanh" }, "gelu")] public string Activation { get; set; } = "";
        [BooleanChoice(true)] public bool BatchNorm { get; set; }
        [Range(0f, 0.5f)] public float Dropout { get; set; }
        public int NotSearched { get; set; }
    }

    [Fact]
    public void FromAttributes_ReadsEveryKind_StartsAtTheInitialValues_AndAppliesToOptions()
    {
        var space = SearchSpace.FromOptions<ToyOptions>();
        Assert.Equal(new[] { "LearningRate", "Layers", "Activation", "BatchNorm", "Dropout" }, space.Parameters.Select(p => p.Name));
        Assert.True(space.Parameters[0].LogScale);
        Assert.True(space.Parameters[1].IsInteger);
        var start = space.Decode(space.Initial());
        Assert.Equal(1e-3, (double)start["LearningRate"], 12);
        Assert.Equal(2, start["Layers"]);
        Assert.Equal("gelu", start["Activation"]);
        Assert.Equal(true, start["BatchNorm"]);
        Assert.Equal(0.25, (double)start["Dropout"], 6);

        var corner = space.Decode(new double[] { 1, 0, 1, 0, 1 });
        Assert.Equal(0.1, (double)corner["LearningRate"], 12);
        Assert.Equal(1, corner["Layers"]);
        Assert.Equal("tanh", corner["Activation"]);
        Assert.Equal(false, corner["BatchNorm"]);
        var options = new ToyOptions();
        SearchSpace.Apply(options, corner);
        Assert.Equal(0.5f, options.Dropout);
        Assert.Equal("tanh", options.Activation);

        var bad = Assert.Throws<ArgumentException>(() => SearchSpace.Apply(options, new Dictionary<string, object> { ["Nope"] = 1 }));
        Assert.Contains("Nope", bad.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => SearchParameter.Range("x", 0, 1, logScale: true));
        Assert.Throws<ArgumentException>(() => new SearchSpace().Add(SearchParameter.Range("x", 0, 1)).Add(SearchParameter.Range("x", 0, 2)));
    }

    [Theory]
    [InlineData(SearchStrategy.CostFrugal)]
    [InlineData(SearchStrategy.Random)]
    public void Searchers_StartAtTheInitialPoint_StayInTheCube_AndRepeatForASeed(SearchStrategy strategy)
    {
        var space = SearchSpace.FromOptions<ToyOptions>();
        double[][] Run(int seed)
        {
            var s = Searcher.Create(strategy, space, seed);
            var points = new List<double[]>();
            for (int i = 0; i < 60; i++)
            {
                var x = s.Propose();
                points.Add(x);
                s.Report(x, i % 7 == 3 ? null : Score(x));
            }
            return points.ToArray();
        }
        var a = Run(5);
        Assert.Equal(space.Initial(), a[0]);
        Assert.All(a, x => Assert.All(x, v => Assert.InRange(v, 0, 1)));
        Assert.Equal(a, Run(5));
        Assert.NotEqual(a, Run(6));
    }

    [Fact]
    public void CostFrugalSearch_ClimbsTowardsTheOptimum_AndRestartsWhenStuck()
    {
        // A smooth 3-d objective with its maximum at (0.8, 0.2, 0.6); the search starts at the middle.
        var space = new SearchSpace().Add(SearchParameter.Range("a", 0, 1)).Add(SearchParameter.Range("b", 0, 1)).Add(SearchParameter.Range("c", 0, 1));
        var s = Searcher.Create(SearchStrategy.CostFrugal, space, 1);
        double best = double.NegativeInfinity;
        double firstScore = double.NaN;
        var points = new List<double[]>();
        for (int i = 0; i < 150; i++)
        {
            var x = s.Propose();
            points.Add(x);
            double score = -((x[0] - 0.8) * (x[0] - 0.8) + (x[1] - 0.2) * (x[1] - 0.2) + (x[2] - 0.6) * (x[2] - 0.6));
            if (i == 0) firstScore = score;
            best = Math.Max(best, score);
            s.Report(x, score);
        }
        Assert.True(best > -0.002, $"best {best:F4} (start {firstScore:F4})");
        // After converging, the step shrinks below its floor and the search restarts elsewhere (a far jump).
        Assert.Contains(points.Zip(points.Skip(1)), p => Distance(p.First, p.Second) > 0.3);
    }

    private static double Score(double[] x) => -x.Select((v, i) => (v - 0.3 - 0.1 * i) * (v - 0.3 - 0.1 * i)).Sum();

    private static double Distance(double[] a, double[] b) => Math.Sqrt(a.Zip(b, (x, y) => (x - y) * (x - y)).Sum());
}
