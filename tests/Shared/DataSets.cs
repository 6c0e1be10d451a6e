// The real data sets under ../shared/data (see its README), as ML.NET loaders. Shared by the tests, the
// cross-process model loader, the samples and the benchmark.
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNetDeep.TestData;

public static class DataPaths
{
    /// <summary>The shared data folder: $MLNETDEEP_DATA, else the first ../shared/data above the working or base directory.</summary>
    public static string Root
    {
        get
        {
            var env = Environment.GetEnvironmentVariable("MLNETDEEP_DATA");
            if (!string.IsNullOrEmpty(env)) return env;
            foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            {
                for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                {
                    var candidate = Path.Combine(dir.FullName, "..", "shared", "data");
                    if (System.IO.File.Exists(Path.Combine(candidate, "README.md"))) return Path.GetFullPath(candidate);
                    candidate = Path.Combine(dir.FullName, "shared", "data");
                    if (System.IO.File.Exists(Path.Combine(candidate, "README.md"))) return Path.GetFullPath(candidate);
                }
            }
            throw new DirectoryNotFoundException("Cannot find ../shared/data from the project root; set MLNETDEEP_DATA.");
        }
    }

    public static string File(string relative) => Path.Combine(Root, relative);
}

public sealed class BikeRow
{
    [LoadColumn(2)] public float Season { get; set; }
    [LoadColumn(3)] public float Year { get; set; }
    [LoadColumn(4)] public float Month { get; set; }
    [LoadColumn(5)] public float Hour { get; set; }
    [LoadColumn(6)] public float Holiday { get; set; }
    [LoadColumn(7)] public float Weekday { get; set; }
    [LoadColumn(8)] public float WorkingDay { get; set; }
    [LoadColumn(9)] public float Weather { get; set; }
    [LoadColumn(10)] public float Temperature { get; set; }
    [LoadColumn(11)] public float FeelsLike { get; set; }
    [LoadColumn(12)] public float Humidity { get; set; }
    [LoadColumn(13)] public float WindSpeed { get; set; }
    [LoadColumn(16), ColumnName("Label")] public float Count { get; set; }

    public static readonly string[] FeatureColumns =
        { nameof(Season), nameof(Year), nameof(Month), nameof(Hour), nameof(Holiday), nameof(Weekday), nameof(WorkingDay), nameof(Weather), nameof(Temperature), nameof(FeelsLike), nameof(Humidity), nameof(WindSpeed) };
}

public sealed class SmsRow
{
    [LoadColumn(0)] public string LabelText { get; set; } = "";
    [LoadColumn(1)] public string Message { get; set; } = "";
}

public sealed class YelpRow
{
    [LoadColumn(0)] public string Text { get; set; } = "";
    [LoadColumn(1)] public float Sentiment { get; set; }
}

public sealed class GitHubIssueRow
{
    [LoadColumn(0)] public string ID { get; set; } = "";
    [LoadColumn(1)] public string Area { get; set; } = "";
    [LoadColumn(2)] public string Title { get; set; } = "";
    [LoadColumn(3)] public string Description { get; set; } = "";
}

public static class RealData
{
    public static IDataView BikeTrain(MLContext ml) => ml.Data.LoadFromTextFile<BikeRow>(DataPaths.File("tabular/bike-hour-train.csv"), separatorChar: ',', hasHeader: true);
    public static IDataView BikeTest(MLContext ml) => ml.Data.LoadFromTextFile<BikeRow>(DataPaths.File("tabular/bike-hour-test.csv"), separatorChar: ',', hasHeader: true);

    /// <summary>SMS spam (no header; label ham/spam). Adds a bool Label column.</summary>
    public static IDataView Sms(MLContext ml)
    {
        var raw = ml.Data.LoadFromTextFile<SmsRow>(DataPaths.File("text/sms-spam.tsv"), separatorChar: '\t', hasHeader: false, allowQuoting: false);
        return ml.Transforms.CustomMapping<SmsRow, SpamLabel>((r, l) => l.Label = r.LabelText == "spam", contractName: null).Fit(raw).Transform(raw);
    }

    public sealed class SpamLabel { public bool Label { get; set; } }

    /// <summary>yelp-labelled (no header; sentence, 0/1). Adds a bool Label column.</summary>
    public static IDataView Yelp(MLContext ml)
    {
        var raw = ml.Data.LoadFromTextFile<YelpRow>(DataPaths.File("text/yelp-labelled.tsv"), separatorChar: '\t', hasHeader: false, allowQuoting: false);
        return ml.Transforms.CustomMapping<YelpRow, SpamLabel>((r, l) => l.Label = r.Sentiment == 1, contractName: null).Fit(raw).Transform(raw);
    }

    public static IDataView GitHubIssues(MLContext ml) =>
        ml.Data.LoadFromTextFile<GitHubIssueRow>(DataPaths.File("text/github-issues.tsv"), separatorChar: '\t', hasHeader: true, allowQuoting: true);
}

/// <summary>Fashion-MNIST from Debian's dataset-fashion-mnist package (installed by .ci/run).</summary>
public static class FashionMnist
{
    public const string Directory = "/usr/share/datasets/fashion-mnist";

    public static readonly string[] ClassNames =
        { "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot" };

    public static IDataView Train(MLContext ml, int? rows = null) =>
        MLNetDeep.IdxImages.Load(ml, Path.Combine(Directory, "train-images-idx3-ubyte.gz"), Path.Combine(Directory, "train-labels-idx1-ubyte.gz"), ClassNames, maxRows: rows);

    public static IDataView Test(MLContext ml, int? rows = null) =>
        MLNetDeep.IdxImages.Load(ml, Path.Combine(Directory, "t10k-images-idx3-ubyte.gz"), Path.Combine(Directory, "t10k-labels-idx1-ubyte.gz"), ClassNames, maxRows: rows);
}

/// <summary>Yearly sunspot numbers 1700-2008 (../shared/data/series/sunspots.csv: "YEAR","SUNACTIVITY", 309 rows).</summary>
public sealed class SunspotRow
{
    [LoadColumn(0)] public float YEAR { get; set; }
    [LoadColumn(1)] public float SUNACTIVITY { get; set; }
}

public static class Sunspots
{
    public const string RelativePath = "series/sunspots.csv";

    /// <summary>The series as an ML.NET view, in file (time) order.</summary>
    public static IDataView Load(MLContext ml) =>
        ml.Data.LoadFromTextFile<SunspotRow>(DataPaths.File(RelativePath), separatorChar: ',', hasHeader: true);

    /// <summary>The R peers' protocol: train 1700–1978, rolling origin over the last 30 years, horizons 1–5, 20 lags.</summary>
    public static MLNetDeep.ForecastWindows Windows(MLContext ml, int lookback = 20) =>
        MLNetDeep.ForecastWindows.Create(ml, Load(ml), new MLNetDeep.ForecastWindowOptions
        {
            TargetColumn = nameof(SunspotRow.SUNACTIVITY),
            Lookback = lookback,
            Horizon = 5,
            TestCount = 30,
        });

    /// <summary>The file parsed by hand, without ML.NET: (year, value) per row.</summary>
    public static (int Year, double Value)[] ReadRaw() =>
        System.IO.File.ReadAllLines(DataPaths.File(RelativePath)).Skip(1).Where(l => l.Trim().Length > 0)
            .Select(l => l.Split(','))
            .Select(p => (int.Parse(p[0], System.Globalization.CultureInfo.InvariantCulture), double.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture)))
            .ToArray();
}
