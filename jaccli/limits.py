"""Resource guards: refuse, before any work, what would not fit.

The memory budget is half of the memory available when jaccli starts
(``MemAvailable`` in /proc/meminfo, else ``os.sysconf``); the environment
variable ``JACCLI_MAX_MEMORY`` (bytes, or with a K, M, G or T suffix)
replaces it. Disk space is checked with ``shutil.disk_usage``.
"""

import os
import shutil

from jaccli.errors import JaccliError, ResourceError

MEMORY_ENV = "JACCLI_MAX_MEMORY"
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def folder_as_written(path):
    """The folder of ``path`` as the user wrote it (``.`` for a bare name), for messages."""
    return os.path.dirname(str(path)) or "."


def human(nbytes):
    value = float(nbytes)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"  # pragma: no cover


def parse_size(text):
    text = str(text).strip().upper().removesuffix("IB").removesuffix("B")
    unit = text[-1:] if text[-1:] in _UNITS and text[-1:] else ""
    number = text[:-1] if unit else text
    try:
        value = float(number) * _UNITS[unit]
    except ValueError:
        raise JaccliError(f"{MEMORY_ENV}={text!r}: expected a size such as 4G or 500M") from None
    if not value > 0:
        raise JaccliError(f"{MEMORY_ENV}={text!r}: the size must be positive")
    return int(value)


def available_memory():
    """Bytes of memory available now, or None if the system does not say."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_budget():
    """The most bytes one result or tensor may take in memory (None: no limit known)."""
    override = os.environ.get(MEMORY_ENV)
    if override:
        return parse_size(override)
    available = available_memory()
    return None if available is None else available // 2


def _budget_note():
    if os.environ.get(MEMORY_ENV):
        return f"the limit is {human(memory_budget())} ({MEMORY_ENV})"
    return f"the limit is {human(memory_budget())}, half the available memory ({MEMORY_ENV} overrides)"


def check_memory(nbytes, what, advice=""):
    """Raise ResourceError if ``nbytes`` of memory for ``what`` exceeds the budget."""
    budget = memory_budget()
    if budget is not None and nbytes > budget:
        raise ResourceError(f"{what} would take {human(nbytes)} of memory; {_budget_note()}"
                            + (f"; {advice}" if advice else ""))


def check_disk(path, nbytes, what, advice=""):
    """Raise ResourceError if the file system of ``path`` has less than ``nbytes`` free."""

    directory = folder_as_written(path)
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return
    if nbytes > free:
        raise ResourceError(f"{path}: {what} would take about {human(nbytes)} on disk; "
                            f"{directory} has {human(free)} free" + (f"; {advice}" if advice else ""))
