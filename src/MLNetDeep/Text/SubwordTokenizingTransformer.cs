// The fitted sub-word tokenizer: text → vector<key> over a compact vocabulary (the tokenizer ids seen in training).
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNetDeep;

[assembly: LoadableClass(typeof(SubwordTokenizingTransformer), null, typeof(SignatureLoadModel), "MLNetDeep sub-word tokenizer", SubwordTokenizingTransformer.LoaderSignature)]

namespace MLNetDeep;

/// <summary>One entry of a <see cref="SubwordTokenizingTransformer"/>'s compact vocabulary.</summary>
/// <param name="Key">The key (1 to <see cref="SubwordTokenizingTransformer.VocabularySize"/>) the token gets in the output column.</param>
/// <param name="TokenizerId">The token's id in the tokenizer (e.g. its cl100k_base id).</param>
/// <param name="Text">The token decoded on its own (the key's value in the column's KeyValues annotation). A byte-level token that is part of a multi-byte character decodes to U+FFFD.</param>
/// <param name="Count">How many times the token occurred in the training data.</param>
public readonly record struct SubwordVocabularyEntry(uint Key, int TokenizerId, string Text, long Count);

/// <summary>
/// Runs a sub-word tokenizer on a text column and writes a variable-length <c>vector&lt;key&gt;</c> column: one key per
/// token, over a compact vocabulary of the tokenizer ids seen when fitting (key k = the k-th entry of
/// <see cref="GetVocabulary"/>; key count <see cref="VocabularySize"/>). The column carries KeyValues annotations (each
/// key's token text), so <c>MapKeyToValue</c> works, and it is what <c>TokenizeIntoWords → MapValueToKey</c> produces,
/// so MLNetDeep's sequence trainers take it as it is. A token not in the vocabulary becomes key 0 (ML.NET's missing key,
/// the trainers' unknown id): never dropped, never padding. Null or empty text gives an empty vector.
/// Made by <c>mlContext.Transforms.Text.TokenizeIntoSubwords</c>; saved with the model, tokenizer files included.
/// </summary>
public sealed class SubwordTokenizingTransformer : ITransformer
{
    internal const string LoaderSignature = "MLNetDeepSubwordTokens";
    private const int FormatVersion = 1;

    private readonly IHost _host;
    private readonly Core _core;
    private readonly int[] _ids;       // key k is _ids[k - 1]
    private readonly string[] _texts;
    private readonly long[] _counts;
    private readonly Dictionary<int, uint> _keyOfId;
    private readonly VBuffer<ReadOnlyMemory<char>> _keyValues;
    private readonly Microsoft.ML.Tokenizers.Tokenizer _tokenizer;

    internal SubwordTokenizingTransformer(IHostEnvironment env, string outputColumnName, string inputColumnName, SubwordTokenizer tokenizer,
        int maximumVocabularySize, int minimumCount, int[] ids, string[] texts, long[] counts)
    {
        _host = env.Register(nameof(SubwordTokenizingTransformer));
        OutputColumnName = outputColumnName;
        InputColumnName = inputColumnName;
        Tokenizer = tokenizer;
        MaximumVocabularySize = maximumVocabularySize;
        MinimumCount = minimumCount;
        _ids = ids;
        _texts = texts;
        _counts = counts;
        _tokenizer = tokenizer.GetTokenizer();
        _keyOfId = new Dictionary<int, uint>(ids.Length);
        for (int i = 0; i < ids.Length; i++) _keyOfId.Add(ids[i], (uint)(i + 1));
        _keyValues = new VBuffer<ReadOnlyMemory<char>>(texts.Length, texts.Select(t => t.AsMemory()).ToArray());
        OutputType = new VectorDataViewType(new KeyDataViewType(typeof(uint), ids.Length));
        _core = new Core(_host, this);
    }

    /// <summary>The output column (a variable-length vector of keys).</summary>
    public string OutputColumnName { get; }

    /// <summary>The text column read.</summary>
    public string InputColumnName { get; }

    /// <summary>The sub-word tokenizer.</summary>
    public SubwordTokenizer Tokenizer { get; }

    /// <summary>The number of keys of the output column: the tokenizer ids kept when fitting.</summary>
    public int VocabularySize => _ids.Length;

    /// <summary>The <c>maximumVocabularySize</c> the vocabulary was built with (0: every id seen at least <see cref="MinimumCount"/> times).</summary>
    public int MaximumVocabularySize { get; }

    /// <summary>The <c>minimumCount</c> the vocabulary was built with.</summary>
    public int MinimumCount { get; }

    /// <summary>The output column's type: a variable-length vector of <c>uint</c> keys with <see cref="VocabularySize"/> values.</summary>
    public VectorDataViewType OutputType { get; }

    /// <summary>Always true: the transformer maps rows to rows.</summary>
    public bool IsRowToRowMapper => true;

    /// <summary>The compact vocabulary in key order (entry i has key i + 1): most frequent tokens first, ties by tokenizer id.</summary>
    public IReadOnlyList<SubwordVocabularyEntry> GetVocabulary()
    {
        var entries = new SubwordVocabularyEntry[_ids.Length];
        for (int i = 0; i < entries.Length; i++) entries[i] = new SubwordVocabularyEntry((uint)(i + 1), _ids[i], _texts[i], _counts[i]);
        return entries;
    }

    /// <summary>The key of a tokenizer id, or false (the id becomes key 0 in the output) when it is not in the vocabulary.</summary>
    public bool TryGetKey(int tokenizerId, out uint key) => _keyOfId.TryGetValue(tokenizerId, out key);

    /// <summary>
    /// Decodes keys of the output column back to text: each run of known keys is decoded by the tokenizer as a whole (so
    /// byte-level tokens of one character join up), and each key 0 becomes <paramref name="unknownText"/>. For a row
    /// without key 0 and a byte-level tokenizer this gives the row's text exactly.
    /// </summary>
    /// <param name="keys">Keys, 0 to <see cref="VocabularySize"/>.</param>
    /// <param name="unknownText">Text written for key 0; U+FFFD by default.</param>
    /// <exception cref="ArgumentOutOfRangeException">A key is above <see cref="VocabularySize"/>.</exception>
    public string Decode(ReadOnlySpan<uint> keys, string unknownText = "\uFFFD")
    {
        ArgumentNullException.ThrowIfNull(unknownText);
        var text = new System.Text.StringBuilder();
        var run = new List<int>();
        foreach (uint k in keys)
        {
            if (k > (uint)_ids.Length)
                throw new ArgumentOutOfRangeException(nameof(keys), $"Key {k} is above the vocabulary size {_ids.Length}.");
            if (k == 0)
            {
                Flush();
                text.Append(unknownText);
            }
            else run.Add(_ids[k - 1]);
        }
        Flush();
        return text.ToString();

        void Flush()
        {
            if (run.Count == 0) return;
            text.Append(_tokenizer.Decode(run));
            run.Clear();
        }
    }

    /// <summary>One row: the text's tokens as keys (0 for a token not in the vocabulary), into <paramref name="dst"/>'s buffers.</summary>
    internal void Encode(ReadOnlySpan<char> text, ref VBuffer<uint> dst)
    {
        if (text.IsEmpty)
        {
            dst = VBufferEditor.Create(ref dst, 0).Commit();
            return;
        }
        var ids = _tokenizer.EncodeToIds(text, considerPreTokenization: true, considerNormalization: true);
        var editor = VBufferEditor.Create(ref dst, ids.Count);
        var values = editor.Values;
        for (int i = 0; i < values.Length; i++) values[i] = _keyOfId.TryGetValue(ids[i], out uint key) ? key : 0;
        dst = editor.Commit();
    }

    // ---------------------------------------------------------------- schema and mapping

    /// <summary>Checks that the input column exists and holds text.</summary>
    internal static void CheckInputColumn(DataViewSchema schema, string column)
    {
        var col = schema.GetColumnOrNull(column)
            ?? throw new ArgumentOutOfRangeException(nameof(SubwordTokenizingEstimator.Options.InputColumnName),
                $"Input column '{column}' of TokenizeIntoSubwords is not in the data (columns: {string.Join(", ", schema.Where(c => !c.IsHidden).Select(c => c.Name))}).");
        CheckInputType(column, col.Type);
    }

    internal static void CheckInputType(string column, DataViewType type)
    {
        if (type is not TextDataViewType)
            throw new ArgumentOutOfRangeException(nameof(SubwordTokenizingEstimator.Options.InputColumnName),
                $"Input column '{column}' of TokenizeIntoSubwords must be text (a string scalar), but is {type}."
                + (type is VectorDataViewType { ItemType: TextDataViewType } ? " Join the texts first (e.g. CustomMapping or one column per text)." : ""));
    }

    /// <summary>The input columns plus the token-key column.</summary>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        CheckInputColumn(inputSchema, InputColumnName);
        return _core.GetOutputSchema(inputSchema);
    }

    /// <summary>Tokenizes <paramref name="input"/> lazily, row by row.</summary>
    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        CheckInputColumn(input.Schema, InputColumnName);
        return _core.Transform(input);
    }

    /// <summary>A row-to-row mapper (used by <c>PredictionEngine</c>).</summary>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        CheckInputColumn(inputSchema, InputColumnName);
        return ((ITransformer)_core).GetRowToRowMapper(inputSchema);
    }

    /// <summary>ML.NET's one-column row mapping, kept out of the public API.</summary>
    private sealed class Core : OneToOneTransformerBase
    {
        private readonly SubwordTokenizingTransformer _parent;

        public Core(IHost host, SubwordTokenizingTransformer parent) : base(host, (parent.OutputColumnName, parent.InputColumnName)) => _parent = parent;

        public override void SaveModel(ModelSaveContext ctx) => ((ICanSaveModel)_parent).Save(ctx);

        public override IRowMapper MakeRowMapper(DataViewSchema schema) => new Mapper(this, schema);

        public override void CheckInputColumn(DataViewSchema inputSchema, int col, int srcCol) => CheckInputType(ColumnPairs[col].inputColumnName, inputSchema[srcCol].Type);

        private sealed class Mapper : OneToOneMapperBase
        {
            private readonly SubwordTokenizingTransformer _parent;

            public Mapper(Core core, DataViewSchema schema) : base(core.Host, core, schema) => _parent = core._parent;

            protected override DataViewSchema.DetachedColumn[] GetOutputColumnsCore()
            {
                var annotations = new DataViewSchema.Annotations.Builder();
                var keyValues = _parent._keyValues;
                annotations.AddKeyValues(keyValues.Length, TextDataViewType.Instance, (ref VBuffer<ReadOnlyMemory<char>> dst) => keyValues.CopyTo(ref dst));
                return new[] { new DataViewSchema.DetachedColumn(_parent.OutputColumnName, _parent.OutputType, annotations.ToAnnotations()) };
            }

            protected override Delegate MakeGetter(DataViewRow input, int iinfo, Func<int, bool> activeOutput, out Action disposer)
            {
                disposer = null!;
                var source = input.GetGetter<ReadOnlyMemory<char>>(input.Schema[ColMapNewToOld[iinfo]]);
                var parent = _parent;
                ReadOnlyMemory<char> text = default;
                ValueGetter<VBuffer<uint>> getter = (ref VBuffer<uint> dst) =>
                {
                    source(ref text);
                    parent.Encode(text.Span, ref dst);
                };
                return getter;
            }
        }
    }

    // ---------------------------------------------------------------- persistence

    private static VersionInfo GetVersionInfo() => new(
        modelSignature: "MLNDSUBW",
        verWrittenCur: 0x00010001,
        verReadableCur: 0x00010001,
        verWeCanReadBack: 0x00010001,
        loaderSignature: LoaderSignature,
        loaderAssemblyName: typeof(SubwordTokenizingTransformer).Assembly.FullName);

    void ICanSaveModel.Save(ModelSaveContext ctx)
    {
        _host.CheckValue(ctx, nameof(ctx));
        ctx.CheckAtModel();
        ctx.SetVersionInfo(GetVersionInfo());
        WriteBody(ctx.Writer);
    }

    internal void WriteBody(BinaryWriter w)
    {
        w.Write(FormatVersion);
        w.Write(OutputColumnName);
        w.Write(InputColumnName);
        Tokenizer.Write(w);
        w.Write(MaximumVocabularySize);
        w.Write(MinimumCount);
        w.Write(_ids.Length);
        for (int i = 0; i < _ids.Length; i++)
        {
            w.Write(_ids[i]);
            w.Write(_counts[i]);
            w.Write(_texts[i]);
        }
    }

    // Called by ML.NET's ComponentCatalog through the LoadableClass attribute above.
    private static SubwordTokenizingTransformer Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        ctx.CheckAtModel(GetVersionInfo());
        ZipChecksums.Verify(ctx);
        return ReadBody(env, ctx.Reader);
    }

    /// <summary>Reads what <see cref="WriteBody"/> wrote, checking every count and size: the model file is untrusted.</summary>
    /// <exception cref="InvalidDataException">The data is corrupt or truncated.</exception>
    internal static SubwordTokenizingTransformer ReadBody(IHostEnvironment env, BinaryReader r)
    {
        try
        {
            int format = r.ReadInt32();
            if (format != FormatVersion)
                throw new InvalidDataException($"MLNetDeep sub-word tokenizing transformer format {format} is not supported by this version (expected {FormatVersion}).");
            string output = r.ReadString();
            string input = r.ReadString();
            if (output.Length == 0 || input.Length == 0) throw new InvalidDataException("MLNetDeep model file is corrupt: the sub-word tokenizer has an empty column name.");
            var tokenizer = SubwordTokenizer.Read(r);
            int maximum = r.ReadInt32();
            int minimum = r.ReadInt32();
            if (maximum < 0 || minimum < 1) throw new InvalidDataException($"MLNetDeep model file is corrupt: vocabulary options {maximum} / {minimum}.");
            int count = r.ReadInt32();
            // Each entry takes at least 13 bytes (id, count, a string's length byte).
            var s = r.BaseStream;
            if (count <= 0 || count > int.MaxValue - 2 || (s.CanSeek && count > (s.Length - s.Position) / 13))
                throw new InvalidDataException($"MLNetDeep model file is corrupt or truncated: the sub-word vocabulary claims {count} entries.");
            var ids = new int[count];
            var counts = new long[count];
            var texts = new string[count];
            var seen = new HashSet<int>();
            for (int i = 0; i < count; i++)
            {
                ids[i] = r.ReadInt32();
                counts[i] = r.ReadInt64();
                texts[i] = r.ReadString();
                if (ids[i] < 0 || !seen.Add(ids[i]) || counts[i] < 1)
                    throw new InvalidDataException($"MLNetDeep model file is corrupt: sub-word vocabulary entry {i + 1} (tokenizer id {ids[i]}, count {counts[i]}) is invalid or repeated.");
            }
            return new SubwordTokenizingTransformer(env, output, input, tokenizer, maximum, minimum, ids, texts, counts);
        }
        catch (EndOfStreamException)
        {
            throw new InvalidDataException("MLNetDeep model file is truncated inside the sub-word tokenizing transformer.");
        }
        catch (Exception e) when (e is IOException or FormatException)
        {
            // BinaryReader.ReadString reports a negative or malformed string length this way.
            throw new InvalidDataException("MLNetDeep model file is corrupt inside the sub-word tokenizing transformer: " + e.Message);
        }
    }
}
