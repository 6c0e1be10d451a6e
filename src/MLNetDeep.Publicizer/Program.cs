// Writes a copy of each given assembly in which every type and every non-private member is public,
// so that MLNetDeep can be compiled against ML.NET's loader and scorer machinery. At run time the
// real assemblies are used and access is granted by IgnoresAccessChecksToAttribute (see MLNetDeep).
// Usage: MLNetDeep.Publicizer <output-dir> <assembly.dll>...
using Mono.Cecil;

if (args.Length < 2)
{
    Console.Error.WriteLine("usage: MLNetDeep.Publicizer <output-dir> <assembly.dll>...");
    return 2;
}
Directory.CreateDirectory(args[0]);
foreach (var input in args.Skip(1))
{
    using var resolver = new DefaultAssemblyResolver();
    foreach (var dir in args.Skip(1).Select(a => Path.GetDirectoryName(Path.GetFullPath(a))!).Distinct())
        resolver.AddSearchDirectory(dir);
    using var module = ModuleDefinition.ReadModule(input, new ReaderParameters { ReadSymbols = false, AssemblyResolver = resolver });
    int changed = 0;
    foreach (var type in module.GetTypes())
    {
        if (type.IsNested)
        {
            if (!type.IsNestedPublic) { type.IsNestedPublic = true; changed++; }
        }
        else if (!type.IsPublic) { type.IsPublic = true; changed++; }

        // Fields named like an event of the same type are the event's backing store: leave them, or
        // the compiler would see two members of one name.
        var eventNames = new HashSet<string>(type.Events.Select(e => e.Name));
        foreach (var m in type.Methods)
        {
            if (m.IsAssembly || m.IsFamilyAndAssembly || m.IsFamilyOrAssembly) { m.IsPublic = true; changed++; }
        }
        foreach (var f in type.Fields)
        {
            if (eventNames.Contains(f.Name)) continue;
            if (f.IsAssembly || f.IsFamilyAndAssembly || f.IsFamilyOrAssembly) { f.IsPublic = true; changed++; }
        }
    }
    var output = Path.Combine(args[0], Path.GetFileName(input));
    module.Write(output);
    Console.WriteLine($"MLNetDeep.Publicizer: {Path.GetFileName(input)}: {changed} accessibility changes -> {output}");
}
return 0;
