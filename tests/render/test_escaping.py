"""Free-text answers keep their literal meaning in every rendered file.

The project is rendered with answers full of quotes, backslashes, newlines and
the template markers of HCL (`${`, `%{`), Jinja/Prefect (`{{`) and GitHub
(`${{`). Every rendered file is then read with the parser of its format; any
parsed string that holds part of an answer must hold all of it, unchanged.
The files are found by extension, so new template files are covered as soon
as they exist.
"""

from __future__ import annotations

import ast
import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from support.answers import recorded_answers
from support.hcl import loads
from support.prefect_checks import load_prefect_yaml

# Each value starts with a marker and ends with a second one, so a line that
# holds the first marker but not the second shows a newline that got through.
HOSTILE_ANSWERS: dict[str, str] = {
    "project_name": 'NAMESTART Ana\'s "Best" ${Pipeline} \\ 50%\n{{ x }} %{ if y } NAMEEND',
    "description": (
        "DESCSTART Say \"hi\" \\ back\\slash 'single' # no comment: colon\n"
        "${var.x} %{ if y }z%{ endif } {{ z }} {% raw %} ${{ github.token }}\t€ DESCEND"
    ),
    # owner is an AWS tag value by design: only its legal punctuation.
    "owner": "OWNERSTART Data/ETL @team=1+2:x. OWNEREND",
}
MARKERS = {name: (value.split()[0], value.split()[-1]) for name, value in HOSTILE_ANSWERS.items()}

SHAPES: dict[str, dict] = {
    "default": {},
    "everything-on": {
        "environments": ["dev", "staging", "prod"],
        "prefect_backend": "server",
        "code_storage": "s3",
        "terraform_backend": "s3",
        "network_mode": "existing_vpc",
        "ci_provider": "github",
    },
}
SKIPPED_DIRS = {".git", ".terraform", "__pycache__", ".venv"}


@pytest.fixture(scope="module", params=sorted(SHAPES))
def hostile_project(request: pytest.FixtureRequest, render) -> Path:
    return render({**HOSTILE_ANSWERS, **SHAPES[request.param]})


def _files(project: Path) -> list[Path]:
    return [
        path
        for path in sorted(project.rglob("*"))
        if path.is_file() and not SKIPPED_DIRS.intersection(path.relative_to(project).parts)
    ]


def _walk(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(key)
            yield from _walk(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _walk(item)


_HCL_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def hcl_literal(raw: str) -> str:
    """The value of a quoted HCL string as python-hcl2 returns it (quotes and escapes kept).

    A bare `${` or `%{` is an interpolation or directive, not text: it decodes
    to a visible "<interpolation>" so that it can never match the answer.
    """
    if not (len(raw) >= 2 and raw[0] == raw[-1] == '"'):
        return raw
    body, out, index = raw[1:-1], [], 0
    while index < len(body):
        char = body[index]
        if char == "\\":
            code = body[index + 1]
            if code in _HCL_ESCAPES:
                out.append(_HCL_ESCAPES[code])
                index += 2
            elif code in "uU":
                width = 4 if code == "u" else 8
                out.append(chr(int(body[index + 2 : index + 2 + width], 16)))
                index += 2 + width
            else:
                raise ValueError(f"unknown HCL escape \\{code} in {raw}")
        elif body.startswith(("$${", "%%{"), index):
            out.append(body[index] + "{")
            index += 3
        elif body.startswith(("${", "%{"), index):
            out.append("<interpolation>")
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


def parsed_strings(path: Path) -> list[str] | None:
    """Every string value (and key) of the file, or None for a format we don't parse."""
    text = path.read_text()
    suffix = path.suffix
    if suffix in {".tf", ".tfvars"}:
        return [hcl_literal(item) for item in _walk(loads(text))]
    if suffix in {".yml", ".yaml"}:
        return list(_walk(list(yaml.safe_load_all(text))))
    if suffix == ".toml":
        return list(_walk(tomllib.loads(text)))
    if suffix == ".json":
        return list(_walk(json.loads(text)))
    if suffix == ".py":
        tree = ast.parse(text)
        return [
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        ]
    return None


def markdown_unescaped(line: str) -> str:
    return re.sub(r"\\(.)", r"\1", line)


def test_hostile_answers_are_legal(hostile_project: Path) -> None:
    recorded = recorded_answers(hostile_project)
    for name, value in HOSTILE_ANSWERS.items():
        assert recorded[name] == value, f"the answers file changed {name}"


def _split_lines(text: str, name: str) -> list[int]:
    """Lines that hold the start of an answer but not its end: a raw newline got through."""
    start, end = MARKERS[name]
    return [number for number, line in enumerate(text.splitlines(), 1) if start in line and end not in line]


def test_answers_round_trip_through_every_parser(hostile_project: Path) -> None:
    problems, checked = [], set()
    for path in _files(hostile_project):
        relative = path.relative_to(hostile_project)
        text = path.read_text(errors="replace")
        present = [name for name, (start, _) in MARKERS.items() if start in text]
        if not present:
            continue
        try:
            strings = parsed_strings(path)
        except Exception as error:  # each parser raises its own type
            problems.append(f"{relative}: no longer parses: {type(error).__name__}: {error}")
            continue
        for name in present:
            start, _ = MARKERS[name]
            value = HOSTILE_ANSWERS[name]
            if path.suffix == ".md":
                one_line = " ".join(value.split())
                lines = [markdown_unescaped(line) for line in text.splitlines() if start in line]
                if not lines or not all(one_line in line for line in lines):
                    problems.append(f"{relative}: {name} does not read literally: {lines}")
                checked.add(".md")
                continue
            if strings is None:
                lines = [line for line in text.splitlines() if start in line]
                if not all(line.lstrip().startswith("#") for line in lines) or _split_lines(text, name):
                    problems.append(f"{relative}: {name} written into a format without an escaping filter")
                continue
            holders = [string for string in strings if start in string]
            if not holders and (split := _split_lines(text, name)):
                # In a comment (no parsed value holds it): a raw newline ends the comment.
                problems.append(f"{relative}:{split}: a newline of {name} escapes its comment")
            for string in holders:
                if value not in string:
                    problems.append(f"{relative}: {name} altered: {string!r}")
                elif path.parts[-3:-1] == (".github", "workflows") and "${{" in value and "${{" in string:
                    problems.append(f"{relative}: {name} reaches GitHub expression syntax unescaped")
            if holders:
                checked.add(path.suffix)
    assert not problems, "\n".join(problems)
    # The owner tag reaches HCL, the description pyproject.toml, the name the README.
    assert {".yml", ".md", ".tf", ".toml"} <= checked, f"the answers reached only {sorted(checked)}"


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ('"a \\"b\\" \\\\ c\\nd"', 'a "b" \\ c\nd'),
        ('"$${x} %%{y}"', "${x} %{y}"),
        ('"${x}"', "<interpolation>x}"),
        ('"\\u00e9"', "é"),
        ("var.x", "var.x"),
    ],
)
def test_hcl_literal_decoder(raw: str, value: str) -> None:
    assert hcl_literal(raw) == value


def test_filters_round_trip_each_format() -> None:
    """The filters themselves, on every hostile value, without a render."""
    from extensions import hcl_string, json_string, markdown_text, python_string

    for value in HOSTILE_ANSWERS.values():
        assert hcl_literal(loads(f"x = {hcl_string(value)}\n")["x"]) == value
        assert yaml.safe_load(f"x: {json_string(value)}\n")["x"] == value
        assert tomllib.loads(f"x = {json_string(value)}\n")["x"] == value
        assert json.loads(json_string(value)) == value
        assert ast.literal_eval(python_string(value)) == value
        assert "\n" not in markdown_text(value)
        assert markdown_unescaped(markdown_text(value)) == " ".join(value.split())


# Prefect tags in common conventions, and the punctuation its schemas allow
# (issue 12: they were refused although yaml_string escapes them).
ACCEPTED_LABELS = [
    "team:web",
    "env:prod",
    'say "hi", then {{ leave }} ${x} %{ y } # not a comment',
    "owner=data/etl",
    "x" * 100,
    "équipe-données",
]


def test_labels_prefect_accepts_reach_every_deployment_unchanged(render) -> None:
    from prefect.cli.deploy._models import PrefectYamlModel

    project = render({"labels": ACCEPTED_LABELS, "code_storage": "s3"})
    config = load_prefect_yaml(project)
    model = PrefectYamlModel.model_validate(config)
    for deployment in model.deployments:
        assert deployment.tags[: len(ACCEPTED_LABELS)] == ACCEPTED_LABELS, deployment.name
