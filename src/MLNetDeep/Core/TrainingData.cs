using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetDeep;

/// <summary>What the label column holds and how it becomes a target tensor.</summary>
internal enum LabelKind
{
    /// <summary><c>bool</c> label, float target 0/1.</summary>
    Boolean,
    /// <summary>Key-typed label, int64 target 0..K-1.</summary>
    Key,
    /// <summary><c>float</c> label, float target.</summary>
    Float,
}

/// <summary>
/// Training or validation rows as batches of tensors. Either cached (one feature tensor [N, D] and one target
/// tensor, read once; shuffled per epoch by index) or streamed from the IDataView cursor every epoch into
/// reusable batch buffers, so memory is bounded by the batch size. Never a tensor per row.
/// </summary>
internal sealed class TrainingData : IDisposable
{
    private readonly IHostEnvironment _env;
    private readonly IDataView? _stream;
    private readonly string _featureColumn;
    private readonly string _labelColumn;
    private readonly string _role;
    private readonly LabelKind _kind;
    private readonly int _classCount;
    private Tensor? _x;
    private Tensor? _y;

    public int FeatureSize { get; }
    public long RowCount { get; }
    public bool IsCached => _x is not null;

    private TrainingData(IHostEnvironment env, IDataView? stream, string featureColumn, string labelColumn, string role, LabelKind kind, int classCount, int featureSize, long rows, Tensor? x, Tensor? y)
    {
        _env = env;
        _stream = stream;
        _featureColumn = featureColumn;
        _labelColumn = labelColumn;
        _role = role;
        _kind = kind;
        _classCount = classCount;
        FeatureSize = featureSize;
        RowCount = rows;
        _x = x;
        _y = y;
    }

    /// <summary>Checks the columns and reads (cached) or counts (streamed) the rows.</summary>
    public static TrainingData Load(IHostEnvironment env, IChannel ch, IDataView data, string featureColumn, string labelColumn,
        string role, LabelKind kind, int classCount, DataCaching caching, int maxCacheMegabytes)
    {
        int featureSize = CheckFeatureColumn(data.Schema, featureColumn, role);
        CheckLabelColumn(data.Schema, labelColumn, kind, role);
        long? knownRows = data.GetRowCount();
        bool cache = caching switch
        {
            DataCaching.Memory => true,
            DataCaching.None => false,
            _ => knownRows is long n ? n * featureSize * 4L <= maxCacheMegabytes * 1024L * 1024L : featureSize * 4L * 100_000 <= maxCacheMegabytes * 1024L * 1024L,
        };
        if (cache)
        {
            var (x, y, rows) = ReadAll(data, featureColumn, labelColumn, role, kind, classCount, featureSize);
            ch.Info($"MLNetDeep: {role} data cached in memory: {rows} rows x {featureSize} features ({rows * featureSize * 4.0 / (1 << 20):F1} MiB).");
            return new TrainingData(env, null, featureColumn, labelColumn, role, kind, classCount, featureSize, rows, x, y);
        }
        long count = knownRows ?? CountRows(data, labelColumn);
        ch.Info($"MLNetDeep: {role} data streamed from the IDataView every epoch: {count} rows x {featureSize} features.");
        return new TrainingData(env, data, featureColumn, labelColumn, role, kind, classCount, featureSize, count, null, null);
    }

    /// <summary>The feature column must exist and be a known-size vector of float.</summary>
    public static int CheckFeatureColumn(DataViewSchema schema, string featureColumn, string role)
    {
        var col = schema.GetColumnOrNull(featureColumn)
            ?? throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.FeatureColumnName), $"The {role} data has no feature column '{featureColumn}'.");
        if (col.Type is not VectorDataViewType vt || vt.ItemType != NumberDataViewType.Single || !vt.IsKnownSize || vt.Size == 0)
            throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.FeatureColumnName),
                $"Feature column '{featureColumn}' of the {role} data must be a known-size vector of Single (float), but is {col.Type}. "
                + "Use Concatenate to build a fixed-size vector, and ConvertType for other number types.");
        return vt.Size;
    }

    public static void CheckLabelColumn(DataViewSchema schema, string labelColumn, LabelKind kind, string role)
    {
        var col = schema.GetColumnOrNull(labelColumn)
            ?? throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.LabelColumnName), $"The {role} data has no label column '{labelColumn}'.");
        bool ok = kind switch
        {
            LabelKind.Boolean => col.Type == BooleanDataViewType.Instance,
            LabelKind.Key => col.Type is KeyDataViewType,
            _ => col.Type == NumberDataViewType.Single,
        };
        if (!ok)
        {
            string expected = kind switch
            {
                LabelKind.Boolean => "Boolean for binary classification (use a bool column, or MapValue/expression to make one)",
                LabelKind.Key => "a key type for multiclass classification (use mlContext.Transforms.Conversion.MapValueToKey)",
                _ => "Single (float) for regression (use ConvertType)",
            };
            throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.LabelColumnName),
                $"Label column '{labelColumn}' of the {role} data is {col.Type}; expected {expected}.");
        }
    }

    /// <summary>Number of classes of a key-typed label column.</summary>
    public static int ClassCount(DataViewSchema schema, string labelColumn)
    {
        var key = (KeyDataViewType)schema[labelColumn].Type;
        if (key.Count < 2 || key.Count > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.LabelColumnName), $"Label column '{labelColumn}' must have at least 2 classes, has {key.Count}.");
        return (int)key.Count;
    }

    private static long CountRows(IDataView data, string labelColumn)
    {
        long n = 0;
        using var cursor = data.GetRowCursor(new[] { data.Schema[labelColumn] });
        while (cursor.MoveNext()) n++;
        return n;
    }

    /// <summary>Reads one row's label into the target buffers, checking it.</summary>
    private sealed class LabelReader
    {
        private readonly ValueGetter<bool>? _bool;
        private readonly ValueGetter<uint>? _key;
        private readonly ValueGetter<float>? _float;
        private readonly string _column;
        private readonly string _role;
        private readonly int _classCount;
        private bool _b;
        private uint _k;
        private float _f;

        public LabelReader(DataViewRowCursor cursor, DataViewSchema.Column col, LabelKind kind, int classCount, string role)
        {
            _column = col.Name;
            _role = role;
            _classCount = classCount;
            switch (kind)
            {
                case LabelKind.Boolean: _bool = cursor.GetGetter<bool>(col); break;
                case LabelKind.Key:
                    if (col.Type.RawType != typeof(uint))
                        throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.LabelColumnName), $"Label column '{col.Name}' must be a UInt32 key type, is {col.Type}.");
                    _key = cursor.GetGetter<uint>(col);
                    break;
                default: _float = cursor.GetGetter<float>(col); break;
            }
        }

        public float ReadFloat(long row)
        {
            if (_bool is not null) { _bool(ref _b); return _b ? 1f : 0f; }
            _float!(ref _f);
            if (!float.IsFinite(_f))
                throw new InvalidOperationException($"Label column '{_column}' has a missing or non-finite value ({_f}) in row {row} of the {_role} data; remove or impute such rows (e.g. mlContext.Data.FilterRowsByMissingValues).");
            return _f;
        }

        public long ReadClass(long row)
        {
            _key!(ref _k);
            if (_k == 0 || _k > _classCount)
                throw new InvalidOperationException($"Label column '{_column}' has a missing key value in row {row} of the {_role} data (a value not seen when the key was built, or an empty label); remove such rows first.");
            return _k - 1;
        }
    }

    /// <summary>Floats per block when caching (16 MB); tests lower it to exercise many blocks.</summary>
    internal static int BlockElements = 1 << 22;

    private static (Tensor X, Tensor Y, long Rows) ReadAll(IDataView data, string featureColumn, string labelColumn, string role, LabelKind kind, int classCount, int d)
    {
        // The rows go through a small reusable block (about 16 MB) into native tensor memory: one tensor of the
        // announced row count when the IDataView knows it, otherwise a list of block copies concatenated at the
        // end. No managed array of the data's size exists, so disposing the tensor when Fit ends frees the memory
        // at once (repeated Fits in one process, as in AutoML-style loops, do not pile up copies in the GC heap).
        long? known = data.GetRowCount();
        int blockRows = (int)Math.Max(1, Math.Min(1 << 16, BlockElements / d));
        var block = new float[(long)blockRows * d];
        Tensor? all = known is long n && n > 0 ? torch.empty(new[] { n, (long)d }, ScalarType.Float32).DetachFromDisposeScope() : null;
        var parts = new List<Tensor>();
        long flushed = 0;
        int inBlock = 0;
        void Flush()
        {
            if (inBlock == 0) return;
            using (var whole = torch.from_array(block))
            using (var used = whole.narrow(0, 0, (long)inBlock * d))
            using (var src = used.view(inBlock, d))
            {
                if (all is not null && flushed + inBlock <= all.shape[0])
                {
                    using var dst = all.narrow(0, flushed, inBlock);
                    dst.copy_(src);
                }
                else
                {
                    if (all is not null) // more rows than announced: keep what was read, continue in parts
                    {
                        parts.Add(all.narrow(0, 0, flushed).clone().DetachFromDisposeScope());
                        all.Dispose();
                        all = null;
                    }
                    parts.Add(src.clone().DetachFromDisposeScope());
                }
            }
            flushed += inBlock;
            inBlock = 0;
        }

        var floatLabels = new List<float>();
        var classLabels = new List<long>();
        var featureCol = data.Schema[featureColumn];
        var labelCol = data.Schema[labelColumn];
        Tensor x;
        try
        {
            using (var cursor = data.GetRowCursor(new[] { featureCol, labelCol }))
            {
                var features = cursor.GetGetter<VBuffer<float>>(featureCol);
                var labels = new LabelReader(cursor, labelCol, kind, classCount, role);
                VBuffer<float> buffer = default;
                long row = 0;
                bool upstream = false;
                try
                {
                    while (true)
                    {
                        upstream = true;
                        if (!cursor.MoveNext()) break;
                        features(ref buffer);
                        upstream = false;
                        if (buffer.Length != d)
                            throw new InvalidOperationException($"Feature column '{featureColumn}' has {buffer.Length} values in row {row} of the {role} data, expected {d}.");
                        buffer.CopyTo(block.AsSpan(inBlock * d, d));
                        if (kind == LabelKind.Key) classLabels.Add(labels.ReadClass(row));
                        else floatLabels.Add(labels.ReadFloat(row));
                        row++;
                        if (++inBlock == blockRows) Flush();
                    }
                }
                catch (Exception e) when (upstream && e is not OperationCanceledException)
                {
                    throw ReadFailure(e, row, role);
                }
                Flush();
                if (row == 0)
                    throw new InvalidOperationException($"The {role} data is empty: the IDataView produced no rows.");
            }
            if (all is not null)
            {
                if (flushed == all.shape[0]) { x = all; all = null; }
                else
                {
                    // Fewer rows than announced.
                    x = all.narrow(0, 0, flushed).clone().DetachFromDisposeScope();
                }
            }
            else x = torch.cat(parts, 0).DetachFromDisposeScope();
        }
        finally
        {
            all?.Dispose();
            foreach (var t in parts) t.Dispose();
        }

        // Finiteness is checked block by block: the check's temporaries stay small next to the data.
        try
        {
            for (long start = 0; start < flushed; start += blockRows)
            {
                using var rows = x.narrow(0, start, Math.Min(blockRows, flushed - start));
                CheckFinite(rows, featureColumn, role, start);
            }
        }
        catch
        {
            x.Dispose();
            throw;
        }
        var y = kind == LabelKind.Key
            ? torch.tensor(classLabels.ToArray()).DetachFromDisposeScope()
            : torch.tensor(floatLabels.ToArray()).DetachFromDisposeScope();
        return (x, y, flushed);
    }

    /// <summary>
    /// ML.NET wraps failures of its parallel cursors (e.g. an image file that cannot be loaded) in a generic message;
    /// this surfaces the root cause, which names the file, with the row.
    /// </summary>
    private static InvalidOperationException ReadFailure(Exception e, long row, string role)
    {
        var root = e;
        while (root.InnerException is not null) root = root.InnerException;
        return new InvalidOperationException($"Reading the {role} data failed at or near row {row}: {root.Message}", e);
    }

    private static void CheckFinite(Tensor x, string featureColumn, string role, long firstRow)
    {
        using var scope = torch.NewDisposeScope();
        var bad = torch.isfinite(x).logical_not();
        if (!bad.any().item<bool>()) return;
        var where = bad.nonzero();
        long r = where[0, 0].item<long>() + firstRow;
        long s = where[0, 1].item<long>();
        float v = x[where[0, 0], where[0, 1]].item<float>();
        throw NonFinite(featureColumn, role, r, s, v);
    }

    private static InvalidOperationException NonFinite(string featureColumn, string role, long row, long slot, float value) =>
        new($"Feature column '{featureColumn}' has a non-finite value ({value}) in row {row}, slot {slot} of the {role} data. "
            + "Replace missing values first (mlContext.Transforms.ReplaceMissingValues) and check the source data.");

    /// <summary>Streamed batches are shuffled: on a non-finite value, find its row in source order (error path only).</summary>
    private void CheckFiniteStreamed(Tensor x)
    {
        using (var scope = torch.NewDisposeScope())
            if (torch.isfinite(x).all().item<bool>()) return;
        var col = _stream!.Schema[_featureColumn];
        using var cursor = _stream.GetRowCursor(new[] { col });
        var getter = cursor.GetGetter<VBuffer<float>>(col);
        VBuffer<float> buffer = default;
        for (long row = 0; cursor.MoveNext(); row++)
        {
            getter(ref buffer);
            int slot = 0;
            foreach (float v in buffer.DenseValues())
            {
                if (!float.IsFinite(v)) throw NonFinite(_featureColumn, _role, row, slot, v);
                slot++;
            }
        }
        CheckFinite(x, _featureColumn, _role, 0);
    }

    /// <summary>Targets of all rows as float (regression statistics); cached data only, else one streaming pass.</summary>
    public (double Mean, double Std) LabelMoments()
    {
        if (_y is not null)
        {
            using var scope = torch.NewDisposeScope();
            var y = _y.to_type(ScalarType.Float64);
            return (y.mean().item<double>(), RowCount > 1 ? y.std().item<double>() : 0);
        }
        double sum = 0, sumSq = 0;
        long n = 0;
        using var cursor = _stream!.GetRowCursor(new[] { _stream.Schema[_labelColumn] });
        var labels = new LabelReader(cursor, _stream.Schema[_labelColumn], _kind, _classCount, _role);
        while (cursor.MoveNext())
        {
            double v = labels.ReadFloat(n++);
            sum += v;
            sumSq += v * v;
        }
        double mean = sum / Math.Max(1, n);
        return (mean, n > 1 ? Math.Sqrt(Math.Max(0, (sumSq - n * mean * mean) / (n - 1))) : 0);
    }

    /// <summary>
    /// The epoch's batches. With <paramref name="shuffle"/> the row order is permuted by that generator.
    /// Each yielded pair is valid until the next one is requested; the caller's dispose scope owns derived tensors.
    /// </summary>
    public IEnumerable<(Tensor X, Tensor Y)> Batches(int batchSize, Random? shuffle, Device device, bool dropSingletonLast, int shufflePoolRows = 10_000)
        => IsCached ? CachedBatches(batchSize, shuffle, device, dropSingletonLast) : StreamedBatches(batchSize, shuffle, device, dropSingletonLast, shufflePoolRows);

    private IEnumerable<(Tensor X, Tensor Y)> CachedBatches(int batchSize, Random? shuffle, Device device, bool dropSingletonLast)
    {
        long n = RowCount;
        Tensor? order = null;
        if (shuffle is not null)
        {
            var perm = new long[n];
            for (long i = 0; i < n; i++) perm[i] = i;
            for (long i = n - 1; i > 0; i--)
            {
                long j = shuffle.NextInt64(i + 1);
                (perm[i], perm[j]) = (perm[j], perm[i]);
            }
            order = torch.tensor(perm).DetachFromDisposeScope();
        }
        try
        {
            for (long start = 0; start < n; start += batchSize)
            {
                long len = Math.Min(batchSize, n - start);
                if (len == 1 && dropSingletonLast && n > 1) yield break;
                Tensor x, y;
                if (order is null)
                {
                    x = _x!.narrow(0, start, len);
                    y = _y!.narrow(0, start, len);
                }
                else
                {
                    using var idx = order.narrow(0, start, len);
                    x = _x!.index_select(0, idx);
                    y = _y!.index_select(0, idx);
                }
                if (device.type != DeviceType.CPU) { x = x.to(device); y = y.to(device); }
                yield return (x, y);
            }
        }
        finally
        {
            order?.Dispose();
        }
    }

    private bool ReadRow(DataViewRowCursor cursor, ValueGetter<VBuffer<float>> features, ref VBuffer<float> buffer, long row)
    {
        try
        {
            if (!cursor.MoveNext()) return false;
            features(ref buffer);
            return true;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw ReadFailure(e, row, _role);
        }
    }

    private IEnumerable<(Tensor X, Tensor Y)> StreamedBatches(int batchSize, Random? shuffle, Device device, bool dropSingletonLast, int shufflePoolRows)
    {
        int d = FeatureSize;
        var xBuf = new float[batchSize, d];
        var yFloat = _kind == LabelKind.Key ? null : new float[batchSize];
        var yLong = _kind == LabelKind.Key ? new long[batchSize] : null;
        using var xAll = torch.from_array(xBuf).DetachFromDisposeScope();
        using var yAll = (yLong is not null ? torch.from_array(yLong) : torch.from_array(yFloat!)).DetachFromDisposeScope();
        var data = _stream!;
        var featureCol = data.Schema[_featureColumn];
        var labelCol = data.Schema[_labelColumn];
        var cols = new[] { featureCol, labelCol };
        DataViewRowCursor cursor;
        if (shuffle is null) cursor = data.GetRowCursor(cols);
        else if (data.CanShuffle) cursor = data.GetRowCursor(cols, new Random(shuffle.Next()));
        else
        {
            var shuffled = new MLContext(shuffle.Next()).Data.ShuffleRows(data, shufflePoolSize: Math.Max(shufflePoolRows, 4 * batchSize));
            cursor = shuffled.GetRowCursor(cols.Select(c => shuffled.Schema[c.Name]));
        }
        using (cursor)
        {
            var features = cursor.GetGetter<VBuffer<float>>(cursor.Schema[_featureColumn]);
            var labels = new LabelReader(cursor, cursor.Schema[_labelColumn], _kind, _classCount, _role);
            VBuffer<float> buffer = default;
            long row = 0;
            while (true)
            {
                int len = 0;
                var span = System.Runtime.InteropServices.MemoryMarshal.CreateSpan(ref xBuf[0, 0], batchSize * d);
                while (len < batchSize && ReadRow(cursor, features, ref buffer, row))
                {
                    if (buffer.Length != d)
                        throw new InvalidOperationException($"Feature column '{_featureColumn}' has {buffer.Length} values in row {row} of the {_role} data, expected {d}.");
                    buffer.CopyTo(span.Slice(len * d, d));
                    if (yLong is not null) yLong[len] = labels.ReadClass(row);
                    else yFloat![len] = labels.ReadFloat(row);
                    len++;
                    row++;
                }
                if (len == 0) break;
                if (len == 1 && dropSingletonLast && row > 1) break;
                var x = len == batchSize ? xAll.alias() : xAll.narrow(0, 0, len);
                var y = len == batchSize ? yAll.alias() : yAll.narrow(0, 0, len);
                CheckFiniteStreamed(x);
                if (device.type != DeviceType.CPU) { x = x.to(device); y = y.to(device); }
                yield return (x, y);
                if (len < batchSize) break;
            }
            if (row == 0)
                throw new InvalidOperationException($"The {_role} data is empty: the IDataView produced no rows.");
        }
    }

    public void Dispose()
    {
        _x?.Dispose();
        _y?.Dispose();
        _x = _y = null;
    }
}
