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

namespace MLNetDeep;

/// <summary>
/// The transformer an MLNetDeep trainer returns. It adds the columns ML.NET's own scorers add, with the same types
/// and annotations, so the stock evaluators, <c>MapKeyToValue</c>, <c>PredictionEngine</c> and permutation feature
/// importance work unchanged: binary <c>Score</c> (logit), <c>Probability</c>, <c>PredictedLabel</c> (bool);
/// multiclass <c>Score</c> (class probabilities, slot names = class names) and <c>PredictedLabel</c> (a key with the
/// training label's values); regression <c>Score</c>. <see cref="ITransformer.Transform"/> runs the network on
/// batches of rows (a lookahead cursor reads the features), <c>PredictionEngine</c> one row at a time.
/// </summary>
/// <typeparam name="TModel">The model parameters.</typeparam>
public sealed class DeepPredictionTransformer<TModel> : ISingleFeaturePredictionTransformer<TModel>, ICanSaveModel
    where TModel : DeepModelParameters
{
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
    public int ScoringBatchSize { get; set; } = DefaultScoringBatchSize;

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
        if (model is DeepMulticlassModelParameters && labelColumnName is not null)
            keep.AddColumn(labelColumnName, trainSchema[labelColumnName].Type, trainSchema[labelColumnName].Annotations);
        _trainSchema = keep.ToSchema();
        FeatureColumnType = _trainSchema[featureColumnName].Type;
    }

    // ---------------------------------------------------------------- schema

    private int ScoreWidth => Model is DeepMulticlassModelParameters m ? m.ClassCount : 1;

    /// <summary>Checks the features column of <paramref name="inputSchema"/>; returns its index.</summary>
    private int CheckFeatures(DataViewSchema inputSchema)
    {
        var col = inputSchema.GetColumnOrNull(FeatureColumnName)
            ?? throw new ArgumentOutOfRangeException(nameof(inputSchema), $"The input has no features column '{FeatureColumnName}', which the MLNetDeep model reads.");
        var expected = new VectorDataViewType(NumberDataViewType.Single, Model.InputSize);
        if (col.Type is not VectorDataViewType vt || vt.ItemType != NumberDataViewType.Single || vt.Size != Model.InputSize)
            throw new ArgumentOutOfRangeException(nameof(inputSchema),
                $"Incompatible features column type: the features column '{FeatureColumnName}' is '{col.Type}', but the MLNetDeep model was trained on '{expected}'.");
        return col.Index;
    }

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

    private List<(string Name, DataViewType Type, DataViewSchema.Annotations Annotations)> OutputColumns()
    {
        static DataViewSchema.Annotations Kinds(string columnKind, string valueKind, Action<DataViewSchema.Annotations.Builder>? more = null)
        {
            var a = new DataViewSchema.Annotations.Builder();
            a.Add(AnnotationUtils.Kinds.ScoreColumnKind, TextDataViewType.Instance, (ref ReadOnlyMemory<char> v) => v = columnKind.AsMemory());
            a.Add(AnnotationUtils.Kinds.ScoreValueKind, TextDataViewType.Instance, (ref ReadOnlyMemory<char> v) => v = valueKind.AsMemory());
            more?.Invoke(a);
            return a.ToAnnotations();
        }

        var list = new List<(string, DataViewType, DataViewSchema.Annotations)>();
        switch (Model)
        {
            case DeepBinaryModelParameters:
                list.Add((DefaultColumnNames.Score, NumberDataViewType.Single, Kinds(AnnotationUtils.Const.ScoreColumnKind.BinaryClassification, AnnotationUtils.Const.ScoreValueKind.Score)));
                list.Add((DefaultColumnNames.Probability, NumberDataViewType.Single, Kinds(AnnotationUtils.Const.ScoreColumnKind.BinaryClassification, AnnotationUtils.Const.ScoreValueKind.Probability,
                    a => a.Add(AnnotationUtils.Kinds.IsNormalized, BooleanDataViewType.Instance, (ref bool v) => v = true))));
                list.Add((DefaultColumnNames.PredictedLabel, BooleanDataViewType.Instance, Kinds(AnnotationUtils.Const.ScoreColumnKind.BinaryClassification, AnnotationUtils.Const.ScoreValueKind.PredictedLabel)));
                break;
            case DeepMulticlassModelParameters m:
            {
                int k = m.ClassCount;
                var label = _labelColumnName is null ? (DataViewSchema.Column?)null : _trainSchema.GetColumnOrNull(_labelColumnName);
                var keyValues = label?.Annotations.Schema.GetColumnOrNull(AnnotationUtils.Kinds.KeyValues);
                list.Add((DefaultColumnNames.Score, new VectorDataViewType(NumberDataViewType.Single, k),
                    Kinds(AnnotationUtils.Const.ScoreColumnKind.MulticlassClassification, AnnotationUtils.Const.ScoreValueKind.Score, a =>
                    {
                        if (keyValues is { Type: VectorDataViewType { ItemType: TextDataViewType } kvType } && kvType.Size == k)
                        {
                            var getter = label!.Value.Annotations.GetGetter<VBuffer<ReadOnlyMemory<char>>>(keyValues.Value);
                            a.Add(AnnotationUtils.Kinds.SlotNames, new VectorDataViewType(TextDataViewType.Instance, k), getter);
                        }
                    })));
                var predicted = new DataViewSchema.Annotations.Builder();
                if (keyValues is not null) predicted.Add(label!.Value.Annotations, n => n == AnnotationUtils.Kinds.KeyValues);
                predicted.Add(Kinds(AnnotationUtils.Const.ScoreColumnKind.MulticlassClassification, AnnotationUtils.Const.ScoreValueKind.PredictedLabel), _ => true);
                list.Add((DefaultColumnNames.PredictedLabel, new KeyDataViewType(typeof(uint), k), predicted.ToAnnotations()));
                break;
            }
            default:
                list.Add((DefaultColumnNames.Score, NumberDataViewType.Single, Kinds(AnnotationUtils.Const.ScoreColumnKind.Regression, AnnotationUtils.Const.ScoreValueKind.Score)));
                break;
        }
        return list;
    }

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

    /// <summary>Turns the network's raw outputs of one row into the values of the prediction columns.</summary>
    private sealed class RowValues
    {
        private readonly DeepModelParameters _model;
        public readonly float[] Raw;
        public readonly float[] Probabilities;

        public RowValues(DeepModelParameters model, int width)
        {
            _model = model;
            Raw = new float[width];
            Probabilities = new float[width];
        }

        public void Finish()
        {
            if (_model is DeepMulticlassModelParameters) DeepMulticlassModelParameters.Softmax(Raw, Probabilities);
            else if (_model is DeepBinaryModelParameters) Probabilities[0] = 1f / (1f + MathF.Exp(-Raw[0]));
            else if (_model is DeepRegressionModelParameters r) Probabilities[0] = (float)(Raw[0] * r.LabelScale + r.LabelMean);
        }

        /// <summary>A getter for output column <paramref name="which"/> (0 = Score, 1 = Probability or PredictedLabel, 2 = PredictedLabel).</summary>
        public Delegate Getter(int which, Action ensure)
        {
            switch (_model)
            {
                case DeepBinaryModelParameters:
                    if (which == 0) return (ValueGetter<float>)((ref float v) => { ensure(); v = Raw[0]; });
                    if (which == 1) return (ValueGetter<float>)((ref float v) => { ensure(); v = Probabilities[0]; });
                    return (ValueGetter<bool>)((ref bool v) => { ensure(); v = Raw[0] > 0; });
                case DeepMulticlassModelParameters:
                    if (which == 0)
                        return (ValueGetter<VBuffer<float>>)((ref VBuffer<float> v) =>
                        {
                            ensure();
                            var editor = VBufferEditor.Create(ref v, Probabilities.Length);
                            Probabilities.AsSpan().CopyTo(editor.Values);
                            v = editor.Commit();
                        });
                    return (ValueGetter<uint>)((ref uint v) =>
                    {
                        ensure();
                        int best = 0;
                        for (int i = 1; i < Raw.Length; i++) if (Raw[i] > Raw[best]) best = i;
                        v = (uint)best + 1;
                    });
                default:
                    return (ValueGetter<float>)((ref float v) => { ensure(); v = Probabilities[0]; });
            }
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
        private readonly DeepPredictionTransformer<TModel> _parent;
        private readonly DataViewRowCursor _input;
        private readonly int _inputCount;
        private readonly bool[] _outputActive;
        private readonly DataViewRowCursor? _ahead;
        private readonly ValueGetter<VBuffer<float>>? _features;
        private readonly int _batchSize, _d, _width;
        private readonly float[,]? _xBuf;
        private readonly Tensor? _x;
        private readonly float[] _raw;
        private readonly RowValues _values;
        private int _batchLen, _inBatch = -1;
        private long _valuesFor = -1;
        private VBuffer<float> _buffer;

        public ScoredCursor(DeepPredictionTransformer<TModel> parent, IDataView input, DataViewSchema schema, IEnumerable<DataViewSchema.Column> columnsNeeded)
        {
            _parent = parent;
            Schema = schema;
            _inputCount = input.Schema.Count;
            var needed = columnsNeeded.ToList();
            _input = input.GetRowCursor(needed.Where(c => c.Index < _inputCount).Select(c => input.Schema[c.Index]));
            _outputActive = new bool[schema.Count - _inputCount];
            foreach (var c in needed.Where(c => c.Index >= _inputCount)) _outputActive[c.Index - _inputCount] = true;
            _d = parent.Model.InputSize;
            _width = parent.ScoreWidth;
            _batchSize = Math.Max(1, parent.ScoringBatchSize);
            _raw = new float[_batchSize * _width];
            _values = new RowValues(parent.Model, _width);
            if (_outputActive.Any(a => a))
            {
                TorchEngine.EnsureLoaded();
                var featureCol = input.Schema[parent.FeatureColumnName];
                _ahead = input.GetRowCursor(new[] { featureCol });
                _features = _ahead.GetGetter<VBuffer<float>>(featureCol);
                _xBuf = new float[_batchSize, _d];
                _x = torch.from_array(_xBuf).DetachFromDisposeScope();
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
            int n = 0;
            var span = MemoryMarshal.CreateSpan(ref _xBuf![0, 0], _batchSize * _d);
            while (n < _batchSize && _ahead!.MoveNext())
            {
                _features!(ref _buffer);
                if (_buffer.Length != _d)
                    throw new InvalidOperationException($"The features column '{_parent.FeatureColumnName}' has {_buffer.Length} values in row {_ahead.Position}, expected {_d}.");
                _buffer.CopyTo(span.Slice(n * _d, _d));
                n++;
            }
            if (n == 0)
                throw new InvalidOperationException("The input produced fewer rows for the features than for the other columns.");
            using (torch.no_grad())
            using (var scope = torch.NewDisposeScope())
            {
                var x = n == _batchSize ? _x! : _x!.narrow(0, 0, n);
                var output = _parent.Model.Network.forward(x);
                output.data<float>().CopyTo(_raw.AsSpan(0, n * _width));
            }
            _batchLen = n;
            _inBatch = 0;
        }

        private void EnsureValues()
        {
            if (_valuesFor == _input.Position) return;
            _raw.AsSpan(_inBatch * _width, _width).CopyTo(_values.Raw);
            _values.Finish();
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
                _x?.Dispose();
            }
            base.Dispose(disposing);
        }
    }

    /// <summary>Row-at-a-time mapping for PredictionEngine: one forward pass per input row, no input tensor allocated.</summary>
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
        private readonly DeepModelParameters.RowRunner _runner;
        private readonly ValueGetter<VBuffer<float>>? _features;
        private VBuffer<float> _buffer;
        private long _valuesFor = -1;

        public MappedRow(DeepPredictionTransformer<TModel> parent, DataViewRow input, DataViewSchema schema, IEnumerable<DataViewSchema.Column> active)
        {
            _input = input;
            Schema = schema;
            _inputCount = input.Schema.Count;
            _active = new HashSet<int>(active.Select(c => c.Index));
            _values = new RowValues(parent.Model, parent.ScoreWidth);
            _runner = new DeepModelParameters.RowRunner(parent.Model);
            if (_active.Any(i => i >= _inputCount))
                _features = input.GetGetter<VBuffer<float>>(input.Schema[parent.FeatureColumnName]);
        }

        public override DataViewSchema Schema { get; }
        public override long Position => _input.Position;
        public override long Batch => _input.Batch;
        public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();
        public override bool IsColumnActive(DataViewSchema.Column column) => _active.Contains(column.Index);

        private void Ensure()
        {
            if (_valuesFor == _input.Position && _valuesFor >= 0) return;
            _features!(ref _buffer);
            _runner.Run(in _buffer, _values.Raw);
            _values.Finish();
            _valuesFor = _input.Position;
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (column.Index < _inputCount) return _input.GetGetter<TValue>(_input.Schema[column.Index]);
            // PredictionEngine advances Position for every new input object, so results are cached per position.
            return _values.Getter(column.Index - _inputCount, Ensure) as ValueGetter<TValue>
                ?? throw new InvalidOperationException($"Column '{column.Name}' is {column.Type}, not {typeof(TValue).Name}.");
        }
    }

    // ---------------------------------------------------------------- persistence

    void ICanSaveModel.Save(ModelSaveContext ctx)
    {
        ctx.CheckAtModel();
        ctx.SetVersionInfo(DeepPredictionTransformerLoader.GetVersionInfo(Model));
        ctx.SaveModel(Model, "Model");
        var w = ctx.Writer;
        w.Write(1);
        w.Write(FeatureColumnName);
        w.Write(_labelColumnName ?? "");
        w.Write(ScoringBatchSize);
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
        if (format != 1) throw new InvalidDataException($"MLNetDeep transformer format {format} is not supported by this version.");
        string feature = r.ReadString();
        string label = r.ReadString();
        int batch = r.ReadInt32();
        var ms = new MemoryStream();
        if (!ctx.TryLoadBinaryStream("TrainSchema", br => br.BaseStream.CopyTo(ms)))
            throw new InvalidDataException("MLNetDeep model file is corrupt or truncated: the training schema is missing.");
        ms.Position = 0;
        var schema = new BinaryLoader(env, new BinaryLoader.Arguments(), ms).Schema;
        return new DeepPredictionTransformer<TModel>(env, model, schema, feature, label.Length == 0 ? null : label) { ScoringBatchSize = batch };
    }
}

/// <summary>Creates <see cref="DeepPredictionTransformer{TModel}"/> instances for ML.NET's model loader.</summary>
internal static class DeepPredictionTransformerLoader
{
    public const string BinarySignature = "MLNetDeepBinaryXf";
    public const string MulticlassSignature = "MLNetDeepMulticlassXf";
    public const string RegressionSignature = "MLNetDeepRegressionXf";

    public static VersionInfo GetVersionInfo(DeepModelParameters model)
    {
        var (signature, loader) = model switch
        {
            DeepBinaryModelParameters => ("MLNDBXFM", BinarySignature),
            DeepMulticlassModelParameters => ("MLNDMXFM", MulticlassSignature),
            _ => ("MLNDRXFM", RegressionSignature),
        };
        return new VersionInfo(modelSignature: signature, verWrittenCur: 0x00010001, verReadableCur: 0x00010001, verWeCanReadBack: 0x00010001,
            loaderAssemblyName: typeof(DeepPredictionTransformerLoader).Assembly.FullName, loaderSignature: loader);
    }

    // Called by ML.NET's ComponentCatalog through the LoadableClass attributes above.
    public static ITransformer Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        ctx.LoadModel<DeepModelParameters, SignatureLoadModel>(env, out var model, "Model");
        ctx.CheckAtModel(GetVersionInfo(model));
        return model switch
        {
            DeepBinaryModelParameters b => DeepPredictionTransformer<DeepBinaryModelParameters>.Load(env, ctx, b),
            DeepMulticlassModelParameters m => DeepPredictionTransformer<DeepMulticlassModelParameters>.Load(env, ctx, m),
            DeepRegressionModelParameters g => DeepPredictionTransformer<DeepRegressionModelParameters>.Load(env, ctx, g),
            _ => throw new InvalidDataException("Unknown MLNetDeep model kind."),
        };
    }
}
