using System.Globalization;
using System.Text;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms;
using Microsoft.ML.Transforms.Image;
using SkiaSharp;

namespace MLNetDeep.Cli;

/// <summary>The commands: each reads its data, builds the shared featurizer and the candidates, and runs one experiment.</summary>
public static class Commands
{
    public const string Usage = """
        mlnetdeep — AutoML-style experiments: MLNetDeep's deep networks beside ML.NET's classic trainers, searched and
        ranked on one split under one time budget; writes the best model, the leaderboard and a consumption project.

        Commands
          classification             binary or multiclass (from the label's number of values) on a delimited file
          binary-classification      a label with two values (--positive-label names the positive one)
          multiclass-classification  a label with two or more values
          regression                 a numeric label
          text-classification        classification where a free-text column matters: n-gram models and, on its
                                     word keys, a bidirectional GRU and a Transformer
          image-classification       --dataset is a folder with one subfolder of images per label (or a file of
                                     image-path<TAB>label lines): CNNs (SmallCnn, LeNet-5, ResNet), MLP, LightGbm
          forecasting                --dataset is a series (rows in time order): MLP, LSTM, GRU and Transformer
                                     forecasters on windows, ranked by MASE on the validation part, tested by rolling origin

        Data (delimited files)
          --dataset <file>           training data (required)
          --label-col <name|index>   the label column (required except forecasting)
          --test-dataset <file>      held-out data the best model is evaluated on at the end
          --test-fraction <f>        or hold out this share of --dataset (split with --seed)
          --has-header <bool>        default true           --separator <tab|comma|;|c>   default: inferred
          --allow-quoting <bool>     default true           --ignore-cols <a,b,...>       columns not to use
          --positive-label <value>   binary: the positive class (default 1/true/yes, else the second in ordinal order)
          --text-col <name>          text-classification: the column the sequence models read (default: the wordiest)
        Images
          --image-size <n|WxH>       default: the first image's size, at most 64×64
          --channels <auto|gray|rgb> default auto (gray when every sampled image is grey)
        Forecasting
          --target-col <name>        the series to forecast (required)
          --horizon <n>              steps ahead (default 1)          --lookback <n>   past steps per window (default 12)
          --test-count <n>           points held out at the end (default 10 %)
          --validation-count <n>     points before them for ranking (default as many as the test part)
          --season <n>               also report the seasonal-naive baseline with this period
        Experiment
          --train-time <seconds>     total budget (default 600); the running trial is cancelled when it is spent
          --trial-time <seconds>     budget of one trial (default none)
          --max-trials <n>           default 100                      --max-epochs <n>   most epochs of a deep trial
          --cv-folds <k>             k-fold cross-validation (stratified for classification) instead of one split
          --validation-fraction <f>  default 0.2                      --seed <n>         default 1
          --optimizing-metric <m>    e.g. Accuracy, F1Score, AreaUnderRocCurve, MicroAccuracy, MacroAccuracy, LogLoss,
                                     RSquared, MeanAbsoluteError, RootMeanSquaredError, MeanAbsoluteScaledError
          --trainers <a,b,...>       only candidates whose name contains one of these (e.g. LightGbm,MLP)
          --search <cost-frugal|random>                               --no-pruning       train every deep trial to the end
        Output
          --output <folder>          default ./mlnetdeep-output; holds model.zip, leaderboard.{csv,md,png}, summary.md,
                                     experiment/ (resumable: run the same command again to continue) and the project
          --name <name>              the consumption project's name (default MLModel)
          --package-source <folder>  a NuGet folder written into the project's NuGet.config (e.g. the repository's nuget/)
          --overwrite                start the experiment afresh instead of continuing the one in --output
          --no-refit                 keep the best trial's model as trained (default: its configuration is trained
                                     again on all the training data, validation part included, before it is saved)
          --verbose                  print every epoch of the deep trials
          --threads <n>              CPU threads of the deep trainers (default: the engine's; 1 makes runs repeat bit for bit)

        Example
          mlnetdeep classification --dataset sms-spam.tsv --has-header false --label-col 0 --allow-quoting false --train-time 300
        """;

    /// <summary>Runs the command; returns the exit code.</summary>
    public static int Run(Arguments a, TextWriter o, CancellationToken stop)
    {
        switch (a.Command)
        {
            case "classification": return Tabular(a, o, null, text: false, stop);
            case "binary-classification": return Tabular(a, o, ExperimentTask.BinaryClassification, text: false, stop);
            case "multiclass-classification": return Tabular(a, o, ExperimentTask.MulticlassClassification, text: false, stop);
            case "regression": return Tabular(a, o, ExperimentTask.Regression, text: false, stop);
            case "text-classification": return Tabular(a, o, null, text: true, stop);
            case "image-classification": return Images(a, o, stop);
            case "forecasting": return Forecasting(a, o, stop);
            default: throw new UsageException($"Unknown command '{a.Command}'. The commands: classification, binary-classification, multiclass-classification, regression, text-classification, image-classification, forecasting, help.");
        }
    }

    /// <summary>What every command shares: the experiment's options, the output folder, the candidate filter.</summary>
    private sealed class Common
    {
        public required ExperimentOptions Options { get; init; }
        public required string Output { get; init; }
        public required string Name { get; init; }
        public required string? PackageSource { get; init; }
        public required string[] Trainers { get; init; }
        public required bool Verbose { get; init; }
        public required bool Overwrite { get; init; }
        public required int Seed { get; init; }
        public required int? Threads { get; init; }
        public required bool Refit { get; init; }

        public static Common Read(Arguments a, ExperimentTask task)
        {
            int seed = a.Int("seed", 1);
            var options = new ExperimentOptions
            {
                Task = task,
                Seed = seed,
                MaximumTrials = a.Int("max-trials", 100, 1),
                TotalTime = TimeSpan.FromSeconds(a.Double("train-time", 600, 1, 1e7)),
                TrialTime = a.Get("trial-time") is null ? null : TimeSpan.FromSeconds(a.Double("trial-time", 0, 1, 1e7)),
                Folds = a.Int("cv-folds", 0, 0, 50),
                ValidationFraction = a.Double("validation-fraction", 0.2, 0.01, 0.9),
                Pruning = !a.Flag("no-pruning"),
                Search = a.Get("search") switch
                {
                    null or "cost-frugal" or "costfrugal" or "cfo" => SearchStrategy.CostFrugal,
                    "random" => SearchStrategy.Random,
                    var s => throw new UsageException($"--search must be cost-frugal or random, not '{s}'."),
                },
            };
            if (a.Get("optimizing-metric") is { } m)
            {
                if (!Enum.TryParse<ExperimentMetric>(m, ignoreCase: true, out var metric) || metric == ExperimentMetric.Default)
                    throw new UsageException($"--optimizing-metric: unknown metric '{m}'; one of {string.Join(", ", Enum.GetNames<ExperimentMetric>().Skip(1))}.");
                options.Metric = metric;
            }
            if (options.Folds == 1) throw new UsageException("--cv-folds must be 0 (one split) or 2 to 50.");
            try { options.Validate(); }
            catch (ArgumentException e) { throw new UsageException($"--optimizing-metric: {e.Message}"); }
            string name = a.Get("name") ?? "MLModel";
            if (name.Length == 0 || name.Any(c => !(char.IsLetterOrDigit(c) || c is '_' or '.' or '-')))
                throw new UsageException($"--name must be letters, digits, '_', '.' or '-', not '{name}'.");
            return new Common
            {
                Options = options, Output = Path.GetFullPath(a.Get("output") ?? "mlnetdeep-output"), Name = name,
                PackageSource = a.Get("package-source") is { } ps ? Path.GetFullPath(ps) : null, Trainers = a.List("trainers"),
                Verbose = a.Flag("verbose"), Overwrite = a.Flag("overwrite"), Seed = seed,
                Threads = a.Get("threads") is null ? null : a.Int("threads", 1, 1, 1024),
                Refit = !a.Flag("no-refit"),
            };
        }

        /// <summary>The candidates --trainers keeps.</summary>
        public List<ExperimentCandidate> Filter(IEnumerable<ExperimentCandidate> all)
        {
            var list = all.ToList();
            if (Trainers.Length == 0) return list;
            var kept = list.Where(c => Trainers.Any(t => c.Name.Contains(t, StringComparison.OrdinalIgnoreCase))).ToList();
            if (kept.Count == 0)
                throw new UsageException($"--trainers {string.Join(",", Trainers)} matches none of this command's trainers: {string.Join(", ", list.Select(c => c.Name))}.");
            return kept;
        }

        /// <summary>Trials reported so far (replayed ones included): the running trial is the next.</summary>
        public int TrialsDone;

        /// <summary>The epoch printer for --verbose, --threads, and the test pause.</summary>
        public Action<DeepTrainerOptions> Configure(TextWriter o) => d =>
        {
            if (Verbose) d.EpochCallback = e => o.WriteLine("      " + e);
            if (Threads is int n) d.NumberOfThreads = n;
            if (TestPause is var (trial, epoch))
            {
                var user = d.EpochCallback;
                d.EpochCallback = e =>
                {
                    user?.Invoke(e);
                    if (TrialsDone + 1 == trial && e.Epoch == epoch)
                    {
                        // A barrier for the resume test: it kills the process here, in the middle of a trial.
                        o.WriteLine($"PAUSED in trial {trial} after epoch {epoch}");
                        o.Flush();
                        Console.In.ReadLine();
                    }
                };
            }
        };

        /// <summary>
        /// MLNETDEEP_CLI_TEST_PAUSE=trial:epoch makes the tool print a line and wait for standard input after that epoch
        /// of that trial (the kill-and-resume test's barrier; unset in normal use).
        /// </summary>
        private static (int Trial, int Epoch)? TestPause =>
            Environment.GetEnvironmentVariable("MLNETDEEP_CLI_TEST_PAUSE")?.Split(':') is [var t, var e]
                && int.TryParse(t, CultureInfo.InvariantCulture, out int trial) && int.TryParse(e, CultureInfo.InvariantCulture, out int epoch)
                ? (trial, epoch) : null;
    }

    // ------------------------------------------------------------------ delimited files

    private static int Tabular(Arguments a, TextWriter o, ExperimentTask? fixedTask, bool text, CancellationToken stop)
    {
        string dataset = a.Require("dataset", "the training data file");
        bool regression = fixedTask == ExperimentTask.Regression;
        var data = TabularData.Infer(dataset, a.Require("label-col", "the label column's name or 0-based index"), TabularData.ParseSeparator(a.Get("separator")),
            a.Bool("has-header", true), a.Bool("allow-quoting", true), a.List("ignore-cols"), regression, a.Get("text-col"));
        if (a.Get("text-col") is { } tc && !text) throw new UsageException("--text-col is an option of text-classification.");
        if (a.Get("text-col") is { } named && data.Columns.All(c => c.Name != named))
            throw new UsageException($"--text-col: there is no column '{named}'.");

        ExperimentTask task = fixedTask ?? (data.LabelValues.Count == 2 ? ExperimentTask.BinaryClassification : ExperimentTask.MulticlassClassification);
        if (task != ExperimentTask.Regression && data.LabelValues.Count < 2)
            throw new UsageException($"--label-col: column '{data.Label.Name}' has {data.LabelValues.Count} distinct value(s); classification needs at least two.");
        if (task == ExperimentTask.BinaryClassification && data.LabelValues.Count != 2)
            throw new UsageException($"--label-col: column '{data.Label.Name}' has {data.LabelValues.Count} distinct values ({Preview(data.LabelValues)}); binary classification needs exactly two (use multiclass-classification).");
        if (text && data.SequenceColumn is null)
            throw new UsageException("text-classification needs a free-text column; none was found (name one with --text-col).");

        var common = Common.Read(a, task);
        int epochs = a.Int("max-epochs", text ? 8 : 20, 1, 10_000);
        string? positive = a.Get("positive-label");
        string? testPath = a.Get("test-dataset");
        double testFraction = a.Double("test-fraction", 0, 0, 0.9);
        if (testPath is not null && testFraction > 0) throw new UsageException("Give --test-dataset or --test-fraction, not both.");
        a.RejectUnread();

        var ml = new MLContext(seed: common.Seed);
        o.WriteLine($"mlnetdeep {a.Command}: {Title(task)} of '{data.Label.Name}'");
        o.Write(data.Describe());
        IEstimator<ITransformer> label;
        string labelName = data.Label.Name;
        switch (task)
        {
            case ExperimentTask.BinaryClassification:
                string pos = positive ?? NaturalPositive(data.LabelValues);
                if (!data.LabelValues.Contains(pos)) throw new UsageException($"--positive-label: '{pos}' is not a value of '{labelName}' ({Preview(data.LabelValues)}).");
                o.WriteLine($"  positive class: '{pos}' (the other: '{data.LabelValues.First(v => v != pos)}')");
                label = ml.Transforms.Conversion.MapValue("Label", data.LabelValues.Select(v => new KeyValuePair<string, bool>(v, v == pos)), labelName);
                break;
            case ExperimentTask.MulticlassClassification:
                o.WriteLine($"  {data.LabelValues.Count} classes: {Preview(data.LabelValues)}");
                label = ml.Transforms.Conversion.MapValueToKey("Label", labelName, keyOrdinality: ValueToKeyMappingEstimator.KeyOrdinality.ByValue);
                break;
            default:
                label = labelName == "Label" ? new EstimatorChain<ITransformer>() : ml.Transforms.CopyColumns("Label", labelName);
                break;
        }
        var featurizer = data.Featurizer(ml, label, tokens: text);

        var all = data.Load(ml, dataset, regression);
        IDataView train = all, test;
        if (testPath is not null) test = data.Load(ml, testPath, regression);
        else if (testFraction > 0)
        {
            var split = ml.Data.TrainTestSplit(all, testFraction, seed: common.Seed);
            (train, test) = (split.TrainSet, split.TestSet);
        }
        else test = null!;

        var candidates = new List<ExperimentCandidate> { DeepCandidates.Mlp(task, epochs, configure: common.Configure(o)) };
        if (text)
        {
            candidates.Add(DeepCandidates.Rnn(task, epochs, cell: RecurrentCell.Gru, configure: d =>
            {
                ((RnnOptions)d).Bidirectional = true;
                ((RnnOptions)d).Pooling = SequencePooling.Max;
                common.Configure(o)(d);
            }));
            candidates.Add(DeepCandidates.Transformer(task, epochs, configure: common.Configure(o)));
        }
        candidates.AddRange(ClassicCandidates.For(task));
        var finish = LabelsBack(ml, task);
        return RunAndWrite(ml, common, o, featurizer, common.Filter(candidates), train, test, finish,
            new Consumption(data.Separator, data.HasHeader, data.AllowQuoting), epochs, stop);
    }

    /// <summary>For multiclass, the predicted key mapped back to the label's value (what Model Builder's ModelOutput holds).</summary>
    private static Func<ITransformer, IDataView, ITransformer> LabelsBack(MLContext ml, ExperimentTask task) => task == ExperimentTask.MulticlassClassification
        ? (model, d) => new TransformerChain<ITransformer>(model, ml.Transforms.Conversion.MapKeyToValue("PredictedLabel").Fit(model.Transform(d)))
        : (model, _) => model;

    /// <summary>How the consumption project reads rows.</summary>
    private sealed record Consumption(char Separator, bool HasHeader, bool AllowQuoting);

    private static string NaturalPositive(IReadOnlyList<string> values)
    {
        foreach (var p in new[] { "1", "true", "yes", "positive", "pos", "spam" })
            if (values.FirstOrDefault(v => string.Equals(v, p, StringComparison.OrdinalIgnoreCase)) is { } hit) return hit;
        return values[1];
    }

    // ------------------------------------------------------------------ images

    private sealed class ImageRow
    {
        public string ImagePath { get; set; } = "";
        public string Label { get; set; } = "";
    }

    private static int Images(Arguments a, TextWriter o, CancellationToken stop)
    {
        string dataset = a.Require("dataset", "a folder with one subfolder of images per label, or a file of path<TAB>label lines");
        var rows = ReadImages(dataset, "--dataset");
        string? testPath = a.Get("test-dataset");
        var testRows = testPath is null ? null : ReadImages(testPath, "--test-dataset");
        var labels = rows.Select(r => r.Label).Distinct(StringComparer.Ordinal).OrderBy(l => l, StringComparer.Ordinal).ToList();
        if (labels.Count < 2) throw new UsageException($"--dataset: the images have {labels.Count} label(s); classification needs at least two.");
        var task = labels.Count == 2 ? ExperimentTask.BinaryClassification : ExperimentTask.MulticlassClassification;
        var common = Common.Read(a, task);
        int epochs = a.Int("max-epochs", 10, 1, 10_000);
        double testFraction = a.Double("test-fraction", 0, 0, 0.9);
        if (testPath is not null && testFraction > 0) throw new UsageException("Give --test-dataset or --test-fraction, not both.");
        var (width, height, gray) = ImageShape(rows, a.Get("image-size"), a.Get("channels") ?? "auto");
        string? positive = a.Get("positive-label");
        a.RejectUnread();

        var ml = new MLContext(seed: common.Seed);
        o.WriteLine($"mlnetdeep image-classification: {Title(task)}, {rows.Count} images, {labels.Count} labels ({Preview(labels)}), read as {(gray ? "grey" : "RGB")} {width}×{height}");
        IEstimator<ITransformer> label = task == ExperimentTask.BinaryClassification
            ? ml.Transforms.Conversion.MapValue("Label", labels.Select(v => new KeyValuePair<string, bool>(v, v == (positive ?? NaturalPositive(labels)))), "Label")
            : ml.Transforms.Conversion.MapValueToKey("Label", keyOrdinality: ValueToKeyMappingEstimator.KeyOrdinality.ByValue);
        var featurizer = label
            .Append(ml.Transforms.LoadImages("MLNetDeep.Image", null, nameof(ImageRow.ImagePath)))
            .Append(ml.Transforms.ResizeImages("MLNetDeep.Image", width, height))
            .Append(ml.Transforms.ExtractPixels("Features", "MLNetDeep.Image",
                colorsToExtract: gray ? ImagePixelExtractingEstimator.ColorBits.Red : ImagePixelExtractingEstimator.ColorBits.Rgb, scaleImage: 1 / 255f))
            .Append(ml.Transforms.DropColumns("MLNetDeep.Image"));
        IDataView train = ml.Data.LoadFromEnumerable(rows), test = testRows is null ? null! : ml.Data.LoadFromEnumerable(testRows);
        if (testFraction > 0)
        {
            var split = ml.Data.TrainTestSplit(train, testFraction, seed: common.Seed);
            (train, test) = (split.TrainSet, split.TestSet);
        }
        var configure = common.Configure(o);
        var candidates = new List<ExperimentCandidate>
        {
            DeepCandidates.Cnn(task, epochs, architecture: CnnArchitecture.SmallCnn(), configure: configure, name: "MLNetDeep CNN SmallCnn"),
            DeepCandidates.Cnn(task, epochs, architecture: CnnArchitecture.LeNet5(), configure: configure, name: "MLNetDeep CNN LeNet-5"),
            DeepCandidates.Cnn(task, epochs, architecture: CnnArchitecture.ResNet(new[] { 1, 1, 1 }, width: 16), configure: configure, name: "MLNetDeep CNN ResNet-8"),
            DeepCandidates.Mlp(task, epochs, configure: configure),
        };
        candidates.AddRange(task == ExperimentTask.BinaryClassification
            ? ClassicCandidates.Binary().Where(c => c.Name is "LightGbm" or "SdcaLogisticRegression")
            : ClassicCandidates.Multiclass().Where(c => c.Name is "LightGbmMulti" or "SdcaMaximumEntropy"));
        var finish = LabelsBack(ml, task);
        return RunAndWrite(ml, common, o, featurizer, common.Filter(candidates), train, test, finish, new Consumption(',', true, true), epochs, stop);
    }

    /// <summary>A folder of label subfolders, or a file of path&lt;TAB&gt;label lines (paths relative to the file's folder).</summary>
    private static List<ImageRow> ReadImages(string path, string option)
    {
        var extensions = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp" };
        var rows = new List<ImageRow>();
        if (Directory.Exists(path))
        {
            foreach (var folder in Directory.GetDirectories(path).OrderBy(d => d, StringComparer.Ordinal))
                foreach (var file in Directory.GetFiles(folder).Where(f => extensions.Contains(Path.GetExtension(f))).OrderBy(f => f, StringComparer.Ordinal))
                    rows.Add(new ImageRow { ImagePath = Path.GetFullPath(file), Label = Path.GetFileName(folder) });
            if (rows.Count == 0) throw new UsageException($"{option}: the folder '{path}' has no subfolders with images (one subfolder per label).");
        }
        else if (File.Exists(path))
        {
            string root = Path.GetDirectoryName(Path.GetFullPath(path))!;
            int n = 0;
            foreach (var line in File.ReadLines(path))
            {
                n++;
                if (line.Trim().Length == 0) continue;
                var f = line.Split('\t');
                if (f.Length < 2) throw new UsageException($"{option}: line {n} of '{path}' is not image-path<TAB>label.");
                string image = Path.GetFullPath(Path.Combine(root, f[0].Trim()));
                if (!File.Exists(image)) throw new UsageException($"{option}: line {n} of '{path}' names '{f[0].Trim()}', which does not exist ({image}).");
                rows.Add(new ImageRow { ImagePath = image, Label = f[1].Trim() });
            }
            if (rows.Count == 0) throw new UsageException($"{option}: '{path}' lists no images.");
        }
        else throw new UsageException($"{option}: '{path}' is neither a folder nor a file.");
        return rows;
    }

    private static (int Width, int Height, bool Gray) ImageShape(List<ImageRow> rows, string? size, string channels)
    {
        int width, height;
        var sample = rows.Where((_, i) => i % Math.Max(1, rows.Count / 20) == 0).Take(20).ToList();
        if (size is null)
        {
            using var first = SKBitmap.Decode(sample[0].ImagePath) ?? throw new UsageException($"--dataset: '{sample[0].ImagePath}' is not an image SkiaSharp can read.");
            (width, height) = first.Width <= 64 && first.Height <= 64 ? (first.Width, first.Height) : (64, 64);
        }
        else
        {
            var parts = size.ToLowerInvariant().Split('x');
            if (parts.Length is < 1 or > 2 || !parts.All(p => int.TryParse(p, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v is >= 8 and <= 1024))
                throw new UsageException($"--image-size must be N or WxH with sides from 8 to 1024, not '{size}'.");
            width = int.Parse(parts[0], CultureInfo.InvariantCulture);
            height = int.Parse(parts[^1], CultureInfo.InvariantCulture);
        }
        bool gray = channels switch
        {
            "gray" or "grey" => true,
            "rgb" => false,
            "auto" => sample.All(r =>
            {
                using var b = SKBitmap.Decode(r.ImagePath);
                return b is not null && b.Pixels.All(p => p.Red == p.Green && p.Green == p.Blue);
            }),
            _ => throw new UsageException($"--channels must be auto, gray or rgb, not '{channels}'."),
        };
        return (width, height, gray);
    }

    // ------------------------------------------------------------------ forecasting

    private static int Forecasting(Arguments a, TextWriter o, CancellationToken stop)
    {
        string dataset = a.Require("dataset", "the series, one row per time step in time order");
        string target = a.Require("target-col", "the column to forecast");
        var data = TabularData.Infer(dataset, target, TabularData.ParseSeparator(a.Get("separator")), a.Bool("has-header", true), a.Bool("allow-quoting", true),
            Array.Empty<string>(), labelIsNumeric: true);
        var common = Common.Read(a, ExperimentTask.Forecasting);
        int epochs = a.Int("max-epochs", 60, 1, 10_000);
        int horizon = a.Int("horizon", 1, 1, 10_000);
        int lookback = a.Int("lookback", 12, 1, 100_000);
        int? testCount = a.Get("test-count") is null ? null : a.Int("test-count", 0, 1);
        int? validationCount = a.Get("validation-count") is null ? null : a.Int("validation-count", 0, 1);
        int? season = a.Get("season") is null ? null : a.Int("season", 1, 1);
        a.RejectUnread();
        if (common.Options.Folds != 0) throw new UsageException("--cv-folds does not apply to forecasting: the series is split by time.");

        var ml = new MLContext(seed: common.Seed);
        var series = data.Load(ml, dataset, labelIsNumeric: true);
        var windowOptions = new ForecastWindowOptions { TargetColumn = data.Label.Name, Lookback = lookback, Horizon = horizon };
        if (testCount is int t) windowOptions.TestCount = t; else windowOptions.TestFraction = 0.1;
        if (validationCount is int v) windowOptions.ValidationCount = v;
        else if (testCount is int t2) windowOptions.ValidationCount = Math.Max(t2, horizon);
        else windowOptions.ValidationFraction = 0.1;
        ForecastWindows windows;
        try { windows = ForecastWindows.Create(ml, series, windowOptions); }
        catch (ArgumentException e) { throw new UsageException(e.Message); }
        o.WriteLine($"mlnetdeep forecasting: '{data.Label.Name}', {windows.SeriesLength} points; lookback {lookback}, horizon {horizon}; training {windows.TrainingLength}, validation {windows.ValidationLength}, test {windows.TestLength} points (by time)");

        var configure = common.Configure(o);
        var candidates = common.Filter(new[]
        {
            DeepCandidates.Mlp(ExperimentTask.Forecasting, epochs, configure: configure),
            DeepCandidates.Rnn(ExperimentTask.Forecasting, epochs, cell: RecurrentCell.Lstm, configure: configure),
            DeepCandidates.Rnn(ExperimentTask.Forecasting, epochs, cell: RecurrentCell.Gru, configure: configure),
            DeepCandidates.Transformer(ExperimentTask.Forecasting, epochs, configure: configure),
        });
        var experiment = Prepare(ml, common, o, null, candidates, epochs);
        var result = experiment.Run(windows, stop);
        var report = Report(common, o, result, epochs);
        if (result.BestModel is null) return Finish(common, o, report, 1);

        var scored = result.BestModel.Transform(windows.Test ?? windows.Validation!);
        var metrics = new List<ForecastMetrics> { windows.Evaluate(scored, name: result.BestTrial!.Trainer), windows.EvaluateNaive() };
        if (season is int s) metrics.Add(windows.EvaluateSeasonalNaive(s));
        string table = ForecastMetrics.ToTable(metrics.ToArray());
        o.WriteLine("Test part (rolling origin), series units:");
        o.WriteLine(table);
        report.AppendLine("## Test part (rolling origin, series units)").AppendLine().AppendLine("```").Append(table).AppendLine("```").AppendLine();

        string modelPath = Path.Combine(common.Output, "model.zip");
        ml.Model.Save(result.BestModel, windows.Train.Schema, modelPath);
        File.WriteAllText(Path.Combine(common.Output, "series-scaler.json"), System.Text.Json.JsonSerializer.Serialize(new
        {
            columns = windows.Scaler.ColumnNames, means = windows.Scaler.Means, standardDeviations = windows.Scaler.StandardDeviations, lookback, horizon,
            note = "The model reads windows standardized with these statistics (Features: lookback steps, oldest first) and forecasts the next horizon values standardized the same way: value = score * sd + mean of the target (the first column).",
        }, new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
        WriteProject(common, o, report, result.BestModel, windows.Train.Schema, modelPath, new Consumption(',', true, true));
        return Finish(common, o, report, 0);
    }

    // ------------------------------------------------------------------ shared

    private static Experiment Prepare(MLContext ml, Common common, TextWriter o, IEstimator<ITransformer>? featurizer, List<ExperimentCandidate> candidates, int epochs)
    {
        string dir = Path.Combine(common.Output, "experiment");
        if (common.Overwrite && Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        Directory.CreateDirectory(common.Output);
        common.Options.Directory = dir;
        var metric = common.Options.Metric == ExperimentMetric.Default ? null : common.Options.Metric.ToString();
        common.Options.TrialCallback = t => common.TrialsDone++;
        common.Options.TrialCallback += t => o.WriteLine(FormattableString.Invariant(
            $"  trial {t.Number,3}  {t.Trainer,-32} {t.Status,-8} {(t.Status == TrialStatus.Finished ? t.Metric.ToString("F4", CultureInfo.InvariantCulture) : ""),8}  {t.TrainingSeconds,7:F1} s{(t.Epochs is int e ? $"  {e} ep" : "")}  {t.ParametersText}{(t.Message is null ? "" : "  [" + t.Message + "]")}"));
        o.WriteLine(FormattableString.Invariant($"Experiment: {candidates.Count} trainers ({string.Join(", ", candidates.Select(c => c.Name))}); budget {common.Options.TotalTime!.Value.TotalSeconds:F0} s, at most {common.Options.MaximumTrials} trials, deep trials up to {epochs} epochs{(common.Options.Pruning ? " (successive halving)" : "")}; seed {common.Options.Seed}; state in {dir}"));
        var experiment = new Experiment(ml, common.Options);
        if (featurizer is not null) experiment.SetFeaturizer(featurizer);
        foreach (var c in candidates) experiment.AddCandidate(c);
        return experiment;
    }

    private static int RunAndWrite(MLContext ml, Common common, TextWriter o, IEstimator<ITransformer> featurizer, List<ExperimentCandidate> candidates,
        IDataView train, IDataView? test, Func<ITransformer, IDataView, ITransformer> finish, Consumption consumption, int epochs, CancellationToken stop)
    {
        var experiment = Prepare(ml, common, o, featurizer, candidates, epochs);
        var result = experiment.Run(train, stop);
        var report = Report(common, o, result, epochs);
        if (result.BestModel is null) return Finish(common, o, report, 1);

        var best = result.BestModel;
        string trainedOn = "the experiment's training part";
        if (common.Refit && !stop.IsCancellationRequested)
        {
            // As Model Builder does: the winning configuration trained again on all the training data (validation part included).
            var watch = System.Diagnostics.Stopwatch.StartNew();
            best = experiment.Refit(result.BestTrial!, train, stop);
            trainedOn = FormattableString.Invariant($"all the training data, refitted in {watch.Elapsed.TotalSeconds:F1} s");
            o.WriteLine($"Best configuration (trial {result.BestTrial!.Number}, {result.BestTrial.Trainer}) trained again on {trainedOn}.");
        }
        if (test is not null)
        {
            var metrics = Experiment.Evaluate(ml, common.Options.Task, best.Transform(test));
            string line = string.Join(", ", metrics.Select(m => FormattableString.Invariant($"{m.Key} {m.Value:F4}")));
            o.WriteLine($"Held-out test data, best model ({result.BestTrial!.Trainer}): {line}");
            report.AppendLine("## Held-out test data").AppendLine().AppendLine($"Best model ({result.BestTrial!.Trainer}, trained on {trainedOn}): {line}").AppendLine();
        }
        var model = finish(best, train);
        string modelPath = Path.Combine(common.Output, "model.zip");
        ml.Model.Save(model, train.Schema, modelPath);
        WriteProject(common, o, report, model, train.Schema, modelPath, consumption);
        return Finish(common, o, report, 0);
    }

    /// <summary>Prints the leaderboard, writes it (CSV, Markdown, PNG) and starts summary.md.</summary>
    private static StringBuilder Report(Common common, TextWriter o, ExperimentResult result, int maxEpochs)
    {
        o.WriteLine();
        o.WriteLine(FormattableString.Invariant($"Leaderboard ({result.Trials.Count} trials in {result.Seconds:F0} s; {result.Metric}):"));
        o.WriteLine(result.ToTable(20));
        result.SaveCsv(Path.Combine(common.Output, "leaderboard.csv"));
        result.SaveMarkdown(Path.Combine(common.Output, "leaderboard.md"));
        if (result.Trials.Any(t => t.Status == TrialStatus.Finished)) DeepPlots.SaveLeaderboard(result, Path.Combine(common.Output, "leaderboard.png"));
        var deep = result.Trials.Where(t => t.Epochs is not null).ToList();
        var pruned = deep.Where(t => t.Status == TrialStatus.Pruned).ToList();
        int saved = pruned.Sum(t => maxEpochs - t.Epochs!.Value), planned = deep.Count * maxEpochs;
        string pruning = FormattableString.Invariant($"{pruned.Count} of {deep.Count} deep trials pruned; {saved} of {planned} epochs saved ({(planned == 0 ? 0 : 100.0 * saved / planned):F0} %)");
        o.WriteLine(pruning);
        var sb = new StringBuilder();
        sb.AppendLine($"# mlnetdeep {common.Options.Task}").AppendLine();
        sb.AppendLine(FormattableString.Invariant($"{result.Trials.Count} trials in {result.Seconds:F0} s (budget {common.Options.TotalTime!.Value.TotalSeconds:F0} s, seed {common.Options.Seed}), optimising {result.Metric}. {pruning}.")).AppendLine();
        if (result.BestTrial is { } best)
            sb.AppendLine(FormattableString.Invariant($"Best: trial {best.Number}, {best.Trainer}, {result.Metric} {best.Metric:F4} on the validation part; {best.ParametersText}")).AppendLine();
        sb.AppendLine("Leaderboard: leaderboard.md, leaderboard.csv, leaderboard.png.").AppendLine();
        return sb;
    }

    private static void WriteProject(Common common, TextWriter o, StringBuilder report, ITransformer model, DataViewSchema schema, string modelPath, Consumption c)
    {
        string project = Path.Combine(common.Output, common.Name + ".ConsoleApp");
        string csproj = ConsumptionCode.WriteProject(project, model, schema, modelPath, common.Name + ".ConsoleApp", common.PackageSource, c.Separator, c.HasHeader, c.AllowQuoting);
        o.WriteLine($"Model: {modelPath}");
        o.WriteLine($"Consumption project: {csproj} (dotnet run --project {project} -- rows-file)");
        report.AppendLine($"Model: model.zip. Consumption project: {common.Name}.ConsoleApp/ (`dotnet run -- rows-file`).").AppendLine();
    }

    private static int Finish(Common common, TextWriter o, StringBuilder report, int code)
    {
        if (code != 0)
        {
            o.WriteLine("No trial finished: no model was written (see the leaderboard's messages).");
            report.AppendLine("No trial finished: no model was written.");
        }
        File.WriteAllText(Path.Combine(common.Output, "summary.md"), report.ToString());
        o.WriteLine($"Summary: {Path.Combine(common.Output, "summary.md")}");
        return code;
    }

    private static string Title(ExperimentTask task) => task switch
    {
        ExperimentTask.BinaryClassification => "binary classification",
        ExperimentTask.MulticlassClassification => "multiclass classification",
        ExperimentTask.Regression => "regression",
        _ => "forecasting",
    };

    private static string Preview(IReadOnlyList<string> values) =>
        string.Join(", ", values.Take(8).Select(v => "'" + v + "'")) + (values.Count > 8 ? $", ... ({values.Count})" : "");
}
