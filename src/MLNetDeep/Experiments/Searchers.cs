// Search strategies over one candidate's unit cube. Both are deterministic given their seed and the sequence of
// reported results, so an experiment replayed from its trial history proposes the same next point (resume).
namespace MLNetDeep;

/// <summary>How an experiment chooses the next configuration of a candidate.</summary>
public enum SearchStrategy
{
    /// <summary>
    /// Cost-frugal local search (FLOW², the local search of FLAML's CFO that ML.NET AutoML uses): start from the cheap
    /// initial point, try a random direction and its opposite, move when better, shrink the step after failures, and
    /// restart from a random point when the step is too small (the global component). Default.
    /// </summary>
    CostFrugal,
    /// <summary>The initial point first, then points drawn uniformly from the space.</summary>
    Random,
}

/// <summary>Proposes points of [0, 1]^d and learns from their scores (higher is better).</summary>
internal abstract class Searcher
{
    protected readonly int Dimension;
    protected readonly Random Random;

    protected Searcher(int dimension, int seed)
    {
        Dimension = dimension;
        Random = new Random(seed);
    }

    public static Searcher Create(SearchStrategy strategy, SearchSpace space, int seed) => strategy switch
    {
        SearchStrategy.Random => new RandomSearcher(space, seed),
        _ => new CostFrugalSearcher(space, seed),
    };

    /// <summary>The next point to try.</summary>
    public abstract double[] Propose();

    /// <summary>The score of a proposed point; null when the trial failed or was stopped before it could be scored.</summary>
    public abstract void Report(double[] point, double? score);

    protected double[] Uniform()
    {
        var x = new double[Dimension];
        for (int i = 0; i < x.Length; i++) x[i] = Random.NextDouble();
        return x;
    }
}

internal sealed class RandomSearcher : Searcher
{
    private readonly double[] _initial;
    private bool _initialTried;

    public RandomSearcher(SearchSpace space, int seed) : base(space.Count, seed) => _initial = space.Initial();

    public override double[] Propose()
    {
        if (_initialTried) return Uniform();
        _initialTried = true;
        return (double[])_initial.Clone();
    }

    public override void Report(double[] point, double? score) { }
}

/// <summary>
/// FLOW² (Wu, Wang, Huang, 2021): from the incumbent x with step δ, draw a direction u uniformly on the unit sphere and
/// try x + δu, then x − δu; a better score moves the incumbent. After 2^(d−1) failed directions in a row (at most 64)
/// δ halves, and below a floor the search restarts from a uniformly drawn point with the initial step.
/// </summary>
internal sealed class CostFrugalSearcher : Searcher
{
    private const double InitialStep = 0.25, MinimumStep = 0.01;
    private double[] _incumbent;
    private double? _incumbentScore;
    private double _step = InitialStep;
    private double[]? _direction;
    private bool _triedOpposite;
    private int _failures;
    private bool _started;

    public CostFrugalSearcher(SearchSpace space, int seed) : base(space.Count, seed) => _incumbent = space.Initial();

    private int Patience => Dimension <= 1 ? 1 : 1 << Math.Min(Dimension - 1, 6);

    public override double[] Propose()
    {
        if (!_started)
        {
            _started = true;
            return (double[])_incumbent.Clone();
        }
        if (Dimension == 0) return Array.Empty<double>();
        if (_direction is null || _triedOpposite)
        {
            _direction = UnitDirection();
            _triedOpposite = false;
            return Move(+1);
        }
        _triedOpposite = true;
        return Move(-1);
    }

    public override void Report(double[] point, double? score)
    {
        if (_incumbentScore is null && point.SequenceEqual(_incumbent))
        {
            // The starting point (or a restart point) sets the incumbent; a failed start still lets the search move.
            _incumbentScore = score ?? double.NegativeInfinity;
            return;
        }
        if (score is double s && s > (_incumbentScore ?? double.NegativeInfinity))
        {
            _incumbent = point;
            _incumbentScore = s;
            _direction = null;
            _failures = 0;
            return;
        }
        if (!_triedOpposite) return; // the opposite direction is tried next
        if (++_failures < Patience) return;
        _failures = 0;
        _step /= 2;
        if (_step >= MinimumStep) return;
        // Stuck: restart from a random point (the global component), keeping nothing but the generator.
        _incumbent = Uniform();
        _incumbentScore = null;
        _step = InitialStep;
        _direction = null;
        _started = false;
    }

    private double[] Move(int sign)
    {
        var x = new double[Dimension];
        for (int i = 0; i < x.Length; i++) x[i] = Math.Clamp(_incumbent[i] + sign * _step * _direction![i], 0, 1);
        return x;
    }

    private double[] UnitDirection()
    {
        var u = new double[Dimension];
        double norm = 0;
        for (int i = 0; i < u.Length; i++)
        {
            // Box–Muller: a normal vector, normalized, is uniform on the sphere.
            double a = 1 - Random.NextDouble(), b = Random.NextDouble();
            u[i] = Math.Sqrt(-2 * Math.Log(a)) * Math.Cos(2 * Math.PI * b);
            norm += u[i] * u[i];
        }
        norm = Math.Sqrt(norm);
        for (int i = 0; i < u.Length; i++) u[i] /= norm;
        return u;
    }
}
