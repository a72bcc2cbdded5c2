"""Envelope encryption of record content: a fresh AES-256-GCM data key per record version, wrapped
by a key-encryption key (KEK) held by a `KeyProvider`.

Content is cut into fixed-size chunks, each sealed with AES-GCM under a nonce made of a random
per-version prefix and the chunk counter; the associated data binds the record, version, chunk
counter and a final-chunk flag, so truncation, reordering or splicing between records fail to
decrypt. The embedded provider keeps its keys in a 0600 keyring file; an external KMS only has
to implement `KeyProvider` (wrap/unwrap by key id).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from hdc.errors import UserError

TAG = 16
META_COUNTER = 0xFFFFFFFF  # counter reserved for the encrypted metadata block
MAGIC = b"HDCA1\n"


class KeyError_(Exception):
    """A data key cannot be unwrapped (unknown key id or wrong key)."""


class KeyProvider(Protocol):
    """Wraps and unwraps data keys; an external KMS implements the same three calls."""

    def current_key_id(self) -> str: ...

    def wrap(self, dek: bytes) -> tuple[str, bytes]: ...

    def unwrap(self, key_id: str, wrapped: bytes) -> bytes: ...


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise UserError(f"{what}: not valid base64") from None


class LocalKeyring:
    """KEKs in a JSON file (mode 0600): {"current": id, "keys": {id: b64}, "index_key": b64}.

    Rotation adds a key and makes it current; old keys stay until every data key is re-wrapped.
    """

    def __init__(self, keys: dict[str, bytes], current: str, index_key: bytes, path: Path | None = None):
        self.keys = keys
        self.current = current
        self.index_key = index_key
        self.path = path
        self._mtime = path.stat().st_mtime_ns if path is not None and path.exists() else 0

    @classmethod
    def from_env(cls, kek_b64: str, index_b64: str | None) -> LocalKeyring:
        kek = _unb64(kek_b64, "HDC_ARCHIVE_KEK")
        if len(kek) != 32:
            raise UserError(f"HDC_ARCHIVE_KEK: must decode to 32 bytes (AES-256), got {len(kek)}")
        if index_b64 is None:
            raise UserError("HDC_ARCHIVE_INDEX_KEY: required with HDC_ARCHIVE_KEK (base64 of 32 random bytes)")
        index = _unb64(index_b64, "HDC_ARCHIVE_INDEX_KEY")
        if len(index) < 32:
            raise UserError("HDC_ARCHIVE_INDEX_KEY: must decode to at least 32 bytes")
        key_id = "env-" + hashlib.sha256(kek).hexdigest()[:12]
        return cls({key_id: kek}, key_id, index)

    @classmethod
    def load_or_create(cls, path: Path) -> LocalKeyring:
        """Open the keyring, creating it (0600, fresh random keys) on first run."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            key_id = _new_key_id()
            ring = cls({key_id: secrets.token_bytes(32)}, key_id, secrets.token_bytes(32), path)
            ring.save()
            return ring
        try:
            mode = path.stat().st_mode & 0o777
        except OSError as exc:
            raise UserError(f"keyring {path}: unreadable ({exc.strerror})") from None
        if mode & 0o077:
            raise UserError(
                f"keyring {path}: mode {mode:04o} lets other users read the key-encryption keys; "
                f"make it 0600 (chmod 600 {path})"
            )
        try:
            data = json.loads(path.read_text())
            if not (isinstance(data, dict) and isinstance(data.get("keys"), dict)):
                raise ValueError('not {"current": ID, "keys": {ID: base64}, "index_key": base64}')
            if not isinstance(data.get("current"), str):
                raise ValueError("current: must be a key id (a string)")
            keys = {str(k): _unb64(v, f"{path}: keys.{k}") for k, v in data["keys"].items()}
            ring = cls(keys, data["current"], _unb64(data["index_key"], f"{path}: index_key"), path)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UserError(f"keyring {path}: unreadable or malformed ({exc})") from None
        if len(ring.index_key) < 32:
            raise UserError(f"keyring {path}: index_key must decode to at least 32 bytes")
        if ring.current not in ring.keys:
            raise UserError(f"keyring {path}: current key '{ring.current}' is not in keys")
        for k, v in keys.items():
            if len(v) != 32:
                raise UserError(f"keyring {path}: keys.{k} must be 32 bytes")
        return ring

    def save(self) -> None:
        if self.path is None:
            raise UserError("the keys come from HDC_ARCHIVE_KEK: change them in the environment, not with this command")
        doc = {
            "current": self.current,
            "keys": {k: _b64(v) for k, v in self.keys.items()},
            "index_key": _b64(self.index_key),
        }
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        os.chmod(self.path, 0o600)
        self._mtime = self.path.stat().st_mtime_ns

    def rotate(self) -> str:
        """Add a new KEK and make it current; returns its id."""
        if self.path is None:
            raise UserError("key rotation with HDC_ARCHIVE_KEK: set the new key in the environment instead")
        key_id = _new_key_id()
        self.keys[key_id] = secrets.token_bytes(32)
        self.current = key_id
        self.save()
        return key_id

    def retire(self, key_id: str) -> None:
        if self.path is None:
            raise UserError("the keys come from HDC_ARCHIVE_KEK: remove an old key from the environment instead")
        if key_id == self.current:
            raise UserError(f"key {key_id} is the current key; rotate first")
        if key_id not in self.keys:
            raise UserError(f"key {key_id} is not in the keyring (keys: {', '.join(sorted(self.keys))})")
        self.keys.pop(key_id)
        self.save()

    def _maybe_reload(self) -> None:
        """Pick up a rotation made by `hdc archive keys rotate` while the service runs."""
        if self.path is None:
            return
        try:
            mtime = self.path.stat().st_mtime_ns
        except OSError:
            return
        if mtime != self._mtime:
            fresh = LocalKeyring.load_or_create(self.path)
            self.keys, self.current, self._mtime = fresh.keys, fresh.current, mtime

    # KeyProvider
    def current_key_id(self) -> str:
        self._maybe_reload()
        return self.current

    def wrap(self, dek: bytes) -> tuple[str, bytes]:
        self._maybe_reload()
        return self.current, aes_key_wrap(self.keys[self.current], dek)

    def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        if key_id not in self.keys:
            self._maybe_reload()
        kek = self.keys.get(key_id)
        if kek is None:
            raise KeyError_(f"key-encryption key '{key_id}' is not in the keyring")
        try:
            return aes_key_unwrap(kek, wrapped)
        except InvalidUnwrap:
            raise KeyError_(f"data key does not unwrap with key '{key_id}'") from None


def _new_key_id() -> str:
    return datetime.now(UTC).strftime("kek-%Y%m%dT%H%M%S-") + secrets.token_hex(3)


def patient_index(index_key: bytes, patient_id: str) -> str:
    """Keyed hash of a patient identifier: searchable by equality, unreadable in the catalog."""
    normalised = " ".join(patient_id.split()).upper()
    return hmac.new(index_key, normalised.encode(), hashlib.sha256).hexdigest()


class ChunkCipher:
    """AES-256-GCM over numbered chunks of one record version."""

    def __init__(self, dek: bytes, prefix: bytes, binding: bytes) -> None:
        self.dek = dek
        self.prefix = prefix  # 8 random bytes, fresh per version
        self.binding = binding  # record id and version, in every chunk's associated data
        self._aead = AESGCM(dek)

    def _nonce(self, counter: int) -> bytes:
        return self.prefix + struct.pack(">I", counter)

    def _aad(self, counter: int, final: bool) -> bytes:
        return self.binding + struct.pack(">IB", counter, 1 if final else 0)

    def seal(self, counter: int, data: bytes | memoryview, final: bool) -> bytes:
        if counter >= META_COUNTER:
            raise ValueError("record too large for this chunk size")
        return self._aead.encrypt(self._nonce(counter), data, self._aad(counter, final))

    def seal_into(self, counter: int, data: bytes | memoryview, final: bool, out: memoryview) -> None:
        """Encrypt into `out` (len(data) + TAG bytes): no intermediate copies for large parts."""
        if counter >= META_COUNTER:
            raise ValueError("record too large for this chunk size")
        self._aead.encrypt_into(self._nonce(counter), data, self._aad(counter, final), out)

    def open(self, counter: int, data: bytes, final: bool) -> bytes:
        return self._aead.decrypt(self._nonce(counter), data, self._aad(counter, final))

    def seal_meta(self, data: bytes) -> bytes:
        return self._aead.encrypt(self._nonce(META_COUNTER), data, self.binding + b"meta")

    def open_meta(self, data: bytes) -> bytes:
        return self._aead.decrypt(self._nonce(META_COUNTER), data, self.binding + b"meta")


def binding(record_id: str, version: int) -> bytes:
    return f"{record_id}/{version}/".encode()


@dataclass(frozen=True)
class Envelope:
    """What a reader needs, besides the KEK, to decrypt a stored version: the object header."""

    record_id: str
    version: int
    key_id: str
    wrapped_dek: bytes
    prefix: bytes
    chunk_size: int
    sealed_meta: bytes

    def to_header(self) -> bytes:
        doc = {
            "record_id": self.record_id,
            "version": self.version,
            "key_id": self.key_id,
            "wrapped_dek": _b64(self.wrapped_dek),
            "prefix": _b64(self.prefix),
            "chunk_size": self.chunk_size,
            "meta": _b64(self.sealed_meta),
        }
        body = json.dumps(doc, separators=(",", ":")).encode()
        return MAGIC + struct.pack(">I", len(body)) + body

    @classmethod
    def from_header(cls, head: bytes) -> tuple[Envelope, int]:
        """Parse the header at the start of an object; returns it and its length in bytes."""
        if not head.startswith(MAGIC) or len(head) < len(MAGIC) + 4:
            raise ValueError("not an archive object (bad magic)")
        (n,) = struct.unpack(">I", head[len(MAGIC) : len(MAGIC) + 4])
        start = len(MAGIC) + 4
        if len(head) < start + n:
            raise ValueError("header truncated")
        doc = json.loads(head[start : start + n])
        env = cls(
            doc["record_id"],
            int(doc["version"]),
            doc["key_id"],
            base64.b64decode(doc["wrapped_dek"]),
            base64.b64decode(doc["prefix"]),
            int(doc["chunk_size"]),
            base64.b64decode(doc["meta"]),
        )
        return env, start + n


def new_envelope(
    provider: KeyProvider, record_id: str, version: int, chunk_size: int, meta: dict[str, object]
) -> tuple[Envelope, ChunkCipher]:
    dek = secrets.token_bytes(32)
    prefix = secrets.token_bytes(8)
    cipher = ChunkCipher(dek, prefix, binding(record_id, version))
    key_id, wrapped = provider.wrap(dek)
    sealed = cipher.seal_meta(json.dumps(meta, separators=(",", ":"), default=str).encode())
    return Envelope(record_id, version, key_id, wrapped, prefix, chunk_size, sealed), cipher


def cipher_for(
    provider: KeyProvider, record_id: str, version: int, key_id: str, wrapped: bytes, prefix: bytes
) -> ChunkCipher:
    return ChunkCipher(provider.unwrap(key_id, wrapped), prefix, binding(record_id, version))


def chunk_count(size: int, chunk_size: int) -> int:
    """Chunks of a plaintext of `size` bytes (an empty record still has one, empty, final chunk)."""
    return max(1, -(-size // chunk_size))


def ciphertext_size(size: int, chunk_size: int) -> int:
    return size + TAG * chunk_count(size, chunk_size)


# --- free text in audit entries


def audit_text_key(index_key: bytes) -> bytes:
    """The key that seals the free text of audit entries (break-glass justifications, correction
    reasons): derived from the index key, which every reader of the trail already holds (service,
    rebuild) and which is never rotated — a KEK rotation must not strand old entries."""
    return hmac.new(index_key, b"hdc/audit-text/v1", hashlib.sha256).digest()


def seal_text(key: bytes, fields: dict[str, str]) -> str:
    """`v1:` + base64(nonce ‖ AES-GCM of the JSON fields): readable with the keyring only."""
    nonce = os.urandom(12)
    body = AESGCM(key).encrypt(nonce, json.dumps(fields, ensure_ascii=False).encode(), b"hdc-audit-text")
    return "v1:" + base64.b64encode(nonce + body).decode()


def open_text(key: bytes, sealed: str) -> dict[str, str]:
    """The fields sealed by `seal_text`; ValueError if it was not sealed with this key."""
    if not sealed.startswith("v1:"):
        raise ValueError("not sealed audit text (expected v1:…)")
    try:
        raw = base64.b64decode(sealed[3:], validate=True)
        data = json.loads(AESGCM(key).decrypt(raw[:12], raw[12:], b"hdc-audit-text"))
    except Exception as exc:  # binascii, InvalidTag, JSON: one answer for all
        raise ValueError(f"sealed audit text does not open with this keyring ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise ValueError("sealed audit text is not an object")
    return {str(k): str(v) for k, v in data.items()}
