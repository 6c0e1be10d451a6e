using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetDeep.TestData;
using Xunit;

namespace MLNetDeep.Tests;

/// <summary>The IDX reader on the real Fashion-MNIST files: schema, row count, values and shuffling.</summary>
public sealed class IdxImagesTests
{
    [Fact]
    public void FashionMnist_LoadsWithRowCountDimensionsClassNamesAndScaledPixels()
    {
        var ml = new MLContext(seed: 1);
        var data = FashionMnist.Test(ml, 500);
        Assert.Equal(500, data.GetRowCount());
        var features = (VectorDataViewType)data.Schema["Features"].Type;
        Assert.Equal(new[] { 1, 28, 28 }, features.Dimensions.ToArray());
        var label = (KeyDataViewType)data.Schema["Label"].Type;
        Assert.Equal(10ul, label.Count);
        VBuffer<ReadOnlyMemory<char>> names = default;
        data.Schema["Label"].GetKeyValues(ref names);
        Assert.Equal(FashionMnist.ClassNames, names.DenseValues().Select(n => n.ToString()));

        var labels = data.GetColumn<uint>("Label").ToArray();
        var pixels = data.GetColumn<float[]>("Features").ToArray();
        Assert.Equal(500, labels.Length);
        Assert.All(labels, l => Assert.InRange(l, 1u, 10u));           // 1-based keys
        Assert.All(pixels, p => Assert.Equal(784, p.Length));
        Assert.All(pixels.SelectMany(p => p), v => Assert.InRange(v, 0f, 1f));
        Assert.True(pixels.Average(p => (double)p.Average()) is > 0.1 and < 0.6, "pixels look unscaled or empty");
        Assert.True(labels.Distinct().Count() == 10, "a 500-image slice of the test set holds all ten classes");
    }

    [Fact]
    public void FashionMnist_ShufflesToAPermutationOfTheSameRows()
    {
        var ml = new MLContext(seed: 1);
        var data = FashionMnist.Test(ml, 300);
        Assert.True(data.CanShuffle);
        static string Key(uint label, float[] p) => label + ":" + string.Join(",", p.Take(200).Select(v => v.ToString("R")));
        var ordered = data.GetColumn<uint>("Label").Zip(data.GetColumn<float[]>("Features"), Key).ToList();
        var shuffledView = ml.Data.ShuffleRows(data, seed: 7);
        var shuffled = shuffledView.GetColumn<uint>("Label").Zip(shuffledView.GetColumn<float[]>("Features"), Key).ToList();
        Assert.NotEqual(ordered, shuffled);
        Assert.Equal(ordered.OrderBy(k => k, StringComparer.Ordinal), shuffled.OrderBy(k => k, StringComparer.Ordinal));
    }

    [Fact]
    public void IdxImages_NamesTheFileThatIsMissingOrNotIdx()
    {
        var ml = new MLContext();
        var missing = Path.Combine(Path.GetTempPath(), "mlnetdeep-no-such-file-idx3-ubyte.gz");
        var e = Assert.Throws<FileNotFoundException>(() => IdxImages.Load(ml, missing, missing));
        Assert.Contains(missing, e.Message);
        var notIdx = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(notIdx, new byte[64]);
            var bad = Assert.Throws<InvalidDataException>(() => IdxImages.Load(ml, notIdx, notIdx));
            Assert.Contains(notIdx, bad.Message);
            Assert.Contains("IDX3", bad.Message);
        }
        finally { File.Delete(notIdx); }
    }
}
