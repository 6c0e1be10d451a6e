using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetDeep.Onnx;

namespace MLNetDeep;

/// <summary>
/// Turns a fitted pipeline with an MLNetDeep step into one that scores through ML.NET's <c>ApplyOnnxModel</c>: a model
/// saved from it loads and predicts in a process that references only Microsoft.ML, Microsoft.ML.OnnxTransformer and
/// Microsoft.ML.OnnxRuntime — no MLNetDeep, no TorchSharp.
/// </summary>
public static class OnnxPipelineCatalog
{
    /// <summary>
    /// Returns <paramref name="model"/> with its MLNetDeep step replaced by <c>ApplyOnnxModel</c> on the step's network
    /// exported to ONNX (embedded in the model when saved with <c>mlContext.Model.Save</c>), followed by a stock ML.NET
    /// prediction transformer that gives the output columns ML.NET's own types, annotations and scorers: binary
    /// <c>Score</c> (logit), <c>Probability</c> (a Platt calibrator with slope -1: the sigmoid) and <c>PredictedLabel</c>
    /// (Boolean); multiclass <c>Score</c> (a maximum-entropy model with identity weights on the network's logits: the
    /// softmax) and <c>PredictedLabel</c> (a key with the training label's values); regression <c>Score</c> (a linear
    /// model with weight 1); forecasting <c>Score</c> (a vector of the horizon's values, straight from ONNX). The steps
    /// before and after it are kept; <c>ApplyOnnxModel</c> scores one row per call. Throws <see cref="OnnxExportException"/>
    /// naming the step if another step of the pipeline is MLNetDeep's too (e.g. <c>TokenizeIntoSubwords</c>), since the
    /// result must load without MLNetDeep.
    /// </summary>
    /// <param name="catalog">The model catalog.</param>
    /// <param name="model">The fitted pipeline (or the MLNetDeep prediction transformer itself).</param>
    /// <param name="inputData">Data with the pipeline's input schema (rows are not read), to fit the new steps.</param>
    /// <param name="onnxPath">Optionally, where to write the ONNX model too.</param>
    public static ITransformer ConvertToOnnxPipeline(this ModelOperationsCatalog catalog, ITransformer model, IDataView inputData, string? onnxPath = null)
    {
        if (catalog is null) throw new ArgumentNullException(nameof(catalog));
        if (model is null) throw new ArgumentNullException(nameof(model));
        if (inputData is null) throw new ArgumentNullException(nameof(inputData));
        var steps = TransformerSteps.Flatten(model).ToList();
        int at = steps.FindLastIndex(t => t is IDeepPredictor);
        if (at < 0) throw new ArgumentException("The model holds no MLNetDeep prediction transformer to convert.", nameof(model));
        var ours = typeof(IDeepPredictor).Assembly;
        for (int i = 0; i < steps.Count; i++)
            if (i != at && steps[i].GetType().Assembly == ours)
                throw new OnnxExportException($"Pipeline step {i + 1} ({steps[i].GetType().Name}) is an MLNetDeep transform too; a pipeline that loads without MLNetDeep cannot hold it. "
                    + "Export its network alone with mlContext.Model.ExportToOnnx, or use stock ML.NET featurizers.");

        var ml = new MLContext();
        var data = inputData;
        for (int i = 0; i < at; i++) data = steps[i].Transform(data);

        var predictor = (IDeepPredictor)steps[at];
        var (bytes, info) = OnnxPipelineSteps.OneRowModel(predictor);
        if (onnxPath is not null) File.WriteAllBytes(onnxPath, bytes);
        var replaced = new List<ITransformer>();
        var onnx = ml.Transforms.ApplyOnnxModel(info.OutputNames.ToArray(), new[] { info.InputName }, new MemoryStream(bytes)).Fit(data);
        replaced.Add(onnx);
        data = onnx.Transform(data);
        if (OnnxPipelineSteps.StockHead(predictor, data.Schema) is { } head)
        {
            replaced.Add(head);
            data = head.Transform(data);
            var drop = ml.Transforms.DropColumns(OnnxExporter.NetworkOutput).Fit(data);
            replaced.Add(drop);
        }
        var all = steps.Take(at).Concat(replaced).Concat(steps.Skip(at + 1)).ToArray();
        return new TransformerChain<ITransformer>(all);
    }

}
