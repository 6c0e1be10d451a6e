using System.Runtime.InteropServices;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Data.IO;
using Microsoft.ML.Runtime;
using MLNetDeep;
using TorchSharp;
using static TorchSharp.torch;

[assembly: LoadableClass(typeof(ITransformer), typeof(DeepPredictionTransformerLoader), null, typeof(SignatureLoadModel), "MLNetDeep binary prediction transformer", DeepPredictionTransformerLoader.BinarySignature)]
[assembly: LoadableClass(typeof(ITransformer), typeof(DeepPredictionTransformerLoader), null, typeof(SignatureLoadModel), "MLNetDeep multiclass prediction transformer", DeepPredictionTransformerLoader.MulticlassSignature)]
[assembly: LoadableClass(typeof(ITransformer), typeof(DeepPredictionTransformerLoader), null, typeof(SignatureLoadModel), "MLNetDeep regression prediction transformer", DeepPredictionTransformerLoader.RegressionSignature)]
[assembly: LoadableClass(typeof(ITransformer), typeof(DeepPredictionTransformerLoader), null, typeof(SignatureLoadModel), "MLNetDeep forecasting prediction transformer", DeepPredictionTransformerLoader.ForecastSignature)]

namespace MLNetDeep;

/// <summary>What the ONNX exporter needs of a prediction transformer, whatever its task.</summary>
internal interface IDeepPredictor
{
    DeepModelParameters DeepModel { get; }
    string FeatureColumnName { get; }
    /// <summary>Multiclass: the class names (the label's key values) when they are text; else null.</summary>
    IReadOnlyList<string>? ClassNames();
    /// <summary>Multiclass: the training label column (with its key values); else null.</summary>
    DataViewSchema.Column? LabelColumn { get; }
    IHostEnvironment Environment { get; }
    /// <summary>Binary: the decision threshold on Score (PredictedLabel = Score &gt; Threshold); 0 otherwise.</summary>
    float Threshold { get; }
}

/// <summary>
/// The transformer an MLNetDeep trainer returns. It adds the columns ML.NET's own scorers add, with the same types
/// and annotations, so the stock evaluators, <c>MapKeyToValue</c>, <c>PredictionEngine</c> and permutation feature
/// importance work unchanged: binary <c>Score</c> (logit), <c>Probability</c>, <c>PredictedLabel</c> (bool);
/// multiclass <c>Score</c> (class probabilities, slot names = class names) and <c>PredictedLabel</c> (a key with the
/// training label's values); regression <c>Score</c>; forecasting <c>Score</c> (a vector of the horizon's values).
/// <see cref="ITransformer.Transform"/> runs the network on
/// batches of rows (a lookahead cursor reads the features), <c>PredictionEngine</c> one row at a time.
/// </summary>
/// <typeparam name="TModel">The model parameters.</typeparam>
public sealed class DeepPredictionTransformer<TModel> : ISingleFeaturePredictionTransformer<TModel>, ICanSaveModel, IDeepPredictor
    where TModel : DeepModelParameters
{
    DeepModelParameters IDeepPredictor.DeepModel => Model;

    DataViewSchema.Column? IDeepPredictor.LabelColumn => _labelColumnName is null ? null : _trainSchema.GetColumnOrNull(_labelColumnName);

    IHostEnvironment IDeepPredictor.Environment => _host;

    IReadOnlyList<string>? IDeepPredictor.ClassNames()
    {
        var predicted = OutputColumns().FirstOrDefault(c => c.Name == DefaultColumnNames.PredictedLabel);
        if (Model.Head is not MulticlassHead || predicted.Annotations?.Schema.GetColumnOrNull(AnnotationUtils.Kinds.KeyValues) is not { } kv
            || kv.Type is not VectorDataViewType { ItemType: TextDataViewType })
            return null;
        VBuffer<ReadOnlyMemory<char>> names = default;
        predicted.Annotations.GetValue(AnnotationUtils.Kinds.KeyValues, ref names);
        return names.DenseValues().Select(n => n.ToString()).ToArray();
    }

    internal const int DefaultScoringBatchSize = 256;
    private readonly IHost _host;
    private readonly DataViewSchema _trainSchema; // feature column and, for multiclass, the label column with its key values
    private readonly string? _labelColumnName;

    /// <summary>The trained network and its history.</summary>
    public TModel Model { get; }

    /// <summary>Name of the features column the model reads.</summary>
    public string FeatureColumnName { get; }

    /// <summary>Type of the features column the model reads.</summary>
    public DataViewType FeatureColumnType { get; }

    /// <summary>Rows per forward pass when transforming an IDataView. Default 256.</summary>
    public int ScoringBatchSize
    {
        get => _scoringBatchSize;
        set => _scoringBatchSize = value > 0 && !TooLargeBatch(Model, value) ? value
            : throw new ArgumentOutOfRangeException(nameof(ScoringBatchSize), value,
                $"ScoringBatchSize must be positive, and at most 2^20 rows and 2^28 input and output values in all, not {value}.");
    }

    /// <summary>Scoring allocates a batch of dense inputs and outputs: a batch size must not ask for more than a GiB of floats.</summary>
    private static bool TooLargeBatch(DeepModelParameters model, long batch)
    {
        long perRow = (model.Encoder is DenseEncoder d ? d.Size : 0) + 2L * model.OutputSize;
        return batch > 1 << 20 || batch * perRow > 1 << 28;
    }

    private int _scoringBatchSize = DefaultScoringBatchSize;
    private float _threshold;

    /// <summary>
    /// Binary classification: the decision threshold on <c>Score</c> (the logit), as ML.NET's binary prediction
    /// transformers have it: <c>PredictedLabel</c> is <c>Score &gt; Threshold</c>. Default 0 (probability 0.5); e.g.
    /// ln(0.8 / 0.2) = 1.386 predicts true only from probability 0.8. Saved with the model. Set it here or make a copy
    /// with <c>mlContext.BinaryClassification.ChangeModelThreshold(model, threshold)</c>.
    /// </summary>
    /// <exception cref="InvalidOperationException">The model is not a binary classifier.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The threshold is NaN.</exception>
    public float Threshold
    {
        get => _threshold;
        set
        {
            if (Model.Head is not BinaryHead)
                throw new InvalidOperationException($"Threshold applies to binary classifiers; this model is a {Model.Head.Kind} model.");
            if (float.IsNaN(value)) throw new ArgumentOutOfRangeException(nameof(Threshold), value, "Threshold must be a number (not NaN).");
            _threshold = value;
        }
    }

    /// <summary>A copy of this transformer (same trained model, shared) with another binary decision threshold.</summary>
    internal DeepPredictionTransformer<TModel> WithThreshold(float threshold) =>
        new(_host, Model, _trainSchema, FeatureColumnName, _labelColumnName) { ScoringBatchSize = ScoringBatchSize, Threshold = threshold };

    /// <summary>Always true: the transformer maps rows to rows.</summary>
    public bool IsRowToRowMapper => true;

    internal DeepPredictionTransformer(IHostEnvironment env, TModel model, DataViewSchema trainSchema, string featureColumnName, string? labelColumnName)
    {
        _host = env.Register(nameof(DeepPredictionTransformer<TModel>));
        Model = model;
        FeatureColumnName = featureColumnName;
        _labelColumnName = labelColumnName;
        var keep = new DataViewSchema.Builder();
        keep.AddColumn(featureColumnName, trainSchema[featureColumnName].Type, trainSchema[featureColumnName].Annotations);
        if (model.Head is MulticlassHead && labelColumnName is not null)
            keep.AddColumn(labelColumnName, trainSchema[labelColumnName].Type, trainSchema[labelColumnName].Annotations);
        _trainSchema = keep.ToSchema();
        FeatureColumnType = _trainSchema[featureColumnName].Type;
    }

    // ---------------------------------------------------------------- schema

    /// <summary>Checks the features column of <paramref name="inputSchema"/> against what the model was trained on.</summary>
    private void CheckFeatures(DataViewSchema inputSchema) => Model.Encoder.CheckColumn(inputSchema, FeatureColumnName, "input");

    /// <summary>The input columns plus the prediction columns.</summary>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        if (inputSchema is null) throw new ArgumentNullException(nameof(inputSchema));
        CheckFeatures(inputSchema);
        var b = new DataViewSchema.Builder();
        b.AddColumns(inputSchema);
        foreach (var (name, type, annotations) in OutputColumns()) b.AddColumn(name, type, annotations);
        return b.ToSchema();
    }

    private IReadOnlyList<(string Name, DataViewType Type, DataViewSchema.Annotations Annotations)> OutputColumns()
        => Model.Head.OutputColumns(_labelColumnName is null ? null : _trainSchema.GetColumnOrNull(_labelColumnName));

    // ---------------------------------------------------------------- scoring

    /// <summary>Scores <paramref name="input"/> lazily, running the network on batches of <see cref="ScoringBatchSize"/> rows.</summary>
    public IDataView Transform(IDataView input)
    {
        if (input is null) throw new ArgumentNullException(nameof(input));
        return new ScoredDataView(this, input, GetOutputSchema(input.Schema));
    }

    /// <summary>A row-at-a-time mapper (used by <c>PredictionEngine</c>).</summary>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema)
    {
        if (inputSchema is null) throw new ArgumentNullException(nameof(inputSchema));
        return new RowMapper(this, inputSchema, GetOutputSchema(inputSchema));
    }

    /// <summary>The raw outputs and post-processed values of the current row, and the prediction columns' getters.</summary>
    private sealed class RowValues
    {
        private readonly TaskHead _head;
        public readonly float[] Raw;
        public readonly float[] Values;

        private readonly float _threshold;

        public RowValues(DeepPredictionTransformer<TModel> parent)
        {
            _head = parent.Model.Head;
            _threshold = parent._threshold;
            Raw = new float[parent.Model.OutputSize];
            Values = new float[parent.Model.Head.ValueWidth];
        }

        /// <summary>A getter for output column <paramref name="which"/>, in the head's column order.</summary>
        public Delegate Getter(int which, Action ensure)
        {
            if (_head is BinaryHead && which == BinaryHead.PredictedLabelIndex && _threshold != 0)
            {
                var raw = Raw;
                float threshold = _threshold;
                return (ValueGetter<bool>)((ref bool v) => { ensure(); v = raw[0] > threshold; });
            }
            return _head.Getter(which, ensure, Raw, Values);
        }
    }

    /// <summary>The lazily scored IDataView.</summary>
    private sealed class ScoredDataView : IDataView
    {
        private readonly DeepPredictionTransformer<TModel> _parent;
        private readonly IDataView _input;

        public ScoredDataView(DeepPredictionTransformer<TModel> parent, IDataView input, DataViewSchema schema)
        {
            _parent = parent;
            _input = input;
            Schema = schema;
        }

        public DataViewSchema Schema { get; }
        public bool CanShuffle => false;
        public long? GetRowCount() => _input.GetRowCount();

        public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
            => new ScoredCursor(_parent, _input, Schema, columnsNeeded);

        // One cursor: the lookahead must see the rows in the main cursor's order.
        public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null)
            => new[] { GetRowCursor(columnsNeeded, rand) };
    }

    /// <summary>
    /// Cursor over the input with the prediction columns. When a prediction column is active, a second cursor over
    /// the input (features only, same order) reads <see cref="ScoringBatchSize"/> rows ahead and the network scores
    /// them in one forward pass; the main cursor serves the input columns.
    /// </summary>
    private sealed class ScoredCursor : DataViewRowCursor
    {
        private readonly DataViewRowCursor _input;
        private readonly int _inputCount;
        private readonly bool[] _outputActive;
        private readonly DataViewRowCursor? _ahead;
        private readonly DeepModelParameters.RowRunner? _runner;
        private readonly int _batchSize, _width, _valueWidth;
        private readonly RowValues _values;
        private int _batchLen, _inBatch = -1;
        private long _valuesFor = -1, _aheadRow;

        public ScoredCursor(DeepPredictionTransformer<TModel> parent, IDataView input, DataViewSchema schema, IEnumerable<DataViewSchema.Column> columnsNeeded)
        {
            Schema = schema;
            _inputCount = input.Schema.Count;
            var needed = columnsNeeded.ToList();
            _input = input.GetRowCursor(needed.Where(c => c.Index < _inputCount).Select(c => input.Schema[c.Index]));
            _outputActive = new bool[schema.Count - _inputCount];
            foreach (var c in needed.Where(c => c.Index >= _inputCount)) _outputActive[c.Index - _inputCount] = true;
            _width = parent.Model.OutputSize;
            _valueWidth = parent.Model.Head.ValueWidth;
            _batchSize = Math.Max(1, parent.ScoringBatchSize);
            _values = new RowValues(parent);
            if (_outputActive.Any(a => a))
            {
                var featureCol = input.Schema[parent.FeatureColumnName];
                _ahead = input.GetRowCursor(new[] { featureCol });
                _runner = new DeepModelParameters.RowRunner(parent.Model, _batchSize);
                _runner.Store.Bind(_ahead, featureCol);
            }
        }

        public override DataViewSchema Schema { get; }
        public override long Position => _input.Position;
        public override long Batch => _input.Batch;
        public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column) =>
            column.Index < _inputCount ? _input.IsColumnActive(_input.Schema[column.Index]) : _outputActive[column.Index - _inputCount];

        public override bool MoveNext()
        {
            if (!_input.MoveNext()) return false;
            if (_ahead is not null)
            {
                _inBatch++;
                if (_inBatch >= _batchLen) ScoreNextBatch();
            }
            return true;
        }

        private void ScoreNextBatch()
        {
            var store = _runner!.Store;
            store.Clear();
            while (store.Count < _batchSize && _ahead!.MoveNext()) store.Append(_aheadRow++, "input");
            if (store.Count == 0)
                throw new InvalidOperationException("The input produced fewer rows for the features than for the other columns.");
            _runner.Run();
            _batchLen = (int)store.Count;
            _inBatch = 0;
        }

        private void EnsureValues()
        {
            if (_valuesFor == _input.Position) return;
            _runner!.Raw.AsSpan(_inBatch * _width, _width).CopyTo(_values.Raw);
            _runner.Values.AsSpan(_inBatch * _valueWidth, _valueWidth).CopyTo(_values.Values);
            _valuesFor = _input.Position;
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (column.Index < _inputCount) return _input.GetGetter<TValue>(_input.Schema[column.Index]);
            if (!_outputActive[column.Index - _inputCount])
                throw new InvalidOperationException($"Column '{column.Name}' is not active in this cursor.");
            return _values.Getter(column.Index - _inputCount, EnsureValues) as ValueGetter<TValue>
                ?? throw new InvalidOperationException($"Column '{column.Name}' is {column.Type}, not {typeof(TValue).Name}.");
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _input.Dispose();
                _ahead?.Dispose();
                _runner?.Dispose();
            }
            base.Dispose(disposing);
        }
    }

    /// <summary>Row-at-a-time mapping for PredictionEngine: one forward pass per input row, no input tensor allocated for dense rows.</summary>
    private sealed class RowMapper : IRowToRowMapper
    {
        private readonly DeepPredictionTransformer<TModel> _parent;

        public RowMapper(DeepPredictionTransformer<TModel> parent, DataViewSchema inputSchema, DataViewSchema outputSchema)
        {
            _parent = parent;
            InputSchema = inputSchema;
            OutputSchema = outputSchema;
        }

        public DataViewSchema InputSchema { get; }
        public DataViewSchema OutputSchema { get; }

        public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
        {
            int n = InputSchema.Count;
            var deps = dependingColumns.Where(c => c.Index < n).Select(c => InputSchema[c.Index]).ToList();
            if (dependingColumns.Any(c => c.Index >= n)) deps.Add(InputSchema[_parent.FeatureColumnName]);
            return deps.Distinct();
        }

        public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns)
            => new MappedRow(_parent, input, OutputSchema, activeColumns);
    }

    private sealed class MappedRow : DataViewRow
    {
        private readonly DataViewRow _input;
        private readonly int _inputCount;
        private readonly HashSet<int> _active;
        private readonly RowValues _values;
        private readonly DeepModelParameters.RowRunner? _runner;
        private long _valuesFor = -1;

        public MappedRow(DeepPredictionTransformer<TModel> parent, DataViewRow input, DataViewSchema schema, IEnumerable<DataViewSchema.Column> active)
        {
            _input = input;
            Schema = schema;
            _inputCount = input.Schema.Count;
            _active = new HashSet<int>(active.Select(c => c.Index));
            _values = new RowValues(parent);
            if (_active.Any(i => i >= _inputCount))
            {
                _runner = new DeepModelParameters.RowRunner(parent.Model);
                _runner.Store.Bind(input, input.Schema[parent.FeatureColumnName]);
            }
        }

        public override DataViewSchema Schema { get; }
        public override long Position => _input.Position;
        public override long Batch => _input.Batch;
        public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();
        public override bool IsColumnActive(DataViewSchema.Column column) => _active.Contains(column.Index);

        private void Ensure()
        {
            if (_valuesFor == _input.Position && _valuesFor >= 0) return;
            _runner!.Store.Clear();
            _runner.Store.Append(_input.Position, "input");
            _runner.Run();
            _runner.Raw.AsSpan(0, _values.Raw.Length).CopyTo(_values.Raw);
            _runner.Values.AsSpan(0, _values.Values.Length).CopyTo(_values.Values);
            _valuesFor = _input.Position;
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (column.Index < _inputCount) return _input.GetGetter<TValue>(_input.Schema[column.Index]);
            // PredictionEngine advances Position for every new input object, so results are cached per position.
            return _values.Getter(column.Index - _inputCount, Ensure) as ValueGetter<TValue>
                ?? throw new InvalidOperationException($"Column '{column.Name}' is {column.Type}, not {typeof(TValue).Name}.");
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) _runner?.Dispose();
            base.Dispose(disposing);
        }
    }

    // ---------------------------------------------------------------- persistence

    void ICanSaveModel.Save(ModelSaveContext ctx)
    {
        ctx.CheckAtModel();
        ctx.SetVersionInfo(DeepPredictionTransformerLoader.GetVersionInfo(Model));
        ctx.SaveModel(Model, "Model");
        var w = ctx.Writer;
        // Format 2 adds the binary decision threshold; a model with the default threshold stays format 1 (older readers load it).
        w.Write(_threshold == 0 ? 1 : 2);
        w.Write(FeatureColumnName);
        w.Write(_labelColumnName ?? "");
        w.Write(ScoringBatchSize);
        if (_threshold != 0) w.Write(_threshold);
        ctx.SaveBinaryStream("TrainSchema", writer =>
        {
            using var ch = _host.Start("Saving train schema");
            var saver = new BinarySaver(_host, new BinarySaver.Arguments { Silent = true });
            DataSaverUtils.SaveDataView(ch, saver, new EmptyDataView(_host, _trainSchema), writer.BaseStream);
        });
    }

    internal static DeepPredictionTransformer<TModel> Load(IHostEnvironment env, ModelLoadContext ctx, TModel model)
    {
        var r = ctx.Reader;
        int format = r.ReadInt32();
        if (format is not (1 or 2)) throw new InvalidDataException($"MLNetDeep transformer format {format} is not supported by this version.");
        string feature = r.ReadString();
        string label = r.ReadString();
        int batch = r.ReadInt32();
        float threshold = format >= 2 ? r.ReadSingle() : 0;
        if (batch <= 0 || float.IsNaN(threshold) || threshold != 0 && model.Head is not BinaryHead)
            throw ModelFileChecks.Corrupt("its scoring settings (batch size, binary threshold) are invalid.");
        if (TooLargeBatch(model, batch))
            throw ModelFileChecks.Corrupt($"its scoring batch of {batch} rows is too large.");
        var ms = new MemoryStream();
        if (!ctx.TryLoadBinaryStream("TrainSchema", br => br.BaseStream.CopyTo(ms)))
            throw new InvalidDataException("MLNetDeep model file is corrupt or truncated: the training schema is missing.");
        ms.Position = 0;
        var schema = new BinaryLoader(env, new BinaryLoader.Arguments(), ms).Schema;
        return new DeepPredictionTransformer<TModel>(env, model, schema, feature, label.Length == 0 ? null : label) { ScoringBatchSize = batch, _threshold = threshold };
    }
}

/// <summary>Creates <see cref="DeepPredictionTransformer{TModel}"/> instances for ML.NET's model loader.</summary>
internal static class DeepPredictionTransformerLoader
{
    public const string BinarySignature = "MLNetDeepBinaryXf";
    public const string MulticlassSignature = "MLNetDeepMulticlassXf";
    public const string RegressionSignature = "MLNetDeepRegressionXf";
    public const string ForecastSignature = "MLNetDeepForecastXf";
    public const string EncoderSignature = "MLNetDeepEncoderXf";

    public static VersionInfo GetVersionInfo(DeepModelParameters model) =>
        new(modelSignature: model.TransformerModelSignature, verWrittenCur: 0x00010001, verReadableCur: 0x00010001, verWeCanReadBack: 0x00010001,
            loaderAssemblyName: typeof(DeepPredictionTransformerLoader).Assembly.FullName, loaderSignature: model.TransformerSignature);

    // Called by ML.NET's ComponentCatalog through the LoadableClass attributes above.
    public static ITransformer Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        ZipChecksums.Verify(ctx);
        ctx.LoadModel<DeepModelParameters, SignatureLoadModel>(env, out var model, "Model");
        ctx.CheckAtModel(GetVersionInfo(model));
        try
        {
            return model.LoadTransformer(env, ctx);
        }
        catch (Exception e) when (ModelFileChecks.AsCorrupt(e) is { } corrupt)
        {
            throw corrupt;
        }
    }
}
