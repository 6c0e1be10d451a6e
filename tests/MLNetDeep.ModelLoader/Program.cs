// usage: MLNetDeep.ModelLoader <model.zip> <bike|sms|github|fashion|sunspots|sunspots11> <output.txt> [column]
// Writes one line per row: the bits of every float of the Score column (and Probability, PredictedLabel when present);
// with a column name, that column's keys instead (a key or vector of keys, e.g. TokenizeIntoSubwords' output).
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetDeep.TestData;

if (args.Length != 3 && args.Length != 4)
{
    Console.Error.WriteLine("usage: MLNetDeep.ModelLoader <model.zip> <bike|sms|github|fashion|sunspots|sunspots11> <output.txt> [column]");
    return 2;
}
try
{
    var ml = new MLContext();
    var model = ml.Model.Load(args[0], out _);
    IDataView data = args[1] switch
    {
        "bike" => RealData.BikeTest(ml),
        "sms" => RealData.Sms(ml),
        "github" => RealData.GitHubIssues(ml),
        "fashion" => FashionMnist.Test(ml, 500),
        "sunspots" => Sunspots.Windows(ml).Test!,
        "sunspots11" => Sunspots.Windows(ml, lookback: 11).Test!,
        _ => throw new ArgumentException("unknown data set " + args[1]),
    };
    var scored = model.Transform(data);
    File.WriteAllLines(args[2], args.Length == 4 ? PredictionDump.KeyLines(scored, args[3]) : PredictionDump.Lines(scored));
    return 0;
}
catch (Exception e)
{
    Console.Error.WriteLine(e.GetType().FullName + ": " + e.Message + (e.GetBaseException() == e ? "" : " -> " + e.GetBaseException().Message));
    return 1;
}
