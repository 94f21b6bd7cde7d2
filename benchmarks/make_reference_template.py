"""Write a plain-Jinja Copier template of this template's size into a folder.

render_speed.py generates it into a temporary folder and renders it next to
this template with the same Copier in the same run; their ratio is this
template's own overhead. Nothing of it is committed: it is sized from
template/'s .jinja bytes at every run. It matches this
template's shape, not its content: ~30 questions with inline validators,
~80 source files (~55 of them .jinja), ~20 folders, Jinja in a few folder
names (a package folder, a conditional folder), and as many bytes of .jinja
as template/ has today (the repeated sections scale with it). Plain Jinja
only: no extensions, no hooks, no `_tasks`. To look at one:

    .venv/bin/python benchmarks/make_reference_template.py /tmp/reference-template
"""

from __future__ import annotations

import sys
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1] / "template"
# .jinja bytes the generator writes at SCALE 1.0.
BASE_JINJA_BYTES = 86_631


def jinja_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*.jinja") if path.is_file())


SCALE = jinja_bytes(TEMPLATE) / BASE_JINJA_BYTES


def scaled(count: int) -> int:
    return max(1, round(count * SCALE))


QUESTIONS = {
    "project_name": ("str", "Reference Project"),
    "project_slug": ("str", "{{ project_name | lower | replace(' ', '-') }}"),
    "package_name": ("str", "{{ project_slug | replace('-', '_') }}"),
    "description": ("str", "A reference project"),
    "author": ("str", "Someone"),
    "email": ("str", "someone@example.com"),
    "python_version": ("str", "3.12"),
    "license": ("str", "MIT"),
    "with_docs": ("bool", True),
    "with_ci": ("bool", True),
    "with_docker": ("bool", True),
    "region": ("str", "eu-west-1"),
    "environments": ("yaml", "[dev, prod]"),
    "cpu": ("int", 256),
    "memory": ("int", 512),
    "retention": ("int", 30),
    "owner": ("str", "platform"),
    "bucket_prefix": ("str", "{{ project_slug }}-data"),
    "log_level": ("str", "INFO"),
    "timeout": ("int", 300),
    "retries": ("int", 2),
    "schedule": ("str", "0 3 * * *"),
    "tags": ("yaml", "[reference, benchmark]"),
    "line_length": ("int", 100),
    "min_coverage": ("int", 80),
    "registry": ("str", "ghcr.io"),
    "image_name": ("str", "{{ project_slug }}"),
    "state_bucket": ("str", "{{ project_slug }}-tfstate"),
    "alarm_email": ("str", "{{ email }}"),
    "version": ("str", "0.1.0"),
}


def copier_yml() -> str:
    lines = ["_subdirectory: template", "_templates_suffix: .jinja", ""]
    for name, (kind, default) in QUESTIONS.items():
        lines += [f"{name}:", f"  type: {kind}", f"  help: The {name.replace('_', ' ')}"]
        lines.append(f"  default: {default!r}" if isinstance(default, str) else f"  default: {default}")
        if kind == "str":
            lines.append(
                f'  validator: "{{% if not {name} or {name} | length > 200 %}}{name} must be 1-200 '
                f'characters{{% endif %}}"'
            )
        elif kind == "int":
            lines.append(
                f'  validator: "{{% if {name} < 0 or {name} > 100000 %}}{name} must be between 0 and '
                f'100000{{% endif %}}"'
            )
        lines.append("")
    return "\n".join(lines)


def terraform_module(name: str) -> dict[str, str]:
    main = "\n".join(
        f'resource "null_resource" "{name}_{index}" {{\n'
        f'  triggers = {{\n    name  = "{{{{ project_slug }}}}-{name}-{index}"\n'
        f'    owner = "{{{{ owner }}}}"\n    region = "{{{{ region }}}}"\n  }}\n}}\n'
        for index in range(scaled(12))
    )
    variables = "\n".join(
        f'variable "{name}_{field}" {{\n  description = "{field} of {name}"\n  type        = string\n'
        f'  default     = "{{{{ {field} }}}}"\n}}\n'
        for field in ("project_slug", "owner", "region", "log_level", "registry")
    )
    return {
        "main.tf.jinja": main,
        "variables.tf.jinja": variables,
        "outputs.tf": f'output "{name}_id" {{\n  value = null_resource.{name}_0.id\n}}\n',
        "versions.tf.jinja": 'terraform {\n  required_version = ">= 1.10"\n}\n'
        "# {{ project_name }} / {{ version }}\n",
    }


def python_module(title: str) -> str:
    functions = "\n\n".join(
        f'def {title}_{index}(value: int) -> int:\n    """Step {index} of {{{{ project_name }}}}."""\n'
        f"    return value * {index} + {{{{ retries }}}}\n"
        for index in range(scaled(40))
    )
    return f'"""{title} of {{{{ project_name }}}}: {{{{ description }}}}."""\n\n\n{functions}'


def files() -> dict[str, str]:
    tree: dict[str, str] = {}
    for module in ("network", "cluster", "service", "iam", "logs", "alarm", "storage", "secrets", "queue"):
        for name, text in terraform_module(module).items():
            tree[f"infra/modules/{module}/{name}"] = text
    for env in ("dev", "prod"):
        for name, text in terraform_module(f"env_{env}").items():
            tree[f"infra/envs/{env}/{name}"] = text
    for name, text in terraform_module("bootstrap").items():
        tree[f"infra/{{% if with_ci %}}bootstrap{{% endif %}}/{name}"] = text
    for name in ("etl", "report", "cleanup", "sync"):
        tree[f"src/{{{{ package_name }}}}/flows/{name}.py.jinja"] = python_module(name)
        tree[f"tests/test_{name}.py.jinja"] = (
            f"from {{{{ package_name }}}}.flows.{name} import {name}_1\n\n\n"
            f"def test_{name}():\n    assert {name}_1(1) == 1 + {{{{ retries }}}}\n"
        )
    tree["src/{{ package_name }}/__init__.py.jinja"] = '"""{{ project_name }}."""\n'
    tree["src/{{ package_name }}/flows/__init__.py"] = ""
    tree["src/{{ package_name }}/settings.py.jinja"] = python_module("settings")
    tree["tests/conftest.py"] = "import pytest\n"
    tree["README.md.jinja"] = (
        "# {{ project_name }}\n\n{{ description }}\n\n"
        + "".join(
            f"## Section {index}\n\n{{{{ project_name }}}} in {{{{ region }}}}.\n\n"
            for index in range(scaled(30))
        )
        + "{% for env in environments %}- {{ env }}\n{% endfor %}"
    )
    tree["pyproject.toml.jinja"] = (
        '[project]\nname = "{{ project_slug }}"\nversion = "{{ version }}"\n'
        'requires-python = "=={{ python_version }}.*"\n\n[tool.ruff]\nline-length = {{ line_length }}\n'
    )
    tree["Makefile.jinja"] = "".join(
        f"target{index}:  ## step {index}\n\t@echo {{{{ project_slug }}}} {index}\n\n"
        for index in range(scaled(40))
    )
    tree["{% if with_docker %}Dockerfile{% endif %}.jinja"] = (
        "FROM python:{{ python_version }}-slim\nCOPY . /app\nRUN pip install /app\n"
    )
    tree[".gitignore"] = ".venv/\n__pycache__/\n.terraform/\n"
    tree["LICENSE.jinja"] = "{{ license }} License, {{ author }}\n" * 20
    tree["{{ _copier_conf.answers_file }}.jinja"] = "{{ _copier_answers | to_nice_yaml -}}\n"
    for name in ("ci", "deploy"):
        tree[f"{{% if with_ci %}}.github{{% endif %}}/workflows/{name}.yml.jinja"] = (
            f"name: {name}\non: [push]\njobs:\n  {name}:\n    runs-on: ubuntu-latest\n    steps:\n"
            + "".join(f"      - run: echo {{{{ project_slug }}}} {index}\n" for index in range(scaled(30)))
        )
    for name in ("architecture", "runbook", "deploying", "costs", "updating"):
        tree[f"docs/{name}.md.jinja"] = "".join(
            f"## {name} {index}\n\n{{{{ project_name }}}} ({{{{ owner }}}}, {{{{ region }}}}).\n\n"
            for index in range(scaled(70))
        )
    tree["prefect.yaml.jinja"] = "deployments:\n" + "".join(
        f"  - name: {{{{ project_slug }}}}-{index}\n    schedule: {{cron: '{{{{ schedule }}}}'}}\n"
        f"    tags: {{{{ tags | tojson }}}}\n"
        for index in range(scaled(20))
    )
    tree[".pre-commit-config.yaml"] = "repos: []\n"
    tree[".dockerignore"] = ".git\n.venv\n"
    return tree


def write_reference_template(out: Path) -> str:
    """Write the reference template into the new folder `out`; a one-line description of it."""
    (out / "template").mkdir(parents=True)
    (out / "copier.yml").write_text(copier_yml())
    for relative, text in files().items():
        path = out / "template" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    sources = [path for path in (out / "template").rglob("*") if path.is_file()]
    return (
        f"{len(sources)} files ({sum(p.suffix == '.jinja' for p in sources)} .jinja, "
        f"{jinja_bytes(out / 'template') // 1024} KB of .jinja; "
        f"template/ has {jinja_bytes(TEMPLATE) // 1024} KB)"
    )


if __name__ == "__main__":
    if len(sys.argv) != 2 or Path(sys.argv[1]).exists():
        sys.exit(f"usage: {sys.argv[0]} NEW_FOLDER")
    print(write_reference_template(Path(sys.argv[1])), "in", sys.argv[1])
