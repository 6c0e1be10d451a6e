using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNetDeep.TestData;

/// <summary>Prediction columns as exact text (float bits), to compare predictions across processes.</summary>
public static class PredictionDump
{
    public static IEnumerable<string> Lines(IDataView scored)
    {
        var score = scored.Schema.GetColumnOrNull("Score") ?? scored.Schema["Embedding"]; // a pretrained encoder adds Embedding
        var prob = scored.Schema.GetColumnOrNull("Probability");
        var cols = prob is null ? new[] { score } : new[] { score, prob.Value };
        using var cursor = scored.GetRowCursor(cols);
        bool vector = score.Type is VectorDataViewType;
        var scalarGetter = vector ? null : cursor.GetGetter<float>(score);
        var vectorGetter = vector ? cursor.GetGetter<VBuffer<float>>(score) : null;
        var probGetter = prob is null ? null : cursor.GetGetter<float>(prob.Value);
        float s = 0, p = 0;
        VBuffer<float> v = default;
        while (cursor.MoveNext())
        {
            if (vector)
            {
                vectorGetter!(ref v);
                yield return string.Join(" ", v.DenseValues().Select(Bits));
            }
            else
            {
                scalarGetter!(ref s);
                if (probGetter is not null) { probGetter(ref p); yield return Bits(s) + " " + Bits(p); }
                else yield return Bits(s);
            }
        }
    }

    private static string Bits(float f) => BitConverter.SingleToInt32Bits(f).ToString("x8", CultureInfo.InvariantCulture);

    /// <summary>The keys of a key or vector-of-keys column, one line per row (space-separated; an empty vector is an empty line).</summary>
    public static IEnumerable<string> KeyLines(IDataView data, string column)
    {
        var col = data.Schema[column];
        if (((col.Type as VectorDataViewType)?.ItemType ?? col.Type) is not KeyDataViewType { RawType: var raw } || raw != typeof(uint))
            throw new ArgumentException($"Column '{column}' is {col.Type}, not a key or vector of uint keys.");
        using var cursor = data.GetRowCursor(new[] { col });
        if (col.Type is VectorDataViewType)
        {
            var getter = cursor.GetGetter<VBuffer<uint>>(col);
            VBuffer<uint> keys = default;
            while (cursor.MoveNext())
            {
                getter(ref keys);
                yield return string.Join(" ", keys.DenseValues().Select(k => k.ToString(CultureInfo.InvariantCulture)));
            }
        }
        else
        {
            var getter = cursor.GetGetter<uint>(col);
            uint key = 0;
            while (cursor.MoveNext())
            {
                getter(ref key);
                yield return key.ToString(CultureInfo.InvariantCulture);
            }
        }
    }
}
