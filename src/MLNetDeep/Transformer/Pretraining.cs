// Self-supervised pretraining of a Transformer encoder on unlabelled token sequences (masked-token prediction, BERT's
// idea, on the user's own text), the encoder model it produces (its Transform adds an Embedding column), and the
// task head that trains it.
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNetDeep;
using TorchSharp;
using static TorchSharp.torch;

[assembly: LoadableClass(typeof(DeepEncoderModelParameters), null, typeof(SignatureLoadModel), "MLNetDeep pretrained encoder", DeepEncoderModelParameters.LoaderSignature)]
[assembly: LoadableClass(typeof(ITransformer), typeof(DeepPredictionTransformerLoader), null, typeof(SignatureLoadModel), "MLNetDeep encoder transformer", DeepPredictionTransformerLoader.EncoderSignature)]

namespace MLNetDeep;

/// <summary>
/// Masked-token pretraining: no label; the network returns per row [loss sum, correct, chosen tokens] in training,
/// and at scoring the pooled encoding of the row (the <c>Embedding</c> column).
/// </summary>
internal sealed class MaskedTokenHead : TaskHead
{
    public const string KindName = "masked-tokens";
    public const string EmbeddingColumnName = "Embedding";

    public MaskedTokenHead(int width) => OutputSize = width;

    public override string Kind => KindName;
    public override LabelKind LabelKind => LabelKind.None;
    public override int OutputSize { get; }
    public override string MetricName => "masked-token accuracy";
    public override PredictionKind PredictionKind => PredictionKind.MultiOutputRegression;

    private protected override void CheckLabelType(DataViewSchema.Column col, string role) { }

    public override Tensor Loss(Tensor output, Tensor target)
    {
        var counts = output.select(1, 2).sum();
        return output.select(1, 0).sum().div(counts.clamp_min(SafeOps.One));
    }

    public override void Accumulate(Tensor output, Tensor target, MetricAccumulator acc)
    {
        acc.Correct += output.select(1, 1).sum().item<float>();
        acc.Rows += output.select(1, 2).sum().item<float>();
    }

    public override double Metric(MetricAccumulator acc) => acc.Accuracy;

    public override IEnumerable<SchemaShape.Column> OutputShape(SchemaShape.Column? label) => new[]
    {
        new SchemaShape.Column(EmbeddingColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false),
    };

    public override IReadOnlyList<(string Name, DataViewType Type, DataViewSchema.Annotations Annotations)> OutputColumns(DataViewSchema.Column? label) => new[]
    {
        (EmbeddingColumnName, (DataViewType)new VectorDataViewType(NumberDataViewType.Single, OutputSize), DataViewSchema.Annotations.Empty),
    };

    public override void PostProcess(ReadOnlySpan<float> raw, Span<float> values) => raw.CopyTo(values);

    public override Delegate Getter(int which, Action ensure, float[] raw, float[] values) =>
        (ValueGetter<VBuffer<float>>)((ref VBuffer<float> v) =>
        {
            ensure();
            var editor = VBufferEditor.Create(ref v, values.Length);
            values.AsSpan().CopyTo(editor.Values);
            v = editor.Commit();
        });
}

/// <summary>
/// A Transformer encoder pretrained on unlabelled text by masked-token prediction. Its transformer adds an
/// <c>Embedding</c> column (the pooled encoding of each row: mean over the tokens, or [CLS]); give the transformer or
/// its saved file to a Transformer trainer as <see cref="TransformerOptions.BaseModel"/> /
/// <see cref="TransformerOptions.BaseModelPath"/> to fine-tune it for a task.
/// </summary>
public sealed class DeepEncoderModelParameters : DeepModelParameters, IPredictorProducing<VBuffer<float>>
{
    internal const string LoaderSignature = "MLNetDeepEncoder";

    internal DeepEncoderModelParameters(IHostEnvironment env, ModelCore core) : base(env, LoaderSignature, core) { }

    /// <summary>Width of the <c>Embedding</c> column.</summary>
    public int EmbeddingSize => OutputSize;

    private static DeepEncoderModelParameters Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        ctx.CheckAtModel(GetVersionInfo());
        return new DeepEncoderModelParameters(env, Load(ctx, MaskedTokenHead.KindName));
    }

    private static VersionInfo GetVersionInfo() => Version("MLNDENCD", LoaderSignature, typeof(DeepEncoderModelParameters));
    private protected override VersionInfo VersionInfo => GetVersionInfo();
    internal override string TransformerSignature => DeepPredictionTransformerLoader.EncoderSignature;
    internal override string TransformerModelSignature => "MLNDEXFM";
    internal override ITransformer LoadTransformer(IHostEnvironment env, ModelLoadContext ctx) => DeepPredictionTransformer<DeepEncoderModelParameters>.Load(env, ctx, this);

    PredictionKind IPredictor.PredictionKind => PredictionKind.MultiOutputRegression;
}

/// <summary>
/// Pretrains a Transformer encoder on unlabelled token sequences by masked-token prediction (BERT's recipe: of the real
/// tokens, <see cref="Options.MaskProbability"/> are chosen; 80 % become a learned mask vector, 10 % a random token,
/// 10 % stay; the encoder learns to predict the originals). The data needs only the token column (any size; with
/// <c>Caching = None</c> it is streamed). The result's <c>Transform</c> adds an <c>Embedding</c> column; fine-tune it
/// with a Transformer trainer's <see cref="TransformerOptions.BaseModel"/>. Tokenize the unlabelled and the labelled
/// text with the same fitted transforms, so the token ids mean the same words.
/// </summary>
public sealed class TransformerPretrainer : DeepTrainerBase<DeepPredictionTransformer<DeepEncoderModelParameters>, DeepEncoderModelParameters>
{
    /// <summary>Options of <see cref="TransformerPretrainer"/>: the encoder's shape and the training core's options; no label.</summary>
    public sealed class Options : TransformerOptions
    {
        /// <summary>Create with the defaults: mean pooling for the Embedding column, 15 % of the tokens chosen.</summary>
        public Options() => Pooling = TransformerPooling.Mean;

        /// <summary>Share of the real tokens chosen for prediction in every batch. Default 0.15.</summary>
        public double MaskProbability { get; set; } = 0.15;

        /// <inheritdoc/>
        public override void Validate()
        {
            base.Validate();
            Require(MaskProbability > 0 && MaskProbability < 1, nameof(MaskProbability), "must be in (0, 1)");
            Require(ValidationData is null, nameof(ValidationData), "is not used by pretraining (it monitors the training loss); leave it null");
            Require(ValidationFraction == 0, nameof(ValidationFraction), "is not used by pretraining (it monitors the training loss); leave it 0");
            Require(BaseModel is null && BaseModelPath is null && FreezeLayers == 0, nameof(BaseModel), "is for fine-tuning a pretrained encoder, not for pretraining");
            Require(PatchSize == 0, nameof(PatchSize), "must be 0: masked-token pretraining reads token sequences");
        }
    }

    private readonly TransformerFamily _family;

    internal TransformerPretrainer(IHostEnvironment env, Options options) : base(env, nameof(TransformerPretrainer), WithTokenLabel(options))
        => _family = new TransformerFamily((TransformerOptions)TrainerOptions);

    // No label: the loop reads the token column once more as a placeholder (the head ignores it).
    private static Options WithTokenLabel(Options o)
    {
        if (o is null) throw new ArgumentNullException(nameof(o));
        var copy = (Options)o.Copy();
        copy.LabelColumnName = copy.FeatureColumnName;
        return copy;
    }

    private protected override string TaskName => MaskedTokenHead.KindName;

    private protected override void CheckFeatureShape(SchemaShape.Column feature)
    {
        if (feature.Kind == SchemaShape.Column.VectorKind.Scalar || !feature.IsKey)
            throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.FeatureColumnName),
                $"Feature column '{TrainerOptions.FeatureColumnName}' must be a vector of keys (token ids, e.g. TokenizeIntoWords → MapValueToKey), but is {feature.GetTypeString()}.");
    }

    private protected override InputEncoder CreateEncoder(DataViewSchema schema)
    {
        var col = schema.GetColumnOrNull(TrainerOptions.FeatureColumnName);
        if (col is not { } c || !TokenEncoder.IsTokenColumn(c.Type))
            throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.FeatureColumnName),
                $"Masked-token pretraining reads token ids: feature column '{TrainerOptions.FeatureColumnName}' must be a vector of keys" + (col is { } k ? $", but is {k.Type}." : ", but the data has no such column."));
        return _family.CreateEncoder(schema);
    }

    private protected override TaskHead CreateHead(DataViewSchema schema) => new MaskedTokenHead(((TransformerOptions)TrainerOptions).ModelWidth);

    private protected override NetworkSpec CreateNetworkSpec(InputEncoder input, int outputSize) =>
        ((TransformerNetworkSpec)_family.CreateSpec(input)).AsPretraining((float)((Options)TrainerOptions).MaskProbability);

    private protected override nn.Module<Tensor, Tensor> CreateNetwork(NetworkSpec spec, InputEncoder input, int outputSize, IChannel ch) => _family.CreateNetwork(spec, input, outputSize, ch);

    private protected override IEnumerable<SchemaShape.Column> OutputShape(SchemaShape.Column? label) => new MaskedTokenHead(((TransformerOptions)TrainerOptions).ModelWidth).OutputShape(label);

    private protected override DeepEncoderModelParameters CreateModel(ModelCore core) => new(Host, core);
}

/// <summary>Catalog extension: <c>mlContext.Transforms.Text.PretrainTransformerEncoder(...)</c>.</summary>
public static class TransformerPretrainingCatalog
{
    /// <summary>
    /// Pretrains a Transformer encoder on unlabelled token sequences (masked-token prediction). The fitted transformer
    /// adds an <c>Embedding</c> column and is the <see cref="TransformerOptions.BaseModel"/> for fine-tuning.
    /// </summary>
    /// <param name="catalog">The text transforms catalog.</param>
    /// <param name="options">The encoder's shape and training options (<see cref="DeepTrainerOptions.FeatureColumnName"/>: the token column).</param>
    public static TransformerPretrainer PretrainTransformerEncoder(this TransformsCatalog.TextTransforms catalog, TransformerPretrainer.Options options)
        => new(CatalogUtils.GetEnvironment(catalog), options ?? throw new ArgumentNullException(nameof(options)));
}
