// What MLNetDeep.Onnx's ConvertToOnnxPipeline puts after ApplyOnnxModel: a stock ML.NET prediction transformer over the
// network's output, so the columns get exactly the types, annotations and scorers ML.NET's own trainers give them, and
// the saved model loads with Microsoft.ML alone. ApplyOnnxModel cannot produce scalar columns (it reads rank-0 tensors
// as sequences), so the scalar Score, Probability and PredictedLabel come from these stock heads:
//   binary      linear model with weight 1, bias 0 on the logit, Platt calibrator (slope -1, offset 0) = sigmoid
//   multiclass  maximum-entropy model with identity weights on the logits = softmax, PredictedLabel a key of the label
//   regression  linear model with weight 1, bias 0 on the value in label units
//   forecasting none: the ONNX Score vector is already ML.NET's column type
using Microsoft.ML;
using Microsoft.ML.Calibrators;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.Trainers;
using MLNetDeep.Onnx.Proto;

namespace MLNetDeep.Onnx;

internal static class OnnxPipelineSteps
{
    /// <summary>The one-row ONNX model of the step, as bytes, and what it reads and writes.</summary>
    public static (byte[] Model, OnnxExportInfo Info) OneRowModel(IDeepPredictor predictor)
    {
        var (proto, info) = OnnxExporter.Build(predictor, singleRow: true);
        using var stream = new MemoryStream();
        OnnxExporter.Write(proto, stream);
        return (stream.ToArray(), info);
    }

    /// <summary>The stock prediction transformer that turns <see cref="OnnxExporter.NetworkOutput"/> into the task's columns; null for forecasting.</summary>
    public static ITransformer? StockHead(IDeepPredictor predictor, DataViewSchema afterOnnx)
    {
        var env = predictor.Environment;
        string raw = OnnxExporter.NetworkOutput;
        switch (predictor.DeepModel.Head)
        {
            case BinaryHead:
            {
                var weights = new VBuffer<float>(1, new[] { 1f });
                var linear = new LinearBinaryModelParameters(env, weights, 0f);
                var sigmoid = new PlattCalibrator(env, -1, 0);
                var calibrated = new ParameterMixingCalibratedModelParameters<LinearBinaryModelParameters, PlattCalibrator>(env, linear, sigmoid);
                return new BinaryPredictionTransformer<ParameterMixingCalibratedModelParameters<LinearBinaryModelParameters, PlattCalibrator>>(env, calibrated, afterOnnx, raw, predictor.Threshold);
            }
            case MulticlassHead mc:
            {
                int k = mc.OutputSize;
                var identity = Enumerable.Range(0, k).Select(i =>
                {
                    var row = new float[k];
                    row[i] = 1;
                    return new VBuffer<float>(k, row);
                }).ToArray();
                var maxEnt = new MaximumEntropyModelParameters(env, identity, new float[k], k, k, predictor.ClassNames()?.ToArray());
                var label = predictor.LabelColumn ?? throw new OnnxExportException("The multiclass model keeps no label column to take the class names from.");
                var schema = new DataViewSchema.Builder();
                schema.AddColumn(raw, afterOnnx[raw].Type, afterOnnx[raw].Annotations);
                schema.AddColumn(label.Name, label.Type, label.Annotations);
                return new MulticlassPredictionTransformer<MaximumEntropyModelParameters>(env, maxEnt, schema.ToSchema(), raw, label.Name);
            }
            case RegressionHead:
            {
                var linear = new LinearRegressionModelParameters(env, new VBuffer<float>(1, new[] { 1f }), 0f);
                return new RegressionPredictionTransformer<LinearRegressionModelParameters>(env, linear, afterOnnx, raw);
            }
            case ForecastHead:
                return null;
            default:
                throw new OnnxExportException($"The task '{predictor.DeepModel.Head.Kind}' cannot be exported to ONNX.");
        }
    }
}
