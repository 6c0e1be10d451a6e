// MLNetDeep Fashion-MNIST sample: a convolutional network trained inside an ordinary ML.NET pipeline on the 60 000
// Fashion-MNIST training images, evaluated on the 10 000 test images with ML.NET's multiclass metrics, compared in
// the same run with ML.NET's LightGbm and SdcaMaximumEntropy on the same pixels, saved, reloaded in a fresh
// MLContext and used through a PredictionEngine; the training curves and the confusion matrix are written as PNGs.
//
//   dotnet run -c Release --project samples/MLNetDeep.Samples.FashionMnist [-- --preset small|lenet|vgg|resnet]
//       [--epochs N] [--train-rows N] [--skip-baselines] [--output DIR]
//       [--blocks 2,2,2] [--width 16] [--augmentation none|standard|strong]   (ResNet depth/width, augmentation)
//       [--learning-rate X] [--batch-size N] [--weight-decay X] [--label-smoothing X] [--validation-fraction X]
//   ... -- --export-images DIR [--train-rows N]: writes the first N training images and the 10 000 test images as
//       PNG files, DIR/train/<class>/ and DIR/test/<class>/ (the folder layout `mlnetdeep image-classification` reads).
//
// Data: Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist; `apt-get install dataset-fashion-mnist`).
using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Trainers;
using Microsoft.ML.Trainers.LightGbm;
using MLNetDeep;
using MLNetDeep.TestData;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;

// ---------- Command line ----------
string preset = "small", output = Path.Combine(Directory.GetCurrentDirectory(), "mlnetdeep-fashion-output");
int epochs = 5, trainRows = 60_000, sdcaIterations = 0;
int? batchSize = null;
double? learningRate = null;
double validationFraction = 0.05;
double? weightDecay = null, labelSmoothing = null;
int[]? blocks = null;
int? width = null;
string? augmentation = null;
bool skipBaselines = false;
string? exportImages = null;
for (int i = 0; i < args.Length; i++)
{
    string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
    switch (args[i])
    {
        case "--preset": preset = Value().ToLowerInvariant(); break;
        case "--epochs": epochs = int.Parse(Value(), CultureInfo.InvariantCulture); break;
        case "--train-rows": trainRows = int.Parse(Value(), CultureInfo.InvariantCulture); break;
        case "--output": output = Path.GetFullPath(Value()); break;
        case "--skip-baselines": skipBaselines = true; break;
        case "--export-images": exportImages = Path.GetFullPath(Value()); break;
        // Tuning knobs (defaults per preset below).
        case "--learning-rate": learningRate = double.Parse(Value(), CultureInfo.InvariantCulture); break;
        case "--batch-size": batchSize = int.Parse(Value(), CultureInfo.InvariantCulture); break;
        case "--validation-fraction": validationFraction = double.Parse(Value(), CultureInfo.InvariantCulture); break;
        case "--sdca-iterations": sdcaIterations = int.Parse(Value(), CultureInfo.InvariantCulture); break;
        case "--weight-decay": weightDecay = double.Parse(Value(), CultureInfo.InvariantCulture); break;
        case "--label-smoothing": labelSmoothing = double.Parse(Value(), CultureInfo.InvariantCulture); break;
        // ResNet shape and augmentation.
        case "--blocks": blocks = Value().Split(',').Select(b => int.Parse(b, CultureInfo.InvariantCulture)).ToArray(); break;
        case "--width": width = int.Parse(Value(), CultureInfo.InvariantCulture); break;
        case "--augmentation": augmentation = Value().ToLowerInvariant(); break;
        default:
            Console.Error.WriteLine($"Unknown argument '{args[i]}'. Usage: [--preset small|lenet|vgg|resnet] [--epochs N] [--train-rows N] [--skip-baselines] [--output DIR]"
                + " [--blocks 2,2,2] [--width N] [--augmentation none|standard|strong]"
                + " [--learning-rate X] [--batch-size N] [--weight-decay X] [--label-smoothing X] [--validation-fraction X] [--sdca-iterations N]");
            return 2;
    }
}
if (epochs <= 0 || trainRows <= 0) { Console.Error.WriteLine("--epochs and --train-rows must be positive."); return 2; }
if (exportImages is not null)
{
    var context = new MLContext(seed: 1);
    int written = ExportPng(context, FashionMnist.Train(context, trainRows), Path.Combine(exportImages, "train"))
        + ExportPng(context, FashionMnist.Test(context), Path.Combine(exportImages, "test"));
    Console.WriteLine($"Wrote {written} PNG images under {exportImages} (train: the first {trainRows} training images; test: all 10 000 test images).");
    return 0;
}

// Preset: the layer stack, its peak learning rate for the one-cycle schedule, and its augmentation (null = none
// for these presets; ImageAugmentation.Standard, random flips and 2-pixel shifts, is also the library's default for ResNets).
(CnnArchitecture Architecture, double LearningRate, ImageAugmentation? Augmentation) chosen;
switch (preset)
{
    case "small": chosen = (CnnArchitecture.SmallCnn(), 3e-3, null); break;
    case "lenet": chosen = (CnnArchitecture.LeNet5(), 3e-3, null); break;
    case "vgg": chosen = (CnnArchitecture.Vgg(new[] { (2, 32), (2, 64), (2, 128) }, denseUnits: 256), 3e-3, null); break;
    case "resnet": chosen = (CnnArchitecture.ResNet(blocks ?? new[] { 2, 2, 2 }, width: width ?? 16), 3e-3, ImageAugmentation.Standard); break;
    default: Console.Error.WriteLine($"Unknown preset '{preset}': use small, lenet, vgg or resnet."); return 2;
}
if ((blocks is not null || width is not null) && preset != "resnet") { Console.Error.WriteLine("--blocks and --width apply to --preset resnet."); return 2; }
switch (augmentation)
{
    case null: break;
    case "none": chosen.Augmentation = null; break;
    case "standard": chosen.Augmentation = ImageAugmentation.Standard; break;
    case "strong": chosen.Augmentation = ImageAugmentation.Strong; break;
    default: Console.Error.WriteLine($"Unknown augmentation '{augmentation}': use none, standard or strong."); return 2;
}

Directory.CreateDirectory(output);
var ml = new MLContext(seed: 1);
// ShowProgress draws the epochs on the console; print the library's other messages (data, network, plots).
ml.Log += (_, e) =>
{
    // RawMessage: Message starts with "[Source=..., Kind=...]".
    if (e.RawMessage.StartsWith("MLNetDeep: ", StringComparison.Ordinal) && !e.RawMessage.StartsWith("MLNetDeep: epoch", StringComparison.Ordinal))
        Console.WriteLine("  " + e.RawMessage["MLNetDeep: ".Length..]);
};

var train = FashionMnist.Train(ml, trainRows);
var test = FashionMnist.Test(ml); // all 10 000 test images; untouched until the evaluation
long trainCount = train.GetRowCount() ?? ml.Data.CreateEnumerable<LabelOnly>(train, reuseRowObject: true).LongCount();
Console.WriteLine($"MLNetDeep Fashion-MNIST sample — {trainCount} training images, 10000 test images from {FashionMnist.Directory}; output to {output}");
Console.WriteLine($"Preset '{preset}': {chosen.Architecture}");
Console.WriteLine($"Augmentation: {(chosen.Augmentation is null ? "none" : chosen.Augmentation.ToString())}");
Console.WriteLine();

var board = new List<(string Name, MulticlassClassificationMetrics Metrics, double Seconds, string Note)>();

// ---------- The CNN ----------
var options = new CnnMulticlassTrainer.Options
{
    Architecture = chosen.Architecture,
    NumberOfEpochs = epochs,
    BatchSize = batchSize ?? 128,
    LearningRate = learningRate ?? chosen.LearningRate,
    Schedule = LearningRateSchedule.OneCycle,     // warm up to the peak over 30 % of the batches, then anneal
    ValidationFraction = validationFraction,      // a seeded hold-out of the training images, for the curves
    Augmentation = chosen.Augmentation,
    ShowProgress = true,
};
if (weightDecay is double wd) options.WeightDecay = wd;
if (labelSmoothing is double ls) options.LabelSmoothing = ls;
var pipeline = ml.MulticlassClassification.Trainers.Cnn(options)
    .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedClass", "PredictedLabel"));
var watch = Stopwatch.StartNew();
var model = pipeline.Fit(train);
double cnnSeconds = watch.Elapsed.TotalSeconds;
var cnn = model.OfType<IPredictionTransformer<DeepMulticlassModelParameters>>().Single().Model;
var history = cnn.History;
double perEpoch = history.Average(h => h.Seconds);

var cnnMetrics = ml.MulticlassClassification.Evaluate(model.Transform(test));
string cnnName = $"MLNetDeep CNN ({preset})";
board.Add((cnnName, cnnMetrics, cnnSeconds, $"{history.Count} epochs, {perEpoch:F1} s/epoch, {cnn.ParameterCount} parameters"));
Console.WriteLine();
Console.WriteLine($"{cnnName}: test accuracy {cnnMetrics.MicroAccuracy:F4}, macro accuracy {cnnMetrics.MacroAccuracy:F4}, log-loss {cnnMetrics.LogLoss:F4}"
    + $" — trained in {cnnSeconds:F0} s ({perEpoch:F1} s per epoch: {string.Join(", ", history.Select(h => h.Seconds.ToString("F1")))})");
Console.WriteLine(cnnMetrics.ConfusionMatrix.GetFormattedConfusionTable());

// ---------- ML.NET baselines on the same 784 pixels ----------
if (!skipBaselines)
{
    var cached = ml.Data.Cache(train); // both read the data many times
    var sdcaOptions = new SdcaMaximumEntropyMulticlassTrainer.Options();
    if (sdcaIterations > 0) sdcaOptions.MaximumNumberOfIterations = sdcaIterations;
    foreach (var (name, trainer, note) in new (string, IEstimator<ITransformer>, string)[]
    {
        ("LightGbm", ml.MulticlassClassification.Trainers.LightGbm(new LightGbmMulticlassTrainer.Options()), "defaults (100 boosting iterations)"),
        ("SdcaMaximumEntropy", ml.MulticlassClassification.Trainers.SdcaMaximumEntropy(sdcaOptions),
            sdcaIterations > 0 ? $"at most {sdcaIterations} passes" : "defaults (passes chosen by SDCA)"),
    })
    {
        Console.WriteLine($"Training {name} on the same {trainCount} images ...");
        watch.Restart();
        var baseline = trainer.Fit(cached);
        double seconds = watch.Elapsed.TotalSeconds;
        var m = ml.MulticlassClassification.Evaluate(baseline.Transform(test));
        board.Add((name, m, seconds, note));
        Console.WriteLine($"  {name}: test accuracy {m.MicroAccuracy:F4}, trained in {seconds:F0} s");
    }
}

Console.WriteLine();
Console.WriteLine($"Leaderboard — Fashion-MNIST, 10000 test images (training: {trainCount} images; the CNN holds out {validationFraction:P0} of them for validation)");
Console.WriteLine($"  {"trainer",-24}{"accuracy",10}{"macro-acc",11}{"log-loss",10}{"train s",9}  notes");
foreach (var r in board.OrderByDescending(r => r.Metrics.MicroAccuracy))
    Console.WriteLine($"  {r.Name,-24}{r.Metrics.MicroAccuracy,10:F4}{r.Metrics.MacroAccuracy,11:F4}{r.Metrics.LogLoss,10:F4}{r.Seconds,9:F0}  {r.Note}");
Console.WriteLine();

// ---------- Save, reload in a fresh MLContext, predict one test image ----------
string modelPath = Path.Combine(output, $"fashion-cnn-{preset}.zip");
ml.Model.Save(model, train.Schema, modelPath);
var fresh = new MLContext();
var loaded = fresh.Model.Load(modelPath, out _);
var engine = fresh.Model.CreatePredictionEngine<FashionImage, FashionPrediction>(loaded);
var firstTest = ml.Data.CreateEnumerable<FashionTestRow>(test, reuseRowObject: false).First();
var prediction = engine.Predict(new FashionImage { Features = firstTest.Features });
Console.WriteLine($"Saved {Path.GetFileName(modelPath)} ({new FileInfo(modelPath).Length / 1024} KiB); reloaded in a new MLContext, test image #0: "
    + $"predicted '{prediction.PredictedClass}' (probability {prediction.Score.Max():F3}), truth '{FashionMnist.ClassNames[firstTest.Label - 1]}'");

// ---------- Plots ----------
string curves = Path.Combine(output, "training-curves.png"), confusion = Path.Combine(output, "confusion-matrix.png");
DeepPlots.SaveTrainingCurves(history, curves, $"Fashion-MNIST, CNN '{preset}' ({trainCount} images): test accuracy {cnnMetrics.MicroAccuracy:F4}");
DeepPlots.SaveConfusionMatrix(cnnMetrics.ConfusionMatrix, confusion, FashionMnist.ClassNames, $"CNN '{preset}' on the Fashion-MNIST test images");
Console.WriteLine($"Wrote {curves} and {confusion}");
return 0;

// One 8-bit grey PNG per image, in a folder per class ('/' in a class name becomes '-').
static int ExportPng(MLContext ml, IDataView images, string folder)
{
    var names = default(VBuffer<ReadOnlyMemory<char>>);
    images.Schema["Label"].GetKeyValues(ref names);
    var classes = names.DenseValues().Select(n => n.ToString().Replace('/', '-')).ToArray();
    int n = 0;
    using var cursor = images.GetRowCursor(images.Schema);
    var pixels = cursor.GetGetter<VBuffer<float>>(images.Schema["Features"]);
    var label = cursor.GetGetter<uint>(images.Schema["Label"]);
    var buffer = default(VBuffer<float>);
    uint key = 0;
    while (cursor.MoveNext())
    {
        pixels(ref buffer);
        label(ref key);
        string dir = Path.Combine(folder, classes[key - 1]);
        Directory.CreateDirectory(dir);
        using var bitmap = new SkiaSharp.SKBitmap(new SkiaSharp.SKImageInfo(28, 28, SkiaSharp.SKColorType.Gray8, SkiaSharp.SKAlphaType.Opaque));
        var bytes = buffer.DenseValues().Select(v => (byte)Math.Clamp(Math.Round(v * 255), 0, 255)).ToArray();
        System.Runtime.InteropServices.Marshal.Copy(bytes, 0, bitmap.GetPixels(), bytes.Length);
        using var data = bitmap.Encode(SkiaSharp.SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(Path.Combine(dir, $"{n++:D5}.png"), data.ToArray());
    }
    return n;
}

sealed class LabelOnly { public uint Label { get; set; } }

/// <summary>What the PredictionEngine reads: the 28×28 grey pixels in [0, 1], as IdxImages loads them.</summary>
sealed class FashionImage
{
    [VectorType(1, 28, 28)] public float[] Features { get; set; } = Array.Empty<float>();
}

sealed class FashionTestRow
{
    public uint Label { get; set; } // key: 1-based class index
    [VectorType(1, 28, 28)] public float[] Features { get; set; } = Array.Empty<float>();
}

sealed class FashionPrediction
{
    public string PredictedClass { get; set; } = "";
    public float[] Score { get; set; } = Array.Empty<float>();
}
