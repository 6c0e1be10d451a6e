// MLNetDeep build-time fix for TorchSharp's native shim on distributions with an older libstdc++
// (Debian 12, Ubuntu 22.04, RHEL 9: libstdc++ up to GLIBCXX_3.4.30).
//
// TorchSharp-cpu 0.107.0 ships libLibTorchSharp.so built with GCC 13. Its only reference to
// GLIBCXX_3.4.32 is the undefined symbol _ZSt21ios_base_library_initv (GCC 13's iostream
// initialisation marker), which no relocation uses. glibc refuses to load a library whose
// version requirement is missing unless that requirement is marked weak (VER_FLG_WEAK in the
// vna_flags of its .gnu.version_r entry). This file marks exactly that requirement weak, in a
// copy written into the consumer's output directory, after checking the ELF before and after.
//
// This file is compiled twice: by MSBuild's RoslynCodeTaskFactory (see MLNetDeep.targets) and
// by the unit tests, which define MLNETDEEP_ELF_TESTS to leave out the MSBuild task wrapper.
#nullable disable
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;

namespace MLNetDeep.Build
{
    /// <summary>One entry of an ELF file's version-needed (.gnu.version_r) table.</summary>
    public sealed class ElfVersionNeed
    {
        public string File;
        public string Name;
        public ushort Flags;
        public ushort Index;
        public long FlagsOffset;
        public bool IsWeak { get { return (Flags & ElfVersionPatcher.VerFlgWeak) != 0; } }
    }

    /// <summary>What <see cref="ElfVersionPatcher.PatchFile"/> did.</summary>
    public enum ElfPatchOutcome
    {
        /// <summary>The host's libstdc++ has every version the file needs: nothing to do.</summary>
        NotNeeded,
        /// <summary>The file's requirements were made weak in place (through an atomic replace).</summary>
        Patched,
        /// <summary>The requirements were weak already (an earlier build patched the file).</summary>
        AlreadyPatched,
        /// <summary>The file needs versions that cannot safely be made weak; left untouched.</summary>
        Refused,
    }

    /// <summary>Reads and patches the version requirements of a 64-bit little-endian ELF shared object.</summary>
    public static class ElfVersionPatcher
    {
        public const ushort VerFlgWeak = 0x2;
        const uint ShtRela = 4;
        const uint ShtDynsym = 11;
        const uint ShtGnuVerdef = 0x6ffffffd;
        const uint ShtGnuVerneed = 0x6ffffffe;
        const uint ShtGnuVersym = 0x6fffffff;

        /// <summary>Symbols known to be safe to leave unresolved: markers no code or data refers to.</summary>
        public static readonly string[] SafeWeakSymbols = { "_ZSt21ios_base_library_initv" };

        sealed class Section
        {
            public string Name;
            public uint Type;
            public long Offset;
            public long Size;
            public uint Link;
            public long EntSize;
        }

        sealed class Elf
        {
            public byte[] Bytes;
            public List<Section> Sections = new List<Section>();
        }

        static Elf Read(byte[] b, string path)
        {
            if (b.Length < 64 || b[0] != 0x7f || b[1] != (byte)'E' || b[2] != (byte)'L' || b[3] != (byte)'F')
                throw new InvalidDataException(path + " is not an ELF file.");
            if (b[4] != 2 || b[5] != 1)
                throw new InvalidDataException(path + " is not a 64-bit little-endian ELF file.");
            var elf = new Elf { Bytes = b };
            long shoff = (long)BitConverter.ToUInt64(b, 0x28);
            int shentsize = BitConverter.ToUInt16(b, 0x3A);
            int shnum = BitConverter.ToUInt16(b, 0x3C);
            int shstrndx = BitConverter.ToUInt16(b, 0x3E);
            if (shoff <= 0 || shentsize < 64 || shoff + (long)shnum * shentsize > b.Length)
                throw new InvalidDataException(path + " has no readable section header table.");
            for (int i = 0; i < shnum; i++)
            {
                long o = shoff + (long)i * shentsize;
                elf.Sections.Add(new Section
                {
                    Name = BitConverter.ToUInt32(b, (int)o).ToString(),
                    Type = BitConverter.ToUInt32(b, (int)o + 4),
                    Offset = (long)BitConverter.ToUInt64(b, (int)o + 0x18),
                    Size = (long)BitConverter.ToUInt64(b, (int)o + 0x20),
                    Link = BitConverter.ToUInt32(b, (int)o + 0x28),
                    EntSize = (long)BitConverter.ToUInt64(b, (int)o + 0x38),
                });
            }
            if (shstrndx < shnum)
            {
                var names = elf.Sections[shstrndx];
                foreach (var s in elf.Sections)
                    s.Name = CString(b, names.Offset + long.Parse(s.Name));
            }
            return elf;
        }

        static string CString(byte[] b, long offset)
        {
            if (offset < 0 || offset >= b.Length) return "";
            long end = offset;
            while (end < b.Length && b[end] != 0) end++;
            return Encoding.ASCII.GetString(b, (int)offset, (int)(end - offset));
        }

        /// <summary>Lists the version requirements (.gnu.version_r) of an ELF image.</summary>
        public static List<ElfVersionNeed> ReadVersionNeeds(byte[] bytes, string path)
        {
            var elf = Read(bytes, path);
            var result = new List<ElfVersionNeed>();
            foreach (var sec in elf.Sections.Where(s => s.Type == ShtGnuVerneed))
            {
                var strtab = elf.Sections[(int)sec.Link];
                long p = sec.Offset;
                while (true)
                {
                    ushort cnt = BitConverter.ToUInt16(bytes, (int)p + 2);
                    string file = CString(bytes, strtab.Offset + BitConverter.ToUInt32(bytes, (int)p + 4));
                    uint aux = BitConverter.ToUInt32(bytes, (int)p + 8);
                    uint next = BitConverter.ToUInt32(bytes, (int)p + 12);
                    long a = p + aux;
                    for (int i = 0; i < cnt; i++)
                    {
                        result.Add(new ElfVersionNeed
                        {
                            File = file,
                            Flags = BitConverter.ToUInt16(bytes, (int)a + 4),
                            FlagsOffset = a + 4,
                            Index = (ushort)(BitConverter.ToUInt16(bytes, (int)a + 6) & 0x7fff),
                            Name = CString(bytes, strtab.Offset + BitConverter.ToUInt32(bytes, (int)a + 8)),
                        });
                        uint anext = BitConverter.ToUInt32(bytes, (int)a + 12);
                        if (anext == 0) break;
                        a += anext;
                    }
                    if (next == 0) break;
                    p += next;
                }
            }
            return result;
        }

        /// <summary>Lists the versions an ELF shared object defines (.gnu.version_d), e.g. GLIBCXX_3.4.30.</summary>
        public static HashSet<string> ReadVersionDefinitions(byte[] bytes, string path)
        {
            var elf = Read(bytes, path);
            var result = new HashSet<string>(StringComparer.Ordinal);
            foreach (var sec in elf.Sections.Where(s => s.Type == ShtGnuVerdef))
            {
                var strtab = elf.Sections[(int)sec.Link];
                long p = sec.Offset;
                while (true)
                {
                    ushort cnt = BitConverter.ToUInt16(bytes, (int)p + 6);
                    uint aux = BitConverter.ToUInt32(bytes, (int)p + 12);
                    uint next = BitConverter.ToUInt32(bytes, (int)p + 16);
                    if (cnt > 0)
                        result.Add(CString(bytes, strtab.Offset + BitConverter.ToUInt32(bytes, (int)(p + aux))));
                    if (next == 0) break;
                    p += next;
                }
            }
            return result;
        }

        /// <summary>
        /// The dynamic symbols bound to a version index, and whether any relocation refers to them.
        /// </summary>
        public static List<KeyValuePair<string, bool>> SymbolsOfVersion(byte[] bytes, string path, ushort versionIndex)
        {
            var elf = Read(bytes, path);
            var result = new List<KeyValuePair<string, bool>>();
            var dynsym = elf.Sections.FirstOrDefault(s => s.Type == ShtDynsym);
            var versym = elf.Sections.FirstOrDefault(s => s.Type == ShtGnuVersym);
            if (dynsym == null || versym == null) return result;
            var dynstr = elf.Sections[(int)dynsym.Link];
            int dynsymIndex = elf.Sections.IndexOf(dynsym);
            long count = dynsym.Size / 24;
            var wanted = new HashSet<long>();
            for (long i = 0; i < count; i++)
            {
                int v = BitConverter.ToUInt16(bytes, (int)(versym.Offset + 2 * i)) & 0x7fff;
                if (v == versionIndex) wanted.Add(i);
            }
            var relocated = new HashSet<long>();
            foreach (var rela in elf.Sections.Where(s => s.Type == ShtRela && s.Link == dynsymIndex))
            {
                long n = rela.Size / 24;
                for (long i = 0; i < n; i++)
                {
                    ulong info = BitConverter.ToUInt64(bytes, (int)(rela.Offset + 24 * i + 8));
                    long sym = (long)(info >> 32);
                    if (wanted.Contains(sym)) relocated.Add(sym);
                }
            }
            foreach (long i in wanted)
            {
                uint nameOff = BitConverter.ToUInt32(bytes, (int)(dynsym.Offset + 24 * i));
                result.Add(new KeyValuePair<string, bool>(CString(bytes, dynstr.Offset + nameOff), relocated.Contains(i)));
            }
            return result;
        }

        /// <summary>Finds the libstdc++.so.6 the dynamic loader would use, or null.</summary>
        public static string FindHostLibStdCxx()
        {
            var dirs = new List<string>();
            var ld = Environment.GetEnvironmentVariable("LD_LIBRARY_PATH");
            if (!string.IsNullOrEmpty(ld)) dirs.AddRange(ld.Split(new[] { ':' }, StringSplitOptions.RemoveEmptyEntries));
            try
            {
                foreach (var ldconfig in new[] { "/sbin/ldconfig", "/usr/sbin/ldconfig" })
                {
                    if (!File.Exists(ldconfig)) continue;
                    var psi = new ProcessStartInfo(ldconfig, "-p") { RedirectStandardOutput = true, UseShellExecute = false };
                    using (var p = Process.Start(psi))
                    {
                        string output = p.StandardOutput.ReadToEnd();
                        p.WaitForExit();
                        foreach (var line in output.Split('\n'))
                        {
                            if (!line.Contains("libstdc++.so.6 ") || !line.Contains("x86-64") && !line.Contains("AArch64")) continue;
                            int arrow = line.IndexOf("=>", StringComparison.Ordinal);
                            if (arrow > 0) dirs.Add(Path.GetDirectoryName(line.Substring(arrow + 2).Trim()));
                        }
                    }
                    break;
                }
            }
            catch (Exception)
            {
                // fall back to the usual places below
            }
            dirs.AddRange(new[] { "/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64", "/lib64", "/usr/lib/aarch64-linux-gnu", "/usr/lib" });
            foreach (var d in dirs)
            {
                var f = Path.Combine(d, "libstdc++.so.6");
                if (File.Exists(f)) return f;
            }
            return null;
        }

        /// <summary>
        /// Makes weak the libstdc++ version requirements of <paramref name="path"/> that
        /// <paramref name="hostVersions"/> lacks, when every symbol bound to them is a known safe marker
        /// that no relocation uses. Writes through a temporary file and an atomic rename, so a hard link
        /// into a package cache is replaced, never modified.
        /// </summary>
        public static ElfPatchOutcome PatchFile(string path, ICollection<string> hostVersions, bool force, out string message)
        {
            byte[] bytes = File.ReadAllBytes(path);
            var needs = ReadVersionNeeds(bytes, path).Where(n => n.File.StartsWith("libstdc++", StringComparison.Ordinal)).ToList();
            var missing = needs.Where(n => force ? IsNewerThanAnyHost(n.Name, hostVersions) : !hostVersions.Contains(n.Name)).ToList();
            if (missing.Count == 0)
            {
                message = Path.GetFileName(path) + ": the host libstdc++ provides every version it needs.";
                return ElfPatchOutcome.NotNeeded;
            }
            if (missing.All(n => n.IsWeak))
            {
                message = Path.GetFileName(path) + ": " + string.Join(", ", missing.Select(n => n.Name)) + " already weak.";
                return ElfPatchOutcome.AlreadyPatched;
            }
            foreach (var need in missing.Where(n => !n.IsWeak))
            {
                var symbols = SymbolsOfVersion(bytes, path, need.Index);
                var unsafeSymbols = symbols.Where(s => s.Value || Array.IndexOf(SafeWeakSymbols, s.Key) < 0).Select(s => s.Key).ToList();
                if (unsafeSymbols.Count > 0)
                {
                    message = Path.GetFileName(path) + " needs " + need.Name + " for " + string.Join(", ", unsafeSymbols)
                        + ", which cannot safely be left unresolved; install a libstdc++ that provides " + need.Name + ".";
                    return ElfPatchOutcome.Refused;
                }
            }
            foreach (var need in missing)
            {
                ushort flags = (ushort)(need.Flags | VerFlgWeak);
                bytes[need.FlagsOffset] = (byte)(flags & 0xff);
                bytes[need.FlagsOffset + 1] = (byte)(flags >> 8);
            }
            // Verify: the same table, with exactly those entries now weak.
            var after = ReadVersionNeeds(bytes, path).Where(n => n.File.StartsWith("libstdc++", StringComparison.Ordinal)).ToList();
            if (after.Count != needs.Count)
                throw new InvalidDataException("Patching " + path + " changed its version table; aborted.");
            for (int i = 0; i < needs.Count; i++)
            {
                bool shouldBeWeak = missing.Any(m => m.FlagsOffset == needs[i].FlagsOffset);
                if (after[i].Name != needs[i].Name || after[i].IsWeak != (shouldBeWeak || needs[i].IsWeak))
                    throw new InvalidDataException("Patching " + path + " did not give the expected version table; aborted.");
            }
            string tmp = path + ".mlnetdeep-tmp";
            File.WriteAllBytes(tmp, bytes);
            TryCopyMode(path, tmp);
            File.Delete(path);
            File.Move(tmp, path);
            message = Path.GetFileName(path) + ": marked " + string.Join(", ", missing.Select(n => n.Name))
                + " weak (host libstdc++ lacks it; only the unused symbol " + SafeWeakSymbols[0] + " is bound to it).";
            return ElfPatchOutcome.Patched;
        }

        static bool IsNewerThanAnyHost(string version, ICollection<string> hostVersions)
        {
            // Used with force (building on a new distribution for an old one): treat GLIBCXX_3.4.31+ as missing.
            if (!version.StartsWith("GLIBCXX_3.4.", StringComparison.Ordinal)) return false;
            int minor;
            return int.TryParse(version.Substring("GLIBCXX_3.4.".Length), out minor) && minor > 30;
        }

        static void TryCopyMode(string from, string to)
        {
#if NET7_0_OR_GREATER
            if (!OperatingSystem.IsWindows()) { try { File.SetUnixFileMode(to, File.GetUnixFileMode(from)); } catch (Exception) { } }
#else
            try
            {
                var psi = new ProcessStartInfo("chmod", "--reference=\"" + from + "\" \"" + to + "\"") { UseShellExecute = false };
                using (var p = Process.Start(psi)) p.WaitForExit();
            }
            catch (Exception) { }
#endif
        }
    }

#if !MLNETDEEP_ELF_TESTS
    /// <summary>
    /// MSBuild task: patches every libLibTorchSharp.so under <see cref="Directory"/> when the host's
    /// libstdc++ lacks a version it needs (Mode=auto), always (Mode=always: building on a new
    /// distribution for an old one), or never (Mode=never).
    /// </summary>
    public class MLNetDeepPatchLibTorchSharp : Microsoft.Build.Utilities.Task
    {
        [Microsoft.Build.Framework.Required]
        public string Directory { get; set; }

        public string Mode { get; set; }

        public override bool Execute()
        {
            string mode = string.IsNullOrEmpty(Mode) ? "auto" : Mode.Trim().ToLowerInvariant();
            if (mode == "never" || mode == "false") return true;
            if (mode != "auto" && mode != "always" && mode != "true")
            {
                Log.LogError("MLNetDeepNativeShimPatch must be auto, always or never, not '" + Mode + "'.");
                return false;
            }
            if (!System.IO.Directory.Exists(Directory)) return true;
            var files = System.IO.Directory.GetFiles(Directory, "libLibTorchSharp.so", SearchOption.AllDirectories);
            if (files.Length == 0) return true;
            var host = new HashSet<string>(StringComparer.Ordinal);
            string libstdcxx = ElfVersionPatcher.FindHostLibStdCxx();
            if (libstdcxx != null)
            {
                try { host = ElfVersionPatcher.ReadVersionDefinitions(File.ReadAllBytes(libstdcxx), libstdcxx); }
                catch (Exception e) { Log.LogWarning("MLNetDeep: could not read " + libstdcxx + ": " + e.Message); }
            }
            bool force = mode == "always" || mode == "true";
            if (libstdcxx == null && !force)
            {
                Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Low, "MLNetDeep: no libstdc++.so.6 found; native shim left as shipped.");
                return true;
            }
            foreach (var f in files)
            {
                string message;
                try
                {
                    var outcome = ElfVersionPatcher.PatchFile(f, host, force, out message);
                    if (outcome == ElfPatchOutcome.Refused) Log.LogWarning("MLNetDeep: " + message);
                    else Log.LogMessage(outcome == ElfPatchOutcome.Patched ? Microsoft.Build.Framework.MessageImportance.High : Microsoft.Build.Framework.MessageImportance.Low,
                        "MLNetDeep: " + message + " [" + f + "]");
                }
                catch (Exception e)
                {
                    Log.LogWarning("MLNetDeep: could not patch " + f + ": " + e.Message);
                }
            }
            return !Log.HasLoggedErrors;
        }
    }
#endif
}
