"""Paths a real account exercises and the emulator alone would not show (issue 12: 3, 4, 5).

- The worker image is the full tag of the Prefect and prefect-aws versions the
  project pins, not a tag rebuilt for every Prefect release.
- No ARN is assembled with a hard-coded `arn:aws:` partition.
- Egress of the worker and the flow runs is set per environment, defaults keep
  the rules (and their Terraform addresses) a stack already has.

The emulator half (RunTask tags, egress rules, OIDC provider lookup) is in tests/e2e.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from support.answer_sets import sets_where
from support.answers import answers_of
from support.hcl import blocks, parse_file, unquote, unquote_tree
from support.terraform import env_roots

PREFECT_AWS_IMAGE = re.compile(
    r"prefecthq/prefect-aws:(?P<prefect_aws>[0-9.]+)-python(?P<python>3\.\d+)-prefect(?P<prefect>[0-9.]+)"
)


def load(path: Path) -> dict:
    """A parsed Terraform file, string quotes removed (python-hcl2 keeps them)."""
    return unquote_tree(parse_file(path))


def stack_locals(project: Path) -> dict:
    merged: dict = {}
    for entry in load(project / "infra" / "stack" / "main.tf").get("locals", []):
        merged |= entry
    return merged


# --- 3. the worker image ------------------------------------------------------


def test_worker_image_is_the_full_tag_of_the_pinned_versions(project: Path) -> None:
    image = stack_locals(project)["worker_image"]
    match = PREFECT_AWS_IMAGE.fullmatch(image)
    assert match, f"worker image {image!r} does not name the Prefect version (<aws>-python<v>-prefect<v>)"
    pins = dict(
        re.fullmatch(r"([a-z-]+)(?:\[[a-z,]+\])?==(.+)", dependency).groups()  # type: ignore[union-attr]
        for dependency in tomllib.loads((project / "pyproject.toml").read_text())["project"]["dependencies"]
        if "==" in dependency
    )
    answers = answers_of(project)
    assert match["prefect_aws"] == pins["prefect-aws"] == answers["prefect_aws_version"]
    assert match["prefect"] == pins["prefect"] == answers["prefect_version"]
    # The versions the template's own tests run (and prove the worker with).
    assert match["prefect_aws"] == importlib.metadata.version("prefect-aws")
    assert match["prefect"] == importlib.metadata.version("prefect")


@pytest.mark.parametrize("answer_set", sets_where("worker_image_mirror", True), indirect=True)
def test_mirrored_worker_image_comes_from_the_projects_ecr_only(project: Path) -> None:
    """Issue 21 (5): with worker_image_mirror, the task never names Docker Hub and may pull only its copy."""
    worker = project / "infra" / "modules" / "worker"
    main_tf = (worker / "main.tf").read_text()
    assert "image     = local.mirrored_image" in main_tf and "var.image\n" not in main_tf
    mirror = load(worker / "image_mirror.tf")
    mirrored = mirror["locals"][0]["mirrored_image"]
    # The repository's URL with the upstream's tag (the pinned versions).
    assert mirrored == '${aws_ecr_repository.worker_image.repository_url}:${split(":", var.image)[1]}'
    (document,) = [body for kind, name, body in blocks(mirror, "data") if kind == "aws_iam_policy_document"]
    statements = {statement["sid"]: statement for statement in document["statement"]}
    assert statements["PullWorkerImage"]["resources"] == ["${aws_ecr_repository.worker_image.arn}"]
    assert set(statements["PullWorkerImage"]["actions"]) == {
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
    }
    (policy,) = [body for kind, name, body in blocks(mirror, "resource") if kind == "aws_iam_role_policy"]
    assert policy["role"] == "${aws_iam_role.execution.id}", "the execution role pulls the image"
    makefile = (project / "Makefile").read_text()
    assert 'docker buildx imagetools create --tag "$$target" "$$source"' in makefile


def test_worker_pulls_from_docker_hub_without_the_mirror(project: Path) -> None:
    worker = project / "infra" / "modules" / "worker"
    mirrored = answers_of(project)["worker_image_mirror"]
    assert (worker / "image_mirror.tf").exists() == mirrored
    assert ("image     = var.image\n" in (worker / "main.tf").read_text()) != mirrored


# --- 4. partitions --------------------------------------------------------------


def test_no_arn_hard_codes_the_aws_partition(project: Path) -> None:
    """ARNs come from AWS (outputs, data sources) or keep the partition of one; validations allow any."""
    hard_coded = re.compile(r"arn:aws:")
    hits = [
        f"{path.relative_to(project)}:{number}: {line.strip()}"
        for path in sorted((project / "infra").rglob("*.tf"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if hard_coded.search(line) and not line.lstrip().startswith("#")
    ]
    assert not hits, "ARNs with a fixed partition:\n" + "\n".join(hits)


def test_partition_check_catches_a_fixed_partition(tmp_path: Path) -> None:
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "main.tf").write_text('locals {\n  arn = "arn:aws:iam::${local.id}:root"\n}\n')
    with pytest.raises(AssertionError, match=r"main\.tf:2"):
        test_no_arn_hard_codes_the_aws_partition(tmp_path)


@pytest.mark.parametrize("answer_set", sets_where("ci_provider", "github"), indirect=True)
def test_existing_github_oidc_provider_can_be_named_or_looked_up(project: Path) -> None:
    assert answers_of(project)["ci_provider"] == "github", "sets_where selected a set without GitHub OIDC"
    module = project / "infra" / "modules" / "github_oidc"
    data = {(kind, name): body for kind, name, body in blocks(load(module / "main.tf"), "data")}
    lookup = data[("aws_iam_openid_connect_provider", "github")]
    assert unquote(lookup["url"]) == "https://${local.github_oidc_host}"
    for root in env_roots(project):
        variables = {name for entry in load(root / "variables.tf").get("variable", []) for name in entry}
        assert {"create_github_oidc_provider", "github_oidc_provider_arn"} <= variables, root.name
        call = load(root / "main.tf")["module"][0]["stack"]
        assert call["github_oidc_provider_arn"] == "${var.github_oidc_provider_arn}", root.name


# --- 5. egress ------------------------------------------------------------------


def variable_default(path: Path, name: str):
    for entry in load(path).get("variable", []):
        if name in entry:
            return entry[name].get("default")
    raise AssertionError(f"no variable {name} in {path}")


def test_egress_is_set_per_environment(project: Path) -> None:
    for root in env_roots(project):
        call = load(root / "main.tf")["module"][0]["stack"]
        for name in ("worker_egress", "flow_run_egress"):
            assert call[name] == f"${{var.{name}}}", f"{root.name}: {name} does not reach the stack"
            assert variable_default(root / "variables.tf", name), f"{root.name}: {name} has no default"
        assert "worker_egress" in (root / "terraform.tfvars").read_text(), "tfvars do not show the setting"


def test_egress_defaults_are_the_rules_stacks_already_have(project: Path) -> None:
    """HTTPS anywhere for both groups, same descriptions, old addresses moved to the new keys."""
    root = env_roots(project)[0]
    assert variable_default(root / "variables.tf", "worker_egress") == [
        {
            "port": 443,
            "cidr_ipv4": "0.0.0.0/0",
            "description": "HTTPS to the Prefect API, ECR, Docker Hub and AWS APIs",
        }
    ]
    assert variable_default(root / "variables.tf", "flow_run_egress") == [
        {"port": 443, "cidr_ipv4": "0.0.0.0/0"}
    ]
    expression = stack_locals(project)["egress_rules"]
    # The key and the fallback description that the defaults produce.
    assert "${rule.protocol}-${rule.ports}-${rule.destination}" in expression
    assert "Outbound ${upper(rule.protocol)} ${rule.ports}" in expression

    modules = project / "infra" / "modules"
    moves = {
        (move["from"].removeprefix("${").removesuffix("}"), move["to"].removeprefix("${").removesuffix("}"))
        for path in (modules / "worker" / "main.tf", modules / "flow_runs" / "main.tf")
        for move in load(path).get("moved", [])
    }
    assert moves == {
        (
            "aws_vpc_security_group_egress_rule.worker_https",
            'aws_vpc_security_group_egress_rule.worker["tcp-443-0.0.0.0/0"]',
        ),
        (
            'aws_vpc_security_group_egress_rule.flow_runs["443"]',
            'aws_vpc_security_group_egress_rule.flow_runs["tcp-443-0.0.0.0/0"]',
        ),
    }
