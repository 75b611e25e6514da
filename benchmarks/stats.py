"""The one place the benchmarks turn timings into figures, so that median and p99 mean the same in every table."""
import math
import os
import statistics


def median_p99(times):
    """(median, p99), p99 by nearest rank (index ceil(0.99 n) - 1 sorted): a value that was actually measured."""
    times = sorted(times)
    return statistics.median(times), times[math.ceil(0.99 * len(times)) - 1]


def cpu_seconds(pid):
    """User + system CPU seconds process pid has used so far (Linux /proc)."""
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
