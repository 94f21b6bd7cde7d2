"""The flow-run Dockerfile, read with BuildKit's own parser and checked by checkov."""

from __future__ import annotations

import re
from pathlib import Path

import dockerfile
from support.answers import answers_of, model_of


def instructions(project: Path) -> list[dockerfile.Command]:
    return list(dockerfile.parse_file(str(project / "Dockerfile")))


def index_of(commands: list[dockerfile.Command], cmd: str, predicate=lambda c: True) -> int:
    matches = [i for i, c in enumerate(commands) if c.cmd == cmd and predicate(c)]
    assert matches, f"no {cmd} instruction matches"
    return matches[0]


def test_base_image_is_pinned_to_the_python_version(project: Path):
    commands = instructions(project)
    images = [c.value[0] for c in commands if c.cmd == "FROM"]
    images += [
        flag.split("=", 1)[1] for c in commands if c.cmd == "COPY" for flag in c.flags if "--from" in flag
    ]
    for image in images:
        assert re.search(r":\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?$", image), f"{image} is not pinned"
    python_version = answers_of(project)["python_version"]
    assert re.fullmatch(
        rf"python:{re.escape(python_version)}\.\d+-slim-\w+(@sha256:[0-9a-f]{{64}})?", images[0]
    )


def test_entrypoint_is_exec_form_so_signals_reach_python(project: Path):
    commands = instructions(project)
    entrypoint = commands[index_of(commands, "ENTRYPOINT")]
    cmd = commands[index_of(commands, "CMD")]
    assert entrypoint.json and cmd.json, "shell form would put /bin/sh between ECS's SIGTERM and Python"
    assert entrypoint.value[0].endswith("tini")
    # The project's flow_run.py (the work pool's command too), not `prefect flow-run execute`,
    # which dies on tini's SIGTERM and leaves its engine child to be killed unreported.
    model = model_of(answers_of(project))
    assert cmd.value == tuple(model.flow_run_command)
    module = cmd.value[-1]
    assert (project / "src" / Path(*module.split("."))).with_suffix(".py").is_file()
    assert "tini" in commands[index_of(commands, "RUN", lambda c: "apt-get install" in c.value[0])].value[0]


def test_runs_as_a_non_root_user(project: Path):
    commands = instructions(project)
    users = [c.value[0] for c in commands if c.cmd == "USER"]
    assert users and users[-1] not in {"root", "0", "0:0"}
    assert index_of(commands, "USER") < index_of(commands, "ENTRYPOINT")


def test_dependencies_layer_comes_before_the_code(project: Path):
    commands = instructions(project)
    lock = index_of(commands, "COPY", lambda c: "uv.lock" in c.value)
    sync = index_of(commands, "RUN", lambda c: "uv sync" in c.value[0])
    sync_command = commands[sync].value[0]
    assert "--locked" in sync_command and "--no-install-project" in sync_command
    assert lock < sync
    code = [
        i for i, c in enumerate(commands) if c.cmd == "COPY" and any(v.startswith("src") for v in c.value)
    ]
    package = answers_of(project)["package_name"]
    if answers_of(project)["code_storage"] == "ecr":
        assert code and code[0] > sync
    else:
        # Of the code, only the container's command: it runs before the pull.
        copied = [commands[i].value[:-1] for i in code]
        assert copied == [(f"src/{package}/flow_run.py",)], "the s3 image holds only dependencies"


# Flags Docker's classic builder accepts. prefect-docker's build_docker_image
# builds through docker-py (`client.api.build`), which uses that builder: it
# rejects BuildKit-only flags (RUN --mount/--network/--security, COPY --chmod/--link)
# and does not know heredocs.
CLASSIC_BUILDER_FLAGS = {
    "FROM": {"--platform"},
    "COPY": {"--from", "--chown"},
    "ADD": {"--chown"},
    "HEALTHCHECK": {"--interval", "--timeout", "--start-period", "--retries"},
}


def test_classic_builder_can_build_it(project: Path):
    problems = [
        f"line {c.start_line}: {c.cmd} {flag}"
        for c in instructions(project)
        for flag in c.flags
        if flag.split("=", 1)[0] not in CLASSIC_BUILDER_FLAGS.get(c.cmd, set())
    ]
    problems += [f"line {c.start_line}: {c.cmd} heredoc" for c in instructions(project) if c.heredocs]
    assert problems == []


def test_dependency_layer_leaves_no_uv_cache(project: Path):
    commands = instructions(project)
    env = commands[index_of(commands, "ENV")].value
    sync = commands[index_of(commands, "RUN", lambda c: "uv sync" in c.value[0])].value[0]
    assert dict(zip(env[::2], env[1::2], strict=True)).get("UV_NO_CACHE") == "1" or "--no-cache" in sync


def test_working_directory_matches_the_pull_step(project: Path):
    commands = instructions(project)
    assert commands[index_of(commands, "WORKDIR")].value == ("/app",)
    env = commands[index_of(commands, "ENV")].value
    assert dict(zip(env[::2], env[1::2], strict=True))["PYTHONPATH"] == "/app/src"


def test_dockerignore_keeps_the_context_small(project: Path):
    ignored = (project / ".dockerignore").read_text().split()
    assert {".git", ".venv", "infra", "tests"} <= set(ignored)


def test_checkov_finds_nothing(answer_set: tuple[str, dict], checkov_scan):
    # One checkov run scans every answer set's Dockerfile with the Terraform (tf_fixtures.py).
    report = checkov_scan(f"docker-{answer_set[0]}")
    assert not report["parsing_errors"], report["parsing_errors"]
    (summary,) = report["summary"]
    failed = report["failed"]
    assert summary["failed"] == 0, [(c["check_id"], c["check_name"]) for c in failed]
    assert summary["passed"] > 0
