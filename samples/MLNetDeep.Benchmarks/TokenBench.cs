// What the token benchmarks (--rnn, --transformer) share: SMS tokenized as the tests do, the token rows as the
// trainer's TokenStore holds them, and one epoch's batches exactly as the trainer makes them.
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetDeep.TestData;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetDeep.Benchmarks;

internal static class TokenBench
{
    /// <summary>As the tests' Pipelines.SmsTokens: lower-cased words without punctuation, then keys.</summary>
    public static IEstimator<ITransformer> SmsTokens(MLContext ml) =>
        ml.Transforms.Text.NormalizeText("Normalized", nameof(SmsRow.Message), keepPunctuations: false)
          .Append(ml.Transforms.Text.TokenizeIntoWords("Tokens", "Normalized"))
          .Append(ml.Transforms.Conversion.MapValueToKey("Tokens"));

    /// <summary>Token rows as the trainer's TokenStore holds them, as a ragged array: id = key + 1 (key 0, unknown → 1; 0 is padding).</summary>
    public sealed class TokenData
    {
        public required int[][] Rows;
        public required float[] Labels;
        public required int Vocabulary;   // key count + 2
        public int Count => Rows.Length;
        public long Tokens => Rows.Sum(r => (long)r.Length);
    }

    public static TokenData ReadTokens(IDataView view, int maxLength)
    {
        var tokens = view.Schema["Tokens"];
        var label = view.Schema["Label"];
        var key = (KeyDataViewType)((VectorDataViewType)tokens.Type).ItemType;
        var rows = new List<int[]>();
        var labels = new List<float>();
        using (var cursor = view.GetRowCursor(new[] { tokens, label }))
        {
            var getTokens = cursor.GetGetter<VBuffer<uint>>(tokens);
            var getLabel = cursor.GetGetter<bool>(label);
            VBuffer<uint> buffer = default;
            bool l = false;
            while (cursor.MoveNext())
            {
                getTokens(ref buffer);
                getLabel(ref l);
                var row = new int[Math.Min(buffer.Length, maxLength)];
                int i = 0;
                foreach (uint k in buffer.DenseValues())
                {
                    if (i == row.Length) break;
                    row[i++] = k == 0 ? 1 : (int)k + 1;
                }
                rows.Add(row);
                labels.Add(l ? 1f : 0f);
            }
        }
        return new TokenData { Rows = rows.ToArray(), Labels = labels.ToArray(), Vocabulary = checked((int)key.Count + 2) };
    }

    /// <summary>
    /// One epoch's row order and batch starts exactly as the trainer makes them: TrainingLoop seeds
    /// new Random(seed · 7919 + epoch · 104729 + 17); TrainingData.CachedBatches shuffles with Fisher-Yates and, with
    /// bucketing, sorts pools of 50 batches by length (the same unstable sort), cuts them into batches and visits the
    /// batches in random order. Same rows in the same order as the trainer reads them, so the same batches.
    /// </summary>
    public static (long[] Order, List<long> Starts) EpochBatches(TokenData d, int epoch, bool bucket, int seed, int batch, int poolBatches)
    {
        long n = d.Count;
        var shuffle = new Random(unchecked(seed * 7919 + epoch * 104729 + 17));
        var perm = new long[n];
        for (long i = 0; i < n; i++) perm[i] = i;
        for (long i = n - 1; i > 0; i--)
        {
            long j = shuffle.NextInt64(i + 1);
            (perm[i], perm[j]) = (perm[j], perm[i]);
        }
        var starts = new List<long>();
        for (long s = 0; s < n; s += batch) starts.Add(s);
        if (bucket)
        {
            long pool = (long)batch * poolBatches;
            for (long p = 0; p < n; p += pool)
            {
                int len = (int)Math.Min(pool, n - p);
                var keys = new int[len];
                for (int i = 0; i < len; i++) keys[i] = d.Rows[perm[p + i]].Length;
                keys.AsSpan().Sort(perm.AsSpan((int)p, len)); // the same introsort as Array.Sort(keys, items)
            }
            for (int i = starts.Count - 1; i > 0; i--)
            {
                int j = shuffle.Next(i + 1);
                (starts[i], starts[j]) = (starts[j], starts[i]);
            }
        }
        return (perm, starts);
    }

    public static Tensor PadIds(TokenData d, ReadOnlySpan<long> rows)
    {
        int n = rows.Length, t = 1;
        foreach (long r in rows) t = Math.Max(t, d.Rows[r].Length);
        var ids = new long[n * t];
        for (int i = 0; i < n; i++)
        {
            var row = d.Rows[rows[i]];
            for (int j = 0; j < row.Length; j++) ids[i * t + j] = row[j];
        }
        return torch.tensor(ids, new long[] { n, t });
    }

    public static Tensor BatchLabels(TokenData d, ReadOnlySpan<long> rows)
    {
        var y = new float[rows.Length];
        for (int i = 0; i < y.Length; i++) y[i] = d.Labels[rows[i]];
        return torch.tensor(y);
    }

    internal sealed class SyntheticRow
    {
        public uint[] Tokens { get; set; } = Array.Empty<uint>();
        public bool Label { get; set; }
    }

    /// <summary>An SMS message as PredictionEngine input (the pipelines start from the raw text).</summary>
    internal sealed class SmsInput
    {
        public string Message { get; set; } = "";
        public bool Label { get; set; }
    }

    internal sealed class SmsPrediction
    {
        public float Score { get; set; }
        public float Probability { get; set; }
        public bool PredictedLabel { get; set; }
    }
}
