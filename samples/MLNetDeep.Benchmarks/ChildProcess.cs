using System.Diagnostics;

namespace MLNetDeep.Benchmarks;

/// <summary>This benchmark run again in a child process (a fresh process for memory measurements).</summary>
internal static class ChildProcess
{
    /// <summary>Runs this program with <paramref name="args"/>; returns its exit code, standard output and first line of standard error.</summary>
    public static (int ExitCode, string Output, string Error) RunSelf(params string[] args)
    {
        string self = Environment.ProcessPath!;
        var psi = new ProcessStartInfo(self) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") psi.ArgumentList.Add(typeof(ChildProcess).Assembly.Location);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var proc = Process.Start(psi)!;
        var stderr = proc.StandardError.ReadToEndAsync();
        string output = proc.StandardOutput.ReadToEnd();
        proc.WaitForExit();
        return (proc.ExitCode, output, stderr.Result.Split('\n').FirstOrDefault() ?? "");
    }
}
