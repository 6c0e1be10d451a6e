// Dense input: a known-size vector<float> (flat features, an image C×H×W, a window of T steps × F features).
using System.Runtime.InteropServices;
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetDeep;

/// <summary>A known-size <c>vector&lt;float&gt;</c> read as float [N, Size]; families reshape it (images, time steps).</summary>
internal sealed class DenseEncoder : InputEncoder
{
    public const string KindName = "dense";

    public DenseEncoder(int size, int[] dimensions)
    {
        Size = size;
        Dimensions = dimensions;
    }

    public int Size { get; }

    /// <summary>The column's dimensions (e.g. [3, 32, 32] from ExtractPixels, [L, F] from ForecastWindows), or [Size].</summary>
    public int[] Dimensions { get; }

    public override string Kind => KindName;
    public override string Describe() => $"a vector of {Size} floats";

    /// <summary>The encoder for a training feature column, which must be a known-size vector of float.</summary>
    public static DenseEncoder FromSchema(DataViewSchema schema, string column, string role)
    {
        var col = Find(schema, column, role);
        if (col.Type is not VectorDataViewType vt || vt.ItemType != NumberDataViewType.Single || !vt.IsKnownSize || vt.Size == 0)
            throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.FeatureColumnName),
                $"Feature column '{column}' of the {role} data must be a known-size vector of Single (float), but is {col.Type}. "
                + "Use Concatenate to build a fixed-size vector, and ConvertType for other number types.");
        return new DenseEncoder(vt.Size, vt.Dimensions.ToArray());
    }

    public override void CheckColumn(DataViewSchema schema, string column, string role)
    {
        var col = Find(schema, column, role);
        if (col.Type is not VectorDataViewType vt || vt.ItemType != NumberDataViewType.Single || vt.Size != Size)
            throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.FeatureColumnName),
                $"Feature column '{column}' of the {role} data is {col.Type}, but the MLNetDeep model was trained on {Describe()} (Vector<Single, {Size}>).");
    }

    public override FeatureStore CreateStore(int? capacity, long? expectedRows = null) => new DenseStore(this, capacity, expectedRows);

    public override long? CacheBytes(long rows) => rows * Size * 4L;

    protected override void WriteBody(BinaryWriter w)
    {
        w.Write(Size);
        w.Write(Dimensions.Length);
        foreach (int d in Dimensions) w.Write(d);
    }

    public static DenseEncoder ReadBody(BinaryReader r)
    {
        int size = r.ReadInt32();
        int n = r.ReadInt32();
        if (size <= 0 || n < 0 || n > 16) throw new InvalidDataException("MLNetDeep model file is corrupt: invalid dense input description.");
        var dims = new int[n];
        long product = 1;
        for (int i = 0; i < n; i++)
        {
            dims[i] = r.ReadInt32();
            if (dims[i] <= 0 || (product *= dims[i]) > size)
                throw new InvalidDataException($"MLNetDeep model file is corrupt: the input's dimensions [{string.Join(", ", dims.Take(i + 1))}] do not make {size} values.");
        }
        if (n > 0 && product != size)
            throw new InvalidDataException($"MLNetDeep model file is corrupt: the input's dimensions [{string.Join(", ", dims)}] do not make {size} values.");
        return new DenseEncoder(size, dims);
    }
}

/// <summary>
/// Dense rows. A fixed-capacity store owns one pinned [capacity, D] buffer that a tensor aliases (no input tensor per
/// batch or per row). A growing store (the training cache) writes through a small block into native tensor memory:
/// one tensor of the announced row count when known, otherwise block copies joined when sealed.
/// </summary>
internal sealed class DenseStore : FeatureStore
{
    /// <summary>Floats per staging block when caching (16 MB); tests lower it to exercise many blocks.</summary>
    internal static int BlockElements = 1 << 22;

    private readonly int _d;
    private readonly bool _fixed;
    private readonly float[] _block;
    private readonly int _blockRows;
    private readonly Tensor? _fixedTensor;
    private Tensor? _all;           // preallocated cache, or the sealed cache
    private readonly List<Tensor> _parts = new();
    private long _flushed;
    private int _inBlock;
    private ValueGetter<VBuffer<float>>? _getter;
    private string _column = "";
    private VBuffer<float> _buffer;
    private float _maximum = float.NegativeInfinity;

    public override float? Maximum => _maximum;

    public DenseStore(DenseEncoder encoder, int? capacity, long? expectedRows)
    {
        _d = encoder.Size;
        if (capacity is int cap)
        {
            _fixed = true;
            _blockRows = cap;
            _block = new float[(long)cap * _d];
            using var flat = torch.from_array(_block);
            _fixedTensor = flat.view(cap, _d).DetachFromDisposeScope();
        }
        else
        {
            _blockRows = (int)Math.Max(1, Math.Min(1 << 16, BlockElements / _d));
            _block = new float[(long)_blockRows * _d];
            if (expectedRows is long n && n > 0) _all = torch.empty(new[] { n, (long)_d }, ScalarType.Float32).DetachFromDisposeScope();
        }
    }

    public override long Bytes => (_flushed + _inBlock) * _d * 4L;

    public override void Bind(DataViewRow row, DataViewSchema.Column column)
    {
        _getter = row.GetGetter<VBuffer<float>>(column);
        _column = column.Name;
    }

    public override void Append(long row, string role)
    {
        _getter!(ref _buffer);
        Append(in _buffer, row, role);
    }

    /// <summary>Appends a value read elsewhere (ML.NET's value mappers hand the vector itself).</summary>
    public void Append(in VBuffer<float> value, long row, string role)
    {
        if (value.Length != _d)
            throw new InvalidOperationException($"Feature column '{_column}' has {value.Length} values in row {row} of the {role} data, expected {_d}.");
        if (_fixed && _inBlock == _blockRows) throw new InvalidOperationException("The batch buffer is full.");
        var dst = _block.AsSpan(_inBlock * _d, _d);
        value.CopyTo(dst);
        for (int i = 0; i < dst.Length; i++)
        {
            if (!float.IsFinite(dst[i]))
                throw new InvalidOperationException($"Feature column '{_column}' has a non-finite value ({dst[i]}) in row {row}, slot {i} of the {role} data. "
                    + "Replace missing values first (mlContext.Transforms.ReplaceMissingValues) and check the source data.");
            if (dst[i] > _maximum) _maximum = dst[i];
        }
        if (Count < HashedRows)
            foreach (float v in dst) HashValue(BitConverter.SingleToUInt32Bits(v));
        _inBlock++;
        Count++;
        if (!_fixed && _inBlock == _blockRows) Flush();
    }

    private void Flush()
    {
        if (_inBlock == 0) return;
        using (var whole = torch.from_array(_block))
        using (var used = whole.narrow(0, 0, (long)_inBlock * _d))
        using (var src = used.view(_inBlock, _d))
        {
            if (_all is not null && _flushed + _inBlock <= _all.shape[0])
            {
                using var dst = _all.narrow(0, _flushed, _inBlock);
                dst.copy_(src);
            }
            else
            {
                if (_all is not null) // more rows than announced: keep what was read, continue in parts
                {
                    _parts.Add(_all.narrow(0, 0, _flushed).clone().DetachFromDisposeScope());
                    _all.Dispose();
                    _all = null;
                }
                _parts.Add(src.clone().DetachFromDisposeScope());
            }
        }
        _flushed += _inBlock;
        _inBlock = 0;
    }

    public override void Seal()
    {
        if (_fixed) return;
        Flush();
        if (_all is not null)
        {
            if (_flushed != _all.shape[0])
            {
                var x = _all.narrow(0, 0, _flushed).clone().DetachFromDisposeScope(); // fewer rows than announced
                _all.Dispose();
                _all = x;
            }
        }
        else if (_parts.Count > 0)
        {
            _all = torch.cat(_parts, 0).DetachFromDisposeScope();
            foreach (var t in _parts) t.Dispose();
            _parts.Clear();
        }
    }

    public override void Clear()
    {
        Count = 0;
        _inBlock = 0;
    }

    public override Tensor Collate(long start, int count)
    {
        if (_fixed) return start == 0 && count == _blockRows ? _fixedTensor!.alias() : _fixedTensor!.narrow(0, start, count);
        return _all!.narrow(0, start, count);
    }

    public override Tensor Collate(ReadOnlySpan<long> rows)
    {
        using var idx = torch.tensor(rows.ToArray());
        return (_fixed ? _fixedTensor! : _all!).index_select(0, idx);
    }

    public override void Dispose()
    {
        _fixedTensor?.Dispose();
        _all?.Dispose();
        foreach (var t in _parts) t.Dispose();
        _parts.Clear();
        _all = null;
    }
}
