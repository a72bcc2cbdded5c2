from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.alerting.smtp import Smtp, start_smtp


@pytest.fixture(scope="module")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Smtp]:
    server = start_smtp(tmp_path_factory.mktemp("smtp"))
    yield server
    server.stop()


@pytest.fixture
def mail(smtp: Smtp, monkeypatch: pytest.MonkeyPatch) -> Iterator[Smtp]:
    """The module's SMTP server, emptied before the test; HDC_TEST_NOC_EMAIL is its Apprise URL."""
    smtp.clear()
    monkeypatch.setenv("HDC_TEST_NOC_EMAIL", smtp.url)
    yield smtp


@pytest.fixture
def routes_file(tmp_path: Path, smtp: Smtp, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HDC_TEST_NOC_EMAIL", smtp.url)
    path = tmp_path / "routes.yaml"
    path.write_text(
        "version: 1\n"
        "noc_url: http://noc.example.org:9110\n"
        "grouping: {wait: 20s, interval: 2m, max_names: 5}\n"
        "delivery: {retry_initial: 2s, retry_max: 30s}\n"
        "routes:\n"
        "  - name: noc-fr\n"
        "    language: fr\n"
        "    urls: [env:HDC_TEST_NOC_EMAIL]\n",
        encoding="utf-8",
    )
    return path
