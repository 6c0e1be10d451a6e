using System.Buffers.Binary;
using System.IO.Compression;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNetDeep;

/// <summary>
/// Reads image data sets in the IDX format of MNIST, Fashion-MNIST, KMNIST and EMNIST (optionally gzipped) into an
/// IDataView: a key-typed label column whose key values are the class names, and a pixel column of floats in [0, 1]
/// whose type records the image dimensions (1 × height × width), ready for the CNN trainers.
/// </summary>
public static class IdxImages
{
    /// <summary>Loads an images file and its labels file (gzipped or not).</summary>
    /// <param name="mlContext">The ML.NET context.</param>
    /// <param name="imagesPath">IDX3 file of unsigned-byte images (e.g. train-images-idx3-ubyte.gz).</param>
    /// <param name="labelsPath">IDX1 file of unsigned-byte labels (e.g. train-labels-idx1-ubyte.gz).</param>
    /// <param name="classNames">Names of the classes, in label order; default "0", "1", ...</param>
    /// <param name="labelColumnName">Name of the label column.</param>
    /// <param name="featureColumnName">Name of the pixel column.</param>
    /// <param name="maxRows">Read at most this many images (the first ones); null for all.</param>
    public static IDataView Load(MLContext mlContext, string imagesPath, string labelsPath, IReadOnlyList<string>? classNames = null,
        string labelColumnName = DefaultColumnNames.Label, string featureColumnName = DefaultColumnNames.Features, int? maxRows = null)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        var (images, count, height, width) = ReadImages(imagesPath);
        var labels = ReadLabels(labelsPath);
        if (labels.Length != count)
            throw new InvalidDataException($"'{imagesPath}' holds {count} images but '{labelsPath}' holds {labels.Length} labels.");
        int classes = classNames?.Count ?? labels.Max() + 1;
        if (labels.Any(l => l >= classes))
            throw new InvalidDataException($"'{labelsPath}' has label {labels.Max()}, but only {classes} class names were given.");
        int rows = Math.Min(count, maxRows ?? int.MaxValue);

        var names = (classNames ?? Enumerable.Range(0, classes).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToList())
            .Select(n => n.AsMemory()).ToArray();
        return new IdxImageDataView(images, labels, rows, height, width, names, labelColumnName, featureColumnName);
    }

    /// <summary>
    /// The images as an IDataView over the raw bytes (one byte per pixel in memory, scaled to floats when read): it
    /// knows its row count, so trainers size their buffers once, and it can be shuffled (random access).
    /// </summary>
    private sealed class IdxImageDataView : IDataView
    {
        private readonly byte[] _pixels, _labels;
        private readonly int _rows, _size;

        public IdxImageDataView(byte[] pixels, byte[] labels, int rows, int height, int width, ReadOnlyMemory<char>[] classNames, string labelName, string featureName)
        {
            if (string.IsNullOrWhiteSpace(labelName)) throw new ArgumentException("The label column name is empty.", nameof(labelName));
            if (string.IsNullOrWhiteSpace(featureName)) throw new ArgumentException("The feature column name is empty.", nameof(featureName));
            if (labelName == featureName) throw new ArgumentException($"The label and feature columns are both named '{labelName}'.", nameof(featureName));
            (_pixels, _labels, _rows, _size) = (pixels, labels, rows, height * width);
            var annotations = new DataViewSchema.Annotations.Builder();
            annotations.AddKeyValues(classNames.Length, TextDataViewType.Instance,
                (ref VBuffer<ReadOnlyMemory<char>> v) => v = new VBuffer<ReadOnlyMemory<char>>(classNames.Length, classNames));
            var builder = new DataViewSchema.Builder();
            builder.AddColumn(labelName, new KeyDataViewType(typeof(uint), classNames.Length), annotations.ToAnnotations());
            builder.AddColumn(featureName, new VectorDataViewType(NumberDataViewType.Single, 1, height, width));
            Schema = builder.ToSchema();
        }

        public bool CanShuffle => true;
        public DataViewSchema Schema { get; }
        public long? GetRowCount() => _rows;

        public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) => new Cursor(this, rand);

        public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) => new[] { GetRowCursor(columnsNeeded, rand) };

        private sealed class Cursor : DataViewRowCursor
        {
            private readonly IdxImageDataView _view;
            private readonly int[]? _order;
            private long _position = -1;

            public Cursor(IdxImageDataView view, Random? rand)
            {
                _view = view;
                if (rand is not null)
                {
                    _order = Enumerable.Range(0, view._rows).ToArray();
                    rand.Shuffle(_order);
                }
            }

            public override DataViewSchema Schema => _view.Schema;
            public override long Position => _position;
            public override long Batch => 0;
            private int Row => _order is null ? (int)_position : _order[_position];

            public override bool MoveNext()
            {
                if (_position + 1 >= _view._rows) { _position = _view._rows; return false; }
                _position++;
                return true;
            }

            public override bool IsColumnActive(DataViewSchema.Column column) => column.Index < 2;

            public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId id) =>
            {
                CheckRow();
                id = new DataViewRowId((ulong)Row, 0);
            };

            public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
            {
                if (column.Index == 0 && typeof(TValue) == typeof(uint))
                {
                    ValueGetter<uint> label = (ref uint value) =>
                    {
                        CheckRow();
                        value = _view._labels[Row] + 1u; // keys are 1-based; 0 is "missing"
                    };
                    return (ValueGetter<TValue>)(Delegate)label;
                }
                if (column.Index == 1 && typeof(TValue) == typeof(VBuffer<float>))
                {
                    ValueGetter<VBuffer<float>> features = (ref VBuffer<float> value) =>
                    {
                        CheckRow();
                        int size = _view._size;
                        var editor = VBufferEditor.Create(ref value, size);
                        var src = _view._pixels.AsSpan(Row * size, size);
                        for (int p = 0; p < size; p++) editor.Values[p] = src[p] / 255f;
                        value = editor.Commit();
                    };
                    return (ValueGetter<TValue>)(Delegate)features;
                }
                throw new InvalidOperationException(column.Index < 2
                    ? $"Column '{column.Name}' is of type {column.Type}; it cannot be read as {typeof(TValue).Name}."
                    : $"Column '{column.Name}' (index {column.Index}) does not belong to this IDX image data view.");
            }

            private void CheckRow()
            {
                if (_position < 0 || _position >= _view._rows) throw new InvalidOperationException("The cursor is not on a row: call MoveNext first.");
            }
        }
    }

    private static byte[] ReadAll(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"IDX file '{path}' does not exist.", path);
        using var file = File.OpenRead(path);
        Stream s = file;
        int b0 = file.ReadByte(), b1 = file.ReadByte();
        file.Position = 0;
        if (b0 == 0x1f && b1 == 0x8b) s = new GZipStream(file, CompressionMode.Decompress);
        using var ms = new MemoryStream();
        try { s.CopyTo(ms); }
        catch (InvalidDataException e) { throw new InvalidDataException($"'{path}' is not a readable gzip file: {e.Message}", e); }
        finally { if (s != file) s.Dispose(); }
        return ms.ToArray();
    }

    private static (byte[] Pixels, int Count, int Height, int Width) ReadImages(string path)
    {
        var b = ReadAll(path);
        if (b.Length < 16 || BinaryPrimitives.ReadInt32BigEndian(b) != 0x0803)
            throw new InvalidDataException($"'{path}' is not an IDX3 unsigned-byte image file (magic 0x00000803).");
        int n = BinaryPrimitives.ReadInt32BigEndian(b.AsSpan(4)), h = BinaryPrimitives.ReadInt32BigEndian(b.AsSpan(8)), w = BinaryPrimitives.ReadInt32BigEndian(b.AsSpan(12));
        if (n < 0 || h <= 0 || w <= 0 || 16L + (long)n * h * w != b.Length)
            throw new InvalidDataException($"'{path}' is truncated or corrupt: its header announces {n} images of {h}×{w}, the file has {b.Length - 16} pixel bytes.");
        return (b.AsSpan(16).ToArray(), n, h, w);
    }

    private static byte[] ReadLabels(string path)
    {
        var b = ReadAll(path);
        if (b.Length < 8 || BinaryPrimitives.ReadInt32BigEndian(b) != 0x0801)
            throw new InvalidDataException($"'{path}' is not an IDX1 unsigned-byte label file (magic 0x00000801).");
        int n = BinaryPrimitives.ReadInt32BigEndian(b.AsSpan(4));
        if (n < 0 || 8L + n != b.Length)
            throw new InvalidDataException($"'{path}' is truncated or corrupt: its header announces {n} labels, the file has {b.Length - 8}.");
        return b.AsSpan(8).ToArray();
    }
}
