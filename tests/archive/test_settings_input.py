"""Archive settings answer bad values with a UserError naming the variable (never a traceback or
a value that breaks every later write), and database URLs never print their password."""

from __future__ import annotations

from pathlib import Path

import pytest

from archive_service.rebuild import safe_url
from archive_service.settings import load_settings
from hdc.errors import UserError


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("HDC_ARCHIVE_RETENTION", "not json", "HDC_ARCHIVE_RETENTION"),
        ("HDC_ARCHIVE_RETENTION", '{"medical": "20y", "administrative": "20000y"}', "1000 years"),
        ("HDC_ARCHIVE_MIN_RETENTION", "99999999999d", "HDC_ARCHIVE_MIN_RETENTION"),
        ("HDC_ARCHIVE_AUDIT_RETENTION", "9000y", "HDC_ARCHIVE_AUDIT_RETENTION"),
        ("HDC_ARCHIVE_AUDIT_FLUSH_SECONDS", "inf", "HDC_ARCHIVE_AUDIT_FLUSH_SECONDS"),
        ("HDC_ARCHIVE_RECONCILE_GRACE_SECONDS", "1e300", "HDC_ARCHIVE_RECONCILE_GRACE_SECONDS"),
        ("HDC_ARCHIVE_INSTANCE_ID", "../../escape", "HDC_ARCHIVE_INSTANCE_ID"),
        ("HDC_ARCHIVE_S3_ENDPOINT", "http://127.0.0.1:9000", "HDC_ARCHIVE_S3_SECURE"),
    ],
)
def test_bad_value_is_a_user_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv("HDC_ARCHIVE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv(variable, value)
    with pytest.raises(UserError, match=named):
        load_settings()


def test_good_values_still_load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HDC_ARCHIVE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("HDC_ARCHIVE_INSTANCE_ID", "archive-1.tn")
    monkeypatch.setenv("HDC_ARCHIVE_MIN_RETENTION", "999y")
    s = load_settings()
    assert s.instance_id == "archive-1.tn" and s.s3_endpoint == "127.0.0.1:8333"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg//bob:S3cretPW@127.0.0.1:1/db",
        "bob:S3cretPW@127.0.0.1:1/db",
        "postgresql+psycopg://bob:S3cretPW@127.0.0.1:notaport/db",
        "postgresql+psycopg://bob:S3cretPW@127.0.0.1:5432/db",
    ],
)
def test_safe_url_never_shows_the_password(url: str) -> None:
    shown = safe_url(url)
    assert "S3cretPW" not in shown and "bob" in shown
