"""Jinja filters and globals of the template.

Every answer that reaches a rendered file goes through one of the `*_string`
filters of the file's language, so that quotes, backslashes, newlines and
template markers (`${`, `%{`, `{{`) keep their literal meaning.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import yaml
from copier_template_extensions import ContextHook
from jinja2 import Environment
from jinja2.ext import Extension


def _load_sibling(name: str) -> ModuleType:
    """Import hooks/<name>.py from this very template checkout.

    A plain import would be cached in sys.modules and, in a process that
    renders twice (tests, `copier update`), serve the first checkout's module,
    whose data files Copier has already deleted with its temporary clone.
    """
    spec = importlib.util.spec_from_file_location(
        f"copier_prefect_ecs_{name}", Path(__file__).with_name(f"{name}.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # replaces any earlier checkout's copy
    spec.loader.exec_module(module)
    return module


# model first: aws_limits and costs import this checkout's copy of it.
model = _load_sibling("model")
aws_limits = _load_sibling("aws_limits")
costs = _load_sibling("costs")


def hcl_string(value: object) -> str:
    """A quoted HCL string literal whose value is exactly `value`."""
    text = json.dumps(str(value), ensure_ascii=False)
    # HCL reads "${" and "%{" as interpolation/directive: "$${" and "%%{" escape them.
    return text.replace("${", "$${").replace("%{", "%%{")


def hcl(value: object, indent: int = 0, ranges: bool = False) -> str:
    """An HCL expression whose value is `value` (a bool, number, string, list or mapping).

    A mapping is written one key per line with the `=` aligned as `terraform
    fmt` does, `indent` being the column of the line that holds it. With
    `ranges`, a list of 4 or more evenly spaced whole numbers becomes
    `range(first, last + 1, step)`, which Terraform expands to the same list.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return hcl_string(value)
    if isinstance(value, list | tuple):
        items = list(value)
        if ranges and len(items) >= 4 and all(type(item) is int for item in items):
            steps = {b - a for a, b in itertools.pairwise(items)}
            if len(steps) == 1 and (step := steps.pop()) > 0:
                return f"range({items[0]}, {items[-1] + 1}, {step})"
        return "[" + ", ".join(hcl(item, indent, ranges) for item in items) + "]"
    if isinstance(value, dict):
        keys = {key: hcl_string(key) for key in value}
        width = max((len(key) for key in keys.values()), default=0)
        inner = " " * (indent + 2)
        lines = [
            f"{inner}{keys[key].ljust(width)} = {hcl(item, indent + 2, ranges)}"
            for key, item in value.items()
        ]
        return "{\n" + "\n".join(lines) + "\n" + " " * indent + "}"
    raise TypeError(f"no HCL form for {value!r}")


def choices(name: str) -> str:
    """copier.yml's choices of `name` that are the model's tables, as the YAML list Copier parses."""
    return json.dumps(list(model.CHOICES[name]))


def json_string(value: object) -> str:
    """A double-quoted string valid in JSON, YAML and TOML alike."""
    # \u escapes are legal in all three; raw control characters are not.
    return json.dumps(str(value), ensure_ascii=True)


def markdown_text(value: object) -> str:
    """Inline Markdown that shows `value` literally on one line."""
    text = " ".join(str(value).split())
    return re.sub(r"([\\`*_{}\[\]<>()#+!|~])", r"\\\1", text)


def python_string(value: object) -> str:
    """A Python string literal, for docstrings' neighbours and constants."""
    return json.dumps(str(value), ensure_ascii=False)


class AnswersModel(ContextHook):
    """Puts `model` (hooks/model.py) into every render context Copier makes.

    Files, file and folder names, copier.yml `when:`, defaults, validators,
    `_exclude` and `_tasks` all read the same rules, each over the answers of
    its own context; a fact is computed when read, so a question's `when:` may
    use what earlier answers imply.
    """

    def hook(self, context: dict) -> None:
        context["model"] = model.Model(context)


class TemplateExtension(Extension):
    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters.update(
            hcl_string=hcl_string,
            hcl=hcl,
            yaml_string=json_string,
            toml_string=json_string,
            json_string=json_string,
            markdown_text=markdown_text,
            python_string=python_string,
        )
        environment.globals.update(
            fargate_size_error=aws_limits.fargate_size_error,
            dask_min_workers_error=aws_limits.dask_min_workers_error,
            dask_max_workers_error=aws_limits.dask_max_workers_error,
            labels_error=aws_limits.labels_error,
            package_name_error=aws_limits.package_name_error,
            project_slug_error=aws_limits.project_slug_error,
            owner_error=aws_limits.owner_error,
            github_repository_error=aws_limits.github_repository_error,
            aws_account_id_error=aws_limits.aws_account_id_error,
            alarm_email_error=aws_limits.alarm_email_error,
            require_answer_types=aws_limits.require_answer_types,
            slug_max=model.SLUG_MAX,
            choices=choices,
            cost_estimate=costs.cost_estimate,
            dask_run_hour=costs.dask_run_hour,
            dask_client_cpu=costs.DASK_CLIENT_CPU,
            dask_client_memory=costs.DASK_CLIENT_MEMORY,
            usd=costs.usd,
        )


def question_choices(spec: dict) -> list | dict | None:
    """A copier.yml question's choices as Copier reads them.

    A string (`"{{ choices('worker_cpu') }}"`) is rendered with this module's
    globals and parsed as YAML, as Copier does; for tools that read copier.yml
    themselves (scripts/gen_question_docs.py, tests/support/answers.py).
    """
    choices = spec.get("choices")
    if isinstance(choices, str):
        environment = Environment(extensions=[TemplateExtension])
        return yaml.safe_load(environment.from_string(choices).render())
    return choices
