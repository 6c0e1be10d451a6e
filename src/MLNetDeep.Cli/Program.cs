// mlnetdeep: AutoML-style experiments from the command line, in the spirit of the ML.NET CLI
// (`mlnet classification --dataset ... --label-col ... --train-time ...`).
using MLNetDeep.Cli;

using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    // First Ctrl+C: stop the running trial cleanly and write what was found so far; a second one ends the process.
    if (stop.IsCancellationRequested) return;
    e.Cancel = true;
    Console.Error.WriteLine("mlnetdeep: stopping after the running trial is cancelled (Ctrl+C again to quit at once)...");
    stop.Cancel();
};

try
{
    var a = Arguments.Parse(args);
    if (a.Command is "" or "help" || a.Flag("help"))
    {
        Console.WriteLine(Commands.Usage);
        return a.Command is "" ? 2 : 0;
    }
    return Commands.Run(a, Console.Out, stop.Token);
}
catch (UsageException e)
{
    Console.Error.WriteLine("mlnetdeep: " + e.Message);
    Console.Error.WriteLine("Run 'mlnetdeep help' for the commands and their options.");
    return 2;
}
catch (Exception e)
{
    var inner = e is System.Reflection.TargetInvocationException { InnerException: { } ie } ? ie : e;
    Console.Error.WriteLine($"mlnetdeep: {inner.GetType().Name}: {inner.Message}");
    return 1;
}
