using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetDeep;

/// <summary>
/// The attention weights of one prediction of a Transformer: per layer and head, a matrix of queries × keys over the
/// row's positions ([CLS] first when the model pools by it). Each query's row sums to 1 over the valid positions;
/// padding gets 0.
/// </summary>
public sealed class AttentionWeights
{
    private readonly float[][][] _weights; // [layer][head][query * Length + key]

    internal AttentionWeights(float[][][] weights, string[] positions, int length)
    {
        _weights = weights;
        Positions = positions;
        Length = length;
    }

    /// <summary>Encoder layers (lowest first).</summary>
    public int LayerCount => _weights.Length;

    /// <summary>Heads per layer.</summary>
    public int HeadCount => _weights[0].Length;

    /// <summary>Positions of the row (the row's own tokens, steps or patches, plus [CLS]); padding is cut off.</summary>
    public int Length { get; }

    /// <summary>A label per position: "[CLS]", the token's text (the key value of the token column; "[UNK]" for an unknown token), "step i" or "patch i".</summary>
    public IReadOnlyList<string> Positions { get; }

    /// <summary>The weight with which position <paramref name="query"/> attends to <paramref name="key"/>.</summary>
    public float this[int layer, int head, int query, int key] => _weights[layer][head][query * Length + key];

    /// <summary>One head's matrix, row-major [query, key] (a copy).</summary>
    public float[] GetWeights(int layer, int head) => (float[])_weights[layer][head].Clone();

    /// <summary>The mean over a layer's heads, row-major [query, key].</summary>
    public float[] GetMeanOverHeads(int layer)
    {
        var mean = new float[Length * Length];
        foreach (var head in _weights[layer])
            for (int i = 0; i < mean.Length; i++) mean[i] += head[i] / HeadCount;
        return mean;
    }

    /// <summary>Writes a heat map of one layer (default the last) and head (default the mean over heads) as a PNG; see <see cref="DeepPlots.SaveAttentionHeatmap"/>.</summary>
    public void SaveHeatmap(string pngPath, int layer = -1, int? head = null, string? title = null) => DeepPlots.SaveAttentionHeatmap(this, pngPath, layer, head, title);
}

/// <summary>Looking inside a trained Transformer.</summary>
public static class TransformerInspection
{
    /// <summary>
    /// The attention weights of the prediction for one row of <paramref name="data"/>: the data goes through the
    /// transforms of <paramref name="model"/> that come before its MLNetDeep Transformer (e.g. the tokenizer), then
    /// through the encoder in evaluation mode. The model is not changed, and may score on other threads meanwhile.
    /// </summary>
    /// <param name="model">A fitted pipeline (or the prediction transformer itself) ending in an MLNetDeep Transformer.</param>
    /// <param name="data">Input data with the pipeline's input columns.</param>
    /// <param name="row">0-based row of <paramref name="data"/>.</param>
    /// <exception cref="ArgumentException">The model contains no MLNetDeep Transformer.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The data has fewer rows.</exception>
    public static AttentionWeights GetAttentionWeights(this ITransformer model, IDataView data, long row = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        if (row < 0) throw new ArgumentOutOfRangeException(nameof(row), row, "The row must be 0 or more.");
        var (before, deep) = Split(model);
        if (deep is null) throw new ArgumentException("The model contains no MLNetDeep prediction transformer.", nameof(model));
        var parameters = deep.Model;
        if (parameters.Network is not TransformerNetwork net || parameters.Spec is not TransformerNetworkSpec spec)
            throw new ArgumentException($"Attention weights need a Transformer, but the model is {parameters.Architecture}.", nameof(model));
        foreach (var t in before) data = t.Transform(data);
        var column = data.Schema.GetColumnOrNull(deep.FeatureColumnName)
            ?? throw new ArgumentOutOfRangeException(nameof(data), $"The data has no feature column '{deep.FeatureColumnName}'.");
        parameters.Encoder.CheckColumn(data.Schema, deep.FeatureColumnName, "input");

        TorchEngine.EnsureLoaded();
        using var store = parameters.Encoder.CreateStore(1);
        using (var cursor = data.GetRowCursor(new[] { column }))
        {
            store.Bind(cursor, column);
            long position = -1;
            while (cursor.MoveNext())
                if (++position == row) { store.Append(row, "input"); break; }
            if (store.Count == 0) throw new ArgumentOutOfRangeException(nameof(row), row, $"The data has only {position + 1} rows.");
        }

        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var x = store.Collate(0, 1);
        var maps = net.AttentionMaps(x, out var valid);
        var validRow = valid[0].data<bool>().ToArray();
        int length = Array.LastIndexOf(validRow, true) + 1;
        var weights = maps.Select(m =>
        {
            long h = m.shape[1], full = m.shape[2];
            var values = m[0].data<float>().ToArray();
            return Enumerable.Range(0, (int)h).Select(head =>
            {
                var matrix = new float[length * length];
                for (int q = 0; q < length; q++)
                    Array.Copy(values, (head * full + q) * full, matrix, q * length, length);
                return matrix;
            }).ToArray();
        }).ToArray();
        return new AttentionWeights(weights, Labels(spec, x, length, column), length);
    }

    private static string[] Labels(TransformerNetworkSpec spec, Tensor x, int length, DataViewSchema.Column column)
    {
        int cls = spec.Pooling == TransformerPooling.Cls ? 1 : 0;
        var labels = new string[length];
        if (cls == 1) labels[0] = "[CLS]";
        string[]? keyValues = null;
        if (x.dtype == ScalarType.Int64 && column.HasKeyValues())
        {
            VBuffer<ReadOnlyMemory<char>> names = default;
            column.GetKeyValues(ref names);
            keyValues = names.DenseValues().Select(v => v.ToString()).ToArray();
        }
        var ids = x.dtype == ScalarType.Int64 ? x[0].data<long>().ToArray() : null;
        for (int i = cls; i < length; i++)
        {
            int p = i - cls;
            labels[i] = ids is null ? (spec.PatchSize > 0 ? $"patch {p}" : $"step {p}")
                : ids[p] == TokenEncoder.UnknownId ? "[UNK]"
                : ids[p] == TokenEncoder.PaddingId ? "[PAD]"
                : keyValues is not null && ids[p] - 2 < keyValues.Length ? keyValues[ids[p] - 2]
                : $"key {ids[p] - 1}";
        }
        return labels;
    }

    private static (List<ITransformer> Before, ISingleFeaturePredictionTransformer<DeepModelParameters>? Deep) Split(ITransformer model)
    {
        var flat = new List<ITransformer>();
        void Flatten(ITransformer t)
        {
            if (t is IEnumerable<ITransformer> chain) foreach (var c in chain) Flatten(c);
            else flat.Add(t);
        }
        Flatten(model);
        int last = flat.FindLastIndex(t => t is ISingleFeaturePredictionTransformer<DeepModelParameters>);
        return last < 0 ? (flat, null) : (flat.Take(last).ToList(), (ISingleFeaturePredictionTransformer<DeepModelParameters>)flat[last]);
    }
}
