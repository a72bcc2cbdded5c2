"""`hdc archive …` answers operator mistakes with a clear message, exit 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from archive_service.auth import local_jwks


def _hdc(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hdc.cli", "archive", *args], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    import os

    return {**os.environ, "HDC_ARCHIVE_STATE_DIR": str(tmp_path), "HDC_ARCHIVE_S3_ENDPOINT": "127.0.0.1:1"}


def test_token_mints_a_verifiable_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from archive_service.cli import app

    monkeypatch.setenv("HDC_ARCHIVE_STATE_DIR", str(tmp_path))
    r = CliRunner().invoke(app, ["token", "--role", "clinician", "--facility", "hr-ariana", "--subject", "dr-a"])
    assert r.exit_code == 0, r.output
    from archive_service.settings import ArchiveSettings

    key = jwt.PyJWK(local_jwks(ArchiveSettings(state_dir=tmp_path))["keys"][0])
    claims = jwt.decode(r.output.strip(), key.key, algorithms=["ES256"], audience="hdc-archive")
    assert claims["roles"] == ["clinician"] and claims["facility"] == "hr-ariana" and claims["sub"] == "dr-a"
    assert (tmp_path / "signing-key.pem").stat().st_mode & 0o777 == 0o600


def test_operator_mistake_exits_2_without_traceback(env: dict[str, str]) -> None:
    r = _hdc("token", "--role", "wizard", env=env)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "--role wizard" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("args", "extra", "needle"),
    [
        (("token", "--role", "clinician", "--facility", "atlantis"), {}, "--facility atlantis"),
        (("audit", "verify"), {}, "store unreachable"),
        (("token", "--role", "archivist"), {"HDC_ARCHIVE_RETENTION": '{"medical": "soon"}'}, "HDC_ARCHIVE_RETENTION"),
    ],
)
def test_operator_mistakes_are_user_errors(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], extra: dict[str, str], needle: str
) -> None:
    from typer.testing import CliRunner

    from archive_service.cli import app
    from hdc.errors import UserError

    for k in ("HDC_ARCHIVE_STATE_DIR", "HDC_ARCHIVE_S3_ENDPOINT"):
        monkeypatch.setenv(k, env[k])
    for k, v in extra.items():
        monkeypatch.setenv(k, v)
    res = CliRunner().invoke(app, list(args))
    assert isinstance(res.exception, UserError), res.output
    assert needle in str(res.exception)
