namespace MLNetDeep;

/// <summary>Everything needed to resume training after a completed epoch.</summary>
internal sealed class CheckpointState
{
    public const string FileName = "mlnetdeep-checkpoint.bin";
    private const string Magic = "MLNetDeep checkpoint";
    private const int Format = 2; // 2: the fingerprint lists every training option and the data

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

    /// <summary>Writes the checkpoint to a temporary file and renames it over the previous one.</summary>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        string path = Path.Combine(directory, FileName);
        string tmp = path + ".tmp";
        using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write))
        using (var w = new BinaryWriter(fs))
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
            fs.Flush(flushToDisk: true);
        }
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>Reads the checkpoint in <paramref name="directory"/>, or null when there is none.</summary>
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
            if (format != Format) throw new InvalidDataException($"checkpoint format {format} is not supported");
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
            s.BestWeights = ReadBytes(r);
            s.RandomState = ReadBytes(r) ?? Array.Empty<byte>();
            s.Weights = ReadBytes(r) ?? Array.Empty<byte>();
            s.OptimizerState = ReadBytes(r) ?? Array.Empty<byte>();
            return s;
        }
        catch (Exception e) when (e is EndOfStreamException or InvalidDataException or IOException)
        {
            throw new InvalidDataException($"The checkpoint '{path}' cannot be read ({e.Message}). Delete it to start training afresh.", e);
        }
    }

    private static void WriteBytes(BinaryWriter w, byte[]? bytes)
    {
        w.Write(bytes?.Length ?? -1);
        if (bytes is not null) w.Write(bytes);
    }

    private static byte[]? ReadBytes(BinaryReader r)
    {
        int n = r.ReadInt32();
        if (n < 0) return null;
        var b = r.ReadBytes(n);
        if (b.Length != n) throw new EndOfStreamException("truncated");
        return b;
    }
}
