using System.Security.Cryptography;

namespace MLNetDeep;

/// <summary>Everything needed to resume training after a completed epoch.</summary>
internal sealed class CheckpointState
{
    public const string FileName = "mlnetdeep-checkpoint.bin";
    private const string Magic = "MLNetDeep checkpoint";
    private const int Format = 3; // 2: the fingerprint lists every training option and the data; 3: a SHA-256 at the end

    public string Fingerprint = "";
    public int CompletedEpochs;
    public bool Stopped;
    public List<EpochMetrics> History = new();
    public double PlateauScale = 1, PlateauBest = double.PositiveInfinity;
    public int PlateauBadEpochs;
    public double BestLoss = double.PositiveInfinity;
    public int BestEpoch, EpochsWithoutImprovement;
    public byte[]? BestWeights;
    public byte[] RandomState = Array.Empty<byte>();
    public byte[] Weights = Array.Empty<byte>();
    public byte[] OptimizerState = Array.Empty<byte>();

    /// <summary>
    /// Writes the checkpoint to a temporary file and renames it over the previous one. The file ends with the SHA-256
    /// of everything before it, so that damage anywhere is noticed when it is read back.
    /// </summary>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        string path = Path.Combine(directory, FileName);
        string tmp = path + ".tmp";
        using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write))
        {
            using (var sha = SHA256.Create())
            using (var hashing = new CryptoStream(fs, sha, CryptoStreamMode.Write, leaveOpen: true))
            using (var w = new BinaryWriter(hashing))
            {
                w.Write(Magic);
                w.Write(Format);
                w.Write(Fingerprint);
                w.Write(CompletedEpochs);
                w.Write(Stopped);
                DeepModelParameters.WriteHistory(w, History);
                w.Write(PlateauScale);
                w.Write(PlateauBest);
                w.Write(PlateauBadEpochs);
                w.Write(BestLoss);
                w.Write(BestEpoch);
                w.Write(EpochsWithoutImprovement);
                WriteBytes(w, BestWeights);
                WriteBytes(w, RandomState);
                WriteBytes(w, Weights);
                WriteBytes(w, OptimizerState);
                w.Flush();
                hashing.FlushFinalBlock();
                fs.Write(sha.Hash!);
            }
            fs.Flush(flushToDisk: true);
        }
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>
    /// Reads the checkpoint in <paramref name="directory"/>, or null when there is none. The file is untrusted: its
    /// checksum and every size in it are checked before anything is allocated for them.
    /// </summary>
    /// <exception cref="InvalidDataException">The checkpoint is damaged, truncated or of an unknown format.</exception>
    public static CheckpointState? TryLoad(string directory)
    {
        string path = Path.Combine(directory, FileName);
        if (!File.Exists(path)) return null;
        try
        {
            using var fs = File.OpenRead(path);
            using var r = new BinaryReader(fs);
            if (r.ReadString() != Magic) throw new InvalidDataException("not an MLNetDeep checkpoint");
            int format = r.ReadInt32();
            if (format is not (2 or Format)) throw new InvalidDataException($"checkpoint format {format} is not supported");
            long end = fs.Length;
            if (format == Format)
            {
                end -= SHA256.HashSizeInBytes;
                if (end < fs.Position) throw new EndOfStreamException("the checksum is missing");
                long at = fs.Position;
                if (!Checksum(fs, end)) throw new InvalidDataException("its content does not match its checksum");
                fs.Position = at;
            }
            var s = new CheckpointState
            {
                Fingerprint = r.ReadString(),
                CompletedEpochs = r.ReadInt32(),
                Stopped = r.ReadBoolean(),
                History = DeepModelParameters.ReadHistory(r).ToList(),
                PlateauScale = r.ReadDouble(),
                PlateauBest = r.ReadDouble(),
                PlateauBadEpochs = r.ReadInt32(),
                BestLoss = r.ReadDouble(),
                BestEpoch = r.ReadInt32(),
                EpochsWithoutImprovement = r.ReadInt32(),
            };
            if (s.CompletedEpochs < 0) throw new InvalidDataException($"it claims {s.CompletedEpochs} completed epochs");
            s.BestWeights = ReadWeights(r, "the best epoch's weights");
            s.RandomState = ModelFileChecks.ReadBlob(r, "the random state") ?? Array.Empty<byte>();
            s.Weights = ReadWeights(r, "the weights") ?? throw new InvalidDataException("it holds no weights");
            s.OptimizerState = ModelFileChecks.ReadBlob(r, "the optimizer state") ?? Array.Empty<byte>();
            if (fs.Position != end) throw new InvalidDataException($"it has {end - fs.Position} unexpected bytes at the end");
            return s;
        }
        catch (Exception e) when (ModelFileChecks.IsDataError(e))
        {
            throw new InvalidDataException($"The checkpoint '{path}' cannot be read ({e.Message}). Delete it to start training afresh.", e);
        }
    }

    /// <summary>Whether the SHA-256 of the file's bytes before <paramref name="end"/> is the 32 bytes from there.</summary>
    private static bool Checksum(FileStream fs, long end)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[81920];
        fs.Position = 0;
        for (long left = end; left > 0;)
        {
            int n = fs.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
            if (n == 0) throw new EndOfStreamException();
            hash.AppendData(buffer, 0, n);
            left -= n;
        }
        var stored = new byte[SHA256.HashSizeInBytes];
        fs.ReadExactly(stored);
        return hash.GetHashAndReset().AsSpan().SequenceEqual(stored);
    }

    /// <summary>A weights blob, whose tensor sizes must fit it (TorchSharp's load trusts them).</summary>
    private static byte[]? ReadWeights(BinaryReader r, string what)
    {
        var bytes = ModelFileChecks.ReadBlob(r, what);
        if (bytes is not null)
        {
            try { StoredWeights.DataBytes(bytes); }
            catch (Exception e) when (e is InvalidDataException or EndOfStreamException) { throw new InvalidDataException($"{what}: {e.Message}", e); }
        }
        return bytes;
    }

    private static void WriteBytes(BinaryWriter w, byte[]? bytes)
    {
        w.Write(bytes?.Length ?? -1);
        if (bytes is not null) w.Write(bytes);
    }
}
