"""How long rendering this template takes, next to a real peer and a same-size reference.

Measures, each as the median of several runs into a fresh destination:

- `copier copy --defaults` of this template (vcs_ref HEAD, so uncommitted
  changes are included) through the CLI, as users run it;
- the same for pawamoy/copier-uv (a widely used Copier template, ISC; a copy
  sits in ../shared/peers/copier-uv beside the repository, `--peer` to point
  elsewhere), with the `--data` answers its required questions need: our
  median divided by its is what a user pays here against a template they might
  otherwise pick (the line is skipped, with the reason, without the folder);
- the same for a plain-Jinja template of this template's size (files,
  folders, questions with validators), generated into the run's temporary
  folder by make_reference_template.py: the ratio is what this template
  costs beyond its size, whatever the machine's load;
- the same for a one-file template: the floor of any Copier render (these
  four CLI renders run in turns, so a changing load weighs on each alike);
- `python -c "import copier"`: the interpreter start-up and imports every CLI
  run pays before it reads the template;
- the same two renders in-process with `copier.run_copy`, without that cost;
- `copier update` between two tags of a temporary git copy of the template
  (the second tag changes one line), and how many full renders Copier does
  for it (counted in-process).

Copier settings are isolated (an empty settings file), so the user's defaults
and trust list change nothing. `--profile` adds a cProfile of one in-process
render, grouped into the phases that matter (git, Jinja environment and
extensions, question rendering, file rendering).

Target (issue 15): median CLI render <= 1.0x the same-size reference.

    .venv/bin/python benchmarks/render_speed.py [--runs 7] [--profile] [--peer ../shared/peers/copier-uv]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from make_reference_template import write_reference_template

REPO = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.0
# CI clones the repository into a folder with shared/ beside it.
DEFAULT_PEER = REPO.parent / "shared" / "peers" / "copier-uv"
# copier-uv's questions without a default; every other answer is its default.
PEER_DATA = {"project_name": "Bench Peer", "project_description": "A benchmark render of copier-uv"}

COPY_FLAGS = ["--trust", "--defaults", "--quiet"]


def git(*args: str, cwd: Path) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
    }
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def commit_all(template: Path) -> Path:
    git("init", "-q", cwd=template)
    git("add", "-A", cwd=template)
    git("commit", "-q", "-m", "benchmark copy", cwd=template)
    return template


def make_reference_template(root: Path) -> Path:
    """A git repository of the same-size plain-Jinja template, generated now from template/'s size."""
    template = root / "reference-template"
    print(f"same-size reference: {write_reference_template(template)}")
    return commit_all(template)


def peer_missing(peer: Path) -> str | None:
    if not (peer / "copier.yml").is_file():
        return f"no copier-uv template at {peer} (no copier.yml): pass --peer <folder of pawamoy/copier-uv>"
    return None


def make_peer_copy(root: Path, peer: Path) -> Path:
    """A git copy of the peer's folder (its files as they are, without its own .git)."""
    ignore = shutil.ignore_patterns(".git")
    template = shutil.copytree(peer, root / "peer-template", symlinks=True, ignore=ignore)
    source = (peer / "SOURCE").read_text().strip().rstrip(".") if (peer / "SOURCE").is_file() else str(peer)
    jinja = sum(path.stat().st_size for path in template.rglob("*.jinja") if path.is_file())
    files = sum(1 for path in template.rglob("*") if path.is_file())
    print(f"peer: {source}; {files} files, {jinja // 1024} KB of .jinja")
    if shutil.which("gh"):
        print("note: `gh` is on PATH, so copier-uv's giscus hook asks GitHub's API during its renders")
    return commit_all(template)


def make_floor_template(root: Path) -> Path:
    """A committed one-question, one-file template: the floor of any Copier render."""
    template = root / "floor-template"
    template.mkdir()
    (template / "copier.yml").write_text(
        "_templates_suffix: .jinja\nproject_name:\n  type: str\n  default: Reference\n"
    )
    (template / "README.md.jinja").write_text("# {{ project_name }}\n")
    (template / "{{_copier_conf.answers_file}}.jinja").write_text("{{ _copier_answers | to_nice_yaml -}}\n")
    git("init", "-q", cwd=template)
    git("add", "-A", cwd=template)
    git("commit", "-q", "-m", "reference", cwd=template)
    return template


def make_tagged_copy(root: Path, template: Path) -> Path:
    """A git copy of the template's working tree tagged v1.0.0, plus v1.0.1 that changes one line."""
    copy = root / "template-tags"
    git("clone", "-q", "--no-checkout", str(template), str(copy), cwd=root)
    files = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=template).split("\0")
    for name in filter(None, files):
        source, target = template / name, copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():  # e.g. the repo-root `includes` link into template/
            target.unlink(missing_ok=True)
            target.symlink_to(os.readlink(source))
        elif source.is_file():
            shutil.copy2(source, target)
    git("add", "-A", cwd=copy)
    git("commit", "-q", "--allow-empty", "-m", "snapshot of the working tree", cwd=copy)
    git("tag", "v1.0.0", cwd=copy)
    readme = copy / "template" / "README.md.jinja"
    readme.write_text(readme.read_text() + "\n<!-- benchmark: second tag -->\n")
    git("commit", "-q", "-am", "trivial change", cwd=copy)
    git("tag", "v1.0.1", cwd=copy)
    return copy


def cpu_seconds() -> float:
    """CPU time of this process and its finished children: less sensitive to a busy machine."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class Timing:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def measure(runs: int, prepare: Callable[[int], object], action: Callable[[object], object]) -> Timing:
    timing = Timing()
    for index in range(runs):
        argument = prepare(index)
        wall, cpu = time.perf_counter(), cpu_seconds()
        action(argument)
        timing.wall.append(time.perf_counter() - wall)
        timing.cpu.append(cpu_seconds() - cpu)
    return timing


def cli(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "copier", *args], capture_output=True, text=True
    )
    if done.returncode:
        sys.exit(f"copier {' '.join(args)} failed:\n{done.stderr[-3000:]}")


def summary(name: str, timing: Timing) -> str:
    wall, cpu = timing.wall, timing.cpu
    return (
        f"{name:<42} wall median {statistics.median(wall):6.2f} s (min {min(wall):.2f}, max {max(wall):.2f})"
        f"  cpu median {statistics.median(cpu):5.2f} s  n={len(wall)}"
    )


# Cumulative times, so they overlap: the config load includes the git clone, and
# rendering includes the file names, the file contents and the per-file git call.
PHASES = {
    "template config (copier.yml) load, incl. clone": ("_template.py", "config_data"),
    "  git clone of the template (+ dirty-tree commit)": ("_vcs.py", "clone"),
    "questions: defaults and validators (_ask)": ("_main.py", "_ask"),
    "rendering the template": ("_main.py", "_render_template"),
    "  file and folder names (Jinja in paths)": ("_main.py", "_render_path"),
    "  file contents": ("_main.py", "_render_file"),
    "    git update-index check per file (Copier)": ("_main.py", "_sync_git_index_executable_bit"),
    "template _tasks": ("_main.py", "_execute_tasks"),
}


def count_update_renders(project: Path, vcs_ref: str) -> int:
    """Full template renders Copier does for one `copier update` (in-process, counted)."""
    from copier import _main, run_update

    calls = 0
    original = _main.Worker._render_template

    def counting(self: object) -> None:
        nonlocal calls
        calls += 1
        original(self)  # type: ignore[arg-type]

    _main.Worker._render_template = counting  # type: ignore[method-assign]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run_update(project, vcs_ref=vcs_ref, defaults=True, overwrite=True, unsafe=True, quiet=True)
    finally:
        _main.Worker._render_template = original  # type: ignore[method-assign]
    return calls


def profile_render(src: Path, root: Path) -> str:
    from copier import run_copy

    profiler = cProfile.Profile()
    destination = root / "profiled"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        profiler.runcall(
            run_copy, str(src), destination, defaults=True, unsafe=True, quiet=True, vcs_ref="HEAD"
        )
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    lines = [f"cProfile of one in-process render: {total:.2f} s total (profiler overhead included)"]
    for label, (filename, function) in PHASES.items():
        cumulative = max(
            (
                entry[3]
                for (path, _, name), entry in stats.stats.items()  # type: ignore[attr-defined]
                if path.endswith(filename) and name == function
            ),
            default=0.0,
        )
        lines.append(f"  {label:<50} {cumulative:6.2f} s  ({cumulative / total:4.0%})")
    buffer = io.StringIO()
    pstats.Stats(profiler, stream=buffer).sort_stats("cumulative").print_stats(25)
    lines.append(buffer.getvalue())
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="renders per measurement (default 5)")
    parser.add_argument("--update-runs", type=int, default=2, help="copier update runs (default 2)")
    parser.add_argument("--profile", action="store_true", help="also profile one in-process render")
    parser.add_argument(
        "--committed",
        action="store_true",
        help="render a clean clone of the last commit instead of the working tree (dirty changes excluded)",
    )
    parser.add_argument(
        "--peer",
        type=Path,
        default=DEFAULT_PEER,
        help=f"folder of pawamoy/copier-uv to compare with (default {DEFAULT_PEER})",
    )
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="render-speed-") as tmp:
        root = Path(tmp)
        settings = root / "copier-settings.yml"
        settings.write_text("{}\n")
        os.environ["COPIER_SETTINGS_PATH"] = str(settings)
        reference = make_reference_template(root)
        floor = make_floor_template(root)
        no_peer = peer_missing(options.peer)
        peer = None if no_peer else make_peer_copy(root, options.peer)
        template = REPO
        if options.committed:
            template = root / "committed-template"
            git("clone", "-q", str(REPO), str(template), cwd=root)
        counter = iter(range(10**6))

        def fresh(_: int) -> Path:
            return root / f"dst-{next(counter)}"

        results: dict[str, Timing] = {}
        print(
            f"copier {metadata.version('copier')}, "
            f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, template {template}"
        )
        sources = {"cli template": ("this template", template, [])}
        if peer is not None:
            data = [flag for name, value in PEER_DATA.items() for flag in ("--data", f"{name}={value}")]
            sources["cli peer"] = ("copier-uv (peer)", peer, data)
        sources["cli reference"] = ("same-size reference template", reference, [])
        sources["cli floor"] = ("one-file template (floor)", floor, [])
        # In turns, so a load that changes during the run weighs on every template alike.
        for key in sources:
            results[key] = Timing()
        for _ in range(options.runs):
            for key, (_, src, data) in sources.items():
                timed = measure(
                    1,
                    fresh,
                    lambda dst, src=src, data=data: cli(
                        "copy", *COPY_FLAGS, "--vcs-ref", "HEAD", *data, str(src), str(dst)
                    ),
                )
                results[key].wall += timed.wall
                results[key].cpu += timed.cpu
        for key, (name, _, _) in sources.items():
            print(summary(f"CLI copy: {name}", results[key]))
        results["import"] = measure(
            options.runs,
            lambda _: None,
            lambda _: subprocess.run([sys.executable, "-c", "import copier"], check=True),
        )
        print(summary("python -c 'import copier' (start-up)", results["import"]))

        from copier import run_copy

        def in_process(src: Path) -> Callable[[object], object]:
            def render(dst: object) -> None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    run_copy(str(src), dst, defaults=True, unsafe=True, quiet=True, vcs_ref="HEAD")

            return render

        results["api template"] = measure(options.runs, fresh, in_process(template))
        print(summary("run_copy in-process: this template", results["api template"]))
        results["api reference"] = measure(options.runs, fresh, in_process(reference))
        print(summary("run_copy in-process: same-size reference", results["api reference"]))

        tagged = make_tagged_copy(root, template)
        project = root / "project-v1"
        cli("copy", *COPY_FLAGS, "--vcs-ref", "v1.0.0", str(tagged), str(project))
        git("init", "-q", cwd=project)
        git("add", "-A", cwd=project)
        git("commit", "-q", "-m", "project at v1.0.0", cwd=project)

        def project_copy(_: int) -> Path:
            destination = fresh(0)
            shutil.copytree(project, destination, symlinks=True)
            return destination

        results["update"] = measure(
            options.update_runs,
            project_copy,
            lambda dst: cli("update", *COPY_FLAGS, "--vcs-ref", "v1.0.1", str(dst)),
        )
        print(summary("CLI update v1.0.0 -> v1.0.1", results["update"]))
        renders = count_update_renders(project_copy(0), "v1.0.1")
        print(f"full renders in one `copier update` (Copier {metadata.version('copier')}): {renders}")

        def median(key: str, kind: str = "wall") -> float:
            return statistics.median(getattr(results[key], kind))

        print()
        for kind in ("wall", "cpu"):
            versus_peer = (
                f"{median('cli template', kind) / median('cli peer', kind):.2f}x"
                if peer is not None
                else f"skipped: {no_peer}"
            )
            print(
                f"{kind:>4}: CLI render, this template / copier-uv {versus_peer}; "
                f"/ same-size reference {median('cli template', kind) / median('cli reference', kind):.2f}x"
            )
        for kind in ("wall", "cpu"):
            template_s, reference_s = median("cli template", kind), median("cli reference", kind)
            startup, api, api_reference = (
                median(key, kind) for key in ("import", "api template", "api reference")
            )
            print(
                f"{kind:>4}: CLI template / reference {template_s / reference_s:.2f}x, template-specific "
                f"{template_s - reference_s:.2f} s; python start-up + import copier {startup:.2f} s; "
                f"in-process render {api:.2f} s vs reference {api_reference:.2f} s"
            )
        verdicts = [
            (
                f"CLI render / same-size reference ({kind})",
                median("cli template", kind) / median("cli reference", kind),
                TARGET_RATIO,
                "x",
            )
            for kind in ("wall", "cpu")
        ]
        verdicts.append(("full renders per copier update", renders, 2, ""))
        for name, value, target, unit in verdicts:
            state = "met" if value <= target else f"MISSED by {value - target:.2f} {unit}"
            print(f"target {name} <= {target:g} {unit}: {value:.2f} {unit} -> {state}")
        print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        if options.profile:
            print()
            print(profile_render(template, root))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
