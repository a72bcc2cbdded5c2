"""The call -> action table in infra/storage.py against the archive service's source code."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from infra.storage import ARCHIVE_CALLS, BUCKET_ACTIONS, FORBIDDEN_ACTIONS, OBJECT_ACTIONS, archive_policy_document

ARCHIVE_DIR = Path(__file__).resolve().parents[2] / "archive_service"


def archive_client_calls() -> dict[str, list[str]]:
    """Every `self.client.X(…)` / `client.X(…)` call in archive_service/: X -> where."""
    out: dict[str, list[str]] = {}
    for path in sorted(ARCHIVE_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            owner = node.func.value
            if (isinstance(owner, ast.Attribute) and owner.attr == "client") or (
                isinstance(owner, ast.Name) and owner.id == "client"
            ):
                out.setdefault(node.func.attr, []).append(f"{path.name}:{node.lineno}")
    return out


def test_every_sdk_call_of_the_archive_is_in_the_table() -> None:
    calls = archive_client_calls()
    assert "_put_object" in calls and "remove_object" in calls, "the scan finds the store's calls"
    table = {c.sdk for c in ARCHIVE_CALLS if c.sdk}
    missing = {name: where for name, where in calls.items() if name not in table}
    assert missing == {}, "archive_service calls the store in ways infra/storage.py's ARCHIVE_CALLS does not map"
    stale = table - set(calls)
    assert stale == set(), "ARCHIVE_CALLS maps calls the archive no longer makes: drop their actions"


def test_the_policy_is_the_table_and_nothing_forbidden() -> None:
    granted = {a for c in ARCHIVE_CALLS for a in c.actions}
    assert set(BUCKET_ACTIONS) | set(OBJECT_ACTIONS) == granted
    assert not granted & FORBIDDEN_ACTIONS
    assert not any("*" in a for a in granted)
    doc = json.loads(archive_policy_document(["r-bucket", "a-bucket"]))
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    assert set(by_sid["ArchiveBuckets"]["Action"]) == set(BUCKET_ACTIONS)
    assert by_sid["ArchiveBuckets"]["Resource"] == ["arn:aws:s3:::r-bucket", "arn:aws:s3:::a-bucket"]
    assert set(by_sid["ArchiveObjects"]["Action"]) == set(OBJECT_ACTIONS)
    assert by_sid["ArchiveObjects"]["Resource"] == ["arn:aws:s3:::r-bucket/*", "arn:aws:s3:::a-bucket/*"]
    # calls left out on purpose say why
    assert all(c.note.startswith("not granted") for c in ARCHIVE_CALLS if not c.actions)


def test_docs_print_the_same_table() -> None:
    """docs/infra.md lists every SDK call and every action the policy grants."""
    text = (ARCHIVE_DIR.parent / "docs" / "infra.md").read_text()
    section = text.split("### What the archive's identity may do", 1)[1].split("\n## ", 1)[0]
    for c in ARCHIVE_CALLS:
        assert (f"`{c.sdk}`" in section or f"`{c.sdk}(" in section) if c.sdk else c.request in section, c
        for a in c.actions:
            assert f"`{a}`" in section, a
