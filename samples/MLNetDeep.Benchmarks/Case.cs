// The MLP benchmark's cases.
namespace MLNetDeep.Benchmarks;

internal enum TaskKind { Regression, Binary }

/// <summary>One benchmark case: a data set, a network and a batch size.</summary>
internal sealed record Case(string Name, TaskKind Task, string Data, int[] Hidden, int Batch)
{
    public static readonly Case[] All =
    {
        new("bike [128,64] b64", TaskKind.Regression, "bike", new[] { 128, 64 }, 64),
        new("bike [512,512] b256", TaskKind.Regression, "bike", new[] { 512, 512 }, 256),
        new("sms [128,64] b64", TaskKind.Binary, "sms", new[] { 128, 64 }, 64),
    };

    public static Case Find(string name) => All.Single(c => c.Name == name);
}
