"""`copier update` from one release to the next keeps the team's work.

A throw-away git copy of this template gets three commits:

* v0.1.0: this working tree, as it is;
* v0.2.0: a release with a real change: the question `labels` is renamed
  `deployment_tags` (with the `_migrations` entry that rewrites the answer via
  hooks/migrations/rename_answer.py), the Makefile and README templates change,
  the example flows change and a new file UPGRADING.md appears;
* HEAD: one more, untagged, commit that touches .gitignore.

Each preset is copied at v0.1.0, committed, edited the way a team would (a new
flow, an edited flow, a deleted example flow, a tuned tfvars value, a note in
the Makefile, a rewritten README) and updated.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from support.answers import REPO, presets
from support.answers import recorded_answers as _answers
from support.rendering import isolate_copier_settings, render_template, update_project
from support.snapshot import GIT_IDENTITY, copy_template, git

PRESETS = sorted(presets())
OLD_QUESTION, NEW_QUESTION = "labels", "deployment_tags"
RELEASE_MARKER = "# Release 0.2.0 of the template"
HEAD_MARKER = "# Unreleased change of the template"
EXAMPLE_CHANGE = "# Example flow as shipped in 0.2.0"
MIGRATION = f"""_migrations:
  - version: "0.2.0"
    when: "{{{{ _stage == 'before' }}}}"
    command:
      - "{{{{ _copier_python }}}}"
      - "{{{{ _copier_conf.src_path }}}}/hooks/migrations/rename_answer.py"
      - "{{{{ _copier_conf.answers_file }}}}"
      - {OLD_QUESTION}
      - {NEW_QUESTION}
"""
JINJA_SPAN = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
OLD_NAME = re.compile(rf"(?<![.\w]){OLD_QUESTION}\b")


def rename_in_jinja(text: str) -> tuple[str, int]:
    """Rename the question where Jinja reads it; literal text stays as it is."""
    count = 0

    def rename(span: re.Match[str]) -> str:
        nonlocal count
        renamed, hits = OLD_NAME.subn(NEW_QUESTION, span.group(0))
        count += hits
        return renamed

    return JINJA_SPAN.sub(rename, text), count


def _append(path: Path, line: str) -> None:
    text = path.read_text()
    path.write_text(text + ("" if text.endswith("\n") else "\n") + line + "\n")


def _release_0_2_0(repo: Path) -> None:
    config = repo / "copier.yml"
    text, hits = rename_in_jinja(config.read_text())
    text = re.sub(rf"^{OLD_QUESTION}:", f"{NEW_QUESTION}:", text, count=1, flags=re.MULTILINE)
    text, migrations = re.subn(r"^_migrations:.*$", MIGRATION.rstrip(), text, count=1, flags=re.MULTILINE)
    assert migrations == 1 and hits, "copier.yml changed shape: update _release_0_2_0"
    config.write_text(text)
    renamed = 0
    for path in sorted((repo / "template").rglob("*")):
        assert OLD_QUESTION not in path.name, f"{path}: rename the path too"
        if path.is_file():
            text, hits = rename_in_jinja(path.read_text())
            if hits:
                path.write_text(text)
                renamed += hits
    assert renamed, f"no template reads {OLD_QUESTION}: pick another question to rename"
    for preset in (repo / "presets").glob("*.yml"):
        preset.write_text(re.sub(rf"^{OLD_QUESTION}:", f"{NEW_QUESTION}:", preset.read_text(), flags=re.M))
    _append(repo / "template" / "Makefile.jinja", RELEASE_MARKER)
    _append(repo / "template" / "README.md.jinja", RELEASE_MARKER)
    (repo / "template" / "UPGRADING.md").write_text("# Upgrading\n\nRelease 0.2.0 renamed `labels`.\n")
    flows = list((repo / "template" / "src").glob("*/flows/*.py*"))
    assert flows, "no example flows in the template"
    for flow in flows:
        if "__init__" not in flow.name:
            _append(flow, EXAMPLE_CHANGE)


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("update")
    isolate_copier_settings(root)
    repo = copy_template(root / "template")
    git(repo, "init", "--quiet")
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", "Release 0.1.0")
    git(repo, "tag", "v0.1.0")
    _release_0_2_0(repo)
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", "Release 0.2.0: labels -> deployment_tags")
    git(repo, "tag", "v0.2.0")
    _append(repo / "template" / ".gitignore", HEAD_MARKER)
    git(repo, "commit", "--quiet", "-am", "Unreleased change")
    return repo


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    # Copier commits in its scratch copies during an update.
    for name, value in GIT_IDENTITY.items():
        monkeypatch.setenv(name, value)


def _copy_at_first_release(template_repo: Path, preset: str, destination: Path) -> Path:
    answers = {**presets()[preset], "project_name": f"Team {preset}"}
    render_template(answers, destination, src=template_repo, vcs_ref="v0.1.0")
    assert (destination / ".git").is_dir(), "the copy task did not create a git repository"
    _commit(destination, "Copy of the template at v0.1.0")
    return destination


def _commit(project: Path, message: str) -> None:
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--allow-empty", "-m", message)


def _update(project: Path, vcs_ref: str, **answers: object) -> None:
    update_project(project, vcs_ref, answers)


def _changed(project: Path) -> set[str]:
    return {line[3:] for line in git(project, "status", "--porcelain", "--untracked-files=all").splitlines()}


class TeamEdits:
    """What a team does to its project between two template releases."""

    NEW_FLOW = 'from prefect import flow\n\n\n@flow\ndef our_flow() -> str:\n    return "ours"\n'
    FLOW_EDIT = '\n\ndef our_helper() -> str:\n    return "edited"\n'
    MAKEFILE_NOTE = "# Team note: deploy only after the Monday review."
    README = "# Our pipelines\n\nWe rewrote this README.\n"
    RETENTION = 3653

    def __init__(self, project: Path) -> None:
        answers = _answers(project)
        self.project = project
        self.flows = project / "src" / answers["package_name"] / "flows"
        examples = sorted(path for path in self.flows.glob("*.py") if path.name != "__init__.py")
        assert len(examples) >= 2, "expected two example flows"
        self.edited_flow, self.deleted_flow = examples[0], examples[1]
        self.tfvars = project / "infra" / "envs" / answers["environments"][0] / "terraform.tfvars"

    def apply(self) -> None:
        (self.flows / "our_flow.py").write_text(self.NEW_FLOW)
        _append(self.edited_flow, self.FLOW_EDIT)
        self.edited_text = self.edited_flow.read_text()
        self.deleted_flow.unlink()
        text, hits = re.subn(
            r"^log_retention_days\s*=\s*\d+",
            f"log_retention_days = {self.RETENTION}",
            self.tfvars.read_text(),
            flags=re.M,
        )
        assert hits == 1, f"{self.tfvars} has no log_retention_days line to tune"
        self.tfvars.write_text(text)
        # Beside lines no answer changes: a note next to one (the header lists the
        # environments) rightly conflicts when that answer changes.
        makefile = self.project / "Makefile"
        note = rf"\1{self.MAKEFILE_NOTE}\n"
        text, hits = re.subn(r"^(SHELL :=.*\n)", note, makefile.read_text(), flags=re.M)
        assert hits == 1, "the Makefile has no SHELL line to put the team's note under"
        makefile.write_text(text)
        (self.project / "README.md").write_text(self.README)
        _commit(self.project, "Team edits")

    def assert_intact(self) -> None:
        assert (self.flows / "our_flow.py").read_text() == self.NEW_FLOW
        assert self.edited_flow.read_text() == self.edited_text, "the edited flow changed"
        assert not self.deleted_flow.exists(), "a deleted example flow came back"
        assert f"log_retention_days = {self.RETENTION}\n" in self.tfvars.read_text()
        assert self.MAKEFILE_NOTE in (self.project / "Makefile").read_text()
        assert (self.project / "README.md").read_text() == self.README


def _assert_clean_merge(project: Path) -> None:
    problems = []
    for path in project.rglob("*"):
        if ".git" in path.relative_to(project).parts or not path.is_file():
            continue
        if path.suffix == ".rej":
            problems.append(f"{path.relative_to(project)}: rejected hunk")
        elif re.search(r"^(<<<<<<<|>>>>>>>) ", path.read_text(errors="replace"), re.M):
            problems.append(f"{path.relative_to(project)}: conflict markers")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("preset", PRESETS)
def test_update_to_next_release_keeps_team_edits(template_repo: Path, preset: str, tmp_path: Path) -> None:
    project = _copy_at_first_release(template_repo, preset, tmp_path / "project")
    old_tags = _answers(project)[OLD_QUESTION]
    assert old_tags == presets()[preset][OLD_QUESTION]
    edits = TeamEdits(project)
    edits.apply()

    _update(project, "v0.2.0")

    _assert_clean_merge(project)
    edits.assert_intact()
    answers = _answers(project)
    assert answers["_commit"] == "v0.2.0"
    assert OLD_QUESTION not in answers, "the migration left the old answer behind"
    assert answers[NEW_QUESTION] == old_tags, "the team's answer was not carried to the renamed question"
    assert (project / "UPGRADING.md").is_file()
    assert (project / "Makefile").read_text().rstrip().endswith(RELEASE_MARKER)
    assert EXAMPLE_CHANGE not in edits.edited_flow.read_text(), "the update rewrote a team-owned flow"
    # Nothing else moved: the renamed question rendered exactly what the old one did.
    assert _changed(project) == {".copier-answers.yml", "Makefile", "UPGRADING.md"}

    _commit(project, "Update to v0.2.0")
    _update(project, "v0.2.0")
    assert _changed(project) == set(), "a second update is not a no-op"


def test_update_to_unreleased_head_adding_an_environment(template_repo: Path, tmp_path: Path) -> None:
    """Skip a release, land on an untagged commit and change an answer in the same update."""
    project = _copy_at_first_release(template_repo, "spot-batch", tmp_path / "project")
    assert not (project / "infra" / "envs" / "staging").exists()
    edits = TeamEdits(project)
    edits.apply()

    _update(project, "HEAD", environments=["dev", "staging", "prod"])

    _assert_clean_merge(project)
    edits.assert_intact()
    answers = _answers(project)
    assert answers["_commit"].startswith("v0.2.0-1-g"), answers["_commit"]
    assert answers[NEW_QUESTION] == presets()["spot-batch"][OLD_QUESTION]
    assert answers["environments"] == ["dev", "staging", "prod"]
    assert (project / ".gitignore").read_text().rstrip().endswith(HEAD_MARKER)
    assert (project / "UPGRADING.md").is_file()
    changed = _changed(project)
    new_root = {path for path in changed if path.startswith("infra/envs/staging/")}
    assert "infra/envs/staging/main.tf" in new_root and "infra/envs/staging/terraform.tfvars" in new_root
    # Whatever else the new environment touches (CI matrix, README of the envs), the
    # team's files and the other environments' roots are not among it.
    assert not {path for path in changed if path.startswith(("infra/envs/dev/", "infra/envs/prod/", "src/"))}


def test_fresh_copy_of_new_release_matches_updated_project(template_repo: Path, tmp_path: Path) -> None:
    """The update's result is what a team starting at v0.2.0 gets (team files aside)."""
    updated = _copy_at_first_release(template_repo, "spot-batch", tmp_path / "updated")
    _update(updated, "v0.2.0")
    answers = {**presets()["spot-batch"], "project_name": "Team spot-batch"}
    answers[NEW_QUESTION] = answers.pop(OLD_QUESTION)
    fresh = tmp_path / "fresh"
    render_template(answers, fresh, src=template_repo, vcs_ref="v0.2.0")
    # README.md is skipped if it exists; the example flows and their tests are
    # copy-only: the project keeps its v0.1.0 examples.
    team_owned = {"README.md", "tests/test_etl.py", "tests/test_leaderboard.py"}
    assert _answers(updated) == _answers(fresh)
    differences = []
    for path in sorted(fresh.rglob("*")):
        relative = path.relative_to(fresh)
        if ".git" in relative.parts or not path.is_file() or relative.as_posix() in team_owned:
            continue
        if relative.parent.name == "flows" or relative.name == ".copier-answers.yml":
            continue
        other = updated / relative
        if not other.is_file():
            differences.append(f"{relative}: missing after the update")
        elif other.read_text() != path.read_text():
            differences.append(f"{relative}: differs")
    assert not differences, "\n".join(differences)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({"_commit": "v1", "labels": ["a"], "x": 1}, {"_commit": "v1", "deployment_tags": ["a"], "x": 1}),
        ({"labels": ["a"], "deployment_tags": ["b"]}, {"deployment_tags": ["b"]}),
        ({"x": 1}, {"x": 1}),
    ],
)
def test_rename_answer_script(before: dict, after: dict, tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(REPO / "hooks" / "migrations"))
    from rename_answer import rename_answer

    answers_file = tmp_path / ".copier-answers.yml"
    header = "# Changes here will be overwritten by Copier; NEVER EDIT MANUALLY\n"
    answers_file.write_text(header + yaml.safe_dump(before, sort_keys=False))
    changed = rename_answer(answers_file, "labels", "deployment_tags")
    assert changed == ("labels" in before)
    assert yaml.safe_load(answers_file.read_text()) == after
    assert list(yaml.safe_load(answers_file.read_text())) == list(after), "key order changed"
    assert answers_file.read_text().startswith(header)


def test_copy_task_does_not_nest_a_repository(template_repo: Path, tmp_path: Path) -> None:
    """Rendered inside a monorepo, the project stays part of it (no nested .git)."""
    monorepo = tmp_path / "monorepo"
    monorepo.mkdir()
    git(monorepo, "init", "--quiet")
    project = monorepo / "pipelines"
    render_template({}, project, src=template_repo, vcs_ref="v0.1.0")
    assert (project / ".copier-answers.yml").is_file()
    assert not (project / ".git").exists()


def test_example_flows_and_their_tests_are_copy_only() -> None:
    """The `_exclude` rule for updates names each example flow's test (static check)."""
    from support.answers import copier_config

    rules = "\n".join(rule for rule in copier_config()["_exclude"] if "_copier_operation" in rule)
    assert "src/{{ package_name }}/flows" in rules
    examples = (REPO / "template" / "src").glob("*/flows/*.py*")
    flows = [flow for flow in examples if "__init__" not in flow.name]
    assert flows
    for flow in flows:
        # A conditional example ("{% if dask_cluster %}primes.py{% endif %}.jinja") renders as its inner name.
        name = re.sub(r"\{%.*?%\}", "", flow.name)
        test_file = f"tests/test_{name.removesuffix('.jinja').removesuffix('.py')}.py"
        assert test_file in rules.split(), f"{test_file} tests an example flow but is rewritten by updates"
