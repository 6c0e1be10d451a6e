// MLNetDeep plugs into ML.NET's model loader and scorers, which ML.NET keeps internal. The compiler sees
// all-public copies of these assemblies (see MLNetDeep.csproj); at run time this attribute, honoured by
// the CoreCLR, lets MLNetDeep use their internal members. This binds MLNetDeep to one exact ML.NET version.
[assembly: System.Runtime.CompilerServices.IgnoresAccessChecksTo("Microsoft.ML.Core")]
[assembly: System.Runtime.CompilerServices.IgnoresAccessChecksTo("Microsoft.ML.Data")]
[assembly: System.Runtime.CompilerServices.IgnoresAccessChecksTo("Microsoft.ML.StandardTrainers")]

namespace System.Runtime.CompilerServices
{
    /// <summary>Tells the runtime to skip access checks from this assembly into the named one.</summary>
    [AttributeUsage(AttributeTargets.Assembly, AllowMultiple = true)]
    internal sealed class IgnoresAccessChecksToAttribute : Attribute
    {
        /// <summary>Creates the attribute for the assembly with the given simple name.</summary>
        public IgnoresAccessChecksToAttribute(string assemblyName) => AssemblyName = assemblyName;

        /// <summary>The simple name of the assembly whose internals this assembly uses.</summary>
        public string AssemblyName { get; }
    }
}
