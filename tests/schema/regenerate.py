"""Rebuild tests/schema/aws_provider_5.100.json from the hashicorp/aws provider itself.

    uv run python tests/schema/regenerate.py

Runs `terraform providers schema -json` in a scratch root that installs the
provider from the filesystem mirror (see tests/support/terraform.py), then keeps only
the resource and data-source types that template/infra (and the test fixtures
in tests/fixtures/tf) use, reduced to what tests/support/hcl.py needs:

    {"attributes":  {name: {"required"|"optional"|"computed"|"deprecated": true,
                            "object_keys": [...]  (list/set of objects only)}},
     "block_types": {name: {"nesting", "min_items", "max_items", "block": {...}}},
     "deprecated": true  (only when the whole block is)}

Provider 6.x: no 6.x provider is available offline here and HashiCorp
publishes no machine-readable 6.x schema, so compatibility with the
`< 7.0` half of the template's constraint is enforced two ways:
  * every attribute or block the 5.100 schema flags `deprecated` fails the
    check (6.0 removed or renamed most of what 5.x deprecated), and
  * REMOVED_IN_6 below lists the removals of the official "Version 6 Upgrade
    Guide" that 5.100 did not flag; they are written into the JSON as
    `removed_in_6` and fail the check too.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
sys.path.insert(0, str(TESTS))

from support.hcl import used_aws_types  # noqa: E402
from support.terraform import mirrored_aws_versions, run_terraform, terraform_env, terraform_unavailable  # noqa: E402

PROVIDER_VERSION = "5.100.0"
OUTPUT = Path(__file__).with_name("aws_provider_5.100.json")
PROVIDER_ADDRESS = "registry.terraform.io/hashicorp/aws"
TEMPLATE_INFRA = REPO / "template" / "infra"
FIXTURES = TESTS / "fixtures" / "tf"  # may use made-up types on purpose: those are left out

# From the Terraform AWS Provider Version 6 Upgrade Guide: arguments that 6.0
# removed although 5.100 does not mark them deprecated ("kind", type, path).
REMOVED_IN_6: dict[tuple[str, str], dict[str, str]] = {
    ("data", "aws_ecs_task_definition"): {"inference_accelerator": "removed (Elastic Inference is gone)"},
    ("data", "aws_identitystore_group"): {"filter": "removed: use alternate_identifier"},
    ("data", "aws_identitystore_user"): {"filter": "removed: use alternate_identifier"},
    ("data", "aws_launch_template"): {
        "elastic_gpu_specifications": "removed",
        "elastic_inference_accelerator": "removed",
    },
    ("resource", "aws_api_gateway_account"): {"reset_on_delete": "removed"},
    ("resource", "aws_api_gateway_deployment"): {
        "stage_name": "removed: use aws_api_gateway_stage",
        "stage_description": "removed: use aws_api_gateway_stage",
        "canary_settings": "removed: use aws_api_gateway_stage",
    },
    ("resource", "aws_batch_compute_environment"): {
        "compute_environment_name": "renamed to name",
        "compute_environment_name_prefix": "renamed to name_prefix",
    },
    ("resource", "aws_batch_job_queue"): {"compute_environments": "removed: use compute_environment_order"},
    ("resource", "aws_cloudfront_response_headers_policy"): {"etag": "computed only in 6.x"},
    ("resource", "aws_dms_endpoint"): {"s3_settings": "removed: use aws_dms_s3_endpoint"},
    ("resource", "aws_dx_gateway_association"): {"vpn_gateway_id": "removed: use associated_gateway_id"},
    ("resource", "aws_ecs_task_definition"): {"inference_accelerator": "removed (Elastic Inference is gone)"},
    ("resource", "aws_eip"): {"vpc": "removed: use domain"},
    ("resource", "aws_eks_addon"): {"resolve_conflicts": "removed: use resolve_conflicts_on_create/_update"},
    ("resource", "aws_flow_log"): {"log_group_name": "removed: use log_destination"},
    ("resource", "aws_guardduty_organization_configuration"): {"auto_enable": "removed"},
    ("resource", "aws_instance"): {
        "cpu_core_count": "removed: use cpu_options",
        "cpu_threads_per_core": "removed: use cpu_options",
    },
    ("resource", "aws_launch_template"): {
        "elastic_gpu_specifications": "removed",
        "elastic_inference_accelerator": "removed",
    },
    ("resource", "aws_networkmanager_core_network"): {
        "base_policy_region": "removed: use base_policy_regions"
    },
    ("resource", "aws_opensearch_domain"): {"kibana_endpoint": "removed"},
    ("resource", "aws_redshift_cluster"): {
        "snapshot_copy": "removed: use aws_redshift_snapshot_copy",
        "logging": "removed: use aws_redshift_logging",
    },
    ("resource", "aws_sagemaker_notebook_instance"): {"accelerator_types": "removed"},
    ("resource", "aws_spot_instance_request"): {"block_duration_minutes": "removed"},
    ("resource", "aws_ssm_association"): {"instance_id": "removed: use targets"},
}
REMOVED_TYPES_IN_6 = {"aws_redshift_service_account", "aws_simpledb_domain", "aws_worklink_fleet"}


def reduce_block(block: dict) -> dict:
    reduced: dict = {"attributes": {}, "block_types": {}}
    for name, attribute in sorted(block.get("attributes", {}).items()):
        flags = {
            key: True for key in ("required", "optional", "computed", "deprecated") if attribute.get(key)
        }
        object_keys = _object_keys(attribute)
        if object_keys is not None:
            flags["object_keys"] = object_keys
        reduced["attributes"][name] = flags
    for name, block_type in sorted(block.get("block_types", {}).items()):
        entry = {"nesting": block_type["nesting_mode"]}
        for key in ("min_items", "max_items"):
            if block_type.get(key):
                entry[key] = block_type[key]
        entry["block"] = reduce_block(block_type["block"])
        reduced["block_types"][name] = entry
    if block.get("deprecated"):
        reduced["deprecated"] = True
    return reduced


def _object_keys(attribute: dict) -> list[str] | None:
    """Keys of a list/set-of-object attribute, which HCL also accepts in block syntax."""
    kind = attribute.get("type")
    if (
        isinstance(kind, list)
        and kind[0] in ("list", "set")
        and isinstance(kind[1], list)
        and kind[1][0] == "object"
    ):
        return sorted(kind[1][1])
    nested = attribute.get("nested_type")
    if nested and nested.get("nesting_mode") in ("list", "set"):
        return sorted(nested.get("attributes", {}))
    return None


def provider_schema() -> dict:
    """The full `terraform providers schema -json` of hashicorp/aws PROVIDER_VERSION."""
    reason = terraform_unavailable()
    if reason:
        raise SystemExit(f"cannot regenerate the schema: {reason}")
    if PROVIDER_VERSION not in mirrored_aws_versions():
        raise SystemExit(f"hashicorp/aws {PROVIDER_VERSION} is not in the provider mirror")
    with tempfile.TemporaryDirectory(prefix="aws-schema-") as scratch:
        root = Path(scratch) / "root"
        root.mkdir()
        (root / "main.tf").write_text(
            "terraform {\n  required_providers {\n"
            f'    aws = {{ source = "hashicorp/aws", version = "{PROVIDER_VERSION}" }}\n'
            "  }\n}\n"
        )
        env = terraform_env(Path(scratch))
        run_terraform(["init", "-backend=false"], cwd=root, env=env)
        output = run_terraform(["providers", "schema", "-json"], cwd=root, env=env).stdout
    return json.loads(output)["provider_schemas"][PROVIDER_ADDRESS]


def build(full: dict, types: dict[str, set[str]], optional: dict[str, set[str]]) -> dict:
    sections = {"resource": "resource_schemas", "data": "data_source_schemas"}
    reduced: dict = {
        "provider": PROVIDER_ADDRESS,
        "version": PROVIDER_VERSION,
        "generated_by": "tests/schema/regenerate.py",
    }
    missing = []
    for kind, section in sections.items():
        reduced[section] = {}
        for type_name in sorted(types[kind] | optional[kind]):
            schema = full[section].get(type_name)
            if schema is None:
                if type_name in types[kind]:
                    missing.append(f'{kind} "{type_name}"')
                continue
            block = reduce_block(schema["block"])
            removed = REMOVED_IN_6.get((kind, type_name))
            if removed:
                block["removed_in_6"] = removed
            if type_name in REMOVED_TYPES_IN_6:
                block["removed_in_6_type"] = True
            reduced[section][type_name] = block
    if missing:
        raise SystemExit(f"not types of hashicorp/aws {PROVIDER_VERSION}: {', '.join(missing)}")
    return reduced


def main() -> None:
    reduced = build(provider_schema(), used_aws_types(TEMPLATE_INFRA), used_aws_types(FIXTURES))
    OUTPUT.write_text(json.dumps(reduced, indent=1, sort_keys=True) + "\n")
    count = len(reduced["resource_schemas"]) + len(reduced["data_source_schemas"])
    print(f"wrote {OUTPUT.relative_to(REPO)}: {count} types, {OUTPUT.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
