// Input encoders: how a feature column becomes the network's input tensor. Chosen by the family from the schema,
// saved in the model, used alike by training (cached or streamed batches) and scoring (batches and single rows).
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetDeep;

/// <summary>Turns one feature column into network input; a row store of its kind holds rows until they are collated.</summary>
internal abstract class InputEncoder
{
    /// <summary>Identifies the encoder in the model file.</summary>
    public abstract string Kind { get; }

    /// <summary>What the network reads, for messages, e.g. <c>a vector of 784 floats</c>.</summary>
    public abstract string Describe();

    /// <summary>Checks the feature column of other data (validation, scoring) against what the model was trained on.</summary>
    public abstract void CheckColumn(DataViewSchema schema, string column, string role);

    /// <summary>A store for rows. <paramref name="capacity"/>: a fixed number of reusable rows (batches, single rows), or null to grow (a cache).</summary>
    public abstract FeatureStore CreateStore(int? capacity, long? expectedRows = null);

    /// <summary>Bytes a cache of <paramref name="rows"/> rows takes, when known before reading.</summary>
    public abstract long? CacheBytes(long rows);

    protected abstract void WriteBody(BinaryWriter w);

    public void Write(BinaryWriter w)
    {
        w.Write(Kind);
        WriteBody(w);
    }

    public static InputEncoder Read(BinaryReader r)
    {
        string kind = r.ReadString();
        return kind switch
        {
            DenseEncoder.KindName => DenseEncoder.ReadBody(r),
            TokenEncoder.KindName => TokenEncoder.ReadBody(r),
            _ => throw new InvalidDataException($"This model reads its input as '{kind}', which this version of MLNetDeep does not know: the model file is corrupt, or was written by a newer MLNetDeep (update the package)."),
        };
    }

    private protected static DataViewSchema.Column Find(DataViewSchema schema, string column, string role) =>
        schema.GetColumnOrNull(column)
        ?? throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.FeatureColumnName), $"The {role} data has no feature column '{column}'.");
}

/// <summary>Rows of one feature column, appended from a bound row or cursor and collated into batch tensors.</summary>
internal abstract class FeatureStore : IDisposable
{
    /// <summary>Rows held.</summary>
    public long Count { get; protected set; }

    /// <summary>Memory held, in bytes.</summary>
    public abstract long Bytes { get; }

    /// <summary>A running hash of the first rows' values (for the checkpoint fingerprint).</summary>
    public ulong Hash { get; protected set; } = 14695981039346656037UL;

    /// <summary>Rows hashed into <see cref="Hash"/>.</summary>
    public const int HashedRows = 1000;

    /// <summary>The largest feature value appended since the store was made (dense stores; null otherwise).</summary>
    public virtual float? Maximum => null;

    /// <summary>Reads the column from <paramref name="row"/> on each <see cref="Append"/>.</summary>
    public abstract void Bind(DataViewRow row, DataViewSchema.Column column);

    /// <summary>Appends the bound row's value; <paramref name="row"/> and <paramref name="role"/> name it in messages.</summary>
    public abstract void Append(long row, string role);

    /// <summary>Forgets every row (fixed-capacity stores reuse their buffers).</summary>
    public abstract void Clear();

    /// <summary>Done appending (a cache compacts itself).</summary>
    public virtual void Seal() { }

    /// <summary>The rows [start, start + count) as one input tensor (owned by the caller's dispose scope).</summary>
    public abstract Tensor Collate(long start, int count);

    /// <summary>The given rows as one input tensor (owned by the caller's dispose scope).</summary>
    public abstract Tensor Collate(ReadOnlySpan<long> rows);

    /// <summary>Length of a row (tokens of a sequence; 1 for dense rows), for length-bucketed batching.</summary>
    public virtual int Length(long row) => 1;

    protected void HashValue(ulong bits)
    {
        Hash = (Hash ^ bits) * 1099511628211UL;
    }

    public abstract void Dispose();
}
