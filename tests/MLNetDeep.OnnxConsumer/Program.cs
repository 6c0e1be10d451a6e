// Usage: MLNetDeep.OnnxConsumer <model.zip> <rows.idv> <predictions.txt>
using Microsoft.ML;
using MLNetDeep.TestData;

if (args.Length != 3)
{
    Console.Error.WriteLine("usage: MLNetDeep.OnnxConsumer <model.zip> <rows.idv> <predictions.txt>");
    return 2;
}
var ml = new MLContext();
var model = ml.Model.Load(args[0], out _);
var rows = ml.Data.LoadFromBinary(args[1]);
File.WriteAllLines(args[2], ScoreText.Lines(model.Transform(rows)));
var foreign = AppDomain.CurrentDomain.GetAssemblies().Select(a => a.GetName().Name ?? "")
    .Where(n => n.StartsWith("MLNetDeep", StringComparison.Ordinal) && n != "MLNetDeep.OnnxConsumer" || n.StartsWith("TorchSharp", StringComparison.Ordinal)).ToList();
if (foreign.Count > 0)
{
    Console.Error.WriteLine("loaded: " + string.Join(", ", foreign));
    return 3;
}
return 0;
