"""Jinja filters and globals of the template.

Every answer that reaches a rendered file goes through one of the `*_string`
filters of the file's language, so that quotes, backslashes, newlines and
template markers (`${`, `%{`, `{{`) keep their literal meaning.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from jinja2 import Environment
from jinja2.ext import Extension

sys.path.insert(0, str(Path(__file__).parent))

from aws_limits import SLUG_MAX, fargate_size_error, labels_error, require_answer_types  # noqa: E402
from costs import cost_estimate, usd


def hcl_string(value: object) -> str:
    """A quoted HCL string literal whose value is exactly `value`."""
    text = json.dumps(str(value), ensure_ascii=False)
    # HCL reads "${" and "%{" as interpolation/directive: "$${" and "%%{" escape them.
    return text.replace("${", "$${").replace("%{", "%%{")


def json_string(value: object) -> str:
    """A double-quoted string valid in JSON, YAML and TOML alike."""
    # ASCII escapes (\uXXXX) are legal in all three; raw control characters are not.
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
            fargate_size_error=fargate_size_error,
            labels_error=labels_error,
            require_answer_types=require_answer_types,
            slug_max=SLUG_MAX,
            cost_estimate=cost_estimate,
            usd=usd,
        )
