"""`hdc configure`: run the playbooks through ansible-runner."""

from __future__ import annotations

from hdc.errors import UserError


def configure() -> None:
    """Converge the data center with Ansible (being built in issue 7)."""
    raise UserError("hdc configure is not available yet")
