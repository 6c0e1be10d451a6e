using System.IO.Compression;
using System.Text;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Tokenizers;
using MLNetDeep.TestData;
using Xunit;
using Xunit.Abstractions;

namespace MLNetDeep.Tests;

/// <summary>
/// TokenizeIntoSubwords: sub-word tokenizers (cl100k_base, o200k_base, BPE and WordPiece from files) as a
/// <c>vector&lt;key&gt;</c> column over a compact vocabulary; unknown tokens, persistence across processes, bad input.
/// </summary>
public sealed class SubwordTokenizerTests
{
    private readonly ITestOutputHelper _out;
    public SubwordTokenizerTests(ITestOutputHelper output) => _out = output;

    public sealed class Text
    {
        public string? Message { get; set; }
    }

    private static IDataView Texts(MLContext ml, params string?[] messages) =>
        ml.Data.LoadFromEnumerable(messages.Select(m => new Text { Message = m }).ToArray());

    /// <summary>Each row's keys, in row order.</summary>
    private static List<uint[]> Keys(IDataView data, string column = "Tokens")
    {
        var col = data.Schema[column];
        using var cursor = data.GetRowCursor(new[] { col });
        var getter = cursor.GetGetter<VBuffer<uint>>(col);
        VBuffer<uint> keys = default;
        var rows = new List<uint[]>();
        while (cursor.MoveNext())
        {
            getter(ref keys);
            rows.Add(keys.DenseValues().ToArray());
        }
        return rows;
    }

    private static string[] Messages(IDataView data) => data.GetColumn<string>("Message").Select(m => m ?? "").ToArray();

    /// <summary>ML.NET's SchemaShape.Create (internal in ML.NET 5.0.1), as EstimatorChain calls it.</summary>
    private static SchemaShape Shape(DataViewSchema schema) =>
        (SchemaShape)typeof(SchemaShape).GetMethod("Create", System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic)!.Invoke(null, new object[] { schema })!;

    private static DataOperationsCatalog.TrainTestData SmsSplit(MLContext ml) => ml.Data.TrainTestSplit(RealData.Sms(ml), testFraction: 0.2, seed: 1);

    // ---------------------------------------------------------------- cl100k_base on SMS

    [Fact]
    public void Sms_Cl100k_KeyCountIsTheDistinctIdsOfTheTrainingPart_AndKeysDecodeToTheText()
    {
        var ml = new MLContext(seed: 1);
        var split = SmsSplit(ml);
        var model = ml.Transforms.Text.TokenizeIntoSubwords("Tokens", "Message").Fit(split.TrainSet);

        // The same tokenizer, run independently of the transform.
        var cl100k = TiktokenTokenizer.CreateForEncoding("cl100k_base");
        var trainText = Messages(split.TrainSet);
        var trainIds = trainText.Select(m => cl100k.EncodeToIds(m).ToArray()).ToArray();
        var distinct = trainIds.SelectMany(x => x).ToHashSet();

        var scored = model.Transform(split.TrainSet);
        var type = Assert.IsType<VectorDataViewType>(scored.Schema["Tokens"].Type);
        Assert.False(type.IsKnownSize);
        var key = Assert.IsType<KeyDataViewType>(type.ItemType);
        Assert.Equal(typeof(uint), key.RawType);
        Assert.Equal((ulong)distinct.Count, key.Count);
        Assert.Equal(distinct.Count, model.VocabularySize);
        Assert.True(distinct.Count < 20_000, $"compact vocabulary {distinct.Count} is not far smaller than cl100k's 100k");
        Assert.Equal(SubwordTokenizerKind.Tiktoken, model.Tokenizer.Kind);
        Assert.Equal("cl100k_base", model.Tokenizer.Name);

        // Vocabulary: every id seen, ordered by count (descending) then id; counts are the training counts.
        var vocabulary = model.GetVocabulary();
        var counts = trainIds.SelectMany(x => x).GroupBy(x => x).ToDictionary(g => g.Key, g => (long)g.Count());
        Assert.Equal(distinct.OrderBy(x => x), vocabulary.Select(v => v.TokenizerId).OrderBy(x => x));
        for (int i = 0; i < vocabulary.Count; i++)
        {
            Assert.Equal((uint)(i + 1), vocabulary[i].Key);
            Assert.Equal(counts[vocabulary[i].TokenizerId], vocabulary[i].Count);
            Assert.Equal(cl100k.Decode(new[] { vocabulary[i].TokenizerId }), vocabulary[i].Text);
            if (i > 0)
                Assert.True(vocabulary[i - 1].Count > vocabulary[i].Count || (vocabulary[i - 1].Count == vocabulary[i].Count && vocabulary[i - 1].TokenizerId < vocabulary[i].TokenizerId),
                    $"vocabulary entries {i} and {i + 1} are out of order");
        }

        // KeyValues annotations: key k's value is entry k's text.
        VBuffer<ReadOnlyMemory<char>> keyValues = default;
        scored.Schema["Tokens"].GetKeyValues(ref keyValues);
        Assert.Equal(vocabulary.Select(v => v.Text), keyValues.DenseValues().Select(v => v.ToString()));

        // Round trip on every training row: keys → tokenizer ids are the tokenizer's own ids, and decode to the text.
        var rows = Keys(scored);
        Assert.Equal(trainText.Length, rows.Count);
        for (int r = 0; r < rows.Count; r++)
        {
            Assert.DoesNotContain(0u, rows[r]);
            var ids = rows[r].Select(k => vocabulary[(int)k - 1].TokenizerId).ToArray();
            Assert.Equal(trainIds[r], ids);
            Assert.Equal(trainText[r], cl100k.Decode(ids));
            Assert.Equal(trainText[r], model.Decode(rows[r]));
        }

        // The test part: tokens not seen in the training part are key 0, counted, never dropped.
        var testText = Messages(split.TestSet);
        var testRows = Keys(model.Transform(split.TestSet));
        long testTokens = 0, unknown = 0, expectedUnknown = 0;
        for (int r = 0; r < testRows.Count; r++)
        {
            var ids = cl100k.EncodeToIds(testText[r]);
            Assert.Equal(ids.Count, testRows[r].Length);
            for (int i = 0; i < ids.Count; i++)
            {
                Assert.Equal(model.TryGetKey(ids[i], out uint k) ? k : 0u, testRows[r][i]);
                if (!distinct.Contains(ids[i])) expectedUnknown++;
            }
            testTokens += ids.Count;
            unknown += testRows[r].Count(k => k == 0);
        }
        Assert.Equal(expectedUnknown, unknown);
        Assert.True(unknown > 0, "the test part has no sub-word unseen in the training part");
        _out.WriteLine($"SMS training part: {trainText.Length} messages, {trainIds.Sum(x => x.Length)} tokens, compact vocabulary {model.VocabularySize} of cl100k_base's ~100k ids");
        _out.WriteLine($"SMS test part: {testText.Length} messages, {testTokens} tokens, {unknown} key-0 tokens ({100.0 * unknown / testTokens:F2} %) in {testRows.Count(r => r.Contains(0u))} messages");
    }

    [Fact]
    public void MapKeyToValue_GivesTheTokenTexts()
    {
        var ml = new MLContext(seed: 1);
        var data = Texts(ml, "Free entry in 2 a wkly comp", "Ok lar... Joking wif u oni...");
        var model = ml.Transforms.Text.TokenizeIntoSubwords("Tokens", "Message")
            .Append(ml.Transforms.Conversion.MapKeyToValue("Pieces", "Tokens"))
            .Fit(data);
        var pieces = model.Transform(data).GetColumn<string[]>("Pieces").ToArray();
        Assert.Equal("Free entry in 2 a wkly comp", string.Concat(pieces[0]));
        Assert.Equal("Ok lar... Joking wif u oni...", string.Concat(pieces[1]));
        Assert.Contains(" entry", pieces[0]);
    }

    [Fact]
    public void UnseenSubword_IsKeyZero_KnownOnlyMessage_HasNone_EmptyAndNull_AreEmptyVectors()
    {
        var ml = new MLContext(seed: 1);
        var model = ml.Transforms.Text.TokenizeIntoSubwords("Tokens", "Message").Fit(Texts(ml, "free prize now", "see you later"));
        var cl100k = TiktokenTokenizer.CreateForEncoding("cl100k_base");
        var trainIds = new[] { "free prize now", "see you later" }.SelectMany(t => cl100k.EncodeToIds(t)).ToHashSet();
        Assert.Equal(trainIds.Count, model.VocabularySize);

        var rows = Keys(model.Transform(Texts(ml, "free zebra quagga", "see you later now", "", null, "   ")));
        var zebraIds = cl100k.EncodeToIds("free zebra quagga");
        Assert.Equal(zebraIds.Count, rows[0].Length);                 // nothing dropped
        Assert.Equal(zebraIds.Count(id => !trainIds.Contains(id)), rows[0].Count(k => k == 0));
        Assert.True(rows[0].Count(k => k == 0) >= 2);
        Assert.NotEqual(0u, rows[0][0]);                              // "free" was seen
        Assert.Equal(cl100k.EncodeToIds("see you later now").Count, rows[1].Length);
        Assert.DoesNotContain(0u, rows[1]);
        Assert.Empty(rows[2]);
        Assert.Empty(rows[3]);
        Assert.Equal(cl100k.EncodeToIds("   ").Count, rows[4].Length); // whitespace is text, tokenized like any other
        Assert.Equal("free\uFFFD\uFFFD", model.Decode(new uint[] { rows[0][0], 0, 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => model.Decode(new uint[] { (uint)model.VocabularySize + 1 }));
    }

    [Fact]
    public void MaximumVocabularySize_KeepsTheMostFrequent_MinimumCount_DropsTheRare()
    {
        var ml = new MLContext(seed: 1);
        var train = SmsSplit(ml).TrainSet;
        var cl100k = TiktokenTokenizer.CreateForEncoding("cl100k_base");
        var counts = Messages(train).SelectMany(m => cl100k.EncodeToIds(m)).GroupBy(x => x).ToDictionary(g => g.Key, g => (long)g.Count());

        var top = ml.Transforms.Text.TokenizeIntoSubwords("Tokens", "Message", maximumVocabularySize: 500).Fit(train);
        Assert.Equal(500, top.VocabularySize);
        var expected = counts.OrderByDescending(p => p.Value).ThenBy(p => p.Key).Take(500).Select(p => p.Key).ToArray();
        Assert.Equal(expected, top.GetVocabulary().Select(v => v.TokenizerId));
        long smallestKept = top.GetVocabulary().Min(v => v.Count);
        Assert.True(counts.Where(p => !top.TryGetKey(p.Key, out _)).All(p => p.Value <= smallestKept));
        var type = (VectorDataViewType)top.Transform(train).Schema["Tokens"].Type;
        Assert.Equal(500UL, Assert.IsType<KeyDataViewType>(type.ItemType).Count);
        // Tokens beyond the 500 are key 0 even in the training data.
        var rows = Keys(top.Transform(train));
        long dropped = counts.Where(p => !top.TryGetKey(p.Key, out _)).Sum(p => p.Value);
        Assert.Equal(dropped, rows.Sum(r => r.LongCount(k => k == 0)));
        Assert.True(dropped > 0);

        var frequent = ml.Transforms.Text.TokenizeIntoSubwords(new SubwordTokenizingEstimator.Options
        {
            OutputColumnName = "Tokens", InputColumnName = "Message", MinimumCount = 5,
        }).Fit(train);
        Assert.Equal(counts.Count(p => p.Value >= 5), frequent.VocabularySize);
        Assert.All(frequent.GetVocabulary(), v => Assert.True(v.Count >= 5));
        _out.WriteLine($"SMS training part: {counts.Count} distinct ids; {frequent.VocabularySize} seen at least 5 times; top 500 cover {100.0 * (1 - (double)dropped / counts.Values.Sum()):F1} % of the tokens");
    }

    // ---------------------------------------------------------------- persistence

    [Theory]
    [InlineData("cl100k_base")]
    [InlineData("o200k_base")]
    public void PipelineSaveLoad_InANewContext_AndInAnotherProcess_GivesIdenticalKeys(string encoding)
    {
        var ml = new MLContext(seed: 1);
        var data = RealData.Sms(ml);
        var split = ml.Data.TrainTestSplit(data, testFraction: 0.2, seed: 1);
        var tokenizer = encoding == "cl100k_base" ? SubwordTokenizer.Cl100kBase() : SubwordTokenizer.O200kBase();
        // A pipeline with the tokenizer between two stock transforms.
        var model = ml.Transforms.CopyColumns("Text", "Message")
            .Append(ml.Transforms.Text.TokenizeIntoSubwords("Tokens", "Text", tokenizer))
            .Append(ml.Transforms.Conversion.MapKeyToValue("Pieces", "Tokens"))
            .Fit(split.TrainSet);
        var fitted = model.OfType<SubwordTokenizingTransformer>().Single();
        string path = Path.Combine(TestUtil.TempDir(), "tokens.zip");
        ml.Model.Save(model, split.TrainSet.Schema, path);

        var here = PredictionDump.KeyLines(model.Transform(data), "Tokens").ToArray();
        Assert.Contains(here, l => l.Split(' ').Contains("0"));        // the full file has tokens unseen in the training part

        var loaded = new MLContext().Model.Load(path, out var schema);
        Assert.Equal(split.TrainSet.Schema["Message"].Type, schema["Message"].Type);
        var reloaded = Assert.IsType<TransformerChain<ITransformer>>(loaded).OfType<SubwordTokenizingTransformer>().Single();
        Assert.Equal(encoding, reloaded.Tokenizer.Name);
        Assert.Equal(fitted.GetVocabulary(), reloaded.GetVocabulary());
        var scoredThere = loaded.Transform(RealData.Sms(new MLContext()));
        Assert.Equal(here, PredictionDump.KeyLines(scoredThere, "Tokens").ToArray());
        Assert.Equal(model.Transform(data).GetColumn<string[]>("Pieces").Select(p => string.Concat(p)), scoredThere.GetColumn<string[]>("Pieces").Select(p => string.Concat(p)));
        VBuffer<ReadOnlyMemory<char>> a = default, b = default;
        model.Transform(data).Schema["Tokens"].GetKeyValues(ref a);
        scoredThere.Schema["Tokens"].GetKeyValues(ref b);
        Assert.Equal(a.DenseValues().Select(v => v.ToString()), b.DenseValues().Select(v => v.ToString()));

        var there = TestUtil.PredictInOtherProcess(path, "sms", "Tokens");
        Assert.Equal(here, there);
        _out.WriteLine($"{encoding}: {fitted.VocabularySize} keys; {here.Length} rows identical in another process; model file {new FileInfo(path).Length} bytes");
    }

    [Fact]
    public void PredictionEngine_GivesTheSameKeysAsTransform()
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.TakeRows(RealData.Sms(ml), 300);
        var model = ml.Transforms.Text.TokenizeIntoSubwords("Tokens", "Message").Fit(train);
        var engine = ml.Model.CreatePredictionEngine<Text, TokensOut>(model);
        var texts = new[] { "Free entry in 2 a wkly comp", "", "Ok lar... zebra quagga 😀", "Free entry in 2 a wkly comp" };
        var batch = Keys(model.Transform(Texts(ml, texts)));
        for (int i = 0; i < texts.Length; i++) Assert.Equal(batch[i], engine.Predict(new Text { Message = texts[i] }).Tokens);
    }

    public sealed class TokensOut
    {
        [KeyType(1)] // marks the field as keys; PredictionEngine copies the raw key values out without checking the count
        public uint[] Tokens { get; set; } = Array.Empty<uint>();
    }

    [Fact]
    public void ConcurrentCursors_ShareTheTokenizer_AndGiveTheSequentialKeys()
    {
        var ml = new MLContext(seed: 1);
        var data = RealData.Sms(ml);
        var model = ml.Transforms.Text.TokenizeIntoSubwords("Tokens", "Message").Fit(data);
        var scored = model.Transform(data);
        var expected = PredictionDump.KeyLines(scored, "Tokens").ToArray();
        var results = new string[4][];
        var threads = Enumerable.Range(0, results.Length).Select(t => new Thread(() => results[t] = PredictionDump.KeyLines(scored, "Tokens").ToArray())).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        Assert.All(results, r => Assert.Equal(expected, r));

        // A cursor set (ML.NET's parallel cursors) gives each row once, with its keys.
        var col = scored.Schema["Tokens"];
        var cursors = scored.GetRowCursorSet(new[] { col }, 2);
        var byRow = new System.Collections.Concurrent.ConcurrentDictionary<DataViewRowId, string>();
        var readers = cursors.Select(c => new Thread(() =>
        {
            using (c)
            {
                var getter = c.GetGetter<VBuffer<uint>>(col);
                var id = c.GetIdGetter();
                VBuffer<uint> keys = default;
                DataViewRowId rowId = default;
                while (c.MoveNext())
                {
                    getter(ref keys);
                    id(ref rowId);
                    Assert.True(byRow.TryAdd(rowId, string.Join(" ", keys.DenseValues())));
                }
            }
        })).ToArray();
        foreach (var t in readers) t.Start();
        foreach (var t in readers) t.Join();
        Assert.Equal(expected.OrderBy(x => x, StringComparer.Ordinal), byRow.Values.OrderBy(x => x, StringComparer.Ordinal));
    }

    // ---------------------------------------------------------------- tokenizers from files

    /// <summary>GPT-2's byte alphabet: each byte as the character GPT-2's vocabulary spells it with.</summary>
    private static char[] Gpt2ByteChars()
    {
        var printable = new List<int>();
        for (int b = '!'; b <= '~'; b++) printable.Add(b);
        for (int b = 0xA1; b <= 0xAC; b++) printable.Add(b);
        for (int b = 0xAE; b <= 0xFF; b++) printable.Add(b);
        var chars = new char[256];
        int extra = 0;
        for (int b = 0; b < 256; b++) chars[b] = printable.Contains(b) ? (char)b : (char)(256 + extra++);
        return chars;
    }

    /// <summary>A GPT-2-style vocab.json (all 256 byte symbols plus the merged tokens) and merges.txt in <paramref name="dir"/>.</summary>
    private static (string Vocabulary, string Merges) WriteByteLevelBpe(string dir)
    {
        var bytes = Gpt2ByteChars();
        var vocabulary = new Dictionary<string, int>();
        for (int b = 0; b < 256; b++) vocabulary[bytes[b].ToString()] = b;
        var merges = new[] { ("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("Ġ", "y"), ("o", "u"), ("Ġy", "ou"), ("Ġ", "f"), ("r", "e"), ("Ġf", "re"), ("e", "e"), ("Ġfre", "e"), ("i", "n"), ("Ġ", "a") };
        foreach (var (a, b) in merges) vocabulary.TryAdd(a + b, vocabulary.Count);
        string v = Path.Combine(dir, "vocab.json"), m = Path.Combine(dir, "merges.txt");
        File.WriteAllText(v, JsonSerializer.Serialize(vocabulary));
        File.WriteAllText(m, "#version: 0.2\n" + string.Join("\n", merges.Select(p => p.Item1 + " " + p.Item2)) + "\n");
        return (v, m);
    }

    [Fact]
    public void ByteLevelBpe_FromVocabularyFiles_RoundTrips_AndTheSavedModelNeedsNoFiles()
    {
        var ml = new MLContext(seed: 1);
        string dir = TestUtil.TempDir();
        var (vocabularyPath, mergesPath) = WriteByteLevelBpe(dir);
        long fileBytes = new FileInfo(vocabularyPath).Length + new FileInfo(mergesPath).Length;
        var bpe = SubwordTokenizer.Bpe(vocabularyPath, mergesPath, byteLevel: true);
        Assert.Equal(fileBytes, bpe.EmbeddedBytes);

        var data = ml.Data.TakeRows(RealData.Sms(ml), 1000);
        var model = ml.Transforms.Text.TokenizeIntoSubwords("Tokens", "Message", bpe).Fit(data);
        var texts = model.GetVocabulary().Select(v => v.Text).ToList();
        Assert.Contains(" you", texts);                                // merges applied
        Assert.Contains(" the", texts);
        Assert.Contains(" free", texts);
        Assert.True(model.VocabularySize <= 256 + 13);
        var messages = Messages(data);
        var rows = Keys(model.Transform(data));
        for (int r = 0; r < rows.Count; r++) Assert.Equal(messages[r], model.Decode(rows[r]));   // byte-level: exact

        string path = Path.Combine(TestUtil.TempDir(), "bpe.zip");
        ml.Model.Save(model, data.Schema, path);
        var here = PredictionDump.KeyLines(model.Transform(RealData.Sms(ml)), "Tokens").ToArray();
        Directory.Delete(dir, recursive: true);                          // the vocabulary files are gone
        Assert.False(File.Exists(vocabularyPath));

        var loaded = Assert.IsType<SubwordTokenizingTransformer>(new MLContext().Model.Load(path, out _));
        Assert.Equal(fileBytes, loaded.Tokenizer.EmbeddedBytes);
        Assert.True(loaded.Tokenizer.ByteLevel);
        Assert.Equal(here, PredictionDump.KeyLines(loaded.Transform(RealData.Sms(new MLContext())), "Tokens").ToArray());
        Assert.Equal(here, TestUtil.PredictInOtherProcess(path, "sms", "Tokens"));
        // Some of the emoji's four UTF-8 bytes (vocabulary ids = byte values) never occur in those 1000 messages: they
        // are key 0, the others keep their keys; nothing is dropped.
        var emoji = Keys(loaded.Transform(Texts(ml, "Hello you, the free 😀")))[0];
        int unseenBytes = Encoding.UTF8.GetBytes("😀").Count(b => !loaded.TryGetKey(b, out _));
        Assert.InRange(unseenBytes, 1, 4);
        Assert.Equal(unseenBytes, emoji.Count(k => k == 0));
        Assert.Equal(loaded.Tokenizer.GetTokenizer().EncodeToIds("Hello you, the free 😀").Count, emoji.Length);
        Assert.StartsWith("Hello you, the free ", loaded.Decode(emoji));
        Assert.Equal(unseenBytes, loaded.Decode(emoji, "<?>").Split("<?>").Length - 1);
    }

    [Fact]
    public void WordLevelBpe_WithAnUnknownToken_UnseenPiecesAreKeyZero()
    {
        var ml = new MLContext(seed: 1);
        string dir = TestUtil.TempDir();
        string v = Path.Combine(dir, "vocab.json"), m = Path.Combine(dir, "merges.txt");
        File.WriteAllText(v, """{"l":0,"o":1,"w":2,"e":3,"r":4,"s":5,"t":6,"lo":7,"low":8,"er":9,"<unk>":10}""");
        File.WriteAllText(m, "#version: 0.2\nl o\nlo w\ne r\n");
        var bpe = SubwordTokenizer.Bpe(v, m, unknownToken: "<unk>");
        Directory.Delete(dir, recursive: true);
        var model = ml.Transforms.Text.TokenizeIntoSubwords("Tokens", "Message", bpe).Fit(Texts(ml, "lower lower", "lowest"));
        var vocabulary = model.GetVocabulary();
        Assert.Equal(new[] { 8, 9, 3, 5, 6 }, vocabulary.Select(e => e.TokenizerId));   // low ×3, er ×2, then e, s, t by id
        Assert.Equal(new[] { "low", "er", "e", "s", "t" }, vocabulary.Select(e => e.Text));
        // "zz" is the tokenizer's <unk> twice; <unk> was never seen when fitting, so both are key 0.
        var rows = Keys(model.Transform(Texts(ml, "lowest zz", "lower")));
        Assert.Equal(new uint[] { 1, 3, 4, 5, 0, 0 }, rows[0]);
        Assert.Equal(new uint[] { 1, 2 }, rows[1]);
    }

    [Fact]
    public void WordPiece_FromVocabTxt_PiecesAndUnknownWords()
    {
        var ml = new MLContext(seed: 1);
        string dir = TestUtil.TempDir();
        string v = Path.Combine(dir, "vocab.txt");
        File.WriteAllLines(v, new[] { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "low", "##er", "##est", ",", "!" });
        var wordPiece = SubwordTokenizer.WordPiece(v);
        var model = ml.Transforms.Text.TokenizeIntoSubwords("Tokens", "Message", wordPiece).Fit(Texts(ml, "Hello, lower World!"));
        Assert.Equal(new[] { 5, 6, 7, 8, 10, 11 }, model.GetVocabulary().Select(e => e.TokenizerId));   // each once, so in id order
        string path = Path.Combine(TestUtil.TempDir(), "wordpiece.zip");
        ml.Model.Save(model, Texts(ml, "x").Schema, path);
        File.Delete(v);

        var loaded = new MLContext().Model.Load(path, out _);
        // "lowest" → low ##est (##est unseen: key 0), "zzz" → [UNK] (unseen: key 0); lower-cased first.
        var rows = Keys(loaded.Transform(Texts(ml, "LOWEST hello zzz", "")));
        Assert.Equal(new uint[] { 3, 0, 1, 0 }, rows[0]);
        Assert.Empty(rows[1]);
    }

    [Fact]
    public void BadTokenizerFiles_FailWhereTheyAreNamed()
    {
        string dir = TestUtil.TempDir();
        string v = Path.Combine(dir, "vocab.json"), m = Path.Combine(dir, "merges.txt");
        File.WriteAllText(v, """{"a":0,"b":1}""");
        File.WriteAllText(m, "a b\n");                                  // "ab" is not in the vocabulary
        var missing = Assert.Throws<FileNotFoundException>(() => SubwordTokenizer.Bpe(Path.Combine(dir, "nope.json"), m));
        Assert.Contains("nope.json", missing.Message);
        var bad = Assert.Throws<ArgumentException>(() => SubwordTokenizer.Bpe(v, m));
        Assert.Contains("vocab.json", bad.Message);
        File.WriteAllText(v, "not json");
        Assert.Throws<ArgumentException>(() => SubwordTokenizer.Bpe(v, m, byteLevel: true));
        File.WriteAllText(Path.Combine(dir, "empty.txt"), "");
        Assert.Throws<ArgumentException>(() => SubwordTokenizer.WordPiece(Path.Combine(dir, "empty.txt")));
    }

    // ---------------------------------------------------------------- bad input

    [Fact]
    public void WrongColumnType_MissingColumn_AndBadOptions_AreRefusedNamingThem()
    {
        var ml = new MLContext(seed: 1);
        var sms = RealData.Sms(ml);

        var wrongType = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.Text.TokenizeIntoSubwords("Tokens", "Label").Fit(sms));
        Assert.Contains("'Label'", wrongType.Message);
        Assert.Contains("Boolean", wrongType.Message);
        var shape = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.Text.TokenizeIntoSubwords("Tokens", "Label").GetOutputSchema(Shape(sms.Schema)));
        Assert.Contains("'Label'", shape.Message);
        var vector = ml.Transforms.Text.TokenizeIntoWords("Words", "Message").Fit(sms).Transform(sms);
        var vectorType = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.Text.TokenizeIntoSubwords("Tokens", "Words").Fit(vector));
        Assert.Contains("'Words'", vectorType.Message);
        Assert.Contains("Vector<String>", vectorType.Message);

        var missing = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.Text.TokenizeIntoSubwords("Tokens", "Text").Fit(sms));
        Assert.Contains("'Text'", missing.Message);
        Assert.Contains("Message", missing.Message);                    // the columns there are listed
        Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.Text.TokenizeIntoSubwords("Tokens", "Text").GetOutputSchema(Shape(sms.Schema)));

        // A fitted transformer refuses data without its column, or with another type there.
        var model = ml.Transforms.Text.TokenizeIntoSubwords("Tokens", "Message").Fit(ml.Data.TakeRows(sms, 50));
        var gone = Assert.Throws<ArgumentOutOfRangeException>(() => model.Transform(ml.Data.LoadFromEnumerable(new[] { new { Other = "x" } })));
        Assert.Contains("'Message'", gone.Message);
        var floats = ml.Data.LoadFromEnumerable(new[] { new FloatMessage { Message = 1 } });
        var retyped = Assert.Throws<ArgumentOutOfRangeException>(() => model.GetOutputSchema(floats.Schema));
        Assert.Contains("'Message'", retyped.Message);
        Assert.Contains("Single", retyped.Message);

        Assert.Equal("MinimumCount", Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.Text.TokenizeIntoSubwords("Tokens", "Message", minimumCount: 0)).ParamName);
        Assert.Equal("MaximumVocabularySize", Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.Text.TokenizeIntoSubwords("Tokens", "Message", maximumVocabularySize: -1)).ParamName);
        Assert.Equal("OutputColumnName", Assert.Throws<ArgumentException>(() => ml.Transforms.Text.TokenizeIntoSubwords("", "Message")).ParamName);

        var empty = Assert.Throws<InvalidOperationException>(() => ml.Transforms.Text.TokenizeIntoSubwords("Tokens", "Message").Fit(Texts(ml, "", null)));
        Assert.Contains("'Message'", empty.Message);
        var rare = Assert.Throws<InvalidOperationException>(() => ml.Transforms.Text.TokenizeIntoSubwords("Tokens", "Message", minimumCount: 3).Fit(Texts(ml, "one two", "three")));
        Assert.Contains("MinimumCount", rare.Message);
    }

    public sealed class FloatMessage
    {
        public float Message { get; set; }
    }

    [Fact]
    public void EstimatorSchema_AnnouncesAVariableVectorOfKeysWithKeyValues_AndReplacesTheTextColumnWhenNoInputIsNamed()
    {
        var ml = new MLContext(seed: 1);
        var sms = RealData.Sms(ml);
        var shape = ml.Transforms.Text.TokenizeIntoSubwords("Tokens", "Message").GetOutputSchema(Shape(sms.Schema));
        var col = shape.Single(c => c.Name == "Tokens");
        Assert.Equal(SchemaShape.Column.VectorKind.VariableVector, col.Kind);
        Assert.True(col.IsKey);
        Assert.Contains(col.Annotations, a => a.Name == "KeyValues" && a.ItemType is TextDataViewType);

        var inPlace = ml.Transforms.Text.TokenizeIntoSubwords("Message").Fit(ml.Data.TakeRows(sms, 100)).Transform(sms);
        Assert.IsType<KeyDataViewType>(Assert.IsType<VectorDataViewType>(inPlace.Schema["Message"].Type).ItemType);
    }

    // ---------------------------------------------------------------- untrusted model files

    private static byte[] Body(SubwordTokenizingTransformer model)
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true)) model.WriteBody(w);
        return ms.ToArray();
    }

    private static SubwordTokenizingTransformer Read(byte[] body)
    {
        using var r = new BinaryReader(new MemoryStream(body), Encoding.UTF8);
        return SubwordTokenizingTransformer.ReadBody(new MLContext(), r);
    }

    [Fact]
    public void CorruptOrTruncatedModelData_IsRefusedWithInvalidDataException()
    {
        var ml = new MLContext(seed: 1);
        string dir = TestUtil.TempDir();
        var (v, m) = WriteByteLevelBpe(dir);
        var model = ml.Transforms.Text.TokenizeIntoSubwords("Tokens", "Message", SubwordTokenizer.Bpe(v, m, byteLevel: true)).Fit(Texts(ml, "free you the", "in a"));
        var body = Body(model);
        Assert.Equal(model.GetVocabulary(), Read(body).GetVocabulary());

        // Every truncation.
        for (int length = 0; length < body.Length; length++)
            Assert.Throws<InvalidDataException>(() => Read(body.AsSpan(0, length).ToArray()));

        // The entry count, the last entry's id (repeated) and its count (0), the format.
        int entries = model.GetVocabulary().Sum(e => 4 + 8 + 1 + Encoding.UTF8.GetByteCount(e.Text));
        int countAt = body.Length - entries - 4;
        Assert.Equal(model.VocabularySize, BitConverter.ToInt32(body, countAt));
        foreach (int bad in new[] { 0, -1, int.MaxValue, model.VocabularySize + 1 })
        {
            var copy = (byte[])body.Clone();
            BitConverter.GetBytes(bad).CopyTo(copy, countAt);
            Assert.Throws<InvalidDataException>(() => Read(copy));
        }
        var last = model.GetVocabulary()[^1];
        int lastAt = body.Length - (4 + 8 + 1 + Encoding.UTF8.GetByteCount(last.Text));
        var repeated = (byte[])body.Clone();
        BitConverter.GetBytes(model.GetVocabulary()[0].TokenizerId).CopyTo(repeated, lastAt);
        Assert.Contains("repeated", Assert.Throws<InvalidDataException>(() => Read(repeated)).Message);
        var zeroCount = (byte[])body.Clone();
        BitConverter.GetBytes(0L).CopyTo(zeroCount, lastAt + 4);
        Assert.Throws<InvalidDataException>(() => Read(zeroCount));
        var format = (byte[])body.Clone();
        format[0] = 9;
        Assert.Contains("format 9", Assert.Throws<InvalidDataException>(() => Read(format)).Message);

        // Through Model.Load: the vocabulary count in the saved zip made absurd.
        string path = Path.Combine(TestUtil.TempDir(), "model.zip");
        ml.Model.Save(model, Texts(ml, "x").Schema, path);
        using (var zip = ZipFile.Open(path, ZipArchiveMode.Update))
        {
            var patched = false;
            foreach (var entry in zip.Entries.ToList())
            {
                byte[] content;
                using (var s = entry.Open()) { var buffer = new MemoryStream(); s.CopyTo(buffer); content = buffer.ToArray(); }
                int at = content.AsSpan().IndexOf(body);
                if (at < 0) continue;
                BitConverter.GetBytes(int.MaxValue - 10).CopyTo(content, at + countAt);
                string name = entry.FullName;
                entry.Delete();
                using (var s = zip.CreateEntry(name).Open()) s.Write(content);
                patched = true;
            }
            Assert.True(patched, "the transformer's data was not found in the zip");
        }
        var e = Assert.ThrowsAny<Exception>(() => new MLContext().Model.Load(path, out _));
        var inner = e;
        while (inner is not InvalidDataException && inner.InnerException is not null) inner = inner.InnerException;
        _out.WriteLine($"Model.Load of the damaged zip: {e.GetType().Name}: {e.Message}");
        Assert.IsType<InvalidDataException>(inner);
        Assert.Contains("vocabulary", inner.Message);
    }

    // ---------------------------------------------------------------- into a sequence trainer

    [Fact]
    public void SubwordKeys_FeedTheRecurrentTrainer()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.TakeRows(RealData.Sms(ml), 400);
        var pipeline = ml.Transforms.Text.TokenizeIntoSubwords("Tokens", "Message")
            .Append(ml.BinaryClassification.Trainers.Rnn(new RnnBinaryTrainer.Options
            {
                FeatureColumnName = "Tokens", Cell = RecurrentCell.Gru, EmbeddingSize = 8, HiddenSize = 8, NumberOfEpochs = 1, BatchSize = 64,
            }));
        var model = pipeline.Fit(data);
        var keys = ((SubwordTokenizingTransformer)model.Take(1).Single()).VocabularySize;
        Assert.Contains($"{keys} keys", model.LastTransformer.Model.InputDescription);
        var scores = TestUtil.Floats(model.Transform(Texts(ml, "Free entry zzqx 😀", "")), "Score");
        Assert.Equal(2, scores.Length);
        Assert.All(scores, s => Assert.True(float.IsFinite(s)));
    }
}
