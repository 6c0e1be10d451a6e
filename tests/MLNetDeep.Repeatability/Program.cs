// usage: MLNetDeep.Repeatability <output.txt> [epochs]
// Trains the configuration of issue 11's report in this fresh process — an MLP [256, 128] with dropout 0.3, one-cycle
// schedule, MLContext(seed: 1), the engine's default thread count — on yelp-labelled's featurized text (the first 80 %),
// scores the held-out 20 % and writes one line per row with the bits of Score, Probability and PredictedLabel.
using Microsoft.ML;
using MLNetDeep;
using MLNetDeep.TestData;

if (args.Length is < 1 or > 2)
{
    Console.Error.WriteLine("usage: MLNetDeep.Repeatability <output.txt> [epochs]");
    return 2;
}
var ml = new MLContext(seed: 1);
var split = ml.Data.TrainTestSplit(RealData.Yelp(ml), testFraction: 0.2, seed: 1);
var text = ml.Transforms.Text.FeaturizeText("Features", "Text").Fit(split.TrainSet);
var options = new MlpBinaryTrainer.Options
{
    HiddenLayers = new[] { 256, 128 },
    Dropout = 0.3f,
    Schedule = LearningRateSchedule.OneCycle,
    NumberOfEpochs = args.Length == 2 ? int.Parse(args[1]) : 30,
};
var model = ml.BinaryClassification.Trainers.Mlp(options).Fit(text.Transform(split.TrainSet));
File.WriteAllLines(args[0], PredictionDump.Lines(model.Transform(text.Transform(split.TestSet))));
return 0;
