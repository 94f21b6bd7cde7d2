"""What tini (the flow-run image's ENTRYPOINT, without -g) does, for machines that lack it.

    python tests/support/tini.py -- <command...>

It runs the command as its only child, forwards each signal it gets to that
child alone (not to the child's process group or session), and exits with the
child's exit code, or 128 + N if a signal N killed the child (tini's own rule).
"""

from __future__ import annotations

import signal
import subprocess
import sys

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def main(argv: list[str]) -> int:
    command = argv[argv.index("--") + 1 :] if "--" in argv else argv
    if not command:
        print("usage: tini.py -- <command...>", file=sys.stderr)
        return 2
    child = subprocess.Popen(command)
    for forwarded in FORWARDED:
        signal.signal(forwarded, lambda signum, _frame: child.send_signal(signum))
    code = child.wait()
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
