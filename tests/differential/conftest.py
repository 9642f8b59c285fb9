"""The differential tests' tally: printed after the run, and written as JSON when asked.

JACCLI_DIFF_EXAMPLES: examples per export path (default 20; CI sets 200 or more).
JACCLI_DIFF_SEED: the first example's seed (default 0); example i uses seed + i.
JACCLI_DIFF_REPORT: a path to write the counts to as JSON.
"""

import os

from .harness import TALLY


def pytest_terminal_summary(terminalreporter):
    if not TALLY.counts:
        return
    terminalreporter.section("differential tests: outcomes per export path")
    for line in TALLY.lines():
        terminalreporter.write_line(line)
    report = os.environ.get("JACCLI_DIFF_REPORT")
    if report:
        TALLY.write(report)
        terminalreporter.write_line(f"written to {report}")
