"""Who may see the NOC page and act on alerts: an operators file and HTTP Basic authentication.

The NOC page is a plain page on an isolated network, so the browser's own Basic prompt is the
login (no framework, no cookies to steal). Passwords are stored as scrypt hashes; a verified
(user, password) pair is remembered for a few minutes so the page's poll every two seconds does
not cost an scrypt each time. Three roles: `viewer` reads, `operator` also acknowledges and
silences, `webhook` is Alertmanager posting to the relay. Without an operators file the API is
open (the embedded default listens on loopback); `hdc monitor run` warns when that is not so.
The file is re-read when it changes, so removing an operator needs no restart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import tempfile
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import yaml
from fastapi import HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from hdc.errors import UserError

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
CACHE_SECONDS = 300.0
REALM = "hdc NOC"
CHALLENGE = {"WWW-Authenticate": f'Basic realm="{REALM}"'}  # the browser's login prompt
log = logging.getLogger("hdc.monitor.access")


class Role(StrEnum):
    viewer = "viewer"
    operator = "operator"
    webhook = "webhook"


#: what each role may do, besides itself
GRANTS: dict[Role, frozenset[Role]] = {
    Role.viewer: frozenset({Role.viewer}),
    Role.operator: frozenset({Role.viewer, Role.operator}),
    Role.webhook: frozenset({Role.webhook}),
}

UserName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._@-]{1,64}$")]


class Operator(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: UserName
    role: Role
    password: str = Field(
        description="scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>, written by `hdc monitor operators add`"
    )

    @field_validator("password")
    @classmethod
    def _hashed(cls, value: str) -> str:
        parse_hash(value)
        return value


class OperatorsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    operators: list[Operator] = Field(default_factory=list)

    @field_validator("operators")
    @classmethod
    def _unique(cls, value: list[Operator]) -> list[Operator]:
        seen: set[str] = set()
        for op in value:
            if op.name in seen:
                raise ValueError(f"operator '{op.name}' is listed twice")
            seen.add(op.name)
        return value


def hash_password(password: str) -> str:
    if len(password) < 12:
        raise UserError("password: at least 12 characters")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def parse_hash(value: str) -> tuple[int, int, int, bytes, bytes]:
    parts = value.split("$")
    try:
        if len(parts) != 6 or parts[0] != "scrypt":
            raise ValueError
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, digest = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        raise ValueError(
            "not a password hash written by `hdc monitor operators add` (scrypt$n$r$p$salt$hash)"
        ) from None
    if n < 2**10 or n > 2**20 or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16 or len(digest) < 16:
        raise ValueError("scrypt parameters out of range")
    return n, r, p, salt, digest


def verify_password(password: str, stored: str) -> bool:
    n, r, p, salt, digest = parse_hash(stored)
    got = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=len(digest), maxmem=256 * n * r * p)
    return hmac.compare_digest(got, digest)


def _yaml_problem(path: Path, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f":{mark.line + 1}" if mark is not None else ""
    return f"{path}{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})"


def load_operators(path: Path) -> OperatorsFile:
    """Read and validate the operators file; every problem names the file and the entry's field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the operators file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise UserError(_yaml_problem(path, exc)) from None
    if not path.exists():
        raise UserError(f"{path}: no such operators file (create it with `hdc monitor operators add NAME`)")
    try:
        return OperatorsFile.model_validate(raw or {})
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors(include_url=False)
        ]
        raise UserError(f"{path}: bad operators file:\n  " + "\n  ".join(problems)) from None


def save_operators(path: Path, data: OperatorsFile) -> None:
    """Atomic write, owner-only: the hashes are not secret-free (offline guessing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# hdc monitor operators: written by `hdc monitor operators`; passwords are scrypt hashes\n"
    text += yaml.safe_dump(data.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Access:
    """The FastAPI dependency factory: `Depends(access.need(Role.operator))` returns the user name.

    Given the file's path it re-reads the file when it changes (checked at most once a second),
    so `hdc monitor operators remove` takes effect without a restart; a file broken by hand
    keeps the last good list and logs why.
    """

    def __init__(self, operators: OperatorsFile | None, path: Path | None = None) -> None:
        self.users = {op.name: op for op in operators.operators} if operators else None
        self._verified: dict[tuple[str, str], float] = {}
        self._path = path
        self._stamp = _stamp(path) if path else None
        self._checked = time.monotonic()

    @classmethod
    def from_file(cls, path: Path | None) -> Access:
        return cls(load_operators(path), path) if path else cls(None)

    def _reload(self) -> None:
        now = time.monotonic()
        if self._path is None or now - self._checked < 1.0:
            return
        self._checked = now
        stamp = _stamp(self._path)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            fresh = load_operators(self._path)
        except UserError as exc:
            log.error("operators file changed but is not usable; keeping the previous list: %s", exc)
            return
        self.users = {op.name: op for op in fresh.operators}
        self._verified.clear()
        log.info("operators file re-read: %d operators", len(self.users))

    @property
    def enabled(self) -> bool:
        return self.users is not None

    def need(self, role: Role):  # type: ignore[no-untyped-def]
        def dependency(request: Request) -> str | None:
            return self.check(request.headers.get("authorization"), role)

        return dependency

    def check(self, header: str | None, role: Role) -> str | None:
        """The authenticated user name (None when access control is off); 401 or 403 otherwise."""
        if self.users is None:
            return None
        self._reload()
        name, password = _basic(header)
        op = self.users.get(name)
        if op is None or not self._verify(op, password):
            raise HTTPException(401, "unknown user or wrong password", headers=CHALLENGE)
        if role not in GRANTS[op.role]:
            raise HTTPException(403, f"user '{name}' has role {op.role.value}; this needs {role.value}")
        return name

    def _verify(self, op: Operator, password: str) -> bool:
        key = (op.name, hashlib.sha256(f"{op.password}\0{password}".encode()).hexdigest())
        now = time.monotonic()
        if self._verified.get(key, 0.0) > now:
            return True
        if not verify_password(password, op.password):
            return False
        if len(self._verified) > 1000:
            self._verified = {k: t for k, t in self._verified.items() if t > now}
        self._verified[key] = now + CACHE_SECONDS
        return True


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_ino


def _basic(header: str | None) -> tuple[str, str]:
    if not header:
        raise HTTPException(401, "authentication required", headers=CHALLENGE)
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise HTTPException(401, "use HTTP Basic authentication", headers=CHALLENGE)
    try:
        name, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise HTTPException(401, "malformed Basic credentials", headers=CHALLENGE) from None
    if not sep or len(password) > 1024:
        raise HTTPException(401, "malformed Basic credentials", headers=CHALLENGE)
    return name, password
