"""`copier update` from the first release to HEAD never makes Terraform destroy a team's infrastructure.

For each answer set in FIRST_RELEASE_ANSWERS, on one emulator for the module:

1. a throw-away clone of this repository tags the first release commit
   (FIRST_RELEASE) `v0.1.0` and commits the working tree on top (uncommitted
   changes included, as the other tests render `vcs_ref="HEAD"`);
2. the project is copied at v0.1.0, every root (env roots, S3 state
   bootstrap) is applied on moto and the project is committed;
3. `copier update` to HEAD, `terraform init`, `terraform plan -out`, and
   `terraform show -json` of the plan must list no `delete` action: no
   destroy and no replace (`["delete", "create"]` / `["create", "delete"]`).
   Creates, in-place updates and no-ops are fine.

The only exceptions are in ALLOWED_DESTROYS, each listed in CHANGELOG.md
as a breaking change with its migration (docs/updating.md, "Upgrades never
destroy infrastructure"). The checker itself is tested on the applied default
stack: renaming the ECS cluster resource without a `moved` block must be seen
as a delete, and with one must not. Finally everything is destroyed with the
updated configuration; only the state bucket and the user's VPC, which outlive
a destroy by design, may be left.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import emulator
import pytest
from pipeline import EmulatedProject, create_existing_network
from stacks import EmulatedStack, parallel
from support.answers import REPO, recorded_answers
from support.rendering import isolate_copier_settings, render_template, update_project
from support.snapshot import GIT_IDENTITY, copy_template, git
from support.tools import binary_missing, require

# Its own group: xdist may run it beside test_emulated_stack.py (group "e2e").
pytestmark = pytest.mark.xdist_group("e2e-upgrade")

FIRST_RELEASE = "7eec28e"
FIRST_RELEASE_TAG = "v0.1.0"

# Answers as a team gave them at v0.1.0 (frozen: tests/support/answer_sets.py follows
# HEAD's questions; a renamed question reaches these through `_migrations`).
FIRST_RELEASE_ANSWERS: dict[str, dict[str, Any]] = {
    "default": {},
    "server-s3-existing-vpc": {
        "project_name": "Event Ingest",
        "prefect_backend": "server",
        "code_storage": "s3",
        "terraform_backend": "s3",
        "network_mode": "existing_vpc",
        "ci_provider": "none",  # the default set's env creates the account's GitHub OIDC provider
        "environments": ["dev", "prod"],
        "aws_region": "eu-central-1",
    },
}

# The one place that allows an upgrade to destroy or replace a resource:
# resource address (fnmatch pattern, as `terraform show -json` spells it) ->
# the CHANGELOG.md release that lists it under "### Breaking" with the
# migration that handles it. Empty: no release has needed one.
ALLOWED_DESTROYS: dict[str, str] = {}

# Resource types AWS cannot update in place, whose replacement IS the update:
# a changed ECS task definition registers a new revision, the service rolls onto
# it and the old revision is deregistered; no running task, data or name is lost.
# Only a replace (create + delete) is allowed for these, never a plain delete.
REPLACED_ON_EVERY_CHANGE = {"aws_ecs_task_definition"}

CHECKER_ENV = "dev"
COPIER_LOCK = threading.Lock()


def destroyed_resources(plan: dict[str, Any]) -> list[str]:
    """Addresses a plan deletes (alone or as part of a replace) that ALLOWED_DESTROYS does not allow."""
    return sorted(
        f"{change['address']} {'/'.join(change['change']['actions'])}"
        for change in plan.get("resource_changes", [])
        if "delete" in change["change"]["actions"]
        and not any(fnmatchcase(change["address"], pattern) for pattern in ALLOWED_DESTROYS)
        and not (change["type"] in REPLACED_ON_EVERY_CHANGE and "create" in change["change"]["actions"])
    )


def template_at_first_release_and_head(root: Path) -> Path:
    """Clone this repository, tag FIRST_RELEASE v0.1.0 and commit the working tree as HEAD."""
    require(binary_missing("git"))
    try:
        git(REPO, "rev-parse", "--git-dir")
    except subprocess.CalledProcessError:
        pytest.skip(f"{REPO} is not a git checkout: the first release commit is not available")
    clone = root / "template"
    git(root, "clone", "--quiet", "--no-tags", "--no-checkout", str(REPO), str(clone))
    try:
        git(clone, "tag", FIRST_RELEASE_TAG, f"{FIRST_RELEASE}^{{commit}}")
    except subprocess.CalledProcessError as error:
        pytest.fail(
            f"commit {FIRST_RELEASE} (the first release) is not in the history of {REPO}: "
            f"fetch the full history (git fetch --unshallow)\n{error.stderr}"
        )
    # --no-checkout leaves the index empty: the commit holds exactly the working tree.
    copy_template(clone)
    git(clone, "add", "--all")
    git(clone, "commit", "--quiet", "--allow-empty", "-m", "HEAD: this working tree")
    return clone


def _commit(project: Path, message: str) -> None:
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--allow-empty", "-m", message)


def _assert_clean_merge(project: Path) -> None:
    problems = [
        str(path.relative_to(project))
        for path in project.rglob("*")
        if path.is_file()
        and ".git" not in path.relative_to(project).parts
        and ".terraform" not in path.relative_to(project).parts
        and (
            path.suffix == ".rej" or re.search(r"^(<<<<<<<|>>>>>>>) ", path.read_text(errors="replace"), re.M)
        )
    ]
    assert not problems, f"copier update left conflicts in {problems}"


@dataclass
class Upgrade:
    """One answer set's project: applied at v0.1.0, updated to HEAD, and the plans of its roots."""

    stack: EmulatedStack
    survivors: set[str] = field(default_factory=set)
    plans: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def project(self) -> EmulatedProject:
        return self.stack.project

    def prepare(self) -> None:
        """What exists before the first apply and outlives `destroy` by design: state bucket, user's VPC."""
        project = self.project
        if project.uses_s3_backend:
            self.survivors.add(f"s3-bucket:{project.bootstrap()}")
        if project.answers.get("network_mode") == "existing_vpc":
            network = create_existing_network(self.stack.server, project.region)
            self.survivors |= {f"vpc:{network['vpc_id']}"} | {f"subnet:{i}" for i in network["subnet_ids"]}
            for env in project.environments:
                project.fill_tfvars(env, **network)

    def apply(self, env: str) -> None:
        self.project.init(env)
        self.stack.outputs[env] = self.project.apply(env)

    def update(self) -> None:
        """Commit the applied project and `copier update` it to HEAD, as a team would."""
        project = self.project.project
        git(project, "init", "--quiet")
        _commit(project, f"Project at {FIRST_RELEASE_TAG}, applied")
        with COPIER_LOCK:  # Copier changes the working directory while it renders
            update_project(project, "HEAD")
        _assert_clean_merge(project)
        _commit(project, "copier update to HEAD")

    def plan(self, root: str) -> None:
        if root == "bootstrap":
            self.plans[root] = self.project.bootstrap_planned_changes()
        else:
            self.project.init(root)
            self.plans[root] = self.project.planned_changes(root)

    def run(self) -> None:
        """Prepare, apply every env root, update, plan every root: the env roots in parallel."""
        self.prepare()
        envs = self.project.environments
        parallel(self.apply, envs)
        self.update()
        parallel(self.plan, envs + (["bootstrap"] if self.project.uses_s3_backend else []))


@dataclass
class Upgrades:
    server: emulator.MotoServer
    by_name: dict[str, Upgrade]
    baseline: set[str]

    def inventory(self) -> set[str]:
        regions = {upgrade.project.region for upgrade in self.by_name.values()}
        return set().union(*(emulator.inventory(self.server, region) for region in regions))


def _copy_at_first_release(template: Path, name: str, workdir: Path) -> Path:
    rendered = workdir / "render"
    render_template(FIRST_RELEASE_ANSWERS[name], rendered, src=template, vcs_ref=FIRST_RELEASE_TAG)
    answers = recorded_answers(rendered)
    assert answers["_commit"] == FIRST_RELEASE_TAG, answers["_commit"]
    return rendered


@pytest.fixture(scope="module")
def upgrades(tf_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upgrades]:
    """Every answer set applied at v0.1.0, updated to HEAD and planned, on one emulator; in parallel."""
    root = tmp_path_factory.mktemp("upgrade")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in GIT_IDENTITY.items():
            patch.setenv(name, value)  # git in the clone, the projects and Copier's scratch copies
        isolate_copier_settings(root)
        template = template_at_first_release_and_head(root)
        server = emulator.MotoServer(root / "moto").start()
        try:
            by_name = {}
            for name in FIRST_RELEASE_ANSWERS:
                rendered = _copy_at_first_release(template, name, root / name)
                project = EmulatedProject(rendered, root / name, server, tf_env)
                by_name[name] = Upgrade(EmulatedStack(name=name, project=project, server=server))
            upgrades = Upgrades(server, by_name, set())
            upgrades.baseline = upgrades.inventory()
            parallel(lambda name: by_name[name].run(), sorted(by_name))
            upgrades.baseline |= set().union(*(upgrade.survivors for upgrade in by_name.values()))
            yield upgrades
        finally:
            server.stop()


@pytest.mark.e2e
@pytest.mark.parametrize("name", sorted(FIRST_RELEASE_ANSWERS))
def test_update_from_first_release_destroys_nothing(upgrades: Upgrades, name: str) -> None:
    upgrade = upgrades.by_name[name]
    answers = recorded_answers(upgrade.project.project)
    assert answers["_commit"].startswith(f"{FIRST_RELEASE_TAG}-"), answers["_commit"]
    assert set(upgrade.plans) >= set(upgrade.project.environments)
    destroyed = {root: destroyed_resources(plan) for root, plan in upgrade.plans.items()}
    destroyed = {root: addresses for root, addresses in destroyed.items() if addresses}
    assert not destroyed, (
        "copier update from v0.1.0 to HEAD makes terraform destroy or replace (add a `moved` block, "
        "or list the address in ALLOWED_DESTROYS and as a breaking change in CHANGELOG.md):\n"
        + "\n".join(f"{root}: {address}" for root, addresses in destroyed.items() for address in addresses)
    )


def _rename_resource(directory: Path, resource_type: str, old: str, new: str) -> None:
    """Rename a resource and every reference to it in its module, as a careless release would."""
    for path in directory.glob("*.tf"):
        text = re.sub(
            rf'^(resource\s+"{resource_type}"\s+)"{old}"', rf'\1"{new}"', path.read_text(), flags=re.M
        )
        path.write_text(re.sub(rf"\b{resource_type}\.{old}\b", f"{resource_type}.{new}", text))


@pytest.mark.e2e
@pytest.mark.parametrize("with_moved_block", [False, True], ids=["rename-without-moved", "rename-with-moved"])
def test_check_sees_a_rename_unless_a_moved_block_follows_it(
    upgrades: Upgrades, with_moved_block: bool
) -> None:
    """The checker is not blind: renaming the ECS cluster resource is a delete, its `moved` block undoes it.

    HEAD ships no `moved` block yet, so the test adds a synthetic one to the
    updated default project (and takes it away again).
    """
    project = upgrades.by_name["default"].project
    resource_type = "aws_ecs_cluster"
    declaring = re.compile(rf'^resource\s+"{resource_type}"\s+"(\w+)"', re.M)
    sources = [
        path
        for path in (project.project / "infra").rglob("*.tf")
        if ".terraform" not in path.parts and declaring.search(path.read_text())
    ]
    assert sources, f"no {resource_type} resource in the project"
    source = sorted(sources)[0]
    directory, old = source.parent, declaring.search(source.read_text()).group(1)
    new = f"{old}_renamed"
    originals = {path: path.read_text() for path in directory.glob("*.tf")}
    moved_file = directory / "zz_moved_by_test.tf"
    try:
        _rename_resource(directory, resource_type, old, new)
        if with_moved_block:
            moved_file.write_text(
                f"moved {{\n  from = {resource_type}.{old}\n  to   = {resource_type}.{new}\n}}\n"
            )
        # The state is what v0.1.0 applied; refreshing it would not change the addresses.
        plan = project.planned_changes(CHECKER_ENV, "-refresh=false")
    finally:
        moved_file.unlink(missing_ok=True)
        for path, text in originals.items():
            path.write_text(text)
    destroyed = destroyed_resources(plan)
    new_address = re.compile(rf"(^|\.){resource_type}\.{new}(\[[^\]]*\])?$")
    renamed = [change for change in plan["resource_changes"] if new_address.search(change["address"])]
    assert renamed, [change["address"] for change in plan["resource_changes"]]
    for change in renamed:
        old_address = change["address"].replace(f"{resource_type}.{new}", f"{resource_type}.{old}")
        if with_moved_block:
            assert change.get("previous_address") == old_address, change
            assert "delete" not in change["change"]["actions"], change
        else:
            assert old_address in {entry.split()[0] for entry in destroyed}, destroyed
            assert change["change"]["actions"] == ["create"], change
    if with_moved_block:
        assert not destroyed, destroyed


def test_allowed_destroys_are_breaking_changes_in_changelog() -> None:
    """Every exception names its address under a "### Breaking" heading of its CHANGELOG release."""
    changelog = (REPO / "CHANGELOG.md").read_text()
    releases = dict(re.findall(r"^## \[([^\]]+)\][^\n]*\n(.*?)(?=^## \[|\Z)", changelog, re.M | re.S))
    assert "Unreleased" in releases and FIRST_RELEASE_TAG.removeprefix("v") in releases, sorted(releases)
    for pattern, release in ALLOWED_DESTROYS.items():
        assert release in releases, f"{pattern}: CHANGELOG.md has no release [{release}]"
        breaking = re.search(r"^### Breaking\n(.*?)(?=^##|\Z)", releases[release], re.M | re.S)
        assert breaking and f"`{pattern}`" in breaking.group(1), (
            f'{pattern}: list it under "### Breaking" of [{release}] in CHANGELOG.md, with its migration'
        )


@pytest.mark.e2e
def test_destroy_after_the_update_leaves_nothing(upgrades: Upgrades) -> None:
    """Destroy every env root with the updated configuration; the account is back to its baseline."""
    stacks = {name: upgrade.stack for name, upgrade in upgrades.by_name.items()}
    parallel(lambda name: stacks[name].destroy(), sorted(stacks))
    left = upgrades.inventory() - upgrades.baseline
    assert not left, "destroy left resources behind:\n" + "\n".join(sorted(left))
