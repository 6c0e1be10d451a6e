using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetDeep.TestData;
using Mono.Cecil;
using Mono.Cecil.Cil;
using Xunit;
using Xunit.Abstractions;

namespace MLNetDeep.Tests;

/// <summary>
/// TorchSharp 0.107 frees a <c>Scalar</c> in its finalizer, and its methods pass <c>scalar.Handle</c> to native code
/// without keeping the Scalar alive: a Scalar made by an implicit conversion (<c>tensor * 2.0</c>, <c>x.gt(0)</c>) or
/// inside TorchSharp (<c>add_(s)</c> passes its own temporary alpha = 1) can be collected and freed while libtorch
/// reads it. Under garbage collections (any allocating application) training then fails at random ("Unknown scalar
/// type"). These tests keep MLNetDeep free of such calls and train and score under allocation pressure.
/// </summary>
public sealed class GcSafetyTests
{
    private readonly ITestOutputHelper _out;
    public GcSafetyTests(ITestOutputHelper output) => _out = output;

    /// <summary>
    /// TorchSharp methods that make a Scalar no caller can keep alive: they convert a number (implicit conversion or
    /// ToScalar) and pass it on, directly or through other TorchSharp methods (computed to a fixed point).
    /// </summary>
    private static HashSet<string> TorchSharpMethodsWithTemporaryScalars()
    {
        using var torchSharp = AssemblyDefinition.ReadAssembly(typeof(TorchSharp.torch).Assembly.Location);
        var methods = torchSharp.MainModule.GetTypes().SelectMany(t => t.Methods).Where(m => m.HasBody).ToList();
        static bool MakesScalar(MethodReference r) =>
            r.DeclaringType.FullName is "TorchSharp.Scalar" && r.Name == "op_Implicit"
            || r.DeclaringType.FullName is "TorchSharp.ScalarExtensionMethods" && r.Name == "ToScalar";
        var unsafeMethods = new HashSet<string>(StringComparer.Ordinal);
        foreach (var m in methods)
            if (Calls(m).Any(MakesScalar)) unsafeMethods.Add(m.FullName);
        for (bool changed = true; changed;)
        {
            changed = false;
            foreach (var m in methods)
                if (!unsafeMethods.Contains(m.FullName) && Calls(m).Any(c => unsafeMethods.Contains(c.FullName)))
                    changed = unsafeMethods.Add(m.FullName) || changed;
        }
        return unsafeMethods;
    }

    private static IEnumerable<MethodReference> Calls(MethodDefinition m) => m.Body.Instructions
        .Where(i => i.OpCode == OpCodes.Call || i.OpCode == OpCodes.Callvirt || i.OpCode == OpCodes.Newobj || i.OpCode == OpCodes.Ldftn)
        .Select(i => i.Operand).OfType<MethodReference>();

    [Fact]
    public void MLNetDeep_CallsNoTorchSharpMethodThatHandsNativeCodeATemporaryScalar()
    {
        var unsafeTorch = TorchSharpMethodsWithTemporaryScalars();
        using var assembly = AssemblyDefinition.ReadAssembly(typeof(DeepTrainerOptions).Assembly.Location);
        var offenders = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var type in assembly.MainModule.GetTypes())
            foreach (var method in type.Methods.Where(m => m.HasBody))
                foreach (var called in Calls(method))
                {
                    bool implicitScalar = called.DeclaringType.FullName == "TorchSharp.Scalar" && called.Name == "op_Implicit";
                    if (implicitScalar || unsafeTorch.Contains(called.FullName))
                        offenders.Add($"{type.FullName}.{method.Name}: {called.FullName}");
                }
        foreach (var o in offenders) _out.WriteLine(o);
        Assert.True(offenders.Count == 0, $"{offenders.Count} call(s) that hand libtorch a Scalar nobody keeps alive:\n" + string.Join("\n", offenders));
    }

    /// <summary>Runs <paramref name="work"/> while another thread allocates (a collection every few milliseconds).</summary>
    private (int Collections, double Seconds) UnderAllocationPressure(Action work)
    {
        bool stop = false;
        var allocator = new Thread(() =>
        {
            var keep = new object[1024];
            int i = 0;
            while (!Volatile.Read(ref stop)) keep[i++ & 1023] = new byte[2048];
        }) { IsBackground = true };
        int before = GC.CollectionCount(0);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        allocator.Start();
        try { work(); }
        finally
        {
            Volatile.Write(ref stop, true);
            allocator.Join();
        }
        return (GC.CollectionCount(0) - before, watch.Elapsed.TotalSeconds);
    }

    /// <summary>Trains three networks that between them use every Scalar-sensitive path and returns their test predictions.</summary>
    private static List<float> TrainAndScore()
    {
        var ml = new MLContext(seed: 1);
        var bike = RealData.BikeTrain(ml);
        var bikeTest = RealData.BikeTest(ml);
        var outputs = new List<float>();

        // MLP regression: AdamW, batch norm, LeakyReLU, standardized label, clipping, validation metrics.
        var mlp = Pipelines.BikeFeatures(ml).Append(ml.Regression.Trainers.Mlp(new MlpRegressionTrainer.Options
        {
            HiddenLayers = new[] { 64, 32 }, BatchNorm = true, Activation = DeepActivation.LeakyRelu, NumberOfEpochs = 3, ValidationFraction = 0.1,
            GradientClipNorm = 1.0,
        })).Fit(bike);
        var r2 = ml.Regression.Evaluate(mlp.Transform(bikeTest)).RSquared;
        Assert.True(r2 > 0.3, $"R^2 {r2:F3}");
        outputs.AddRange(mlp.Transform(bikeTest).GetColumn<float>("Score"));

        // Binary MLP with SGD + Nesterov and ELU (another optimizer and activation, the binary metric).
        var binary = Pipelines.BikeFeatures(ml)
            .Append(ml.Transforms.CustomMapping<BikeCount, BusyHour>((i, o) => o.Busy = i.Label > 150, contractName: null))
            .Append(ml.BinaryClassification.Trainers.Mlp(new MlpBinaryTrainer.Options
            {
                LabelColumnName = "Busy", HiddenLayers = new[] { 32 }, Activation = DeepActivation.Elu, Optimizer = DeepOptimizer.Sgd, Nesterov = true,
                LearningRate = 0.05, NumberOfEpochs = 2, ValidationFraction = 0.1,
            })).Fit(bike);
        double accuracy = ml.BinaryClassification.Evaluate(binary.Transform(bikeTest), labelColumnName: "Busy").Accuracy;
        Assert.True(accuracy > 0.7, $"binary accuracy {accuracy:F3}");
        outputs.AddRange(binary.Transform(bikeTest).GetColumn<float>("Probability"));

        // CNN: a small ResNet (residual additions, batch norm) with every augmentation and an input scale.
        var cnn = ml.MulticlassClassification.Trainers.Cnn(new CnnMulticlassTrainer.Options
        {
            Architecture = CnnArchitecture.ResNet(new[] { 1, 1 }, width: 8), NumberOfEpochs = 2, LearningRate = 3e-3, ValidationFraction = 0.1,
            InputScale = 2, InputOffset = -1,
            Augmentation = new ImageAugmentation { HorizontalFlip = true, CropPadding = 2, MaxRotationDegrees = 10, MaxTranslation = 0.05f, ErasingProbability = 0.5f },
        }).Fit(FashionMnist.Train(ml, 1000));
        var test = FashionMnist.Test(ml, 300);
        double cnnAccuracy = ml.MulticlassClassification.Evaluate(cnn.Transform(test)).MicroAccuracy;
        Assert.True(cnnAccuracy > 0.15, $"CNN accuracy {cnnAccuracy:F4} (chance: 0.1; a ResNet-6 after 32 steps: about 0.2)");
        outputs.AddRange(cnn.Transform(test).GetColumn<float[]>("Score").SelectMany(s => s));

        // Row-by-row scoring, as a web service does.
        var engine = ml.Model.CreatePredictionEngine<Image, ImagePrediction>(cnn);
        var pixels = test.GetColumn<float[]>("Features").ToArray();
        var prediction = new ImagePrediction();
        for (int i = 0; i < 1500; i++)
        {
            engine.Predict(new Image { Features = pixels[i % pixels.Length] }, ref prediction);
            if (i < pixels.Length) outputs.AddRange(prediction.Score);
        }
        return outputs;
    }

    [Fact]
    public void Training_AndScoring_UnderGarbageCollectionsAtAnyMoment_SurviveAndMatchACalmRun()
    {
        // Before MLNetDeep held its Scalars, this failed within seconds ("Unknown scalar type" in the optimizer step,
        // the label standardization, the batch-norm counter ...), as a raw TorchSharp AdamW loop still does.
        var calm = TrainAndScore();
        List<float> stressed = new();
        var (gcs, seconds) = UnderAllocationPressure(() => stressed = TrainAndScore());
        _out.WriteLine($"{gcs} gen-0 collections in {seconds:F1} s of training and scoring; {calm.Count} outputs compared");
        Assert.True(gcs > 100, $"only {gcs} collections: the allocation pressure did not happen");
        Assert.Equal(calm, stressed); // same seed: bit-identical, so nothing read freed memory either
    }

    [Theory]
    [InlineData(DeepOptimizer.Sgd, false)]
    [InlineData(DeepOptimizer.Sgd, true)]
    [InlineData(DeepOptimizer.Adam, false)]
    [InlineData(DeepOptimizer.AdamW, false)]
    public void OwnOptimizers_TakeTheSameStepsAsTorchSharps(DeepOptimizer kind, bool nesterov)
    {
        // Same network, data and hyper-parameters: MLNetDeep's optimizer and TorchSharp's must agree (outside GC stress).
        var options = new MlpRegressionTrainer.Options { Optimizer = kind, LearningRate = 0.01, WeightDecay = 0.01, Momentum = 0.9, Nesterov = nesterov };
        TorchSharp.torch.nn.Module<TorchSharp.torch.Tensor, TorchSharp.torch.Tensor> Net()
        {
            TorchSharp.torch.manual_seed(7);
            return TorchSharp.torch.nn.Sequential(TorchSharp.torch.nn.Linear(5, 8), TorchSharp.torch.nn.ReLU(), TorchSharp.torch.nn.Linear(8, 1));
        }
        using var ours = Net();
        using var theirs = Net();
        TorchSharp.torch.manual_seed(11);
        using var x = TorchSharp.torch.randn(32, 5);
        using var y = TorchSharp.torch.randn(32, 1);
        using var own = SafeOptimizer.Create(options, ours.parameters());
        using var reference = kind switch
        {
            DeepOptimizer.Sgd => (TorchSharp.Modules.OptimizerHelper)TorchSharp.torch.optim.SGD(theirs.parameters(), 0.01, momentum: 0.9, weight_decay: 0.01, nesterov: nesterov),
            DeepOptimizer.Adam => TorchSharp.torch.optim.Adam(theirs.parameters(), 0.01, weight_decay: 0.01),
            _ => TorchSharp.torch.optim.AdamW(theirs.parameters(), 0.01, weight_decay: 0.01),
        };
        for (int step = 0; step < 20; step++)
        {
            using var scope = TorchSharp.torch.NewDisposeScope();
            own.ZeroGrad();
            TorchSharp.torch.nn.functional.mse_loss(ours.forward(x), y).backward();
            own.Step();
            reference.zero_grad();
            TorchSharp.torch.nn.functional.mse_loss(theirs.forward(x), y).backward();
            reference.step();
        }
        var a = ours.parameters().SelectMany(p => p.data<float>().ToArray()).ToArray();
        var b = theirs.parameters().SelectMany(p => p.data<float>().ToArray()).ToArray();
        double maxDiff = a.Zip(b, (u, v) => Math.Abs(u - v)).Max();
        _out.WriteLine($"{kind} nesterov={nesterov}: largest parameter difference after 20 steps {maxDiff:G3}");
        Assert.Equal(b, a); // bit for bit: the same operations in the same order
        var start = Net().parameters().SelectMany(p => p.data<float>().ToArray()).ToArray();
        Assert.True(a.Zip(start, (u, v) => Math.Abs(u - v)).Max() > 1e-3, "the parameters did not move");
    }

    private sealed class BikeCount { public float Label { get; set; } }
    private sealed class BusyHour { public bool Busy { get; set; } }

    private sealed class Image
    {
        [VectorType(1, 28, 28)] public float[] Features { get; set; } = Array.Empty<float>();
    }

    private sealed class ImagePrediction
    {
        public uint PredictedLabel { get; set; }
        public float[] Score { get; set; } = Array.Empty<float>();
    }
}
