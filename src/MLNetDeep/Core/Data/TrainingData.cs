using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetDeep;

/// <summary>
/// Training or validation rows as batches of tensors, through the family's input encoder and the task head's labels.
/// Either cached (read once into a feature store and a label store; shuffled per epoch by index) or streamed from the
/// IDataView cursor every epoch into reusable batch stores, so memory is bounded by the batch size. Never a tensor per row.
/// </summary>
internal sealed class TrainingData : IDisposable
{
    private readonly IDataView? _stream;
    private readonly InputEncoder _encoder;
    private readonly TaskHead _head;
    private readonly string _featureColumn;
    private readonly string _labelColumn;
    private string? _weightColumn;
    private readonly string _role;
    private FeatureStore? _features;
    private readonly LabelStore? _labels;

    public long RowCount { get; }

    /// <summary>The largest feature value of the rows read (dense features; null for tokens).</summary>
    public float? FeatureMaximum { get; private init; }
    public bool IsCached => _features is not null;

    /// <summary>Row count and a hash of the first rows' features and labels, for the checkpoint fingerprint.</summary>
    public string Fingerprint { get; }

    private TrainingData(IDataView? stream, InputEncoder encoder, TaskHead head, string featureColumn, string labelColumn, string role,
        long rows, FeatureStore? features, LabelStore? labels, string fingerprint)
    {
        _stream = stream;
        _encoder = encoder;
        _head = head;
        _featureColumn = featureColumn;
        _labelColumn = labelColumn;
        _role = role;
        RowCount = rows;
        _features = features;
        _labels = labels;
        Fingerprint = fingerprint;
    }

    /// <summary>Checks the columns and reads (cached) or counts (streamed) the rows.</summary>
    public static TrainingData Load(IChannel ch, IDataView data, InputEncoder encoder, TaskHead head, string featureColumn, string labelColumn,
        string role, DataCaching caching, int maxCacheMegabytes, CancellationToken cancel = default, string? weightColumn = null)
    {
        encoder.CheckColumn(data.Schema, featureColumn, role);
        head.CheckLabel(data.Schema, labelColumn, role);
        if (weightColumn is not null)
        {
            var wc = data.Schema.GetColumnOrNull(weightColumn)
                ?? throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.ExampleWeightColumnName), $"The {role} data has no example weight column '{weightColumn}'.");
            if (wc.Type != NumberDataViewType.Single)
                throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.ExampleWeightColumnName),
                    $"Example weight column '{weightColumn}' of the {role} data must be Single (float), but is {wc.Type}; convert it first (mlContext.Transforms.Conversion.ConvertType).");
        }
        long? knownRows = data.GetRowCount();
        long budget = maxCacheMegabytes * 1024L * 1024L;
        bool cache = caching switch
        {
            DataCaching.Memory => true,
            DataCaching.None => false,
            _ => knownRows is not long n || encoder.CacheBytes(n) is not long b || b <= budget,
        };
        if (cache)
        {
            // Auto reads within the budget (the row count or the tokens may be unknown beforehand) and streams when it is exceeded.
            var loaded = Read(data, encoder, head, featureColumn, labelColumn, weightColumn, role, caching == DataCaching.Auto ? budget : long.MaxValue, cancel);
            if (loaded is var (features, labels))
            {
                ch.Info($"MLNetDeep: {role} data cached in memory: {features.Count} rows of {encoder.Describe()} ({(features.Bytes + labels.Bytes) / (double)(1 << 20):F1} MiB).");
                return new TrainingData(null, encoder, head, featureColumn, labelColumn, role, features.Count, features, labels, $"{features.Count} rows, hash {features.Hash ^ labels.Hash:x16}")
                    { FeatureMaximum = features.Maximum, _weightColumn = weightColumn };
            }
            ch.Info($"MLNetDeep: the {role} data does not fit in MaximumCacheMegabytes ({maxCacheMegabytes} MiB); streaming it from the IDataView every epoch instead.");
        }
        var (count, hash, maximum) = Scan(data, encoder, head, featureColumn, labelColumn, weightColumn, role, cancel);
        ch.Info($"MLNetDeep: {role} data streamed from the IDataView every epoch: {count} rows of {encoder.Describe()}.");
        return new TrainingData(data, encoder, head, featureColumn, labelColumn, role, count, null, null, $"{count} rows, hash {hash:x16}") { FeatureMaximum = maximum, _weightColumn = weightColumn };
    }

    /// <summary>Reads every row into stores, or returns null when they outgrow <paramref name="budget"/> bytes.</summary>
    private static (FeatureStore, LabelStore)? Read(IDataView data, InputEncoder encoder, TaskHead head, string featureColumn, string labelColumn,
        string? weightColumn, string role, long budget, CancellationToken cancel)
    {
        var features = encoder.CreateStore(null, data.GetRowCount());
        var labels = new LabelStore(head);
        bool keep = false;
        try
        {
            var fc = data.Schema[featureColumn];
            var lc = data.Schema[labelColumn];
            using var cursor = data.GetRowCursor(Columns(data.Schema, fc, lc, weightColumn));
            features.Bind(cursor, fc);
            labels.Bind(cursor, lc);
            if (weightColumn is not null) labels.BindWeight(cursor, data.Schema[weightColumn]);
            long row = 0;
            while (MoveNext(cursor, row, role))
            {
                Append(features, labels, row, role);
                row++;
                if ((row & 1023) == 0)
                {
                    cancel.ThrowIfCancellationRequested();
                    if (features.Bytes + labels.Bytes > budget) return null;
                }
            }
            if (row == 0) throw new InvalidOperationException($"The {role} data is empty: the IDataView produced no rows.");
            labels.CheckClasses(role);
            if (features.Bytes + labels.Bytes > budget) return null;
            features.Seal();
            keep = true;
            return (features, labels);
        }
        finally
        {
            if (!keep) features.Dispose();
        }
    }

    /// <summary>One pass over streamed data: counts the rows and checks and hashes the first ones.</summary>
    private static (long Count, ulong Hash, float? Maximum) Scan(IDataView data, InputEncoder encoder, TaskHead head, string featureColumn, string labelColumn,
        string? weightColumn, string role, CancellationToken cancel)
    {
        using var features = encoder.CreateStore(1);
        var labels = new LabelStore(head);
        var fc = data.Schema[featureColumn];
        var lc = data.Schema[labelColumn];
        long row = 0;
        ulong hash = 0;
        using (var cursor = data.GetRowCursor(Columns(data.Schema, fc, lc, weightColumn)))
        {
            features.Bind(cursor, fc);
            labels.Bind(cursor, lc);
            if (weightColumn is not null) labels.BindWeight(cursor, data.Schema[weightColumn]);
            while (MoveNext(cursor, row, role))
            {
                // Every row is checked here, in source order, so a bad value is reported with its row number.
                features.Clear();
                labels.Clear();
                Append(features, labels, row, role);
                if (row < FeatureStore.HashedRows) hash = features.Hash ^ labels.Hash;
                row++;
                if ((row & 1023) == 0) cancel.ThrowIfCancellationRequested();
            }
        }
        if (row == 0) throw new InvalidOperationException($"The {role} data is empty: the IDataView produced no rows.");
        labels.CheckClasses(role);
        return (row, hash, features.Maximum);
    }

    private static DataViewSchema.Column[] Columns(DataViewSchema schema, DataViewSchema.Column features, DataViewSchema.Column label, string? weightColumn) =>
        weightColumn is null ? new[] { features, label } : new[] { features, label, schema[weightColumn] };

    private static bool MoveNext(DataViewRowCursor cursor, long row, string role)
    {
        try { return cursor.MoveNext(); }
        catch (Exception e) when (e is not OperationCanceledException) { throw ReadFailure(e, row, role); }
    }

    private static void Append(FeatureStore features, LabelStore labels, long row, string role)
    {
        try { features.Append(row, role); }
        catch (Exception e) when (e is not InvalidOperationException and not ArgumentException and not OperationCanceledException) { throw ReadFailure(e, row, role); }
        labels.Append(row, role);
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

    /// <summary>Mean and standard deviation of every label value (regression and forecasting statistics).</summary>
    public (double Mean, double Std) LabelMoments()
    {
        if (_labels is not null) return _labels.Moments();
        // Streamed: one pass of the labels (and example weights) only: West's weighted form of Welford's update, which
        // with every weight 1 is Welford's.
        var labels = new LabelStore(_head);
        var lc = _stream!.Schema[_labelColumn];
        double mean = 0, m2 = 0, total = 0;
        using var cursor = _stream.GetRowCursor(_weightColumn is null ? new[] { lc } : new[] { lc, _stream.Schema[_weightColumn] });
        labels.Bind(cursor, lc);
        if (_weightColumn is not null) labels.BindWeight(cursor, _stream.Schema[_weightColumn]);
        long row = 0;
        void Add(double v, double w)
        {
            if (w <= 0) return;
            total += w;
            double d = v - mean;
            mean += w / total * d;
            m2 += w * d * (v - mean);
        }
        while (cursor.MoveNext())
        {
            labels.Clear();
            labels.Append(row++, _role);
            double weight = labels.LastWeight;
            foreach (float v in labels.LastValues) Add(v, weight);
        }
        return (mean, total > 1 ? Math.Sqrt(m2 / (total - 1)) : 0);
    }

    /// <summary>
    /// The epoch's batches. With <paramref name="shuffle"/> the row order is permuted by that generator; with
    /// <paramref name="bucketByLength"/> (cached token data) rows of similar length are batched together, the batches
    /// in random order. Each yielded pair is valid until the next one is requested; the caller's dispose scope owns them.
    /// </summary>
    public IEnumerable<(Tensor X, Tensor Y, Tensor? W)> Batches(int batchSize, Random? shuffle, Device device, bool dropSingletonLast, int shufflePoolRows = 10_000, bool bucketByLength = false)
        => IsCached ? CachedBatches(batchSize, shuffle, device, dropSingletonLast, bucketByLength) : StreamedBatches(batchSize, shuffle, device, dropSingletonLast, shufflePoolRows);

    private IEnumerable<(Tensor X, Tensor Y, Tensor? W)> CachedBatches(int batchSize, Random? shuffle, Device device, bool dropSingletonLast, bool bucketByLength)
    {
        long n = RowCount;
        if (shuffle is null)
        {
            for (long start = 0; start < n; start += batchSize)
            {
                int len = (int)Math.Min(batchSize, n - start);
                if (len == 1 && dropSingletonLast && n > 1) yield break;
                yield return ToDevice(_features!.Collate(start, len), _labels!.Collate(start, len), _labels.CollateWeights(start, len), device);
            }
            yield break;
        }
        var perm = new long[n];
        for (long i = 0; i < n; i++) perm[i] = i;
        for (long i = n - 1; i > 0; i--)
        {
            long j = shuffle.NextInt64(i + 1);
            (perm[i], perm[j]) = (perm[j], perm[i]);
        }
        var starts = new List<long>();
        if (bucketByLength)
        {
            // Sort pools of 50 batches by length, cut them into batches and visit the batches in random order.
            long pool = (long)batchSize * 50;
            for (long p = 0; p < n; p += pool)
            {
                int len = (int)Math.Min(pool, n - p);
                var keys = new int[len];
                var rows = perm.AsSpan((int)p, len);
                for (int i = 0; i < len; i++) keys[i] = _features!.Length(rows[i]);
                keys.AsSpan().Sort(rows); // ties keep an order that depends only on the seed
            }
            for (long s = 0; s < n; s += batchSize) starts.Add(s);
            for (int i = starts.Count - 1; i > 0; i--)
            {
                int j = shuffle.Next(i + 1);
                (starts[i], starts[j]) = (starts[j], starts[i]);
            }
        }
        else for (long s = 0; s < n; s += batchSize) starts.Add(s);
        foreach (long start in starts)
        {
            int len = (int)Math.Min(batchSize, n - start);
            if (len == 1 && dropSingletonLast && n > 1) continue;
            var rows = perm.AsSpan((int)start, len);
            var x = _features!.Collate(rows);
            var y = _labels!.Collate(rows);
            yield return ToDevice(x, y, _labels.CollateWeights(rows), device);
        }
    }

    private static (Tensor, Tensor, Tensor?) ToDevice(Tensor x, Tensor y, Tensor? w, Device device) =>
        device.type == DeviceType.CPU ? (x, y, w) : (x.to(device), y.to(device), w?.to(device));

    private IEnumerable<(Tensor X, Tensor Y, Tensor? W)> StreamedBatches(int batchSize, Random? shuffle, Device device, bool dropSingletonLast, int shufflePoolRows)
    {
        var data = _stream!;
        var cols = Columns(data.Schema, data.Schema[_featureColumn], data.Schema[_labelColumn], _weightColumn);
        DataViewRowCursor cursor;
        if (shuffle is null) cursor = data.GetRowCursor(cols);
        else if (data.CanShuffle) cursor = data.GetRowCursor(cols, new Random(shuffle.Next()));
        else
        {
            var shuffled = new MLContext(shuffle.Next()).Data.ShuffleRows(data, shufflePoolSize: Math.Max(shufflePoolRows, 4 * batchSize));
            cursor = shuffled.GetRowCursor(cols.Select(c => shuffled.Schema[c.Name]));
        }
        using var features = _encoder.CreateStore(batchSize);
        var labels = new LabelStore(_head);
        using (cursor)
        {
            features.Bind(cursor, cursor.Schema[_featureColumn]);
            labels.Bind(cursor, cursor.Schema[_labelColumn]);
            if (_weightColumn is not null) labels.BindWeight(cursor, cursor.Schema[_weightColumn]);
            long row = 0;
            while (true)
            {
                features.Clear();
                labels.Clear();
                int len = 0;
                while (len < batchSize && MoveNext(cursor, row, _role))
                {
                    Append(features, labels, row, _role);
                    len++;
                    row++;
                }
                if (len == 0) break;
                if (len == 1 && dropSingletonLast && row > 1) break;
                yield return ToDevice(features.Collate(0, len), labels.Collate(0, len), labels.CollateWeights(0, len), device);
                if (len < batchSize) break;
            }
            if (row == 0)
                throw new InvalidOperationException($"The {_role} data is empty: the IDataView produced no rows.");
        }
    }

    public void Dispose()
    {
        _features?.Dispose();
        _features = null;
    }
}
