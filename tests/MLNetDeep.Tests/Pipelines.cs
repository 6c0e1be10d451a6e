using Microsoft.ML;
using Microsoft.ML.Transforms.Text;
using MLNetDeep.TestData;

namespace MLNetDeep.Tests;

/// <summary>The featurization pipelines of the real-data tests, shared by MLNetDeep and the ML.NET baselines.</summary>
internal static class Pipelines
{
    public static IEstimator<ITransformer> BikeFeatures(MLContext ml) =>
        ml.Transforms.Concatenate("Features", BikeRow.FeatureColumns)
          .Append(ml.Transforms.NormalizeMeanVariance("Features"));

    public static IEstimator<ITransformer> SmsFeatures(MLContext ml) =>
        ml.Transforms.Text.FeaturizeText("Features", new TextFeaturizingEstimator.Options
        {
            WordFeatureExtractor = new WordBagEstimator.Options { NgramLength = 2 },
            CharFeatureExtractor = new WordBagEstimator.Options { NgramLength = 3, UseAllLengths = false },
        }, nameof(SmsRow.Message))
          .Append(ml.Transforms.FeatureSelection.SelectFeaturesBasedOnCount("Features", count: 3));

    /// <summary>SMS messages as word-key sequences for the recurrent nets: lower-cased words, then keys.</summary>
    public static IEstimator<ITransformer> SmsTokens(MLContext ml) =>
        ml.Transforms.Text.NormalizeText("Normalized", nameof(SmsRow.Message), keepPunctuations: false)
          .Append(ml.Transforms.Text.TokenizeIntoWords("Tokens", "Normalized"))
          .Append(ml.Transforms.Conversion.MapValueToKey("Tokens"));

    public static IEstimator<ITransformer> GitHubFeatures(MLContext ml) =>
        ml.Transforms.Conversion.MapValueToKey("Label", nameof(GitHubIssueRow.Area))
          .Append(ml.Transforms.Text.FeaturizeText("TitleFeaturized", nameof(GitHubIssueRow.Title)))
          .Append(ml.Transforms.Text.FeaturizeText("DescriptionFeaturized", nameof(GitHubIssueRow.Description)))
          .Append(ml.Transforms.Concatenate("Features", "TitleFeaturized", "DescriptionFeaturized"))
          .Append(ml.Transforms.FeatureSelection.SelectFeaturesBasedOnMutualInformation("Features", slotsInOutput: 5000));
}
