using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetDeep.TestData;
using Xunit;
using Xunit.Abstractions;

namespace MLNetDeep.Tests;

/// <summary>Model Builder-style consumption code: generated, built in a fresh project, and predicting what the saved model predicts.</summary>
public sealed class ConsumptionCodeTests
{
    private readonly ITestOutputHelper _out;

    public ConsumptionCodeTests(ITestOutputHelper output) => _out = output;

    [Fact]
    public void GeneratedCode_HasModelBuildersShape_ForEveryColumnKind()
    {
        var ml = new MLContext(seed: 1);
        var data = FashionMnist.Train(ml, 200);
        var model = ml.MulticlassClassification.Trainers.Mlp(new MlpMulticlassTrainer.Options { HiddenLayers = new[] { 8 }, NumberOfEpochs = 1 })
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedClass", "PredictedLabel")).Fit(data);
        string code = ConsumptionCode.Generate(model, data.Schema, "fashion.zip", "Fashion");
        _out.WriteLine(code);
        Assert.Contains("[VectorType(1, 28, 28)]", code);
        Assert.Contains("public float[] Features { get; set; }", code);
        Assert.Contains("public uint Label { get; set; }", code);                 // a key column
        Assert.Contains("public float[] Score { get; set; }", code);
        Assert.Contains("public uint PredictedLabel { get; set; }", code);
        Assert.Contains("public string PredictedClass { get; set; }", code);
        Assert.Contains("PredictAllLabels", code);
        Assert.Contains("new(CreatePredictEngine, true)", code);
    }

    [Fact]
    public void GeneratedProject_BuildsInAFreshFolder_AndPredictsWhatTheSavedModelPredicts()
    {
        // A classic ML.NET model (the consumption project then needs Microsoft.ML only; the MLNetDeep package path is the CLI's test).
        var ml = new MLContext(seed: 1);
        var train = TestUtil.BikeTrainSubset(ml, 2000);
        var model = Pipelines.BikeFeatures(ml).Append(ml.Regression.Trainers.Sdca(maximumNumberOfIterations: 20)).Fit(train);
        string dir = TestUtil.TempDir();
        string zip = Path.Combine(dir, "bike.zip");
        ml.Model.Save(model, train.Schema, zip);
        string project = ConsumptionCode.WriteProject(Path.Combine(dir, "consumer"), model, train.Schema, zip, "BikeConsumer");

        var rows = ml.Data.TakeRows(RealData.BikeTest(ml), 25);
        string csv = Path.Combine(dir, "rows.csv");
        using (var f = File.Create(csv)) ml.Data.SaveAsText(rows, f, separatorChar: ',', headerRow: true, schema: false);
        var expected = TestUtil.Floats(model.Transform(rows), "Score");

        var folder = Path.GetDirectoryName(project)!;
        var noTelemetry = new Dictionary<string, string> { ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1" };
        TestUtil.RunDotnet(new[] { "build", "-c", "Release", "--nologo", "-v", "q" }, folder, noTelemetry);
        var lines = TestUtil.RunDotnet(new[] { "run", "-c", "Release", "--no-build", "--", csv }, folder, noTelemetry)
            .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Where(l => l.StartsWith("Score=", StringComparison.Ordinal)).ToArray();
        Assert.Equal(expected.Length, lines.Length);
        for (int i = 0; i < lines.Length; i++)
            Assert.Equal(expected[i], float.Parse(lines[i]["Score=".Length..].Split(' ')[0], CultureInfo.InvariantCulture));
    }
}
