// The recurrent network: token embedding or numeric steps → LSTM / GRU / tanh RNN (packed, so padding never reaches
// a row's states) → pooling over the valid steps → dropout → dense head.
using MLNetDeep.Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetDeep;

/// <summary>Recurrent cell of a recurrent network.</summary>
public enum RecurrentCell
{
    /// <summary>Long short-term memory (Hochreiter and Schmidhuber, 1997).</summary>
    Lstm,
    /// <summary>Gated recurrent unit (Cho et al., 2014).</summary>
    Gru,
    /// <summary>Plain (Elman) recurrent layer with tanh.</summary>
    Rnn,
}

/// <summary>How a sequence of recurrent outputs becomes one vector for the head. Only valid (non-padding) steps count.</summary>
public enum SequencePooling
{
    /// <summary>The output at the last valid step (for a bidirectional net, the backward direction's output at the first step).</summary>
    Last,
    /// <summary>The mean of the outputs over the valid steps.</summary>
    Mean,
    /// <summary>The element-wise maximum of the outputs over the valid steps.</summary>
    Max,
    /// <summary>A learned weighted mean (additive attention: a score per step, softmax over the valid steps).</summary>
    Attention,
}

/// <summary>How a recurrent forecaster produces its H values.</summary>
public enum ForecastDecoding
{
    /// <summary>One dense layer maps the pooled state to all H values at once (the default).</summary>
    Direct,
    /// <summary>
    /// The net forecasts one step, feeds that value back as the next input step and continues its recurrent state,
    /// H times (trained through all H steps). Needs a univariate window (one value per step, the series being
    /// forecast), a one-directional net and last-step pooling; the label is taken in the input's units.
    /// </summary>
    Autoregressive,
}

/// <summary>The recurrent network's description, saved in the model file.</summary>
[NetworkFamily(KindName)]
internal sealed class RnnNetworkSpec : NetworkSpec
{
    public const string KindName = "rnn";

    public RnnNetworkSpec(RecurrentCell cell, int hiddenSize, int layers, bool bidirectional, float dropout, SequencePooling pooling, int embeddingSize, int featuresPerStep,
        ForecastDecoding decoding = ForecastDecoding.Direct)
    {
        Decoding = decoding;
        Cell = cell;
        HiddenSize = hiddenSize;
        Layers = layers;
        Bidirectional = bidirectional;
        Dropout = dropout;
        Pooling = pooling;
        EmbeddingSize = embeddingSize;
        FeaturesPerStep = featuresPerStep;
    }

    public RecurrentCell Cell { get; }
    public int HiddenSize { get; }
    public int Layers { get; }
    public bool Bidirectional { get; }
    public float Dropout { get; }
    public SequencePooling Pooling { get; }

    /// <summary>Embedding width for token input (unused for numeric input).</summary>
    public int EmbeddingSize { get; }

    /// <summary>Values per step for numeric input (unused for token input).</summary>
    public int FeaturesPerStep { get; }

    /// <summary>Forecasting: all H values from one layer, or one step at a time fed back.</summary>
    public ForecastDecoding Decoding { get; }

    public override nn.Module<Tensor, Tensor> Build(InputEncoder input, int outputSize) => input switch
    {
        TokenEncoder when Decoding == ForecastDecoding.Autoregressive => throw new ArgumentOutOfRangeException(nameof(ForecastDecoding),
            "Autoregressive decoding feeds each forecast back as the next step's value, so it needs numeric input (one value per step), not tokens."),
        TokenEncoder t => new RnnNetwork(this, t.VocabularySize, 0, outputSize),
        DenseEncoder d when d.Size % FeaturesPerStep == 0 => new RnnNetwork(this, 0, d.Size / FeaturesPerStep, outputSize),
        DenseEncoder d => throw new ArgumentOutOfRangeException(nameof(SequenceOptions.FeaturesPerStep),
            $"The feature vector has {d.Size} values, which is not a whole number of steps of {FeaturesPerStep} values (FeaturesPerStep)."),
        _ => throw new ArgumentOutOfRangeException(nameof(input), $"Recurrent networks cannot read {input.Describe()}."),
    };

    public override long StateElements(InputEncoder input, int outputSize)
    {
        // The embedding (token input), then per layer and direction the input and recurrent weights and their two biases.
        long n = input is TokenEncoder t ? checked((long)t.VocabularySize * EmbeddingSize) : 0;
        long inputs = input is TokenEncoder ? EmbeddingSize : FeaturesPerStep;
        int gates = Cell switch { RecurrentCell.Lstm => 4, RecurrentCell.Gru => 3, _ => 1 };
        long directions = Bidirectional ? 2 : 1, width = directions * HiddenSize;
        checked
        {
            for (int layer = 0; layer < Layers; layer++, inputs = width)
                n += directions * gates * HiddenSize * (inputs + HiddenSize + 2);
            if (Pooling == SequencePooling.Attention) n += LinearElements(width, 1);
            return n + LinearElements(width, Decoding == ForecastDecoding.Autoregressive ? 1 : outputSize);
        }
    }

    public override string Describe(InputEncoder input, int outputSize)
    {
        string source = input is TokenEncoder t ? $"tokens ({t.VocabularySize} ids) -> embedding {EmbeddingSize}"
            : input is DenseEncoder d ? $"{d.Size / FeaturesPerStep} steps x {FeaturesPerStep}" : input.Describe();
        if (Decoding == ForecastDecoding.Autoregressive)
            return $"{Cell.ToString().ToUpperInvariant()} {source} -> {Layers} x {HiddenSize}" + (Dropout > 0 ? $", dropout {Dropout}" : "")
                + $" -> 1, autoregressive over {outputSize} steps";
        return $"{(Bidirectional ? "Bi" : "")}{Cell.ToString().ToUpperInvariant()} {source} -> {Layers} x {HiddenSize}, {Pooling} pooling"
            + (Dropout > 0 ? $", dropout {Dropout}" : "") + $" -> {outputSize}";
    }

    protected override void WriteBody(BinaryWriter w)
    {
        // Version 1 (0.2 previews) had no decoding; version 2 appends it.
        w.Write(Decoding == ForecastDecoding.Direct ? 1 : 2);
        w.Write((int)Cell);
        w.Write(HiddenSize);
        w.Write(Layers);
        w.Write(Bidirectional);
        w.Write(Dropout);
        w.Write((int)Pooling);
        w.Write(EmbeddingSize);
        w.Write(FeaturesPerStep);
        if (Decoding != ForecastDecoding.Direct) w.Write((int)Decoding);
    }

    public static RnnNetworkSpec ReadBody(BinaryReader r)
    {
        int version = r.ReadInt32();
        if (version is not (1 or 2)) throw new InvalidDataException($"Unknown recurrent network format version {version}.");
        var cell = (RecurrentCell)r.ReadInt32();
        int hidden = r.ReadInt32(), layers = r.ReadInt32();
        bool bidirectional = r.ReadBoolean();
        float dropout = r.ReadSingle();
        var pooling = (SequencePooling)r.ReadInt32();
        int embedding = r.ReadInt32(), featuresPerStep = r.ReadInt32();
        var decoding = version >= 2 ? (ForecastDecoding)r.ReadInt32() : ForecastDecoding.Direct;
        var spec = new RnnNetworkSpec(cell, hidden, layers, bidirectional, dropout, pooling, embedding, featuresPerStep, decoding);
        if (!Enum.IsDefined(spec.Cell) || !Enum.IsDefined(spec.Pooling) || !Enum.IsDefined(spec.Decoding) || spec.HiddenSize <= 0 || spec.Layers is <= 0 or > 1000 || spec.FeaturesPerStep <= 0
            || spec.EmbeddingSize < 0 || !(spec.Dropout is >= 0 and < 1)
            || (spec.Decoding == ForecastDecoding.Autoregressive && (spec.Bidirectional || spec.FeaturesPerStep != 1)))
            throw new InvalidDataException("Corrupt recurrent network description.");
        return spec;
    }
}

/// <summary>The recurrent network. Token input is int64 [B, T] with 0 = padding; numeric input is float [B, T·F].</summary>
internal sealed class RnnNetwork : nn.Module<Tensor, Tensor>, IOnnxExportable
{
    private readonly RnnNetworkSpec _spec;
    private readonly int _steps;
    private readonly int _directions;
    internal readonly Embedding? embedding;
    private readonly nn.Module rnn;
    private readonly Linear? attention;
    private readonly TorchSharp.Modules.Dropout? dropout;
    internal readonly Linear head;
    private readonly int _horizon;

    /// <summary>Training only (not saved): word-dropout rate of token input.</summary>
    public double TokenDropout { get; set; }

    public RnnNetwork(RnnNetworkSpec spec, int vocabulary, int steps, int outputSize) : base("RnnNetwork")
    {
        _spec = spec;
        _steps = steps;
        _directions = spec.Bidirectional ? 2 : 1;
        long inputSize;
        if (vocabulary > 0)
        {
            embedding = nn.Embedding(vocabulary, spec.EmbeddingSize, padding_idx: TokenEncoder.PaddingId);
            inputSize = spec.EmbeddingSize;
        }
        else inputSize = spec.FeaturesPerStep;
        double between = spec.Layers > 1 ? spec.Dropout : 0;
        rnn = spec.Cell switch
        {
            RecurrentCell.Lstm => nn.LSTM(inputSize, spec.HiddenSize, spec.Layers, batchFirst: true, dropout: between, bidirectional: spec.Bidirectional),
            RecurrentCell.Gru => nn.GRU(inputSize, spec.HiddenSize, spec.Layers, batchFirst: true, dropout: between, bidirectional: spec.Bidirectional),
            _ => nn.RNN(inputSize, spec.HiddenSize, spec.Layers, nn.NonLinearities.Tanh, batchFirst: true, dropout: between, bidirectional: spec.Bidirectional),
        };
        long width = (long)spec.HiddenSize * _directions;
        if (spec.Pooling == SequencePooling.Attention)
        {
            attention = nn.Linear(width, 1);
            NetworkSpec.Initialise(attention.weight!, attention.bias, null);
        }
        if (spec.Dropout > 0) dropout = nn.Dropout(spec.Dropout);
        _horizon = outputSize;
        head = nn.Linear(width, spec.Decoding == ForecastDecoding.Autoregressive ? 1 : outputSize);
        NetworkSpec.Initialise(head.weight!, head.bias, null);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        Tensor output, lengths;
        if (embedding is not null)
        {
            if (training && TokenDropout > 0) x = TokenEncoder.DropTokens(x, TokenDropout);
            // Lengths from the padding; an empty row counts as one (padding, zero-embedding) step.
            lengths = x.ne(SafeOps.LongZero).sum(1).clamp_min(SafeOps.LongOne);
            var packed = nn.utils.rnn.pack_padded_sequence(embedding.forward(x), lengths, batch_first: true, enforce_sorted: false);
            using var packedOut = Run(packed);
            (output, _) = nn.utils.rnn.pad_packed_sequence(packedOut, batch_first: true);
            packed.Dispose();
        }
        else if (_spec.Decoding == ForecastDecoding.Autoregressive) return Autoregressive(x);
        else
        {
            long b = x.shape[0];
            output = Run(x.view(b, _steps, _spec.FeaturesPerStep));
            using var steps = ((long)_steps).ToScalar();
            lengths = torch.full(new long[] { b }, steps, ScalarType.Int64);
        }
        var pooled = Pool(output, lengths);
        if (dropout is not null) pooled = dropout.forward(pooled);
        return head.forward(pooled);
    }

    /// <summary>
    /// One step forecast from the window's last state, then H − 1 more: each forecast is the next step's input and
    /// the recurrent state carries on. Returns [B, H].
    /// </summary>
    private Tensor Autoregressive(Tensor x)
    {
        long b = x.shape[0];
        var input = x.view(b, _steps, 1);
        var forecasts = new Tensor[_horizon];
        object? state = null;
        for (int h = 0; h < _horizon; h++)
        {
            var (output, next) = Step(input, state);
            var last = output.select(1, output.shape[1] - 1);
            if (dropout is not null) last = dropout.forward(last);
            forecasts[h] = head.forward(last);
            input = forecasts[h].unsqueeze(1);
            state = next;
        }
        return torch.cat(forecasts, 1);
    }

    /// <summary>Runs the recurrent layers over [B, T, F] from a state (null: zeros); returns the outputs and the new state.</summary>
    private (Tensor Output, object State) Step(Tensor input, object? state)
    {
        switch (rnn)
        {
            case LSTM l:
            {
                var (output, h, c) = l.call(input, ((Tensor, Tensor)?)state);
                return (output, (h, c));
            }
            case GRU g:
            {
                var (output, h) = g.call(input, (Tensor?)state);
                return (output, h);
            }
            case RNN r:
            {
                var (output, h) = r.call(input, (Tensor?)state);
                return (output, h);
            }
            default: throw new InvalidOperationException();
        }
    }

    private nn.utils.rnn.PackedSequence Run(nn.utils.rnn.PackedSequence input) => rnn switch
    {
        LSTM l => l.call(input).Item1,
        GRU g => g.call(input).Item1,
        RNN r => r.call(input).Item1,
        _ => throw new InvalidOperationException(),
    };

    private Tensor Run(Tensor input) => rnn switch
    {
        LSTM l => l.call(input).Item1,
        GRU g => g.call(input).Item1,
        RNN r => r.call(input).Item1,
        _ => throw new InvalidOperationException(),
    };

    /// <summary>Pools [B, T, D·H] outputs over each row's valid steps.</summary>
    private Tensor Pool(Tensor output, Tensor lengths)
    {
        long t = output.shape[1];
        long h = _spec.HiddenSize;
        switch (_spec.Pooling)
        {
            case SequencePooling.Last:
            {
                // Forward direction: its output at the last valid step; backward direction: its output at step 0.
                var last = lengths.add(SafeOps.LongMinusOne, SafeOps.LongOne).view(-1, 1, 1).expand(-1, 1, h);
                var forward = output.narrow(2, 0, h).gather(1, last).squeeze(1);
                if (_directions == 1) return forward;
                var backward = output.narrow(2, h, h).select(1, 0);
                return torch.cat(new[] { forward, backward }, 1);
            }
            case SequencePooling.Mean:
            {
                var mask = Mask(lengths, t).unsqueeze(-1).to_type(output.dtype);
                return output.mul(mask).sum(1).div(lengths.unsqueeze(1).to_type(output.dtype));
            }
            case SequencePooling.Max:
                return output.masked_fill(Mask(lengths, t).logical_not().unsqueeze(-1), SafeOps.NegativeInfinity).amax(new long[] { 1 });
            default:
            {
                var scores = attention!.forward(output.tanh()).squeeze(-1).masked_fill(Mask(lengths, t).logical_not(), SafeOps.NegativeInfinity);
                var weights = scores.softmax(1).unsqueeze(-1);
                return output.mul(weights).sum(1);
            }
        }
    }

    private static Tensor Mask(Tensor lengths, long steps)
    {
        using var end = steps.ToScalar();
        return torch.arange(SafeOps.LongZero, end, SafeOps.LongOne, ScalarType.Int64).unsqueeze(0).lt(lengths.unsqueeze(1));
    }

    // ------------------------------------------------------------------ ONNX

    /// <summary>
    /// ONNX: embedding (Gather) or the steps, ONNX's LSTM / GRU / RNN operators per layer (sequence-first layout, gates
    /// reordered from PyTorch's, <c>sequence_lens</c> from the padding so padding never reaches a row's state), pooling
    /// over the valid steps, the head; autoregressive forecasting unrolled over the horizon.
    /// </summary>
    public string ToOnnx(OnnxGraph g, string x)
    {
        string sequence; // [T, B, F]
        string? lengths = null; // int64 [B], token input only
        if (embedding is not null)
        {
            var valid = g.Node("Cast", new[] { g.Node("Not", new[] { g.Node("Equal", new[] { x, g.Longs(new[] { 0L }, Array.Empty<long>()) }) }) }, null, ("to", 7));
            lengths = g.Node("Max", new[] { g.Node("ReduceSum", new[] { valid, g.Longs(new[] { 1L }) }, null, ("keepdims", 0)), g.Longs(new[] { 1L }, Array.Empty<long>()) });
            var embedded = g.Node("Gather", new[] { g.Weight(embedding.weight!, "embedding"), x }, null, ("axis", 0));
            sequence = g.Node("Transpose", new[] { embedded }, null, ("perm", new long[] { 1, 0, 2 }));
        }
        else sequence = g.Node("Transpose", new[] { g.Reshape(x, -1, _steps, _spec.FeaturesPerStep) }, null, ("perm", new long[] { 1, 0, 2 }));

        var weights = Enumerable.Range(0, _spec.Layers).Select(l => LayerWeights(g, l)).ToArray();
        if (_spec.Decoding == ForecastDecoding.Autoregressive) return AutoregressiveOnnx(g, sequence, weights);

        var sequenceLens = lengths is null ? "" : g.Node("Cast", new[] { lengths }, null, ("to", 6));
        string output = sequence, lastState = "";
        for (int l = 0; l < _spec.Layers; l++)
            (output, lastState, _) = RecurrentLayer(g, output, weights[l], sequenceLens, null);
        // Outputs [T, B, D·H] → [B, T, D·H]; last states [D, B, H] → [B, D·H] (forward at the last valid step, backward at step 0).
        var outputs = g.Node("Transpose", new[] { output }, null, ("perm", new long[] { 1, 0, 2 }));
        string pooled;
        switch (_spec.Pooling)
        {
            case SequencePooling.Last:
                pooled = g.Reshape(g.Node("Transpose", new[] { lastState }, null, ("perm", new long[] { 1, 0, 2 })), 0, -1);
                break;
            case SequencePooling.Mean when lengths is null:
                pooled = g.Node("ReduceMean", new[] { outputs }, null, ("axes", new long[] { 1 }), ("keepdims", 0));
                break;
            case SequencePooling.Max when lengths is null:
                pooled = g.Node("ReduceMax", new[] { outputs }, null, ("axes", new long[] { 1 }), ("keepdims", 0));
                break;
            case SequencePooling.Mean:
            {
                var mask = g.Node("Cast", new[] { ValidSteps(g, outputs, lengths!) }, null, ("to", 1));
                var sum = g.Node("ReduceSum", new[] { g.Node("Mul", new[] { outputs, g.Node("Unsqueeze", new[] { mask, g.Longs(new[] { -1L }) }) }), g.Longs(new[] { 1L }) }, null, ("keepdims", 0));
                var count = g.Node("Cast", new[] { g.Node("Unsqueeze", new[] { lengths!, g.Longs(new[] { 1L }) }) }, null, ("to", 1));
                pooled = g.Node("Div", new[] { sum, count });
                break;
            }
            case SequencePooling.Max:
            {
                var mask = g.Node("Unsqueeze", new[] { ValidSteps(g, outputs, lengths!), g.Longs(new[] { -1L }) });
                pooled = g.Node("ReduceMax", new[] { g.Node("Where", new[] { mask, outputs, g.Scalar(float.NegativeInfinity) }) }, null, ("axes", new long[] { 1 }), ("keepdims", 0));
                break;
            }
            default:
            {
                var scores = g.Node("Squeeze", new[] { g.Linear(g.Node("Tanh", new[] { outputs }), attention!.weight!, attention.bias, "attention"), g.Longs(new[] { -1L }) });
                if (lengths is not null) scores = g.Node("Where", new[] { ValidSteps(g, outputs, lengths), scores, g.Scalar(float.NegativeInfinity) });
                var w = g.Node("Unsqueeze", new[] { g.Node("Softmax", new[] { scores }, null, ("axis", 1)), g.Longs(new[] { -1L }) });
                pooled = g.Node("ReduceSum", new[] { g.Node("Mul", new[] { outputs, w }), g.Longs(new[] { 1L }) }, null, ("keepdims", 0));
                break;
            }
        }
        return g.Linear(pooled, head.weight!, head.bias, "head");
    }

    /// <summary>[B, T] bool: step t of row b is within its length.</summary>
    private static string ValidSteps(OnnxGraph g, string outputs, string lengths)
    {
        var steps = g.Node("Gather", new[] { g.Node("Shape", new[] { outputs }), g.Longs(new[] { 1L }, Array.Empty<long>()) });
        var range = g.Node("Range", new[] { g.Longs(new[] { 0L }, Array.Empty<long>()), steps, g.Longs(new[] { 1L }, Array.Empty<long>()) });
        return g.Node("Less", new[] { g.Node("Unsqueeze", new[] { range, g.Longs(new[] { 0L }) }), g.Node("Unsqueeze", new[] { lengths, g.Longs(new[] { 1L }) }) });
    }

    private readonly record struct OnnxLayer(string W, string R, string B, int Gates);

    /// <summary>One layer's weights in ONNX's layout: W [D, G·H, I], R [D, G·H, H], B [D, 2·G·H], gates reordered.</summary>
    private OnnxLayer LayerWeights(OnnxGraph g, int layer)
    {
        var p = rnn.named_parameters().ToDictionary(t => t.name, t => t.parameter);
        int[] order = _spec.Cell switch
        {
            RecurrentCell.Lstm => new[] { 0, 3, 1, 2 }, // PyTorch i f g o → ONNX i o f c
            RecurrentCell.Gru => new[] { 1, 0, 2 },     // PyTorch r z n → ONNX z r h
            _ => new[] { 0 },
        };
        using var scope = torch.NewDisposeScope();
        Tensor Reorder(Tensor t) => torch.cat(t.chunk(order.Length, 0) is var blocks ? order.Select(i => blocks[i]).ToArray() : null!, 0);
        Tensor Stack(string name) => torch.stack(Enumerable.Range(0, _directions)
            .Select(d => Reorder(p[$"{name}_l{layer}{(d == 1 ? "_reverse" : "")}"].detach())).ToArray());
        var w = Stack("weight_ih");
        var r = Stack("weight_hh");
        var b = torch.cat(new[] { Stack("bias_ih"), Stack("bias_hh") }, 1);
        return new OnnxLayer(g.Weight(w, $"rnn.l{layer}.W"), g.Weight(r, $"rnn.l{layer}.R"), g.Weight(b, $"rnn.l{layer}.B"), order.Length);
    }

    /// <summary>One recurrent layer over [T, B, F]: outputs [T, B, D·H], last hidden state [D, B, H], last cell state (LSTM).</summary>
    private (string Output, string Hidden, string Cell) RecurrentLayer(OnnxGraph g, string input, OnnxLayer w, string sequenceLens, (string H, string C)? initial)
    {
        string op = _spec.Cell switch { RecurrentCell.Lstm => "LSTM", RecurrentCell.Gru => "GRU", _ => "RNN" };
        var inputs = new List<string> { input, w.W, w.R, w.B, sequenceLens };
        if (initial is { } init)
        {
            inputs.Add(init.H);
            if (_spec.Cell == RecurrentCell.Lstm) inputs.Add(init.C);
        }
        var attributes = new List<(string, object)> { ("hidden_size", (long)_spec.HiddenSize), ("direction", _spec.Bidirectional ? "bidirectional" : "forward"), ("layout", 0L) };
        if (_spec.Cell == RecurrentCell.Gru) attributes.Add(("linear_before_reset", 1L));
        if (_spec.Cell == RecurrentCell.Rnn) attributes.Add(("activations", Enumerable.Repeat("Tanh", _directions).ToArray()));
        string y = g.Fresh($"{op.ToLowerInvariant()}_y"), h = g.Fresh($"{op.ToLowerInvariant()}_h");
        string c = _spec.Cell == RecurrentCell.Lstm ? g.Fresh("lstm_c") : "";
        var outs = _spec.Cell == RecurrentCell.Lstm ? new[] { y, h, c } : new[] { y, h };
        g.Nodes(op, inputs, outs, attributes.ToArray());
        // Y [T, D, B, H] → [T, B, D·H]
        var output = g.Reshape(g.Node("Transpose", new[] { y }, null, ("perm", new long[] { 0, 2, 1, 3 })), 0, 0, -1);
        return (output, h, c);
    }

    /// <summary>The autoregressive forecaster unrolled: the window, then H one-step calls carrying every layer's state.</summary>
    private string AutoregressiveOnnx(OnnxGraph g, string window, OnnxLayer[] weights)
    {
        var state = new (string H, string C)?[_spec.Layers];
        var forecasts = new List<string>();
        string input = window;
        for (int step = 0; step < _horizon; step++)
        {
            string output = input;
            for (int l = 0; l < _spec.Layers; l++)
            {
                var (y, h, c) = RecurrentLayer(g, output, weights[l], "", state[l]);
                state[l] = (h, c);
                output = y;
            }
            // The top layer's last hidden state is its output at the last step: [1, B, H] → [B, H].
            var last = g.Node("Squeeze", new[] { state[^1]!.Value.H, g.Longs(new[] { 0L }) });
            var forecast = g.Linear(last, head.weight!, head.bias, "head"); // [B, 1]
            forecasts.Add(forecast);
            input = g.Node("Unsqueeze", new[] { forecast, g.Longs(new[] { 0L }) }); // [1, B, 1]
        }
        return g.Node("Concat", forecasts, null, ("axis", 1));
    }

    /// <summary>Copies word vectors into embedding rows (row id → vector); returns how many rows were set.</summary>
    public void SetEmbeddingRows(IReadOnlyDictionary<int, float[]> rows, bool freeze)
    {
        using (torch.no_grad())
        {
            var w = embedding!.weight!;
            foreach (var (id, vector) in rows)
            {
                using var src = torch.tensor(vector);
                using var dst = w.select(0, id);
                dst.copy_(src);
            }
        }
        if (freeze) embedding!.weight!.requires_grad = false;
    }
}
