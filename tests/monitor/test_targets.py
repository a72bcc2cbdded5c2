"""Targets from the catalog: sharding, unpollable entries, settings."""

from __future__ import annotations

from collections import Counter
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from hdc.errors import UserError
from monitor.settings import load_settings
from monitor.targets import Shard, V2cCredentials, V3Credentials, shard_of, target_for, targets_from_catalog

from .helpers import facility, write_catalog, write_secrets


def test_shard_parse() -> None:
    assert Shard.parse("2/4") == Shard(1, 4)
    assert str(Shard.parse(" 1 / 1 ")) == "1/1"
    for bad in ("0/4", "5/4", "1/0", "a/b", "3", ""):
        with pytest.raises(UserError, match="--shard"):
            Shard.parse(bad)


def test_rendezvous_sharding_partitions_balances_and_moves_little() -> None:
    ids = [f"fac-{i:05d}" for i in range(6000)]
    for n in (1, 3, 8):
        owners = [shard_of(f, n) for f in ids]
        counts = Counter(owners)
        assert set(counts) == set(range(n))
        assert max(counts.values()) < 1.15 * len(ids) / n  # balanced within 15 %
    # Growing from 8 to 9 instances moves only what the new shard takes: ~1/9.
    before = {f: shard_of(f, 8) for f in ids}
    after = {f: shard_of(f, 9) for f in ids}
    moved = [f for f in ids if before[f] != after[f]]
    assert all(after[f] == 8 for f in moved)
    assert 0.8 / 9 < len(moved) / len(ids) < 1.2 / 9


def test_targets_cover_the_catalog_across_shards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HDC_SECRETS_DIR", str(tmp_path / "secrets"))
    values = write_secrets(tmp_path / "secrets")
    facs = [facility(f"h{i}", f"127.66.0.{i + 1}", 1161) for i in range(40)]
    facs.append(facility("planned", "127.66.1.1", 1161, status="planned"))
    facs.append(facility("v3", "127.66.1.2", 1161, v3=True))
    cat = write_catalog(tmp_path / "cat", facs)
    whole = targets_from_catalog(cat)
    assert {t.facility_id for t in whole} == {f"h{i}" for i in range(40)} | {"v3"}
    parts = [targets_from_catalog(cat, Shard(i, 3)) for i in range(3)]
    ids = [t.facility_id for part in parts for t in part]
    assert sorted(ids) == sorted(t.facility_id for t in whole)
    t = next(t for t in whole if t.facility_id == "h0")
    assert t.credentials == V2cCredentials(values["community"].encode())
    assert (t.host, t.port, t.if_index, t.bandwidth_bps, t.kind, t.region) == (
        "127.66.0.1",
        1161,
        2,
        100e6,
        "regional_hospital",
        "north",
    )
    v3 = next(t for t in whole if t.facility_id == "v3")
    assert isinstance(v3.credentials, V3Credentials) and v3.credentials.priv_key == values["v3-priv"]


def test_unpollable_entries_become_targets_with_their_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HDC_SECRETS_DIR", str(tmp_path / "secrets"))
    write_secrets(tmp_path / "secrets")
    cat = write_catalog(
        tmp_path / "cat",
        [
            facility("ok", "127.66.0.6", 161),
            facility("missing-secret", "127.66.0.7", 161, community_ref="file:snmp/nope"),
        ],
    )
    errors = {t.facility_id: t.config_error for t in targets_from_catalog(cat)}
    assert errors["ok"] is None
    assert errors["missing-secret"] is not None and "file:snmp/nope" in errors["missing-secret"]
    # The catalog refuses these addresses; the poller still guards against them (a hand-built catalog object).
    ok = cat.facility("ok")
    assert ok is not None and ok.link is not None
    for fid, address, words in (
        ("zero", "0.0.0.0", "0.0.0.0"),
        ("mcast", "224.0.0.9", "multicast"),
        ("bcast", "255.255.255.255", "broadcast"),
    ):
        bad = ok.model_copy(update={"id": fid, "link": ok.link.model_copy(update={"router": IPv4Address(address)})})
        error = target_for(bad).config_error
        assert error is not None and words in error, (fid, error)


def test_settings_errors_name_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match="interval"):
        load_settings(interval=0)
    with pytest.raises(UserError, match="exceeds the interval"):
        load_settings(interval=2, timeout=2, retries=1)
    monkeypatch.setenv("HDC_MONITOR_TIMEOUT", "soon")
    with pytest.raises(UserError, match="HDC_MONITOR_TIMEOUT"):
        load_settings()
    monkeypatch.setenv("HDC_MONITOR_TIMEOUT", "0.5")
    assert load_settings(interval=5).timeout == 0.5
