namespace MLNetDeep;

/// <summary>
/// Options of <see cref="ForecastWindows.Create"/>: which columns of an ordered series make the windows, the window
/// shape (lookback, horizon, stride), the split by time into training, validation and test parts, and scaling.
/// </summary>
/// <remarks>
/// Each window's <c>Features</c> hold the <see cref="Lookback"/> most recent steps, oldest first; each step holds
/// <see cref="TargetColumn"/>, then <see cref="OtherSeriesColumns"/>, then <see cref="CovariateColumns"/>, so
/// <c>Features</c> is a <c>vector&lt;float&gt;</c> with dimensions [Lookback, features per step]. <c>Label</c>
/// holds the next <see cref="Horizon"/> values of <see cref="TargetColumn"/>.
/// </remarks>
public sealed class ForecastWindowOptions
{
    /// <summary>The column to forecast: a <c>float</c> (or <c>double</c>) column of the series. Required.</summary>
    public string TargetColumn { get; set; } = "";

    /// <summary>
    /// Further series observed with the target (a multivariate series), used as inputs only: the label always comes
    /// from <see cref="TargetColumn"/>. Each step holds them right after the target, in this order. Default none.
    /// </summary>
    public string[]? OtherSeriesColumns { get; set; }

    /// <summary>
    /// Covariate columns (inputs only), placed after the target and <see cref="OtherSeriesColumns"/> in each step,
    /// in this order. Their value at a step is used for that step only, never beyond the window's origin. Default none.
    /// </summary>
    public string[]? CovariateColumns { get; set; }

    /// <summary>Number of past steps in each window's features (L). Default 12.</summary>
    public int Lookback { get; set; } = 12;

    /// <summary>Number of future target values in each window's label (H). Default 1.</summary>
    public int Horizon { get; set; } = 1;

    /// <summary>
    /// Steps between the origins of consecutive training (and validation) windows, like Keras'
    /// <c>sequence_stride</c>: the first window ends at step <c>Lookback - 1</c>. Test windows always use every
    /// origin (the rolling-origin protocol). Default 1.
    /// </summary>
    public int Stride { get; set; } = 1;

    /// <summary>
    /// Number of points at the end of the series held out for the rolling-origin test. 0 (the default) with
    /// <see cref="TestFraction"/> 0 makes no test part. Set this or <see cref="TestFraction"/>, not both.
    /// </summary>
    public int TestCount { get; set; }

    /// <summary>
    /// Fraction of the series' points (rounded, at least one) held out at its end for the test part, in [0, 1).
    /// Default 0. Set this or <see cref="TestCount"/>, not both.
    /// </summary>
    public double TestFraction { get; set; }

    /// <summary>
    /// Number of points just before the test part held out for validation. 0 (the default) with
    /// <see cref="ValidationFraction"/> 0 makes no validation part. When set, it must be at least
    /// <see cref="Horizon"/> (one full validation label). Set this or <see cref="ValidationFraction"/>, not both.
    /// </summary>
    public int ValidationCount { get; set; }

    /// <summary>
    /// Fraction of the series' points (rounded, at least one) held out for validation just before the test part,
    /// in [0, 1). Default 0. Set this or <see cref="ValidationCount"/>, not both.
    /// </summary>
    public double ValidationFraction { get; set; }

    /// <summary>
    /// Standardize every column (features and label) with the mean and standard deviation of the training part
    /// only; <see cref="ForecastWindows.Scaler"/> keeps them to turn forecasts back into series units. Default true.
    /// </summary>
    public bool Standardize { get; set; } = true;

    /// <summary>Copies the options.</summary>
    public ForecastWindowOptions Clone()
    {
        var copy = (ForecastWindowOptions)MemberwiseClone();
        copy.OtherSeriesColumns = OtherSeriesColumns?.ToArray();
        copy.CovariateColumns = CovariateColumns?.ToArray();
        return copy;
    }

    /// <summary>
    /// Checks every option on its own (the columns are checked against the data by <see cref="ForecastWindows.Create"/>);
    /// throws <see cref="ArgumentOutOfRangeException"/> or <see cref="ArgumentException"/> naming the option.
    /// </summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(TargetColumn))
            throw new ArgumentException($"{nameof(TargetColumn)} must name the column to forecast.", nameof(TargetColumn));
        CheckNames(OtherSeriesColumns, nameof(OtherSeriesColumns));
        CheckNames(CovariateColumns, nameof(CovariateColumns));
        Positive(Lookback, nameof(Lookback));
        Positive(Horizon, nameof(Horizon));
        Positive(Stride, nameof(Stride));
        NotNegative(TestCount, nameof(TestCount));
        NotNegative(ValidationCount, nameof(ValidationCount));
        Fraction(TestFraction, nameof(TestFraction));
        Fraction(ValidationFraction, nameof(ValidationFraction));
        if (TestCount > 0 && TestFraction > 0)
            throw new ArgumentException($"Set {nameof(TestCount)} ({TestCount}) or {nameof(TestFraction)} ({TestFraction}), not both.", nameof(TestFraction));
        if (ValidationCount > 0 && ValidationFraction > 0)
            throw new ArgumentException($"Set {nameof(ValidationCount)} ({ValidationCount}) or {nameof(ValidationFraction)} ({ValidationFraction}), not both.", nameof(ValidationFraction));

        var seen = new HashSet<string>(StringComparer.Ordinal) { TargetColumn };
        foreach (var (names, option) in new[] { (OtherSeriesColumns, nameof(OtherSeriesColumns)), (CovariateColumns, nameof(CovariateColumns)) })
            foreach (var name in names ?? Array.Empty<string>())
                if (!seen.Add(name))
                    throw new ArgumentException($"{option} names column '{name}' a second time (each column may appear once among {nameof(TargetColumn)}, {nameof(OtherSeriesColumns)} and {nameof(CovariateColumns)}).", option);
    }

    /// <summary>All the columns of a step, in their order within the step: target, other series, covariates.</summary>
    internal string[] StepColumns() =>
        new[] { TargetColumn }.Concat(OtherSeriesColumns ?? Array.Empty<string>()).Concat(CovariateColumns ?? Array.Empty<string>()).ToArray();

    /// <summary>The option that named the step column at <paramref name="index"/> (for error messages).</summary>
    internal string OptionOf(int index) =>
        index == 0 ? nameof(TargetColumn)
        : index <= (OtherSeriesColumns?.Length ?? 0) ? nameof(OtherSeriesColumns)
        : nameof(CovariateColumns);

    private static void CheckNames(string[]? names, string option)
    {
        if (names is null) return;
        for (int i = 0; i < names.Length; i++)
            if (string.IsNullOrWhiteSpace(names[i]))
                throw new ArgumentException($"{option}[{i}] must name a column.", option);
    }

    private static void Positive(int value, string name)
    {
        if (value <= 0)
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be positive, not {value}.");
    }

    private static void NotNegative(int value, string name)
    {
        if (value < 0)
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be zero or positive, not {value}.");
    }

    private static void Fraction(double value, string name)
    {
        if (!(value >= 0 && value < 1))
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be in [0, 1), not {value}.");
    }
}
