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
    private sealed class Row
    {
        public uint Label { get; set; }
        public float[] Features { get; set; } = Array.Empty<float>();
    }

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
        int pixels = height * width;

        var schema = SchemaDefinition.Create(typeof(Row));
        schema[nameof(Row.Label)].ColumnName = labelColumnName;
        schema[nameof(Row.Label)].ColumnType = new KeyDataViewType(typeof(uint), classes);
        var names = (classNames ?? Enumerable.Range(0, classes).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToList())
            .Select(n => n.AsMemory()).ToArray();
        schema[nameof(Row.Label)].AddAnnotation(AnnotationUtils.Kinds.KeyValues, new VBuffer<ReadOnlyMemory<char>>(classes, names),
            new VectorDataViewType(TextDataViewType.Instance, classes));
        schema[nameof(Row.Features)].ColumnName = featureColumnName;
        schema[nameof(Row.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, 1, height, width);

        IEnumerable<Row> Enumerate()
        {
            for (int i = 0; i < rows; i++)
            {
                var f = new float[pixels];
                var src = images.AsSpan(i * pixels, pixels);
                for (int p = 0; p < pixels; p++) f[p] = src[p] / 255f;
                yield return new Row { Label = labels[i], Features = f }; // LoadFromEnumerable stores key index + 1
            }
        }
        return mlContext.Data.LoadFromEnumerable(new Replayable<Row>(Enumerate), schema);
    }

    /// <summary>An IEnumerable that starts afresh on every enumeration (one per cursor).</summary>
    private sealed class Replayable<T>(Func<IEnumerable<T>> source) : IEnumerable<T>
    {
        public IEnumerator<T> GetEnumerator() => source().GetEnumerator();
        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
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
