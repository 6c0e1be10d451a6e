// .NET's ZipArchive does not check an entry's CRC-32 when it reads it: a damaged byte in a model zip's compressed data
// reaches ML.NET's loaders as silently different content (a normalizer's scales, a key mapping, a schema). A model with
// an MLNetDeep step has the CRC-32 of all its entries checked by the first MLNetDeep loader that runs, once per load.
using System.IO.Compression;
using System.Reflection;
using System.Runtime.CompilerServices;
using Microsoft.ML;

namespace MLNetDeep;

internal static class ZipChecksums
{
    // ML.NET keeps the archive private; without it (another ML.NET version) the check is skipped, and the test fails.
    private static readonly FieldInfo? ArchiveField = typeof(RepositoryReader).GetField("_archive", BindingFlags.NonPublic | BindingFlags.Instance);
    private static readonly ConditionalWeakTable<RepositoryReader, object> Verified = new();
    private static readonly uint[] Table = CreateTable();

    /// <summary>Whether the checks can reach the archive of ML.NET's repository reader.</summary>
    internal static bool Available => ArchiveField is not null;

    /// <summary>
    /// Checks the CRC-32 of every entry of the zip <paramref name="ctx"/> reads from (MLNetDeep's weights excepted:
    /// their SHA-256 is checked when they are read); throws <see cref="InvalidDataException"/> naming a damaged entry.
    /// </summary>
    public static void Verify(ModelLoadContext ctx)
    {
        if (ctx.Repository is not { } repository || Verified.TryGetValue(repository, out _)) return;
        if (ArchiveField?.GetValue(repository) is not ZipArchive archive) return;
        var buffer = new byte[81920];
        foreach (var entry in archive.Entries)
        {
            if (entry.FullName.EndsWith("/" + DeepModelParameters.WeightsStream, StringComparison.Ordinal)) continue;
            uint crc = 0xFFFFFFFF;
            long length = 0;
            try
            {
                using var s = entry.Open();
                for (int n; (n = s.Read(buffer, 0, buffer.Length)) > 0; length += n)
                    for (int i = 0; i < n; i++) crc = Table[(crc ^ buffer[i]) & 0xFF] ^ (crc >> 8);
            }
            catch (Exception e) when (ModelFileChecks.IsDataError(e))
            {
                throw ModelFileChecks.Corrupt($"its zip entry '{entry.FullName}' cannot be read ({e.Message}).");
            }
            if (~crc != entry.Crc32 || length != entry.Length)
                throw ModelFileChecks.Corrupt($"its zip entry '{entry.FullName}' does not match its CRC-32 checksum.");
        }
        Verified.AddOrUpdate(repository, repository);
    }

    private static uint[] CreateTable()
    {
        var table = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        return table;
    }
}
