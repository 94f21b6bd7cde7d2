"""Run the AWS emulator for the end-to-end tests: moto's server plus `moto_patches`.

    python moto_launcher.py <run-task-capture-file>

Listens on 127.0.0.1 on a port the OS picks, prints "PORT <n>" once it
accepts requests, and serves until it gets SIGTERM.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import moto_patches
from moto.server import ThreadedMotoServer


def main() -> None:
    moto_patches.apply(Path(sys.argv[1]))
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # server threads inherit the mask
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    print(f"PORT {port}", flush=True)
    signal.sigwait(stop_signals)
    server.stop()


if __name__ == "__main__":
    main()
