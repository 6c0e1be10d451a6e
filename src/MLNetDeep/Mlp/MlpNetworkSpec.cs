using TorchSharp;
using static TorchSharp.torch;

namespace MLNetDeep;

/// <summary>A multilayer perceptron: [Linear → (BatchNorm) → activation → (Dropout)] per hidden layer, then a Linear head.</summary>
[NetworkFamily(KindName)]
internal sealed class MlpNetworkSpec : NetworkSpec
{
    public const string KindName = "mlp";

    public int[] HiddenLayers { get; }
    public DeepActivation Activation { get; }
    public float Dropout { get; }
    public bool BatchNorm { get; }

    public MlpNetworkSpec(int[] hiddenLayers, DeepActivation activation, float dropout, bool batchNorm)
    {
        HiddenLayers = hiddenLayers.ToArray();
        Activation = activation;
        Dropout = dropout;
        BatchNorm = batchNorm;
    }

    public override nn.Module<Tensor, Tensor> Build(InputEncoder input, int outputSize)
    {
        int inputSize = DenseSize(input, "MLP");
        var layers = new List<(string, nn.Module<Tensor, Tensor>)>();
        int width = inputSize;
        for (int i = 0; i < HiddenLayers.Length; i++)
        {
            var linear = nn.Linear(width, HiddenLayers[i], hasBias: !BatchNorm);
            Initialise(linear.weight!, linear.bias, Activation);
            layers.Add(($"linear{i}", linear));
            if (BatchNorm) layers.Add(($"batchnorm{i}", SafeOps.BatchNorm1d(HiddenLayers[i])));
            layers.Add(($"activation{i}", CreateActivation(Activation)));
            if (Dropout > 0)
                layers.Add(($"dropout{i}", Activation == DeepActivation.Selu ? nn.AlphaDropout(Dropout) : nn.Dropout(Dropout)));
            width = HiddenLayers[i];
        }
        var head = nn.Linear(width, outputSize);
        Initialise(head.weight!, head.bias, null);
        layers.Add(("head", head));
        return nn.Sequential(layers);
    }

    public override long StateElements(InputEncoder input, int outputSize)
    {
        long n = 0, width = DenseSize(input, "MLP");
        foreach (int h in HiddenLayers)
        {
            n = checked(n + LinearElements(width, h, bias: !BatchNorm) + (BatchNorm ? BatchNormElements(h) : 0));
            width = h;
        }
        return checked(n + LinearElements(width, outputSize));
    }

    public override string Describe(InputEncoder input, int outputSize) =>
        $"MLP {(input as DenseEncoder)?.Size} -> [{string.Join(", ", HiddenLayers)}] -> {outputSize}, {Activation}"
        + (BatchNorm ? ", batch norm" : "") + (Dropout > 0 ? $", dropout {Dropout}" : "");

    protected override void WriteBody(BinaryWriter writer)
    {
        writer.Write(1); // body format version
        writer.Write(HiddenLayers.Length);
        foreach (int h in HiddenLayers) writer.Write(h);
        writer.Write((int)Activation);
        writer.Write(Dropout);
        writer.Write(BatchNorm);
    }

    public static MlpNetworkSpec ReadBody(BinaryReader reader)
    {
        int version = reader.ReadInt32();
        if (version != 1) throw new InvalidDataException($"Unknown MLP network format version {version}.");
        int n = ModelFileChecks.ReadCount(reader, "MLP hidden layers", 1000, 4);
        var hidden = new int[n];
        for (int i = 0; i < n; i++) hidden[i] = ModelFileChecks.ReadPositive(reader, "An MLP hidden layer's width");
        var activation = ModelFileChecks.ReadEnum<DeepActivation>(reader, "MLP activation");
        float dropout = ModelFileChecks.ReadProbability(reader, "MLP dropout");
        bool batchNorm = reader.ReadBoolean();
        return new MlpNetworkSpec(hidden, activation, dropout, batchNorm);
    }
}
