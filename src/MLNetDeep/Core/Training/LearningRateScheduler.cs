namespace MLNetDeep;

/// <summary>
/// Learning rate as a pure function of (epoch, batch) plus the reduce-on-plateau state, so that a resumed run
/// continues exactly where the checkpoint left it.
/// </summary>
internal sealed class LearningRateScheduler
{
    private readonly DeepTrainerOptions _o;
    private readonly long _batchesPerEpoch;
    private readonly long _totalBatches;

    public double PlateauScale { get; set; } = 1;
    public double PlateauBest { get; set; } = double.PositiveInfinity;
    public int PlateauBadEpochs { get; set; }

    public LearningRateScheduler(DeepTrainerOptions options, long batchesPerEpoch)
    {
        _o = options;
        _batchesPerEpoch = Math.Max(1, batchesPerEpoch);
        _totalBatches = _batchesPerEpoch * options.NumberOfEpochs;
    }

    /// <summary>The rate for batch <paramref name="batch"/> (0-based) of epoch <paramref name="epoch"/> (0-based).</summary>
    public double Rate(int epoch, long batch)
    {
        double lr = _o.LearningRate;
        double t = Math.Clamp((epoch * _batchesPerEpoch + batch) / (double)_totalBatches, 0, 1);
        switch (_o.Schedule)
        {
            case LearningRateSchedule.Step:
                return lr * Math.Pow(_o.StepGamma, epoch / _o.StepSizeEpochs);
            case LearningRateSchedule.Cosine:
                return _o.MinimumLearningRate + (lr - _o.MinimumLearningRate) * (1 + Math.Cos(Math.PI * t)) / 2;
            case LearningRateSchedule.OneCycle:
            {
                double initial = lr / 25, final = initial / 1e4, warm = _o.OneCycleWarmupFraction;
                return t < warm
                    ? initial + (lr - initial) * (1 - Math.Cos(Math.PI * t / warm)) / 2
                    : final + (lr - final) * (1 + Math.Cos(Math.PI * (t - warm) / (1 - warm))) / 2;
            }
            case LearningRateSchedule.ReduceOnPlateau:
                return lr * PlateauScale;
            case LearningRateSchedule.WarmupCosine:
            case LearningRateSchedule.WarmupLinear:
            {
                // Warm-up reaches the peak at the end of its last batch (batch index + 1), never a zero rate.
                double warm = _o.WarmupFraction, step = Math.Clamp((epoch * _batchesPerEpoch + batch + 1) / (double)_totalBatches, 0, 1);
                if (step <= warm) return lr * step / warm;
                double u = Math.Clamp((t - warm) / (1 - warm), 0, 1);
                double shape = _o.Schedule == LearningRateSchedule.WarmupCosine ? (1 + Math.Cos(Math.PI * u)) / 2 : 1 - u;
                return _o.MinimumLearningRate + (lr - _o.MinimumLearningRate) * shape;
            }
            default:
                return lr;
        }
    }

    /// <summary>Feeds the epoch's monitored loss to reduce-on-plateau; returns true when the rate was reduced.</summary>
    public bool EndEpoch(double monitoredLoss)
    {
        if (_o.Schedule != LearningRateSchedule.ReduceOnPlateau) return false;
        if (monitoredLoss < PlateauBest - 1e-12)
        {
            PlateauBest = monitoredLoss;
            PlateauBadEpochs = 0;
            return false;
        }
        if (++PlateauBadEpochs > _o.PlateauPatience)
        {
            PlateauScale *= _o.PlateauFactor;
            PlateauBadEpochs = 0;
            return true;
        }
        return false;
    }
}
