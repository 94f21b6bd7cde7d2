"""Jinja filters and globals of the template.

Every answer that reaches a rendered file goes through one of the `*_string`
filters of the file's language, so that quotes, backslashes, newlines and
template markers (`${`, `%{`, `{{`) keep their literal meaning.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

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


aws_limits = _load_sibling("aws_limits")
costs = _load_sibling("costs")


def hcl_string(value: object) -> str:
    """A quoted HCL string literal whose value is exactly `value`."""
    text = json.dumps(str(value), ensure_ascii=False)
    # HCL reads "${" and "%{" as interpolation/directive: "$${" and "%%{" escape them.
    return text.replace("${", "$${").replace("%{", "%%{")


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


class TemplateExtension(Extension):
    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters.update(
            hcl_string=hcl_string,
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
            require_answer_types=aws_limits.require_answer_types,
            slug_max=aws_limits.SLUG_MAX,
            cost_estimate=costs.cost_estimate,
            dask_run_hour=costs.dask_run_hour,
            dask_client_cpu=costs.DASK_CLIENT_CPU,
            dask_client_memory=costs.DASK_CLIENT_MEMORY,
            usd=costs.usd,
        )
