"""Summarise `terraform show -json <plan>` as Markdown for a pull request.

    terraform show -json plan.tfplan > plan.json
    python3 infra/plan_summary.py dev plan.json >> summary.md

Counts what the plan creates, updates, replaces and destroys, and lists every
replace and destroy by address: those are what a reviewer must not miss
(docs/runbook.md). Standard library only, so CI runs it without installing
the project.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# Terraform's change.actions for each kind of change (JSON output format, "Change Representation").
REPLACE = (["delete", "create"], ["create", "delete"])


def classify(actions: list[str]) -> str:
    if actions in REPLACE:
        return "replace"
    if actions == ["delete"]:
        return "destroy"
    if actions == ["create"]:
        return "create"
    if actions == ["update"]:
        return "update"
    return "no-op"  # ["no-op"], ["read"] (data sources)


def summarise(environment: str, plan: dict) -> str:
    changes: dict[str, list[str]] = {
        kind: [] for kind in ("create", "update", "replace", "destroy", "no-op")
    }
    for resource in plan.get("resource_changes", []):
        if resource.get("mode") == "data":
            continue
        changes[classify(resource["change"]["actions"])].append(resource["address"])
    kinds = ("create", "update", "replace", "destroy")
    counts = ", ".join(f"{len(changes[kind])} to {kind}" for kind in kinds)
    lines = [f"### `{environment}`: {counts}", ""]
    dangerous = [(kind, address) for kind in ("destroy", "replace") for address in changes[kind]]
    if dangerous:
        lines.append("**Destroys or replaces** (review before `make infra-apply`):")
        lines.extend(f"- {kind}: `{address}`" for kind, address in dangerous)
    else:
        lines.append("No destroy and no replace.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("environment")
    parser.add_argument("plan_json", type=Path, help="output of `terraform show -json <plan file>`")
    args = parser.parse_args(argv)
    try:
        plan = json.loads(args.plan_json.read_text())
    except (OSError, json.JSONDecodeError) as error:
        print(f"{args.plan_json}: not a `terraform show -json` plan ({error})", file=sys.stderr)
        return 1
    if "resource_changes" not in plan and "planned_values" not in plan:
        print(
            f"{args.plan_json}: not a `terraform show -json` plan (no resource_changes)",
            file=sys.stderr,
        )
        return 1
    sys.stdout.write(summarise(args.environment, plan))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
