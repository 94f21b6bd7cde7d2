"""Run this machine's Terraform offline against the AWS provider mirror.

Reusable by every test that needs `terraform` (validate, fmt, end-to-end
apply) and by `tests/schema/regenerate.py`:

    reason = terraform_unavailable()          # None when usable, else why not
    env = terraform_env(tmp_dir)              # os.environ + TF_CLI_CONFIG_FILE ...
    run_terraform(["init", "-backend=false"], cwd=root, env=env)

The CLI configuration installs providers only from the filesystem mirror
(default /opt/tf-plugins, override with TF_PROVIDER_MIRROR) and shares one
plugin cache per `tmp_dir`, so each root's `init` links the provider instead
of copying its 700 MB.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from support.answers import recorded_answers

# Terraform that must fail a check (tests/fixtures/tf/<name>), for the checks' own tests.
TF_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tf"
MIRROR_ENV_VAR = "TF_PROVIDER_MIRROR"
DEFAULT_MIRROR = Path("/opt/tf-plugins")
AWS_PROVIDER_DIR = Path("registry.terraform.io/hashicorp/aws")
DEFAULT_TIMEOUT = 600
_COLOR_COMMANDS = {"init", "validate", "plan", "apply", "destroy", "output", "import", "refresh", "fmt"}


class TerraformError(AssertionError):
    """A terraform command failed; the message carries its command, cwd and output."""


def terraform_binary() -> str | None:
    return shutil.which("terraform")


def provider_mirror() -> Path:
    return Path(os.environ.get(MIRROR_ENV_VAR) or DEFAULT_MIRROR)


def mirrored_aws_versions(mirror: Path | None = None) -> list[str]:
    """Versions of hashicorp/aws present in the mirror (unpacked or zip layout)."""
    provider_dir = (mirror or provider_mirror()) / AWS_PROVIDER_DIR
    if not provider_dir.is_dir():
        return []
    versions = set()
    for entry in provider_dir.iterdir():
        if entry.is_dir():
            versions.add(entry.name)
        elif entry.name.startswith("terraform-provider-aws_") and entry.suffix == ".zip":
            versions.add(entry.name.split("_")[1])
    return sorted(versions)


def terraform_unavailable() -> str | None:
    """Why Terraform can't run here (for support.tools.require), or None when it can."""
    if terraform_binary() is None:
        return "terraform is not on PATH"
    mirror = provider_mirror()
    if not mirrored_aws_versions(mirror):
        return (
            f"no hashicorp/aws provider in the filesystem mirror {mirror} "
            f"(set {MIRROR_ENV_VAR} to a mirror directory)"
        )
    return None


def cli_config(mirror: Path, plugin_cache_dir: Path) -> str:
    """A Terraform CLI configuration that never contacts a registry."""
    return (
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f'    path    = "{mirror}"\n'
        '    include = ["registry.terraform.io/hashicorp/*"]\n'
        "  }\n"
        "}\n"
        f'plugin_cache_dir = "{plugin_cache_dir}"\n'
        # Without this, a root with no lock file re-installs into the cache
        # instead of linking it, and concurrent inits collide there.
        "plugin_cache_may_break_dependency_lock_file = true\n"
        "disable_checkpoint = true\n"
    )


def terraform_env(tmp_dir: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for `run_terraform`: a CLI config and plugin cache under `tmp_dir`.

    Idempotent and safe to call from several processes with the same
    `tmp_dir`; the plugin cache is warmed once, under a lock, because
    Terraform's cache is not safe for concurrent first writes.
    """
    tmp_dir = Path(tmp_dir)
    cache_dir = tmp_dir / "plugin-cache"
    config_file = tmp_dir / "terraform.tfrc"
    cache_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ if base is None else base)
    for inherited in ("TF_CLI_CONFIG_FILE", "TF_PLUGIN_CACHE_DIR", "TF_DATA_DIR", "TF_WORKSPACE"):
        env.pop(inherited, None)
    env.update(
        TF_CLI_CONFIG_FILE=str(config_file),
        TF_IN_AUTOMATION="1",
        TF_INPUT="0",
        CHECKPOINT_DISABLE="1",
    )
    # Terraform and its ~700 MB AWS provider spend a fifth of their CPU on Go's
    # garbage collector, mostly while loading the provider schema (`validate`:
    # 3.1 s -> 2.5 s). Collecting only near 768 MiB per process keeps that CPU
    # for the suite, at a bounded memory cost; a caller's own setting wins.
    env.setdefault("GOGC", "off")
    env.setdefault("GOMEMLIMIT", "768MiB")
    config = cli_config(provider_mirror(), cache_dir)
    with open(tmp_dir / "terraform-env.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not config_file.exists() or config_file.read_text() != config:
            config_file.write_text(config)
        warm_marker = tmp_dir / "plugin-cache.warm"
        if not warm_marker.exists() or warm_marker.read_text() != config:
            _warm_plugin_cache(tmp_dir / "warm-root", env)
            warm_marker.write_text(config)
    return env


def _warm_plugin_cache(root: Path, env: dict[str, str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    version = mirrored_aws_versions()[-1]
    (root / "main.tf").write_text(
        "terraform {\n"
        "  required_providers {\n"
        f'    aws = {{ source = "hashicorp/aws", version = "{version}" }}\n'
        "  }\n"
        "}\n"
    )
    run_terraform(["init", "-backend=false"], cwd=root, env=env)


def run_terraform(
    args: Sequence[str],
    cwd: Path,
    env: dict[str, str] | None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    check: bool = True,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `terraform <args>` in `cwd`; on failure raise TerraformError with its output.

    `env=None` inherits os.environ without TF_CLI_CONFIG_FILE (enough for fmt,
    version); anything that installs providers needs `terraform_env(...)`.
    """
    if env is None:
        # TF_CLI_CONFIG_FILE may name a missing file, which makes terraform warn on every run
        env = {key: value for key, value in os.environ.items() if key != "TF_CLI_CONFIG_FILE"}
    command = [terraform_binary() or "terraform", *args]
    if args and args[0] in _COLOR_COMMANDS and "-no-color" not in args:
        command.insert(2, "-no-color")
    try:
        result = subprocess.run(
            command,
            cwd=cwd,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise TerraformError(
            f"`{' '.join(command)}` in {cwd} did not finish within {timeout} s\n"
            f"{_tail(error.stdout)}\n{_tail(error.stderr)}"
        ) from error
    if check and result.returncode != 0:
        raise TerraformError(
            f"`{' '.join(command)}` in {cwd} exited {result.returncode}\n"
            f"--- stderr ---\n{_tail(result.stderr)}\n--- stdout ---\n{_tail(result.stdout)}"
        )
    return result


def _tail(output: str | bytes | None, limit: int = 8000) -> str:
    if output is None:
        return ""
    if isinstance(output, bytes):
        output = output.decode(errors="replace")
    return output if len(output) <= limit else "...\n" + output[-limit:]


def terraform_roots(infra: Path) -> list[Path]:
    """The root modules of a rendered infra/ directory: envs/<env> and bootstrap."""
    roots = sorted(path for path in (infra / "envs").glob("*") if any(path.glob("*.tf")))
    if any((infra / "bootstrap").glob("*.tf")):
        roots.append(infra / "bootstrap")
    return roots


def env_roots(project: Path) -> list[Path]:
    """The env roots of a rendered project: infra/envs/<env>, one per answered environment."""
    roots = sorted(path for path in (project / "infra" / "envs").iterdir() if path.is_dir())
    assert [root.name for root in roots] == sorted(recorded_answers(project)["environments"])
    return roots


def copy_infra(infra: Path, destination: Path) -> Path:
    """Copy an infra/ tree (without Terraform working files) so init can't touch the original."""
    shutil.copytree(
        infra,
        destination,
        ignore=shutil.ignore_patterns(
            ".terraform", "*.tfstate", "*.tfstate.*", ".terraform.tfstate.lock.info"
        ),
        dirs_exist_ok=True,
    )
    return destination
