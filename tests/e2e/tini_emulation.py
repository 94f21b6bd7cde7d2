"""What tini does as a container's PID 1, for hosts without a real tini: `tini_emulation.py -- cmd ...`.

Runs `cmd` as its direct child, forwards every catchable signal it gets to
that child only (tini's default, without -g), and exits with the child's
exit code, or 128 + the signal number when a signal ended the child.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("tini_emulation: no command given", file=sys.stderr)
        return 1
    child = subprocess.Popen(argv)

    def forward(signum: int, _frame) -> None:
        if child.poll() is None:
            os.kill(child.pid, signum)

    for signum in FORWARDED:
        signal.signal(signum, forward)
    code = child.wait()
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
