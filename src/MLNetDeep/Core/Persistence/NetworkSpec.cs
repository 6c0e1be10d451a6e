using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetDeep;

/// <summary>Activation functions offered by the network families.</summary>
public enum DeepActivation
{
    /// <summary>max(0, x).</summary>
    Relu,
    /// <summary>Leaky ReLU with slope 0.01 for negative inputs.</summary>
    LeakyRelu,
    /// <summary>Exponential linear unit.</summary>
    Elu,
    /// <summary>Scaled ELU (self-normalising; pairs with LeCun initialisation, no batch norm).</summary>
    Selu,
    /// <summary>Gaussian error linear unit.</summary>
    Gelu,
    /// <summary>Swish / SiLU: x * sigmoid(x).</summary>
    Swish,
    /// <summary>Hyperbolic tangent.</summary>
    Tanh,
    /// <summary>Logistic sigmoid.</summary>
    Sigmoid,
}

/// <summary>Networks that do something at the start of every training epoch (e.g. reseed their augmentation).</summary>
internal interface IEpochAware
{
    void BeginEpoch(int seed, int epoch);
}

/// <summary>
/// Marks a network family's spec class, which must have a <c>public static TSpec ReadBody(BinaryReader)</c>: the family
/// registers its reader from its own folder, and the model loader finds it by <see cref="Kind"/>.
/// </summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
internal sealed class NetworkFamilyAttribute : Attribute
{
    public NetworkFamilyAttribute(string kind) => Kind = kind;

    /// <summary>The name the family's specs are written under in model files.</summary>
    public string Kind { get; }
}

/// <summary>
/// A network family's description of its architecture: written into the model file and rebuilt from it, so that
/// a saved model needs no code of the user's to load. The engine types stay behind this class.
/// </summary>
internal abstract class NetworkSpec
{
    private static readonly Lazy<Dictionary<string, Func<BinaryReader, NetworkSpec>>> Readers = new(() =>
    {
        var readers = new Dictionary<string, Func<BinaryReader, NetworkSpec>>(StringComparer.Ordinal);
        foreach (var type in typeof(NetworkSpec).Assembly.GetTypes())
        {
            if (type.GetCustomAttributes(typeof(NetworkFamilyAttribute), false) is not [NetworkFamilyAttribute family]) continue;
            var read = type.GetMethod("ReadBody", System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static, new[] { typeof(BinaryReader) })
                ?? throw new InvalidOperationException($"Network family {type.Name} has no public static ReadBody(BinaryReader).");
            readers.Add(family.Kind, r => (NetworkSpec)read.Invoke(null, new object[] { r })!);
        }
        return readers;
    });

    /// <summary>Identifies the family in the model file (its <see cref="NetworkFamilyAttribute"/>).</summary>
    public string Kind => ((NetworkFamilyAttribute)GetType().GetCustomAttributes(typeof(NetworkFamilyAttribute), false).Single()).Kind;

    /// <summary>Builds the network (freshly initialised) for the given input and number of outputs.</summary>
    public abstract nn.Module<Tensor, Tensor> Build(InputEncoder input, int outputSize);

    /// <summary>
    /// Values in the state (parameters and buffers) of the network <see cref="Build"/> makes, from the description
    /// alone: the model loader checks that the stored weights hold that many before building, so that a damaged or
    /// crafted description cannot make it allocate more than the file justifies. Throws <see cref="OverflowException"/>
    /// when the count does not fit a long.
    /// </summary>
    public abstract long StateElements(InputEncoder input, int outputSize);

    /// <summary>Values of a dense layer's weight and bias.</summary>
    private protected static long LinearElements(long inputs, long outputs, bool bias = true) => checked(inputs * outputs + (bias ? outputs : 0));

    /// <summary>Values of a batch norm's state: weight, bias, running mean and variance (no batch counter, see <see cref="SafeOps"/>).</summary>
    private protected static long BatchNormElements(long features) => checked(4 * features);

    /// <summary>A one-line human-readable description.</summary>
    public abstract string Describe(InputEncoder input, int outputSize);

    protected abstract void WriteBody(BinaryWriter writer);

    public void Write(BinaryWriter writer)
    {
        writer.Write(Kind);
        WriteBody(writer);
    }

    /// <summary>Reads a spec written by <see cref="Write"/> through the reader its family registered.</summary>
    public static NetworkSpec Read(BinaryReader reader)
    {
        string kind = reader.ReadString();
        if (!Readers.Value.TryGetValue(kind, out var read))
            throw new InvalidDataException($"This model uses the network family '{kind}', which this version of MLNetDeep does not know: the model file is corrupt, or was written by a newer MLNetDeep (update the package).");
        try { return read(reader); }
        catch (System.Reflection.TargetInvocationException e) when (e.InnerException is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerException).Throw();
            throw;
        }
    }

    /// <summary>The dense input size a family of fixed-size vectors needs.</summary>
    private protected static int DenseSize(InputEncoder input, string family) => input is DenseEncoder d ? d.Size
        : throw new ArgumentOutOfRangeException(nameof(DeepTrainerOptions.FeatureColumnName), $"{family} networks read a known-size vector of floats, not {input.Describe()}.");

    /// <summary>The module for an activation.</summary>
    public static nn.Module<Tensor, Tensor> CreateActivation(DeepActivation a) => a switch
    {
        DeepActivation.Relu => nn.ReLU(),
        DeepActivation.LeakyRelu => new SafeOps.LeakyRelu(0.01),
        DeepActivation.Elu => new SafeOps.Elu(),
        DeepActivation.Selu => nn.SELU(),
        DeepActivation.Gelu => nn.GELU(),
        DeepActivation.Swish => nn.SiLU(),
        DeepActivation.Tanh => nn.Tanh(),
        DeepActivation.Sigmoid => nn.Sigmoid(),
        _ => throw new ArgumentOutOfRangeException(nameof(a), a, "Unknown activation."),
    };

    /// <summary>
    /// Initialises a weight feeding the given activation: He (Kaiming) for the ReLU family, LeCun normal for SELU,
    /// Xavier (Glorot) for tanh, sigmoid and for output layers (null activation). Biases start at zero.
    /// </summary>
    public static void Initialise(Tensor weight, Tensor? bias, DeepActivation? next)
    {
        using var noGrad = torch.no_grad();
        switch (next)
        {
            case DeepActivation.Relu:
            case DeepActivation.Gelu:
            case DeepActivation.Swish:
            case DeepActivation.Elu:
                nn.init.kaiming_uniform_(weight, 0, nn.init.FanInOut.FanIn, nn.init.NonlinearityType.ReLU);
                break;
            case DeepActivation.LeakyRelu:
                nn.init.kaiming_uniform_(weight, 0.01, nn.init.FanInOut.FanIn, nn.init.NonlinearityType.LeakyReLU);
                break;
            case DeepActivation.Selu:
                long fanIn = weight.numel() / weight.shape[0];
                nn.init.normal_(weight, 0, 1.0 / Math.Sqrt(fanIn));
                break;
            case DeepActivation.Tanh:
                nn.init.xavier_uniform_(weight, 5.0 / 3.0);
                break;
            default:
                nn.init.xavier_uniform_(weight);
                break;
        }
        if (bias is not null) nn.init.zeros_(bias);
    }
}
