using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNetDeep.TestData;

/// <summary>
/// Prediction columns as text with every float written round-trip ("R"), for comparisons with a tolerance across
/// engines and processes: <c>score values | probability | predicted label</c>, one line per row. No MLNetDeep types:
/// the ONNX consumer links this file too.
/// </summary>
public static class ScoreText
{
    public static IEnumerable<string> Lines(IDataView scored)
    {
        var score = scored.Schema["Score"];
        var prob = scored.Schema.GetColumnOrNull("Probability");
        var label = scored.Schema.GetColumnOrNull("PredictedLabel");
        var cols = new[] { (DataViewSchema.Column?)score, prob, label }.Where(c => c is not null).Select(c => c!.Value).ToArray();
        using var cursor = scored.GetRowCursor(cols);
        Func<string> scoreText = score.Type is VectorDataViewType ? VectorText(cursor, score) : ScalarText(cursor, score);
        Func<string> probText = prob is null ? () => "" : ScalarText(cursor, prob.Value);
        Func<string> labelText = label is null ? () => "" : LabelText(cursor, label.Value);
        while (cursor.MoveNext()) yield return $"{scoreText()}|{probText()}|{labelText()}";
    }

    /// <summary>Parses a line back: scores, probability (NaN if none), label text.</summary>
    public static (float[] Scores, float Probability, string Label) Parse(string line)
    {
        var parts = line.Split('|');
        var scores = parts[0].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(s => float.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        float p = parts[1].Length == 0 ? float.NaN : float.Parse(parts[1], CultureInfo.InvariantCulture);
        return (scores, p, parts[2]);
    }

    private static string F(float v) => v.ToString("R", CultureInfo.InvariantCulture);

    private static Func<string> ScalarText(DataViewRowCursor cursor, DataViewSchema.Column col)
    {
        var get = cursor.GetGetter<float>(col);
        float v = 0;
        return () => { get(ref v); return F(v); };
    }

    private static Func<string> VectorText(DataViewRowCursor cursor, DataViewSchema.Column col)
    {
        var get = cursor.GetGetter<VBuffer<float>>(col);
        VBuffer<float> v = default;
        return () => { get(ref v); return string.Join(" ", v.DenseValues().Select(F)); };
    }

    private static Func<string> LabelText(DataViewRowCursor cursor, DataViewSchema.Column col)
    {
        if (col.Type == BooleanDataViewType.Instance)
        {
            var get = cursor.GetGetter<bool>(col);
            bool b = false;
            return () => { get(ref b); return b ? "true" : "false"; };
        }
        if (col.Type is KeyDataViewType && col.Type.RawType == typeof(uint))
        {
            var get = cursor.GetGetter<uint>(col);
            uint k = 0;
            VBuffer<ReadOnlyMemory<char>> names = default;
            bool named = col.Annotations.Schema.GetColumnOrNull("KeyValues") is { Type: VectorDataViewType { ItemType: TextDataViewType } };
            if (named) col.Annotations.GetValue("KeyValues", ref names);
            var list = named ? names.DenseValues().Select(n => n.ToString()).ToArray() : Array.Empty<string>();
            return () => { get(ref k); return k == 0 ? "?" : named ? list[k - 1] : k.ToString(CultureInfo.InvariantCulture); };
        }
        throw new ArgumentException($"PredictedLabel is {col.Type}; expected Boolean or a UInt32 key.");
    }
}
