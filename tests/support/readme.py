"""The README's set-up commands, as tests read them."""

from __future__ import annotations

import os
import re

from support.answers import REPO

# The machine's network settings (TLS roots, proxies): not part of a set-up under test.
NETWORK_SETTING = re.compile(
    r"(?i)(SSL_CERT_\w+|REQUESTS_CA_BUNDLE|PIP_CERT|UV_(NATIVE_TLS|SYSTEM_CERTS)|\w*_proxy)"
)


def network_settings() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if NETWORK_SETTING.fullmatch(key)}


def readme_commands() -> dict[str, str]:
    """The commands of the README's "Set up on a fresh machine" block, by their comment."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Set up on a fresh machine", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", section, re.DOTALL)
    commands, comment = {}, ""
    for line in block.splitlines():
        if line.startswith("#"):
            comment = line.lstrip("# ").strip()
        elif line.strip():
            commands[comment] = line.strip()
    return commands


def readme_command(kind: str) -> str:
    """The one command whose comment mentions `kind` ("render", "test suite")."""
    matches = [command for comment, command in readme_commands().items() if kind in comment.lower()]
    assert len(matches) == 1, f"the README has no single {kind} command: {readme_commands()}"
    return matches[0]
