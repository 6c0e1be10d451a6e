// --onnx: scoring speed of exported models. For SmallCnn (Fashion-MNIST), an LSTM and a Transformer (SMS word keys),
// in the same run: ONNX Runtime batch scoring against MLNetDeep's Transform, single-row latency of ONNX Runtime and of
// the ApplyOnnxModel pipeline's PredictionEngine against MLNetDeep's PredictionEngine, and the file sizes.
// Training is short (a few hundred batches): only scoring is measured, and it does not depend on the weights.
using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using MLNetDeep.TestData;
using TorchSharp;

using static MLNetDeep.Benchmarks.TokenBench;

namespace MLNetDeep.Benchmarks;

internal static class OnnxBenchmark
{
    public const string Flag = "--onnx";
    private const int Batch = 256;

    public static int Run(string[] args)
    {
        int calls = 2000, repeats = 5, testRows = 4000;
        for (int i = 1; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--calls": calls = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--repeats": repeats = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--rows": testRows = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "-h":
                case "--help":
                    Console.WriteLine("usage: ... --onnx [--rows N (4000) --repeats N (5) --calls N (2000)]");
                    return 0;
                default:
                    Console.Error.WriteLine($"unknown argument '{args[i]}' (try --onnx --help)");
                    return 2;
            }
        }
        using (var probe = torch.zeros(1)) { }
        Console.WriteLine("MLNetDeep benchmark: ONNX Runtime vs MLNetDeep scoring, the same trained networks and rows");
        Console.WriteLine($"  {DateTime.Now:yyyy-MM-dd HH:mm}, {Environment.ProcessorCount} logical cores, torch threads {torch.get_num_threads()}, "
            + $"ONNX Runtime {OrtEnv.Instance().GetVersionString()} (default session options)");
        Console.WriteLine($"  batch scoring: {testRows} test rows, batches of {Batch}, median of {repeats}; latency: {calls} calls after 100 warm-up calls");
        Console.WriteLine();
        var ml = new MLContext(seed: 1);
        var dir = Path.Combine(Path.GetTempPath(), "mlnetdeep-onnx-bench");
        Directory.CreateDirectory(dir);

        // ------------------------------------------------------------------ SmallCnn on Fashion-MNIST
        {
            var model = ml.MulticlassClassification.Trainers.Cnn(new CnnMulticlassTrainer.Options { Architecture = CnnArchitecture.SmallCnn(), NumberOfEpochs = 1 })
                .Fit(FashionMnist.Train(ml, 3000));
            var test = ml.Data.Cache(FashionMnist.Test(ml, testRows));
            var pixels = Rows<float>(test, "Features");
            var images = pixels.Select(p => new Image { Features = p }).ToArray();
            Measure(ml, "SmallCnn (Fashion-MNIST 28x28)", model, test, dir,
                start => DenseBatch("Features", pixels, start),
                i => DenseBatch("Features", pixels, i % pixels.Length, 1),
                scorer => Engine<Image, ImagePrediction>(ml, scorer, images), repeats, calls);
        }

        // ------------------------------------------------------------------ LSTM and Transformer on SMS word keys
        var sms = RealData.Sms(ml);
        var messages = ml.Data.CreateEnumerable<SmsInput>(sms, reuseRowObject: false).ToArray();
        var tokenizer = TokenBench.SmsTokens(ml).Fit(sms);
        var tokens = ml.Data.Cache(tokenizer.Transform(sms));
        var ids = Rows<uint>(tokens, "Tokens").Select(r => r.Select(k => k == 0 ? 1L : k + 1L).ToArray()).ToArray();
        var trainers = new (string Name, IEstimator<ITransformer> Trainer)[]
        {
            ("LSTM 1x128, embedding 100 (SMS word keys)", ml.BinaryClassification.Trainers.Rnn(new RnnBinaryTrainer.Options { FeatureColumnName = "Tokens", NumberOfEpochs = 1 })),
            ("Transformer 2x128, 4 heads (SMS word keys)", ml.BinaryClassification.Trainers.Transformer(new TransformerBinaryTrainer.Options { FeatureColumnName = "Tokens", NumberOfEpochs = 1 })),
        };
        foreach (var (name, trainer) in trainers)
        {
            var model = tokenizer.Append(trainer.Fit(tokens));
            var step = ((IEnumerable<ITransformer>)model).Last();
            Measure(ml, name, step, tokens, dir,
                start => TokenBatch("Tokens", ids, start, Batch),
                i => TokenBatch("Tokens", ids, i % ids.Length, 1),
                scorer => Engine<SmsInput, SmsPrediction>(ml, scorer, messages), repeats, calls, wholePipeline: model, pipelineInput: sms);
        }
        return 0;
    }

    /// <summary>
    /// One case: batch scoring (MLNetDeep Transform of <paramref name="test"/> vs ONNX Runtime on the same rows in batches),
    /// single-row latency (MLNetDeep PredictionEngine, the ApplyOnnxModel pipeline's PredictionEngine, ONNX Runtime alone)
    /// and file sizes.
    /// </summary>
    private static void Measure(MLContext ml, string name, ITransformer step, IDataView test, string dir,
        Func<int, NamedOnnxValue> batchAt, Func<int, NamedOnnxValue> rowAt, Func<ITransformer, Action<int>> engine,
        int repeats, int calls, ITransformer? wholePipeline = null, IDataView? pipelineInput = null)
    {
        Console.WriteLine(name);
        string onnxPath = Path.Combine(dir, "model.onnx"), zipPath = Path.Combine(dir, "model.zip"), onnxZipPath = Path.Combine(dir, "model-onnx.zip");
        ml.Model.ExportToOnnx(step, onnxPath);
        var pipeline = wholePipeline ?? step;
        var inputData = pipelineInput ?? test;
        ml.Model.Save(pipeline, inputData.Schema, zipPath);
        var onnxPipeline = ml.Model.ConvertToOnnxPipeline(pipeline, inputData);
        ml.Model.Save(onnxPipeline, inputData.Schema, onnxZipPath);
        Console.WriteLine($"  files: .onnx {new FileInfo(onnxPath).Length / 1024.0:F0} KiB; MLNetDeep model zip {new FileInfo(zipPath).Length / 1024.0:F0} KiB; "
            + $"ApplyOnnxModel pipeline zip {new FileInfo(onnxZipPath).Length / 1024.0:F0} KiB");

        long rows = 0;
        using (var c = test.GetRowCursor(Array.Empty<DataViewSchema.Column>())) while (c.MoveNext()) rows++;
        using var session = new InferenceSession(onnxPath);
        var deepTimes = new List<double>();
        var ortTimes = new List<double>();
        for (int r = 0; r < repeats + 1; r++)
        {
            var watch = Stopwatch.StartNew();
            var scored = step.Transform(test);
            var score = scored.Schema["Score"];
            using (var cursor = scored.GetRowCursor(new[] { score }))
            {
                if (score.Type is VectorDataViewType)
                {
                    var get = cursor.GetGetter<VBuffer<float>>(score);
                    VBuffer<float> v = default;
                    while (cursor.MoveNext()) get(ref v);
                }
                else
                {
                    var get = cursor.GetGetter<float>(score);
                    float v = 0;
                    while (cursor.MoveNext()) get(ref v);
                }
            }
            double deep = watch.Elapsed.TotalSeconds;
            watch.Restart();
            for (int start = 0; start < rows; start += Batch)
            {
                using var results = session.Run(new[] { batchAt(start) });
            }
            double ort = watch.Elapsed.TotalSeconds;
            if (r == 0) continue; // warm-up
            deepTimes.Add(deep);
            ortTimes.Add(ort);
        }
        double deepMedian = Bench.Median(deepTimes), ortMedian = Bench.Median(ortTimes);
        Console.WriteLine($"  batch scoring: MLNetDeep Transform {rows / deepMedian:F0} rows/s, ONNX Runtime {rows / ortMedian:F0} rows/s  => ONNX Runtime / MLNetDeep = {deepMedian / ortMedian:F2}x");

        var deepLatency = Bench.Latencies(engine(pipeline), calls);
        var pipelineLatency = Bench.Latencies(engine(onnxPipeline), calls);
        var ortLatency = Bench.Latencies(i => { using var results = session.Run(new[] { rowAt(i) }); }, calls);
        string P(double[] t) => $"p50 {Bench.Percentile(t, 0.5):F3} ms, p99 {Bench.Percentile(t, 0.99):F3} ms";
        Console.WriteLine($"  one row: MLNetDeep PredictionEngine {P(deepLatency)}");
        Console.WriteLine($"           ApplyOnnxModel pipeline PredictionEngine (no MLNetDeep) {P(pipelineLatency)}  => {Bench.Percentile(deepLatency, 0.5) / Bench.Percentile(pipelineLatency, 0.5):F2}x MLNetDeep's speed");
        Console.WriteLine($"           ONNX Runtime session.Run on the network's input {P(ortLatency)}");
        Console.WriteLine();
    }

    /// <summary>A PredictionEngine call on input i (cycling through <paramref name="inputs"/>), reusing one output object.</summary>
    private static Action<int> Engine<TIn, TOut>(MLContext ml, ITransformer model, TIn[] inputs) where TIn : class where TOut : class, new()
    {
        var engine = ml.Model.CreatePredictionEngine<TIn, TOut>(model);
        var output = new TOut();
        return i => engine.Predict(inputs[i % inputs.Length], ref output);
    }

    private static T[][] Rows<T>(IDataView data, string column)
    {
        var col = data.Schema[column];
        var rows = new List<T[]>();
        using var cursor = data.GetRowCursor(new[] { col });
        var get = cursor.GetGetter<VBuffer<T>>(col);
        VBuffer<T> v = default;
        while (cursor.MoveNext())
        {
            get(ref v);
            rows.Add(v.DenseValues().ToArray());
        }
        return rows.ToArray();
    }

    private static NamedOnnxValue DenseBatch(string name, float[][] rows, int start, int count = Batch)
    {
        count = Math.Min(count, rows.Length - start);
        int width = rows[0].Length;
        var values = new float[count * width];
        for (int i = 0; i < count; i++) rows[start + i].CopyTo(values, i * width);
        return NamedOnnxValue.CreateFromTensor(name, new DenseTensor<float>(values, new[] { count, width }));
    }

    private static NamedOnnxValue TokenBatch(string name, long[][] rows, int start, int count)
    {
        count = Math.Min(count, rows.Length - start);
        int t = 1;
        for (int i = 0; i < count; i++) t = Math.Max(t, rows[start + i].Length);
        var values = new long[count * t];
        for (int i = 0; i < count; i++) rows[start + i].CopyTo(values, i * t);
        return NamedOnnxValue.CreateFromTensor(name, new DenseTensor<long>(values, new[] { count, t }));
    }

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
