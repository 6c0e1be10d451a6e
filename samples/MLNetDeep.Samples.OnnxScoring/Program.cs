// ONNX sample, part 2: scores what part 1 (samples/MLNetDeep.Samples.Onnx) wrote, without MLNetDeep or TorchSharp.
//   1. ONNX Runtime alone: fashion-lenet5.onnx on the 10 000 Fashion-MNIST test images read straight from Debian's
//      IDX files (batches of 500), accuracy from the PredictedLabel output.
//   2. ML.NET with OnnxTransformer: the ApplyOnnxModel pipelines, evaluated by ML.NET's evaluators, and a
//      Model Builder-style PredictionEngine on one message.
//
//   dotnet run -c Release --project samples/MLNetDeep.Samples.OnnxScoring -- <directory part 1 wrote>
using System.IO.Compression;
using Microsoft.ML;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

string dir = args.Length > 0 ? args[0] : Path.Combine(Environment.CurrentDirectory, "mlnetdeep-onnx");
const string FashionDir = "/usr/share/datasets/fashion-mnist";
string[] classNames = { "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot" };

// ---------------------------------------------------------------- 1. ONNX Runtime only
using (var session = new InferenceSession(Path.Combine(dir, "fashion-lenet5.onnx")))
{
    var meta = session.ModelMetadata.CustomMetadataMap;
    Console.WriteLine($"fashion-lenet5.onnx: {meta["mlnetdeep.architecture"]} (MLNetDeep {meta["mlnetdeep.version"]}, task {meta["mlnetdeep.task"]})");
    var images = ReadIdx(Path.Combine(FashionDir, "t10k-images-idx3-ubyte.gz"), 16);
    var labels = ReadIdx(Path.Combine(FashionDir, "t10k-labels-idx1-ubyte.gz"), 8);
    int n = labels.Length, pixels = 28 * 28, correct = 0;
    string input = session.InputMetadata.Keys.Single();
    for (int start = 0; start < n; start += 500)
    {
        int count = Math.Min(500, n - start);
        var x = new float[count * pixels];
        for (int i = 0; i < x.Length; i++) x[i] = images[start * pixels + i] / 255f; // IdxImages scales to [0, 1]
        using var results = session.Run(new[] { NamedOnnxValue.CreateFromTensor(input, new DenseTensor<float>(x, new[] { count, pixels })) });
        var predicted = results.First(r => r.Name == "PredictedLabel").AsTensor<string>().ToArray();
        for (int i = 0; i < count; i++) if (predicted[i] == classNames[labels[start + i]]) correct++;
    }
    Console.WriteLine($"  ONNX Runtime alone, {n} test images: accuracy {correct / (double)n:F4}");
}

// ---------------------------------------------------------------- 2. ML.NET + ApplyOnnxModel pipelines
var ml = new MLContext();
var sms = ml.Model.Load(Path.Combine(dir, "sms-bilstm-onnx.zip"), out _);
var test = ml.Data.LoadFromBinary(Path.Combine(dir, "sms-test.idv"));
var metrics = ml.BinaryClassification.Evaluate(sms.Transform(test));
Console.WriteLine($"sms-bilstm-onnx.zip (ApplyOnnxModel, loaded with Microsoft.ML alone): accuracy {metrics.Accuracy:F4}, spam F1 {metrics.F1Score:F4}, AUC {metrics.AreaUnderRocCurve:F4}");
var engine = ml.Model.CreatePredictionEngine<ModelInput, ModelOutput>(sms);
foreach (var text in new[] { "WINNER!! You have been selected to receive a £900 prize reward! Call 09061701461 now", "Ok lar... see you at home tonight" })
{
    var p = engine.Predict(new ModelInput { Message = text });
    Console.WriteLine($"  \"{text}\" -> spam {p.PredictedLabel}, probability {p.Probability:F4}");
}

var loaded = AppDomain.CurrentDomain.GetAssemblies().Select(a => a.GetName().Name ?? "")
    .Where(name => name.StartsWith("MLNetDeep", StringComparison.Ordinal) && name != "MLNetDeep.Samples.OnnxScoring" || name.StartsWith("TorchSharp", StringComparison.Ordinal)).ToList();
Console.WriteLine(loaded.Count == 0 ? "No MLNetDeep or TorchSharp assembly was loaded." : "Loaded: " + string.Join(", ", loaded));
return loaded.Count == 0 ? 0 : 1;

static byte[] ReadIdx(string path, int header)
{
    using var gz = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
    using var all = new MemoryStream();
    gz.CopyTo(all);
    return all.ToArray()[header..];
}

/// <summary>The model's input, as Model Builder would generate it.</summary>
public sealed class ModelInput
{
    public string Message { get; set; } = "";
}

/// <summary>The model's output columns.</summary>
public sealed class ModelOutput
{
    public bool PredictedLabel { get; set; }
    public float Score { get; set; }
    public float Probability { get; set; }
}
