"""Secret references resolve from the environment or the secrets directory, never from the catalog."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from inventory.loader import load_catalog
from inventory.secrets import SecretError, catalog_refs, ensure_secrets, resolve


def test_env_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HDC_TEST_SECRET", "s3cret")
    assert resolve("env:HDC_TEST_SECRET") == "s3cret"
    monkeypatch.delenv("HDC_TEST_SECRET")
    with pytest.raises(SecretError, match="HDC_TEST_SECRET is not set"):
        resolve("env:HDC_TEST_SECRET")


def test_file_reference_stays_inside_the_secrets_dir(tmp_path: Path) -> None:
    (tmp_path / "snmp").mkdir()
    (tmp_path / "snmp" / "community").write_text("abc\n")
    assert resolve("file:snmp/community", base=tmp_path) == "abc"
    with pytest.raises(SecretError, match="leaves the secrets directory"):
        resolve("file:../etc/passwd", base=tmp_path)
    with pytest.raises(SecretError, match="cannot read"):
        resolve("file:snmp/missing", base=tmp_path)
    with pytest.raises(SecretError, match="unknown scheme"):
        resolve("vault:x", base=tmp_path)


def test_ensure_secrets_fills_every_file_reference_once(tmp_path: Path) -> None:
    cat = load_catalog("lab")
    created = ensure_secrets(cat, tmp_path)
    assert sorted(created) == sorted(set(catalog_refs(cat)))
    values = {ref: resolve(ref, base=tmp_path) for ref in created}
    assert all(len(v) >= 20 for v in values.values())
    for ref in created:
        mode = (tmp_path / ref.removeprefix("file:")).stat().st_mode
        assert stat.S_IMODE(mode) == 0o600
    assert ensure_secrets(cat, tmp_path) == []  # idempotent: values are kept
    assert {ref: resolve(ref, base=tmp_path) for ref in created} == values
