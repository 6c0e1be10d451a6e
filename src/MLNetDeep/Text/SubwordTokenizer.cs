// Which Microsoft.ML.Tokenizers sub-word tokenizer TokenizeIntoSubwords runs, and how it is written into a model.
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace MLNetDeep;

/// <summary>The kinds of sub-word tokenizer <see cref="SubwordTokenizer"/> describes.</summary>
public enum SubwordTokenizerKind
{
    /// <summary>A Tiktoken byte-level BPE encoding shipped inside a Microsoft.ML.Tokenizers.Data package (cl100k_base, o200k_base).</summary>
    Tiktoken = 1,

    /// <summary>Byte-pair encoding from a vocabulary JSON file and a merges file (GPT-2 / RoBERTa style, or classic word-level BPE).</summary>
    Bpe = 2,

    /// <summary>BERT's WordPiece from a vocab.txt file (one token per line), with BERT's basic tokenization.</summary>
    WordPiece = 3,
}

/// <summary>
/// Describes the sub-word tokenizer that <c>TokenizeIntoSubwords</c> runs: a Tiktoken encoding whose vocabulary ships
/// inside a NuGet package (<see cref="Cl100kBase"/>, <see cref="O200kBase"/>), or a BPE / WordPiece tokenizer built from
/// vocabulary files (<see cref="Bpe"/>, <see cref="WordPiece"/>). File-based tokenizers read their files when the
/// description is created and keep their contents: a saved model carries them, so a model loaded on another machine
/// needs neither the files nor a download. Nothing is ever downloaded at run time.
/// </summary>
/// <remarks>
/// Instances are immutable and thread-safe. The Microsoft.ML.Tokenizers tokenizer behind one is created once, on first
/// use, and shared (its caches are locked; encoding is thread-safe).
/// </remarks>
public sealed class SubwordTokenizer
{
    /// <summary>The largest vocabulary or merges file accepted (256 MiB).</summary>
    internal const int MaximumFileBytes = 256 << 20;

    private const string Cl100kName = "cl100k_base";
    private const string O200kName = "o200k_base";

    // GPT-2's pre-tokenization pattern (what its byte-level BPE was trained with): contractions, words and numbers with
    // their leading space, other symbols, and whitespace. Spaces stay in the tokens, so decoding gives the text back.
    private const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private readonly byte[]? _vocabulary;
    private readonly byte[]? _merges;
    private readonly Lazy<Tokenizer> _tokenizer;

    private SubwordTokenizer(SubwordTokenizerKind kind, string name, byte[]? vocabulary, byte[]? merges, bool byteLevel, string? unknownToken, bool lowerCase)
    {
        Kind = kind;
        Name = name;
        _vocabulary = vocabulary;
        _merges = merges;
        ByteLevel = byteLevel;
        UnknownToken = unknownToken;
        LowerCase = lowerCase;
        _tokenizer = new Lazy<Tokenizer>(Build, LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>
    /// OpenAI's cl100k_base encoding (GPT-3.5 / GPT-4; about 100 000 tokens), from the
    /// Microsoft.ML.Tokenizers.Data.Cl100kBase package: byte-level, so every text is encoded and decodes back exactly.
    /// The default of <c>TokenizeIntoSubwords</c>.
    /// </summary>
    public static SubwordTokenizer Cl100kBase() => new(SubwordTokenizerKind.Tiktoken, Cl100kName, null, null, true, null, false);

    /// <summary>
    /// OpenAI's o200k_base encoding (GPT-4o; about 200 000 tokens, better on non-English text), from the
    /// Microsoft.ML.Tokenizers.Data.O200kBase package. Byte-level like <see cref="Cl100kBase"/>.
    /// </summary>
    public static SubwordTokenizer O200kBase() => new(SubwordTokenizerKind.Tiktoken, O200kName, null, null, true, null, false);

    /// <summary>
    /// A byte-pair-encoding tokenizer from your vocabulary files: <paramref name="vocabularyJsonPath"/> is a JSON object
    /// mapping each token to its id (<c>vocab.json</c>), <paramref name="mergesPath"/> the merge rules, one pair per line
    /// in priority order (<c>merges.txt</c>; a first line starting with <c>#version</c> is skipped). Both files are read
    /// now and their contents kept (and saved with the model); the tokenizer is built now, so a bad file fails here.
    /// </summary>
    /// <param name="vocabularyJsonPath">The vocabulary JSON file.</param>
    /// <param name="mergesPath">The merges file.</param>
    /// <param name="byteLevel">
    /// <see langword="true"/> for GPT-2 / RoBERTa-style files (tokens spelled in GPT-2's byte alphabet, <c>Ġ</c> for a
    /// space): the text is split with GPT-2's pattern and encoded as UTF-8 bytes, so any text is encoded and decodes back
    /// exactly when the vocabulary has all 256 byte symbols. <see langword="false"/> (default; Microsoft.ML.Tokenizers'
    /// <c>BpeTokenizer.Create</c>): the text is split into runs of word characters and runs of other non-space
    /// characters, whitespace is not encoded, and a character the vocabulary lacks is dropped by the tokenizer unless
    /// <paramref name="unknownToken"/> is given.
    /// </param>
    /// <param name="unknownToken">A vocabulary entry that stands for characters the vocabulary lacks (e.g. <c>&lt;unk&gt;</c>); none by default.</param>
    /// <exception cref="ArgumentNullException">A path is null.</exception>
    /// <exception cref="FileNotFoundException">A file does not exist.</exception>
    /// <exception cref="ArgumentException">A file is empty, too large or not a valid vocabulary / merges file (the message names it).</exception>
    public static SubwordTokenizer Bpe(string vocabularyJsonPath, string mergesPath, bool byteLevel = false, string? unknownToken = null)
    {
        var vocabulary = ReadFile(vocabularyJsonPath, nameof(vocabularyJsonPath));
        var merges = ReadFile(mergesPath, nameof(mergesPath));
        var description = new SubwordTokenizer(SubwordTokenizerKind.Bpe, "BPE " + Path.GetFileName(vocabularyJsonPath), vocabulary, merges, byteLevel, unknownToken, false);
        description.Validate($"'{vocabularyJsonPath}' and '{mergesPath}'", nameof(vocabularyJsonPath));
        return description;
    }

    /// <summary>
    /// BERT's WordPiece tokenizer from a <c>vocab.txt</c> file (one token per line, the line number is the id; continuation
    /// pieces start with <c>##</c>), with BERT's basic tokenization (punctuation split off, accents removed when lower-casing,
    /// CJK characters split). No <c>[CLS]</c> / <c>[SEP]</c> is added: the output is the text's pieces only. A word with no
    /// pieces in the vocabulary becomes the vocabulary's <c>[UNK]</c>. The file is read now and its contents kept.
    /// </summary>
    /// <param name="vocabularyPath">The vocab.txt file.</param>
    /// <param name="lowerCase">Lower-case the text first (uncased BERT models; default). <see langword="false"/> for cased models.</param>
    /// <exception cref="ArgumentNullException">The path is null.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="ArgumentException">The file is empty, too large or not a valid vocabulary (e.g. it lacks <c>[UNK]</c>).</exception>
    public static SubwordTokenizer WordPiece(string vocabularyPath, bool lowerCase = true)
    {
        var vocabulary = ReadFile(vocabularyPath, nameof(vocabularyPath));
        var description = new SubwordTokenizer(SubwordTokenizerKind.WordPiece, "WordPiece " + Path.GetFileName(vocabularyPath), vocabulary, null, false, null, lowerCase);
        description.Validate($"'{vocabularyPath}'", nameof(vocabularyPath));
        return description;
    }

    /// <summary>Which kind of tokenizer this is.</summary>
    public SubwordTokenizerKind Kind { get; }

    /// <summary>
    /// A short name: the encoding for Tiktoken (<c>cl100k_base</c>), otherwise the kind and the vocabulary file's name
    /// when the description was made (e.g. <c>BPE vocab.json</c>).
    /// </summary>
    public string Name { get; }

    /// <summary>Whether text is encoded as UTF-8 bytes (Tiktoken; BPE with <c>byteLevel</c>).</summary>
    public bool ByteLevel { get; }

    /// <summary>BPE only: the vocabulary entry for characters the vocabulary lacks, or null.</summary>
    public string? UnknownToken { get; }

    /// <summary>WordPiece only: whether the text is lower-cased first.</summary>
    public bool LowerCase { get; }

    /// <summary>Size in bytes of the vocabulary and merges files kept in this description (0 for Tiktoken, whose data ships in a package).</summary>
    public long EmbeddedBytes => (_vocabulary?.LongLength ?? 0) + (_merges?.LongLength ?? 0);

    /// <summary>
    /// The Microsoft.ML.Tokenizers tokenizer this description stands for (created on first use, then shared; thread-safe).
    /// Use it to decode tokenizer ids, e.g. those of <see cref="SubwordTokenizingTransformer.GetVocabulary"/>.
    /// </summary>
    public Tokenizer GetTokenizer() => _tokenizer.Value;

    /// <summary>A one-line description, e.g. <c>Tiktoken cl100k_base</c>.</summary>
    public override string ToString() => Kind switch
    {
        SubwordTokenizerKind.Tiktoken => "Tiktoken " + Name,
        SubwordTokenizerKind.Bpe => $"{Name} ({(ByteLevel ? "byte-level" : "word-level")}{(UnknownToken is null ? "" : ", unknown token " + UnknownToken)}, {EmbeddedBytes} bytes embedded)",
        _ => $"{Name} ({(LowerCase ? "lower-cased" : "cased")}, {EmbeddedBytes} bytes embedded)",
    };

    private static byte[] ReadFile(string path, string parameter)
    {
        ArgumentNullException.ThrowIfNull(path, parameter);
        if (!File.Exists(path)) throw new FileNotFoundException($"The tokenizer file '{path}' ({parameter}) does not exist.", path);
        long length = new FileInfo(path).Length;
        if (length == 0) throw new ArgumentException($"The tokenizer file '{path}' is empty.", parameter);
        if (length > MaximumFileBytes) throw new ArgumentException($"The tokenizer file '{path}' has {length} bytes; at most {MaximumFileBytes} are accepted.", parameter);
        return File.ReadAllBytes(path);
    }

    /// <summary>Builds the tokenizer now, so that a bad file fails where it is named.</summary>
    private void Validate(string what, string parameter)
    {
        try
        {
            _ = _tokenizer.Value;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new ArgumentException($"Cannot build a {Kind} tokenizer from {what}: {e.Message}", parameter, e);
        }
    }

    private Tokenizer Build()
    {
        switch (Kind)
        {
            case SubwordTokenizerKind.Tiktoken:
                return TiktokenTokenizer.CreateForEncoding(Name);
            case SubwordTokenizerKind.Bpe when ByteLevel:
            {
                var vocabulary = System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, int>>(_vocabulary)
                    ?? throw new InvalidDataException("The vocabulary JSON is null.");
                return BpeTokenizer.Create(new BpeOptions(vocabulary)
                {
                    Merges = MergeLines(_merges!),
                    ByteLevel = true,
                    PreTokenizer = new RegexPreTokenizer(new Regex(Gpt2Pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant), null),
                    UnknownToken = UnknownToken,
                });
            }
            case SubwordTokenizerKind.Bpe:
            {
                using var vocabulary = new MemoryStream(_vocabulary!, writable: false);
                using var merges = new MemoryStream(_merges!, writable: false);
                return BpeTokenizer.Create(vocabulary, merges, PreTokenizer.CreateWordOrNonWord(), normalizer: null, specialTokens: null, unknownToken: UnknownToken);
            }
            case SubwordTokenizerKind.WordPiece:
            {
                using var vocabulary = new MemoryStream(_vocabulary!, writable: false);
                return BertTokenizer.Create(vocabulary, new BertOptions { LowerCaseBeforeTokenization = LowerCase });
            }
            default:
                throw new InvalidOperationException($"Unknown sub-word tokenizer kind {Kind}.");
        }
    }

    /// <summary>The merge rules of a merges file: its non-empty lines, without a leading <c>#version</c> line.</summary>
    private static List<string> MergeLines(byte[] merges)
    {
        var lines = new List<string>();
        using var reader = new StreamReader(new MemoryStream(merges, writable: false), System.Text.Encoding.UTF8);
        bool first = true;
        for (string? line = reader.ReadLine(); line is not null; line = reader.ReadLine())
        {
            if (first && line.StartsWith("#version", StringComparison.Ordinal)) { first = false; continue; }
            first = false;
            if (line.Length > 0) lines.Add(line);
        }
        return lines;
    }

    // ---------------------------------------------------------------- persistence

    private const int FormatVersion = 1;

    /// <summary>Writes the description, embedding any vocabulary files' contents.</summary>
    internal void Write(BinaryWriter w)
    {
        w.Write(FormatVersion);
        w.Write((int)Kind);
        w.Write(Name);
        w.Write(ByteLevel);
        w.Write(UnknownToken ?? "");
        w.Write(LowerCase);
        WriteBlob(w, _vocabulary);
        WriteBlob(w, _merges);
    }

    private static void WriteBlob(BinaryWriter w, byte[]? blob)
    {
        w.Write(blob?.Length ?? -1);
        if (blob is not null) w.Write(blob);
    }

    /// <summary>Reads a description written by <see cref="Write"/>, checking everything (the model file is untrusted).</summary>
    /// <exception cref="InvalidDataException">The data is corrupt or truncated, or names a tokenizer this version does not know.</exception>
    internal static SubwordTokenizer Read(BinaryReader r)
    {
        int format = r.ReadInt32();
        if (format != FormatVersion) throw new InvalidDataException($"MLNetDeep sub-word tokenizer format {format} is not supported by this version (expected {FormatVersion}).");
        int kindValue = r.ReadInt32();
        if (!Enum.IsDefined(typeof(SubwordTokenizerKind), kindValue)) throw new InvalidDataException($"MLNetDeep model file is corrupt: unknown sub-word tokenizer kind {kindValue}.");
        var kind = (SubwordTokenizerKind)kindValue;
        string name = r.ReadString();
        bool byteLevel = r.ReadBoolean();
        string unknown = r.ReadString();
        bool lowerCase = r.ReadBoolean();
        var vocabulary = ReadBlob(r, "vocabulary");
        var merges = ReadBlob(r, "merges");
        SubwordTokenizer result;
        switch (kind)
        {
            case SubwordTokenizerKind.Tiktoken:
                if (name != Cl100kName && name != O200kName)
                    throw new InvalidDataException($"MLNetDeep model file names the Tiktoken encoding '{name}', which this version does not ship (cl100k_base, o200k_base).");
                if (vocabulary is not null || merges is not null) throw new InvalidDataException("MLNetDeep model file is corrupt: a Tiktoken tokenizer with embedded files.");
                return new SubwordTokenizer(kind, name, null, null, true, null, false);
            case SubwordTokenizerKind.Bpe:
                if (vocabulary is null || merges is null) throw new InvalidDataException("MLNetDeep model file is corrupt: a BPE tokenizer without its vocabulary or merges.");
                result = new SubwordTokenizer(kind, name, vocabulary, merges, byteLevel, unknown.Length == 0 ? null : unknown, false);
                break;
            default:
                if (vocabulary is null || merges is not null) throw new InvalidDataException("MLNetDeep model file is corrupt: a WordPiece tokenizer without its vocabulary.");
                result = new SubwordTokenizer(kind, name, vocabulary, null, false, null, lowerCase);
                break;
        }
        try
        {
            _ = result._tokenizer.Value;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"MLNetDeep model file is corrupt: its {kind} tokenizer's embedded vocabulary cannot be read ({e.Message}).");
        }
        return result;
    }

    private static byte[]? ReadBlob(BinaryReader r, string what)
    {
        int length = r.ReadInt32();
        if (length == -1) return null;
        if (length <= 0 || length > MaximumFileBytes) throw new InvalidDataException($"MLNetDeep model file is corrupt: the tokenizer's {what} has {length} bytes.");
        var s = r.BaseStream;
        if (s.CanSeek && length > s.Length - s.Position)
            throw new InvalidDataException($"MLNetDeep model file is truncated: the tokenizer's {what} should have {length} bytes, {s.Length - s.Position} remain.");
        var bytes = r.ReadBytes(length);
        if (bytes.Length != length) throw new InvalidDataException($"MLNetDeep model file is truncated inside the tokenizer's {what}.");
        return bytes;
    }
}
