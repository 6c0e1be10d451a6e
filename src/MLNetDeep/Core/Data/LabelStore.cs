// Labels of the training or validation rows, read and checked as the task head's label kind says.
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetDeep;

/// <summary>Labels kept in managed arrays (one float, one class or H floats per row); collated into target tensors.</summary>
internal sealed class LabelStore
{
    private readonly LabelKind _kind;
    private readonly int _width;
    private readonly int _classCount;
    private float[] _floats = Array.Empty<float>();
    private long[] _classes = Array.Empty<long>();
    private ValueGetter<bool>? _bool;
    private ValueGetter<uint>? _key;
    private ValueGetter<float>? _float;
    private ValueGetter<VBuffer<float>>? _vector;
    private string _column = "";
    private bool _b;
    private uint _k;
    private float _f;
    private VBuffer<float> _v;
    private long _rowsSeen, _positives;
    private ValueGetter<float>? _weight;
    private string _weightColumn = "";
    private float[] _weights = Array.Empty<float>();
    private float _w;
    private double _weightSum;
    private bool[]? _classSeen;
    private int _distinctClasses;

    public LabelStore(TaskHead head)
    {
        _kind = head.LabelKind;
        _width = head.LabelWidth;
        _classCount = head.LabelKind == LabelKind.Key ? head.OutputSize : 0;
    }

    public long Count { get; private set; }

    public long Bytes => (_kind == LabelKind.Key ? _classes.LongLength * 8 : _floats.LongLength * 4) + _weights.LongLength * 4;

    /// <summary>Reads each row's example weight from <paramref name="col"/> too (a Single column; checked by the caller).</summary>
    public void BindWeight(DataViewRow row, DataViewSchema.Column col)
    {
        _weightColumn = col.Name;
        _weight = row.GetGetter<float>(col);
    }

    public ulong Hash { get; private set; } = 14695981039346656037UL;

    public void Bind(DataViewRow row, DataViewSchema.Column col)
    {
        _column = col.Name;
        switch (_kind)
        {
            case LabelKind.None: break;
            case LabelKind.Boolean: _bool = row.GetGetter<bool>(col); break;
            case LabelKind.Key: _key = row.GetGetter<uint>(col); break;
            case LabelKind.FloatVector: _vector = row.GetGetter<VBuffer<float>>(col); break;
            default: _float = row.GetGetter<float>(col); break;
        }
    }

    public void Append(long row, string role)
    {
        if (_weight is not null)
        {
            _weight(ref _w);
            if (!float.IsFinite(_w) || _w < 0)
                throw new InvalidOperationException($"Example weight column '{_weightColumn}' has the value {_w} in row {row} of the {role} data; weights must be finite and zero or positive.");
            if (Count == _weights.Length) Array.Resize(ref _weights, (int)Math.Max(256, _weights.LongLength * 2));
            _weights[Count] = _w;
            _weightSum += _w;
            Mix(BitConverter.SingleToUInt32Bits(_w));
        }
        if (_kind == LabelKind.None) { Count++; return; }
        if (_kind == LabelKind.Key)
        {
            _key!(ref _k);
            if (_k == 0 || _k > _classCount)
                throw new InvalidOperationException($"Label column '{_column}' has a missing key value in row {row} of the {role} data (a value not seen when the key was built, or an empty label); remove such rows first.");
            if (Count == _classes.Length) Array.Resize(ref _classes, Math.Max(256, _classes.Length * 2));
            _classes[Count] = _k - 1;
            _classSeen ??= new bool[_classCount];
            if (!_classSeen[_k - 1]) { _classSeen[_k - 1] = true; _distinctClasses++; }
            Mix(_k);
        }
        else
        {
            long at = Count * _width;
            if (at + _width > _floats.Length) Array.Resize(ref _floats, (int)Math.Max(256, Math.Max(at + _width, _floats.LongLength * 2)));
            var dst = _floats.AsSpan((int)at, _width);
            if (_kind == LabelKind.Boolean) { _bool!(ref _b); dst[0] = _b ? 1f : 0f; if (_b) _positives++; }
            else if (_kind == LabelKind.Float) { _float!(ref _f); dst[0] = _f; }
            else
            {
                _vector!(ref _v);
                if (_v.Length != _width)
                    throw new InvalidOperationException($"Label column '{_column}' has {_v.Length} values in row {row} of the {role} data, expected {_width}.");
                _v.CopyTo(dst);
            }
            foreach (float v in dst)
            {
                if (!float.IsFinite(v))
                    throw new InvalidOperationException($"Label column '{_column}' has a missing or non-finite value ({v}) in row {row} of the {role} data; remove or impute such rows (e.g. mlContext.Data.FilterRowsByMissingValues).");
                Mix(BitConverter.SingleToUInt32Bits(v));
            }
        }
        Count++;
        _rowsSeen++;
    }

    /// <summary>
    /// Refuses training labels of one class only (every row read so far, <see cref="Clear"/> notwithstanding): a
    /// classifier trained on them learns nothing and scores every row the same.
    /// </summary>
    public void CheckClasses(string role)
    {
        if (role != "training" || _rowsSeen == 0) return;
        if (_weight is not null && _weightSum <= 0)
            throw new InvalidOperationException($"Example weight column '{_weightColumn}' is zero in all {_rowsSeen} rows of the {role} data; at least one row must count.");
        if (_kind == LabelKind.Boolean && (_positives == 0 || _positives == _rowsSeen))
            throw new InvalidOperationException($"Label column '{_column}' has one class only in the {_rowsSeen} rows of the {role} data (every label is "
                + $"{(_positives == 0 ? "false" : "true")}); a binary classifier needs rows of both classes.");
        if (_kind == LabelKind.Key && _distinctClasses < 2)
            throw new InvalidOperationException($"Label column '{_column}' has one class only in the {_rowsSeen} rows of the {role} data; a classifier needs rows of at least two classes.");
    }

    private void Mix(ulong bits)
    {
        if (Count < FeatureStore.HashedRows) Hash = (Hash ^ bits) * 1099511628211UL;
    }

    public void Clear() => Count = 0;

    public Tensor Collate(long start, int count)
    {
        Span<long> rows = count <= 1024 ? stackalloc long[count] : new long[count];
        for (int i = 0; i < count; i++) rows[i] = start + i;
        return Collate(rows);
    }

    public Tensor Collate(ReadOnlySpan<long> rows)
    {
        int n = rows.Length;
        if (_kind == LabelKind.None) return torch.zeros(n);
        if (_kind == LabelKind.Key)
        {
            var y = new long[n];
            for (int i = 0; i < n; i++) y[i] = _classes[rows[i]];
            return torch.tensor(y);
        }
        var f = new float[n * _width];
        for (int i = 0; i < n; i++) _floats.AsSpan((int)(rows[i] * _width), _width).CopyTo(f.AsSpan(i * _width, _width));
        return _kind == LabelKind.FloatVector ? torch.tensor(f, new long[] { n, _width }) : torch.tensor(f);
    }

    /// <summary>The example weights of <paramref name="rows"/> as a tensor, or null without a weight column.</summary>
    public Tensor? CollateWeights(ReadOnlySpan<long> rows)
    {
        if (_weight is null) return null;
        var w = new float[rows.Length];
        for (int i = 0; i < rows.Length; i++) w[i] = _weights[rows[i]];
        return torch.tensor(w);
    }

    /// <summary>The example weights of rows [<paramref name="start"/>, start + count), or null without a weight column.</summary>
    public Tensor? CollateWeights(long start, int count) => _weight is null ? null : torch.tensor(_weights.AsSpan((int)start, count).ToArray());

    /// <summary>The float label values of the row appended last (regression: one, forecasting: H); no tensor is made.</summary>
    public ReadOnlySpan<float> LastValues => _floats.AsSpan((int)((Count - 1) * _width), _width);

    /// <summary>The example weight of the row appended last (1 without a weight column).</summary>
    public float LastWeight => _weight is null ? 1 : _w;

    /// <summary>
    /// Mean and (sample) standard deviation over every label value held, in two passes; with example weights, weighted
    /// as frequencies (rows of weight 0 do not count; weights of 1 give the unweighted figures).
    /// </summary>
    public (double Mean, double Std) Moments()
    {
        if (_weight is not null) return WeightedMoments();
        long n = Count * _width;
        double sum = 0;
        for (long i = 0; i < n; i++) sum += _floats[i];
        double mean = sum / Math.Max(1, n), ss = 0;
        for (long i = 0; i < n; i++) ss += (_floats[i] - mean) * (_floats[i] - mean);
        return (mean, n > 1 ? Math.Sqrt(ss / (n - 1)) : 0);
    }

    private (double Mean, double Std) WeightedMoments()
    {
        double total = 0, sum = 0;
        for (long r = 0; r < Count; r++)
            for (int j = 0; j < _width; j++) { total += _weights[r]; sum += _weights[r] * _floats[r * _width + j]; }
        double mean = sum / Math.Max(double.Epsilon, total), ss = 0;
        for (long r = 0; r < Count; r++)
            for (int j = 0; j < _width; j++) { double d = _floats[r * _width + j] - mean; ss += _weights[r] * d * d; }
        return (mean, total > 1 ? Math.Sqrt(ss / (total - 1)) : 0);
    }
}
