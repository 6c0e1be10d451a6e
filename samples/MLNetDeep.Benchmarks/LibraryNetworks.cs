// The raw loops' networks, built from the library's own network definitions: the NetworkSpec the trainer makes from the
// same options (its family's spec for that input), built by the same spec.Build(encoder, outputs) with the encoder the
// trainer reads the same column with. So a raw loop and the trainer train one network, not two copies that can drift
// apart, and after the same torch.manual_seed they start from the same weights (the trainer seeds right before Build).
// What the benchmarks compare is then the trainer's data path, loop and optimizer against a hand-written loop.
using Microsoft.ML;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetDeep.Benchmarks;

internal static class LibraryNetworks
{
    /// <summary><see cref="MlpNetworkSpec"/> from the MLP trainer's options, on the dense feature column of <paramref name="schema"/>.</summary>
    public static nn.Module<Tensor, Tensor> Mlp(MlpOptions options, DataViewSchema schema, int outputs) =>
        options.ToSpec().Build(DenseEncoder.FromSchema(schema, options.FeatureColumnName, "training"), outputs);

    /// <summary><see cref="CnnNetworkSpec"/> (the options' <see cref="CnnArchitecture"/>, the image shape read from the pixel column) as the CNN trainers make it.</summary>
    public static nn.Module<Tensor, Tensor> Cnn(CnnOptions options, DataViewSchema schema, int outputs)
    {
        var family = new CnnFamily(options);
        family.InspectSchema(schema);
        return family.CreateSpec().Build(DenseEncoder.FromSchema(schema, options.FeatureColumnName, "training"), outputs);
    }

    /// <summary><see cref="RnnNetworkSpec"/> as the recurrent trainers make it, for the feature column's encoder (token ids here).</summary>
    public static nn.Module<Tensor, Tensor> Rnn(RnnOptions options, DataViewSchema schema, int outputs)
    {
        var family = new RnnFamily(options);
        var encoder = family.CreateEncoder(schema);
        return family.CreateSpec(encoder).Build(encoder, outputs);
    }

    /// <summary><see cref="TransformerNetworkSpec"/> as the Transformer trainers make it (fused or explicit attention as the options say).</summary>
    public static TransformerNetwork Transformer(TransformerOptions options, DataViewSchema schema, int outputs)
    {
        var family = new TransformerFamily(options);
        var encoder = family.CreateEncoder(schema);
        return (TransformerNetwork)family.CreateSpec(encoder).Build(encoder, outputs);
    }

    /// <summary>The number of parameters; throws unless the raw network and the trainer's fitted model have the same number.</summary>
    public static long SameParameterCount(nn.Module raw, ITransformer model)
    {
        long rawParameters = raw.parameters().Sum(p => p.numel());
        long trainerParameters = (DeepModelParameters.Find(model) ?? throw new ArgumentException("The model holds no MLNetDeep network.", nameof(model))).ParameterCount;
        if (rawParameters != trainerParameters)
            throw new InvalidOperationException($"The raw network has {rawParameters} parameters, the trainer's {trainerParameters}: not the same network.");
        return rawParameters;
    }
}
