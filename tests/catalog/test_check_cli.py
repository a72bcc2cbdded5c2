"""`hdc catalog check`: examples pass with a summary; each broken fixture fails with file, line and field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
BROKEN = sorted(p for p in (HERE / "broken").iterdir() if p.is_dir())


def hdc(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hdc", *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False
    )


@pytest.mark.parametrize("name", ["lab", "tunisia"])
def test_examples_are_valid(name: str) -> None:
    result = hdc("catalog", "check", name)
    assert result.returncode == 0, result.stderr
    assert f"catalog '{name}' is valid" in result.stdout
    assert "by region:" in result.stdout and "zone dmz" in result.stdout


def test_national_example_has_the_expected_shape() -> None:
    result = hdc("catalog", "check", "tunisia", "--json")
    import json

    summary = json.loads(result.stdout)
    assert len(summary["by_region"]) == 24
    assert 280 <= summary["by_status"]["connected"] <= 320
    assert summary["by_status"]["planned"] == 2100
    assert summary["facilities"] >= 2400
    assert summary["platforms"] >= 40


def test_there_are_at_least_ten_distinct_broken_fixtures() -> None:
    assert len(BROKEN) >= 10
    messages = {(b / "expect.txt").read_text() for b in BROKEN}
    assert len(messages) == len(BROKEN), "two fixtures report the same problem"


@pytest.mark.parametrize("fixture", BROKEN, ids=[b.name for b in BROKEN])
def test_broken_catalog_is_reported_precisely(fixture: Path) -> None:
    expected = [line for line in (fixture / "expect.txt").read_text(encoding="utf-8").splitlines() if line]
    result = hdc("catalog", "check", "catalog.yaml", cwd=fixture)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"catalog has {len(expected)} problem(s):")
    reported = result.stderr.splitlines()[1:]
    assert reported == expected
    for line in reported:  # every problem names the file and a line, and a field unless it is a YAML error
        path, lineno, _ = line.split(":", 2)
        assert path == "catalog.yaml" and int(lineno) > 0


def test_missing_catalog_is_a_clear_error(tmp_path: Path) -> None:
    result = hdc("catalog", "check", str(tmp_path / "nowhere"))
    assert result.returncode == 1
    assert "no such catalog file or directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_directory_without_yaml_is_a_clear_error(tmp_path: Path) -> None:
    result = hdc("catalog", "check", str(tmp_path))
    assert result.returncode == 1 and "no .yaml files" in result.stderr


def test_non_utf8_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "catalog.yaml").write_bytes(b"name: \xff\xfe\n")
    result = hdc("catalog", "check", str(tmp_path))
    assert result.returncode == 1 and "cannot read" in result.stderr and "Traceback" not in result.stderr


def test_section_defined_in_two_files_names_both(tmp_path: Path) -> None:
    base = (HERE / "base.yaml").read_text(encoding="utf-8")
    (tmp_path / "a.yaml").write_text(base, encoding="utf-8")
    (tmp_path / "b.yaml").write_text("datacenter:\n  name: Other\n", encoding="utf-8")
    result = hdc("catalog", "check", str(tmp_path))
    assert result.returncode == 1
    assert "b.yaml:1: section 'datacenter' is already defined at" in result.stderr
    assert "a.yaml:" in result.stderr
