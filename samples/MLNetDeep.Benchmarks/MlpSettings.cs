// The MLP benchmark's settings: fixed training settings and the command-line options (Program parses them).
using System.Diagnostics;

namespace MLNetDeep.Benchmarks;

internal static class MlpSettings
{
    public const double LearningRate = 1e-3;
    public const double WeightDecay = 1e-4;
    public const int Seed = 20261123;

    public static int Epochs = 10;
    public static int Repeats = 5;
    public static bool Profile = true;
    public static int? Threads;
    public static string[]? OnlyCases;
    public static double QuietThreshold = 0.15; // cores used by other processes above which a measurement pair is repeated
    public static int MaxAttempts = 3;
    public static double MaxQuietWaitSeconds = 60;
    public static bool Verbose;
    public static double GcStressSeconds;
    public static double PreWarmSeconds = 1.5;
    public static double BudgetMinutes = 12;
    private static readonly Stopwatch Clock = Stopwatch.StartNew();
    /// <summary>After this long, stop waiting for quiet and stop repeating noisy measurements (they are flagged instead).</summary>
    public static bool OverBudget => Clock.Elapsed.TotalMinutes > BudgetMinutes;
}
