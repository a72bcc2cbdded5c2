"""Resolve the secret references a catalog holds ('env:NAME', 'file:relative/path').

Values never live in the catalog or the repository. `file:` references are read below
HDC_SECRETS_DIR (default /etc/hdc/secrets); `make run` and the tests point it at a
throw-away directory filled by `ensure_secrets`.
"""

from __future__ import annotations

import os
import secrets as _random
from collections.abc import Iterator
from pathlib import Path

from .model import Catalog, SnmpV2c, SnmpV3

DEFAULT_SECRETS_DIR = Path("/etc/hdc/secrets")


class SecretError(Exception):
    """A reference that cannot be resolved; the message names the reference, never a value."""


def secrets_dir() -> Path:
    return Path(os.environ.get("HDC_SECRETS_DIR", str(DEFAULT_SECRETS_DIR)))


def resolve(ref: str, base: Path | None = None) -> str:
    scheme, _, name = ref.partition(":")
    if scheme == "env":
        value = os.environ.get(name)
        if value is None:
            raise SecretError(f"secret {ref}: environment variable {name} is not set")
        return value
    if scheme == "file":
        root = (base or secrets_dir()).resolve()
        path = (root / name).resolve()
        if root not in path.parents:
            raise SecretError(f"secret {ref}: path leaves the secrets directory {root}")
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretError(f"secret {ref}: cannot read {path}: {exc.strerror}") from None
    raise SecretError(f"secret {ref}: unknown scheme '{scheme}' (use env: or file:)")


def catalog_refs(catalog: Catalog) -> Iterator[str]:
    for fac in catalog.facilities:
        snmp = fac.link.snmp if fac.link else None
        if isinstance(snmp, SnmpV2c):
            yield snmp.community_ref
        elif isinstance(snmp, SnmpV3):
            yield snmp.auth_key_ref
            yield snmp.priv_key_ref


def ensure_secrets(catalog: Catalog, base: Path) -> list[str]:
    """Create random values for every missing `file:` reference (lab and tests only)."""
    created = []
    for ref in sorted(set(catalog_refs(catalog))):
        scheme, _, name = ref.partition(":")
        if scheme != "file":
            continue
        path = base / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.write_text(_random.token_urlsafe(18) + "\n", encoding="utf-8")
            path.chmod(0o600)
            created.append(ref)
    return created
