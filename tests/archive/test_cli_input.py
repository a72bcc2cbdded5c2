"""`hdc archive …`, its settings and its keyring answer bad input with a clear message naming the
culprit (exit 2, no traceback), lose nothing, and never print a secret. From a review of
2026-11-22: each case once gave a traceback, a silent success, a printed password or lost data.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from archive_service.settings import ArchiveSettings, load_settings
from hdc.errors import UserError

from .conftest import Api, administrative

SECRET_PW = "Pg-S3cretPW-42"


def _hdc(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hdc.cli", "archive", *args], capture_output=True, text=True, env=env, timeout=120
    )


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HDC_ARCHIVE_")}
    env.update(extra)
    return env


def _env_for(settings: ArchiveSettings, **extra: str) -> dict[str, str]:
    env = _clean_env(
        HDC_ARCHIVE_STATE_DIR=str(settings.state_dir),
        HDC_ARCHIVE_S3_ENDPOINT=settings.s3_endpoint,
        HDC_ARCHIVE_S3_ACCESS_KEY=settings.s3_access_key,
        HDC_ARCHIVE_S3_SECRET_KEY=settings.s3_secret_key,
        HDC_ARCHIVE_BUCKET_RECORDS=settings.bucket_records,
        HDC_ARCHIVE_BUCKET_AUDIT=settings.bucket_audit,
        HDC_ARCHIVE_BUCKET_DEFAULT_RETENTION_DAYS=str(settings.bucket_default_retention_days),
        HDC_ARCHIVE_MIN_RETENTION=settings.min_retention,
        HDC_ARCHIVE_CHUNK_SIZE=str(settings.chunk_size),
        HDC_ARCHIVE_PART_CHUNKS=str(settings.part_chunks),
        HDC_ARCHIVE_AUDIT_FSYNC="false",
    )
    env.update(extra)
    return env


def _user_error(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit 2, an `error:` line, no traceback, and every needle in the message."""
    out = r.stdout + r.stderr
    tail = "\n".join(out.strip().splitlines()[-3:])
    assert "Traceback" not in out, tail
    assert r.returncode == 2, (r.returncode, tail)
    for needle in needles:
        assert needle in out, (needle, tail)


def _no_secret(r: subprocess.CompletedProcess[str], *secrets: str) -> None:
    out = r.stdout + r.stderr
    for s in secrets:
        assert s not in out, f"secret printed in clear: {out[-1500:]}"


def _keyring(path: Path, **over: Any) -> Path:
    doc: dict[str, Any] = {
        "current": "k1",
        "keys": {"k1": base64.b64encode(os.urandom(32)).decode()},
        "index_key": base64.b64encode(os.urandom(32)).decode(),
    }
    doc.update(over)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh)
    return path


@pytest.fixture(scope="module")
def record(api: Api) -> str:
    r = api.ingest(b"probe content " * 500, administrative())
    assert r.status_code == 201, r.text
    return str(r.json()["record_id"])


# --- settings (no store needed) -------------------------------------------------------------------


@pytest.mark.parametrize("value", ["not json", '{"medical": "20y",'])
def test_retention_that_is_not_json_names_the_variable(tmp_path: Path, value: str) -> None:
    # pydantic-settings raises SettingsError (not ValidationError) before validation: load_settings lets it through
    r = _hdc(
        "token", "--role", "archivist", env=_clean_env(HDC_ARCHIVE_STATE_DIR=str(tmp_path), HDC_ARCHIVE_RETENTION=value)
    )
    _user_error(r, "HDC_ARCHIVE_RETENTION")


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("HDC_ARCHIVE_MIN_RETENTION", "99999999999d"),  # OverflowError in timedelta
        ("HDC_ARCHIVE_AUDIT_RETENTION", "99999999999999999999y"),
    ],
)
def test_oversized_duration_names_the_variable(tmp_path: Path, var: str, value: str) -> None:
    r = _hdc("token", "--role", "archivist", env=_clean_env(HDC_ARCHIVE_STATE_DIR=str(tmp_path), **{var: value}))
    _user_error(r, var)


@pytest.mark.parametrize(
    "env",
    [
        # accepted today; the first ingest of an administrative record then fails: "year 22023 is out of range"
        {"HDC_ARCHIVE_RETENTION": '{"medical": "20y", "administrative": "20000y"}'},
        # accepted today; every ingest then overflows datetime.now() + min_retention
        {"HDC_ARCHIVE_MIN_RETENTION": "9000y"},
        {"HDC_ARCHIVE_CERTIFICATE_RETENTION": "9000y"},
        {"HDC_ARCHIVE_AUDIT_RETENTION": "9000y"},
    ],
)
def test_retention_beyond_the_calendar_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(UserError, match=next(iter(env))):
        load_settings()


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("HDC_ARCHIVE_AUDIT_FLUSH_SECONDS", "inf"),  # audit flusher thread dies: Event.wait(inf) -> OverflowError
        ("HDC_ARCHIVE_RECONCILE_GRACE_SECONDS", "inf"),  # timedelta(seconds=inf) at every start
        ("HDC_ARCHIVE_RECONCILE_GRACE_SECONDS", "1e300"),
    ],
)
def test_non_finite_seconds_are_refused(monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(UserError, match=var):
        load_settings()


@pytest.mark.parametrize("value", ["../../escape", "a/b"])
def test_instance_id_that_is_a_path_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    # today: STATE_DIR/audit/../../escape-cli is created outside the state dir, S3 keys chain/../../escape-cli/…
    monkeypatch.setenv("HDC_ARCHIVE_INSTANCE_ID", value)
    with pytest.raises(UserError, match="HDC_ARCHIVE_INSTANCE_ID"):
        load_settings()


def test_state_dir_that_is_a_file_names_the_variable(tmp_path: Path) -> None:
    f = tmp_path / "a-file"
    f.write_text("x")
    r = _hdc("token", "--role", "archivist", env=_clean_env(HDC_ARCHIVE_STATE_DIR=str(f)))
    _user_error(r, "HDC_ARCHIVE_STATE_DIR")


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:1", "https://127.0.0.1:1/"])
@pytest.mark.parametrize("args", [("fixity",), ("catalog", "rebuild", "--dry-run")])
def test_endpoint_with_a_scheme_names_the_variable(tmp_path: Path, endpoint: str, args: tuple[str, ...]) -> None:
    _keyring(tmp_path / "keyring.json")
    r = _hdc(*args, env=_clean_env(HDC_ARCHIVE_STATE_DIR=str(tmp_path), HDC_ARCHIVE_S3_ENDPOINT=endpoint))
    _user_error(r, "HDC_ARCHIVE_S3_ENDPOINT")


def test_token_with_a_negative_ttl_is_refused(tmp_path: Path) -> None:
    r = _hdc("token", "--role", "archivist", "--ttl", "-100", env=_clean_env(HDC_ARCHIVE_STATE_DIR=str(tmp_path)))
    _user_error(r, "--ttl")


# --- keyring file ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "over",
    [
        {"keys": []},  # AttributeError: 'list' object has no attribute 'items'
        {"keys": "abc"},
        {"current": ["k1"]},  # TypeError: unhashable type: 'list'
    ],
)
def test_malformed_keyring_names_the_file(api: Api, tmp_path: Path, over: dict[str, Any]) -> None:
    ring = _keyring(tmp_path / "ring.json", **over)
    r = _hdc("keys", "rewrap", env=_env_for(api.settings, HDC_ARCHIVE_KEK_FILE=str(ring)))
    _user_error(r, str(ring))


def test_keyring_with_a_short_index_key_is_refused(tmp_path: Path) -> None:
    # HDC_ARCHIVE_INDEX_KEY must be >= 32 bytes, but a keyring file's index_key may be empty: patient
    # identifiers would then be HMAC'd under an empty key (guessable) and earlier records no longer found
    from archive_service.crypto import LocalKeyring

    ring = _keyring(tmp_path / "ring.json", index_key="")
    with pytest.raises(UserError, match="index_key"):
        LocalKeyring.load_or_create(ring)


def test_world_readable_keyring_is_refused(tmp_path: Path) -> None:
    from archive_service.crypto import LocalKeyring

    ring = _keyring(tmp_path / "ring.json")
    ring.chmod(0o644)
    with pytest.raises(UserError, match=r"0600|permission|mode"):
        LocalKeyring.load_or_create(ring)


# --- against the real store -----------------------------------------------------------------------


def test_wrong_s3_secret_is_a_user_error_and_not_printed(api: Api) -> None:
    secret = "Wr0ngSecretKeyValue-XYZ"
    for args in (("fixity",), ("audit", "verify"), ("audit", "expire", "--dry-run")):
        r = _hdc(*args, env=_env_for(api.settings, HDC_ARCHIVE_S3_SECRET_KEY=secret))
        _user_error(r, "HDC_ARCHIVE_S3")
        _no_secret(r, secret)


def test_bucket_name_the_store_refuses_names_the_variable(api: Api) -> None:
    r = _hdc("fixity", env=_env_for(api.settings, HDC_ARCHIVE_BUCKET_RECORDS="Bad_Bucket"))
    _user_error(r, "HDC_ARCHIVE_BUCKET_RECORDS")


def test_audit_verify_of_a_missing_bucket_is_a_user_error(api: Api) -> None:
    r = _hdc("audit", "verify", "--bucket", "no-such-bucket-probe", env=_env_for(api.settings))
    _user_error(r, "no-such-bucket-probe")


@pytest.mark.parametrize(
    "url",
    ["garbage", f"postgresql+psycopg://bob:{SECRET_PW}@127.0.0.1:1/db", "sqlite:////nonexistent/dir/catalog.db"],
)
def test_bad_database_url_names_the_variable_without_the_password(api: Api, url: str) -> None:
    r = _hdc("fixity", env=_env_for(api.settings, HDC_ARCHIVE_DATABASE_URL=url))
    _user_error(r, "HDC_ARCHIVE_DATABASE_URL")
    _no_secret(r, SECRET_PW)


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg//bob:{SECRET_PW}@127.0.0.1:1/db",  # missing ':' -> echoed in clear today
        f"bob:{SECRET_PW}@127.0.0.1:1/db",
        f"postgresql+psycopg://bob:{SECRET_PW}@127.0.0.1:notaport/db",  # ValueError in safe_url -> traceback
    ],
)
def test_rebuild_into_an_unparseable_url_never_prints_its_password(api: Api, tmp_path: Path, url: str) -> None:
    state = tmp_path / "state"
    state.mkdir()
    shutil.copy(api.settings.keyring_path, state / "keyring.json")
    r = _hdc("catalog", "rebuild", "--into", url, env=_env_for(api.settings, HDC_ARCHIVE_STATE_DIR=str(state)))
    _user_error(r, "--into")
    _no_secret(r, SECRET_PW)


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_fixity_limit_below_one_is_refused(api: Api, record: str, limit: str) -> None:
    # today: "0 version(s) checked, 0 failure(s)", exit 0 — an integrity check that checked nothing passes
    r = _hdc("fixity", "--limit", limit, env=_env_for(api.settings))
    _user_error(r, "--limit")


def test_missing_keyring_file_is_not_silently_recreated_over_an_existing_catalog(
    api: Api, record: str, tmp_path: Path
) -> None:
    # a typo in HDC_ARCHIVE_KEK_FILE: today a fresh keyring is created and used next to a catalog whose
    # data keys it cannot unwrap (new records would be wrapped under a key the real keyring lacks)
    ring = tmp_path / "typo-keyring.json"
    r = _hdc("fixity", env=_env_for(api.settings, HDC_ARCHIVE_KEK_FILE=str(ring)))
    _user_error(r, str(ring))
    assert not ring.exists()


@pytest.mark.parametrize("args", [("keys", "rewrap"), ("keys", "rotate")])
def test_rewrap_with_a_keyring_lacking_the_key_is_a_user_error(
    api: Api, record: str, tmp_path: Path, args: tuple[str, ...]
) -> None:
    ring = _keyring(tmp_path / "other.json")
    r = _hdc(*args, env=_env_for(api.settings, HDC_ARCHIVE_KEK_FILE=str(ring)))
    _user_error(r, "not in the keyring")


def test_retire_an_unknown_key_is_refused(api: Api, tmp_path: Path) -> None:
    ring = tmp_path / "copy.json"
    shutil.copy(api.settings.keyring_path, ring)
    r = _hdc("keys", "retire", "no-such-key", env=_env_for(api.settings, HDC_ARCHIVE_KEK_FILE=str(ring)))
    _user_error(r, "no-such-key")


def test_retire_with_an_environment_key_is_a_user_error(api: Api) -> None:
    kek = base64.b64encode(os.urandom(32)).decode()
    r = _hdc(
        "keys",
        "retire",
        "some-old-key",
        env=_env_for(api.settings, HDC_ARCHIVE_KEK=kek, HDC_ARCHIVE_INDEX_KEY=kek),
    )
    _user_error(r, "HDC_ARCHIVE_KEK")
    _no_secret(r, kek)


def test_export_bad_out_path_is_a_user_error(api: Api, record: str, tmp_path: Path) -> None:
    for out in (tmp_path / "no-dir" / "x.bin", tmp_path):
        r = _hdc("export", record, "--out", str(out), env=_env_for(api.settings))
        _user_error(r, "--out")


def test_export_version_out_of_range_is_a_user_error(api: Api, record: str, tmp_path: Path) -> None:
    r = _hdc("export", record, "--out", str(tmp_path / "x"), "--version", str(2**70), env=_env_for(api.settings))
    _user_error(r, "--version")


def test_export_that_cannot_decrypt_keeps_the_existing_file(api: Api, record: str, tmp_path: Path) -> None:
    # today: KeyError_ traceback, and --out was truncated to 0 bytes before anything was decrypted
    out = tmp_path / "precious.txt"
    out.write_text("the operator's earlier export")
    ring = _keyring(tmp_path / "other.json")
    r = _hdc("export", record, "--out", str(out), env=_env_for(api.settings, HDC_ARCHIVE_KEK_FILE=str(ring)))
    _user_error(r, "keyring")
    assert out.read_text() == "the operator's earlier export"


# --- serve --embedded-store -----------------------------------------------------------------------


def _serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    import time

    import httpx

    proc = subprocess.Popen(
        [sys.executable, "-m", "hdc.cli", "archive", "serve", "--embedded-store", "--port", str(port)],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-2000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    _stop(proc)
    raise AssertionError(log.read_text()[-2000:])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    import signal

    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # the CLI stops its SeaweedFS in its `finally`
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_restarting_serve_embedded_store_keeps_the_records(tmp_path: Path) -> None:
    # cli.py `serve`: shutil.rmtree(STATE_DIR/store) at every start, while the catalog (STATE_DIR/catalog.db)
    # keeps the records: every record of the previous run (COMPLIANCE-locked for years) is destroyed,
    # GET …/content answers 500 (NoSuchVersion) and fixity reports the object missing.
    import hashlib
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = _clean_env(HDC_ARCHIVE_STATE_DIR=str(tmp_path / "state"))
    log = tmp_path / "serve.log"
    data = b"embedded record content"
    proc = _serve(env, port, log)
    try:
        token = _hdc("token", "--role", "archivist", env=env).stdout.strip()
        headers = {
            "Authorization": f"Bearer {token}",
            "X-Archive-Metadata": json.dumps(administrative()),
            "X-Content-SHA256": hashlib.sha256(data).hexdigest(),
            "Content-Type": "text/plain",
        }
        r = httpx.post(f"http://127.0.0.1:{port}/records", content=data, headers=headers, timeout=30)
        assert r.status_code == 201, r.text
        record_id = r.json()["record_id"]
    finally:
        _stop(proc)
    # The embedded store cannot start again on its data (SeaweedFS keeps its ports): the command
    # must refuse, and leave the earlier run's store and catalog as they were.
    store_files = sorted(p.name for p in (tmp_path / "state" / "store").rglob("*"))
    r = _hdc("serve", "--embedded-store", "--port", str(port), env=env)
    _user_error(r, "HDC_ARCHIVE_STATE_DIR")
    assert sorted(p.name for p in (tmp_path / "state" / "store").rglob("*")) == store_files
    assert record_id
