"""Helpers shared by the template's tests (tests/ is on sys.path: `from support.hcl import ...`).

One module per concern, each the only place that does its job:

* `rendering`      the one render path (`render_template`, `update_project`) and
                   what every rendered file must look like (parses, no Jinja left)
* `answers`        the one reader of copier.yml (`questions`, `choice_values`) and
                   of a project's .copier-answers.yml (`answers_of`, `recorded_answers`)
* `answer_sets`    the named answer sets and value sweeps the suite renders
* `hcl`            the one HCL reader (python-hcl2 behind a lock) and the static
                   checks of Terraform modules
* `terraform`      the terraform CLI and the provider mirror
* `tf_fixtures`    pytest plugin (tests/conftest.py): Terraform and checkov fixtures
* `checkov_batch`  one checkov process per run
* `prefect_checks` checks of a rendered project's Prefect side, with Prefect's own code
* `snapshot`       copies of this template's working tree, plain or as a git repository
* `prefect_local`  a throwaway Prefect server (tests/prefect and tests/e2e)

Test modules never import each other: what two of them share lives here.
"""
