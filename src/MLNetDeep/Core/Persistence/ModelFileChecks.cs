// Files MLNetDeep reads back (model zips, checkpoints) are untrusted input: every count and size read from them is
// checked against sane limits and against the bytes actually left BEFORE anything is allocated for it.
using System.Text;

namespace MLNetDeep;

/// <summary>Checks shared by the readers of model files and checkpoints.</summary>
internal static class ModelFileChecks
{
    /// <summary>How every message about a damaged model file starts.</summary>
    public const string CorruptPrefix = "MLNetDeep model file is corrupt";

    /// <summary>
    /// An <see cref="InvalidDataException"/> saying that the model file is corrupt and what is wrong. It has no inner
    /// exception (a cause's message goes into its own): ML.NET wraps what a loader throws in one
    /// TargetInvocationException per nesting level, so <c>e.GetBaseException()</c> — the innermost — must be this one.
    /// </summary>
    public static InvalidDataException Corrupt(string what) => new($"{CorruptPrefix}: {what}");

    /// <summary>The first line of a message (libtorch's add a native stack trace).</summary>
    public static string FirstLine(string message) => message.Split('\n', 2)[0].TrimEnd();

    /// <summary>
    /// The exception a model reader throws for <paramref name="e"/>, or null to let it through: what a reader, TorchSharp
    /// or a module constructor throws on bad data (end of stream, a bad string length, an overflow, an impossible size, a
    /// failed check) becomes "MLNetDeep model file is corrupt: ..." with its message, unless that message already says
    /// what is wrong with the file (it starts with "MLNetDeep" or "This model", e.g. a newer network family).
    /// </summary>
    public static Exception? AsCorrupt(Exception e)
    {
        if (!IsDataError(e) || e is InvalidDataException && (e.Message.StartsWith("MLNetDeep", StringComparison.Ordinal) || e.Message.StartsWith("This model", StringComparison.Ordinal)))
            return null;
        return Corrupt(e is EndOfStreamException ? $"it is truncated ({e.Message})" : FirstLine(e.Message));
    }

    /// <summary>Whether <paramref name="e"/> is what reading bad data throws (not a fatal or unrelated error).</summary>
    public static bool IsDataError(Exception e) => e is IOException or InvalidDataException or FormatException or OverflowException
        or ArgumentException or InvalidCastException or System.Runtime.InteropServices.ExternalException;

    /// <summary>Bytes left in the reader's stream, or <see cref="long.MaxValue"/> when its length is unknown.</summary>
    public static long Remaining(BinaryReader r) => r.BaseStream.CanSeek ? r.BaseStream.Length - r.BaseStream.Position : long.MaxValue;

    /// <summary>
    /// Reads an Int32 count of items that take at least <paramref name="bytesEach"/> bytes each, checked against
    /// [<paramref name="min"/>, <paramref name="max"/>] and against the bytes left.
    /// </summary>
    public static int ReadCount(BinaryReader r, string what, int max, int bytesEach, int min = 0)
    {
        int n = r.ReadInt32();
        if (n < min || n > max) throw new InvalidDataException($"{what}: {n} is outside [{min}, {max}].");
        long left = Remaining(r);
        if ((long)n * bytesEach > left) throw new InvalidDataException($"{what}: {n} entries of at least {bytesEach} bytes, but only {left} bytes are left.");
        return n;
    }

    /// <summary>Reads an Int32 that must be positive (a layer width, a kernel size, a count of steps).</summary>
    public static int ReadPositive(BinaryReader r, string what)
    {
        int v = r.ReadInt32();
        return v > 0 ? v : throw new InvalidDataException($"{what} is {v}; it must be positive.");
    }

    /// <summary>Reads an Int32 that must name a member of <typeparamref name="T"/>.</summary>
    public static T ReadEnum<T>(BinaryReader r, string what) where T : struct, Enum
    {
        int v = r.ReadInt32();
        var e = (T)Enum.ToObject(typeof(T), v);
        return Enum.IsDefined(e) ? e : throw new InvalidDataException($"{what} {v} is not a known {typeof(T).Name}.");
    }

    /// <summary>Reads a dropout probability, which must be in [0, 1).</summary>
    public static float ReadProbability(BinaryReader r, string what)
    {
        float p = r.ReadSingle();
        return p is >= 0 and < 1 ? p : throw new InvalidDataException($"{what} {p} is not in [0, 1).");
    }

    /// <summary>Reads an Int32 length and that many bytes, checked against the bytes left first; -1 is null.</summary>
    public static byte[]? ReadBlob(BinaryReader r, string what)
    {
        int n = r.ReadInt32();
        if (n == -1) return null;
        if (n < 0) throw new InvalidDataException($"{what} has {n} bytes.");
        long left = Remaining(r);
        if (n > left) throw new EndOfStreamException($"{what} should have {n} bytes, but only {left} are left.");
        var bytes = r.ReadBytes(n);
        if (bytes.Length != n) throw new EndOfStreamException($"{what} is truncated.");
        return bytes;
    }
}

/// <summary>
/// The weights blob TorchSharp's <c>Module.save</c> writes (the module's state dict): an entry count, then per entry its
/// name (a .NET string), the tensor's element type, rank and dimensions (7-bit encoded) and its raw data. TorchSharp's
/// <c>load</c> allocates the declared rank before checking it and trusts the counts, so a blob is parsed and checked
/// here first: every declared size must fit in the bytes that are actually there.
/// </summary>
internal static class StoredWeights
{
    /// <summary>Most dimensions a stored tensor may have (MLNetDeep's have at most 4).</summary>
    public const int MaximumRank = 8;

    /// <summary>Checks the blob's structure; returns the bytes of tensor data it holds.</summary>
    /// <exception cref="InvalidDataException">A count, name, type or shape does not fit the blob.</exception>
    public static long DataBytes(ReadOnlySpan<byte> blob)
    {
        int at = 0;
        long entries = Decode(blob, ref at, "the entry count");
        long data = 0;
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (long i = 0; i < entries; i++)
        {
            // Each entry takes at least 3 bytes (name length, type, rank): a huge count runs out of blob here.
            if (at >= blob.Length) throw new InvalidDataException($"the weights declare {entries} tensors, but the data ends after {i}.");
            string name = ReadName(blob, ref at);
            if (!names.Add(name)) throw new InvalidDataException($"the weights hold the tensor '{name}' twice.");
            long type = Decode(blob, ref at, $"the type of tensor '{name}'");
            int size = ElementSize(type) ?? throw new InvalidDataException($"weight tensor '{name}' has the unknown element type {type}.");
            long rank = Decode(blob, ref at, $"the rank of tensor '{name}'");
            if (rank > MaximumRank) throw new InvalidDataException($"weight tensor '{name}' declares {rank} dimensions (at most {MaximumRank}).");
            long bytes = size;
            for (int d = 0; d < rank; d++)
            {
                long dim = Decode(blob, ref at, $"a dimension of tensor '{name}'");
                // Both factors are at most the blob's length (< 2^31), so the product cannot overflow.
                if (dim > blob.Length || (bytes *= dim) > blob.Length)
                    throw new InvalidDataException($"weight tensor '{name}' declares a dimension of {dim}: more data than the {blob.Length} bytes of the weights.");
            }
            if (bytes > blob.Length - at)
                throw new InvalidDataException($"weight tensor '{name}' declares {bytes} bytes of data, but only {blob.Length - at} are left.");
            at += (int)bytes;
            data += bytes;
        }
        if (at != blob.Length) throw new InvalidDataException($"the weights have {blob.Length - at} bytes after their last tensor.");
        return data;
    }

    /// <summary>Bytes per element of TorchSharp's <c>ScalarType</c> codes; null for codes MLNetDeep never writes.</summary>
    private static int? ElementSize(long type) => type switch
    {
        0 or 1 or 11 => 1,  // Byte, Int8, Bool
        2 or 5 or 15 => 2,  // Int16, Float16, BFloat16
        3 or 6 => 4,        // Int32, Float32
        4 or 7 => 8,        // Int64, Float64
        _ => null,
    };

    /// <summary>TorchSharp's 7-bit encoding of a non-negative long (at most 9 bytes here, so it cannot overflow).</summary>
    private static long Decode(ReadOnlySpan<byte> blob, ref int at, string what)
    {
        long result = 0;
        for (int i = 0; i < 9; i++)
        {
            if (at >= blob.Length) throw new EndOfStreamException($"the weights end inside {what}.");
            byte b = blob[at++];
            result |= (long)(b & 0x7f) << (7 * i);
            if ((b & 0x80) == 0) return result;
        }
        throw new InvalidDataException($"{what} is not a valid number.");
    }

    /// <summary>A name as <c>BinaryWriter.Write(string)</c> writes it: a 7-bit encoded byte length, then UTF-8.</summary>
    private static string ReadName(ReadOnlySpan<byte> blob, ref int at)
    {
        long length = Decode(blob, ref at, "a tensor's name");
        if (length is 0 or > 4096) throw new InvalidDataException($"a tensor's name has {length} bytes.");
        if (length > blob.Length - at) throw new EndOfStreamException("the weights end inside a tensor's name.");
        string name = Encoding.UTF8.GetString(blob.Slice(at, (int)length));
        at += (int)length;
        return name;
    }
}
