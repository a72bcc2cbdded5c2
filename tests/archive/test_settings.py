"""Settings are validated up front, with errors naming the variable; durations follow the calendar."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from archive_service.settings import add_duration, load_settings, parse_duration
from hdc.errors import UserError


def test_durations() -> None:
    assert parse_duration("90s").total_seconds() == 90
    assert parse_duration(" 2 h ").total_seconds() == 7200
    assert add_duration(datetime(2024, 2, 29, tzinfo=UTC), "1y") == datetime(2025, 2, 28, tzinfo=UTC)
    assert add_duration(datetime(2024, 1, 31, tzinfo=UTC), "1mo") == datetime(2024, 2, 29, tzinfo=UTC)
    assert add_duration(datetime(2004, 6, 1, tzinfo=UTC), "20y") == datetime(2024, 6, 1, tzinfo=UTC)
    for bad in ("20", "y", "-1y", "0d", "3 weeks"):
        with pytest.raises(ValueError):
            parse_duration(bad)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"HDC_ARCHIVE_RETENTION": '{"medical": "forever", "administrative": "10y"}'}, "HDC_ARCHIVE_RETENTION"),
        ({"HDC_ARCHIVE_RETENTION": '{"medical": "20y"}'}, "administrative"),
        ({"HDC_ARCHIVE_RETENTION": '{"medical": "20y", "administrative": "10y", "financial": "5y"}'}, "financial"),
        ({"HDC_ARCHIVE_CHUNK_SIZE": "65536", "HDC_ARCHIVE_PART_CHUNKS": "2"}, "5 MiB"),
        ({"HDC_ARCHIVE_UPLOAD_CONCURRENCY": "0"}, "HDC_ARCHIVE_UPLOAD_CONCURRENCY"),
        ({"HDC_ARCHIVE_MIN_RETENTION": "soon"}, "HDC_ARCHIVE_MIN_RETENTION"),
        ({"HDC_ARCHIVE_BUCKET_DEFAULT_RETENTION_DAYS": "0"}, "HDC_ARCHIVE_BUCKET_DEFAULT_RETENTION_DAYS"),
    ],
)
def test_bad_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], needle: str) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(UserError, match=needle):
        load_settings()


def test_subclass_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HDC_ARCHIVE_RETENTION", '{"medical": "20y", "administrative": "10y", "medical/imaging": "30y"}')
    s = load_settings()
    assert s.retention_for("medical", "imaging") == "30y" and s.retention_for("medical", "consultation") == "20y"
