"""Rename a question's answer in a project's Copier answers file.

Run by a `_migrations` entry in the "before" stage of `copier update`, so the
update asks (or reuses) the renamed question with the team's old answer:

    rename_answer.py .copier-answers.yml OLD_NAME NEW_NAME

Idempotent: without OLD_NAME it does nothing; if NEW_NAME is already answered,
that answer wins and OLD_NAME is dropped. Comments at the top of the file (the
"do not edit" header Copier writes) are kept; the order of the keys too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml  # Copier depends on PyYAML: always present in the Python that runs Copier


def rename_answer(answers_file: Path, old: str, new: str) -> bool:
    """Rename `old` to `new` in `answers_file`; return whether the file changed."""
    text = answers_file.read_text()
    answers = yaml.safe_load(text) or {}
    if old not in answers:
        return False
    renamed = {}
    for key, value in answers.items():
        if key == old:
            if new not in answers:
                renamed[new] = value
        else:
            renamed[key] = value
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    body = yaml.safe_dump(renamed, sort_keys=False, allow_unicode=True, default_flow_style=False)
    answers_file.write_text(header + body)
    return True


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    answers_file, old, new = Path(argv[0]), argv[1], argv[2]
    if not answers_file.is_file():
        print(f"{answers_file}: no answers file, nothing to rename", file=sys.stderr)
        return 0
    if rename_answer(answers_file, old, new):
        print(f"{answers_file}: answer {old!r} is now {new!r}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
