// ONNX sample, part 1 (with MLNetDeep): trains a CNN on Fashion-MNIST and a bidirectional LSTM on SMS spam word keys,
// exports each network to .onnx (for any ONNX Runtime host), and swaps the MLNetDeep step of each fitted pipeline for
// ML.NET's ApplyOnnxModel (a model zip that loads without MLNetDeep or TorchSharp). Part 2,
// samples/MLNetDeep.Samples.OnnxScoring, scores both with no MLNetDeep at all. samples/run-onnx.sh runs the two.
//
//   dotnet run -c Release --project samples/MLNetDeep.Samples.Onnx [-- --output DIR --epochs 3]
using System.Diagnostics;
using Microsoft.ML;
using MLNetDeep;
using MLNetDeep.TestData;

string output = Arg("--output", Path.Combine(Environment.CurrentDirectory, "mlnetdeep-onnx"));
int epochs = int.Parse(Arg("--epochs", "3"));
Directory.CreateDirectory(output);
var ml = new MLContext(seed: 1);

// ---------------------------------------------------------------- Fashion-MNIST, LeNet-5
var watch = Stopwatch.StartNew();
var train = FashionMnist.Train(ml);
var test = FashionMnist.Test(ml);
var cnn = ml.MulticlassClassification.Trainers.Cnn(new CnnMulticlassTrainer.Options { Architecture = CnnArchitecture.LeNet5(), NumberOfEpochs = epochs }).Fit(train);
var cnnMetrics = ml.MulticlassClassification.Evaluate(cnn.Transform(test));
Console.WriteLine($"Fashion-MNIST LeNet-5, {epochs} epochs ({watch.Elapsed.TotalSeconds:F0} s): MLNetDeep test accuracy {cnnMetrics.MicroAccuracy:F4}");
var cnnInfo = ml.Model.ExportToOnnx(cnn, Path.Combine(output, "fashion-lenet5.onnx"));
Console.WriteLine($"  exported {Path.Combine(output, "fashion-lenet5.onnx")}: input '{cnnInfo.InputName}' [batch, {cnnInfo.InputSize}], outputs {string.Join(", ", cnnInfo.OutputNames)}");
var cnnOnnx = ml.Model.ConvertToOnnxPipeline(cnn, train);
ml.Model.Save(cnnOnnx, train.Schema, Path.Combine(output, "fashion-lenet5-onnx.zip"));
Console.WriteLine($"  ApplyOnnxModel pipeline: test accuracy {ml.MulticlassClassification.Evaluate(cnnOnnx.Transform(test)).MicroAccuracy:F4}, saved fashion-lenet5-onnx.zip");

// ---------------------------------------------------------------- SMS spam, bidirectional LSTM on word keys
watch.Restart();
var sms = ml.Data.TrainTestSplit(RealData.Sms(ml), 0.2, seed: 1);
var lstm = ml.Transforms.Text.NormalizeText("Normalized", nameof(SmsRow.Message), keepPunctuations: false)
    .Append(ml.Transforms.Text.TokenizeIntoWords("Tokens", "Normalized"))
    .Append(ml.Transforms.Conversion.MapValueToKey("Tokens"))
    .Append(ml.BinaryClassification.Trainers.Rnn(new RnnBinaryTrainer.Options
    {
        FeatureColumnName = "Tokens", Bidirectional = true, HiddenSize = 64, NumberOfEpochs = 4, TokenDropout = 0.1,
    })).Fit(sms.TrainSet);
var lstmMetrics = ml.BinaryClassification.Evaluate(lstm.Transform(sms.TestSet));
Console.WriteLine($"SMS spam BiLSTM ({watch.Elapsed.TotalSeconds:F0} s): MLNetDeep accuracy {lstmMetrics.Accuracy:F4}, spam F1 {lstmMetrics.F1Score:F4}");
var lstmInfo = ml.Model.ExportToOnnx(lstm, Path.Combine(output, "sms-bilstm.onnx"));
Console.WriteLine($"  exported sms-bilstm.onnx: token ids [batch, tokens] (padding {lstmInfo.PaddingId}, unknown {lstmInfo.UnknownId}, key k = id k + 1), outputs {string.Join(", ", lstmInfo.OutputNames)}");
var lstmOnnx = ml.Model.ConvertToOnnxPipeline(lstm, sms.TrainSet);
ml.Model.Save(lstmOnnx, sms.TrainSet.Schema, Path.Combine(output, "sms-bilstm-onnx.zip"));
var onnxMetrics = ml.BinaryClassification.Evaluate(lstmOnnx.Transform(sms.TestSet));
Console.WriteLine($"  ApplyOnnxModel pipeline: accuracy {onnxMetrics.Accuracy:F4}, spam F1 {onnxMetrics.F1Score:F4}, saved sms-bilstm-onnx.zip");
// The held-out messages for part 2, as ML.NET's binary format (readable with Microsoft.ML alone).
using (var f = File.Create(Path.Combine(output, "sms-test.idv"))) ml.Data.SaveAsBinary(sms.TestSet, f);
Console.WriteLine($"Wrote {output}. Next: dotnet run -c Release --project samples/MLNetDeep.Samples.OnnxScoring -- {output}");
return 0;

string Arg(string name, string fallback)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
}
