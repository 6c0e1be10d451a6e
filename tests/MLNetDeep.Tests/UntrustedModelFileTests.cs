using System.Buffers.Binary;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using Microsoft.ML;
using Microsoft.ML.OnnxRuntime;
using MLNetDeep.TestData;
using Xunit;
using Xunit.Abstractions;

namespace MLNetDeep.Tests;

/// <summary>
/// Model zips, checkpoints and exported ONNX files are untrusted input (issue 11). Truncated, with bytes flipped
/// anywhere, with a mutated model description or a crafted weights blob, loading ends in a managed exception — or, for
/// bytes no check covers (zip timestamps, a training-history value), in a model that loads and scores — never in a
/// crash, a hang, or an allocation the file's size does not justify. Each test prints how many damaged files it tried.
/// </summary>
public sealed class UntrustedModelFileTests : IClassFixture<UntrustedModelFileTests.TrainedModels>
{
    private readonly ITestOutputHelper _out;
    private readonly TrainedModels _models;

    public UntrustedModelFileTests(ITestOutputHelper output, TrainedModels models)
    {
        _out = output;
        _models = models;
    }

    /// <summary>A saved model, a few rows to score and the predictions of the undamaged model on them.</summary>
    public sealed record SavedModel(string Name, byte[] Zip, IDataView Rows, string[] Expected)
    {
        public override string ToString() => Name;
    }

    /// <summary>One small real model per family, trained once for the whole class.</summary>
    public sealed class TrainedModels
    {
        public IReadOnlyList<SavedModel> All { get; }

        public TrainedModels()
        {
            var ml = new MLContext(seed: 11);
            var list = new List<SavedModel>();
            var bike = TestUtil.BikeTrainSubset(ml, 1000);
            list.Add(Save(ml, "MLP regressor (bike)", TestUtil.BikeMlp(ml, new MlpRegressionTrainer.Options { HiddenLayers = new[] { 16 }, BatchNorm = true, NumberOfEpochs = 2 }).Fit(bike),
                bike, ml.Data.TakeRows(RealData.BikeTest(ml), 10)));

            var fashion = FashionMnist.Train(ml, 300);
            var cnn = ml.MulticlassClassification.Trainers.Cnn(new CnnMulticlassTrainer.Options
            {
                Architecture = CnnArchitecture.Custom(CnnLayer.Conv(4, 3), CnnLayer.BatchNorm(), CnnLayer.Relu(), CnnLayer.MaxPool(2), CnnLayer.Dense(16), CnnLayer.Relu()),
                NumberOfEpochs = 1,
            }).Fit(fashion);
            list.Add(Save(ml, "CNN (Fashion-MNIST)", cnn, fashion, FashionMnist.Test(ml, 10)));

            var sms = ml.Data.TakeRows(RealData.Sms(ml), 600);
            var gru = Pipelines.SmsTokens(ml).Append(ml.BinaryClassification.Trainers.Rnn(new RnnBinaryTrainer.Options
            {
                FeatureColumnName = "Tokens", Cell = RecurrentCell.Gru, HiddenSize = 8, EmbeddingSize = 8, MaximumSequenceLength = 32, NumberOfEpochs = 1,
            })).Fit(sms);
            list.Add(Save(ml, "GRU (SMS word keys)", gru, sms, ml.Data.TakeRows(sms, 10)));

            // Sub-word keys from a WordPiece vocabulary of the data's frequent words, so the saved tokenizer is fuzzed too.
            string vocabulary = Path.Combine(TestUtil.TempDir(), "vocab.txt");
            var words = ml.Data.CreateEnumerable<SmsRow>(sms, reuseRowObject: false)
                .SelectMany(r => r.Message.ToLowerInvariant().Split(' ', '.', ',', '!', '?')).Where(w => w.Length > 0 && w.All(char.IsLetter))
                .GroupBy(w => w).OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal).Take(300).Select(g => g.Key);
            File.WriteAllLines(vocabulary, new[] { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]" }.Concat(words));
            var transformer = ml.Transforms.Text.TokenizeIntoSubwords("Tokens", nameof(SmsRow.Message), SubwordTokenizer.WordPiece(vocabulary))
                .Append(ml.BinaryClassification.Trainers.Transformer(new TransformerBinaryTrainer.Options
                {
                    FeatureColumnName = "Tokens", NumberOfLayers = 1, ModelWidth = 16, NumberOfHeads = 2, FeedForwardWidth = 32, MaximumSequenceLength = 32, NumberOfEpochs = 1,
                })).Fit(sms);
            list.Add(Save(ml, "Transformer (SMS sub-word keys)", transformer, sms, ml.Data.TakeRows(sms, 10)));

            var windows = Sunspots.Windows(ml);
            var forecaster = ml.Forecasting.Trainers.Mlp(new MlpForecaster.Options { HiddenLayers = new[] { 16 }, NumberOfEpochs = 3 }).Fit(windows.Train);
            list.Add(Save(ml, "MLP forecaster (sunspots)", forecaster, windows.Train, windows.Test!));
            All = list;
        }

        private static SavedModel Save(MLContext ml, string name, ITransformer model, IDataView train, IDataView rows)
        {
            var ms = new MemoryStream();
            ml.Model.Save(model, train.Schema, ms);
            return new SavedModel(name, ms.ToArray(), rows, PredictionDump.Lines(model.Transform(rows)).ToArray());
        }
    }

    // ------------------------------------------------------------------ outcomes

    /// <summary>What loading the damaged files gave: refusals by exception type, and models that loaded.</summary>
    private sealed class Outcomes
    {
        public readonly SortedDictionary<string, int> Refused = new(StringComparer.Ordinal), ScoringFailed = new(StringComparer.Ordinal);
        public int Files, WithOurMessage;
        public readonly List<string> LoadedSame = new(), LoadedDifferent = new(), Failures = new();

        public void Refuse(Exception e, bool atScoring = false)
        {
            var counts = atScoring ? ScoringFailed : Refused;
            string key = Describe(e);
            counts[key] = counts.GetValueOrDefault(key) + 1;
            if (!atScoring && MLNetDeepMessage(e) is { } ours)
            {
                WithOurMessage++;
                if (e.GetBaseException() != ours) Failures.Add($"MLNetDeep's message is not the innermost exception: {e}");
            }
            if (IsFatal(e)) Failures.Add($"fatal exception: {e}");
        }

        private static string List(SortedDictionary<string, int> counts) => string.Join(", ", counts.Select(kv => $"{kv.Key} ×{kv.Value}"));

        public override string ToString() => $"{Files} damaged files: {Refused.Values.Sum()} refused ({WithOurMessage} with MLNetDeep's message)"
            + (LoadedSame.Count > 0 ? $", {LoadedSame.Count} loaded with unchanged predictions" : "")
            + (LoadedDifferent.Count > 0 ? $", {LoadedDifferent.Count} loaded with other predictions" : "")
            + (ScoringFailed.Count > 0 ? $", {ScoringFailed.Values.Sum()} loaded but failed to score ({List(ScoringFailed)})" : "")
            + "; refused with " + List(Refused);
    }

    /// <summary>The outer exception type, and the innermost one when it differs (ML.NET wraps what loaders throw).</summary>
    private static string Describe(Exception e)
    {
        var inner = e;
        while (inner.InnerException is not null) inner = inner.InnerException;
        return inner == e ? e.GetType().Name : $"{e.GetType().Name} → {inner.GetType().Name}";
    }

    private static bool IsFatal(Exception e)
    {
        for (var x = e; x is not null; x = x.InnerException)
            if (x is OutOfMemoryException or InsufficientExecutionStackException or AccessViolationException or System.Runtime.InteropServices.SEHException) return true;
        return false;
    }

    /// <summary>The first exception in the chain in which MLNetDeep says what is wrong with the file, or null.</summary>
    private static Exception? MLNetDeepMessage(Exception e)
    {
        for (var x = e; x is not null; x = x.InnerException)
            if (x is InvalidDataException && (x.Message.StartsWith("MLNetDeep ", StringComparison.Ordinal) || x.Message.StartsWith("This model ", StringComparison.Ordinal)))
                return x;
        return null;
    }

    /// <summary>Runs <paramref name="action"/> on another thread; fails the test if it has not ended within a minute (a hang).</summary>
    private static T WithinAMinute<T>(Func<T> action, string what)
    {
        var task = Task.Run(action);
        Assert.True(task.Wait(TimeSpan.FromMinutes(1)), $"{what}: no answer within a minute");
        return task.Result;
    }

    private readonly MLContext _ml = new(seed: 1);

    /// <summary>Loads a (damaged) zip and, if it loads, scores the rows with it; records what happened.</summary>
    private void LoadModel(SavedModel model, byte[] zip, Outcomes outcomes, string what)
    {
        outcomes.Files++;
        WithinAMinute(() =>
        {
            ITransformer loaded;
            try
            {
                loaded = _ml.Model.Load(new MemoryStream(zip), out _);
            }
            catch (Exception e)
            {
                outcomes.Refuse(e);
                return 0;
            }
            try
            {
                if (PredictionDump.Lines(loaded.Transform(model.Rows)).SequenceEqual(model.Expected)) outcomes.LoadedSame.Add(what);
                else outcomes.LoadedDifferent.Add(what);
            }
            catch (Exception e)
            {
                outcomes.Refuse(e, atScoring: true);
            }
            return 0;
        }, $"{model.Name}, {what}");
    }

    private void Report(string test, IEnumerable<(string Name, Outcomes Outcomes)> results)
    {
        int total = 0;
        foreach (var (name, o) in results)
        {
            _out.WriteLine($"{test} — {name}: {o}");
            total += o.Files;
            Assert.True(o.Failures.Count == 0, string.Join("\n", o.Failures));
        }
        _out.WriteLine($"{test}: {total} damaged files in all");
    }

    // ------------------------------------------------------------------ the zip

    /// <summary>The entries of a zip in order, with their content.</summary>
    private static List<(string Name, byte[] Content)> Entries(byte[] zip)
    {
        using var archive = new ZipArchive(new MemoryStream(zip), ZipArchiveMode.Read);
        return archive.Entries.Select(e =>
        {
            using var s = e.Open();
            var ms = new MemoryStream();
            s.CopyTo(ms);
            return (e.FullName, ms.ToArray());
        }).ToList();
    }

    /// <summary>The zip written again with <paramref name="replace"/>'s entries changed (valid CRCs: the change reaches the loaders).</summary>
    private static byte[] Rezip(byte[] zip, IReadOnlyDictionary<string, byte[]> replace)
    {
        var ms = new MemoryStream();
        using (var archive = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
            foreach (var (name, content) in Entries(zip))
            {
                using var s = archive.CreateEntry(name, CompressionLevel.Fastest).Open();
                s.Write(replace.TryGetValue(name, out var r) ? r : content);
            }
        return ms.ToArray();
    }

    /// <summary>Byte ranges of a zip: each entry's stored data, its local header, the central directory.</summary>
    private sealed record ZipLayout(Dictionary<string, (int Start, int Length)> Data, List<(int Start, int Length)> LocalHeaders, (int Start, int Length) CentralDirectory);

    private static ZipLayout Layout(byte[] zip)
    {
        int eocd = zip.Length - 22;
        while (BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(eocd)) != 0x06054b50) eocd--;
        int count = BinaryPrimitives.ReadUInt16LittleEndian(zip.AsSpan(eocd + 10));
        int cdSize = (int)BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(eocd + 12));
        int cd = (int)BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(eocd + 16));
        var data = new Dictionary<string, (int, int)>();
        var locals = new List<(int, int)>();
        for (int i = 0, at = cd; i < count; i++)
        {
            int compressed = (int)BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(at + 20));
            int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(zip.AsSpan(at + 28));
            int extra = BinaryPrimitives.ReadUInt16LittleEndian(zip.AsSpan(at + 30));
            int comment = BinaryPrimitives.ReadUInt16LittleEndian(zip.AsSpan(at + 32));
            int local = (int)BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(at + 42));
            string name = Encoding.UTF8.GetString(zip, at + 46, nameLength);
            int header = 30 + BinaryPrimitives.ReadUInt16LittleEndian(zip.AsSpan(local + 26)) + BinaryPrimitives.ReadUInt16LittleEndian(zip.AsSpan(local + 28));
            locals.Add((local, header));
            data[name] = (local + header, compressed);
            at += 46 + nameLength + extra + comment;
        }
        return new ZipLayout(data, locals, (cd, zip.Length - cd));
    }

    /// <summary>The zip entries of the MLNetDeep model: its description (Model.key) and weights.</summary>
    private static (string Header, string Weights) DeepEntries(byte[] zip)
    {
        string weights = Entries(zip).Select(e => e.Name).Single(n => n.EndsWith("Weights.bin", StringComparison.Ordinal));
        return (weights[..^"Weights.bin".Length] + "Model.key", weights);
    }

    /// <summary><paramref name="count"/> offsets spread evenly over [start, start + length).</summary>
    private static IEnumerable<int> Spread(int start, int length, int count) =>
        Enumerable.Range(0, Math.Min(count, length)).Select(i => start + (int)((long)i * length / Math.Min(count, length))).Distinct();

    // ------------------------------------------------------------------ truncation and flipped bytes

    [Fact]
    public void TruncatedModelZips_AreRefused_WithAManagedException()
    {
        var results = new List<(string, Outcomes)>();
        foreach (var model in _models.All)
        {
            var o = new Outcomes();
            int n = model.Zip.Length;
            var lengths = Spread(0, n, 50).Concat(new[] { 1, 4, 22, n - 1, n - 2, n - 21, n - 22, n - 23 }).Where(l => l >= 0 && l < n).Distinct();
            foreach (int length in lengths)
                LoadModel(model, model.Zip.AsSpan(0, length).ToArray(), o, $"truncated to {length} bytes");
            Assert.True(o.LoadedSame.Count + o.LoadedDifferent.Count + o.ScoringFailed.Count == 0, $"{model.Name}: a truncated zip loaded");
            results.Add((model.Name, o));
        }
        Report(nameof(TruncatedModelZips_AreRefused_WithAManagedException), results);
    }

    [Fact]
    public void FlippedBytes_AnywhereInTheZip_AreRefused_OrLeaveThePredictionsUnchanged()
    {
        Assert.True(ZipChecksums.Available, "MLNetDeep cannot reach the archive of ML.NET's repository reader to check the entries' CRC-32");
        var results = new List<(string, Outcomes)>();
        var random = new Random(7);
        foreach (var model in _models.All)
        {
            var o = new Outcomes();
            var layout = Layout(model.Zip);
            var (header, weights) = DeepEntries(model.Zip);
            var offsets = Spread(0, model.Zip.Length, 60)
                .Concat(Spread(layout.Data[weights].Start, layout.Data[weights].Length, 30))
                .Concat(Spread(layout.Data[header].Start, layout.Data[header].Length, 30))
                .Concat(Spread(layout.CentralDirectory.Start, layout.CentralDirectory.Length, 30))
                .Concat(layout.LocalHeaders.SelectMany(h => Spread(h.Start, h.Length, 2)))
                .Distinct().ToList();
            foreach (int at in offsets)
            {
                var copy = (byte[])model.Zip.Clone();
                copy[at] ^= (byte)(1 << random.Next(8));
                string where = layout.Data.Where(d => at >= d.Value.Start && at < d.Value.Start + d.Value.Length).Select(d => "in " + d.Key).FirstOrDefault()
                    ?? (at >= layout.CentralDirectory.Start ? "in the central directory" : "in a local header");
                LoadModel(model, copy, o, $"bit flipped at byte {at} {where}");
            }
            // What loads must be what was saved (.NET does not check the zip CRC-32s: MLNetDeep does, see ZipChecksums).
            Assert.True(o.LoadedDifferent.Count == 0, $"{model.Name}: {o}: {string.Join("; ", o.LoadedDifferent)}");
            _out.WriteLine($"  {model.Name}: flips that loaded unchanged were " + string.Join(", ", o.LoadedSame.GroupBy(w => w[(w.IndexOf(" in ", StringComparison.Ordinal) + 4)..]).Select(g => $"{g.Count()} in {g.Key}")));
            results.Add((model.Name, o));
        }
        Report(nameof(FlippedBytes_AnywhereInTheZip_AreRefused_OrLeaveThePredictionsUnchanged), results);
    }

    // ------------------------------------------------------------------ the model description, rewritten uncompressed

    /// <summary>Where the parts of the MLNetDeep description are in its Model.key entry (SaveCommon's layout).</summary>
    private sealed record HeaderLayout(int Spec, int SpecKind, int Encoder, int EncoderKind, int Output, int History, int Hash, int End);

    private static HeaderLayout FindParts(byte[] entry, DeepModelParameters deep)
    {
        byte[] Bytes(Action<BinaryWriter> write)
        {
            var ms = new MemoryStream();
            using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true)) write(w);
            return ms.ToArray();
        }
        var spec = Bytes(deep.Spec.Write);
        var encoder = Bytes(deep.Encoder.Write);
        var kind = Bytes(w => w.Write(deep.Head.Kind));
        var head = Bytes(w => { w.Write(deep.Head.OutputSize); deep.Head.Write(w); });
        var history = Bytes(w => DeepModelParameters.WriteHistory(w, deep.History.ToList()));
        var body = Bytes(w => w.Write(2)).Concat(spec).Concat(encoder).Concat(kind).Concat(head).Concat(history).ToArray();
        int at = entry.AsSpan().IndexOf(body);
        Assert.True(at > 0, "the model description was not found in its entry");
        int specAt = at + 4, encoderAt = specAt + spec.Length, outputAt = encoderAt + encoder.Length + kind.Length;
        int historyAt = outputAt + head.Length;
        return new HeaderLayout(specAt, Bytes(w => w.Write(deep.Spec.Kind)).Length, encoderAt, Bytes(w => w.Write(deep.Encoder.Kind)).Length,
            outputAt, historyAt, historyAt + history.Length, historyAt + history.Length + 32);
    }

    private static DeepModelParameters Deep(SavedModel model) => DeepModelParameters.Find(new MLContext().Model.Load(new MemoryStream(model.Zip), out _))!;

    [Fact]
    public void MutatedModelDescription_RewrittenUncompressed_IsRefused_OrLoads_NeverCrashes()
    {
        var results = new List<(string, Outcomes)>();
        var random = new Random(5);
        foreach (var model in _models.All)
        {
            var o = new Outcomes();
            var (headerName, _) = DeepEntries(model.Zip);
            var entry = Entries(model.Zip).Single(e => e.Name == headerName).Content;
            var parts = FindParts(entry, Deep(model));
            // Every byte of the description up to the history (spec, encoder, task head), then a spread over the history
            // and the checksum: a bit flipped, and a huge or negative Int32 written there (sizes and counts made absurd).
            var offsets = Enumerable.Range(parts.Spec - 4, parts.History - parts.Spec + 4)
                .Concat(Spread(parts.History, parts.Hash - parts.History, 24)).Concat(Spread(parts.Hash, 32, 4)).ToList();
            foreach (int at in offsets)
            {
                var flipped = (byte[])entry.Clone();
                flipped[at] ^= (byte)(1 << random.Next(8));
                LoadModel(model, Rezip(model.Zip, new Dictionary<string, byte[]> { [headerName] = flipped }), o, $"description bit flipped at {at}");
            }
            var values = new[] { int.MaxValue, 1 << 30, -1 };
            foreach (int at in offsets.Where(a => a + 4 <= parts.End))
            {
                var crafted = (byte[])entry.Clone();
                int value = values[at % values.Length];
                BinaryPrimitives.WriteInt32LittleEndian(crafted.AsSpan(at), value);
                LoadModel(model, Rezip(model.Zip, new Dictionary<string, byte[]> { [headerName] = crafted }), o, $"{value} written at {at}");
            }
            results.Add((model.Name, o));
        }
        Report(nameof(MutatedModelDescription_RewrittenUncompressed_IsRefused_OrLoads_NeverCrashes), results);
    }

    /// <summary>Managed bytes this thread allocated and growth of the process's peak resident memory while <paramref name="action"/> ran.</summary>
    private static (Exception? Error, long ManagedBytes, long PeakGrowthBytes) Measure(Action action)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long rss = Status("VmRSS");
        File.WriteAllText("/proc/self/clear_refs", "5"); // resets VmHWM (the peak) to the current resident size
        long before = GC.GetAllocatedBytesForCurrentThread();
        Exception? error = null;
        try { action(); }
        catch (Exception e) { error = e; }
        return (error, GC.GetAllocatedBytesForCurrentThread() - before, Status("VmHWM") - rss);
    }

    private static long Status(string field) =>
        long.Parse(File.ReadLines("/proc/self/status").Single(l => l.StartsWith(field + ":", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;

    private const long AllocationLimit = 128L << 20;

    /// <summary>Loads a crafted zip: it must be refused with MLNetDeep's message, allocating little; returns the message.</summary>
    private string AssertRefusedCheaply(byte[] zip, string what, long declaredBytes)
    {
        var (error, managed, peak) = WithinAMinute(() => Measure(() => _ml.Model.Load(new MemoryStream(zip), out _)), what);
        Assert.True(error is not null, $"{what}: loaded");
        Assert.False(IsFatal(error!), $"{what}: {error}");
        var message = MLNetDeepMessage(error!);
        Assert.True(message is not null && error!.GetBaseException() == message && message.Message.StartsWith("MLNetDeep model file is corrupt: ", StringComparison.Ordinal),
            $"{what}: refused without MLNetDeep's message innermost: {error}");
        Assert.True(managed < AllocationLimit && peak < AllocationLimit && Math.Max(managed, peak) < declaredBytes / 16,
            $"{what}: {managed >> 20} MiB allocated, peak memory grew by {peak >> 20} MiB, for a declared {declaredBytes >> 20} MiB");
        _out.WriteLine($"  {what}: refused ({managed >> 20} MiB managed, peak +{peak >> 20} MiB): {message!.Message}");
        return message.Message;
    }

    [Fact]
    public void CraftedHugeSizes_InTheDescription_AreRefusedBeforeAllocating()
    {
        int files = 0;
        foreach (var model in _models.All)
        {
            var deep = Deep(model);
            var (headerName, _) = DeepEntries(model.Zip);
            var entry = Entries(model.Zip).Single(e => e.Name == headerName).Content;
            var p = FindParts(entry, deep);
            int body = p.Spec + p.SpecKind; // the family's own fields, after its kind
            var fields = new List<(string What, int At, long Value, long Declared)>
            {
                ("history of 2^31-1 epochs", p.History, int.MaxValue, int.MaxValue * 53L),
                ("history of a million epochs", p.History, 1_000_000, 53_000_000L),
            };
            long features = deep.Encoder is DenseEncoder d ? d.Size : 0;
            switch (deep.Spec)
            {
                case MlpNetworkSpec:
                    fields.Add(("an MLP hidden layer of 2^30 units", body + 8, 1 << 30, (features + 1) * 4L << 30));
                    fields.Add(("an input of 2^30 features", p.Encoder + p.EncoderKind, 1 << 30, 16L << 32));
                    break;
                case CnnNetworkSpec cnn:
                    int conv = body + 4 + Encoding.UTF8.GetByteCount(cnn.Architecture.Name) + 1 + 4 + 1; // version, name, count, the conv's tag
                    fields.Add(("a convolution of 2^30 filters", conv, 1 << 30, 9L * 4 << 30));
                    fields.Add(("2^30 classes", p.Output, 1 << 30, 4L << 30));
                    break;
                case RnnNetworkSpec:
                    fields.Add(("a GRU of 2^30 units", body + 8, 1 << 30, 4L << 60));
                    fields.Add(("a vocabulary of 2^31 keys", p.Encoder + p.EncoderKind, int.MaxValue - 2, 8 * 4L * int.MaxValue));
                    fields.Add(("an embedding of 2^30 values per token", body + 25, 1 << 30, 4L << 40)); // version, cell, hidden, layers, bidirectional, dropout, pooling
                    break;
                case TransformerNetworkSpec:
                    fields.Add(("a feed-forward block of 2^30 units", body + 16, 1 << 30, 2 * 16 * 4L << 30));
                    fields.Add(("sequences of 2^28 tokens (positions)", p.Encoder + p.EncoderKind + 8, 1 << 28, 16 * 4L << 28));
                    fields.Add(("a vocabulary of 2^31 keys", p.Encoder + p.EncoderKind, int.MaxValue - 2, 16 * 4L * int.MaxValue));
                    break;
                default:
                    throw new InvalidOperationException(deep.Spec.GetType().Name);
            }
            if (deep is DeepForecastModelParameters) fields.Add(("a horizon of 2^30 values", p.Output, 1 << 30, 16 * 4L << 30));
            _out.WriteLine(model.Name);
            foreach (var (what, at, value, declared) in fields)
            {
                var crafted = (byte[])entry.Clone();
                if (deep.Encoder is TokenEncoder && at == p.Encoder + p.EncoderKind) BinaryPrimitives.WriteInt64LittleEndian(crafted.AsSpan(at), value);
                else BinaryPrimitives.WriteInt32LittleEndian(crafted.AsSpan(at), checked((int)value));
                AssertRefusedCheaply(Rezip(model.Zip, new Dictionary<string, byte[]> { [headerName] = crafted }), $"{model.Name}, {what}", declared);
                files++;
            }
        }
        _out.WriteLine($"{nameof(CraftedHugeSizes_InTheDescription_AreRefusedBeforeAllocating)}: {files} crafted files, all refused");
    }

    // ------------------------------------------------------------------ crafted weights (with a valid checksum)

    /// <summary>Where the first tensor's fields are in a TorchSharp weights blob: count, name, type, rank, first dimension.</summary>
    private static (int Rank, int FirstDimension) FirstTensor(byte[] blob)
    {
        int at = 0;
        Skip7Bit(blob, ref at); // entry count
        int nameLength = (int)Read7Bit(blob, ref at);
        at += nameLength;
        Skip7Bit(blob, ref at); // element type
        int rank = at;
        Skip7Bit(blob, ref at);
        return (rank, at);
    }

    private static long Read7Bit(byte[] b, ref int at)
    {
        long v = 0;
        for (int shift = 0; ; shift += 7)
        {
            byte x = b[at++];
            v |= (long)(x & 0x7f) << shift;
            if ((x & 0x80) == 0) return v;
        }
    }

    private static void Skip7Bit(byte[] b, ref int at) => Read7Bit(b, ref at);

    private static byte[] Encode7Bit(long v)
    {
        var bytes = new List<byte>();
        do
        {
            byte x = (byte)(v & 0x7f);
            v >>= 7;
            bytes.Add(v != 0 ? (byte)(x | 0x80) : x);
        }
        while (v != 0);
        return bytes.ToArray();
    }

    /// <summary>The blob with the 7-bit number at <paramref name="at"/> replaced by <paramref name="value"/>.</summary>
    private static byte[] Replace7Bit(byte[] blob, int at, long value)
    {
        int end = at;
        Skip7Bit(blob, ref end);
        return blob.Take(at).Concat(Encode7Bit(value)).Concat(blob.Skip(end)).ToArray();
    }

    [Fact]
    public void CraftedWeights_DeclaringHugeTensors_WithAValidChecksum_AreRefusedBeforeAllocating()
    {
        int files = 0;
        foreach (var model in _models.All)
        {
            var (headerName, weightsName) = DeepEntries(model.Zip);
            var entries = Entries(model.Zip).ToDictionary(e => e.Name, e => e.Content);
            var blob = entries[weightsName];
            var (rankAt, dimAt) = FirstTensor(blob);
            var cases = new (string What, byte[] Blob, long Declared)[]
            {
                ("2^40 tensors", Replace7Bit(blob, 0, 1L << 40), 3L << 40),
                ("a first tensor of rank 2^31 (TorchSharp would allocate its shape first)", Replace7Bit(blob, rankAt, 1L << 31), 8L << 31),
                ("a first tensor of rank 2^27", Replace7Bit(blob, rankAt, 1L << 27), 8L << 27),
                ("a first dimension of 2^40", Replace7Bit(blob, dimAt, 1L << 40), 4L << 40),
                ("a first dimension of 2^30", Replace7Bit(blob, dimAt, 1L << 30), 4L << 30),
            };
            _out.WriteLine(model.Name);
            foreach (var (what, crafted, declared) in cases)
            {
                // The description's checksum of the weights is updated, so only the blob's own checks stand in the way.
                var header = (byte[])entries[headerName].Clone();
                int hashAt = header.AsSpan().IndexOf(SHA256.HashData(blob));
                Assert.True(hashAt > 0);
                SHA256.HashData(crafted).CopyTo(header, hashAt);
                var zip = Rezip(model.Zip, new Dictionary<string, byte[]> { [headerName] = header, [weightsName] = crafted });
                Assert.Contains("weight", AssertRefusedCheaply(zip, $"{model.Name}, {what}", declared));
                files++;
            }
        }
        _out.WriteLine($"{nameof(CraftedWeights_DeclaringHugeTensors_WithAValidChecksum_AreRefusedBeforeAllocating)}: {files} crafted files, all refused");
    }

    [Fact]
    public void LoaderMessage_SaysWhatIsWrong_AndIsTheBaseException_OfWhatMLNetWrapsItIn()
    {
        // ML.NET instantiates each loader by reflection (ComponentCatalog.LoadableClassInfo.CreateInstanceCore): whatever a
        // loader throws reaches the caller inside a TargetInvocationException per nesting level (the transformer chain,
        // the prediction transformer, its model), whose message is fixed. MLNetDeep's is the innermost: GetBaseException().
        var e = Assert.ThrowsAny<Exception>(() => _ml.Model.Load(new MemoryStream(HugeHistoryZip(_models.All[0])), out _));
        for (var x = e; x is not null; x = x.InnerException) _out.WriteLine($"{x.GetType().FullName}: {x.Message}");
        var message = e.GetBaseException();
        Assert.IsType<InvalidDataException>(message);
        Assert.StartsWith("MLNetDeep model file is corrupt: the training history's epoch count: 2147483647", message.Message);
    }

    /// <summary>The model's zip with its description claiming int.MaxValue epochs of training history.</summary>
    private static byte[] HugeHistoryZip(SavedModel model)
    {
        var (headerName, _) = DeepEntries(model.Zip);
        var entry = Entries(model.Zip).Single(e => e.Name == headerName).Content;
        BinaryPrimitives.WriteInt32LittleEndian(entry.AsSpan(FindParts(entry, Deep(model)).History), int.MaxValue);
        return Rezip(model.Zip, new Dictionary<string, byte[]> { [headerName] = entry });
    }

    [Fact]
    public void LoadChecked_ThrowsMLNetDeepsMessageOutermost_AndLoadsAnIntactModelUnchanged()
    {
        var model = _models.All[0];
        string damaged = Path.Combine(TestUtil.TempDir(), "damaged.zip");
        File.WriteAllBytes(damaged, HugeHistoryZip(model));

        var wrapped = Assert.ThrowsAny<Exception>(() => _ml.Model.Load(damaged, out _));
        Assert.IsType<System.Reflection.TargetInvocationException>(wrapped); // ML.NET's own Load: the reason is inside
        var e = Assert.Throws<InvalidDataException>(() => _ml.Model.LoadChecked(damaged, out _));
        Assert.StartsWith("MLNetDeep model file is corrupt: the training history's epoch count: 2147483647", e.Message);
        Assert.Null(e.InnerException);
        Assert.Equal(wrapped.GetBaseException().Message, e.Message);

        // flipped bytes inside the weights (the case the issue reported) and a file that is not a zip at all
        var (_, weightsName) = DeepEntries(model.Zip);
        var weights = Entries(model.Zip).Single(x => x.Name == weightsName).Content;
        weights[weights.Length / 2] ^= 0x5A;
        var flipped = Assert.Throws<InvalidDataException>(() => _ml.Model.LoadChecked(new MemoryStream(Rezip(model.Zip, new Dictionary<string, byte[]> { [weightsName] = weights })), out _));
        Assert.StartsWith("MLNetDeep model file is corrupt: ", flipped.Message);
        _out.WriteLine(flipped.Message);
        Assert.Contains("checksum", flipped.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Throws<FileNotFoundException>(() => _ml.Model.LoadChecked(Path.Combine(TestUtil.TempDir(), "missing.zip"), out _));

        // an intact model loads and scores as with Load
        var viaLoad = _ml.Model.Load(new MemoryStream(model.Zip), out _);
        var viaChecked = _ml.Model.LoadChecked(new MemoryStream(model.Zip), out var schema);
        Assert.NotNull(schema);
        Assert.Equal(model.Expected, PredictionDump.Lines(viaChecked.Transform(model.Rows)).ToArray());
        Assert.Equal(PredictionDump.Lines(viaLoad.Transform(model.Rows)).ToArray(), PredictionDump.Lines(viaChecked.Transform(model.Rows)).ToArray());
    }

    // ------------------------------------------------------------------ the loader's size check is exact

    [Fact]
    public void StateElements_IsExactlyTheStateOfTheBuiltNetwork_ForEveryFamily()
    {
        // The loader refuses a description implying more values than the weights hold; it must never refuse a real model.
        TorchEngine.EnsureLoaded();
        var dense = new DenseEncoder(784, new[] { 1, 28, 28 });
        var tokens = new TokenEncoder(50, 12);
        var specs = new (NetworkSpec Spec, InputEncoder Input, int Output)[]
        {
            (new MlpNetworkSpec(new[] { 16, 8 }, DeepActivation.Relu, 0.1f, batchNorm: false), dense, 3),
            (new MlpNetworkSpec(new[] { 16 }, DeepActivation.Selu, 0, batchNorm: true), dense, 1),
            (new CnnNetworkSpec(CnnArchitecture.LeNet5(), 1, 28, 28, PixelLayout.ChannelsHeightWidth, 1, 0), dense, 10),
            (new CnnNetworkSpec(CnnArchitecture.SmallCnn(), 1, 28, 28, PixelLayout.ChannelsHeightWidth, 1, 0), dense, 10),
            (new CnnNetworkSpec(CnnArchitecture.ResNet(new[] { 1, 1 }, 8), 1, 28, 28, PixelLayout.HeightWidthChannels, 1, 0), dense, 2),
            (new CnnNetworkSpec(CnnArchitecture.Vgg(new[] { (1, 8) }, denseUnits: 0, batchNorm: false), 1, 28, 28, PixelLayout.ChannelsHeightWidth, 1, 0), dense, 4),
            (new CnnNetworkSpec(CnnArchitecture.Custom(CnnLayer.Conv(5, 5, 2, ConvPadding.Valid), CnnLayer.AvgPool(2), CnnLayer.Flatten(), CnnLayer.Dense(7), CnnLayer.BatchNorm()), 1, 28, 28, PixelLayout.ChannelsHeightWidth, 1, 0), dense, 3),
            (new RnnNetworkSpec(RecurrentCell.Lstm, 6, 2, true, 0.1f, SequencePooling.Attention, 8, 1), tokens, 3),
            (new RnnNetworkSpec(RecurrentCell.Gru, 5, 1, false, 0, SequencePooling.Last, 0, 28), dense, 1),
            (new RnnNetworkSpec(RecurrentCell.Rnn, 4, 3, true, 0, SequencePooling.Max, 0, 4), dense, 2),
            (new RnnNetworkSpec(RecurrentCell.Lstm, 4, 1, false, 0, SequencePooling.Last, 0, 1, ForecastDecoding.Autoregressive), new DenseEncoder(20, new[] { 20 }), 5),
            (new TransformerNetworkSpec { Layers = 2, Width = 16, Heads = 4, FeedForward = 24, Pooling = TransformerPooling.Cls, Positions = PositionEncoding.Learned }, tokens, 3),
            (new TransformerNetworkSpec { Layers = 1, Width = 8, Heads = 2, FeedForward = 16, Pooling = TransformerPooling.Mean, Positions = PositionEncoding.Sinusoidal, PreNorm = false }, tokens, 1),
            (new TransformerNetworkSpec { Layers = 1, Width = 8, Heads = 2, FeedForward = 16, Pooling = TransformerPooling.Attention, PatchSize = 7, Channels = 1, Height = 28, Width2D = 28 }, dense, 10),
            (new TransformerNetworkSpec { Layers = 1, Width = 8, Heads = 2, FeedForward = 16, FeaturesPerStep = 4 }, new DenseEncoder(20, new[] { 5, 4 }), 5),
            (new TransformerNetworkSpec { Layers = 1, Width = 8, Heads = 2, FeedForward = 16 }.AsPretraining(0.15f), tokens, 8),
        };
        foreach (var (spec, input, output) in specs)
        {
            using var network = spec.Build(input, output);
            long state = network.state_dict().Values.Sum(t => t.numel());
            Assert.True(state == spec.StateElements(input, output), $"{spec.Describe(input, output)}: built {state} values, StateElements says {spec.StateElements(input, output)}");
        }
    }

    // ------------------------------------------------------------------ checkpoints

    [Fact]
    public void DamagedCheckpoints_AreRefused_AndCraftedSizesAllocateNothing()
    {
        var ml = new MLContext(seed: 2);
        string dir = TestUtil.TempDir();
        var options = new MlpRegressionTrainer.Options { HiddenLayers = new[] { 16 }, NumberOfEpochs = 2, CheckpointDirectory = dir };
        var train = TestUtil.BikeTrainSubset(ml, 500);
        TestUtil.BikeMlp(ml, options).Fit(train);
        string path = Path.Combine(dir, CheckpointState.FileName);
        var original = File.ReadAllBytes(path);
        Assert.NotNull(CheckpointState.TryLoad(dir));

        var types = new SortedDictionary<string, int>(StringComparer.Ordinal);
        int files = 0;
        string scratch = TestUtil.TempDir();
        Exception? Load(byte[] bytes, string what)
        {
            File.WriteAllBytes(Path.Combine(scratch, CheckpointState.FileName), bytes);
            files++;
            var error = WithinAMinute<Exception?>(() =>
            {
                try { CheckpointState.TryLoad(scratch); return null; }
                catch (Exception e) { return e; }
            }, what);
            Assert.True(error is InvalidDataException, $"{what}: {error?.ToString() ?? "loaded"}");
            types[Describe(error!)] = types.GetValueOrDefault(Describe(error!)) + 1;
            return error;
        }

        foreach (int length in Spread(0, original.Length, 300))
            Load(original.AsSpan(0, length).ToArray(), $"truncated to {length}");
        var random = new Random(3);
        foreach (int at in Spread(0, original.Length, 400))
        {
            var copy = (byte[])original.Clone();
            copy[at] ^= (byte)(1 << random.Next(8));
            Load(copy, $"bit flipped at {at}");
        }
        _out.WriteLine($"truncated and flipped: {files} checkpoints, refused with " + string.Join(", ", types.Select(kv => $"{kv.Key} ×{kv.Value}")));

        // Crafted with a valid checksum: the sizes themselves must be refused, before anything is allocated for them.
        var fields = CheckpointFields(original);
        var crafted = new List<(string What, byte[] Bytes, long Declared)>
        {
            ("a history of 2^31-1 epochs", WithInt(original, fields.History, int.MaxValue), 53L * int.MaxValue),
            ("the random state's length 2^31-1", WithInt(original, fields.RandomState, int.MaxValue), int.MaxValue),
            ("the weights' length 2^31-1", WithInt(original, fields.Weights, int.MaxValue), int.MaxValue),
            ("the optimizer state's length 2^31-1", WithInt(original, fields.OptimizerState, int.MaxValue), int.MaxValue),
        };
        var weights = original.AsSpan(fields.Weights + 4, BinaryPrimitives.ReadInt32LittleEndian(original.AsSpan(fields.Weights))).ToArray();
        var (rankAt, dimAt) = FirstTensor(weights);
        crafted.Add(("weights whose first tensor has rank 2^31", WithWeights(original, fields, Replace7Bit(weights, rankAt, 1L << 31)), 8L << 31));
        crafted.Add(("weights whose first tensor has a dimension of 2^40", WithWeights(original, fields, Replace7Bit(weights, dimAt, 1L << 40)), 4L << 40));
        foreach (var (what, bytes, declared) in crafted)
        {
            var signed = Resign(bytes);
            File.WriteAllBytes(Path.Combine(scratch, CheckpointState.FileName), signed);
            files++;
            var (error, managed, peak) = WithinAMinute(() => Measure(() => CheckpointState.TryLoad(scratch)), what);
            Assert.True(error is InvalidDataException, $"{what}: {error?.ToString() ?? "loaded"}");
            Assert.True(managed < AllocationLimit && peak < AllocationLimit && Math.Max(managed, peak) < declared / 16, $"{what}: {managed >> 20} MiB, peak +{peak >> 20} MiB");
            _out.WriteLine($"  {what}: refused ({managed >> 20} MiB managed, peak +{peak >> 20} MiB): {error!.Message}");
        }

        // Through training: an optimizer tensor of 2^31-1 bytes in a checkpoint that is otherwise valid.
        int optimizerTensor = fields.OptimizerState + 4 + 8 + 4; // blob length, steps, tensor count, first tensor's length
        File.WriteAllBytes(path, Resign(WithInt(original, optimizerTensor, int.MaxValue)));
        files++;
        var (resumeError, resumeManaged, resumePeak) = WithinAMinute(() => Measure(() => TestUtil.BikeMlp(ml, options).Fit(train)), "resume");
        Assert.NotNull(resumeError);
        var inner = resumeError!;
        while (inner is not InvalidDataException && inner.InnerException is not null) inner = inner.InnerException;
        Assert.True(inner is InvalidDataException && inner.Message.Contains("optimizer state"), resumeError.ToString());
        Assert.True(resumeManaged < AllocationLimit && resumePeak < AllocationLimit, $"resume: {resumeManaged >> 20} MiB, peak +{resumePeak >> 20} MiB");
        _out.WriteLine($"  resuming with an optimizer tensor of 2^31-1 bytes: refused: {inner.Message}");
        _out.WriteLine($"{nameof(DamagedCheckpoints_AreRefused_AndCraftedSizesAllocateNothing)}: {files} damaged checkpoints, all refused");
    }

    /// <summary>Offsets of the checkpoint's count and length fields (CheckpointState.Save's layout).</summary>
    private sealed record CheckpointLayout(int History, int RandomState, int Weights, int OptimizerState);

    private static CheckpointLayout CheckpointFields(byte[] file)
    {
        using var r = new BinaryReader(new MemoryStream(file));
        r.ReadString(); r.ReadInt32(); r.ReadString(); r.ReadInt32(); r.ReadBoolean();
        int history = (int)r.BaseStream.Position;
        DeepModelParameters.ReadHistory(r);
        r.ReadBytes(8 + 8 + 4 + 8 + 4 + 4);
        int Blob()
        {
            int at = (int)r.BaseStream.Position;
            int n = r.ReadInt32();
            if (n > 0) r.ReadBytes(n);
            return at;
        }
        Blob(); // best weights
        int random = Blob(), weights = Blob(), optimizer = Blob();
        return new CheckpointLayout(history, random, weights, optimizer);
    }

    private static byte[] WithInt(byte[] file, int at, int value)
    {
        var copy = (byte[])file.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(copy.AsSpan(at), value);
        return copy;
    }

    private static byte[] WithWeights(byte[] file, CheckpointLayout f, byte[] weights)
    {
        int oldLength = BinaryPrimitives.ReadInt32LittleEndian(file.AsSpan(f.Weights));
        var length = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(length, weights.Length);
        return file.Take(f.Weights).Concat(length).Concat(weights).Concat(file.Skip(f.Weights + 4 + oldLength)).ToArray();
    }

    /// <summary>The checkpoint with its SHA-256 trailer recomputed.</summary>
    private static byte[] Resign(byte[] file)
    {
        var body = file.AsSpan(0, file.Length - 32).ToArray();
        return body.Concat(SHA256.HashData(body)).ToArray();
    }

    // ------------------------------------------------------------------ exported ONNX

    [Fact]
    public void DamagedOnnxExports_ParseOrFail_WithAManagedException_InTheProtobufReaderAndInOnnxRuntime()
    {
        // MLNetDeep reads no ONNX file back; its metadata is read by consumers, through ONNX Runtime or a protobuf
        // parser (MLNetDeep's generated one here). Flipped bytes in weights give a model that still parses: ONNX
        // files carry no checksum, so the criterion is no crash and no hang.
        var ml = new MLContext(seed: 1);
        var bike = TestUtil.BikeTrainSubset(ml, 300);
        var model = TestUtil.BikeMlp(ml, new MlpRegressionTrainer.Options { HiddenLayers = new[] { 8 }, NumberOfEpochs = 1 }).Fit(bike);
        var ms = new MemoryStream();
        ml.Model.ExportToOnnx(model, ms);
        var onnx = ms.ToArray();

        var files = new List<(string What, byte[] Bytes)>();
        foreach (int length in Spread(0, onnx.Length, 100)) files.Add(($"truncated to {length}", onnx.AsSpan(0, length).ToArray()));
        var random = new Random(4);
        foreach (int at in Spread(0, onnx.Length, 300))
        {
            var copy = (byte[])onnx.Clone();
            copy[at] ^= (byte)(1 << random.Next(8));
            files.Add(($"bit flipped at {at}", copy));
        }
        // A length prefix made huge: every byte that could start a varint, set to the start of 2^31-1.
        foreach (int at in Spread(0, onnx.Length - 5, 60))
            files.Add(($"length 2^31-1 at {at}", onnx.Take(at).Concat(Encode7Bit(int.MaxValue)).Concat(onnx.Skip(at + 1)).ToArray()));

        var protobuf = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var runtime = new SortedDictionary<string, int>(StringComparer.Ordinal);
        foreach (var (what, bytes) in files)
        {
            string parsed = WithinAMinute(() =>
            {
                try
                {
                    var m = MLNetDeep.Onnx.Proto.ModelProto.Parser.ParseFrom(bytes);
                    _ = m.MetadataProps.ToDictionary(kv => kv.Key, kv => kv.Value);
                    return "parsed";
                }
                catch (Exception e) { Assert.False(IsFatal(e), $"{what}: {e}"); return Describe(e); }
            }, what);
            protobuf[parsed] = protobuf.GetValueOrDefault(parsed) + 1;
            string session = WithinAMinute(() =>
            {
                try
                {
                    using var s = new InferenceSession(bytes);
                    _ = s.ModelMetadata.CustomMetadataMap.Count;
                    return "loaded";
                }
                catch (Exception e) { Assert.False(IsFatal(e), $"{what}: {e}"); return Describe(e); }
            }, what);
            runtime[session] = runtime.GetValueOrDefault(session) + 1;
        }
        _out.WriteLine($"{files.Count} damaged ONNX files");
        _out.WriteLine("  protobuf parser: " + string.Join(", ", protobuf.Select(kv => $"{kv.Key} ×{kv.Value}")));
        _out.WriteLine("  ONNX Runtime: " + string.Join(", ", runtime.Select(kv => $"{kv.Key} ×{kv.Value}")));
    }
}
