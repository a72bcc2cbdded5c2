"""Every rule links a runbook page that exists where the monitor looks (repository, wheel or HDC_RUNBOOKS_DIR)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from monitor.rules.loader import REPO_ROOT, RulesError, load_rules, runbooks_root


def test_shipped_rules_find_their_pages_in_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HDC_RUNBOOKS_DIR", raising=False)
    assert runbooks_root() == REPO_ROOT / "runbooks"
    assert load_rules().rules


def test_an_installed_host_points_the_monitor_at_its_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "share" / "runbooks"
    shutil.copytree(REPO_ROOT / "runbooks", copy)
    monkeypatch.setenv("HDC_RUNBOOKS_DIR", str(copy))
    assert load_rules().rules
    (copy / "alerts" / "link-down.md").unlink()
    with pytest.raises(RulesError) as err:
        load_rules()
    assert f"rules[0].runbook: runbooks/alerts/link-down.md does not exist under {copy}" in str(err.value)
