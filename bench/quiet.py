"""Whether other work shared the cores while the bench ran.

The 1-minute load average cannot tell: the bench's own two workers hold it
near 2 on two cores, and a run started right after another sees that run's
load. Instead: the machine's busy CPU time over the run (Linux's /proc/stat,
steal included: time the hypervisor gave our vCPUs to other guests) minus
this process's and its waited-for children's (the contestants', the CLI
runs'), as a share of the run's core-seconds.
"""

import os
import resource
import time

#: Other work above this share of the run's core-seconds makes the run not quiet.
QUIET_SHARE = 0.05
# /proc/stat's first line: user nice system idle iowait irq softirq steal (guest time
# is already inside user and nice)
_IDLE_FIELDS = (3, 4)
_FIELDS = 8


def busy_and_steal():
    """(busy, steal) CPU seconds of all cores since boot, or None where /proc/stat is missing."""
    try:
        with open("/proc/stat") as handle:
            values = [int(x) for x in handle.readline().split()[1:_FIELDS + 1]]
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    busy = sum(v for i, v in enumerate(values) if i not in _IDLE_FIELDS)
    return busy / tick, (values[7] if len(values) > 7 else 0) / tick


def own_seconds():
    """CPU seconds of this process and of its children that have been waited for."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


class CpuWatch:
    """Started at the run's start; ``report()`` at its end."""

    def __init__(self):
        self.machine, self.own, self.wall = busy_and_steal(), own_seconds(), time.monotonic()

    def report(self, cores):
        """{"other_share", "steal_share"} of the run's core-seconds, or {} off Linux."""
        now = busy_and_steal()
        if self.machine is None or now is None:
            return {}
        capacity = max(time.monotonic() - self.wall, 1e-9) * cores
        other = (now[0] - self.machine[0]) - (own_seconds() - self.own)
        return {"other_share": max(other, 0.0) / capacity,
                "steal_share": (now[1] - self.machine[1]) / capacity}


def describe(shares, load_before, cores):
    """One line: quiet or not, by the other work's share of the cores during the run."""
    if not shares:
        return f"machine: other work not measured here (1-minute load {load_before:.2f} before)"
    quiet = shares["other_share"] <= QUIET_SHARE
    verdict = "quiet" if quiet else "NOT quiet: other work shared the cores, take the ratios as indicative"
    return (f"machine {verdict} (other work {shares['other_share']:.1%} of the {cores} cores "
            f"during the run, hypervisor steal {shares['steal_share']:.1%}; 1-minute load "
            f"{load_before:.2f} before)")
