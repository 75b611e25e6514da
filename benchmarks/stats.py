"""The one place the benchmarks turn timings into figures, so that median and p99 mean the same in every table."""
import math
import statistics


def median_p99(times):
    """(median, p99), p99 by nearest rank (index ceil(0.99 n) - 1 sorted): a value that was actually measured."""
    times = sorted(times)
    return statistics.median(times), times[math.ceil(0.99 * len(times)) - 1]
