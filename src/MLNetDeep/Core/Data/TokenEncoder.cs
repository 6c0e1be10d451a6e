// Token-id sequences: the variable-length vector<key> that TokenizeIntoWords → MapValueToKey (or
// TokenizeIntoCharactersAsKeys) produce, padded per batch to the batch's longest row.
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetDeep;

/// <summary>
/// A <c>vector&lt;key&gt;</c> of token ids read as int64 [N, T]. Id 0 is padding, id 1 an unknown token (ML.NET's missing
/// key 0: a word not seen when the key was built), key k is id k + 1; the vocabulary is the key count + 2. Rows longer
/// than <see cref="MaximumSequenceLength"/> keep their first tokens. An empty row is one padding step, which the
/// networks treat as a sequence of length 1 with a zero input: a defined prediction, never a crash.
/// </summary>
internal sealed class TokenEncoder : InputEncoder
{
    public const string KindName = "tokens";
    public const int PaddingId = 0, UnknownId = 1;

    /// <summary>
    /// Training only: replaces each real token of [B, T] ids by <see cref="UnknownId"/> with probability
    /// <paramref name="rate"/> (torch's seeded generator), so the unknown id's embedding is trained — at scoring every
    /// word the key mapping did not see is unknown. Padding stays padding, so lengths do not change.
    /// </summary>
    public static Tensor DropTokens(Tensor ids, double rate)
    {
        using var r = rate.ToScalar();
        using var draw = torch.rand(ids.shape);
        using var hit = draw.lt(r);
        using var real = ids.gt(SafeOps.LongOne);
        using var drop = hit.logical_and(real);
        return ids.masked_fill(drop, SafeOps.LongOne);
    }

    public TokenEncoder(long keyCount, int maximumSequenceLength)
    {
        KeyCount = keyCount;
        MaximumSequenceLength = maximumSequenceLength;
    }

    /// <summary>Key count of the training column.</summary>
    public long KeyCount { get; }

    /// <summary>Embedding rows needed: padding, unknown and one per key.</summary>
    public int VocabularySize => checked((int)KeyCount + 2);

    public int MaximumSequenceLength { get; }

    public override string Kind => KindName;
    public override string Describe() => $"token sequences (vector of keys, {KeyCount} keys, at most {MaximumSequenceLength} tokens kept)";

    /// <summary>Whether a column holds token keys (so a family can choose this encoder).</summary>
    public static bool IsTokenColumn(DataViewType type) => type is VectorDataViewType { ItemType: KeyDataViewType };

    public static TokenEncoder FromSchema(DataViewSchema schema, string column, string role, int maximumSequenceLength)
    {
        var col = Find(schema, column, role);
        if (col.Type is not VectorDataViewType { ItemType: KeyDataViewType key })
            throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.FeatureColumnName),
                $"Feature column '{column}' of the {role} data must be a vector of keys (token ids), but is {col.Type}. "
                + "Use TokenizeIntoWords then MapValueToKey, or TokenizeIntoCharactersAsKeys.");
        if (key.Count == 0 || key.Count > int.MaxValue - 2)
            throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.FeatureColumnName), $"Feature column '{column}' has a key type of {key.Count} values; expected 1 to {int.MaxValue - 2}.");
        return new TokenEncoder((long)key.Count, maximumSequenceLength);
    }

    public override void CheckColumn(DataViewSchema schema, string column, string role)
    {
        var col = Find(schema, column, role);
        if (col.Type is not VectorDataViewType { ItemType: KeyDataViewType key })
            throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.FeatureColumnName),
                $"Feature column '{column}' of the {role} data is {col.Type}, but the MLNetDeep model was trained on {Describe()}.");
        if ((long)key.Count != KeyCount)
            throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.FeatureColumnName),
                $"Feature column '{column}' of the {role} data has keys of {key.Count} values, but the MLNetDeep model was trained on keys of {KeyCount} values: "
                + "its token ids would mean other tokens. Build the keys with the same MapValueToKey as in training (keep it in the saved pipeline).");
    }

    public override FeatureStore CreateStore(int? capacity, long? expectedRows = null) => new TokenStore(this);

    public override long? CacheBytes(long rows) => null;

    protected override void WriteBody(BinaryWriter w)
    {
        w.Write(KeyCount);
        w.Write(MaximumSequenceLength);
    }

    public static TokenEncoder ReadBody(BinaryReader r)
    {
        long keys = r.ReadInt64();
        int max = r.ReadInt32();
        if (keys <= 0 || keys > int.MaxValue - 2 || max <= 0) throw new InvalidDataException("MLNetDeep model file is corrupt: invalid token input description.");
        return new TokenEncoder(keys, max);
    }
}

/// <summary>Token rows kept ragged (ids + offsets): memory grows with the number of tokens, not rows × longest row.</summary>
internal sealed class TokenStore : FeatureStore
{
    private readonly TokenEncoder _encoder;
    private int[] _ids = new int[1024];
    private long[] _offsets = new long[257];
    private long[] _batch = Array.Empty<long>();
    private Func<ReadOnlySpan<ulong>>? _read;
    private string _column = "";

    public TokenStore(TokenEncoder encoder) => _encoder = encoder;

    public override long Bytes => _offsets[Count] * 4L + (Count + 1) * 8L;

    public override void Bind(DataViewRow row, DataViewSchema.Column column)
    {
        _column = column.Name;
        var raw = column.Type.GetItemType().RawType;
        _read = raw == typeof(uint) ? Reader<uint>(row, column, v => v)
            : raw == typeof(ushort) ? Reader<ushort>(row, column, v => v)
            : raw == typeof(byte) ? Reader<byte>(row, column, v => v)
            : raw == typeof(ulong) ? Reader<ulong>(row, column, v => v)
            : throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.FeatureColumnName), $"Feature column '{column.Name}' has keys of type {raw.Name}, which MLNetDeep cannot read.");
    }

    private static Func<ReadOnlySpan<ulong>> Reader<T>(DataViewRow row, DataViewSchema.Column column, Func<T, ulong> widen)
    {
        var getter = row.GetGetter<VBuffer<T>>(column);
        VBuffer<T> buffer = default;
        ulong[] wide = new ulong[16];
        return () =>
        {
            getter(ref buffer);
            if (wide.Length < buffer.Length) wide = new ulong[Math.Max(buffer.Length, wide.Length * 2)];
            int i = 0;
            foreach (var v in buffer.DenseValues()) wide[i++] = widen(v);
            return wide.AsSpan(0, i);
        };
    }

    public override void Append(long row, string role)
    {
        var keys = _read!();
        int n = Math.Min(keys.Length, _encoder.MaximumSequenceLength);
        long start = _offsets[Count];
        if (start + n > _ids.Length) Array.Resize(ref _ids, (int)Math.Min(int.MaxValue - 64, Math.Max(start + n, (long)_ids.Length * 2)));
        if (Count + 2 > _offsets.Length) Array.Resize(ref _offsets, _offsets.Length * 2);
        for (int i = 0; i < n; i++)
        {
            ulong k = keys[i];
            if (k > (ulong)_encoder.KeyCount)
                throw new InvalidOperationException($"Feature column '{_column}' has the key {k} in row {row} of the {role} data, above its key count {_encoder.KeyCount}.");
            int id = k == 0 ? TokenEncoder.UnknownId : (int)k + 1;
            _ids[start + i] = id;
            if (Count < HashedRows) HashValue((ulong)id);
        }
        if (Count < HashedRows) HashValue(0xFFFFFFFFUL ^ (ulong)n);
        _offsets[Count + 1] = start + n;
        Count++;
    }

    public override void Clear() => Count = 0;

    public override void Seal()
    {
        if (_ids.Length > _offsets[Count] + 1024) Array.Resize(ref _ids, (int)_offsets[Count]);
        if (_offsets.Length > Count + 1) Array.Resize(ref _offsets, (int)Count + 1);
    }

    public override int Length(long row) => (int)(_offsets[row + 1] - _offsets[row]);

    public override Tensor Collate(long start, int count)
    {
        Span<long> rows = count <= 1024 ? stackalloc long[count] : new long[count];
        for (int i = 0; i < count; i++) rows[i] = start + i;
        return Collate(rows);
    }

    public override Tensor Collate(ReadOnlySpan<long> rows)
    {
        int t = 1;
        foreach (long r in rows) t = Math.Max(t, Length(r));
        int n = rows.Length;
        if (_batch.Length < n * t) _batch = new long[n * t];
        var batch = _batch.AsSpan(0, n * t);
        batch.Clear(); // PaddingId
        for (int i = 0; i < n; i++)
        {
            long from = _offsets[rows[i]];
            int len = Length(rows[i]);
            for (int j = 0; j < len; j++) batch[i * t + j] = _ids[from + j];
        }
        return torch.tensor(batch.ToArray(), new long[] { n, t });
    }

    public override void Dispose() { }
}
