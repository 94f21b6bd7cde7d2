"""What each validation layer costs for one answer set (the defaults).

Each layer is the template's own pytest file(s) for that concern, run with
`-k "[default] or default_render"` (the tests of the `default` answer set:
plain `-k default` would also select every set's `test_pool_defaults_*`
and render all of them), serially (`-n 0`), in its own pytest process. All layers share one
render cache (the `render` fixture keeps renders next to pytest's basetemp),
and the first layer renders it, so later layers measure only their checks.
"parse" is measured in-process: python-hcl2 over every .tf of that render.

A layer whose test file does not exist yet is skipped with a message.
`--whole-suite` also times the complete suite as CI runs it (`pytest`, with the
pyproject's `-n auto`); it takes minutes.

Targets: one variant's static validation (all layers in one pytest process,
the render cached) <= 20 s CPU; whole suite <= 10 min (issue 15).

    .venv/bin/python benchmarks/validation_cost.py [--whole-suite] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
TARGET_ONE_VARIANT_SECONDS = 20.0
TARGET_WHOLE_SUITE_SECONDS = 10 * 60.0
LAYER_TIMEOUT_SECONDS = 600
DEFAULT_SET = "[default] or default_render"


@dataclass(frozen=True)
class Layer:
    name: str
    files: tuple[str, ...]
    selection: str = DEFAULT_SET


LAYERS = (
    Layer("render + render checks", ("render/test_render.py",)),
    Layer("Terraform schema check (HCL vs provider schema)", ("infra/test_tf_schema.py",)),
    Layer("terraform fmt", ("infra/test_tf_validate.py",), "[default] and formatted"),
    Layer("terraform init + validate", ("infra/test_tf_validate.py",), "[default] and validates"),
    Layer("checkov", ("infra/test_checkov.py",)),
    Layer("IAM / network / capacity policy", ("infra/test_infra_policy.py",)),
    Layer("prefect.yaml + job variables", ("prefect/test_prefect_yaml.py", "prefect/test_job_variables.py")),
    Layer("running-cost model", ("infra/test_costs.py",)),
    Layer("generated project's own tests", ("project/test_generated_project.py",)),
)


@dataclass
class Outcome:
    layer: str
    seconds: float | None
    pytest_seconds: float | None
    result: str
    cpu_seconds: float | None = None


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_pytest(
    args: list[str], basetemp: Path, timeout: float = LAYER_TIMEOUT_SECONDS
) -> tuple[float, float | None, str, int, float]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--basetemp={basetemp}",
        *args,
    ]
    start, cpu = time.perf_counter(), children_cpu()
    # Every layer reads the one render the first layer made (see tests/conftest.py).
    env = {**os.environ, "RENDER_CACHE_DIR": str(basetemp.parent / "renders")}
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    seconds, cpu = time.perf_counter() - start, children_cpu() - cpu
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr.strip()[-200:]
    match = re.search(r" in ([\d.]+)s", last)
    summary = re.sub(r"=+", "", last).strip()
    summary = re.sub(r" in [\d.]+s.*", "", summary)
    return seconds, float(match.group(1)) if match else None, summary, done.returncode, cpu


def verdict_of(value: float, target: float, unit: str) -> str:
    state = "met" if value <= target else f"MISSED by {value - target:.1f} {unit}"
    return f"target <= {target:g} {unit} {state}"


def parse_layer(renders: Path) -> Outcome:
    """python-hcl2 over every .tf/.tfvars of the default render, in-process."""
    import hcl2

    # tests/conftest.py names each cached render after the hash of its answers; the defaults are {}.
    default = renders / hashlib.sha256(json.dumps({}, sort_keys=True).encode()).hexdigest()[:16]
    if not (default / ".copier-answers.yml").exists():
        return Outcome("parse (python-hcl2, in-process)", None, None, "skipped: no default render found")
    files = sorted([*default.rglob("*.tf"), *default.rglob("*.tfvars")])
    start, cpu = time.perf_counter(), time.process_time()
    for path in files:
        with path.open() as handle:
            hcl2.load(handle)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return Outcome("parse (python-hcl2, in-process)", seconds, seconds, f"{len(files)} files", cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--whole-suite", action="store_true", help="also time the whole suite (minutes)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (renders)")
    options = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="validation-cost-"))
    outcomes: list[Outcome] = []
    try:
        for index, layer in enumerate(LAYERS):
            missing = [name for name in layer.files if not (TESTS / name).exists()]
            present = [name for name in layer.files if name not in missing]
            if not present:
                outcomes.append(
                    Outcome(layer.name, None, None, f"skipped: {', '.join(missing)} not written yet")
                )
                print(f"{layer.name:<50} skipped ({', '.join(missing)} missing)", flush=True)
                continue
            seconds, in_pytest, summary, code, cpu = run_pytest(
                ["-n", "0", "-k", layer.selection, *(f"tests/{name}" for name in present)],
                root / f"layer-{index}",
            )
            if code == 5:
                summary = f"no test selected by -k '{layer.selection}'"
            elif code not in (0, 1):
                summary = f"pytest exit {code}: {summary}"
            if missing:
                summary += f"; {', '.join(missing)} not written yet"
            outcomes.append(Outcome(layer.name, seconds, in_pytest, summary, cpu))
            print(f"{layer.name:<50} {seconds:6.1f} s  ({summary})", flush=True)
            if index == 0:
                outcomes.append(parse_layer(root / "renders"))
                print(f"{outcomes[-1].layer:<50} {outcomes[-1].seconds or 0:6.2f} s  ({outcomes[-1].result})")

        measured = [o for o in outcomes if o.seconds is not None]
        total = sum(o.seconds for o in measured)  # type: ignore[misc]
        print()
        print(f"{'layer':<50} {'wall s':>7} {'cpu s':>6} {'in pytest s':>12}  result")
        for outcome in outcomes:
            wall = f"{outcome.seconds:7.1f}" if outcome.seconds is not None else "      -"
            wall += f" {outcome.cpu_seconds:6.1f}" if outcome.cpu_seconds is not None else "      -"
            inner = (
                f"{outcome.pytest_seconds:12.1f}" if outcome.pytest_seconds is not None else "           -"
            )
            print(f"{outcome.layer:<50} {wall} {inner}  {outcome.result}")
        if measured:
            top = max(measured, key=lambda o: o.seconds or 0)
            verdict = verdict_of(total, TARGET_ONE_VARIANT_SECONDS, "s")
            print(f"\none variant, all measured layers: {total:.1f} s: {verdict}")
            cpu_total = sum(o.cpu_seconds or 0 for o in measured)
            print(f"cpu time of all layers: {cpu_total:.1f} s")
            print(f"dominant layer: {top.layer} ({top.seconds:.1f} s, {top.seconds / total:.0%})")
            overhead = sum(o.seconds - o.pytest_seconds for o in measured if o.pytest_seconds is not None)  # type: ignore[operator]
            print(f"of which pytest start-up, imports and collection (wall - in pytest): {overhead:.1f} s")

            # What a contributor pays: every static layer in one pytest process (one
            # start-up, one Prefect import, one checkov run), the render already cached.
            static = [name for layer in LAYERS for name in layer.files if (TESTS / name).exists()]
            seconds, in_pytest, summary, _, cpu = run_pytest(
                [
                    "-n",
                    "0",
                    "-m",
                    "not slow",
                    "-k",
                    DEFAULT_SET,
                    *(f"tests/{name}" for name in dict.fromkeys(static)),
                ],
                root / "one-process",
            )
            verdict = verdict_of(cpu, TARGET_ONE_VARIANT_SECONDS, "s CPU")
            print(
                f"all static layers in one pytest process: {seconds:.1f} s wall, {cpu:.1f} s CPU "
                f"({summary}): {verdict}"
            )

        if options.whole_suite:
            seconds, _, summary, _, _ = run_pytest(
                [], root / "whole-suite", timeout=2 * TARGET_WHOLE_SUITE_SECONDS
            )
            verdict = verdict_of(seconds / 60, TARGET_WHOLE_SUITE_SECONDS / 60, "min")
            print(f"\nwhole suite ({os.cpu_count()} CPUs): {seconds / 60:.1f} min; {summary}; {verdict}")
    finally:
        if options.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
