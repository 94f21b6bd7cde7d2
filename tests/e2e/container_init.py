"""Start one emulated container: `container_init.py <spec.json>`, run inside `unshare --mount`.

The spec (written by `task_runner`) names the image's working directory
(e.g. /app), the task's own directory that stands in for it, the argv and the
environment. In its own mount namespace the process bind-mounts that directory
onto the working directory, so absolute paths of the image (the pull step's
`set_working_directory: /app`) work and concurrent tasks never share files;
then it becomes the container's command (exec, same PID).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys


def main(spec_path: str) -> None:
    with open(spec_path) as spec_file:
        spec = json.load(spec_file)
    workdir = spec["workdir"]
    subprocess.run(["mount", "--bind", spec["workdir_source"], workdir], check=True)
    os.chdir(workdir)
    # A container starts with no signal blocked; the emulator's threads block SIGTERM.
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    os.execvpe(spec["argv"][0], spec["argv"], spec["env"])


if __name__ == "__main__":
    main(sys.argv[1])
