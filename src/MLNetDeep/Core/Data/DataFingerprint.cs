using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNetDeep;

/// <summary>
/// Identifies a data set for a resumable directory (an experiment's): its schema, its row count and a hash of the
/// values of its first rows, every visible column. Reusing the directory with other data is then refused instead of
/// replaying results that were measured on the first data.
/// </summary>
internal static class DataFingerprint
{
    public const int HashedRows = 2000;

    public static string Of(IDataView data, CancellationToken cancel = default)
    {
        var columns = data.Schema.Where(c => !c.IsHidden).ToArray();
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var c in columns) Add(sha, $"{c.Name}:{c.Type}\n");
        long rows = 0;
        using (var cursor = data.GetRowCursor(columns))
        {
            var readers = columns.Select(c => Reader(cursor, c)).ToArray();
            var text = new StringBuilder();
            while (cursor.MoveNext())
            {
                if (rows < HashedRows)
                {
                    text.Clear();
                    foreach (var read in readers) { read(text); text.Append('\t'); }
                    Add(sha, text.Append('\n').ToString());
                }
                rows++;
                if ((rows & 4095) == 0) cancel.ThrowIfCancellationRequested();
            }
        }
        return $"{rows} rows of {columns.Length} columns, hash {Convert.ToHexString(sha.GetHashAndReset(), 0, 8)}";
    }

    private static void Add(IncrementalHash sha, string s) => sha.AppendData(Encoding.UTF8.GetBytes(s));

    private static Action<StringBuilder> Reader(DataViewRowCursor cursor, DataViewSchema.Column column)
    {
        var item = column.Type is VectorDataViewType v ? v.ItemType : column.Type;
        var method = typeof(DataFingerprint).GetMethod(column.Type is VectorDataViewType ? nameof(VectorReader) : nameof(ScalarReader),
            System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!.MakeGenericMethod(item.RawType);
        return (Action<StringBuilder>)method.Invoke(null, new object[] { cursor, column })!;
    }

    private static Action<StringBuilder> ScalarReader<T>(DataViewRowCursor cursor, DataViewSchema.Column column)
    {
        var get = cursor.GetGetter<T>(column);
        T value = default!;
        return sb => { get(ref value); sb.Append(Format(value)); };
    }

    private static Action<StringBuilder> VectorReader<T>(DataViewRowCursor cursor, DataViewSchema.Column column)
    {
        var get = cursor.GetGetter<VBuffer<T>>(column);
        VBuffer<T> value = default;
        return sb =>
        {
            get(ref value);
            sb.Append(value.Length).Append(':');
            foreach (var x in value.DenseValues()) sb.Append(Format(x)).Append(',');
        };
    }

    private static string Format<T>(T value) => value switch
    {
        float f => f.ToString("R", CultureInfo.InvariantCulture),
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        ReadOnlyMemory<char> m => m.ToString(),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value?.ToString() ?? "",
    };
}
