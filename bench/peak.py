"""``python -m bench.peak ARGS...``: run ``jaccli ARGS`` in this process and print
its peak resident set (VmHWM, kB) on the last line of standard error.

The rusage of a child (os.wait4) is no use here: Linux carries the parent's
high-water mark across fork and exec, so every child would report the
bench's own size. VmHWM belongs to the process's own address space.
"""

import sys


def vm_hwm_bytes():
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    from jaccli.cli import cli

    code = 0
    try:
        cli.main(args=sys.argv[1:], prog_name="jaccli", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code or 0
    sys.stderr.write(f"\nVMHWM {vm_hwm_bytes()}\n")
    sys.exit(code)


if __name__ == "__main__":
    main()
