using Microsoft.ML;
using Microsoft.ML.Trainers;
using Microsoft.ML.Trainers.FastTree;
using Microsoft.ML.Trainers.LightGbm;

namespace MLNetDeep.Cli;

/// <summary>
/// ML.NET's classic trainers as experiment candidates, with search spaces in the spirit of ML.NET AutoML's (log-scale
/// ranges; the initial point is ML.NET's default configuration, where the cost-frugal search starts).
/// </summary>
public static class ClassicCandidates
{
    private static SearchSpace Trees(int leavesInit, int treesInit, int minLeafInit, double rateInit, string trees) => new SearchSpace()
        .Add(SearchParameter.IntegerRange("NumberOfLeaves", 4, 512, leavesInit, logScale: true))
        .Add(SearchParameter.IntegerRange("MinimumExampleCountPerLeaf", 2, 256, minLeafInit, logScale: true))
        .Add(SearchParameter.IntegerRange(trees, 20, 2000, treesInit, logScale: true))
        .Add(SearchParameter.Range("LearningRate", 0.005, 0.5, rateInit, logScale: true));

    private static SearchSpace LightGbmSpace => Trees(31, 100, 20, 0.1, "NumberOfIterations");
    private static SearchSpace FastTreeSpace => Trees(20, 100, 10, 0.2, "NumberOfTrees");

    private static SearchSpace SdcaSpace => new SearchSpace()
        .Add(SearchParameter.Range("L2Regularization", 1e-7, 1, 1e-4, logScale: true))
        .Add(SearchParameter.Range("L1Regularization", 1e-7, 1, 1e-6, logScale: true));

    private static SearchSpace LbfgsSpace => new SearchSpace()
        .Add(SearchParameter.Range("L2Regularization", 1e-4, 100, 1, logScale: true))
        .Add(SearchParameter.Range("L1Regularization", 1e-4, 100, 1, logScale: true));

    /// <summary>LightGbm, FastTree, SDCA logistic regression and L-BFGS logistic regression.</summary>
    public static IEnumerable<ExperimentCandidate> Binary(string label = "Label", string features = "Features")
    {
        yield return ExperimentCandidate.Create("LightGbm", () => new LightGbmBinaryTrainer.Options { LabelColumnName = label, FeatureColumnName = features },
            (ml, o) => ml.BinaryClassification.Trainers.LightGbm(o), LightGbmSpace);
        yield return ExperimentCandidate.Create("FastTree", () => new FastTreeBinaryTrainer.Options { LabelColumnName = label, FeatureColumnName = features },
            (ml, o) => ml.BinaryClassification.Trainers.FastTree(o), FastTreeSpace);
        yield return ExperimentCandidate.Create("SdcaLogisticRegression", () => new SdcaLogisticRegressionBinaryTrainer.Options { LabelColumnName = label, FeatureColumnName = features },
            (ml, o) => ml.BinaryClassification.Trainers.SdcaLogisticRegression(o), SdcaSpace);
        yield return ExperimentCandidate.Create("LbfgsLogisticRegression", () => new LbfgsLogisticRegressionBinaryTrainer.Options { LabelColumnName = label, FeatureColumnName = features },
            (ml, o) => ml.BinaryClassification.Trainers.LbfgsLogisticRegression(o), LbfgsSpace);
    }

    /// <summary>LightGbm, SDCA maximum entropy and L-BFGS maximum entropy.</summary>
    public static IEnumerable<ExperimentCandidate> Multiclass(string label = "Label", string features = "Features")
    {
        yield return ExperimentCandidate.Create("LightGbmMulti", () => new LightGbmMulticlassTrainer.Options { LabelColumnName = label, FeatureColumnName = features },
            (ml, o) => ml.MulticlassClassification.Trainers.LightGbm(o), LightGbmSpace);
        yield return ExperimentCandidate.Create("SdcaMaximumEntropy", () => new SdcaMaximumEntropyMulticlassTrainer.Options { LabelColumnName = label, FeatureColumnName = features },
            (ml, o) => ml.MulticlassClassification.Trainers.SdcaMaximumEntropy(o), SdcaSpace);
        yield return ExperimentCandidate.Create("LbfgsMaximumEntropy", () => new LbfgsMaximumEntropyMulticlassTrainer.Options { LabelColumnName = label, FeatureColumnName = features },
            (ml, o) => ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy(o), LbfgsSpace);
    }

    /// <summary>LightGbm, FastTree and SDCA.</summary>
    public static IEnumerable<ExperimentCandidate> Regression(string label = "Label", string features = "Features")
    {
        yield return ExperimentCandidate.Create("LightGbmRegression", () => new LightGbmRegressionTrainer.Options { LabelColumnName = label, FeatureColumnName = features },
            (ml, o) => ml.Regression.Trainers.LightGbm(o), LightGbmSpace);
        yield return ExperimentCandidate.Create("FastTreeRegression", () => new FastTreeRegressionTrainer.Options { LabelColumnName = label, FeatureColumnName = features },
            (ml, o) => ml.Regression.Trainers.FastTree(o), FastTreeSpace);
        yield return ExperimentCandidate.Create("SdcaRegression", () => new SdcaRegressionTrainer.Options { LabelColumnName = label, FeatureColumnName = features },
            (ml, o) => ml.Regression.Trainers.Sdca(o), SdcaSpace);
    }

    /// <summary>The classic candidates of a task (none for forecasting).</summary>
    public static IEnumerable<ExperimentCandidate> For(ExperimentTask task) => task switch
    {
        ExperimentTask.BinaryClassification => Binary(),
        ExperimentTask.MulticlassClassification => Multiclass(),
        ExperimentTask.Regression => Regression(),
        _ => Enumerable.Empty<ExperimentCandidate>(),
    };
}
